"""The class-level attack's noise floor and the original model's exposure, on real data.

A grid's retrain row is its own reference (CMIA AUC 0.5 by construction), so this attacks each
seed's retrained model with *another* seed's reference (two retrains of the same retain set from
different initialisations and data orders): what an exact unlearner scores. It also attacks the
original checkpoint against every reference. Reading only: the retrained references come from
the grid's cache folder (it trains nothing and stops when one is missing).

    OMP_NUM_THREADS=1 python scripts/cmia_null.py --data-root /work/data --cache-dir CACHE \
        --weight-path checkpoints/cpu-paper/ResNet18-w8-FashionMNIST-n1000/last.pt \
        --net ResNet18 --dataset FashionMNIST --task full_class --forget-class Trouser --seeds 0,1,2
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

from reading_args import reading_parser  # scripts/, beside this file

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ssd.experiment import RunSpec, Session, build_splits  # noqa: E402
from ssd.metrics import predict_logits  # noqa: E402
from ssd.privacy.cmia import attacked_images, cmia_attack  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = reading_parser(__doc__.splitlines()[0], "the grid's cache folder (holds retrained/)")
    ap.add_argument("--task", default="full_class", choices=("full_class", "sub_class"))
    ap.add_argument("--forget-class", required=True)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--retain-eval-size", type=int, default=1000)
    args = ap.parse_args(argv)
    from ssd.errors import UserError

    session = Session(cache_dir=args.cache_dir)
    seeds = [int(s) for s in args.seeds.split(",")]
    logits, original = {}, None
    for seed in seeds:
        spec = RunSpec(task=args.task, net=args.net, dataset=args.dataset, weight_path=args.weight_path,
                       method="retrain", forget_class=args.forget_class, seed=seed, data_root=args.data_root,
                       retain_eval_size=args.retain_eval_size)
        model, meta = session.model(spec)
        splits = build_splits(spec, session, meta["sha256"], meta)

        def missing(_settings: object, seed: int = seed) -> None:
            raise UserError(f"no usable retrained reference for seed {seed} in {args.cache_dir}")

        ref = session.load_retrained(args.net, splits, missing)
        if ref is None:
            missing(None)
        images = attacked_images(splits)
        logits[seed] = predict_logits(ref, images)
        original = predict_logits(model, images) if original is None else original
        excluded = splits.forget_class if args.task == "full_class" else None
    out = {"original": {}, "retrain_vs_other_reference": {}}
    for b in seeds:
        out["original"][f"ref{b}"] = cmia_attack(original, logits[b], excluded).metrics()
    for a, b in itertools.permutations(seeds, 2):
        out["retrain_vs_other_reference"][f"retrain{a}-ref{b}"] = cmia_attack(logits[a], logits[b], excluded).metrics()
    for name, table in out.items():
        for pair, m in table.items():
            print(f"{name:28s} {pair:16s} AUC {m['CMIA_auc']:.3f}  TPR@1% {m['CMIA_tpr@1%']:.3f}  "
                  f"TPR@0.1% {m['CMIA_tpr@0.1%']:.3f}")
    print(json.dumps({"task": args.task, "dataset": args.dataset, "net": args.net,
                      "forget_class": args.forget_class, "images": int(original.shape[0]), **out}))


if __name__ == "__main__":
    from ssd.errors import run_cli

    sys.exit(run_cli(main))
