#!/usr/bin/env python
"""Wall time of one suite on the serial backend and on Ray, on this machine.

Each variant (serial with torch's default threads, serial with one torch thread, Ray with one
thread per worker) runs the whole suite from scratch in its own subprocess (a fresh results
file and cache folder in a temporary folder, so neither reuses the other's importances or
retrained references); the suite's checkpoints are pretrained first, outside the timing.
Rounds run the variants in turn (`--repeats`); the figure is the ratio within a round (the
machine is shared: the load average before and after is recorded). Results are printed
and appended to results/bench_backends.jsonl.

    .venv/bin/python scripts/bench_backends.py                 # the quick suite, 1 round
    .venv/bin/python scripts/bench_backends.py --seeds 0          # a third of it (one seed)
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from ssd.errors import UserError, run_cli  # noqa: E402
from ssd.results import append_row, read_rows  # noqa: E402
from ssd.utils import code_version  # noqa: E402


def suite_cmd(suite: str, results: Path, cache: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "ssd.suite", "--suite", suite, "--results", str(results), "--cache-dir", str(cache),
            "--no-report", "--no-progress", *extra]


# variant -> (backend, extra environment). torch's default in one process is one thread per core;
# Ray's workers run one thread each (--cpus-per-run 1), so "serial1" separates the two effects.
VARIANTS = {"serial": ("serial", {}), "serial1": ("serial", {"OMP_NUM_THREADS": "1"}), "ray": ("ray", {})}


def timed(cmd: list[str], extra_env: dict[str, str] | None = None) -> tuple[float, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), **(extra_env or {})}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise UserError(f"{' '.join(cmd[2:6])}… exited {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}")
    return wall, proc.stderr


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--suite", default="quick")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--cpus-per-run", default="1")
    p.add_argument("--variants", default="serial,serial1,ray",
                   help="serial (torch's default threads), serial1 (one torch thread), ray")
    p.add_argument("--seeds", default=None, help="passed to the suite (e.g. 0 for a third of the quick grid)")
    p.add_argument("--methods", default=None, help="passed to the suite")
    p.add_argument("--out", default=str(REPO / "results" / "bench_backends.jsonl"))
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench_backends_") as tmp:
        tmpdir = Path(tmp)
        print("[bench] pretraining the suite's checkpoints (untimed) ...", file=sys.stderr)
        timed(suite_cmd(args.suite, tmpdir / "warm.jsonl", tmpdir / "warm_cache", "--methods", "baseline",
                        "--seeds", "0", "--no-sweeps"))
        load_before = os.getloadavg()
        narrow = [*(["--seeds", args.seeds] if args.seeds else []), *(["--methods", args.methods] if args.methods else [])]
        rounds = []
        for r in range(args.repeats):
            times: dict[str, float] = {}
            counts: dict[str, int] = {}
            ray_line = ""
            for name in args.variants.split(","):
                backend, env = VARIANTS[name]
                res, cache = tmpdir / f"{name}{r}.jsonl", tmpdir / f"cache_{name}{r}"
                extra = ["--backend", backend] + (["--cpus-per-run", args.cpus_per_run] if backend == "ray" else [])
                times[name], err = timed(suite_cmd(args.suite, res, cache, *narrow, *extra), env)
                counts[name] = len(read_rows(res))
                if backend == "ray":
                    ray_line = next((ln for ln in err.splitlines() if re.match(r"\[ray\] \d+ jobs on", ln)), "")
                print(f"[bench] round {r + 1}: {name:7} {times[name]:7.1f} s  ({counts[name]} rows)", file=sys.stderr)
            first = next(iter(times))
            rounds.append({"seconds": {k: round(v, 2) for k, v in times.items()},
                           f"over_{first}": {k: round(v / times[first], 3) for k, v in times.items()},
                           "rows": counts, "ray_workers": ray_line})
        load_after = os.getloadavg()

    record = {"bench": "backends", "suite": args.suite, "seeds": args.seeds, "methods": args.methods, "time_utc": datetime.now(UTC).isoformat(timespec="seconds"),
              "code_version": code_version(), "cpus": os.cpu_count(), "cpus_per_run": float(args.cpus_per_run),
              "loadavg_before": [round(x, 2) for x in load_before], "loadavg_after": [round(x, 2) for x in load_after],
              "rounds": rounds}
    append_row(args.out, record)
    print(f"suite {args.suite} {' '.join(narrow)} on {os.cpu_count()} CPUs (load average before {load_before[0]:.1f}, "
          f"after {load_after[0]:.1f}):")
    for i, rd in enumerate(rounds, 1):
        ratios = next(v for k, v in rd.items() if k.startswith("over_"))
        print(f"  round {i}: " + ", ".join(f"{k} {v:.1f} s (×{ratios[k]:.2f})" for k, v in rd["seconds"].items())
              + f"; rows {rd['rows']}; {rd['ray_workers']}")
    print(f"appended to {args.out}")


if __name__ == "__main__":
    sys.exit(run_cli(main))
