"""Nonsense is refused up front (issue 10): one line, exit code 2, nothing written.

Each case below was accepted as a run, crashed after the work, or printed a traceback
before. The checks are in the method dataclasses, the schedule, the suite loader and
the output-location check, so every entry point gets the same rule.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import forget_full_class_main
import forget_random_main
import pretrain_model
from datasets import dataset_info
from models import build_model
from ssd.checkpoint import save_checkpoint
from ssd.errors import run_cli
from ssd.results import read_rows
from tests.scripts_module import load_script

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ckpt(untrained_ckpt: Path) -> Path:
    return untrained_ckpt  # tests/conftest.py


def refused(capsys: pytest.CaptureFixture[str], main, argv: list[str], want: str) -> str:  # noqa: ANN001
    try:
        code = run_cli(main, argv)
    except SystemExit as exit_:  # argparse's own refusal of a flag's value: also exit 2, one error line
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:") or ": error: " in ln]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert want.lower() in lines[0].lower(), lines[0]
    return lines[0]


def main_args(ckpt: Path, tmp_path: Path, *extra: str, method: str = "ssd") -> list[str]:
    return ["-net", "ConvNet", "-weight_path", str(ckpt), "-dataset", "Digits", "-method", method,
            "-forget_class", "2", "--results", str(tmp_path / "r.jsonl"), "--logger", "none",
            "--cache-dir", str(tmp_path / "cache"), *extra]


@pytest.mark.parametrize(("extra", "method", "want"), [
    (["--alpha", "nan"], "ssd", "alpha must be"),
    (["--alpha", "inf"], "ssd", "alpha must be"),
    (["--set", "alpha=-1"], "ssd", "alpha must be ≥ 0"),
    (["--set", "alpha=fast"], "ssd", "alpha must be"),
    (["--lambda", "0"], "ssd", "lam must be > 0"),
    (["--lambda", "nan"], "ssd", "lam must be a finite number"),
    (["-epochs", "-1"], "finetune", "epochs must be > 0"),
    (["--set", "epochs=-1"], "finetune", "epochs must be > 0"),
    (["--set", "epochs=two"], "finetune", "epochs must be int"),
    (["-b", "0"], "ssd", "batch_size must be > 0"),
    (["--device", "nonsense"], "ssd", "unknown device"),
])
def test_main_refuses_nonsense_settings(ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        extra: list[str], method: str, want: str) -> None:
    refused(capsys, forget_full_class_main.main, main_args(ckpt, tmp_path, *extra, method=method), want)
    assert not (tmp_path / "r.jsonl").exists() and not (tmp_path / "cache").exists()


def test_main_refuses_forget_class_on_the_random_task(ckpt: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Old: -forget_class was silently ignored and a random-sample run recorded."""
    refused(capsys, forget_random_main.main, main_args(ckpt, tmp_path, method="baseline"), "random task")
    assert not (tmp_path / "r.jsonl").exists()


@pytest.mark.parametrize("where", ["results", "cache"])
def test_main_checks_output_locations_before_work(ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    """Old: an unwritable results path failed after the run (row lost); retrain lost its whole training."""
    import ssd.experiment

    monkeypatch.setattr(ssd.experiment, "run_one", lambda *a, **k: pytest.fail("work started"))
    (tmp_path / "afile").write_text("")
    flag = "--results" if where == "results" else "--cache-dir"
    argv = main_args(ckpt, tmp_path, method="retrain")
    argv[argv.index(flag) + 1] = str(tmp_path / "afile" / "x")
    refused(capsys, forget_full_class_main.main, argv, "is a file, not a folder")


def test_main_refuses_a_checkpoint_of_another_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Old: an MNIST checkpoint (same shapes as Digits) was used for a Digits run without a word."""
    path = tmp_path / "mnist.pt"
    save_checkpoint(path, build_model("ConvNet", dataset_info("Digits")),
                    {"net": "ConvNet", "dataset": "MNIST", "classes": 10, "complete": True})
    refused(capsys, forget_full_class_main.main, main_args(path, tmp_path, method="baseline"), "trained on MNIST")


def test_rerunning_a_main_says_recorded_and_alpha_zero_is_noted(ckpt: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Old: a second identical run appended a duplicate row; α = 0 ran without a word."""
    argv = main_args(ckpt, tmp_path, "--alpha", "0", "--retain-eval-size", "200")
    assert run_cli(forget_full_class_main.main, argv) == 0
    first = capsys.readouterr()
    assert "alpha = 0 is legal but unusual" in first.err
    assert run_cli(forget_full_class_main.main, argv) == 0
    again = capsys.readouterr().out
    rows = read_rows(tmp_path / "r.jsonl")
    assert len(rows) == 1 and "already recorded" in again
    assert any("alpha = 0" in n for n in rows[0]["notes"]) and rows[0]["config"]["method"]["alpha"] == 0


@pytest.mark.parametrize(("extra", "want"), [
    (["--epochs", "0"], "epochs must be"),
    (["-b", "0"], "batch_size must be"),
    (["-lr", "nan"], "lr must be"),
    (["--device", "nonsense"], "unknown device"),
    (["--out", "UNDER_A_FILE"], "is a file, not a folder"),
])
def test_pretrain_refuses_nonsense(tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str],
                                   want: str) -> None:
    (tmp_path / "afile").write_text("")
    extra = [str(tmp_path / "afile" / "ck") if e == "UNDER_A_FILE" else e for e in extra]
    argv = ["-net", "ConvNet", "-dataset", "Digits", "--no-progress", *extra]
    if "--out" not in extra:
        argv += ["--out", str(tmp_path / "ck")]
    refused(capsys, pretrain_model.main, argv, want)
    assert not (tmp_path / "ck").exists()


