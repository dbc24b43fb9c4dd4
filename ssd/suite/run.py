"""The suite's runner (`python -m ssd.suite`, what MAIN_run_experiments.sh calls): runs a
suite file's grid and sweeps on a backend.

Pretrains missing checkpoints, skips runs already in the results file (a killed suite
resumes), shows a progress bar over the grid, and ends with a mean ± std table and the report.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ssd.errors import UserError
from ssd.suite.checkpoints import pretrain_missing
from ssd.suite.file import apply_sets, load_suite
from ssd.suite.grid import build_grid, plan_audits, print_grid, sweep_jobs


def check_outputs(args: argparse.Namespace, results: Path, report: Path | None, grid: list[Any]) -> None:
    """Every place the suite writes, checked before any work (no run lost at the end)."""
    from ssd.utils import check_writable

    check_writable(results, "results (--results)")
    check_writable(args.cache_dir, "cache folder (--cache-dir)", folder=True)
    if report is not None:
        check_writable(report, "report folder (--report)", folder=True)
    for path in {Path(s.weight_path) for s in grid}:
        if not path.is_file():
            check_writable(path, "checkpoint")


def suite_flag_defaults(suite: dict[str, Any], args: argparse.Namespace, argv: Sequence[str] | None) -> None:
    """The suite's `backend`, `[ray]`, `report` and `threads` keys, where no flag says otherwise."""
    from ssd.cli import DEFAULT_THREADS
    from ssd.suite.checks import RAY_KEYS

    given = set(sys.argv[1:] if argv is None else argv)
    flags = {a.split("=", 1)[0] for a in given}
    if "--backend" not in flags and "backend" in suite:
        args.backend = suite["backend"]
    for key, dest in RAY_KEYS.items():
        if "--" + dest.replace("_", "-") not in flags and key in suite.get("ray", {}):
            setattr(args, dest, suite["ray"][key])
    if args.report is None and "report" in suite:
        args.report = suite["report"]
    args.threads = args.threads or suite.get("threads", DEFAULT_THREADS)


