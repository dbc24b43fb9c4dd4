"""The scale study's summary (ssd/report/scale.py) and its script's checks, on hand-made rows."""

from __future__ import annotations

import math

import pytest

from ssd.report.scale import records, runs_table, stage_table, summary
from tests.scripts_module import load_script


def _row(method: str, width: int, seed: int, request: str = "Trouser", *, drtest: float, dftest: float = 0.0,
         selected: dict[str, int] | None = None, alpha: float | None = None, considered: int = 1000) -> dict:
    task = "random" if request == "random" else "full_class"
    stats = None
    if selected is not None:
        stats = {"alpha": 10.0, "selected": selected, "total_selected": sum(selected.values()),
                 "total_considered": considered, "alpha_select": None if alpha is None else {"alpha": alpha}}
    return {"task": task, "dataset": "FashionMNIST", "net": "ResNet18", "method": method, "seed": seed,
            "forget_class": None if task == "random" else 1, "forget_class_name": None if task == "random" else request,
            "n_forget": 100, "checkpoint_sha256": f"ck{width}", "model_options": {"width": width},
            "data_subset": {"train": 125 * width, "test": 1000, "seed": 0}, "method_stats": stats,
            "metrics": {"DrTest": drtest, "DfTest": dftest, "Df": dftest, "MIA": 0.5, "MethodTimeCold": 1.0}}


def _rows() -> list[dict]:
    rows = []
    for seed, shift in ((0, 0.0), (1, 2.0)):
        rows += [_row("baseline", 8, seed, drtest=80 + shift, dftest=90),
                 _row("ssd", 8, seed, drtest=40 + shift, selected={"conv5_x.0.residual_function.0.weight": 30, "fc.weight": 10}),
                 _row("ssd@search", 8, seed, drtest=79 + shift, selected={"fc.weight": 4}, alpha=50 + 50 * seed),
                 # the other scale's original scores 10 points lower: its drop must use its own baseline
                 _row("baseline", 16, seed, drtest=70 + shift, dftest=90),
                 _row("ssd", 16, seed, drtest=69 + shift, selected={"conv2_x.0.residual_function.0.weight": 5}, considered=4000)]
    return rows


def test_drop_against_same_scale_and_seed_baseline() -> None:
    s = summary(records(_rows()))
    assert s["w8/n1000"]["ssd"]["class_drop"] == pytest.approx(40.0)
    assert s["w16/n2000"]["ssd"]["class_drop"] == pytest.approx(1.0)
    assert s["w8/n1000"]["ssd@search"]["alphas"] == [50.0, 100.0]
    assert s["w8/n1000"]["ssd"]["share"] == pytest.approx(4.0)  # 40 of 1,000 considered
    assert math.isnan(s["w8/n1000"]["ssd"]["random_drop"])


def test_tables_show_selection_and_its_location() -> None:
    recs = records(_rows())
    table = "\n".join(runs_table(recs))
    assert "| w8/n1000 | Trouser | ssd@search | 2 | 50/100 | 4 | 0.400 |" in table
    stages = "\n".join(stage_table(recs))
    # w8 α = 10: 30 of 40 selected in conv5_x, 10 in fc
    assert "| w8/n1000 | ssd | 40 | 0.0 | 0.0 | 0.0 | 0.0 | 75.0 | 25.0 |" in stages


def test_scales_are_checked_before_any_work() -> None:
    from ssd.errors import UserError

    mod = load_script("scale_study")
    assert mod.parse_scales("8x1000,32x2000:noretrain") == [(8, 1000, True), (32, 2000, False)]
    for bad in ("8x", "8x1000:retrain", "0x1000", "w8x1000"):
        with pytest.raises(UserError):
            mod.parse_scales(bad)


def test_report_paragraph_states_the_trend_from_the_rows() -> None:
    from ssd.report.page import Page
    from ssd.report.scale import scale_claims, trend

    page = Page()
    scale_claims(page, _rows())
    text = page.markdown()
    assert "retain cost at α = 10 shrinks across the scales (40.0 → 1.0 points)" in text
    assert "| w8/n1000 | 40.0 | 0.0 | – | – | – | 75 (50–100) | 1.0 |" in text
    assert trend([5.0, 3.0, 4.0]) == "does not move one way" and trend([1.0, 2.0]) == "grows"
