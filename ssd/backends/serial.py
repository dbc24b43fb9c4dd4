"""The serial backend: one job after another in this process, sharing one experiment Session
(datasets, checkpoints and retrained references loaded once for the whole grid)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ssd.backends.base import Event, Job, dependency_order, execute


class SerialBackend:
    name = "serial"

    def __init__(self, cache_dir: str | Path = "cache", **_options: Any) -> None:
        self.cache_dir = Path(cache_dir)
        self._session: Any = None

    def run(self, jobs: Sequence[Job]) -> Iterator[Event]:
        if self._session is None:
            from ssd.experiment import Session

            self._session = Session(self.cache_dir)
        for job in dependency_order(jobs):
            yield "start", job, None
            yield "end", job, execute(job, self._session)

    def close(self) -> None:
        self._session = None
