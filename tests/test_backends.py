"""Backends: the Ray grid writes the same rows as the serial one, exactly once across a killed
driver, and one failing run does not stop the others; shared caches survive concurrent writers."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from backend_helpers import echo_or_raise

from datasets import dataset_info
from models import build_model
from ssd.backends import Job, RunsFailed, drive, make_backend
from ssd.backends.base import dependency_order
from ssd.checkpoint import read_checkpoint, save_checkpoint
from ssd.results import read_rows

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent


def _ray_processes(session_dir: str) -> list[int]:
    """pids of this machine's processes whose command line names the Ray session."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if session_dir.encode() in (proc / "cmdline").read_bytes():
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


@pytest.fixture(scope="module")
def local_ray() -> Iterator[Any]:
    """A local Ray with 2 CPUs for this module; after it, none of its processes may be left."""
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install -r requirements.txt)")
    path = os.pathsep.join([str(REPO), str(TESTS)])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1"}})
    session_dir = ray._private.worker._global_node.get_session_dir_path()
    yield ray
    ray.shutdown()
    deadline = time.monotonic() + 30
    while _ray_processes(session_dir) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _ray_processes(session_dir), "Ray processes outlived ray.shutdown()"


@pytest.fixture(scope="module")
def untrained_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ConvNet checkpoint for Digits with seeded random weights (no training: only equality matters)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    save_checkpoint(path, build_model("ConvNet", dataset_info("Digits")), {"net": "ConvNet", "dataset": "Digits",
                                                                          "classes": 10})
    return path


def _suite(tmp: Path, ckpt: Path, name: str, seeds: list[int], methods: list[str]) -> Path:
    path = tmp / f"{name}.toml"
    path.write_text(f"""
results = "{tmp / name}.jsonl"
seeds = {seeds}
methods = {json.dumps(methods)}
nets = ["ConvNet"]
retain_eval_size = 200
[method_settings.retrain]
epochs = 1
[method_settings.finetune]
epochs = 1
[[tasks]]
task = "full_class"
dataset = "Digits"
classes = ["2"]
[[tasks]]
task = "random"
dataset = "Digits"
n_forget = 20
[checkpoints]
"ConvNet/Digits" = "{ckpt}"
""")
    return path


def _comparable(row: dict[str, Any]) -> dict[str, Any]:
    """Every field but timings (…Time…, …_time, …_s), timestamps, the process's peak memory and
    whether D's importances came from the cache (which depends on which run got there first)."""
    row = json.loads(json.dumps(row))
    row.pop("time_utc")
    row.pop("peak_memory", None)  # a process measure: a Ray worker's RSS is not the driver's
    row["metrics"] = {k: v for k, v in row["metrics"].items() if "time" not in k.lower() and k != "DCacheHit"}
    if row.get("method_stats"):
        row["method_stats"] = {k: v for k, v in row["method_stats"].items() if k != "cache_hit" and not k.endswith("_s")}
    return row


def test_ray_suite_writes_the_same_rows_as_the_serial_one(local_ray: Any, untrained_ckpt: Path, tmp_path: Path,
                                                          one_thread: None) -> None:
    """Same rows from both backends (1 torch thread each, so float sums agree bit for bit); retrain's
    dependants get their ActDist on Ray too, and each run is written once."""
    from ssd.suite import run_suite

    methods = ["baseline", "retrain", "ssd"]
    common = ["--no-progress", "--no-report"]
    serial = run_suite(["--suite", str(_suite(tmp_path, untrained_ckpt, "serial", [0], methods)),
                        "--cache-dir", str(tmp_path / "cache_s"), *common])
    ray = run_suite(["--suite", str(_suite(tmp_path, untrained_ckpt, "ray", [0], methods)), "--backend", "ray",
                     "--cache-dir", str(tmp_path / "cache_r"), *common])
    assert len(serial) == 6 and len(read_rows(tmp_path / "ray.jsonl")) == 6
    by_key = {r["run_key"]: _comparable(r) for r in ray}
    assert by_key == {r["run_key"]: _comparable(r) for r in serial}
    assert all("ActDist" in r["metrics"] for r in by_key.values() if r["task"] == "full_class")


