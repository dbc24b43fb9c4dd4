"""docs/first-study.md and what it promises (issue 23): every suite key documented, the template
suite and the template method work as written, the suite's backend/ray/report/threads keys are
honoured (they used to be accepted and ignored), and --threads is applied and recorded."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ssd.errors import UserError, run_cli
from ssd.suite.checks import RAY_KEYS
from ssd.suite.file import SUITE_KEYS, SWEEP_KEYS, TASK_KEYS, check_suite, load_suite

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "first-study.md"


def documented_keys() -> set[str]:
    """Every `key` named in the first column of a table row of the suite-key reference."""
    text = DOC.read_text().split("## 6. Suite keys", 1)[1]
    keys: set[str] = set()
    for line in text.splitlines():
        if line.startswith("| `"):
            keys |= set(re.findall(r"`([a-z_]+)`", line.split("|")[1]))
    return keys


def test_every_suite_key_is_documented() -> None:
    from models import MODELS

    options = {o for n in MODELS.names() for o in MODELS.get(n).options}
    missing = (SUITE_KEYS | TASK_KEYS | SWEEP_KEYS | set(RAY_KEYS)) - documented_keys()
    assert not missing, f"docs/first-study.md has no reference line for {sorted(missing)}"
    assert "width" in options and "width" in DOC.read_text()


def test_template_suite_runs_baseline_and_retrain() -> None:
    from ssd.suite.grid import build_grid

    suite = load_suite("first-study")
    args = argparse.Namespace(seeds=None, methods=None, nets=None, device=None, data_root=None, download=False,
                              threads=None)
    methods = {s.label or s.method for s in build_grid(suite, args)}
    assert {"baseline", "retrain"} <= methods and len(methods) >= 4


def test_template_method_registers_and_runs(untrained_ckpt: Path, tmp_path: Path) -> None:
    """The README-free path: copy docs/templates/my_method.py next to the built-in methods and run it."""
    code = ("import runpy, sys; runpy.run_path('docs/templates/my_method.py', run_name='ssd.methods.my_method');"
            "import forget_full_class_main as m; from ssd.errors import run_cli;"
            f"sys.exit(run_cli(m.main, ['-net', 'ConvNet', '-dataset', 'Digits', '-weight_path', '{untrained_ckpt}',"
            f"'-method', 'my_method', '-forget_class', '2', '--logger', 'none', '--set', 'steps=3', "
            f"'--results', '{tmp_path / 'r.jsonl'}', '--cache-dir', '{tmp_path / 'cache'}']))")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    from ssd.results import read_rows

    (row,) = read_rows(tmp_path / "r.jsonl")
    assert row["method"] == "my_method" and row["config"]["method"]["steps"] == 3


def test_suite_keys_backend_ray_report_threads_are_used(tmp_path: Path) -> None:
    from ssd.suite.run import suite_flag_defaults

    suite = {"backend": "ray", "ray": {"cpus_per_run": 0.5, "address": "auto"}, "report": "rep", "threads": 2}
    args = argparse.Namespace(backend="serial", ray_address=None, cpus_per_run=1.0, gpus_per_run=1.0, report=None,
                              threads=None)
    suite_flag_defaults(suite, args, [])
    assert (args.backend, args.cpus_per_run, args.ray_address, args.report, args.threads) == \
        ("ray", 0.5, "auto", "rep", 2)
    # flags win over the suite
    args = argparse.Namespace(backend="serial", ray_address=None, cpus_per_run=1.0, gpus_per_run=1.0, report="x",
                              threads=1)
    suite_flag_defaults(suite, args, ["--backend", "serial", "--cpus-per-run=1"])
    assert (args.backend, args.cpus_per_run, args.report, args.threads) == ("serial", 1.0, "x", 1)


@pytest.mark.parametrize("extra, want", [
    ({"threads": 0}, "threads"), ({"threads": "2"}, "threads"), ({"backend": "slurm"}, "backend"),
    ({"ray": {"cpus": 1}}, "unknown key"), ({"ray": {"cpus_per_run": float("nan")}}, "cpus_per_run"),
    ({"ray": 3}, "ray must be a table"), ({"report": 5}, "report"),
])
def test_suite_refuses_bad_new_keys(extra: dict, want: str) -> None:
    suite = {"tasks": [{"task": "full_class", "dataset": "Digits", "classes": ["2"]}], **extra}
    with pytest.raises(UserError, match=want):
        check_suite(suite, "s.toml")


def test_threads_flag_is_applied_recorded_and_not_keyed(untrained_ckpt: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    import forget_full_class_main as main

    before = torch.get_num_threads()
    try:
        argv = ["-net", "ConvNet", "-dataset", "Digits", "-weight_path", str(untrained_ckpt), "-method", "baseline",
                "-forget_class", "2", "--logger", "none", "--cache-dir", str(tmp_path / "c")]
        row1 = main.main([*argv, "--results", str(tmp_path / "a.jsonl"), "--threads", "2"])
        assert row1["threads"] == 2 == torch.get_num_threads()
        row2 = main.main([*argv, "--results", str(tmp_path / "b.jsonl")])  # the default: one thread
        assert row2["threads"] == 1
        assert row1["run_key"] == row2["run_key"]  # an execution setting, like the device
    finally:
        torch.set_num_threads(before)
    for bad in ("0", "-1", "abc", "1.5"):
        try:
            code = run_cli(main.main, [*argv, "--results", str(tmp_path / "c.jsonl"), "--threads", bad])
        except SystemExit as exit_:
            code = exit_.code
        assert code == 2
    assert not (tmp_path / "c.jsonl").exists()


def test_suite_report_and_threads_keys_reach_the_run(untrained_ckpt: Path, tmp_path: Path) -> None:
    import torch

    from ssd.suite.run import run_suite

    suite = tmp_path / "s.toml"
    suite.write_text(f'results = "{tmp_path / "r.jsonl"}"\nmethods = ["baseline"]\nseeds = [0]\nthreads = 2\n'
                     f'report = "{tmp_path / "myreport"}"\n'
                     '[[tasks]]\ntask = "full_class"\ndataset = "Digits"\nclasses = ["2"]\n'
                     f'[checkpoints]\n"ConvNet/Digits" = "{untrained_ckpt}"\n')
    before = torch.get_num_threads()
    try:
        (row,) = run_suite(["--suite", str(suite), "--no-progress", "--cache-dir", str(tmp_path / "c")])
    finally:
        torch.set_num_threads(before)
    assert row["threads"] == 2
    assert (tmp_path / "myreport").is_dir() and not (tmp_path / "r_report").exists()
