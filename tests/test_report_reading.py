"""Reports read correctly (issue 23): cold times from an old cache entry are marked, TPR panels sit
on a fixed axis with chance drawn, missing reference rows are named, the flag rules speak of the
report's own dataset."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from ssd.report import figures
from ssd.report.tables import build_tables
from ssd.report.verdicts import legend, missing_references


def _row(method: str, seed: int = 0, dataset: str = "MNIST", **metrics: Any) -> dict[str, Any]:
    base = {"DfTest": 1.0, "DrTest": 80.0, "MIA": 0.1, "MethodTime": 1.0, "MIA_loss_tpr@1%": 0.016,
            "MIA_conf_tpr@1%": 0.008}
    return {"task": "full_class", "dataset": dataset, "net": "ConvNet", "forget_class": 2, "forget_class_name": "2",
            "method": method, "seed": seed, "n_forget_test": 1032, "metrics": {**base, **metrics}}


def test_a_cold_time_from_a_cache_entry_is_marked_in_tables_and_figures(monkeypatch: pytest.MonkeyPatch,
                                                                        tmp_path: Path) -> None:
    rows = [_row("baseline", DfTest=97.0, MethodTime=0.0),
            _row("ssd", MethodTime=0.6, MethodTimeCold=48.7, DCacheHit=True, DImportanceTime=48.1),
            _row("lfssd", MethodTime=11.6, MethodTimeCold=11.6, DCacheHit=False)]
    table = build_tables(rows)[0]
    assert table.text("ssd", "2", "Time (s)").endswith(" †")
    assert not table.text("lfssd", "2", "Time (s)").endswith("†")
    assert "†" in table.caption()
    saved: list[Any] = []
    monkeypatch.setattr(figures, "save", lambda fig, path: saved.append(fig) or path)
    figures.time_figure(rows, tmp_path / "t.png")
    ax = saved[0].axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    hatches = {lab: bar.get_hatch() for lab, bar in zip(labels, ax.patches, strict=False)}
    assert hatches["ssd"] and not hatches["lfssd"]
    assert "†" in ax.get_title()


def test_tpr_panels_have_a_fixed_axis_and_chance(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    saved: list[Any] = []
    monkeypatch.setattr(figures, "save", lambda fig, path: saved.append(fig) or path)
    figures.method_bars_figure([_row("baseline", DfTest=97.0), _row("ssd")], tmp_path / "m.png")
    tpr = [ax for ax in saved[0].axes if "TPR" in ax.get_title()]
    assert tpr, [ax.get_title() for ax in saved[0].axes]
    for ax in tpr:
        assert ax.get_xlim()[1] >= 1.0  # two methods at 0.008 and 0.016 do not look 2x apart
        assert any(math.isclose(line.get_xdata()[0], 0.01) for line in ax.get_lines())


def test_value_labels_stay_inside_their_panels(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    saved: list[Any] = []
    monkeypatch.setattr(figures, "save", lambda fig, path: saved.append(fig) or path)
    rows = [_row("baseline", DfTest=99.0, DrTest=99.5), _row("baseline", seed=1, DfTest=99.0, DrTest=99.5),
            _row("ssd", DrTest=99.0, MIA=0.95), _row("ssd", seed=1, DrTest=90.0, MIA=0.99)]
    figures.method_bars_figure(rows, tmp_path / "m.png")
    for ax in saved[0].axes:
        if not ax.get_visible():
            continue
        right = ax.get_xlim()[1]
        for text in ax.texts:
            assert text.get_position()[0] <= right * 0.86, (ax.get_title(), text.get_text(), right)


def test_flag_rules_speak_of_the_reports_dataset() -> None:
    text = legend([_row("ssd")])
    assert "on MNIST: 52 of the 1,032 images" in text and "Digits" not in text
    assert "Digits" not in legend([])


def test_missing_reference_rows_are_named() -> None:
    assert missing_references([_row("baseline"), _row("retrain"), _row("ssd")]) == []
    (line,) = missing_references([_row("ssd"), _row("baseline")])
    assert "no retrain rows" in line and "'retrain'" in line
    (line,) = missing_references([_row("ssd")])
    assert "no baseline and no retrain rows" in line


def test_claims_section_says_which_rows_to_add() -> None:
    from ssd.report.claims import claims_section

    class Page:
        def __init__(self) -> None:
            self.text: list[str] = []

        def h(self, level: int, text: str) -> None:
            self.text.append(text)

        def p(self, text: str) -> None:
            self.text.append(text)

        def grid(self, head: list[str], rows: list[list[str]]) -> None:
            self.text.append("GRID " + repr(rows))

    page = Page()
    claims_section(page, [_row("ssd"), _row("lfssd")], [])
    body = "\n".join(page.text)
    assert "Missing references" in body and "'baseline' and 'retrain'" in body
    assert "GRID" not in body  # no table of n/a


def test_bold_in_a_grid_cell_is_bold_on_the_html_page() -> None:
    from ssd.report.page import Page

    page = Page()
    page.grid(["claim", "verdict"], [["MIA near retrain's <x>", "**not supported**"]])
    html = page.html("t")
    assert "<strong>not supported</strong>" in html and "**" not in html and "&lt;x&gt;" in html
