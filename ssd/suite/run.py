"""The grid driver behind MAIN_run_experiments.sh: task × class × method × seed from a suite file.

Loads data and checkpoints once per task (a Session), pretrains missing checkpoints,
skips runs already in the results file (a killed suite resumes), shows a progress bar
over the grid, and ends with a mean ± std table.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ssd.errors import UserError, one_line
from ssd.suite.file import check_suite
from ssd.utils import REPO_ROOT

TASK_MAINS = {"full_class": "forget_full_class_main", "sub_class": "forget_class_main",
              "random": "forget_random_main"}
# retrain first, so later methods of the same cell (baseline too) get the activation distance to it
FIRST = ("retrain", "baseline")


def load_suite(name_or_path: str) -> dict[str, Any]:
    path = Path(name_or_path)
    if not path.suffix:
        path = REPO_ROOT / "configs" / "suites" / f"{name_or_path}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in (REPO_ROOT / "configs" / "suites").glob("*.toml"))
        raise UserError(f"no suite {name_or_path!r} (looked for {path}); known suites: {', '.join(known)}")
    try:
        with open(path, "rb") as f:
            suite = tomllib.load(f)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"suite {path} is not valid TOML: {one_line(err)}") from None
    check_suite(suite, path)
    return suite


def parse_seeds(text: str) -> list[int]:
    """`1-5`, `0,3,7` or a mix."""
    seeds: list[int] = []
    for part in text.split(","):
        a, _, b = part.strip().partition("-")
        try:
            seeds.extend(range(int(a), int(b) + 1) if b else [int(a)])
        except ValueError:
            raise UserError(f"--seeds expects whole numbers like 1-5 or 0,3,7; got {text!r}") from None
    if not seeds:
        raise UserError(f"--seeds {text!r} names no seed (is the range backwards?)")
    return seeds


def suite_seeds(suite: dict[str, Any], args: argparse.Namespace) -> list[int]:
    """`--seeds` if given, else the suite's."""
    return parse_seeds(args.seeds) if args.seeds else list(suite.get("seeds", [0]))


def checkpoint_for(suite: dict[str, Any], net: str, dataset: str) -> str:
    """The suite's checkpoint path for net/dataset, else where pretrain_model.py puts it.
    A path may name the suite's data and model settings, e.g. `…-w{width}-n{train_subset}/best.pt`,
    so a `--set width=64` run pretrains and uses its own checkpoint."""
    path = suite.get("checkpoints", {}).get(f"{net}/{dataset}", f"checkpoints/{net}-{dataset}-seed0/best.pt")
    try:
        return path.format(**{k: v for k, v in suite.items() if not isinstance(v, (dict, list))})
    except (KeyError, IndexError, ValueError) as err:
        raise UserError(f"checkpoint path {path!r} names {err} which the suite does not set") from None


def net_options(suite: dict[str, Any], net: str) -> dict[str, Any]:
    """The suite's architecture settings that `net` takes (`width = 16` applies to ResNet18 only)."""
    from models import MODELS

    return {k: suite[k] for k in MODELS.get(net).options if k in suite}


def apply_sets(suite: dict[str, Any], sets: Sequence[str]) -> dict[str, Any]:
    """`--set KEY=VALUE` on the suite command line replaces a top-level suite setting
    (width, train_subset, test_subset, pretrain_epochs, retain_eval_size…)."""
    from ssd.cli import parse_sets

    over = parse_sets(sets)
    tables = sorted(k for k in over if isinstance(suite.get(k), (dict, list)))
    if tables:
        raise UserError(f"--set cannot replace the suite's tables {tables}; edit the suite file")
    merged = {**suite, **over}
    if over:
        check_suite(merged, "(after --set)")
    return merged


def pretrain_settings(suite: dict[str, Any], net: str) -> dict[str, Any]:
    """What a missing checkpoint is pretrained with, beyond net and dataset."""
    return {"model_options": net_options(suite, net), "train_subset": suite.get("train_subset"),
            "test_subset": suite.get("test_subset"), "epochs": suite.get("pretrain_epochs"),
            "pretrained": suite.get("pretrained", {}).get(net)}


def method_list(suite: dict[str, Any], cli: str | None) -> list[str]:
    import ssd.methods  # noqa: F401
    from ssd.methods.registry import METHODS

    chosen = cli.split(",") if cli else suite.get("methods", "all")
    if chosen == ["all"]:  # --methods all
        chosen = "all"
    names = METHODS.names() if chosen == "all" else [n for n in chosen if n not in suite.get("variants", {})]
    for n in names:
        METHODS.get(n)
    return sorted(names, key=lambda n: (FIRST.index(n) if n in FIRST else len(FIRST), names.index(n)))


