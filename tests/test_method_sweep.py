"""scripts/method_sweep.py: reruns, task names and checkpoints checked before any work (issue 21)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_quick_suite import method_sweep
from test_refusals import refused

from ssd.errors import run_cli
from ssd.results import read_rows

SUITE = """
retain_eval_size = 100
[[tasks]]
task = "full_class"
dataset = "Digits"
classes = ["2"]
[[tasks]]
task = "random"
dataset = "DigitsCoarse"
n_forget = 20
[checkpoints]
"ConvNet/Digits" = "{ckpt}"
"ConvNet/DigitsCoarse" = "{coarse}"
"""


def _suite(tmp_path: Path, ckpt: Path, coarse: Path | None = None) -> Path:
    path = tmp_path / "s.toml"
    path.write_text(SUITE.format(ckpt=ckpt, coarse=coarse or tmp_path / "missing" / "best.pt"))
    return path


def _argv(tmp_path: Path, suite: Path, *extra: str) -> list[str]:
    return ["--suite", str(suite), "--method", "global_dampening", "--results", str(tmp_path / "r.jsonl"), *extra]


def test_a_rerun_after_a_partial_sweep_runs_the_rest(untrained_ckpt: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """It stopped at the first recorded point (AlreadyRecorded), so later points never ran."""
    suite = _suite(tmp_path, untrained_ckpt)
    assert run_cli(method_sweep().main, _argv(tmp_path, suite, "--tasks", "full_class", "--grid", "alpha=0.1")) == 0
    assert run_cli(method_sweep().main, _argv(tmp_path, suite, "--tasks", "full_class",
                                              "--grid", "alpha=0.1,0.5,0.5")) == 0
    rows = read_rows(tmp_path / "r.jsonl")
    assert sorted(r["config"]["method"]["alpha"] for r in rows) == [0.1, 0.5]
    out = capsys.readouterr().out
    assert out.count("(recorded)") == 2  # 0.1 from the first run, the repeated 0.5 from this one


@pytest.mark.parametrize("tasks", ["nosuch", "full_class,nosuch", ","])
def test_unknown_task_names_are_refused(untrained_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        tasks: str) -> None:
    """`--tasks nosuch` did nothing and exited 0."""
    refused(capsys, method_sweep().main, _argv(tmp_path, _suite(tmp_path, untrained_ckpt), "--tasks", tasks,
                                               "--grid", "alpha=0.1"), "--tasks")
    assert not (tmp_path / "r.jsonl").exists()


def test_a_missing_checkpoint_is_found_before_any_row(untrained_ckpt: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The second task's missing checkpoint was found only after the first task's rows."""
    refused(capsys, method_sweep().main, _argv(tmp_path, _suite(tmp_path, untrained_ckpt), "--grid", "alpha=0.1"),
            "no checkpoint")
    assert not (tmp_path / "r.jsonl").exists()


def test_a_bad_point_is_refused_before_any_row(untrained_ckpt: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Every point's settings are checked first: a bad last value no longer follows the first rows."""
    refused(capsys, method_sweep().main, _argv(tmp_path, _suite(tmp_path, untrained_ckpt), "--tasks", "full_class",
                                               "--grid", "alpha=0.1,-1"), "alpha must be")
    assert not (tmp_path / "r.jsonl").exists()
