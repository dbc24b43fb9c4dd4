"""The suite stage: the grid driver behind MAIN_run_experiments.sh (`python -m ssd.suite`).

- file.py: a suite file found by name, read, checked up front, `--set` applied
- grid.py: the grid it names (task × class × method × seed as RunSpecs) and its [[sweeps]] as jobs
- checkpoints.py: each net/dataset's checkpoint, pretrained when missing
- preflight.py: what `--dry-run` checks (data, ViT weights, device, writable outputs)
- run.py: the runner: pretrain, skip recorded runs, drive the jobs on a backend, table and report
"""

from ssd.suite.checkpoints import checkpoint_for, ensure_checkpoint, net_options, pretrain_settings
from ssd.suite.file import apply_sets, check_suite, load_suite
from ssd.suite.grid import (
    build_grid,
    grid_methods,
    method_list,
    parse_seeds,
    suite_protocol,
    suite_seeds,
    sweep_jobs,
    ulira_shadows,
)
from ssd.suite.run import main, run_suite

__all__ = ["apply_sets", "build_grid", "check_suite", "checkpoint_for", "ensure_checkpoint", "grid_methods",
           "load_suite", "main", "method_list", "net_options", "parse_seeds", "pretrain_settings", "run_suite",
           "suite_protocol", "suite_seeds", "sweep_jobs", "ulira_shadows"]
