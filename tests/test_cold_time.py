"""One rule for a run's cold time (ssd.report.rows.cold_time), read by tables, the time figure,
the claims and the wandb logger: a warm (cached) time is never shown or judged as the cold one.

SSD's warm time skips the pass over D (its importances read from the cache), so a report that
fell back to it would make SSD look an order of magnitude faster than the authors' code, which
recomputes D every run. Each test below passed a warm time off as cold on the code before the
rule (four copies of "MethodTimeCold, else MethodTime").
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from ssd.loggers import wandb_payload
from ssd.report import figures
from ssd.report.claims import check_claims
from ssd.report.tables import build_tables

NAN = math.nan


def _row(method: str, seed: int = 0, **metrics: Any) -> dict[str, Any]:
    base = {"DfTest": 1.0, "DrTest": 80.0, "MIA": 0.1, "MethodTime": 1.0}
    return {"task": "full_class", "dataset": "Toy", "net": "ConvNet", "forget_class": 0, "forget_class_name": "c0",
            "method": method, "seed": seed, "metrics": {**base, **metrics}}


@pytest.mark.parametrize(("row", "expected"), [
    # the field, when the row has it: this run's cold time (D's compute time added back on a hit)
    (_row("ssd", MethodTime=0.05, MethodTimeCold=3.05, DCacheHit=True, DImportanceTime=3.0), 3.05),
    # null there: a cache hit whose compute time was not recorded — unknown, not the warm 0.05
    (_row("ssd", MethodTime=0.05, MethodTimeCold=None, DCacheHit=True), NAN),
    # rows from before the field: what the row records about the cache decides
    (_row("ssd", MethodTime=2.0, DCacheHit=False), 2.0),
    (_row("ssd", MethodTime=0.05, DCacheHit=True, DImportanceTime=2.0), 2.05),
    (_row("ssd", MethodTime=0.05, DCacheHit=True), NAN),
    ({**_row("ssd", MethodTime=0.05), "method_stats": {"cache_hit": True, "d_importance_s": 1.5}}, 1.55),
    ({**_row("ssd", MethodTime=2.0), "method_stats": {"cache_hit": False}}, 2.0),
    # no record of the cache: a method that can cache is unknown; one that cannot keeps its time
    (_row("ssd", MethodTime=0.05), NAN),
    (_row("lfssd", MethodTime=0.05), NAN),
    ({**_row("ssd@auto", MethodTime=0.05), "variant_of": "ssd"}, NAN),
    (_row("retrain", MethodTime=100.0), 100.0),
    (_row("no_such_method", MethodTime=1.0), NAN),
    ({**_row("no_such_method", MethodTime=1.0), "config": {"method": {"seed": 0}}}, 1.0),
    ({**_row("no_such_method", MethodTime=1.0), "config": {"method": {"cache_dir": None}}}, NAN),
])
def test_cold_time_rule(row: dict[str, Any], expected: float) -> None:
    from ssd.report.rows import cold_time

    got = cold_time(row)
    assert math.isnan(got) if math.isnan(expected) else got == pytest.approx(expected)


def _grid(ssd_metrics: dict[str, Any], retrain_metrics: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for s in range(2):
        rows += [_row("baseline", s, DfTest=90.0, MethodTime=0.0), _row("retrain", s, **retrain_metrics),
                 _row("ssd", s, **ssd_metrics)]
    return rows


def _speed(rows: list[dict[str, Any]]) -> Any:
    [verdict] = [v for v in check_claims(rows).verdicts if v.claim.startswith("much faster")]
    return verdict


@pytest.mark.parametrize("retrain", [
    {"MethodTime": 100.0, "MethodTimeCold": 100.0, "DCacheHit": None},  # today's rows
    {"MethodTime": 100.0},  # rows from before cold times
])
@pytest.mark.parametrize("ssd", [
    {"MethodTime": 0.01, "MethodTimeCold": None, "DCacheHit": True},  # hit, compute time not recorded
    {"MethodTime": 0.01, "DCacheHit": True},  # an old row's hit
    {"MethodTime": 0.01},  # an old row that says nothing about the cache
])
def test_a_warm_ssd_time_never_supports_the_speed_claim(ssd: dict[str, Any], retrain: dict[str, Any]) -> None:
    """Retrain 100 s, SSD 0.01 s warm with its cold time unknown: not "10000× faster", not judged."""
    verdict = _speed(_grid(ssd, retrain))
    assert verdict.supported is None and verdict.note.startswith("not judged")
    assert "10000" not in verdict.note and "0.010" not in verdict.value


def test_the_speed_claim_reads_the_cold_time_when_the_row_has_it() -> None:
    retrain = {"MethodTime": 100.0, "MethodTimeCold": 100.0}
    slow = _speed(_grid({"MethodTime": 0.01, "MethodTimeCold": 50.0, "DCacheHit": True}, retrain))
    assert slow.supported is False and slow.note == "2.0× faster"  # 100 / 50, not 100 / 0.01
    fast = _speed(_grid({"MethodTime": 0.01, "MethodTimeCold": 5.0, "DCacheHit": True}, retrain))
    assert fast.supported is True and fast.note == "20.0× faster" and "5.000" in fast.value
    # an old row whose hit recorded D's compute time: MethodTime + DImportanceTime
    old = _speed(_grid({"MethodTime": 0.01, "DCacheHit": True, "DImportanceTime": 49.99}, {"MethodTime": 100.0}))
    assert old.supported is False and old.note == "2.0× faster"


def test_the_time_column_shows_a_dash_not_the_warm_time() -> None:
    rows = [_row("baseline", DfTest=90.0, MethodTime=0.0),
            _row("ssd", MethodTime=0.05, DCacheHit=True),  # old row, hit, compute time unknown
            _row("lfssd", MethodTime=0.05, DCacheHit=True, DImportanceTime=3.0)]  # old row, hit, known
    table = build_tables(rows)[0]
    assert math.isnan(table.cells[("ssd", "c0", "Time (s)")].mean)
    assert table.text("ssd", "c0", "Time (s)") == "–"
    assert table.cells[("ssd", "c0", "Cached (s)")].mean == pytest.approx(0.05)
    assert table.cells[("lfssd", "c0", "Time (s)")].mean == pytest.approx(3.05)


def test_the_time_figure_leaves_out_a_method_without_a_cold_time(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    saved: list[Any] = []
    monkeypatch.setattr(figures, "save", lambda fig, path: saved.append(fig) or path)
    rows = [_row("retrain", MethodTime=100.0), _row("ssd", MethodTime=0.5, DCacheHit=True)]
    figures.time_figure(rows, tmp_path / "t.png")
    ax = saved[0].axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["retrain"]
    assert "left out (no cold time in the rows): ssd" in ax.get_title()


def test_wandb_leaves_out_the_authors_method_time_when_the_cold_time_is_unknown() -> None:
    row = {"task": "full_class", "metrics": {"DfTest": 3.0, "MethodTime": 0.05, "MethodTimeCold": None,
                                             "DCacheHit": True}}
    got = wandb_payload(row)
    assert "MethodTime" not in got  # the authors' key means "D computed": no value beats a warm one
    assert got["MethodTimeRun"] == 0.05  # ours, under our name
