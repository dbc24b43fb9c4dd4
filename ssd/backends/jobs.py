"""The jobs a suite hands to a backend: one grid cell (`run_cell`, module-level so a remote
worker imports it by name) and the payload of one α/λ sweep (`SweepPayload`; its job and
function live in ssd/sweep.py, which drives backends: backends never import the sweep)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ssd.backends.base import Job, Row


def run_cell(session: Any, spec: Any) -> list[Row]:
    """One grid cell. Long methods (fisher, NTK, retraining) show their own progress bars when
    stderr is a terminal, unless the suite was given --no-progress (it sets SSD_NO_PROGRESS)."""
    import os
    import sys

    from ssd.experiment import run_one

    progress = sys.stderr.isatty() and not os.environ.get("SSD_NO_PROGRESS")
    return [run_one(spec, session, progress=progress)]


@dataclass(frozen=True)
class SweepPayload:
    spec: Any  # ssd.experiment.RunSpec
    alphas: tuple[float, ...]
    lambdas: tuple[float, ...] = (1.0,)
    methods: tuple[str, ...] = ("ssd",)
    baseline_alphas: tuple[float, ...] | None = None
    suite_sweep: str | None = None  # the suite's id for this sweep, stored in every row
    done: frozenset[str] = frozenset()  # run keys of points already recorded: not computed again (resume)


def _split_of(spec: Any) -> tuple[Any, ...]:
    """What decides a run's forget/retain split (and so its retrained reference)."""
    return (spec.net, spec.weight_path, spec.task, spec.dataset, str(spec.forget_class), spec.n_forget, spec.seed,
            spec.retain_eval_size, spec.data_root)


def cell_label(spec: Any) -> str:
    """A grid cell's name (task, dataset, class, method): jobs' cells and the suite's refusals."""
    from ssd.experiment import METHOD_ALIASES

    return f"{spec.task} {spec.dataset} {spec.forget_class or ''} {METHOD_ALIASES.get(spec.method, spec.method)}"


def grid_jobs(specs: Sequence[Any], keys: Sequence[str]) -> list[Job]:
    """One job per grid cell. Every other method of a split waits for that split's retrain
    when it is among `specs`, so its activation distance to the retrained model is scored
    whatever the backend's order (the serial order already has retrain first)."""
    from ssd.experiment import METHOD_ALIASES

    def method(s: Any) -> str:
        return METHOD_ALIASES.get(s.method, s.method)

    retrains = {_split_of(s): k for s, k in zip(specs, keys, strict=True) if method(s) == "retrain"}
    jobs = []
    for s, k in zip(specs, keys, strict=True):
        cell = cell_label(s)
        jobs.append(Job(key=k, label=f"{cell} s{s.seed}", cell=cell, fn=run_cell, payload=s, device=s.device,
                        after=None if method(s) == "retrain" else retrains.get(_split_of(s))))
    return jobs
