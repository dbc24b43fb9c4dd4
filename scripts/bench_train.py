"""Training throughput (images/s) per model on the current device; a benchmark, not a test.

    python scripts/bench_train.py                       # every model at its usual input size
    python scripts/bench_train.py --nets ConvNet,ResNet18 --device cuda --batch-size 128

Runs a few warm-up steps, then times `--steps` SGD steps (forward, backward, update) on
random uint8 batches prepared exactly like the training loop's (normalise + augment on
the device). Prints a table and appends one JSON line per model to --results.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from datasets import dataset_info, prepare  # noqa: E402
from models import MODELS, build_model  # noqa: E402
from ssd.results import append_row  # noqa: E402
from ssd.schedules import count_params  # noqa: E402
from ssd.utils import code_version, resolve_device, synchronize  # noqa: E402

# The dataset each model is usually trained on here.
DEFAULT_DATA = {"ConvNet": "MNIST", "ResNet18": "Cifar10", "SmallViT": "Cifar10", "ViT": "Cifar10"}


def bench(net: str, dataset: str, device: torch.device, batch_size: int, steps: int, warmup: int) -> dict:
    info = dataset_info(dataset)
    torch.manual_seed(0)
    model = build_model(net, info).to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    shape = (batch_size, info.channels, info.image_size, info.image_size)
    images = torch.randint(0, 256, shape, dtype=torch.uint8, generator=gen).to(device)
    labels = torch.randint(0, info.num_classes, (batch_size,), generator=gen).to(device)

    def step() -> None:
        x = prepare(images, info, augment=True, generator=gen)
        loss = F.cross_entropy(model(x), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    synchronize(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    elapsed = time.perf_counter() - t0
    return {"net": net, "dataset": dataset, "params": count_params(model), "batch_size": batch_size,
            "steps": steps, "images_per_s": steps * batch_size / elapsed, "seconds": elapsed}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nets", nargs="+", default=[",".join(MODELS.names())], help="ConvNet,ResNet18 or ConvNet ResNet18")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=None, help="timed steps (default: 20 for ConvNet, else 3)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--results", default="results/bench_train.jsonl")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    env = {"device": str(device), "threads": torch.get_num_threads(), "torch": torch.__version__,
           "cpu": platform.processor() or platform.machine(), "code_version": code_version(),
           "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}
    print(f"{'model':10} {'data':8} {'params':>11} {'batch':>5} {'images/s':>10}")
    from ssd.cli import split_list

    for net in split_list(args.nets):
        steps = args.steps or (20 if net == "ConvNet" else 3)
        row = bench(net, DEFAULT_DATA.get(net, "Cifar10"), device, args.batch_size, steps, args.warmup)
        print(f"{net:10} {row['dataset']:8} {row['params']:>11,} {row['batch_size']:>5} {row['images_per_s']:>10.1f}")
        append_row(args.results, {**row, **env})
    print(json.dumps(env))


if __name__ == "__main__":
    from ssd.errors import run_cli

    sys.exit(run_cli(main))
