"""Appending N result rows: the old whole-file rewrite against the in-place append; a benchmark, not a test.

    python scripts/bench_results_append.py --rows 2080
    python scripts/bench_results_append.py --rows 500 --rows-from docs/results/cpu-paper/cpu-paper.jsonl

Both ways run in this one process on the same rows (real result rows, cycled, each with a fresh
run key), each into a fresh file in --work, under the same lock and with the same duplicate-key
check: "rewrite" is what `ssd.results.append_row` did before (read the file, check the key, write
a full copy and rename it), "append" is `append_row` now (one line, one write, one fsync). Prints
the seconds and bytes written of each, their ratios, and the cost of the last tenth of the rows
(where a rewrite is slowest); appends one JSON line to --results.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ssd.results import AlreadyRecorded, _parse, append_row, locked, read_rows  # noqa: E402
from ssd.utils import atomic_write_bytes, code_version  # noqa: E402


def rewrite_row(path: Path, row: dict) -> int:
    """The old append: under the lock, read everything, check the key, write a full copy, rename.
    Returns the bytes written."""
    line = (json.dumps(row, sort_keys=True, default=str) + "\n").encode()
    with locked(path):
        old = path.read_bytes()
        if row["run_key"] in _parse(old).keys():
            raise AlreadyRecorded(f"run {row['run_key']} is already recorded in {path}")
        if old and not old.endswith(b"\n"):
            old += b"\n"
        atomic_write_bytes(path, old + line)
    return len(old) + len(line)


def append(path: Path, row: dict) -> int:
    append_row(path, row)
    return len(json.dumps(row, sort_keys=True, default=str)) + 1


def timed(fn, path: Path, rows: list[dict]) -> dict:  # noqa: ANN001
    written, tail_start = 0, len(rows) - max(1, len(rows) // 10)
    t0 = time.perf_counter()
    t_tail = t0
    for i, row in enumerate(rows):
        if i == tail_start:
            t_tail = time.perf_counter()
        written += fn(path, row)
    end = time.perf_counter()
    assert len(read_rows(path, quiet=True)) == len(rows)
    return {"seconds": end - t0, "bytes_written": written, "file_bytes": path.stat().st_size,
            "last_tenth_ms_per_row": 1000 * (end - t_tail) / (len(rows) - tail_start)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=2080, help="rows to append (the paper grid: 2,080)")
    p.add_argument("--rows-from", default=str(REPO / "docs/results/cpu-paper/cpu-paper.jsonl"),
                   help="a results file whose rows are cycled as the payload")
    p.add_argument("--work", default=None, help="folder for the two files (default: a temporary folder)")
    p.add_argument("--results", default="results/bench_results_append.jsonl")
    args = p.parse_args(argv)
    source = read_rows(args.rows_from, quiet=True)
    if not source:
        sys.exit(f"{args.rows_from} has no rows to use as the payload; pass --rows-from FILE")
    rows = [{**r, "run_key": f"bench-{i}"} for i, r in zip(range(args.rows), itertools.cycle(source))]
    with tempfile.TemporaryDirectory(dir=args.work) as work:
        old = timed(rewrite_row, Path(work) / "rewrite.jsonl", rows)
        new = timed(append, Path(work) / "append.jsonl", rows)
    record = {"rows": args.rows, "row_bytes_mean": new["file_bytes"] / args.rows, "rewrite": old, "append": new,
              "time_ratio": old["seconds"] / new["seconds"], "bytes_ratio": old["bytes_written"] / new["bytes_written"],
              "last_tenth_ratio": old["last_tenth_ms_per_row"] / new["last_tenth_ms_per_row"],
              "rows_from": args.rows_from, "code_version": code_version(), "python": platform.python_version()}
    print(f"{args.rows} rows of {record['row_bytes_mean']:.0f} bytes on average")
    print(f"{'way':8} {'seconds':>9} {'MB written':>11} {'ms/row, last tenth':>19}")
    for name, r in (("rewrite", old), ("append", new)):
        print(f"{name:8} {r['seconds']:>9.2f} {r['bytes_written'] / 1e6:>11.1f} {r['last_tenth_ms_per_row']:>19.2f}")
    print(f"rewrite / append: time x{record['time_ratio']:.1f}, bytes x{record['bytes_ratio']:.0f}, "
          f"last tenth x{record['last_tenth_ratio']:.1f}")
    append_row(args.results, record)


if __name__ == "__main__":
    from ssd.errors import run_cli

    sys.exit(run_cli(main))
