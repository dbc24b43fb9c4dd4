"""SSD's settings are checked once, when the config is made (`MethodConfig.__post_init__`).

`check_alpha`'s α branch and `check_config`'s λ / bound / batch / chunk checks (and the
search budget's) were older copies of that rule, removed as unreachable. These tests pass
each value those copies refused through every way a config is made — the constructor,
`dataclasses.replace` (sweep plans, lfssd, the authors' protocol, U-LiRA), a main's
flags, a suite file, a sweep — and see the one `__post_init__` line ("method setting …")
before any work. A new path that builds an SSD config without `__init__` and so skips the
rule would fail here. The checks that are still reachable (mode/order/reference choices,
the search grids, a target above 100 %, a zero selection-set size) are kept and tested last.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

import forget_full_class_main
from ssd.errors import UserError, run_cli
from ssd.methods.protocol import apply_protocol
from ssd.methods.ssd_methods import LFSSDConfig, SSDConfig, check_config

# (setting, a value one of the removed checks refused, what __post_init__ says instead)
BAD = [
    ("alpha", -1.0, "alpha must be ≥ 0"),
    ("alpha", math.nan, "alpha must be a finite number"),
    ("alpha", math.inf, "alpha must be a finite number"),
    ("alpha", True, "alpha must be float or str"),
    ("alpha", "fast", "alpha must be a number ≥ 0 or one of auto, search"),
    ("lam", -1.0, "lam must be > 0"),
    ("lam", math.nan, "lam must be a finite number"),
    ("bound", -0.5, "bound must be ≥ 0"),
    ("bound", math.nan, "bound must be a finite number"),
    ("batch_size", 0, "batch_size must be > 0"),
    ("batch_size", -4, "batch_size must be > 0"),
    ("chunk_size", 0, "chunk_size must be > 0"),
    ("search_budget", -1.0, "search_budget must be ≥ 0"),
    ("search_budget", math.nan, "search_budget must be a finite number"),
]
IDS = [f"{name}={value!r}" for name, value, _ in BAD]


def post_init_line(err: BaseException | str, want: str) -> None:
    """`err` is __post_init__'s line about the same setting (not an older SSD check's "SSD lam and
    bound must be non-negative"). A flag's text may arrive as a string ("nan" from --set), so
    from a command line only the setting's name is compared, not the exact reason."""
    text, name = str(err), want.split()[0]
    assert text.startswith(f"method setting {name} must be"), text
    if isinstance(err, BaseException):
        assert want in text, text


@pytest.mark.parametrize(("name", "value", "want"), BAD, ids=IDS)
def test_made_and_replaced_configs_are_refused_by_post_init(name: str, value: object, want: str) -> None:
    """The constructor (scripts/authors_protocol_check.py, ssd_alpha_sweep.py, bench_ssd.py build
    SSDConfig(...) from their flags) and `dataclasses.replace` (ssd/sweep.py's plan, lfssd's
    mode, apply_protocol, the U-LiRA audit) both run __post_init__."""
    for cls in (SSDConfig, LFSSDConfig):
        with pytest.raises(UserError) as made:
            cls(**{name: value})
        post_init_line(made.value, want)
        with pytest.raises(UserError) as replaced:
            dataclasses.replace(cls(), **{name: value})
        post_init_line(replaced.value, want)
    authors = apply_protocol(SSDConfig(protocol="authors"), "ssd", "random")  # a replace() inside
    with pytest.raises(UserError) as after_protocol:
        dataclasses.replace(authors, **{name: value})
    post_init_line(after_protocol.value, want)


@pytest.fixture(scope="module")
def ckpt(untrained_ckpt: Path) -> Path:
    return untrained_ckpt  # tests/conftest.py


def refused_line(capsys: pytest.CaptureFixture[str], main, argv: list[str]) -> str:  # noqa: ANN001
    code = run_cli(main, argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0].removeprefix("error:").strip()


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else "inf"
    return f'"{value}"' if isinstance(value, str) else repr(value)


def set_flag(name: str, value: object) -> str:
    return f"{name}={toml_value(value).strip(chr(34))}"


