"""Kill a suite at random moments, resume it, and check that its results are exactly once.

    python scripts/kill_resume_check.py --suite configs/suites/robustness-mnist.toml --data-root data \
        --kills 4 --seed 1 --work /tmp/killcheck

Each round starts `python -m ssd.suite` and SIGKILLs its process group at a random moment
(the first round during pretraining, the others once the results file has a random number
of rows), then two suites are started at once on the same results file to finish the grid.
At the end it checks: every run key once, every grid run and sweep point present, every row
from the published (complete) checkpoint, no `*.tmp` / `.lock` / claims left, and no run
computed twice by the concurrent suites. A check tool, not a test: it prints what it saw.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--suite", required=True)
    p.add_argument("--data-root", default=None)
    p.add_argument("--kills", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", required=True, help="a fresh folder for results, cache and checkpoints")
    p.add_argument("--first-kill-s", type=float, default=20.0, help="upper bound of the first (pretraining) kill")
    args = p.parse_args()
    sys.path.insert(0, str(REPO))
    import tomllib

    from ssd.checkpoint import read_checkpoint
    from ssd.utils import sha256_file

    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    suite = tomllib.loads(Path(args.suite).read_text())
    results = work / "r.jsonl"
    cmd = [sys.executable, "-m", "ssd.suite", "--suite", str(Path(args.suite).resolve()), "--no-progress",
           "--no-report", "--results", str(results), "--cache-dir", str(work / "cache")]
    if args.data_root:
        cmd += ["--data-root", str(Path(args.data_root).resolve())]
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)

    def rows() -> int:
        return len(results.read_bytes().splitlines()) if results.exists() else 0

    rng = random.Random(args.seed)
    t_all = time.monotonic()
    for i in range(args.kills):
        proc, t0 = start(), time.monotonic()
        if i == 0:
            at, delay = 0, rng.uniform(args.first_kill_s / 4, args.first_kill_s)
        else:
            at, delay = rows() + rng.randrange(1, 4), rng.uniform(0, 1.0)
        while rows() < at and proc.poll() is None:
            time.sleep(0.05)
        time.sleep(delay)
        alive = proc.poll() is None
        if alive:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        print(f"round {i + 1}: {'killed' if alive else 'finished before the kill'} after "
              f"{time.monotonic() - t0:.1f} s (at >= {at} rows + {delay:.2f} s); {rows()} rows")
    procs = [start(), start()]
    errs = [pr.communicate()[1].decode() for pr in procs]
    codes = [pr.returncode for pr in procs]
    print(f"two concurrent suites finished with exit codes {codes}")
    raw = [json.loads(ln) for ln in results.read_text().splitlines() if ln.strip()]
    keys = [r["run_key"] for r in raw]
    runs = [r for r in raw if "sweep" not in r]
    points = [r for r in raw if "sweep" in r]
    ckpts = {r["checkpoint"] for r in raw}
    complete = {c: read_checkpoint(work / c)[1].get("complete") for c in ckpts}
    shas_ok = all(r["checkpoint_sha256"] == sha256_file(work / r["checkpoint"]) for r in raw)
    leftovers = [str(q.relative_to(work)) for q in work.rglob("*")
                 if q.name.endswith((".tmp", ".lock", ".claims"))]
    twice = sum(e.count("already recorded") for e in errs)
    seeds, methods = suite.get("seeds", [0]), suite.get("methods")
    classes = sum(len(t.get("classes", [None])) for t in suite["tasks"])
    print(f"rows {len(raw)} (grid runs {len(runs)}, sweep points {len(points)}); distinct run keys {len(set(keys))}")
    print(f"expected grid runs {len(seeds) * len(methods) * classes} (seeds x methods x classes)")
    print(f"checkpoints complete: {complete}; every row's checkpoint sha256 matches the file: {shas_ok}")
    print(f"leftover temp/lock/claims files: {leftovers}; runs computed twice by the concurrent suites: {twice}")
    print(f"total {time.monotonic() - t_all:.0f} s")
    ok = (codes == [0, 0] and len(keys) == len(set(keys)) and len(runs) == len(seeds) * len(methods) * classes
          and all(complete.values()) and shas_ok and not leftovers and twice == 0)
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