def grid_methods(suite: dict[str, Any], cli: str | None) -> list[tuple[str | None, str, dict[str, Any]]]:
    """(label, method, settings) per grid column: the methods, then the suite's `[variants]`
    (`"ssd@auto" = {method = "ssd", alpha = "auto"}`: the method with settings on top of its
    method_settings, reported as its own row under the label). `--methods` may name labels."""
    from ssd.methods.registry import METHODS

    settings = suite.get("method_settings", {})
    out: list[tuple[str | None, str, dict[str, Any]]] = [(None, m, dict(settings.get(m, {})))
                                                          for m in method_list(suite, cli)]
    for label, v in suite.get("variants", {}).items():
        if cli and label not in cli.split(","):
            continue
        if not isinstance(v, dict) or "method" not in v:
            raise UserError(f"suite variant {label!r} needs a method, e.g. {{method = \"ssd\", alpha = \"auto\"}}")
        METHODS.get(v["method"])
        extra = {k: x for k, x in v.items() if k != "method"}
        out.append((label, v["method"], {**settings.get(v["method"], {}), **extra}))
    return out


def ensure_checkpoint(path: Path, net: str, dataset: str, device: str, data_root: str | None,
                      download: bool, progress: bool = True, pretrained: str | None = None,
                      model_options: dict[str, Any] | None = None, train_subset: int | None = None,
                      test_subset: int | None = None, epochs: int | None = None) -> None:
    """Pretrain a missing checkpoint. An existing one made with other architecture or data
    settings than the suite asks for is refused (its rows would be mislabelled); one from an
    unfinished pretraining (a killed run of an older version) is pretrained again: a
    half-trained model never stands in for a finished one."""
    if path.is_file():
        from ssd.checkpoint import model_options as options_of
        from ssd.checkpoint import read_checkpoint, unfinished

        _, meta = read_checkpoint(path)
        have = (options_of(meta), (meta.get("data_subset") or {}).get("train"), (meta.get("data_subset") or {}).get("test"))
        want = (dict(model_options or {}), train_subset or None, test_subset or None)
        if meta and have != want:
            raise UserError(f"checkpoint {path} was made with options/train/test subset {have}, the suite asks for "
                            f"{want}: name the settings in the suite's checkpoint path or delete the file")
        why = unfinished(path, meta)
        if why is None:
            return
        print(f"[suite] {path} is not used: {why}; pretraining it again", file=sys.stderr)
    from ssd.train import pretrain

    print(f"[suite] pretraining {net} on {dataset} → {path.parent}", file=sys.stderr)
    res = pretrain(net, dataset, data_root=data_root, download=download, seed=0, device=device,
                   out=path.parent, pretrained=pretrained, progress=progress, model_options=model_options,
                   train_subset=train_subset, test_subset=test_subset, epochs=epochs,
                   log=lambda s: print(f"[pretrain] {s}", file=sys.stderr))
    if path.name not in ("best.pt", "last.pt"):
        (path.parent / "best.pt").rename(path)
    mem = res.extra.get("best", {})
    print(f"[suite] {net}/{dataset} test accuracy {res.best_acc:.2f}%, train (eval mode) "
          f"{mem.get('train_eval_acc', float('nan')):.2f}%", file=sys.stderr)


def suite_protocol(suite: dict[str, Any]) -> dict[str, str]:
    """The suite's `protocol = "authors"|"ours"` key as a setting of every method ({} if absent)."""
    if "protocol" not in suite:
        return {}
    from ssd.methods.protocol import check_protocol

    check_protocol(suite["protocol"])
    return {"protocol": suite["protocol"]}


def ulira_shadows(suite: dict[str, Any], task: dict[str, Any]) -> int:
    """U-LiRA's shadow count for a task (0: off, the default): the task's `ulira`, else the
    suite's top-level `ulira`, which applies to random tasks only. Audited on the first seed."""
    value = task.get("ulira", suite.get("ulira", 0) if task["task"] == "random" else 0)
    if value and task["task"] != "random":
        raise UserError(f"ulira = {value} on a {task['task']} task: U-LiRA audits the random task only")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UserError(f"ulira must be a number of shadow models (even, >= 4) or 0, got {value!r}")
    if value:
        from ssd.privacy.audit import UliraSettings

        UliraSettings.from_dict(value, dict(task.get("ulira_settings", suite.get("ulira_settings", {}))))
        if value % 2 or value < 4:
            raise UserError(f"ulira = {value}: U-LiRA needs an even number of at least 4 shadow models")
    return value


