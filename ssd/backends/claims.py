"""Several suites on one results file split the grid: every job claims its unit (a grid cell —
one forget split, so its retrain runs before its other methods in one process — or a sweep)
before it runs. A unit another live driver holds is left to it; a dead driver's claim is
taken over (see ssd.results.claim). Rows are still written only by the driver, and the
results writer refuses a run key already recorded, so nothing is ever recorded twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ClaimedPayload:
    """A job's payload with the claim it must hold to run (several suites on one results file)."""

    spec: Any  # the job's own payload (named so a backend can still move it to its device)
    fn: Any  # the job's own function
    results: str
    unit: str  # a grid cell (one forget split: its retrain runs before its other methods) or a sweep
    key: str  # the job's run key (recorded already: nothing to do)
    owner: tuple[str, int]  # the driver that claims it (host, pid)


def run_claimed(session: Any, p: ClaimedPayload) -> list[dict[str, Any]]:
    """Run the job only if its cell is ours (or free): another live suite on the same results
    file holding the cell runs it instead, so each cell runs once and concurrent suites split the grid."""
    from ssd.results import claim

    if claim(p.results, p.unit, [p.key], owner=p.owner) != "ok":
        return []
    return p.fn(session, p.spec)


def claimed_jobs(jobs: list[Any], results: Path) -> list[Any]:
    """Every job wrapped to claim its unit (grid cell or sweep) before it runs; see `run_claimed`."""
    import dataclasses

    from ssd.backends.jobs import SweepPayload
    from ssd.results import me, run_key

    owner, out = me(), []
    for job in jobs:
        p = job.payload
        if isinstance(p, SweepPayload):
            unit = f"sweep-{job.key}"
        else:
            unit = "cell-" + run_key({"net": p.net, "checkpoint": p.weight_path, "task": p.task, "dataset": p.dataset,
                                      "forget_class": str(p.forget_class), "n_forget": p.n_forget, "seed": p.seed})
        out.append(dataclasses.replace(job, fn=run_claimed, payload=ClaimedPayload(
            p, job.fn, str(results), unit, job.key, owner)))
    return out