def test_a_run_that_raises_does_not_stop_the_others_on_ray(local_ray: Any, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    jobs = [Job(key=p, label=f"job {p}", cell="job", fn=echo_or_raise, payload=p) for p in ("a", "bad", "b", "c")]
    written: list[str] = []
    report = drive(jobs, make_backend("ray"), lambda _job, row: written.append(row["run_key"]), progress=False,
                   failures_log=tmp_path / "failures.log")
    assert sorted(written) == ["a", "b", "c"] and report.done == 3
    assert report.failed == {"job bad": "ValueError: this run is broken on purpose"}
    assert "[suite] FAILED job bad: ValueError: this run is broken on purpose\n" in capsys.readouterr().err
    assert "Traceback" in (tmp_path / "failures.log").read_text()  # the whole story is kept, off screen
    with pytest.raises(RunsFailed) as err:
        report.raise_if_failed()
    assert err.value.exit_code == 1


def test_ray_accepts_the_options_of_a_cuda_run(local_ray: Any) -> None:
    """A CUDA run's resource request is valid Ray (checked without a GPU: options are validated
    when set, and a request this cluster cannot meet is refused in one line before any submit)."""
    from ssd.backends.ray_backend import RayBackend, _remote_execute
    from ssd.errors import UserError

    backend = RayBackend(gpus_per_run=0.5)
    cuda = Job(key="k", label="k", cell="k", fn=echo_or_raise, payload="k", device="cuda:0")
    local_ray.remote(max_calls=0)(_remote_execute).options(**backend._resources(cuda))
    with pytest.raises(UserError, match="no GPU"):
        next(backend.run([cuda]))


def test_serial_suite_reports_a_failed_run_writes_the_rest_and_exits_1(untrained_ckpt: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    import ssd.experiment
    from ssd.errors import run_cli
    from ssd.suite import main

    real = ssd.experiment.run_one

    def flaky(spec: Any, session: Any = None, **kw: Any) -> dict[str, Any]:
        if spec.seed == 1 and spec.task == "random":
            raise RuntimeError("CUDA error: an illegal memory access")
        return real(spec, session, **kw)

    monkeypatch.setattr(ssd.experiment, "run_one", flaky)
    suite = _suite(tmp_path, untrained_ckpt, "flaky", [0, 1], ["baseline"])
    args = ["--suite", str(suite), "--no-progress", "--no-report", "--cache-dir", str(tmp_path / "cache")]
    assert run_cli(main, args) == 1
    rows = read_rows(tmp_path / "flaky.jsonl")
    assert sorted((r["task"], r["seed"]) for r in rows) == [("full_class", 0), ("full_class", 1), ("random", 0)]
    out = capsys.readouterr()
    assert "[suite] FAILED: random Digits  baseline s1: RuntimeError: CUDA error" in out.out
    assert "1 run(s) failed" in out.err
    monkeypatch.setattr(ssd.experiment, "run_one", real)
    assert run_cli(main, args) == 0 and len(read_rows(tmp_path / "flaky.jsonl")) == 4  # only the missing one ran


@pytest.mark.slow
def test_a_killed_ray_driver_restarted_completes_every_run_exactly_once(untrained_ckpt: Path, tmp_path: Path) -> None:
    """SIGKILL the driver mid-grid: the local Ray it started goes with it (no leaked raylet), and
    the same command run again writes exactly the missing runs."""
    pytest.importorskip("ray", reason="ray is not installed (pip install -r requirements.txt)")
    suite = _suite(tmp_path, untrained_ckpt, "killed", [0, 1, 2], ["baseline", "finetune", "ssd"])
    results = tmp_path / "killed.jsonl"
    cmd = [sys.executable, "-m", "ssd.suite", "--suite", str(suite), "--backend", "ray", "--no-progress",
           "--no-report", "--cache-dir", str(tmp_path / "cache")]
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_ADDRESS": "", "OMP_NUM_THREADS": "1"}
    driver = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while len(read_rows(results)) < 2 and time.monotonic() < deadline and driver.poll() is None:
            time.sleep(0.2)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(30)
        before = len(read_rows(results))
        assert 2 <= before < 18, f"the kill was not mid-grid ({before} of 18 runs written)"
        deadline = time.monotonic() + 60  # Ray's raylet and GCS share the driver's fate
        while _group_members(driver.pid, ("raylet", "gcs_server")) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not _group_members(driver.pid, ("raylet", "gcs_server")), "Ray outlived the killed driver"
    finally:  # Ray's agents notice the raylet gone and exit on their own, a minute later on a busy box
        for pid in _group_members(driver.pid):  # never leave them behind, even when the test fails
            os.kill(pid, signal.SIGKILL)
    again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"{before} already in" in again.stderr
    keys = [r["run_key"] for r in read_rows(results)]
    assert len(keys) == 18 and len(set(keys)) == 18


def _group_members(pgid: int, names: tuple[str, ...] = ()) -> list[int]:
    """pids alive in the process group the test started (the driver's own session), optionally
    only those whose command names one of `names`."""
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if os.getpgid(int(proc.name)) == pgid and (
                        not names or any(n.encode() in (proc / "cmdline").read_bytes() for n in names)):
                    out.append(int(proc.name))
            except (ProcessLookupError, PermissionError, FileNotFoundError):
                continue
    return out


def _hammer_cache(root: str, key: str, fill: float, n: int) -> None:
    from ssd.cache import ImportanceCache

    cache = ImportanceCache(root)
    for _ in range(n):
        cache.save(key, {"w": torch.full((64, 64), fill)}, {"writer": fill})
        save_checkpoint(Path(root) / "retrained.pt", torch.nn.Linear(64, 64), {"writer": fill})


def test_cache_and_retrained_reference_survive_concurrent_writers(tmp_path: Path) -> None:
    """Two workers writing the same importance entry and the same retrained reference while a third
    reads: every read is a whole file from one writer (a write in place would be seen torn)."""
    from ssd.cache import ImportanceCache

    ctx = multiprocessing.get_context("fork")
    writers = [ctx.Process(target=_hammer_cache, args=(str(tmp_path), "k", fill, 40)) for fill in (1.0, 2.0)]
    for w in writers:
        w.start()
    cache, seen = ImportanceCache(tmp_path), set()
    while any(w.is_alive() for w in writers):
        got = cache.load("k", {"w": torch.Size([64, 64])})
        if got is not None:
            assert got["w"].unique().numel() == 1
            seen.add(float(got["w"][0, 0]))
        if (tmp_path / "retrained.pt").exists():
            state, meta = read_checkpoint(tmp_path / "retrained.pt")
            assert meta["writer"] in (1.0, 2.0) and state["weight"].shape == (64, 64)
    for w in writers:
        w.join()
        assert w.exitcode == 0
    assert cache.rejected == 0 and seen <= {1.0, 2.0} and seen
    assert list(tmp_path.glob("*.tmp")) == [] and list(tmp_path.glob(".*.tmp")) == []


def _job(key: str, after: str | None = None) -> Job:
    return Job(key=key, label=key, cell=key, fn=echo_or_raise, payload=key, after=after)


def test_dependency_order_puts_each_job_after_the_one_it_waits_for() -> None:
    order = dependency_order([_job("base", after="retrain"), _job("retrain"), _job("ssd", after="retrain"),
                              _job("other", after="gone")])
    assert [j.key for j in order] == ["retrain", "base", "ssd", "other"]


@pytest.mark.parametrize("backend", ["serial", "ray"])
def test_a_retrain_ends_before_its_splits_other_methods_start(backend: str, request: pytest.FixtureRequest) -> None:
    """Both backends order from one function (ssd.backends.base.dependencies): a method that waits
    for its split's retrain starts only after that retrain has ended, though it comes first in the
    list; a job waiting for a job not in the list still runs. Catches a backend that starts jobs
    in list order (or all at once, on Ray) and one that drops a job whose `after` never comes."""
    if backend == "ray":
        request.getfixturevalue("local_ray")
    jobs = [_job("base", after="retrain"), _job("retrain"), _job("ssd", after="retrain"), _job("other", after="gone")]
    runner = make_backend(backend)
    try:
        events = [(kind, job.key) for kind, job, _ in runner.run(jobs)]
    finally:
        runner.close()
    assert sorted(k for kind, k in events if kind == "end") == ["base", "other", "retrain", "ssd"]
    for waiter in ("base", "ssd"):
        assert events.index(("start", waiter)) > events.index(("end", "retrain")), events
