#!/bin/bash
# Kill a pretraining with `timeout` and run the same command again: it should resume after the
# last finished epoch and publish the weights of an uninterrupted run (docs/robustness.md).
#
#   scripts/pretrain_resume_check.sh WORK KILL_SECONDS [pretrain_model.py flags...]
#   scripts/pretrain_resume_check.sh /tmp/resume 40 -net ConvNet -dataset MNIST --data-root /work/data --epochs 5
#
# Runs with one thread (deterministic on CPU): WORK/whole uninterrupted, then WORK/killed killed
# after KILL_SECONDS and run again; prints the weights' sha256 of both and whether they and the
# histories (images/s aside) are equal.
set -u
[ $# -ge 3 ] || { echo "usage: $0 WORK KILL_SECONDS pretrain_model.py-flags..." >&2; exit 2; }
WORK=$1 KILL=$2
shift 2
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
CMD=(env OMP_NUM_THREADS=1 "$PY" pretrain_model.py "$@" --device cpu --no-progress)
stamp() { while IFS= read -r line; do printf '[%s] %s\n' "$(date +%T)" "$line"; done; }
rm -rf "$WORK/whole" "$WORK/killed"
echo "== uninterrupted"; "${CMD[@]}" --out "$WORK/whole" 2>&1 | stamp
echo "== killed (timeout -s KILL $KILL)"; timeout -s KILL "$KILL" "${CMD[@]}" --out "$WORK/killed" 2>&1 | stamp
echo "exit ${PIPESTATUS[0]}; left: $(ls "$WORK/killed" | tr '\n' ' ')"
echo "== the same command again"; "${CMD[@]}" --out "$WORK/killed" 2>&1 | stamp
echo "left: $(ls "$WORK/killed" | tr '\n' ' ')"
"$PY" - "$WORK" <<'PY'
import json
import sys

from ssd.checkpoint import read_checkpoint
from ssd.utils import sha256_tensors

work = sys.argv[1]
for name in ("last.pt", "best.pt"):
    a, b = (read_checkpoint(f"{work}/{d}/{name}")[0] for d in ("whole", "killed"))
    same = a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a)
    print(f"{name}: uninterrupted {sha256_tensors(a)[:16]}, resumed {sha256_tensors(b)[:16]}: "
          f"{'equal' if same else 'DIFFERENT'}")
h = [json.load(open(f"{work}/{d}/history.json")) for d in ("whole", "killed")]
strip = [[{k: v for k, v in e.items() if k != "images_per_s"} for e in x["history"]] for x in h]
print(f"history equal (images/s aside): {strip[0] == strip[1]}; resumed_after_epoch: {h[1].get('resumed_after_epoch')}")
PY
