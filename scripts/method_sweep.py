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

    from ssd.experiment import RunSpec, Session, method_config, run_one, spec_key
    from ssd.methods.registry import METHODS
    from ssd.results import append_row, done_keys, read_rows
    from ssd.suite import load_suite, parse_seeds
    from ssd.utils import check_writable, sha256_file

    METHODS.get(args.method)
    suite = load_suite(args.suite)
    grid = parse_grid(args.grid)
    tasks = sweep_tasks(suite, args.tasks, args.method, args.suite)
    seeds = parse_seeds(args.seeds)
    names = list(grid)
    suite_start = suite_settings(suite, args.method) if args.suite_settings else {}
    # Everything checked before any work: every task's checkpoint (a missing one used to be found only
    # after the first task's rows), every point's settings, the results file.
    ckpts = {task["dataset"]: checkpoint(suite, task["dataset"], args.suite) for task in tasks}
    check_writable(args.results, "results (--results)")
    shas = {path: sha256_file(path) for path in set(ckpts.values())}
    net = (suite.get("nets") or ["ConvNet"])[0]
    cells = []
    for task in tasks:
        for cls in task.get("classes", [None]):
            for seed in seeds:
                common = dict(task=task["task"], net=net, dataset=task["dataset"], weight_path=ckpts[task["dataset"]],
                              forget_class=cls, n_forget=task.get("n_forget", 100), seed=seed,
                              device=suite.get("device", "cpu"), retain_eval_size=suite.get("retain_eval_size", 5000))
                start = suite_start.get(task["task"], {})
                points = []
                for values in itertools.product(*grid.values()) if names else [()]:
                    spec = RunSpec(method=args.method, overrides={**start, **dict(zip(names, values, strict=True))},
                                   **common)
                    points.append((values, spec, spec_key(spec, method_config(spec.method, spec),
                                                          shas[spec.weight_path])))
                cells.append((common, points))
    # A rerun after a partial sweep runs the points not recorded yet (it used to stop at the first recorded one).
    done = done_keys([args.results])
    recorded = {r.get("run_key"): r for r in read_rows(args.results, quiet=True)} if done else {}
    session = Session()
    print(f"| task | class | seed | {' | '.join(names) or 'setting'} | Df % (orig) | DrTest % (orig) | time s | flag |")
    print("|" + "---|" * (len(names or [0]) + 7))
    for common, points in cells:
        base_row = run_one(RunSpec(method="baseline", **common), session)
        for values, spec, key in points:
            was_done = key in done
            row = recorded.get(key) if was_done else None
            if row is None:
                row = run_one(spec, session)
                append_row(args.results, row)
                done.add(key)  # a grid that names a point twice runs it once
                recorded[key] = row
            setting = (" | ".join(str(v) for v in values) if names
                       else "suite" if args.suite_settings else "default")
            print(point_line(common, setting, base_row, row, args.method, recorded=was_done), flush=True)


def sweep_tasks(suite: dict[str, object], chosen: str | None, method: str, suite_name: str) -> list[dict[str, object]]:
    """The suite's tasks `--tasks` names (all by default) that `method` is defined for; a name the
    suite lacks, or a named task the method cannot run, is refused (it used to do nothing, exit 0)."""
    from ssd.methods.registry import METHODS

    tasks: list[dict[str, object]] = suite["tasks"]  # type: ignore[assignment]
    have = [str(t["task"]) for t in tasks]
    if chosen is not None:
        wanted = [t for t in chosen.replace(",", " ").split()]
        unknown = [t for t in wanted if t not in have]
        if not wanted or unknown:
            raise UserError(f"--tasks {chosen!r}: suite {suite_name} has the tasks {', '.join(dict.fromkeys(have))}")
        tasks = [t for t in tasks if t["task"] in wanted]
    runnable = [t for t in tasks if t["task"] in METHODS.get(method).tasks]
    if not runnable or (chosen is not None and len(runnable) < len(tasks)):
        raise UserError(f"method {method} is defined for the {', '.join(METHODS.get(method).tasks)} task(s) only")
    return runnable


def checkpoint(suite: dict[str, object], dataset: str, suite_name: str) -> str:
    from ssd.suite import checkpoint_for

    path = checkpoint_for(suite, (suite.get("nets") or ["ConvNet"])[0], dataset)  # type: ignore[index]
    if not Path(path).is_file():
        raise UserError(f"no checkpoint {path}: run ./MAIN_run_experiments.sh --suite {suite_name} first")
    return path


def point_line(common: dict[str, object], setting: str, base_row: dict[str, object], row: dict[str, object],
               method: str, recorded: bool) -> str:
    """One table line: the point's Df and DrTest beside the original model's, its time and the report's flag."""
    from ssd.report.rows import df_key
    from ssd.report.verdicts import cell_verdicts

    dk = df_key(str(common["task"]))
    m, base = row["metrics"], base_row["metrics"]  # type: ignore[index]
    flag = cell_verdicts([base_row, row]).get(method)
    return (f"| {common['task']} | {common['forget_class'] or '-'} | {common['seed']} | {setting} | "
            f"{m[dk]:.1f} ({base[dk]:.1f}) | {m['DrTest']:.1f} ({base['DrTest']:.1f}) | {m['MethodTime']:.1f}"
            f"{' (recorded)' if recorded else ''} | {flag.flag if flag else ''} |")

if __name__ == "__main__":
    sys.exit(run_cli(main))
