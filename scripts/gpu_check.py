"""The device check (issue 19): what the paper grid's cost model needs, measured on the device.

    scripts/gpu_check.sh --data /path/fashion-mnist.tar.xz --out DIR          (one H200: ≤ 8 min)
    scripts/gpu_check.sh --tiny --device cpu --data DIR --out DIR             (the test: seconds)

Phases, each with its own time limit and skipped (with the reason) when the time is spent:
env; throughput (ResNet18 width 64 and ViT-B/16, random init, in fp32/tf32/bf16 and
channels_last); syncs per step (torch.cuda.set_sync_debug_mode, CUDA only); SSD's time ÷ one
forward+backward over 60,000 images, cold and cached; ResNet18 on Fashion-MNIST through the
three tasks with the paper's methods (long ones capped); the U-LiRA ensemble against the
loop; the Ray backend with fractional GPUs (skipped when ray is not importable).
ONE summary file, DIR/gpu_check.json: every measurement, and under "text" the readable
lines printed as the check goes; its "rates" block prices a grid: `python -m ssd.suite
--suite paper --dry-run --rates DIR/gpu_check.json`. Only torch APIs that torch 2.11 has.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(1, str(REPO / "scripts"))

from gpu_check_phases import PHASES  # noqa: E402

# (phase, seconds on the device, seconds at --tiny): 445 s in all, inside gpu_check.sh's 470
LIMITS = {"env": (10, 10), "throughput": (110, 40), "estimate": (15, 15), "syncs": (30, 10), "ssd_ratio": (55, 20),
          "tasks": (150, 60), "ulira": (45, 20), "ray": (30, 20)}


class Check:
    """The summary, written after every phase (a killed check keeps what it measured)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.start = time.monotonic()
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.summary: dict[str, Any] = {"argv": sys.argv[1:], "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                        "budget_s": args.budget, "tiny": args.tiny, "phases": {}, "rates": {}, "text": []}
        self.path = self.out / "gpu_check.json"

    def say(self, line: str) -> None:
        print(line, flush=True)
        self.summary["text"].append(line)

    def left(self) -> float:
        return self.args.budget - (time.monotonic() - self.start)

    def write(self) -> None:
        self.summary["elapsed_s"] = round(time.monotonic() - self.start, 1)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.summary, indent=1, default=str))
        os.replace(tmp, self.path)

    def phase(self, name: str, fn: Callable[[Check, float], dict[str, Any]]) -> None:
        limit = LIMITS[name][1 if self.args.tiny else 0] * self.args.limit_scale
        if (self.args.only and name not in self.args.only.split(",")) or name in self.args.skip.split(","):
            return
        if self.left() < min(limit, 5):
            self.summary["phases"][name] = {"status": "skipped", "why": f"time ran out ({self.left():.0f} s left)"}
            self.say(f"[{name}] skipped: time ran out")
            self.write()
            return
        deadline = time.monotonic() + min(limit, self.left())
        self.say(f"[{name}] up to {min(limit, self.left()):.0f} s")
        t0 = time.monotonic()
        try:
            result = fn(self, deadline)
            status = result.pop("status", "ok")
            entry = {"status": status, **result}
        except KeyboardInterrupt:
            self.summary["phases"][name] = {"status": "interrupted", "seconds": round(time.monotonic() - t0, 1)}
            self.write()
            raise
        except Exception as err:  # one phase's failure is recorded; the others still run
            entry = {"status": "error", "error": f"{type(err).__name__}: {err}".splitlines()[0][:500],
                     "traceback": traceback.format_exc()[-2000:]}
            self.say(f"[{name}] error: {entry['error']}")
        entry["seconds"] = round(time.monotonic() - t0, 1)
        self.summary["phases"][name] = entry
        self.say(f"[{name}] {entry['status']} in {entry['seconds']} s")
        self.write()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="The device check (docs/gpu.md).")
    p.add_argument("--data", default=None, help="Fashion-MNIST: the .tar.xz archive or a folder holding FashionMNIST/raw")
    p.add_argument("--out", default="gpu_check_out", help="folder for gpu_check.json (and unpacked data)")
    p.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    p.add_argument("--budget", type=float, default=None, help="seconds in all (default 450; --tiny 200)")
    p.add_argument("--precision", default=None, choices=("fp32", "tf32", "bf16"),
                   help="the runs' precision in the ssd_ratio and tasks phases (default: the harness's, tf32 on CUDA)")
    p.add_argument("--tiny", action="store_true", help="tiny sizes (the CPU test): width 8, small data, short phases")
    p.add_argument("--only", default=None, help="comma-separated phases to run (default: all)")
    p.add_argument("--skip", default="", help="comma-separated phases to leave out")
    p.add_argument("--limit-scale", type=float, default=1.0,
                   help="multiply every phase's time limit (the CPU test on a loaded machine)")
    args = p.parse_args(argv)
    if args.budget is None:
        args.budget = 200.0 if args.tiny else 450.0
    import torch

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    check = Check(args)
    check.say(f"gpu_check on {args.device}, budget {args.budget:.0f} s, tiny={args.tiny}")
    try:
        for name, fn in PHASES:
            check.phase(name, fn)
    except KeyboardInterrupt:
        check.say("interrupted (time limit of gpu_check.sh): the summary holds the phases that ended")
    finally:
        check.summary["finished"] = True
        check.write()
    check.say(f"summary: {check.path}")
    check.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
