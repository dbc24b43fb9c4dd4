"""make_report.py on lines that are not result rows: skipped with a note, never a traceback (issue 21)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_report_configs import _row

from ssd.errors import run_cli
from tests.scripts_module import load_script

REPO = Path(__file__).resolve().parents[1]
FULL = {"task": "full_class", "dataset": "Digits", "net": "ConvNet", "method": "ssd"}

BAD: list[Any] = [
    {"foo": 1},
    {**FULL, "run_key": "x", "metrics": "abc"},  # metrics a string
    {**FULL, "run_key": "y", "metrics": {"DrTest": "high"}},
    {**FULL, "run_key": "z", "method": ["a"], "metrics": {}},
    {**FULL, "run_key": "w", "config": "x", "metrics": {}},
    {**FULL, "run_key": "m", "config": {"method": [1], "run": 3}, "metrics": {"DrTest": 1}},
    {**FULL, "run_key": "v", "seed": "zero", "metrics": {}, "details": "x"},
    {**FULL, "run_key": "u", "sweep": "x", "metrics": {}},
    {**FULL, "run_key": "t", "sweep": {"alpha": 1}, "metrics": {}},
    {**FULL, "run_key": "d", "metrics": {"DrTest": 1}, "details": {"test_class_acc": "x"}},
    {**FULL, "run_key": "d2", "metrics": {"DrTest": 1}, "details": {"ulira": [1]}},
]


def _make_report() -> Any:
    return load_script("make_report")


@pytest.mark.parametrize("bad", BAD, ids=[str(i) for i in range(len(BAD))])
def test_a_line_that_is_not_a_result_row_is_skipped_with_a_note(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                 bad: Any) -> None:
    good = [_row("baseline", 0, 97.7, "b"), _row("ssd", 0, 1.0, "s", alpha=10.0, lam=1.0)]
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [*good, bad]))
    assert run_cli(_make_report().main, [str(path), "--out", str(tmp_path / "rep")]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "1 row(s) that are not result rows were skipped" in err
    assert "| ssd |" in (tmp_path / "rep" / "report.md").read_text()


def test_rows_without_any_drawn_metric_draw_no_figure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A class whose rows hold none of the figure's metrics divided by zero panels."""
    rows = [_row("baseline", 0, 97.7, "b"), {**FULL, "run_key": "e", "forget_class": 3, "forget_class_name": "3",
                                             "metrics": {}}]
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert run_cli(_make_report().main, [str(path), "--out", str(tmp_path / "rep")]) == 0
    assert "No per-method figure for 3" in (tmp_path / "rep" / "report.md").read_text()


def test_a_misshapen_audit_is_not_drawn_but_the_row_stays(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """U-LiRA details without what the privacy section reads: a KeyError before; now a note."""
    row = {**FULL, "task": "random", "run_key": "l", "seed": 0, "n_forget": 20, "metrics": {"Df": 5.0, "ULiRA_auc": 0.5},
           "details": {"ulira": {"score": "x", "candidate_indices": 3}}}
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(row) + "\n")
    assert run_cli(_make_report().main, [str(path), "--out", str(tmp_path / "rep")]) == 0
    assert "U-LiRA audit of ssd (l) is not drawn" in capsys.readouterr().err
    assert "| ssd |" in (tmp_path / "rep" / "report.md").read_text()
