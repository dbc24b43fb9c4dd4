#!/usr/bin/env python
"""α sweep of SSD on real MNIST (ConvNet, one forgotten digit) in both batch orders.

Prints a markdown table per order: forget-digit test accuracy, the worst drop of any
other digit, retain test accuracy (all other digits' test images) and the number of
selected weights. Importances are computed once per order; each α costs one dampening
and one evaluation (`ssd_sweep`).

    .venv/bin/python scripts/ssd_alpha_sweep.py   # unpacks MNIST into data/; pretrains into
                                                  # checkpoints/ssd-sweep/ if missing (a path no one else writes)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from datasets import load_dataset  # noqa: E402
from datasets.mnist import unpack_shared_mnist  # noqa: E402
from ssd.checkpoint import load_model  # noqa: E402
from ssd.errors import UserError, run_cli  # noqa: E402
from ssd.methods.ssd_methods import SSDConfig, ssd_sweep  # noqa: E402
from ssd.metrics import class_accuracy, predict_logits  # noqa: E402
from ssd.splits import make_splits  # noqa: E402

ALPHAS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)


def ensure_checkpoint(path: Path, data_root: Path, seed: int) -> Path:
    """Pretrain the ConvNet (its schedule: 3 epochs of Adam) when `path` does not exist."""
    if not path.is_file():
        from ssd.train import pretrain

        print(f"# pretraining ConvNet on MNIST into {path.parent}", file=sys.stderr)
        res = pretrain("ConvNet", "MNIST", data_root=data_root, seed=seed, out=path.parent, progress=False,
                       log=lambda s: print("#", s, file=sys.stderr))
        if res.best_path is None or res.best_path != path:
            raise UserError(f"pretraining wrote {res.best_path}, not {path}")
    return path


def per_class_accuracy(model: torch.nn.Module, images, num_classes: int) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """Percent correct per class over a test set."""
    return torch.tensor(class_accuracy(predict_logits(model, images), images.targets, num_classes))


def summarise(acc: torch.Tensor, base: torch.Tensor, forget: int, test_targets: torch.Tensor) -> dict[str, float]:
    """Forget-digit accuracy, worst other-digit drop, and retain test accuracy (sample-weighted)."""
    others = [c for c in range(len(acc)) if c != forget]
    counts = torch.bincount(test_targets.cpu(), minlength=len(acc)).float()
    retain = float((acc[others] * counts[others]).sum() / counts[others].sum())
    return {"forget_acc": float(acc[forget]), "worst_drop": float((base[others] - acc[others]).max()),
            "retain_acc": retain}


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--data-root", default=str(REPO / "data"))
    ap.add_argument("--checkpoint", default=str(REPO / "checkpoints" / "ssd-sweep" / "ConvNet-MNIST-seed0" / "best.pt"))
    ap.add_argument("--forget-class", type=int, default=2)
    ap.add_argument("--alphas", nargs="+", default=[",".join(f"{a:g}" for a in ALPHAS)], help="1,2,5 or 1 2 5")
    ap.add_argument("--lambda", "--lam", dest="lam", type=float, default=1.0, help="SSD dampening constant λ")
    ap.add_argument("--orders", nargs="+", default=["paper,shuffled"], help="paper,shuffled or paper shuffled")
    ap.add_argument("--mode", default="batch")
    ap.add_argument("--reference", default="full")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args(argv)
    from ssd.cli import split_list
    from ssd.sweep import parse_floats

    args.alphas, args.orders = parse_floats(args.alphas, "--alphas"), split_list(args.orders)
    args.lam = parse_floats(str(args.lam), "--lambda", positive=True)[0]  # finite and > 0, as the mains' --lambda
    torch.set_num_threads(args.threads)

    root = unpack_shared_mnist(Path(args.data_root))
    ckpt = ensure_checkpoint(Path(args.checkpoint), root, args.seed)
    model, meta = load_model(ckpt, device="cpu")
    train, test = load_dataset("MNIST", train=True, root=root), load_dataset("MNIST", train=False, root=root)
    splits = make_splits("full_class", train, test, forget_class=args.forget_class, seed=args.seed)
    base = per_class_accuracy(model, test, 10)
    print(f"ConvNet MNIST checkpoint {ckpt} (sha256 {meta['sha256'][:12]}), test acc "
          f"{float(predict_logits(model, test).argmax(1).eq(test.targets).float().mean()) * 100:.2f} %, "
          f"digit {args.forget_class} {float(base[args.forget_class]):.2f} %; "
          f"mode {args.mode}, reference {args.reference}, batch {args.batch_size}, λ = {args.lam}")

    def evaluate(m: torch.nn.Module) -> dict[str, float]:
        return summarise(per_class_accuracy(m, test, 10), base, args.forget_class, test.targets)

    all_rows = []
    for order in args.orders:
        cfg = SSDConfig(order=order, mode=args.mode, reference=args.reference, batch_size=args.batch_size,
                        seed=args.seed, lam=args.lam)
        d_data = splits.train if args.reference == "full" else splits.retain
        t0 = time.perf_counter()
        rows = ssd_sweep(model, d_data, splits.forget, cfg, args.alphas, [args.lam], evaluate)
        print(f"\norder = {order} ({time.perf_counter() - t0:.1f} s for {len(rows)} points)\n")
        print("| α | forget digit acc % | worst other-digit drop (pts) | retain test acc % | selected weights |")
        print("|---:|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['alpha']:g} | {r['forget_acc']:.2f} | {r['worst_drop']:.2f} | {r['retain_acc']:.2f} "
                  f"| {r['selected']} |")
            all_rows.append({"order": order, **{k: v for k, v in r.items() if k != "stats"}})
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(all_rows, indent=2))


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
