"""torch CPU threads: one against several on the harness's usual CPU work; a benchmark, not a test.

    python scripts/bench_threads.py                      # threads 1 and 2, 3 alternating rounds
    python scripts/bench_threads.py --threads 1,2 --rounds 5

Each round times, once per thread count (alternating, so both see the same load), the work a
CPU suite spends its time on: training epochs of the Digits ConvNet (the quick suite) and of a
width-8 ResNet18 on 28×28 images (the cpu-paper grid), and one SSD importance pass of the
ResNet. Prints seconds per thread count with the load average around each measurement and the
ratio to one thread; appends one JSON line per round to --results. Chose the harness's default
(`ssd.cli.DEFAULT_THREADS`) from these figures: docs/measurements.md, "Threads".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from datasets import dataset_info, load_dataset  # noqa: E402
from models import build_model  # noqa: E402
from ssd.utils import code_version  # noqa: E402


def work(seed: int = 0) -> None:
    """The fixed workload (same data and seeds every call)."""
    torch.manual_seed(seed)
    digits = load_dataset("Digits", train=True)
    net = build_model("ConvNet", digits.info).train()
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(5):
        for x, y in digits.batches(128, shuffle=True, generator=gen):
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    info = dataset_info("FashionMNIST")
    res = build_model("ResNet18", info, width=8).train()
    opt = torch.optim.SGD(res.parameters(), lr=0.05, momentum=0.9)
    x_all = torch.randn(512, 1, 28, 28, generator=gen)
    y_all = torch.randint(0, 10, (512,), generator=gen)
    for i in range(0, 512, 64):
        loss = F.cross_entropy(res(x_all[i:i + 64]), y_all[i:i + 64])
        opt.zero_grad()
        loss.backward()
        opt.step()
    res.eval()
    imp = [torch.zeros_like(p) for p in res.parameters()]
    for i in range(0, 512, 64):  # SSD's importance pass: squared gradients of the batch-mean loss
        res.zero_grad()
        F.cross_entropy(res(x_all[i:i + 64]), y_all[i:i + 64]).backward()
        for acc, p in zip(imp, res.parameters(), strict=True):
            acc += p.grad.detach() ** 2


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", default="1,2", help="thread counts to compare, e.g. 1,2")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--results", default="results/bench_threads.jsonl")
    args = p.parse_args(argv)
    counts = [int(t) for t in args.threads.split(",")]
    work()  # warm-up: imports, first allocations
    for r in range(args.rounds):
        row: dict = {"bench": "threads", "round": r, "code_version": code_version(), "host": platform.node(),
                     "cpus": os.cpu_count(), "seconds": {}, "load_before": {}}
        for n in counts:
            torch.set_num_threads(n)
            row["load_before"][n] = round(os.getloadavg()[0], 2)
            t0 = time.perf_counter()
            work()
            row["seconds"][n] = round(time.perf_counter() - t0, 3)
        base = row["seconds"][counts[0]]
        print(f"round {r}: " + "  ".join(f"{n} thread(s) {s:.2f} s (load {row['load_before'][n]:.1f}, "
                                         f"×{s / base:.2f})" for n, s in row["seconds"].items()))
        Path(args.results).parent.mkdir(parents=True, exist_ok=True)
        with open(args.results, "a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
