"""The Ray backend: every job is a Ray task asking for the device it needs.

- Where: `address` (`--ray-address`), else `RAY_ADDRESS`, else a local Ray started for the
  run (and stopped after it). An existing cluster must see this repository, the data and
  the checkpoints at the same paths as the driver (a shared filesystem): workers import
  the code from the driver's repository path and resolve relative paths from its folder.
- Resources: `num_gpus=gpus_per_run` (and `cpus_per_run` CPUs) for a CUDA job;
  `num_cpus=cpus_per_run` for a CPU job, with torch using that many threads.
- GPUs: each task runs on the GPU Ray assigned *that task* (`ray.get_gpu_ids()`), resolved
  per task by :func:`task_device`. Ray is told not to rewrite CUDA_VISIBLE_DEVICES per task
  (RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES in the workers' environment), so a worker's
  CUDA context sees its node's GPUs for its whole life and a reused worker moves to
  `cuda:<k>` of its new assignment instead of staying on the GPU of its first task (with the
  per-task rewrite, a context made for GPU 0 still runs on GPU 0 when Ray assigns GPU 1: two
  runs on one GPU, one idle). An assignment the process's context cannot reach fails the job
  in one line rather than run on the wrong GPU. Fractional GPUs (`--gpus-per-run 0.5`) put
  two tasks, in two worker processes, on one `cuda:<k>`.
- Memory: between tasks a worker drops the checkpoints its Session holds on another device
  and returns cached blocks to the driver (gc + `torch.cuda.empty_cache()`), so a worker
  that moved keeps nothing on the GPU it left; retrained references stay on the CPU
  (ssd/experiment.py `Session`).
- Loaded data is reused: a worker process keeps one experiment Session for the whole run
  (Ray reuses worker processes, GPU ones too since the task says `max_calls=0`; safe because
  the device is resolved per task), so the cells it runs on one checkpoint and dataset load
  them once per worker, not once per run.
- At most as many tasks are in flight as the cluster has slots, so "running" in the
  progress bar means running; a job waits for its `after` job (a cell's retrain) to end.
- Only outcomes travel back; the driver writes the rows.
"""

from __future__ import annotations

import gc
import math
import os
import socket
import sys
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ssd.backends.base import Event, Job, Outcome, dependencies, execute, on_device
from ssd.errors import UserError, one_line
from ssd.utils import REPO_ROOT

_SESSIONS: dict[str, Any] = {}  # in each worker process: cache folder -> Session
_CUDA_VISIBLE_AT_INIT: list[tuple[str, ...] | None] = []  # what this process's CUDA context sees, once set
NOSET = "RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES"


def worker_env() -> dict[str, str]:
    """The workers' environment: the driver's import path, and Ray not rewriting
    CUDA_VISIBLE_DEVICES per task (see the module docstring)."""
    paths = [str(REPO_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths)), NOSET: "1"}


def task_device(device: str) -> str:
    """The torch device this task runs on: `device` for a CPU job; for a CUDA job, the GPU Ray
    assigned this task (its first id) as an index into the GPUs this process's CUDA context
    sees — CUDA_VISIBLE_DEVICES when the process first ran a CUDA task (the node's list, or
    all GPUs when unset). Raises when the assignment is not among them (a stale context)."""
    import ray

    if not device.startswith("cuda"):
        return device
    ids = [str(i) for i in ray.get_gpu_ids()]
    if not ids:
        raise RuntimeError("a CUDA job ran in a Ray task without a GPU assigned")
    if not _CUDA_VISIBLE_AT_INIT:  # the first CUDA task of this process: its context is made now
        env = os.environ.get("CUDA_VISIBLE_DEVICES")
        _CUDA_VISIBLE_AT_INIT.append(tuple(v.strip() for v in env.split(",")) if env else None)
    visible = _CUDA_VISIBLE_AT_INIT[0]
    if visible is None:
        return f"cuda:{int(ids[0])}"
    if ids[0] not in visible:
        raise RuntimeError(f"Ray assigned GPU {ids[0]} but this worker's CUDA context sees GPUs {','.join(visible)} "
                           f"(a stale context: was {NOSET} dropped from the workers' environment?)")
    return f"cuda:{visible.index(ids[0])}"


def free_device_memory(session: Any, keep: str | None) -> None:
    """Drop what `session` holds on any device but `keep` (checkpoints loaded for an earlier
    task's GPU), then return the CUDA allocator's cached blocks: a reused worker keeps nothing
    on a GPU it is no longer assigned, and fragments of one run do not crowd the next."""
    import torch

    if session is not None and hasattr(session, "drop_models"):
        session.drop_models(keep=keep)
    gc.collect()
    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def _remote_execute(job: Job, ctx: dict[str, Any]) -> Outcome:
    """Runs inside a Ray worker."""
    import ray
    import torch

    os.chdir(ctx["cwd"])
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    torch.set_num_threads(max(1, int(cpus)))
    session = _SESSIONS.get(ctx["cache_dir"])
    try:
        device = task_device(job.device)
    except RuntimeError as err:
        return Outcome("failed", error=one_line(err), worker=f"{socket.gethostname()}:{os.getpid()}")
    if device != job.device:
        job = replace(job, payload=on_device(job.payload, device), device=device)
    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.set_device(torch.device(device))  # libraries that use the current device follow it
    free_device_memory(session, keep=device)
    if session is None:
        from ssd.experiment import Session

        session = _SESSIONS[ctx["cache_dir"]] = Session(ctx["cache_dir"])
    try:
        return execute(job, session)
    finally:
        free_device_memory(None, keep=None)  # the run's own tensors are gone: its cached blocks too


