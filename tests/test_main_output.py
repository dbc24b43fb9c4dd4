"""What the forgetting mains print and when (issue 23): a readable summary, then one strict JSON
line; progress (a heartbeat) by default on long work; every missing piece at once; a fast --help."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import forget_full_class_main
import forget_random_main
from ssd.errors import run_cli

REPO = Path(__file__).resolve().parents[1]


def _strict(line: str) -> dict:
    def no_constant(name: str) -> None:
        raise ValueError(f"not JSON: {name}")

    return json.loads(line, parse_constant=no_constant)


def test_random_main_prints_a_summary_then_strict_json(untrained_ckpt: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    row = forget_random_main.main(["-net", "ConvNet", "-dataset", "Digits", "-weight_path", str(untrained_ckpt),
                                   "-method", "ssd", "--logger", "none", "--n-forget", "20", "--no-progress",
                                   "--results", str(tmp_path / "r.jsonl"), "--cache-dir", str(tmp_path / "c")])
    out = capsys.readouterr().out.splitlines()
    json_lines = [ln for ln in out if ln.startswith("{")]
    assert len(json_lines) == 1
    values = _strict(json_lines[0])  # the random task's DfTest is NaN in the row: null here
    assert values["DfTest"] is None and values["Df"] == pytest.approx(row["metrics"]["Df"], abs=1e-3)
    text = "\n".join(out[:out.index(json_lines[0])])
    assert "α = 10.0, λ = 1.0" in text and "weights selected and dampened:" in text
    assert "original →" in text and "time: method" in text


def test_a_long_method_shows_progress_by_default(untrained_ckpt: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import ssd.heartbeat
    from ssd.methods.registry import METHODS

    entry = METHODS.get("baseline")

    def slow(model, splits, cfg):  # noqa: ANN001, ANN202  (a long, silent method)
        time.sleep(1.5)
        return model

    monkeypatch.setattr(ssd.heartbeat, "HEARTBEAT_S", 0.4)
    monkeypatch.setitem(METHODS._entries, "baseline", type(entry)(entry.name, slow, entry.config, entry.description,
                                                                  entry.tasks))
    argv = ["-net", "ConvNet", "-dataset", "Digits", "-weight_path", str(untrained_ckpt), "-method", "baseline",
            "-forget_class", "2", "--logger", "none", "--cache-dir", str(tmp_path / "c")]
    forget_full_class_main.main([*argv, "--results", str(tmp_path / "a.jsonl")])
    assert "[baseline] still running" in capsys.readouterr().err
    forget_full_class_main.main([*argv, "--results", str(tmp_path / "b.jsonl"), "--no-progress"])
    assert "still running" not in capsys.readouterr().err


def test_missing_pieces_are_listed_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The authors' command line on a machine without GPU, data or checkpoint: three MISSING lines, one error."""
    code = run_cli(forget_full_class_main.main, [
        "-net", "ResNet18", "-weight_path", str(tmp_path / "none.pth"), "-dataset", "Cifar100", "-classes", "100",
        "-gpu", "-method", "ssd_tuning", "-forget_class", "rocket", "-seed", "1", "--data-root", str(tmp_path),
        "--results", str(tmp_path / "r.jsonl")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    missing = [ln for ln in err.splitlines() if ln.startswith("MISSING")]
    assert len(missing) == 3 and [m.split()[1] for m in missing] == ["device", "data", "checkpoint"], err
    assert "pretrain_model.py -net ResNet18 -dataset Cifar100" in missing[2] and " h on a 2-core CPU" in missing[2]
    assert sum(ln.startswith("error:") for ln in err.splitlines()) == 1
    assert not (tmp_path / "r.jsonl").exists()


def test_help_is_fast_no_torch_import() -> None:
    code = ("import sys, forget_full_class_main as m\ntry:\n    m.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0 and out.stdout.strip().endswith("NO-TORCH"), out.stdout[-500:] + out.stderr[-500:]
    assert "-forget_class FORGET_CLASS" in out.stdout and "[-forget_class" not in out.stdout  # shown as required


def test_help_lists_every_registered_method() -> None:
    import ssd.methods  # noqa: F401
    from ssd.methods.registry import METHODS
    from ssd.names import method_names

    assert set(method_names()) == set(METHODS.names())


def test_suite_help_is_fast_no_torch_import() -> None:
    code = ("import sys\nfrom ssd.suite.run import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0 and out.stdout.strip().endswith("NO-TORCH"), out.stdout[-500:] + out.stderr[-500:]
    assert "--cpus-per-run" in out.stdout and "(default: 1.0)" in out.stdout and "(default 1)" not in out.stdout


def test_torch_free_name_lists_match_the_registries() -> None:
    from ssd.backends import BACKENDS
    from ssd.names import BACKEND_NAMES, REPO_ROOT
    from ssd.utils import REPO_ROOT as UTILS_ROOT

    assert tuple(BACKENDS.names()) == BACKEND_NAMES and REPO_ROOT == UTILS_ROOT == REPO


def test_the_summary_builds_the_split_once(untrained_ckpt: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The before → after table scores the unchanged model on the run's own split, which run_one
    hands over: the split is built once per main, and the original accuracies are a fresh split's."""
    import ssd.experiment
    import ssd.run_summary
    from ssd.metrics import accuracy, predict_logits

    real_build, real_summary = ssd.experiment.build_splits, ssd.run_summary.summary_lines
    built: list[object] = []
    shown: list[dict] = []

    def counting(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        built.append(args[0])
        return real_build(*args, **kwargs)

    def summary(row, original=None, **kwargs):  # noqa: ANN001, ANN003, ANN202
        shown.append(dict(original or {}))
        return real_summary(row, original, **kwargs)

    monkeypatch.setattr(ssd.experiment, "build_splits", counting)
    monkeypatch.setattr(ssd.run_summary, "summary_lines", summary)
    forget_full_class_main.main(["-net", "ConvNet", "-dataset", "Digits", "-weight_path", str(untrained_ckpt),
                                 "-method", "ssd", "-forget_class", "2", "--logger", "none", "--no-progress",
                                 "--results", str(tmp_path / "r.jsonl"), "--cache-dir", str(tmp_path / "c")])
    assert len(built) == 1
    spec, session = built[0], ssd.experiment.Session(tmp_path / "fresh")
    model, meta = session.model(spec)
    fresh = real_build(spec, session, meta["sha256"], meta)
    expected = {key: accuracy(predict_logits(model, data), data.targets)
                for key, data in (("Df", fresh.forget), ("DfTest", fresh.forget_test), ("DrTest", fresh.retain_test))}
    assert shown == [pytest.approx(expected)]
