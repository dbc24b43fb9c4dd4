"""The quick suite's settings (README's first command) and how scripts/method_sweep.py starts from them."""

from __future__ import annotations

import argparse
from pathlib import Path

from ssd.experiment import method_config
from ssd.suite import build_grid, load_suite
from tests.scripts_module import load_script

REPO = Path(__file__).resolve().parents[1]


def grid_args(methods: str = "all") -> argparse.Namespace:
    return argparse.Namespace(seeds=None, methods=methods, nets=None, device=None, data_root=None, download=False)


def method_sweep():
    return load_script("method_sweep")


def test_every_quick_suite_run_has_a_valid_method_config() -> None:
    """A misspelt or out-of-range setting in configs/suites/quick.toml (a task's own table
    included) makes `./MAIN_run_experiments.sh --suite quick` refuse before it starts; this
    finds it without running anything."""
    grid = build_grid(load_suite("quick"), grid_args())
    assert {s.task for s in grid} == {"full_class", "sub_class", "random"}
    for spec in grid:
        method_config(spec.method, spec)  # raises UserError on an unknown or invalid setting


def test_method_sweep_starts_from_what_the_suite_runs_on_each_task(tmp_path: Path) -> None:
    """`--suite-settings`: the suite's settings for the method, with a task's own table winning
    field by field on that task only. Catches a sweep that starts from the method's defaults,
    ignores the task's table, lets the suite's table win, or leaks one task's table into another."""
    suite = tmp_path / "s.toml"
    suite.write_text("""
seeds = [0]
methods = ["finetune"]
[method_settings.finetune]
lr = 0.5
epochs = 2
[[tasks]]
task = "full_class"
dataset = "Digits"
classes = ["2"]
[[tasks]]
task = "random"
dataset = "Digits"
n_forget = 10
[tasks.method_settings.finetune]
epochs = 7
[checkpoints]
"ConvNet/Digits" = "nowhere.pt"
""")
    start = method_sweep().suite_settings(load_suite(str(suite)), "finetune")
    assert start["full_class"]["lr"] == 0.5 and start["full_class"]["epochs"] == 2
    assert start["random"]["lr"] == 0.5 and start["random"]["epochs"] == 7
