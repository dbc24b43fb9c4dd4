"""Reports never pool two configurations of a method as if they were seeds (issue 21)."""

from __future__ import annotations

from typing import Any

import pytest

from ssd.report import load_rows
from ssd.report.tables import build_tables


def _row(method: str, seed: int, df: float, key: str, **cfg: Any) -> dict[str, Any]:
    """A full-class Digits row as a main writes it (config.method, config.run, checkpoint)."""
    return {"run_key": key, "task": "full_class", "dataset": "Digits", "net": "ConvNet", "method": method,
            "forget_class": 2, "forget_class_name": "2", "seed": seed, "n_forget": 130,
            "metrics": {"DrTest": 90.0, "DfTest": df, "MethodTime": 0.1, "MethodTimeCold": 0.1},
            "checkpoint_sha256": "abc123",
            "config": {"method": {"seed": seed, "device": "cpu", "progress": False, **cfg},
                       "run": {"method": method, "seed": seed, "retain_eval_size": 5000}}}


def test_two_alphas_of_one_seed_are_two_labelled_rows(capsys: pytest.CaptureFixture[str]) -> None:
    """`--alpha 10` and `--alpha 1000` in one file: two rows of n = 1, not 'ssd, mean over 2 seeds'."""
    rows = [_row("baseline", 0, 97.7, "b"), _row("ssd", 0, 0.0, "a10", alpha=10.0, lam=1.0),
            _row("ssd", 0, 97.7, "a1000", alpha=1000.0, lam=1.0)]
    table = build_tables(load_rows(rows))[0]
    assert table.methods == ["baseline", "ssd[alpha=10]", "ssd[alpha=1000]"]
    assert table.cells[("ssd[alpha=10]", "2", "Df")].mean == 0.0
    assert table.cells[("ssd[alpha=1000]", "2", "Df")].n == 1
    err = capsys.readouterr().err
    assert "seed 0: 2 configurations of ssd" in err


def test_one_configuration_over_seeds_stays_one_row(capsys: pytest.CaptureFixture[str]) -> None:
    rows = [_row("ssd", s, float(s), f"k{s}", alpha=10.0, lam=1.0) for s in range(3)]
    table = build_tables(load_rows(rows))[0]
    assert table.methods == ["ssd"] and table.cells[("ssd", "2", "Df")].n == 3
    assert "configurations" not in capsys.readouterr().err


def test_auto_search_and_numbers_each_get_a_row_and_search_grid_only_for_search() -> None:
    """α = 10, auto and search (whose search_* settings only search reads) are three rows, labelled by α alone."""
    from ssd.report.configs import label_configurations, mixed_cells

    grid = {"search_alphas": [1.0, 10.0]}
    rows = [_row("ssd", s, 1.0, f"{a}{s}", alpha=a, lam=1.0, reference=None, **grid)
            for a in (10.0, "auto", "search") for s in (0, 1)]
    rows[0]["config"]["method"]["search_alphas"] = [5.0]  # an unread grid on a numeric α: not a configuration
    labelled = label_configurations(rows)
    assert sorted({r["method"] for r in labelled}) == ["ssd[alpha=10]", "ssd[alpha=auto]", "ssd[alpha=search]"]
    assert all(r["variant_of"] == "ssd" for r in labelled)
    assert len(mixed_cells(labelled)) == 2  # seed 0 and seed 1 each hold three


def test_a_setting_added_later_counts_as_its_default() -> None:
    """A row written before a method gained a setting ran that setting's default: not a second configuration."""
    from ssd.report.configs import label_configurations

    old = _row("finetune", 0, 50.0, "old", lr=0.1, epochs=5)
    new = _row("finetune", 1, 52.0, "new", lr=0.1, epochs=5, batch_size=128)
    assert [r["method"] for r in label_configurations([old, new])] == ["finetune", "finetune"]
    assert [r["method"] for r in label_configurations([old, {**new, "precision": "fp32"}])] == ["finetune"] * 2
    half = {**_row("finetune", 1, 52.0, "bf16", lr=0.1, epochs=5), "precision": "bf16"}
    assert {r["method"] for r in label_configurations([old, half])} == {"finetune[precision=fp32]",
                                                                        "finetune[precision=bf16]"}
    other = _row("finetune", 1, 52.0, "lr", lr=0.02, epochs=5)
    assert {r["method"] for r in label_configurations([old, other])} == {"finetune[lr=0.1]", "finetune[lr=0.02]"}


def test_the_report_page_says_so(tmp_path: Any) -> None:
    from ssd.report import write_report

    rows = [_row("baseline", 0, 97.7, "b"), _row("ssd", 0, 0.0, "a10", alpha=10.0, lam=1.0),
            _row("ssd", 0, 97.7, "a1000", alpha=1000.0, lam=1.0)]
    text = write_report(rows, tmp_path / "rep").read_text()
    assert "Several configurations in one cell" in text and "ssd[alpha=1000]" in text


def test_hunt_cases_of_configuration_labels() -> None:
    """α 10 and 10.0 are one configuration; rows without recorded settings, another protocol, another
    checkpoint or two retrain settings are told apart; the baseline's batch size is no configuration."""
    from ssd.report.configs import label_configurations

    def methods(rows: list[dict[str, Any]]) -> list[str]:
        return sorted({r["method"] for r in label_configurations(rows)})

    assert methods([_row("ssd", 0, 1, "a", alpha=10, lam=1.0), _row("ssd", 1, 1, "b", alpha=10.0, lam=1)]) == ["ssd"]
    bare = _row("ssd", 1, 5, "nc")
    del bare["config"]
    assert methods([_row("ssd", 0, 1, "s", alpha=10.0), bare]) == ["ssd[settings recorded]",
                                                                    "ssd[settings unrecorded]"]
    assert methods([_row("ssd", 0, 1, "p1", protocol="ours"), _row("ssd", 0, 2, "p2", protocol="authors")]) == [
        "ssd[protocol=authors]", "ssd[protocol=ours]"]
    other = _row("ssd", 0, 3, "c2", alpha=10.0)
    other["checkpoint_sha256"] = "ffff0000"
    assert methods([_row("ssd", 0, 1, "c1", alpha=10.0), other]) == ["ssd[checkpoint=abc123]",
                                                                      "ssd[checkpoint=ffff0000]"]
    assert methods([_row("baseline", 0, 97, "b1", batch_size=64), _row("baseline", 1, 96, "b2", batch_size=128)]) == [
        "baseline"]
    assert methods([_row("retrain", 0, 0, "r1", epochs=5), _row("retrain", 0, 0, "r2", epochs=10)]) == [
        "retrain[epochs=10]", "retrain[epochs=5]"]
