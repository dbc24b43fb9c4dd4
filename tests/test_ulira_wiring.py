"""U-LiRA from the mains (--ulira K), the suite key, and the report section; bad requests refused."""

from __future__ import annotations

from pathlib import Path

import pytest

import forget_full_class_main
import forget_random_main
from ssd.errors import UserError, run_cli
from ssd.results import read_rows


def _args(ckpt: Path, tmp_path: Path, *extra: str) -> list[str]:
    return ["-net", "ConvNet", "-weight_path", str(ckpt), "-dataset", "Digits", "--logger", "none",
            "--results", str(tmp_path / "r.jsonl"), "--cache-dir", str(tmp_path / "cache"), *extra]


def test_main_with_ulira_writes_metrics_details_and_report(digits_ckpt: Path, tmp_path: Path) -> None:
    """A tiny audit (4 shadows, 3 epochs): the row carries the attack figures and one score per
    candidate; a second method reuses the cached shadows; the report gets its privacy section."""
    tiny = ["--ulira", "4", "--ulira-set", "pool=200", "--ulira-set", "epochs=3", "--n-forget", "20"]
    for method in ("baseline", "finetune"):
        forget_random_main.main(_args(digits_ckpt, tmp_path, "-method", method, "--set", "epochs=1", *tiny)
                                if method == "finetune" else _args(digits_ckpt, tmp_path, "-method", method, *tiny))
    rows = read_rows(tmp_path / "r.jsonl")
    assert [r["method"] for r in rows] == ["baseline", "finetune"]
    for r in rows:
        assert 0 <= r["metrics"]["ULiRA_auc"] <= 1 and "ULiRA_tpr@0.1%" in r["metrics"]
        d = r["details"]["ulira"]
        assert d["candidates"] == 40 and len(d["score"]) == len(d["candidate_indices"]) == 40
    assert rows[1]["metrics"]["ULiRA_shadow_train_s"] == rows[0]["metrics"]["ULiRA_shadow_train_s"]  # from cache
    assert len(list((tmp_path / "cache" / "ulira").glob("*.pt"))) == 1
    from ssd.report import write_report

    page = write_report([tmp_path / "r.jsonl"], tmp_path / "report").read_text()
    assert "Privacy audit (U-LiRA)" in page and "U-LiRA AUC" in page
    assert (tmp_path / "report" / "figures" / "ulira_random_Digits_ConvNet.png").is_file()


U4 = ["--ulira", "4", "--n-forget", "10"]


@pytest.mark.parametrize(("main", "extra", "message"), [
    (forget_random_main.main, ["--ulira", "3"], "even number of at least 4"),
    (forget_random_main.main, ["--ulira", "4", "--ulira-set", "shadow=2"], "unknown U-LiRA setting"),
    (forget_full_class_main.main, ["--ulira", "4", "-forget_class", "2", "--ulira-set", "candidates=4"],
     "candidates cannot be set"),
    # issue 21: each of these ran the method (and wrote its cache) first, or was accepted
    (forget_random_main.main, [*U4, "--ulira-set", "pool=5000"], "pool 5000 is more than the 1,347 training images"),
    (forget_random_main.main, [*U4, "--ulira-set", "pool=-5"], "setting pool must be a whole number ≥ 1"),
    (forget_random_main.main, [*U4, "--ulira-set", "pool=1.5"], "setting pool must be a whole number ≥ 1"),
    (forget_random_main.main, [*U4, "--ulira-set", "pool=0"], "setting pool must be a whole number ≥ 1"),
    (forget_random_main.main, [*U4, "--ulira-set", "pool=abc"], "setting pool must be a whole number ≥ 1"),
    (forget_random_main.main, [*U4, "--ulira-set", "seed=x"], "setting seed must be a whole number"),
    (forget_random_main.main, [*U4, "--ulira-set", "epochs=0"], "setting epochs must be a whole number ≥ 1"),
    (forget_random_main.main, [*U4, "--ulira-set", "epochs=-1"], "setting epochs must be a whole number ≥ 1"),
    (forget_random_main.main, [*U4, "--ulira-set", "epochs=abc"], "setting epochs must be a whole number ≥ 1"),
    (forget_random_main.main, [*U4, "--ulira-set", "candidates=-1"], "candidates must be an even whole number"),
    (forget_random_main.main, [*U4, "--ulira-set", "candidates=7"], "candidates must be an even whole number"),
    (forget_random_main.main, [*U4, "--ulira-set", "candidates=5000"], "candidates 5000 must be at most half"),
    (forget_random_main.main, ["--ulira", "4", "--n-forget", "60", "--ulira-set", "pool=100"],
     "--n-forget 60 is more than a shadow's share"),
    (forget_random_main.main, [*U4, "--ulira-set", "fix_variance=maybe"], "fix_variance must be true or false"),
    (forget_random_main.main, [*U4, "--ulira-set", "fix_variance=false"], "--ulira 4 leaves 1"),
    (forget_random_main.main, ["--n-forget", "10", "--ulira-set", "pool=100"], "add --ulira K"),
    (forget_random_main.main, [*U4, "--ulira-set", "pool"], "--ulira-set expects KEY=VALUE"),
    (forget_random_main.main, ["--ulira", "10000", "--n-forget", "10"], "would need about"),
])
def test_bad_audit_requests_exit_2_and_write_nothing(digits_ckpt: Path, tmp_path: Path, capsys, main, extra,
                                                     message) -> None:
    """One line, exit 2, before the method runs: SSD writes its importance cache as it runs,
    and nothing is in the cache folder."""
    assert run_cli(main, _args(digits_ckpt, tmp_path, "-method", "ssd", *extra)) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "r.jsonl").exists()
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


