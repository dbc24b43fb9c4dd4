"""Kill and resume (issue 10): a suite SIGKILLed at random points, then resumed, records every run
and every sweep point exactly once, from a finished checkpoint, and leaves no temporary files.

The fast test kills once inside the grid or the sweep (pre-made checkpoint). The slow one
lets the suite pretrain its own checkpoint, kills it several times at random moments
(pretraining included), then runs two suites at once on the same results file.
Random kill points come from a seeded generator; the seed is in every failure message.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ssd.checkpoint import read_checkpoint
from ssd.utils import sha256_file

REPO = Path(__file__).resolve().parents[1]
SEEDS = (0, 1)
METHODS = ("baseline", "finetune", "ssd")
ALPHAS = (1, 5, 20)


def write_suite(tmp: Path, ckpt: Path) -> Path:
    text = f"""
results = "{tmp / 'r.jsonl'}"
seeds = {list(SEEDS)}
methods = {json.dumps(list(METHODS))}
retain_eval_size = 200
[method_settings.finetune]
epochs = 1
[[tasks]]
task = "full_class"
dataset = "Digits"
classes = ["2"]
[[sweeps]]
task = "full_class"
dataset = "Digits"
forget_class = "2"
alphas = {list(ALPHAS)}
methods = ["ssd"]
[checkpoints]
"ConvNet/Digits" = "{ckpt}"
"""
    path = tmp / "s.toml"
    path.write_text(text)
    return path


def start(suite: Path, tmp: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "ssd.suite", "--suite", str(suite), "--no-progress", "--no-report",
                             "--cache-dir", str(tmp / "cache")], cwd=tmp, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)


def lines(path: Path) -> int:
    try:
        return len(path.read_bytes().splitlines())
    except FileNotFoundError:
        return 0


def kill_when(proc: subprocess.Popen[bytes], results: Path, at_lines: int, extra_s: float, timeout: float = 600) -> bool:
    """SIGKILL the suite's process group once the results file has `at_lines` lines plus `extra_s`
    seconds; False when the suite finished first."""
    t0 = time.monotonic()
    while lines(results) < at_lines and proc.poll() is None and time.monotonic() - t0 < timeout:
        time.sleep(0.05)
    time.sleep(extra_s)
    if proc.poll() is not None:
        return False
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return True


def check_exactly_once(tmp: Path, ckpt: Path, note: str) -> None:
    results = tmp / "r.jsonl"
    raw = [json.loads(ln) for ln in results.read_text().splitlines() if ln.strip()]
    keys = [r["run_key"] for r in raw]
    assert len(keys) == len(set(keys)), f"duplicate rows ({note})"
    runs = [r for r in raw if "sweep" not in r]
    sweep = [r for r in raw if "sweep" in r]
    assert sorted((r["seed"], r["method"]) for r in runs) == sorted((s, m) for s in SEEDS for m in METHODS), note
    assert sorted(r["sweep"]["alpha"] for r in sweep if r["method"] == "ssd") == [float(a) for a in ALPHAS], note
    assert [r["method"] for r in sweep].count("baseline") == 1, note
    _, meta = read_checkpoint(ckpt)
    assert meta.get("complete") is True, note
    assert {r["checkpoint_sha256"] for r in raw} == {sha256_file(ckpt)}, f"a row from another checkpoint ({note})"
    leftovers = [p for p in tmp.rglob("*") if p.name.endswith(".tmp") or p.name.endswith(".lock")
                 or p.name.endswith(".claims")]
    assert not leftovers, f"{leftovers} ({note})"


@pytest.fixture
def premade(tmp_path: Path) -> Path:
    from datasets import dataset_info
    from models import build_model
    from ssd.checkpoint import save_checkpoint

    torch.manual_seed(0)
    ckpt = tmp_path / "ck" / "best.pt"
    save_checkpoint(ckpt, build_model("ConvNet", dataset_info("Digits")),
                    {"net": "ConvNet", "dataset": "Digits", "classes": 10, "complete": True})
    return ckpt


def test_killed_in_grid_or_sweep_resumes_exactly_once(tmp_path: Path, premade: Path) -> None:
    seed = int(os.environ.get("KILL_SEED", time.time_ns() % 10_000))
    rng = random.Random(seed)
    total = len(SEEDS) * len(METHODS) + 1 + len(ALPHAS)
    at = rng.randrange(1, total)  # a point inside the grid or the sweep
    suite = write_suite(tmp_path, premade)
    killed = kill_when(start(suite, tmp_path), tmp_path / "r.jsonl", at, rng.uniform(0, 0.5))
    proc = start(suite, tmp_path)
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err.decode()[-2000:]
    check_exactly_once(tmp_path, premade, f"KILL_SEED={seed}, killed={killed} after {at} lines")


@pytest.mark.slow
def test_random_kills_including_pretraining_and_two_suites_at_once(tmp_path: Path) -> None:
    seed = int(os.environ.get("KILL_SEED", time.time_ns() % 10_000))
    rng = random.Random(seed)
    ckpt = tmp_path / "ck" / "best.pt"
    suite = write_suite(tmp_path, ckpt)
    total = len(SEEDS) * len(METHODS) + 1 + len(ALPHAS)
    kills = []
    # while pretraining (no line yet, a random moment), then at random points of the grid and the sweep
    for at, extra in [(0, rng.uniform(2.0, 8.0))] + [(rng.randrange(1, total), rng.uniform(0, 0.5)) for _ in range(3)]:
        kills.append((at, round(extra, 2), kill_when(start(suite, tmp_path), tmp_path / "r.jsonl", at, extra)))
    note = f"KILL_SEED={seed}, kills={kills}"
    if kills[0][2]:
        assert not ckpt.exists() or read_checkpoint(ckpt)[1].get("complete") is True, note
    before = lines(tmp_path / "r.jsonl")
    a, b = start(suite, tmp_path), start(suite, tmp_path)  # two suites at once on one results file
    left = []
    for proc in (a, b):
        _, err = proc.communicate(timeout=1800)
        assert proc.returncode == 0, f"{note}: {err.decode()[-2000:]}"
        left += [ln for ln in err.decode().splitlines() if "were not run here" in ln]
        assert "already recorded" not in err.decode(), f"a run was computed twice ({note})"  # split, not repeated
    check_exactly_once(tmp_path, ckpt, note)
    print(f"{note}; {before} rows before the two concurrent suites; their notes: {left}")  # shown with -s