def build_grid(suite: dict[str, Any], args: argparse.Namespace) -> list[Any]:
    from ssd.cli import method_overrides
    from ssd.experiment import RunSpec
    from ssd.methods.registry import METHODS

    seeds = suite_seeds(suite, args)
    methods = grid_methods(suite, args.methods)
    device = args.device or suite.get("device", "cpu")
    grid = []
    for net in args.nets.split(",") if args.nets else suite.get("nets", ["ConvNet"]):
        for task in suite["tasks"]:
            table = importlib.import_module(TASK_MAINS[task["task"]]).SSD_PARAMS
            ckpt = Path(checkpoint_for(suite, net, task["dataset"]))
            for cls in task.get("classes", [None]):
                for seed in seeds:
                    audit = ulira_shadows(suite, task) if seed == seeds[0] else 0
                    audit_settings = dict(task.get("ulira_settings", suite.get("ulira_settings", {})))
                    for label, method, settings in methods:
                        if task["task"] not in METHODS.get(method).tasks:
                            continue
                        over = method_overrides(method, net, table, None, None, None,
                                                {**suite_protocol(suite), **settings,
                                                 **task.get("method_settings", {}).get(method, {})})  # a task's own win
                        grid.append(RunSpec(
                            task=task["task"], net=net, dataset=task["dataset"], weight_path=str(ckpt),
                            method=method, forget_class=cls, n_forget=task.get("n_forget", 100), seed=seed,
                            device=device, batch_size=suite.get("batch_size"), data_root=args.data_root,
                            download=args.download, retain_eval_size=suite.get("retain_eval_size", 5000),
                            overrides=over, pretrained=suite.get("pretrained", {}).get(net),
                            ulira=audit, ulira_settings=audit_settings, label=label,
                        ))
    return grid


def sweep_jobs(suite: dict[str, Any], args: argparse.Namespace, done: frozenset[str], shas: dict[str, str],
               device: str) -> list[Any]:
    """The suite's `[[sweeps]]` (α or λ grids on one forget request) as jobs, run after the
    grid's. They resume point by point: a sweep whose points are all recorded is skipped, and
    a job computes only the points not recorded yet (its `done`)."""
    from ssd.backends.jobs import SweepPayload, sweep_job
    from ssd.experiment import RunSpec
    from ssd.results import run_key
    from ssd.sweep import DEFAULT_METHODS, sweep_keys
    from ssd.utils import sha256_file

    seed = suite_seeds(suite, args)[0]
    jobs = []
    for sw in suite.get("sweeps", []):
        net = sw.get("net", (suite.get("nets") or ["ConvNet"])[0])
        ckpt = checkpoint_for(suite, net, sw["dataset"])
        ensure_checkpoint(Path(ckpt), net, sw["dataset"], device, args.data_root, args.download,
                          progress=not args.no_progress, **pretrain_settings(suite, net))
        shas.setdefault(ckpt, sha256_file(ckpt))
        sweep_id = run_key({**sw, "net": net, "seed": seed, "checkpoint_sha256": shas[ckpt]})
        spec = RunSpec(task=sw["task"], net=net, dataset=sw["dataset"], weight_path=ckpt, method="ssd",
                       forget_class=sw.get("forget_class"), n_forget=sw.get("n_forget", 100), seed=seed,
                       device=device, data_root=args.data_root, download=args.download,
                       retain_eval_size=suite.get("retain_eval_size", 5000),
                       overrides={**suite_protocol(suite), **sw.get("set", {})})
        base = sw.get("baseline_alphas")
        if set(sweep_keys(spec, shas[ckpt], sw.get("alphas", [10.0]), sw.get("lambdas", [1.0]),
                          sw.get("methods", DEFAULT_METHODS), base)) <= done:
            continue  # every point recorded
        print(f"[suite] sweep {sw['task']} {sw['dataset']} {sw.get('forget_class') or ''}: "
              f"alphas {sw.get('alphas')} lambdas {sw.get('lambdas', [1.0])} (recorded points are skipped)",
              file=sys.stderr)
        jobs.append(sweep_job(SweepPayload(
            spec, alphas=tuple(sw.get("alphas", [10.0])), lambdas=tuple(sw.get("lambdas", [1.0])),
            methods=tuple(sw.get("methods", DEFAULT_METHODS)), baseline_alphas=None if base is None else tuple(base),
            suite_sweep=sweep_id, done=done), sweep_id))
    return jobs


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