def test_booleans_from_strings_are_parsed_once_for_every_flag() -> None:
    """`--ulira-set fix_variance=false` was the truthy string "false" (the fixed-variance attack
    ran); true/false in any case are booleans in every KEY=VALUE flag, anything else stays a
    string that a boolean setting refuses."""
    from ssd.cli import parse_sets, parse_value
    from ssd.privacy.settings import UliraSettings

    assert parse_sets(["fix_variance=false", "a=TRUE", "b=False", "c=1", "d=x"]) == {
        "fix_variance": False, "a": True, "b": False, "c": 1, "d": "x"}
    assert UliraSettings.from_dict(8, parse_sets(["fix_variance=false"])).fix_variance is False
    with pytest.raises(UserError, match="fix_variance must be true or false"):
        UliraSettings.from_dict(8, {"fix_variance": parse_value("maybe")})
    from ssd.methods.registry import METHODS

    assert METHODS.get("ssd").config(**parse_sets(["progress=false"])).progress is False


def test_pool_defaults_to_twice_the_runs_training_set_at_most_2000() -> None:
    """So a shadow's half is as large as the target's D when D is small (the CPU grid's 1,000),
    but never more images than the training split has (Digits' 1,347: README's command)."""
    from ssd.privacy.audit import UliraSettings, resolve_pool

    assert [resolve_pool(UliraSettings(), n, 60000).pool for n in (300, 1000, 60000)] == [600, 2000, 2000]
    assert resolve_pool(UliraSettings(), 1347, 1347).pool == 1347
    assert resolve_pool(UliraSettings(pool=700), 1000, 60000).pool == 700


def test_suite_key_audits_the_first_seed_of_random_tasks_only() -> None:
    """Off by default; a suite-wide key reaches random tasks only, on the first seed (a class task
    asks in its own table: tests/test_ulira_class.py)."""
    import argparse

    from ssd.suite import build_grid

    args = argparse.Namespace(seeds=None, methods="baseline", nets=None, device=None, data_root=None, download=False)
    tasks = [{"task": "full_class", "dataset": "Digits", "classes": ["2"]}, {"task": "random", "dataset": "Digits"}]
    suite = {"tasks": tasks, "seeds": [3, 4]}
    assert all(s.ulira == 0 for s in build_grid(suite, args))
    grid = build_grid({**suite, "ulira": 8, "ulira_settings": {"pool": 500}}, args)
    assert [(s.task, s.seed, s.ulira) for s in grid] == [("full_class", 3, 0), ("full_class", 4, 0),
                                                         ("random", 3, 8), ("random", 4, 0)]
    assert grid[2].ulira_settings == {"pool": 500}
    with pytest.raises(UserError, match="even number"):
        build_grid({"tasks": [{**tasks[0], "ulira": 6 - 1}]}, args)
