#!/usr/bin/env python
"""How fast SSD is, relative to the cheapest thing it could be: plain forward+backward passes.

ConvNet on real MNIST, forgetting one digit (full class), on CPU with 2 threads:

* ssd / pass(D, Df): the registered `ssd` method end to end (importances on D = the
  training set and on Df, dampening) ÷ one plain forward+backward pass (batch-mean
  cross-entropy, `loss.backward()`) over the same batches: D then Df.
* ssd cached / pass(Df): the same with D's importances already in the cache ÷ one plain
  pass over Df.
* sample / batch: exact per-sample Fisher ÷ the authors' batch estimate, on a subset.

Each figure is the minimum over `--repeats` interleaved repeats (other processes may share
the machine; the load average is recorded). Results are printed and appended to
results/bench_ssd.jsonl.

    .venv/bin/python scripts/bench_ssd.py
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from datasets import ImageData, dataset_info, load_dataset  # noqa: E402
from datasets.mnist import unpack_shared_mnist  # noqa: E402
from models import build_model  # noqa: E402
from ssd.errors import run_cli  # noqa: E402
from ssd.importance import compute_importances  # noqa: E402
from ssd.methods.ssd_methods import SSDConfig, run_ssd  # noqa: E402
from ssd.splits import Splits, make_splits  # noqa: E402
from ssd.utils import code_version, sha256_tensors  # noqa: E402


def plain_pass(model: nn.Module, parts: Sequence[ImageData], batch_size: int) -> None:
    """What any gradient method pays at least: forward, batch-mean CE, backward, per batch."""
    model.eval()  # as SSD measures (ConvNet has no BatchNorm/Dropout, so it changes nothing)
    for data in parts:
        for x, y in data.batches(batch_size):
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
    model.zero_grad(set_to_none=True)


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def load_net(checkpoint: Path) -> tuple[nn.Module, str]:
    """The trained ConvNet if there is one (timings do not depend on the weights' values)."""
    if checkpoint.is_file():
        from ssd.checkpoint import load_model

        model, meta = load_model(checkpoint)
        return model, meta["sha256"]
    torch.manual_seed(0)
    model = build_model("ConvNet", dataset_info("MNIST"))
    return model, sha256_tensors(model.state_dict())


def bench(splits: Splits, model: nn.Module, sha: str, args: argparse.Namespace, cache_dir: Path) -> dict[str, object]:
    bs = args.batch_size
    cfg = SSDConfig(batch_size=bs, order=args.order)
    cached_cfg = SSDConfig(batch_size=bs, order=args.order, cache_dir=str(cache_dir))
    splits.context["checkpoint_sha256"] = sha
    run_ssd(copy.deepcopy(model), splits, cached_cfg)  # fills the cache (and warms up)
    g = torch.Generator().manual_seed(0)
    sub = splits.train.subset(torch.randperm(len(splits.train), generator=g)[: args.sample_n])

    def ssd_run(c: SSDConfig) -> Callable[[], object]:
        return lambda: run_ssd(copy.deepcopy(model), splits, c)  # the copy (0.4 MB) is timed too, as a caller pays it

    cases: dict[str, Callable[[], object]] = {
        "pass_d_df": lambda: plain_pass(model, [splits.train, splits.forget], bs),
        "ssd": ssd_run(cfg),
        "pass_df": lambda: plain_pass(model, [splits.forget], bs),
        "ssd_cached": ssd_run(cached_cfg),
        "imp_batch_sub": lambda: compute_importances(model, sub, mode="batch", batch_size=bs),
    }
    for chunk in args.chunks:
        cases[f"imp_sample_sub_c{chunk}"] = (
            lambda chunk=chunk: compute_importances(model, sub, mode="sample", chunk_size=chunk))
    for fn in cases.values():  # warm-up: oneDNN builds its kernels for each new shape once
        fn()
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(args.repeats):
        for name, fn in cases.items():
            times[name].append(timed(fn))
    best = {k: min(v) for k, v in times.items()}
    sample_best = min((best[f"imp_sample_sub_c{c}"], c) for c in args.chunks)
    return {
        "times_s": times, "best_s": best,
        "ratio_ssd_over_pass": best["ssd"] / best["pass_d_df"],
        "ratio_ssd_cached_over_pass_df": best["ssd_cached"] / best["pass_df"],
        "ratio_sample_over_batch": {c: best[f"imp_sample_sub_c{c}"] / best["imp_batch_sub"] for c in args.chunks},
        "ratio_sample_over_batch_best": sample_best[0] / best["imp_batch_sub"], "best_chunk": sample_best[1],
        "default_chunk": SSDConfig().chunk_size,
    }


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="SSD timing ratios on MNIST (ConvNet, CPU)")
    ap.add_argument("--data-root", default=str(REPO / "data"))
    ap.add_argument("--checkpoint", default=str(REPO / "checkpoints" / "ssd-sweep" / "ConvNet-MNIST-seed0" / "best.pt"))
    ap.add_argument("--forget-class", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--order", default=SSDConfig().order)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sample-n", type=int, default=6000, help="samples for the sample/batch comparison")
    ap.add_argument("--chunks", nargs="+", default=["32,64,128"], help="32,64 or 32 64")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(REPO / "results" / "bench_ssd.jsonl"))
    args = ap.parse_args(argv)
    from ssd.cli import split_list

    args.chunks = [int(c) for c in split_list(args.chunks)]
    torch.set_num_threads(args.threads)

    root = unpack_shared_mnist(Path(args.data_root))
    train, test = load_dataset("MNIST", train=True, root=root), load_dataset("MNIST", train=False, root=root)
    splits = make_splits("full_class", train, test, forget_class=args.forget_class)
    model, sha = load_net(Path(args.checkpoint))
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench_ssd_cache_") as tmp:
        res = bench(splits, model, sha, args, Path(tmp))
    record = {
        "time_utc": datetime.now(UTC).isoformat(timespec="seconds"), "code_version": code_version(),
        "torch": torch.__version__, "threads": args.threads, "device": "cpu", "net": "ConvNet",
        "dataset": "MNIST", "n_d": len(splits.train), "n_df": len(splits.forget), "batch_size": args.batch_size,
        "order": args.order, "sample_n": args.sample_n, "repeats": args.repeats,
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(), **res,
    }
    b = res["best_s"]
    assert isinstance(b, dict)
    print(f"D = {len(splits.train)} images, Df = {len(splits.forget)} (digit {args.forget_class}), batch "
          f"{args.batch_size}, order {args.order}, {args.threads} threads, load avg {load_before[0]:.2f}")
    print(f"plain pass over D + Df   {b['pass_d_df']:7.2f} s   ssd            {b['ssd']:7.2f} s   "
          f"ratio {res['ratio_ssd_over_pass']:.3f}  (target ≤ 1.1)")
    print(f"plain pass over Df       {b['pass_df']:7.2f} s   ssd, D cached  {b['ssd_cached']:7.2f} s   "
          f"ratio {res['ratio_ssd_cached_over_pass_df']:.3f}  (target ≤ 1.5)")
    ratios = res["ratio_sample_over_batch"]
    assert isinstance(ratios, dict)
    print(f"importances on {args.sample_n} images: batch {b['imp_batch_sub']:.2f} s; sample "
          + ", ".join(f"chunk {c}: {b[f'imp_sample_sub_c{c}']:.2f} s ({r:.2f}×)" for c, r in ratios.items())
          + "  (target ≤ 4×)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:
        f.write(json.dumps(record) + "\n")
    print(f"appended to {out}")


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
