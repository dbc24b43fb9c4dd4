"""Ray on GPUs, with the assignment faked (no GPU, no Ray cluster): each task runs on the GPU Ray
assigned *it*, a reused worker never stays on the GPU of its first task, a context that cannot
reach the assigned GPU refuses to run, memory is handed back between tasks, fractional GPUs
share one device, and missing checkpoints are pretrained as backend jobs.

The old worker ran every CUDA task on `cuda:0` and relied on Ray rewriting CUDA_VISIBLE_DEVICES
per task; a CUDA context is made once per process, so a reused worker (max_calls=0) kept the GPU
of its first task while Ray assigned it another: two runs on one GPU, one idle. Each test below
fails on that code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import torch

ray = pytest.importorskip("ray", reason="ray is not installed (pip install -r requirements.txt)")

from ssd.backends import Job, ray_backend  # noqa: E402
from ssd.backends.ray_backend import NOSET, RayBackend, _remote_execute  # noqa: E402


@dataclass(frozen=True)
class Payload:
    device: str


class FakeContext:
    def get_assigned_resources(self) -> dict[str, float]:
        return {"CPU": 1.0}


@pytest.fixture
def worker(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Any:
    """A fresh fake worker process: `run(gpu_ids, env)` runs one CUDA task as Ray would after
    assigning `gpu_ids` (and, when `env` is given, rewriting CUDA_VISIBLE_DEVICES to it);
    returns (the device the job saw, its outcome)."""
    monkeypatch.setattr(ray_backend, "_SESSIONS", {})
    monkeypatch.setattr(ray_backend, "_CUDA_VISIBLE_AT_INIT", [])
    monkeypatch.setattr(ray, "get_runtime_context", lambda: FakeContext())
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    ctx = {"cwd": str(tmp_path), "cache_dir": str(tmp_path / "cache")}
    seen: list[str] = []

    def fn(_session: Any, payload: Payload) -> list[dict[str, Any]]:
        seen.append(payload.device)
        return [{"run_key": payload.device}]

    def run(gpu_ids: list[Any], env: str | None = None) -> tuple[str | None, Any]:
        monkeypatch.setattr(ray, "get_gpu_ids", lambda: list(gpu_ids))
        if env is not None:
            monkeypatch.setenv("CUDA_VISIBLE_DEVICES", env)
        before = len(seen)
        outcome = _remote_execute(Job(key="k", label="k", cell="c", fn=fn, payload=Payload("cuda"), device="cuda"),
                                  ctx)
        return (seen[-1] if len(seen) > before else None), outcome

    return run


def test_reused_worker_runs_each_task_on_its_own_gpu(worker: Any) -> None:
    """Ray does not rewrite CUDA_VISIBLE_DEVICES (the backend's worker environment): the context
    sees every GPU and each task picks its own; fractional GPUs share one. Old: cuda:0 every time."""
    assert [worker([0])[0], worker([1])[0], worker([1])[0], worker([0])[0]] == ["cuda:0", "cuda:1", "cuda:1", "cuda:0"]


def test_gpu_ids_are_mapped_through_the_nodes_visible_list(worker: Any) -> None:
    """A node started with CUDA_VISIBLE_DEVICES=2,3: Ray reports physical id "3", which is cuda:1 here."""
    assert worker(["3"], env="2,3")[0] == "cuda:1"
    assert worker(["2"])[0] == "cuda:0"


def test_a_stale_context_refuses_to_run(worker: Any) -> None:
    """If Ray did rewrite CUDA_VISIBLE_DEVICES per task (the worker environment lost), a context
    made for GPU 0 cannot reach GPU 1: the job fails in one line instead of running on GPU 0."""
    assert worker(["0"], env="0")[0] == "cuda:0"
    device, outcome = worker(["1"], env="1")
    assert device is None and outcome.status == "failed" and "stale" in outcome.error


def test_memory_is_freed_between_tasks(worker: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The allocator's cache is emptied around every task, and checkpoints a worker loaded for
    the GPU it left are dropped from its session. Old: never."""
    emptied: list[int] = []
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(1))
    worker([0])
    assert len(emptied) >= 1
    session = next(iter(ray_backend._SESSIONS.values()))
    session._models[("ckpt.pt", "ResNet18", "Cifar10", "cuda:0")] = (torch.nn.Linear(1, 1), {})
    session._models[("ckpt.pt", "ResNet18", "Cifar10", "cuda:1")] = (torch.nn.Linear(1, 1), {})
    session.ulira_shadows[("ResNet18", "Cifar10", None, 100, "cuda:0", "settings", "arch")] = object()
    n = len(emptied)
    worker([1])
    assert [k[3] for k in session._models] == ["cuda:1"] and len(emptied) >= n + 2
    assert not session.ulira_shadows  # shadow ensembles on the GPU it left go too


@pytest.mark.parametrize("gpus", [1.0, 0.5])
def test_tasks_carry_the_worker_environment(gpus: float) -> None:
    """Every task asks for workers that keep their node's CUDA_VISIBLE_DEVICES (on a Ray this
    backend did not start too), with the fraction of a GPU asked for. Old: no such environment."""
    backend = RayBackend(gpus_per_run=gpus)
    opts = backend._resources(Job(key="k", label="k", cell="c", fn=print, payload=None, device="cuda"))
    assert opts["num_gpus"] == gpus and opts["runtime_env"]["env_vars"] == {NOSET: "1"}


def test_missing_checkpoints_are_pretrained_as_backend_jobs(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A suite's missing checkpoint is a job of the suite's backend (on Ray: a task on the GPU it
    is assigned, side by side with the others), not a loop on the driver before the fan-out."""
    from ssd import backends
    from ssd.backends.serial import SerialBackend
    from ssd.suite import run_suite

    labels: list[str] = []

    class Recording(SerialBackend):
        def run(self, jobs: Any) -> Any:
            labels.extend(j.label for j in jobs)
            yield from super().run(jobs)

    monkeypatch.setattr(backends, "backend_from_args", lambda args, cache_dir: Recording(cache_dir))
    ckpt = tmp_path / "ckpt" / "best.pt"
    suite = tmp_path / "s.toml"
    suite.write_text(f"""
results = "{tmp_path / 's.jsonl'}"
seeds = [0]
methods = ["baseline"]
nets = ["ConvNet"]
retain_eval_size = 100
pretrain_epochs = 1
[[tasks]]
task = "full_class"
dataset = "Digits"
classes = ["2"]
[checkpoints]
"ConvNet/Digits" = "{ckpt}"
""")
    rows = run_suite(["--suite", str(suite), "--cache-dir", str(tmp_path / "cache"), "--no-progress", "--no-report"])
    assert labels[0] == "pretrain ConvNet Digits" and ckpt.is_file() and len(rows) == 1
