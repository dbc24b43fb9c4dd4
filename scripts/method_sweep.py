#!/usr/bin/env python
"""Grid over one method's settings on a suite's checkpoints: does the method forget, and at what cost?

How the quick suite's per-method settings (configs/suites/quick.toml) were chosen. Each
grid point runs the method on every task of the suite (the suite's forget classes, the
given seeds) and prints forget accuracy, retain-test accuracy and method time next to the
original model's; rows are appended to `--results` (a benchmark, not a test).

    .venv/bin/python scripts/method_sweep.py --suite quick --method finetune --grid lr=0.02,0.1 --grid epochs=5,20
    .venv/bin/python scripts/method_sweep.py --method blindspot --grid "lr=1e-4 1e-3" --tasks full_class

`--grid NAME=V1,V2` (commas or spaces) may repeat; the grid is their product. Values are
Python literals where they parse as one. Grid points start from the method's defaults, or with
`--suite-settings` from the settings the suite runs the method with on each task (its
[method_settings], then the task's own; `suite_settings`) — how the per-task settings of the sub-class and random
tasks were swept. The flag column is the report's verdict (ssd/report/verdicts.py) against the
original model alone: with no retrained model in the sweep, a random task's "did not forget" is
the report's "not judged".
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from ssd.cli import parse_value  # noqa: E402
from ssd.errors import UserError, run_cli  # noqa: E402


def parse_grid(items: Sequence[str]) -> dict[str, list[object]]:
    grid: dict[str, list[object]] = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"--grid expects NAME=V1,V2, got {item!r}")
        name, raw = item.split("=", 1)
        values: list[object] = []
        for text in raw.replace(",", " ").split():
            values.append(parse_value(text))
        if not values:
            raise UserError(f"--grid {name}= needs at least one value")
        grid[name.strip()] = values
    return grid


def suite_settings(suite: dict[str, object], method: str) -> dict[str, dict[str, object]]:
    """Task name → the settings the suite runs `method` with there (its protocol, its
    [method_settings], the task's own, and the mains' SSD_PARAMS α/λ): its grid's overrides."""
    from ssd.suite import build_grid

    args = argparse.Namespace(seeds=None, methods=method, nets=None, device=None, data_root=None, download=False)
    return {spec.task: dict(spec.overrides) for spec in build_grid(suite, args) if spec.label is None}


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="scripts/method_sweep.py", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--suite", default="quick", help="suite whose tasks and checkpoints are used")
    p.add_argument("--method", required=True, help="a registered method name")
    p.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2", help="a setting and its values")
    p.add_argument("--tasks", default=None, help="comma-separated task names (default: all of the suite's)")
    p.add_argument("--seeds", default="0", help="e.g. 0 or 0-2 or 0,2")
    p.add_argument("--results", default="results/method_sweep.jsonl", help="rows are appended here")
    p.add_argument("--suite-settings", action="store_true",
                   help="start each grid point from the suite's settings for the method on the task")
    args = p.parse_args(argv)

    from ssd.experiment import RunSpec, Session, run_one
    from ssd.methods.registry import METHODS
    from ssd.report.rows import df_key
    from ssd.report.verdicts import cell_verdicts
    from ssd.results import append_row
    from ssd.suite import checkpoint_for, load_suite, parse_seeds

    METHODS.get(args.method)
    suite = load_suite(args.suite)
    grid = parse_grid(args.grid)
    tasks = [t for t in suite["tasks"] if args.tasks is None or t["task"] in args.tasks.split(",")]
    names = list(grid)
    suite_start = suite_settings(suite, args.method) if args.suite_settings else {}
    session = Session()
    print(f"| task | class | seed | {' | '.join(names) or 'setting'} | Df % (orig) | DrTest % (orig) | time s | flag |")
    print("|" + "---|" * (len(names or [0]) + 7))
    for task in tasks:
        net = (suite.get("nets") or ["ConvNet"])[0]
        ckpt = checkpoint_for(suite, net, task["dataset"])
        if not Path(ckpt).is_file():
            raise UserError(f"no checkpoint {ckpt}: run ./MAIN_run_experiments.sh --suite {args.suite} first")
        for cls in task.get("classes", [None]):
            for seed in parse_seeds(args.seeds):
                common = dict(task=task["task"], net=net, dataset=task["dataset"], weight_path=ckpt,
                              forget_class=cls, n_forget=task.get("n_forget", 100), seed=seed,
                              device=suite.get("device", "cpu"),
                              retain_eval_size=suite.get("retain_eval_size", 5000))
                base_row = run_one(RunSpec(method="baseline", **common), session)
                base = base_row["metrics"]
                dk = df_key(task["task"])
                start = suite_start.get(task["task"], {})
                for values in itertools.product(*grid.values()) if names else [()]:
                    over = {**start, **dict(zip(names, values, strict=True))}
                    row = run_one(RunSpec(method=args.method, overrides=over, **common), session)
                    append_row(args.results, row)
                    m = row["metrics"]
                    flag = cell_verdicts([base_row, row]).get(args.method)
                    print(f"| {task['task']} | {cls or '-'} | {seed} | "
                          + (" | ".join(str(v) for v in values) if names
                             else "suite" if args.suite_settings else "default")
                          + f" | {m[dk]:.1f} ({base[dk]:.1f}) | {m['DrTest']:.1f} ({base['DrTest']:.1f}) "
                          f"| {m['MethodTime']:.1f} | {flag.flag if flag else ''} |", flush=True)


if __name__ == "__main__":
    sys.exit(run_cli(main))
