"""One experiment, one run key; suite variant labels never pass for a method (issue 21)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_refusals import SUITE_OK, main_args, refused

import forget_full_class_main
from ssd.errors import run_cli
from ssd.experiment import RunSpec, method_config, spec_key
from ssd.results import read_rows


def _key(dataset: str, cls: object, task: str = "full_class") -> str:
    spec = RunSpec(task=task, net="ConvNet", dataset=dataset, weight_path="x.pt", method="baseline",
                   forget_class=cls)  # type: ignore[arg-type]
    return spec_key(spec, method_config("baseline", spec), "sha")


def test_the_class_is_resolved_before_keying() -> None:
    """`-forget_class two` and `2` on MNIST were keyed apart, so 'already recorded' let the duplicate in."""
    assert _key("MNIST", "two") == _key("MNIST", "2") == _key("MNIST", 2) == _key("MNIST", "02")
    assert _key("FashionMNIST", "sneaker") == _key("FashionMNIST", "7") == _key("FashionMNIST", "Sneaker")
    assert _key("MNIST", "3") != _key("MNIST", "2")
    assert _key("DigitsCoarse", "02", "sub_class") == _key("DigitsCoarse", "2", "sub_class")


def test_committed_spellings_keep_their_keys() -> None:
    """The names the suites and mains used are the canonical spelling: recorded keys stay valid."""
    import json

    row = json.loads(next(line for line in (Path(__file__).parents[1] / "docs/results/cpu-paper/cpu-paper.jsonl")
                          .read_text().splitlines() if '"Sneaker"' in line and '"sweep"' not in line))
    from ssd.experiment import key_from_fields

    assert key_from_fields(row["config"]["run"], row["config"]["method"], row["checkpoint_sha256"]) == row["run_key"]


def test_main_says_recorded_for_another_spelling_of_the_class(untrained_ckpt: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    argv = main_args(untrained_ckpt, tmp_path, "--retain-eval-size", "100", method="baseline")
    assert run_cli(forget_full_class_main.main, argv) == 0
    again = [a if a != "2" else "02" for a in argv]
    assert run_cli(forget_full_class_main.main, again) == 0
    assert "already recorded" in capsys.readouterr().out
    assert len(read_rows(tmp_path / "r.jsonl")) == 1


@pytest.mark.parametrize("label", ["ssd", "retrain", "Baseline", "ssd_tuning", "ssd[alpha=1]", " "])
def test_variant_labels_that_are_method_names_are_refused(untrained_ckpt: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str], label: str) -> None:
    """`"ssd" = {method = "ssd", alpha = "auto"}` silently dropped the plain SSD run; `"retrain" = {...}`
    became the report's retrain reference."""
    from ssd.suite import main

    text = SUITE_OK.format(results=tmp_path / "r.jsonl", ckpt=untrained_ckpt).replace(
        'methods = ["baseline"]', 'methods = ["baseline", "ssd"]')
    (tmp_path / "s.toml").write_text(text + f'[variants]\n"{label}" = {{method = "ssd", alpha = 100.0}}\n')
    refused(capsys, main, ["--suite", str(tmp_path / "s.toml"), "--no-progress", "--no-report"], "variant label")
    assert not (tmp_path / "r.jsonl").exists()


def test_a_whole_number_setting_is_one_run_with_its_float(untrained_ckpt: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """`--set alpha=1` (an int) and `--alpha 1` (a float) were keyed apart: the same run twice."""
    argv = main_args(untrained_ckpt, tmp_path, "--retain-eval-size", "100", method="global_dampening")
    assert run_cli(forget_full_class_main.main, [*argv, "--set", "alpha=1"]) == 0
    assert run_cli(forget_full_class_main.main, [*argv, "--alpha", "1"]) == 0
    assert "already recorded" in capsys.readouterr().out
    rows = read_rows(tmp_path / "r.jsonl")
    assert len(rows) == 1 and rows[0]["config"]["method"]["alpha"] == 1.0