SUITE_OK = """
results = "{results}"
seeds = [0]
methods = ["baseline"]
[[tasks]]
task = "full_class"
dataset = "Digits"
classes = ["2"]
[checkpoints]
"ConvNet/Digits" = "{ckpt}"
"""


@pytest.mark.parametrize(("edit", "want"), [
    (("methods =", "methds ="), "unknown key(s) methds"),
    (("seeds = [0]", 'seeds = "0-2"'), "seeds must be a list"),
    (("[[tasks]]", "[[tasks]"), "not valid TOML"),
    (('task = "full_class"', 'task = "full_clas"'), "known tasks"),
    (('dataset = "Digits"\nclasses', "classes"), "has no dataset"),
    (('[[tasks]]\ntask = "full_class"\ndataset = "Digits"\nclasses = ["2"]', ""), "no [[tasks]]"),
    (('task = "full_class"', 'task = "random"'), "drop its classes"),
    (('dataset = "Digits"', 'dataset = "Digitz"'), "Digitz"),
])
def test_suite_refuses_bad_files(ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                 edit: tuple[str, str], want: str) -> None:
    from ssd.suite import main

    text = SUITE_OK.format(results=tmp_path / "r.jsonl", ckpt=ckpt)
    assert edit[0] in text
    (tmp_path / "s.toml").write_text(text.replace(edit[0], edit[1]))
    refused(capsys, main, ["--suite", str(tmp_path / "s.toml"), "--no-progress", "--no-report"], want)
    assert not (tmp_path / "r.jsonl").exists()


def test_suite_refuses_bad_seed_flag(ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ssd.suite import main

    (tmp_path / "s.toml").write_text(SUITE_OK.format(results=tmp_path / "r.jsonl", ckpt=ckpt))
    refused(capsys, main, ["--suite", str(tmp_path / "s.toml"), "--seeds", "a-b", "--no-report"], "--seeds")


def test_suite_whose_every_run_is_refused_fails(ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Old: every cell skipped with a note, and the suite exited 0 as if it had worked."""
    from ssd.suite import main

    text = SUITE_OK.format(results=tmp_path / "r.jsonl", ckpt=ckpt).replace(
        'methods = ["baseline"]', 'methods = ["ntk"]\n[method_settings.ntk]\nmax_memory_gib = 1e-9')
    (tmp_path / "s.toml").write_text(text)
    refused(capsys, main, ["--suite", str(tmp_path / "s.toml"), "--no-progress", "--no-report",
                           "--cache-dir", str(tmp_path / "cache")], "every run")


def test_sweep_refuses_negative_alpha_before_writing(ckpt: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Old: the baseline row was appended, then α = −1 crashed the sweep."""
    from ssd.sweep import main

    refused(capsys, main, ["-net", "ConvNet", "-weight_path", str(ckpt), "-dataset", "Digits", "-forget_class", "2",
                           "--alphas", "10,-1", "--results", str(tmp_path / "r.jsonl"),
                           "--cache-dir", str(tmp_path / "cache"), "--retain-eval-size", "100"], "--alphas values must be finite numbers ≥ 0")
    assert not (tmp_path / "r.jsonl").exists()


def test_report_refusals_leave_no_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Old: an --out under a file was a traceback; a report failing part-way left empty folders."""
    make_report = load_script("make_report")
    results = tmp_path / "r.jsonl"
    results.write_text('{"run_key": "a", "task": "full_class", "method": "ssd", "metrics": {}}\n')
    (tmp_path / "afile").write_text("")
    refused(capsys, make_report.main, [str(results), "--out", str(tmp_path / "afile" / "rep")], "is a file")
    refused(capsys, make_report.main, [str(results), "--out", str(tmp_path / "new" / "rep"), "--run", "nope"],
            "no run with run_key")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "r.jsonl"]