def reachable(address: str, timeout: float = 5.0) -> None:
    """Raise ConnectionError when nothing accepts a TCP connection at a HOST:PORT address (also
    ray://HOST:PORT); "auto" and addresses without a port are left to Ray."""
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit() or not host:
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as err:
        raise ConnectionError(f"nothing answers at {hostport} ({one_line(err)})") from None


class RayBackend:
    name = "ray"

    def __init__(self, cache_dir: str | Path = "cache", address: str | None = None, cpus_per_run: float = 1.0,
                 gpus_per_run: float = 1.0, num_cpus: int | None = None, **_options: Any) -> None:
        if not (math.isfinite(cpus_per_run) and math.isfinite(gpus_per_run)) or cpus_per_run <= 0 \
                or gpus_per_run <= 0 or (gpus_per_run > 1 and gpus_per_run % 1):  # nan/inf passed "> 0" checks
            raise UserError(f"--cpus-per-run must be > 0 and --gpus-per-run a fraction ≤ 1 or a whole number, "
                            f"got {cpus_per_run} and {gpus_per_run}")
        self.cache_dir = str(cache_dir)
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.cpus_per_run, self.gpus_per_run, self.num_cpus = float(cpus_per_run), float(gpus_per_run), num_cpus
        self._ray: Any = None
        self._started = False
        self.workers: dict[str, int] = {}  # host:pid -> datasets its session held at the end

    def _connect(self) -> Any:
        if self._ray is not None:
            return self._ray
        try:
            import ray
        except ImportError:
            raise UserError("--backend ray needs the ray package: pip install -r requirements.txt") from None
        if not ray.is_initialized():
            opts: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                    "runtime_env": {"env_vars": worker_env()}}
            if self.address is None and self.num_cpus is not None:
                opts["num_cpus"] = self.num_cpus
            try:
                if self.address:
                    reachable(self.address)  # nothing listening: one line now, not minutes of Ray retrying
                ray.init(address=self.address or "local", **opts)  # "local": never a `ray start` cluster by chance
            except (ConnectionError, RuntimeError, ValueError) as err:
                raise UserError(f"cannot start or reach Ray at {self.address or 'a new local instance'} "
                                f"({one_line(err)[:200]}); check --ray-address / RAY_ADDRESS") from None
            self._started = True
        res = ray.cluster_resources()
        print(f"[ray] {'cluster ' + self.address if self.address else 'local Ray'}: {res.get('CPU', 0):g} CPUs, "
              f"{res.get('GPU', 0):g} GPUs", file=sys.stderr)
        self._ray = ray
        return ray

    def _resources(self, job: Job) -> dict[str, Any]:
        """The task's options: its resources, and the workers' environment (also on the task, so
        it holds on a Ray this backend did not start)."""
        env = {"runtime_env": {"env_vars": {NOSET: "1"}}}  # merged with the job's (its PYTHONPATH kept)
        if job.device.startswith("cuda"):
            return {"num_gpus": self.gpus_per_run, "num_cpus": self.cpus_per_run, **env}
        return {"num_cpus": self.cpus_per_run, **env}

    def _slots(self, job: Job) -> int:
        res = self._ray.cluster_resources()
        cpu_slots = max(1, int(res.get("CPU", 0) / self.cpus_per_run + 1e-9))
        if job.device.startswith("cuda"):
            n = int(res.get("GPU", 0) / self.gpus_per_run + 1e-9)
            if n == 0:
                raise UserError("the Ray cluster has no GPU for a CUDA run; add GPU nodes or use --device cpu")
            return min(n, cpu_slots)  # each CUDA run also holds --cpus-per-run CPUs
        return cpu_slots

    def run(self, jobs: Sequence[Job]) -> Iterator[Event]:
        if not jobs:
            return
        ray = self._connect()
        # 0: GPU workers are kept too (Ray's GPU default is 1): the device is resolved per task
        remote = ray.remote(max_calls=0)(_remote_execute)
        ctx = {"cwd": os.getcwd(), "cache_dir": self.cache_dir}
        free, waiting = dependencies(jobs)  # as the serial backend's order: a job waits for its `after`
        ready: deque[Job] = deque(free)
        inflight: dict[Any, Job] = {}
        slots, checked = self._slots(jobs[0]), time.monotonic()
        while ready or inflight:
            if time.monotonic() - checked > 10:  # a cluster can grow or shrink during a long grid
                slots, checked = self._slots(jobs[0]), time.monotonic()
            while ready and len(inflight) < slots:
                job = ready.popleft()
                inflight[remote.options(**self._resources(job)).remote(job, ctx)] = job
                yield "start", job, None
            if not inflight:  # only jobs waiting on a job that is not coming: run them now
                ready.extend(j for group in waiting.values() for j in group)
                waiting.clear()
                continue
            done, _ = ray.wait(list(inflight), num_returns=1, timeout=5.0)
            for ref in done:
                job = inflight.pop(ref)
                try:
                    outcome = ray.get(ref)
                except Exception as err:  # the worker died (out of memory, killed) after Ray's retries
                    outcome = Outcome("failed", error=f"{type(err).__name__}: {one_line(err)}"[:500], detail=str(err))
                if outcome.worker:
                    self.workers[outcome.worker] = max(self.workers.get(outcome.worker, 0), outcome.loaded)
                ready.extendleft(reversed(waiting.pop(job.key, [])))  # finish the cell first
                yield "end", job, outcome
        print(f"[ray] {len(jobs)} jobs on {len(self.workers)} worker processes; data splits loaded "
              f"{sum(self.workers.values())} times in all (each worker loads each train/test split it needs once)",
              file=sys.stderr)

    def close(self) -> None:
        if self._started and self._ray is not None:
            self._ray.shutdown()
        self._ray, self._started = None, False