def print_grid(grid: list[Any]) -> None:
    """What a suite would run: runs per task × dataset × method, and each checkpoint's state."""
    from collections import Counter

    counts = Counter((s.task, s.dataset, s.net, s.label or s.method) for s in grid)
    for (task, dataset, net, method), n in sorted(counts.items()):
        print(f"{task:10} {dataset:12} {net:9} {method:16} {n:5d} runs")
    for net, dataset, path in sorted({(s.net, s.dataset, s.weight_path) for s in grid}):
        state = "present" if Path(path).is_file() else "missing (pretrained first)"
        print(f"checkpoint {net}/{dataset}: {path} — {state}")
    print(f"{len(grid)} runs in total on {grid[0].device if grid else '-'}")


def run_suite(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    from ssd.cli import HelpFormatter, split_list

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
    p.add_argument("--report", default=None, help="report folder (default: RESULTS_report beside the results)")
    p.add_argument("--no-sweeps", action="store_true", help="skip the suite's [[sweeps]]")
    p.add_argument("--no-report", action="store_true", help="skip writing the report at the end")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="replace a top-level suite setting, e.g. --set width=64 --set train_subset=None")
    p.add_argument("--dry-run", action="store_true", help="print the grid and check what it needs (data, ViT "
                   "weights, device, writable outputs); run nothing; exit 2 if something is missing")
    from ssd.backends import add_backend_args, backend_from_args, drive
    from ssd.backends.claims import claimed_jobs
    from ssd.backends.jobs import cell_label, grid_jobs

    add_backend_args(p)
    args = p.parse_args(argv)
    if args.no_progress:  # also inside the methods (ssd.backends.jobs.run_cell)
        os.environ["SSD_NO_PROGRESS"] = "1"
    args.methods = ",".join(split_list(args.methods)) if args.methods else None
    args.nets = ",".join(split_list(args.nets)) if args.nets else None

    from ssd.experiment import method_config, spec_key
    from ssd.results import AlreadyRecorded, append_row, done_keys, read_rows, release_all
    from ssd.summary import format_table, summarize
    from ssd.utils import resolve_device, sha256_file

    suite = apply_sets(load_suite(args.suite), args.set)
    results = Path(args.results or suite.get("results", f"results/{args.suite}.jsonl"))
    logger = args.logger or suite.get("logger", "none")
    report = None if args.no_report else (Path(args.report) if args.report
                                          else results.with_name(f"{results.stem}_report"))
    grid = build_grid(suite, args)
    for spec in grid:  # every method setting checked before any work (pretraining included)
        method_config(spec.method, spec)
    if args.dry_run:
        print_grid(grid)
        from ssd.suite.preflight import suite_needs

        needs = suite_needs(suite, grid, data_root=args.data_root, results=results, cache_dir=args.cache_dir,
                            report=report)
        for ok, line in needs:
            print(f"{'ok     ' if ok else 'MISSING'} {line}")
        missing = [line for ok, line in needs if not ok]
        if missing:
            raise UserError(f"dry run: {len(missing)} of the suite's needs are missing (MISSING lines above)")
        return []
    if args.backend == "serial" or not all(Path(s.weight_path).is_file() for s in grid):
        resolve_device(grid[0].device if grid else "cpu")  # (a Ray driver may have no GPU of its own)
    check_outputs(args, results, report, grid)
    for net, dataset, path in sorted({(s.net, s.dataset, s.weight_path) for s in grid}):
        ensure_checkpoint(Path(path), net, dataset, grid[0].device, args.data_root, args.download,
                          progress=not args.no_progress, **pretrain_settings(suite, net))
    shas = {p: sha256_file(p) for p in {s.weight_path for s in grid}}  # each checkpoint hashed once
    done = done_keys([results])  # recorded runs and sweep points (sweeps resume point by point)
    keyed = {spec_key(s, method_config(s.method, s), shas[s.weight_path]): s for s in grid}
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

    backend = backend_from_args(args, args.cache_dir)
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
    print(format_table(summarize(rows, metrics=shown), metrics=shown))
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

