"""Write a report folder (tables, figures, report.md, index.html) from results files.

    python scripts/make_report.py results/quick.jsonl [results/sweep.jsonl ...] --out reports/quick [--run RUN_KEY]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def main(argv: Sequence[str] | None = None) -> None:
    """Thin: parse flags, hand the files to `ssd.report.write_report`."""
    p = argparse.ArgumentParser(description="tables, figures and an index page from result rows")
    p.add_argument("results", nargs="+", help="JSON-lines results files (suite runs and/or sweeps)")
    p.add_argument("--out", required=True, help="report folder to write")
    p.add_argument("--run", default=None, metavar="RUN_KEY", help="the run the before/after figures show")
    p.add_argument("--suite", default=None, help="a suite (name or .toml) whose [method_notes] the page prints")
    p.add_argument("--scale", default=None, metavar="ROWS", help="the scale study's rows (configs/suites/scale.toml): "
                   "a paragraph after the claims on how SSD's retain cost and α change with scale")
    p.add_argument("--privacy", nargs="+", default=None, metavar="ROWS",
                   help="more results files whose privacy audits (U-LiRA, the class-level attack) the privacy "
                   "sections show beside the main rows' own, e.g. a grid's class cells re-run with an attack it "
                   "lacked; their other metrics stay out of the tables and claims")
    args = p.parse_args(argv)
    from ssd.errors import UserError
    from ssd.report import write_report

    missing = [f for f in [*args.results, *([args.scale] if args.scale else []), *(args.privacy or [])]
               if not Path(f).is_file()]
    if missing:
        raise UserError(f"no results file {', '.join(missing)}")
    notes = None
    if args.suite:
        from ssd.suite import load_suite

        notes = load_suite(args.suite).get("method_notes")
    index = write_report(args.results, args.out, run_key=args.run, notes=notes, scale_rows=args.scale,
                         privacy_rows=args.privacy)
    print(f"report: {index} (and {index.with_name('index.html')})")


if __name__ == "__main__":
    sys.path.insert(0, str(REPO_ROOT))
    from ssd.errors import run_cli

    sys.exit(run_cli(main))
