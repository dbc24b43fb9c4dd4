"""Where a suite's jobs run: one registry of backends, all driven the same way.

    backend = make_backend("ray", cache_dir="cache", address=None)
    report = drive(jobs, backend, sink=lambda job, row: append_row(results, row))

`serial` runs the jobs one after another in this process (one shared Session); `ray`
fans them out as Ray tasks on a local Ray or an existing cluster. Backends only run jobs
and report outcomes; the driver writes every row (see ssd/backends/driver.py).
"""

from __future__ import annotations

from typing import Any

from ssd.backends.base import Backend, Job, Outcome, RunsFailed
from ssd.backends.driver import GridReport, drive
from ssd.backends.ray_backend import RayBackend
from ssd.backends.serial import SerialBackend
from ssd.registry import Registry

BACKENDS: Registry[type] = Registry("backend")
BACKENDS.add("serial", SerialBackend)
BACKENDS.add("ray", RayBackend)


def make_backend(name: str, **options: Any) -> Backend:
    """A backend by name; options a backend does not know are ignored (ray's address on serial)."""
    backend: Backend = BACKENDS.get(name)(**options)
    return backend


__all__ = ["BACKENDS", "Backend", "GridReport", "Job", "Outcome", "RunsFailed", "add_backend_args",
           "backend_from_args", "drive", "make_backend"]


def add_backend_args(p: Any) -> None:
    """The backend flags, shared by the suite and the sweep entry points (defined torch-free in
    ssd.cli so that `--help` is fast; the registry's names are checked against them in the tests)."""
    from ssd.cli import add_backend_flags

    add_backend_flags(p)


def backend_from_args(args: Any, cache_dir: str) -> Backend:
    return make_backend(args.backend, cache_dir=cache_dir, address=args.ray_address,
                        cpus_per_run=args.cpus_per_run, gpus_per_run=args.gpus_per_run)
