"""Pretrain a model on a dataset; the authors' command line works verbatim:

    python pretrain_model.py -net ResNet18 -dataset Cifar100 -classes 100 -gpu -b 64 -warm 1 -lr 0.1

Schedules (epochs, milestones, optimiser) come from configs/schedules.toml.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ssd.errors import UserError, run_cli


def build_parser() -> argparse.ArgumentParser:
    from ssd.cli import HelpFormatter, add_precision_flags

    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter, allow_abbrev=False,
                                epilog="example (no download needed: Digits is bundled):\n"
                                       "  python pretrain_model.py -net ConvNet -dataset Digits --device cpu")
    p.add_argument("-net", required=True, help="model name (ResNet18, ViT, SmallViT, ConvNet)")
    p.add_argument("-dataset", required=True, help="dataset name (Cifar10, Cifar100, Cifar20, MNIST, Digits, ...)")
    p.add_argument("-classes", type=int, default=None, help="number of classes (checked against the dataset)")
    p.add_argument("-gpu", action="store_true", help="train on cuda (same as --device cuda)")
    p.add_argument("-b", type=int, default=None, help="batch size (default: the schedule's)")
    p.add_argument("-warm", type=int, default=None, help="warm-up epochs (default: the schedule's)")
    p.add_argument("-lr", type=float, default=None, help="base learning rate (default: the schedule's)")
    p.add_argument("--epochs", type=int, default=None, help="override the schedule's epoch count")
    p.add_argument("--data-root", default=None, help="data folder (default: $SSD_DATA_ROOT or ./data)")
    p.add_argument("--download", action="store_true", help="download the dataset if it is missing")
    p.add_argument("--out", default=None, help="checkpoint folder (default: checkpoints/NET-DATASET-seedSEED)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initialisation and the batch order")
    p.add_argument("--device", default=None, help="torch device, e.g. cpu, cuda, cuda:1")
    add_precision_flags(p)
    p.add_argument("--pretrained", default=None, help="local folder of ImageNet weights for ViT")
    p.add_argument("--width", type=int, default=None, help="ResNet18 base width (default 64, the paper's)")
    p.add_argument("--train-subset", type=int, default=None, help="train on a class-balanced subset of N images")
    p.add_argument("--test-subset", type=int, default=None, help="score on a class-balanced subset of N test images")
    p.add_argument("--no-progress", action="store_true", help="hide the per-epoch progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> float:
    args = build_parser().parse_args(argv)
    import datasets
    from ssd.train import default_out_dir, pretrain
    from ssd.utils import resolve_device

    info = datasets.dataset_info(args.dataset)
    if args.classes is not None and args.classes != info.num_classes:
        raise UserError(f"-classes {args.classes} does not match {args.dataset}, which has {info.num_classes} classes")
    device = resolve_device(args.device, gpu=args.gpu)
    out = args.out or default_out_dir(args.net, args.dataset, args.seed)
    result = pretrain(
        args.net, args.dataset, data_root=args.data_root, download=args.download, epochs=args.epochs,
        batch_size=args.b, lr=args.lr, warm=args.warm, seed=args.seed, device=device, out=out,
        pretrained=args.pretrained, progress=not args.no_progress,
        model_options={} if args.width is None else {"width": args.width},
        train_subset=args.train_subset, test_subset=args.test_subset,
        precision=args.precision, channels_last=args.channels_last,
    )
    print(f"test accuracy: {result.test_acc:.2f}% (best {result.best_acc:.2f}%)  checkpoints: {out}/best.pt, last.pt")
    return result.test_acc


if __name__ == "__main__":
    sys.exit(run_cli(main))
