"""The driver side of any backend: one progress bar, the rows written as jobs end, a summary.

Only this process writes: each finished job's rows go through `sink` (the suite appends
them to its results file) the moment the backend reports the job over, so a killed
driver loses at most the jobs in flight, and a restart — which skips every run key
already in the results file — completes the grid with each run written once.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from tqdm import tqdm

from ssd.backends.base import Backend, Job, Row, RunsFailed


@dataclass
class GridReport:
    done: int = 0
    refused: dict[str, str] = field(default_factory=dict)  # cell -> why (once per cell)
    failed: dict[str, str] = field(default_factory=dict)  # job label -> one-line error

    def raise_if_failed(self) -> None:
        if self.failed:
            raise RunsFailed(f"{len(self.failed)} run(s) failed (listed above); the rest of the grid was written. "
                             "Fix the cause and re-run the same command: only the missing runs run")


def drive(jobs: Sequence[Job], backend: Backend, sink: Callable[[Job, Row], None], *, progress: bool = True,
          failures_log: str | Path | None = None, desc: str = "suite") -> GridReport:
    """Run `jobs` on `backend`; `sink(job, row)` gets each row of each job that succeeded."""
    report = GridReport()
    running = 0
    bar = tqdm(total=len(jobs), desc=desc, disable=not progress, file=sys.stderr, dynamic_ncols=True)
    try:
        for kind, job, outcome in backend.run(jobs):
            if kind == "start":
                running += 1
            else:
                assert outcome is not None
                running -= 1
                bar.update(1)
                if outcome.status == "done":
                    for row in outcome.rows:
                        sink(job, row)
                    report.done += 1
                elif outcome.status == "refused":  # e.g. ntk on a model too large: say so once per cell
                    if job.cell not in report.refused:
                        tqdm.write(f"[{desc}] skipped {job.cell}: {outcome.error}", file=sys.stderr)
                    report.refused[job.cell] = outcome.error
                else:
                    report.failed[job.label] = outcome.error
                    tqdm.write(f"[{desc}] FAILED {job.label}: {outcome.error}", file=sys.stderr)
                    if failures_log is not None:
                        _log_failure(Path(failures_log), job, outcome.error, outcome.detail, outcome.worker)
            last = f" | {job.label}" if kind == "start" else ""
            bar.set_postfix_str(f"running {running} done {report.done} failed {len(report.failed)}{last}")
    finally:
        bar.close()
    return report


def _log_failure(path: Path, job: Job, error: str, detail: str, worker: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(f"=== {datetime.now(UTC).isoformat(timespec='seconds')} {job.label} (key {job.key}) on {worker}\n"
                f"{error}\n{detail.rstrip()}\n")
