"""Reports from result rows: paper-style tables, figures and an index page.

`write_report(paths_or_rows, out_dir, run_key=None)` is the one entry point the suite
and scripts/make_report.py call; the modules below it can be used alone.
"""

from __future__ import annotations

from ssd.report.page import write_report
from ssd.report.rows import load_rows

__all__ = ["load_rows", "write_report"]
