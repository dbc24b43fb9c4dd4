"""The suite stage: the grid driver behind MAIN_run_experiments.sh (`python -m ssd.suite`)."""

from ssd.suite.file import check_suite
from ssd.suite.run import (
    apply_sets,
    build_grid,
    checkpoint_for,
    ensure_checkpoint,
    grid_methods,
    load_suite,
    main,
    method_list,
    net_options,
    parse_seeds,
    pretrain_settings,
    run_suite,
    suite_protocol,
    suite_seeds,
    sweep_jobs,
    ulira_shadows,
)

__all__ = ["apply_sets", "build_grid", "check_suite", "checkpoint_for", "ensure_checkpoint", "grid_methods",
           "load_suite", "main", "method_list", "net_options", "parse_seeds", "pretrain_settings", "run_suite",
           "suite_protocol", "suite_seeds", "sweep_jobs", "ulira_shadows"]
