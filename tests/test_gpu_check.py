"""scripts/gpu_check.sh at a tiny size on the CPU (so the device check cannot rot), and its
phase machinery: limits, skips, a failing phase recorded while the others still run."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.synthetic import write_mnist

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))


def test_gpu_check_runs_tiny_on_cpu(tmp_path: Path):
    root = write_mnist(tmp_path / "data", n_train=300, n_test=100, name="FashionMNIST")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "GPU_CHECK_TIMEOUT": "1200", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh"), "--tiny", "--device", "cpu", "--data",
                           str(root), "--out", str(out), "--skip", "ray", "--budget", "1000",
                           "--limit-scale", "10"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "gpu_check.json").read_text())
    phases = summary["phases"]
    assert set(phases) == {"env", "throughput", "estimate", "syncs", "ssd_ratio", "tasks", "ulira"}, phases.keys()
    for name in ("env", "throughput", "estimate", "ssd_ratio", "tasks", "ulira"):
        assert phases[name]["status"] == "ok", (name, phases[name])
    assert phases["syncs"]["status"] == "skipped" and "CUDA" in phases["syncs"]["why"]
    assert summary["finished"] and summary["text"]
    assert set(summary["rates"]) == {"ResNet18", "SmallViT"}
    assert min(summary["rates"]["ResNet18"]["train"].values()) > 0
    assert phases["ssd_ratio"]["ratio_cached"] < phases["ssd_ratio"]["ratio_cold"]
    # the paper grid (ResNet18, one seed at --tiny) priced with the rates just measured
    assert phases["estimate"]["runs"] == 208 and phases["estimate"]["hours"]["1 workers"] > 0
    for task in ("full_class", "sub_class", "random"):
        assert phases["tasks"][task]["baseline"]["seconds"] >= 0
    # the summary's rates price a grid (python -m ssd.suite --dry-run --rates FILE)
    from ssd.suite.estimate import rates_from_file

    rates = rates_from_file(out / "gpu_check.json")
    assert rates["ResNet18"].rate("train", 64) > 0 and rates["ResNet18"].params > 0


def _check(tmp_path: Path, budget: float):
    from gpu_check import Check

    args = argparse.Namespace(out=str(tmp_path), budget=budget, tiny=True, only=None, skip="", device="cpu", data=None,
                              limit_scale=1.0, precision=None)
    return Check(args)


def test_a_failing_phase_is_recorded_and_the_next_still_runs(tmp_path: Path, monkeypatch):
    import gpu_check

    monkeypatch.setitem(gpu_check.LIMITS, "env", (1, 1))
    monkeypatch.setitem(gpu_check.LIMITS, "syncs", (1, 1))
    check = _check(tmp_path, 30)

    def boom(c, deadline):
        raise RuntimeError("CUDA error: out of memory\nmore")

    check.phase("env", boom)
    check.phase("syncs", lambda c, deadline: {"x": 1})
    doc = json.loads((tmp_path / "gpu_check.json").read_text())
    assert doc["phases"]["env"]["status"] == "error" and doc["phases"]["env"]["error"] == \
        "RuntimeError: CUDA error: out of memory"
    assert doc["phases"]["syncs"] == {"status": "ok", "x": 1, "seconds": doc["phases"]["syncs"]["seconds"]}


def test_a_phase_is_skipped_when_the_time_is_spent_and_gets_its_own_deadline(tmp_path: Path, monkeypatch):
    import gpu_check

    monkeypatch.setitem(gpu_check.LIMITS, "ulira", (3, 3))
    check = _check(tmp_path, 100)
    seen = []
    check.phase("ulira", lambda c, deadline: seen.append(deadline - time.monotonic()) or {})
    assert 2 < seen[0] <= 3  # the phase's own limit, not the whole budget
    check.start -= 99  # 1 s left: less than the phase needs
    check.phase("ulira", lambda c, deadline: pytest.fail("ran without time"))
    doc = json.loads((tmp_path / "gpu_check.json").read_text())
    assert doc["phases"]["ulira"]["status"] == "skipped" and "time ran out" in doc["phases"]["ulira"]["why"]


def test_ray_phase_is_skipped_cleanly_without_ray(tmp_path: Path, monkeypatch):
    import gpu_check_tasks

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    out = gpu_check_tasks.ray_phase(_check(tmp_path, 10), time.monotonic() + 5)
    assert out["status"] == "skipped" and "not importable" in out["why"]
