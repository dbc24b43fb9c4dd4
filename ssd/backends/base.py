"""What every backend shares: a job (one grid cell or one sweep), its outcome, and running one.

A backend takes a list of :class:`Job` and yields events as they happen —
``("start", job, None)`` when a job begins and ``("end", job, outcome)`` when it is
over — and never writes results itself: the driver (:func:`ssd.backends.driver.drive`)
appends the rows of each finished job, so a row is written exactly once, by one process.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ssd.errors import UserError, one_line

Row = dict[str, Any]


class RunsFailed(UserError):
    """Some jobs raised: the rest of the grid ran and was written; exit status 1."""

    exit_code = 1


@dataclass(frozen=True)
class Job:
    """One unit of work. `fn(session, payload)` returns result rows; it must be a module-level
    function (a remote worker imports it by name) and `payload` must pickle."""

    key: str  # the run key (or sweep id) the rows are written under
    label: str  # for people: "full_class Digits 2 ssd s0"
    cell: str  # the label without the seed: refusals are reported once per cell
    fn: Callable[[Any, Any], list[Row]]
    payload: Any
    device: str = "cpu"
    after: str | None = None  # a job key that must have ended first (the cell's retrain)


@dataclass
class Outcome:
    status: str  # "done" | "refused" (a UserError: e.g. ntk on a model too large) | "failed"
    rows: list[Row] = field(default_factory=list)
    error: str = ""  # one line
    detail: str = ""  # the traceback, for the failures log
    worker: str = ""  # host:pid that ran it
    loaded: int = 0  # datasets that worker's session holds after the job


Event = tuple[str, Job, Outcome | None]


class Backend(Protocol):
    name: str

    def run(self, jobs: Sequence[Job]) -> Iterator[Event]: ...

    def close(self) -> None: ...


def execute(job: Job, session: Any) -> Outcome:
    """Run one job in this process; an exception becomes an outcome, never escapes (Ctrl-C does)."""
    worker = f"{socket.gethostname()}:{os.getpid()}"
    try:
        rows = job.fn(session, job.payload)
    except UserError as err:
        return Outcome("refused", error=one_line(err), worker=worker)
    except Exception as err:  # one job's bug or crash must not stop the grid
        return Outcome("failed", error=f"{type(err).__name__}: {one_line(err)}"[:500],
                       detail=traceback.format_exc(), worker=worker)
    return Outcome("done", rows=rows, worker=worker, loaded=len(getattr(session, "_data", {})))


def dependencies(jobs: Sequence[Job]) -> tuple[list[Job], dict[str, list[Job]]]:
    """(the jobs free to start, in the given order; job key -> the jobs waiting for it to end, in
    order). A job waits only for an `after` that is in `jobs` (and is not itself). Both
    backends order from this: serial by :func:`dependency_order`, Ray as jobs end."""
    keys = {j.key for j in jobs}
    free: list[Job] = []
    waiting: dict[str, list[Job]] = {}
    for j in jobs:
        if j.after in keys and j.after != j.key:
            waiting.setdefault(j.after, []).append(j)
        else:
            free.append(j)
    return free, waiting


def dependency_order(jobs: Sequence[Job]) -> list[Job]:
    """`jobs` reordered so that each runs after its `after` (when that job is in the list), the
    jobs waiting for one right after it; otherwise the given order is kept."""
    free, waiting = dependencies(jobs)
    out: list[Job] = []

    def take(job: Job) -> None:
        out.append(job)
        for dep in waiting.pop(job.key, []):
            take(dep)

    for j in free:
        take(j)
    for rest in waiting.values():  # a cycle or a dangling chain: run them anyway, last
        out.extend(rest)
    return out


def on_device(payload: Any, device: str) -> Any:
    """The payload (a RunSpec, or a dataclass holding one as `spec`) with its device replaced."""
    if dataclasses.is_dataclass(payload) and not isinstance(payload, type):
        names = {f.name for f in dataclasses.fields(payload)}
        if "device" in names:
            return dataclasses.replace(payload, device=device)
        if "spec" in names:
            return dataclasses.replace(payload, spec=on_device(payload.spec, device))
    return payload
