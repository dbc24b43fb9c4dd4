"""Shadow models trained per second: one vectorised ensemble against the one-at-a-time loop.

    python scripts/bench_ulira.py --dataset MNIST --data-root /work/data --k 16 --pool 2000 --epochs 2
    python scripts/bench_ulira.py --net ResNet18 --width 8 --dataset FashionMNIST --data-root /work/data --k 16
    python scripts/bench_ulira.py                      # bundled Digits, nothing to download

Both sides train K models of `--net` on the same random halves of the same pool with the
same schedule (the net's pretraining schedule from configs/schedules.toml, `--epochs`
epochs): the loop calls `ssd.train.fit` once per model, the ensemble trains all K in one
`vmap` (ssd.privacy.ensemble). Prints models/s for both and their ratio (measured in the
same run, so the ratio survives a noisy shared machine better than either figure), the
mean test accuracy of each side's models (they should agree), and appends one JSON line
to --results. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from datasets import dataset_info, load_dataset  # noqa: E402
from models import build_model  # noqa: E402
from ssd.errors import run_cli  # noqa: E402
from ssd.metrics import accuracy, predict_logits  # noqa: E402
from ssd.privacy.ensemble import Ensemble, fit_ensemble  # noqa: E402
from ssd.privacy.ulira import random_halves  # noqa: E402
from ssd.results import append_row  # noqa: E402
from ssd.schedules import load_schedule  # noqa: E402
from ssd.train import fit  # noqa: E402
from ssd.utils import code_version, resolve_device, synchronize  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--net", default="ConvNet")
    p.add_argument("--width", type=int, default=None, help="ResNet18 base width (64 = the paper's)")
    p.add_argument("--dataset", default="Digits")
    p.add_argument("--data-root", default=None)
    p.add_argument("--k", type=int, default=8, help="shadow models")
    p.add_argument("--pool", type=int, default=1000, help="pool size (each model trains on half)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--results", default="results/bench_ulira.jsonl")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    info = dataset_info(args.dataset)
    train = load_dataset(args.dataset, train=True, root=args.data_root)
    test = load_dataset(args.dataset, train=False, root=args.data_root)
    pool = train.subset(torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[: args.pool])
    pool, test = pool.to(device), test.to(device)
    members = random_halves(args.k, len(pool), seed=0)
    schedule = load_schedule(args.net, args.dataset, epochs=args.epochs)

    options = {"width": args.width} if args.width else {}

    def factory() -> torch.nn.Module:
        return build_model(args.net, info, **options).to(device)

    synchronize(device)
    t0 = time.perf_counter()
    loop_acc = []
    for k in range(args.k):
        torch.manual_seed(k)
        model = factory()
        fit(model, pool.subset(members[k].nonzero().flatten()), schedule, seed=k, progress=False)
        loop_acc.append(accuracy(predict_logits(model, test), test.targets))
    synchronize(device)
    loop_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    ens = Ensemble(factory, args.k, seed=0, device=device)
    fit_ensemble(ens, pool, members, schedule, seed=0)
    synchronize(device)
    ens_s = time.perf_counter() - t0
    logits = ens.predict(test)
    ens_acc = [accuracy(logits[k], test.targets) for k in range(args.k)]

    row = {"bench": "ulira_shadows", "net": args.net, "model_options": options, "dataset": args.dataset, "k": args.k, "pool": len(pool),
           "epochs": args.epochs, "batch_size": schedule.batch_size, "loop_s": loop_s, "ensemble_s": ens_s,
           "loop_models_per_s": args.k / loop_s, "ensemble_models_per_s": args.k / ens_s,
           "speedup": loop_s / ens_s, "loop_test_acc": sum(loop_acc) / args.k,
           "ensemble_test_acc": sum(ens_acc) / args.k, "device": str(device), "threads": torch.get_num_threads(),
           "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
           "code_version": code_version()}
    print(f"{args.k} × {args.net} on halves of {len(pool)} {args.dataset} images, {args.epochs} epochs, {device}")
    print(f"loop      {loop_s:8.1f} s  {row['loop_models_per_s']:.3f} models/s  test acc {row['loop_test_acc']:.2f}%")
    print(f"ensemble  {ens_s:8.1f} s  {row['ensemble_models_per_s']:.3f} models/s  test acc "
          f"{row['ensemble_test_acc']:.2f}%")
    print(f"speed-up  {row['speedup']:.2f}×")
    append_row(args.results, row)
    print(json.dumps({k: row[k] for k in ("speedup", "device", "threads", "code_version")}))


if __name__ == "__main__":
    sys.exit(run_cli(main))
