"""What a run key holds, and how a report counts runs recorded more than once.

A key must change when something that changes the run changes, and must not change when a
setting the run never reads is added or reordered: otherwise a suite re-runs (and a report
double-counts) cells it already has after an upgrade, or merges two different runs.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from ssd.experiment import RunSpec, key_from_fields, method_config, spec_key, unaudited_key
from ssd.report.rows import load_rows

SHA = "ab" * 32


def _spec(**kw: Any) -> RunSpec:
    base = {"task": "random", "net": "ConvNet", "dataset": "Digits", "weight_path": "w.pt", "method": "ssd"}
    return RunSpec(**{**base, **kw})


def _key(spec: RunSpec) -> str:
    return spec_key(spec, method_config(spec.method, spec), SHA)


def test_numeric_alpha_keys_ignore_the_search_settings_it_never_reads() -> None:
    """A numeric-α SSD run keeps the key it had before α selection added search_* fields and
    made `reference` default to None (the committed cpu-paper grid's 264 rows rely on it)."""
    spec = _spec(overrides={"alpha": 10.0})
    cfg = dataclasses.asdict(method_config("ssd", spec))
    old = {k: v for k, v in cfg.items() if not k.startswith("search_")} | {"reference": "full"}
    assert key_from_fields(dataclasses.asdict(spec), old, SHA) == _key(spec)
    assert _key(_spec(overrides={"alpha": 10.0, "search_budget": 5.0})) == _key(spec)
    assert _key(_spec(overrides={"alpha": 10.0, "reference": "full"})) == _key(spec)


def test_keys_change_with_what_the_run_reads() -> None:
    """Search settings count when α is searched; α, the reference set and the seed always count."""
    search = _spec(overrides={"alpha": "search"})
    assert _key(_spec(overrides={"alpha": "search", "search_budget": 5.0})) != _key(search)
    assert _key(_spec(overrides={"alpha": 10.0, "reference": "retain"})) != _key(_spec(overrides={"alpha": 10.0}))
    assert _key(_spec(overrides={"alpha": 20.0})) != _key(_spec(overrides={"alpha": 10.0}))
    assert _key(_spec(seed=1)) != _key(_spec())
    # "auto" reads the retain set by default: None and "retain" are the same run, "full" is not
    auto = _key(_spec(overrides={"alpha": "auto"}))
    assert auto == _key(_spec(overrides={"alpha": "auto", "reference": "retain"}))
    assert auto != _key(_spec(overrides={"alpha": "auto", "reference": "full"}))


def test_the_audit_is_in_the_key_and_unaudited_key_removes_it() -> None:
    plain, audited = _spec(), _spec(ulira=16, ulira_settings={"pool": 1000})
    assert _key(audited) != _key(plain)
    assert _key(_spec(ulira=16, ulira_settings={"pool": 500})) != _key(audited)
    assert unaudited_key(_row(audited)) == _key(plain)
    assert unaudited_key(_row(plain)) is None


def _row(spec: RunSpec, *, stored_key: str | None = None, **metrics: float) -> dict[str, Any]:
    cfg = method_config(spec.method, spec)
    return {"run_key": stored_key or spec_key(spec, cfg, SHA), "checkpoint_sha256": SHA, "task": spec.task,
            "method": spec.method, "seed": spec.seed, "metrics": metrics,
            "config": {"run": dataclasses.asdict(spec), "method": dataclasses.asdict(cfg)}}


def test_report_shows_an_audited_run_once_with_the_grids_figures(capsys: pytest.CaptureFixture[str]) -> None:
    """The grid's cell and the same cell audited are one run (one seed, not two), shown with the
    grid's times (measured with the rest of its cell) and the audit's U-LiRA figures; another
    seed, or an audit of a run the grid does not have, stays as it is."""
    plain0, plain1 = _row(_spec(), Df=90.0, MethodTime=5.0), _row(_spec(seed=1), Df=80.0, MethodTime=6.0)
    audited0 = _row(_spec(ulira=16), Df=90.0, MethodTime=1.0, ULiRA_auc=0.8)
    audited0["details"] = {"ulira": {"score": [0.1]}}
    other = _row(_spec(method="lfssd", ulira=16), ULiRA_auc=0.9)  # audits lfssd, which the grid lacks
    rows = load_rows([plain0, plain1, audited0, other])
    assert [(r["method"], r["seed"], r["metrics"]) for r in rows] == [
        ("ssd", 0, {"Df": 90.0, "MethodTime": 5.0, "ULiRA_auc": 0.8}), ("ssd", 1, {"Df": 80.0, "MethodTime": 6.0}),
        ("lfssd", 0, {"ULiRA_auc": 0.9})]
    assert rows[0]["details"]["ulira"] == {"score": [0.1]} and rows[0]["run_key"] == plain0["run_key"]
    assert "shown once" in capsys.readouterr().err


def test_report_counts_a_row_with_a_stale_stored_key_once() -> None:
    """A row written before the key rules changed names the same run by its config."""
    spec = _spec()
    rows = load_rows([_row(spec), _row(spec, stored_key="0" * 20)])
    assert len(rows) == 1


def test_set_reaches_one_entry_of_a_suite_table() -> None:
    """`--set ulira_settings.seed=1` makes a second audit of the same cells without a new suite
    file; replacing a whole table, or descending into a list or a number, is refused."""
    from ssd.errors import UserError
    from ssd.suite import apply_sets, load_suite

    suite = load_suite("ulira-resnet")
    merged = apply_sets(suite, ["ulira_settings.seed=1", "method_settings.finetune.epochs=5", "width=4"])
    assert merged["ulira_settings"] == {"seed": 1} and merged["width"] == 4  # a table the file lacks is made
    assert merged["method_settings"]["finetune"]["epochs"] == 5
    assert merged["method_settings"]["fisher"] == suite["method_settings"]["fisher"]
    assert "ulira_settings" not in suite and suite["method_settings"]["finetune"] == {"epochs": 2}  # not changed
    for bad, why in (("method_settings={}", "cannot replace"), ("tasks.0.n_forget=5", "not a table"),
                     ("width.x=1", "not a table")):
        with pytest.raises(UserError, match=why):
            apply_sets(suite, [bad])


@pytest.mark.parametrize("with_plain", [True, False])
def test_two_audits_of_one_run_are_said_not_silently_merged(capsys: pytest.CaptureFixture[str],
                                                            with_plain: bool) -> None:
    """Issue 21: two U-LiRA audits of one run (`ulira_settings.seed` 0 and 1) in one file: the
    report silently kept the last (with the grid's row), or, without it, counted the one run as
    two. Now the first recorded audit is shown, once, and stderr says there were two and how
    they differ."""
    plain = _row(_spec(), Df=90.0)
    first = _row(_spec(ulira=16), Df=90.0, ULiRA_auc=0.8)
    second = _row(_spec(ulira=16, ulira_settings={"seed": 1}), Df=90.0, ULiRA_auc=0.6)
    rows = load_rows(([plain] if with_plain else []) + [first, second])
    assert [(r["method"], r["seed"], r["metrics"]["ULiRA_auc"]) for r in rows] == [("ssd", 0, 0.8)]
    err = capsys.readouterr().err
    assert "2 U-LiRA audits of one run" in err and "ulira_settings" in err and "{'seed': 1}" in err