@pytest.mark.parametrize(("name", "value", "want"), BAD, ids=IDS)
def test_a_main_refuses_them_before_work(ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch, name: str, value: object,
                                         want: str) -> None:
    import ssd.experiment

    monkeypatch.setattr(ssd.experiment, "run_one", lambda *a, **k: pytest.fail("work started"))
    argv = ["-net", "ConvNet", "-weight_path", str(ckpt), "-dataset", "Digits", "-method", "ssd",
            "-forget_class", "2", "--results", str(tmp_path / "r.jsonl"), "--logger", "none",
            "--cache-dir", str(tmp_path / "cache"), "--set", set_flag(name, value)]
    post_init_line(refused_line(capsys, forget_full_class_main.main, argv), want)
    assert not (tmp_path / "r.jsonl").exists()


SUITE = """
results = "{results}"
seeds = [0]
methods = ["ssd"]
[method_settings.ssd]
{setting} = {value}
[[tasks]]
task = "full_class"
dataset = "Digits"
classes = ["2"]
[checkpoints]
"ConvNet/Digits" = "{ckpt}"
"""


@pytest.mark.parametrize(("name", "value", "want"), BAD, ids=IDS)
def test_a_suite_refuses_them_before_work(ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          name: str, value: object, want: str) -> None:
    from ssd.suite import main

    (tmp_path / "s.toml").write_text(SUITE.format(results=tmp_path / "r.jsonl", ckpt=ckpt, setting=name,
                                                  value=toml_value(value)))
    line = refused_line(capsys, main, ["--suite", str(tmp_path / "s.toml"), "--no-progress", "--no-report",
                                       "--cache-dir", str(tmp_path / "cache")])
    post_init_line(line, want)
    assert not (tmp_path / "r.jsonl").exists()


@pytest.mark.parametrize(("name", "value", "want"), BAD, ids=IDS)
def test_a_sweep_refuses_them_before_work(ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          name: str, value: object, want: str) -> None:
    """--set carries every setting; a bad α or λ may also come in the --alphas / --lambdas grid."""
    from ssd.sweep import main

    base = ["-net", "ConvNet", "-weight_path", str(ckpt), "-dataset", "Digits", "-forget_class", "2",
            "--results", str(tmp_path / "r.jsonl"), "--cache-dir", str(tmp_path / "cache"),
            "--retain-eval-size", "100", "--methods", "ssd"]
    grid = {"alpha": "--alphas", "lam": "--lambdas"}
    post_init_line(refused_line(capsys, main, [*base, "--set", set_flag(name, value)]), want)
    if name in grid and isinstance(value, float):  # the grid parser refuses it first, in its own words
        line = refused_line(capsys, main, [*base, grid[name], f"10,{toml_value(value).strip(chr(34))}"])
        assert line.startswith(f"{grid[name]} values must be finite numbers " + ("> 0" if name == "lam" else "≥ 0")), line
    assert not (tmp_path / "r.jsonl").exists()


@pytest.mark.parametrize(("settings", "want"), [
    ({"mode": "fisher"}, "SSD mode must be one of"),
    ({"order": "sorted"}, "SSD order must be one of"),
    ({"reference": "test"}, "SSD reference must be one of"),
    ({"protocol": "theirs"}, "protocol"),
    ({"search_alphas": []}, "SSD search_alphas must be a non-empty list"),
    ({"search_lams": [1.0, -1.0]}, "SSD search_lams values must be finite numbers > 0"),
    ({"search_lams": [0.0]}, "SSD search_lams values must be finite numbers > 0"),
    ({"search_alphas": [float("inf")]}, "SSD search_alphas values must be finite numbers ≥ 0"),
    ({"search_alphas": [float("nan")]}, "SSD search_alphas values must be finite numbers ≥ 0"),
    ({"search_alphas": 5}, "SSD search_alphas must be a non-empty list"),
    ({"search_target": 150.0}, "SSD search_target must be a percentage"),
    ({"search_forget_n": 0}, "SSD search_forget_n and search_retain_n must be positive"),
    ({"search_retain_n": 0}, "SSD search_forget_n and search_retain_n must be positive"),
])
def test_the_checks_post_init_does_not_make_are_kept(settings: dict[str, object], want: str) -> None:
    """These values pass the generic field checks (strings they do not know, lists, a 0 that is not
    a rate): SSDConfig refuses them when made (issue 21: `--set search_alphas=5` was a traceback and
    the grids took inf, 0 and nan), and check_config on its own refuses them too."""
    with pytest.raises(UserError, match=want):
        SSDConfig(**settings)
    cfg = SSDConfig()
    for name, value in settings.items():
        object.__setattr__(cfg, name, value)
    with pytest.raises(UserError, match=want):
        check_config(cfg)