def run_suite(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    from ssd.cli import HelpFormatter, add_backend_flags, split_list, threads_arg

    p = argparse.ArgumentParser(
        prog="python -m ssd.suite", formatter_class=HelpFormatter, allow_abbrev=False,
        description="Run a suite of unlearning experiments (what ./MAIN_run_experiments.sh calls).",
        epilog="examples:\n  ./MAIN_run_experiments.sh --suite quick          (= python -m ssd.suite --suite quick)\n"
               "  ./MAIN_run_experiments.sh 0 --dry-run          the paper suite on GPU 0: grid and what it needs\n"
               "  python -m ssd.suite --suite quick --methods ssd,retrain --seeds 0")
    p.add_argument("--suite", default="quick", help="a name in configs/suites/ or a .toml path")
    p.add_argument("--seeds", default=None, help="e.g. 1-5 or 0,2 (default: the suite's)")
    p.add_argument("--methods", nargs="+", default=None, help="ssd,retrain or ssd retrain (default: the suite's)")
    p.add_argument("--nets", nargs="+", default=None, help="ConvNet,ResNet18 or ConvNet ResNet18 (default: the suite's)")
    p.add_argument("--device", default=None, help="torch device (default: the suite's)")
    p.add_argument("--data-root", default=None, help="data folder (default: $SSD_DATA_ROOT or ./data)")
    p.add_argument("--download", action="store_true", help="download missing datasets")
    p.add_argument("--results", default=None, help="results file (default: the suite's)")
    p.add_argument("--logger", choices=("wandb", "none"), default=None, help="(default: the suite's)")
    p.add_argument("--cache-dir", default="cache", help="cached importances and retrained references")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (suite and inside methods)")
    p.add_argument("--threads", type=threads_arg, default=None, metavar="N",
                   help="torch CPU threads per run (default: the suite's `threads`, else 1; see README)")
    p.add_argument("--report", default=None, help="report folder (default: RESULTS_report beside the results)")
    p.add_argument("--no-sweeps", action="store_true", help="skip the suite's [[sweeps]]")
    p.add_argument("--no-report", action="store_true", help="skip writing the report at the end")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="replace a top-level suite setting, e.g. --set width=64 --set train_subset=None")
    p.add_argument("--dry-run", action="store_true", help="print the grid and check what it needs (data, ViT "
                   "weights, device, writable outputs) and estimate its time; run nothing; exit 2 if "
                   "something is missing")
    p.add_argument("--no-probe", action="store_true", help="dry run: no throughput probe and no time estimate")
    p.add_argument("--probe-budget", type=float, default=1.0, metavar="S",
                   help="dry run: seconds per probe measurement")
    p.add_argument("--estimate-workers", type=int, default=8, metavar="N",
                   help="dry run: also estimate the grid on N Ray workers")
    p.add_argument("--rates", default=None, metavar="FILE",
                   help="dry run: price the grid with these rates (JSON, e.g. a gpu_check summary) instead of a probe")
    p.add_argument("--estimate-json", default=None, metavar="FILE",
                   help="dry run: also write the estimate (every run's seconds, the totals, the rates) as JSON")
    add_backend_flags(p)
    args = p.parse_args(argv)  # --help and flag errors before torch is imported
    from ssd.utils import code_version

    code_version()  # pinned before any work: the rows name the code this process started with
    from ssd.backends import backend_from_args, drive
    from ssd.backends.claims import claimed_jobs
    from ssd.backends.jobs import cell_label, grid_jobs

    if args.no_progress:  # also inside the methods (ssd.backends.jobs.run_cell)
        os.environ["SSD_NO_PROGRESS"] = "1"
    for flag, given in (("--methods", args.methods), ("--nets", args.nets)):
        if given is not None and not split_list(given):
            raise UserError(f"{flag} names nothing (got {' '.join(given)!r}); leave it out for the suite's")
    args.methods = ",".join(split_list(args.methods)) if args.methods else None
    args.nets = ",".join(split_list(args.nets)) if args.nets else None

    from ssd.experiment import method_config, spec_key
    from ssd.results import AlreadyRecorded, append_row, done_keys, read_rows, release_all
    from ssd.summary import format_table, summarize
    from ssd.utils import resolve_device, sha256_file

    suite = apply_sets(load_suite(args.suite), args.set)
    suite_flag_defaults(suite, args, argv)
    results = Path(args.results or suite.get("results", f"results/{args.suite}.jsonl"))
    logger = args.logger or suite.get("logger", "none")
    report = None if args.no_report else (Path(args.report) if args.report
                                          else results.with_name(f"{results.stem}_report"))
    grid = build_grid(suite, args)
    cfgs = [method_config(s.method, s) for s in grid]  # every method setting checked before any work
    if args.dry_run:
        print_grid(grid)
        from ssd.suite.preflight import suite_needs

        needs = suite_needs(suite, grid, data_root=args.data_root, results=results, cache_dir=args.cache_dir,
                            report=report)
        for ok, line in needs:
            print(f"{'ok     ' if ok else 'MISSING'} {line}")
        missing = [line for ok, line in needs if not ok]
        if grid and not args.no_probe and (args.rates or all(ok for ok, line in needs if line.startswith("device"))):
            from ssd.suite.estimate import dry_run_estimate

            dry_run_estimate(suite, grid, cfgs, args)
        if missing:
            raise UserError(f"dry run: {len(missing)} of the suite's needs are missing (MISSING lines above)")
        return []
    if args.backend == "serial":
        resolve_device(grid[0].device if grid else "cpu")  # (a Ray driver may have no GPU of its own)
    check_outputs(args, results, report, grid)
    plan_audits(suite, grid)  # a U-LiRA setting that cannot work refuses the suite, not the seed's cell at run time
    backend = backend_from_args(args, args.cache_dir)
    try:  # missing checkpoints: pretrained as jobs of the backend (Ray tasks side by side)
        pretrain_missing(suite, sorted({(s.net, s.dataset, s.weight_path) for s in grid}),
                         grid[0].device if grid else "cpu", args, backend)
    except BaseException:
        backend.close()
        raise
    shas = {p: sha256_file(p) for p in {s.weight_path for s in grid}}  # each checkpoint hashed once
    done = done_keys([results])  # recorded runs and sweep points (sweeps resume point by point)
    keyed = {spec_key(s, cfg, shas[s.weight_path]): s for s, cfg in zip(grid, cfgs, strict=True)}
    todo = {k: s for k, s in keyed.items() if k not in done}
    print(f"[suite] {args.suite}: {len(grid)} runs in the grid, {len(keyed) - len(todo)} already in {results}, "
          f"{len(todo)} to run", file=sys.stderr)

    def sink(job: Any, row: dict[str, Any]) -> None:  # only this process writes rows, as jobs end
        try:
            append_row(results, row)
        except AlreadyRecorded as err:  # another process on the same results file recorded it first
            print(f"[suite] {err}", file=sys.stderr)
            return
        if logger == "wandb" and "sweep" not in row:
            from ssd.loggers import log_wandb

            log_wandb(row, project=f"{row['net']}_{row['dataset']}_{row['task']}_{row['forget_class_name'] or 'random'}",
                      name=row["method"], directory=results.parent)

    try:
        jobs = grid_jobs(list(todo.values()), list(todo))
        if not args.no_sweeps:
            jobs += sweep_jobs(suite, args, frozenset(done), shas, grid[0].device if grid else (args.device or "cpu"))
        outcome = drive(claimed_jobs(jobs, results), backend, sink, progress=not args.no_progress,
                        failures_log=results.with_name(f"{results.stem}_failures.log"))
    finally:
        backend.close()
        release_all(results)
    recorded = read_rows(results)  # read once after the grid: what is left, the summary, the report
    left = len(set(todo) - {r.get("run_key") for r in recorded}
               - {k for k, s in todo.items() if cell_label(s) in outcome.refused})
    if left:
        print(f"[suite] {left} runs were not run here: another suite on {results} holds their cells "
              "(re-run this command after it ends to check nothing is missing)", file=sys.stderr)
    keys = set(keyed)
    rows = [r for r in recorded if r.get("run_key") in keys]
    shown = ("DrTest", "DfTest", "Df", "MIA", "MethodTimeCold", "MethodTime")  # cold: D's importances included
    from ssd.report.configs import label_configurations

    group = ("task", "dataset", "net", "forget_class_name", "method")  # one row per configuration
    print(format_table(summarize(label_configurations(rows), group_by=group, metrics=shown), group_by=group,
                       metrics=shown))
    print(f"[suite] {len(rows)} runs in {results}")
    for cell, why in outcome.refused.items():
        print(f"[suite] refused: {cell}: {why}")
    for label, why in outcome.failed.items():
        print(f"[suite] FAILED: {label}: {why}")
    if rows and report is not None:
        from ssd.report import write_report

        # this grid's runs and the sweeps, not rows an earlier version of the suite (other settings) left
        sweeps = [r for r in recorded if isinstance(r.get("sweep"), dict)]
        page = write_report([*rows, *sweeps], report, notes=suite.get("method_notes"))
        print(f"[suite] report: {page}")
    outcome.raise_if_failed()
    if todo and outcome.refused and not outcome.done and not rows:
        raise UserError(f"every run of suite {args.suite} was refused ({len(outcome.refused)} cells; see above)")
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    run_suite(argv)
