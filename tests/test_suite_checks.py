"""A suite's every value checked before any work (issue 21): no traceback, no cell dropped with exit 0."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_refusals import SUITE_OK, refused

RANDOM = '[[tasks]]\ntask = "random"\ndataset = "Digits"\nn_forget = 20\n'


def _suite(tmp_path: Path, ckpt: Path, edit: tuple[str, str] = ("", ""), extra: str = "") -> Path:
    text = SUITE_OK.format(results=tmp_path / "r.jsonl", ckpt=ckpt)
    assert edit[0] in text
    (tmp_path / "s.toml").write_text(text.replace(edit[0], edit[1], 1) + extra)
    return tmp_path / "s.toml"


def _refused(capsys: pytest.CaptureFixture[str], path: Path, flags: list[str], want: str) -> None:
    from ssd.suite import main

    refused(capsys, main, ["--suite", str(path), "--no-progress", "--no-report",
                           "--cache-dir", str(path.parent / "cache"), *flags], want)
    assert not (path.parent / "r.jsonl").exists() and not (path.parent / "cache").exists()


@pytest.mark.parametrize(("edit", "extra", "want"), [
    (('classes = ["2"]', 'classes = ["2", "tow"]'), "", "unknown class 'tow'"),  # the typo's cells were dropped
    (('classes = ["2"]', 'classes = [12]'), "", "out of range"),
    (('classes = ["2"]', 'classes = []'), "", "non-empty list of classes"),
    (('classes = ["2"]', 'classes = [2.5]'), "", "a class is a name or an index"),
    (('classes = ["2"]\n', ''), "", "non-empty list of classes"),  # a class task without classes
    (('task = "full_class"\ndataset = "Digits"', 'task = "sub_class"\ndataset = "Digits"'), "", "coarse dataset"),
    (('methods = ["baseline"]', 'methods = []'), "", "non-empty list"),  # 0 runs, exit 0
    (('methods = ["baseline"]', 'methods = ["basline"]'), "", "unknown method(s) basline"),
    (("", ""), "[method_settings.nosuch]\nlr = 1\n", "no method 'nosuch'"),
    (("", ""), "[method_settings.ssd_tuning]\nalpha = 1\n", "write 'ssd'"),
    (("", ""), "[method_settings]\nssd = 3\n", "method_settings.ssd must be a table"),
    (('seeds = [0]', 'seeds = [0]\nnets = "ConvNet"'), "", "nets must be a non-empty list"),
    (('seeds = [0]', 'seeds = [0]\nretain_eval_size = -5'), "", "retain_eval_size must be a whole number"),
    (('seeds = [0]', 'seeds = [0]\nulira_settings = 3'), "", "ulira_settings must be a table"),
    (("", ""), RANDOM.replace("n_forget = 20", "n_forget = 0"), "n_forget must be"),
    (("", ""), '[[sweeps]]\ntask = "full_class"\ndataset = "Digits"\nforget_class = "tow"\n', "unknown class 'tow'"),
    (("", ""), '[[sweeps]]\ntask = "full_class"\ndataset = "Digits"\nforget_class = "2"\nalphas = [1, inf]\n',
     "alphas values must be finite numbers ≥ 0"),
    (("", ""), '[[sweeps]]\ntask = "full_class"\ndataset = "Digits"\nforget_class = "2"\nlambdas = [0]\n',
     "lambdas values must be finite numbers > 0"),
    (("", ""), '[[sweeps]]\ntask = "full_class"\ndataset = "Digits"\nforget_class = "2"\nalphas = 5\n',
     "alphas must be a non-empty list"),
    (("", ""), '[[sweeps]]\ntask = "full_class"\ndataset = "Digits"\nforget_class = "2"\nmethods = ["nosuch"]\n',
     "sweep 1 methods"),
    (("", ""), '[[sweeps]]\ntask = "full_class"\ndataset = "Digits"\nforget_class = "2"\nset = 3\n', "sweep 1 set"),
    (("", ""), '[[sweeps]]\ntask = "random"\ndataset = "Digits"\nforget_class = "2"\n', "drop its forget_class"),
    (("", ""), RANDOM.replace("n_forget = 20", "n_forget = 1.5"), "n_forget must be"),
    (("", ""), RANDOM.replace("n_forget = 20", "n_forget = true"), "n_forget must be"),
    (("", ""), '[[tasks]]\ntask = "full_class"\ndataset = "Digits"\nclasses = ["-1"]\n', "out of range"),
    (("", ""), '[[tasks]]\ntask = "random"\ndataset = "Digits"\n[tasks.method_settings.NTK]\nmax_retain = 3\n',
     "write 'ntk'"),
    (("", ""), '[variants]\nx = 3\n', "needs a method"),
    (("", ""), '[variants]\n"ssd@x" = {method = "nosuch"}\n', "unknown method 'nosuch'"),
])
def test_suite_file_values_are_checked_up_front(untrained_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                edit: tuple[str, str], extra: str, want: str) -> None:
    _refused(capsys, _suite(tmp_path, untrained_ckpt, edit, extra), [], want)


@pytest.mark.parametrize(("flags", "want"), [
    (["--set", "method_settings.ssd=3", "--methods", "ssd"], "method_settings.ssd must be a table"),  # a traceback
    (["--set", "method_settings.nosuch.lr=1"], "no method 'nosuch'"),
    (["--set", "ulira_settings=3"], "ulira_settings must be a table"),  # a traceback
    (["--seeds", "3-1,5"], "backwards"),  # silently ran seed 5 alone
    (["--seeds", "3-"], "--seeds expects whole numbers"),
    (["--methods", ""], "--methods names nothing"),  # ran the suite's methods
    (["--nets", " "], "--nets names nothing"),
    (["--set", "seeds=[0,1]"], "--seeds 0,1"),  # suggested `--set seeds.NAME=VALUE`, which cannot work
    (["--set", "methods=['ssd']"], "--methods"),
    (["--set", "width=abc", "--nets", "ResNet18"], "width (an architecture setting) must be"),  # found when pretraining
    (["--set", "checkpoints.x=5"], "maps NET/DATASET"),
    (["--set", "batch_size=0"], "batch_size must be a whole number"),
])
def test_suite_flags_are_checked_up_front(untrained_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          flags: list[str], want: str) -> None:
    _refused(capsys, _suite(tmp_path, untrained_ckpt), flags, want)


@pytest.mark.parametrize("value", ["5", "[1,inf]", "[0.0]"])
def test_main_refuses_a_bad_search_grid_before_work(untrained_ckpt: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str], value: str) -> None:
    """`--set search_alphas=5` was a traceback; a grid with inf, or λ 0, ran although --alpha/--lambda refuse them."""
    from test_refusals import main_args

    import forget_full_class_main

    name = "search_lams" if value == "[0.0]" else "search_alphas"
    refused(capsys, forget_full_class_main.main,
            main_args(untrained_ckpt, tmp_path, "--alpha", "search", "--set", f"{name}={value}"), f"SSD {name}")
    assert not (tmp_path / "r.jsonl").exists() and not (tmp_path / "cache").exists()


@pytest.mark.parametrize(("settings", "want"), [
    ("pool = 100000", "pool 100000 is more than the 1,347 training images"),
    ("candidates = 500\npool = 200", "candidates 500 must be at most half the pool"),
])
def test_an_audit_that_cannot_run_refuses_the_suite_up_front(untrained_ckpt: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str], settings: str,
                                                             want: str) -> None:
    """A bad ulira_settings value refused the first seed's cell (its plain methods too) at run time, exit 0."""
    text = SUITE_OK.format(results=tmp_path / "r.jsonl", ckpt=untrained_ckpt).replace(
        "seeds = [0]", "seeds = [0, 1]\nulira = 4")
    path = tmp_path / "s.toml"
    path.write_text(f"{text}{RANDOM}[ulira_settings]\n{settings}\n")
    _refused(capsys, path, ["--methods", "baseline"], want)
