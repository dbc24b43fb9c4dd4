"""The grid a suite names: task × class × method × seed as RunSpecs, and its [[sweeps]] as jobs."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any

from ssd.errors import UserError
from ssd.suite.checkpoints import checkpoint_for, ensure_checkpoint, pretrain_settings

TASK_MAINS = {"full_class": "forget_full_class_main", "sub_class": "forget_class_main",
              "random": "forget_random_main"}
# retrain first, so later methods of the same cell (baseline too) get the activation distance to it
FIRST = ("retrain", "baseline")


def parse_seeds(text: str) -> list[int]:
    """`1-5`, `0,3,7` or a mix."""
    seeds: list[int] = []
    for part in text.split(","):
        a, dash, b = part.strip().partition("-")
        try:
            first, last = int(a), int(b) if dash else int(a)
        except ValueError:
            raise UserError(f"--seeds expects whole numbers like 1-5 or 0,3,7; got {text!r}") from None
        if last < first:
            raise UserError(f"--seeds {text!r}: the range {part.strip()} is backwards (write {last}-{first})")
        seeds.extend(range(first, last + 1))
    if not seeds:
        raise UserError(f"--seeds {text!r} names no seed (is the range backwards?)")
    return seeds


def suite_seeds(suite: dict[str, Any], args: argparse.Namespace) -> list[int]:
    """`--seeds` if given, else the suite's."""
    return parse_seeds(args.seeds) if args.seeds else list(suite.get("seeds", [0]))


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


def suite_protocol(suite: dict[str, Any]) -> dict[str, str]:
    """The suite's `protocol = "authors"|"ours"` key as a setting of every method ({} if absent)."""
    if "protocol" not in suite:
        return {}
    from ssd.methods.protocol import check_protocol

    check_protocol(suite["protocol"])
    return {"protocol": suite["protocol"]}


def ulira_shadows(suite: dict[str, Any], task: dict[str, Any]) -> int:
    """U-LiRA's shadow count for a task (0: off, the default): the task's `ulira`, else the
    suite's top-level `ulira`, which applies to random tasks only (a class task's audit, which
    trains its own shadows per class, is asked for in that task). Audited on the first seed."""
    value = task.get("ulira", suite.get("ulira", 0) if task["task"] == "random" else 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UserError(f"ulira must be a number of shadow models (even, >= 4) or 0, got {value!r}")
    if value:
        from ssd.privacy.settings import UliraSettings

        if value % 2 or value < 4:
            raise UserError(f"ulira = {value}: U-LiRA needs an even number of at least 4 shadow models")
        settings = UliraSettings.from_dict(value, dict(task.get("ulira_settings", suite.get("ulira_settings", {}))))
        if task["task"] != "random" and settings.candidates is not None:
            raise UserError(f"ulira_settings.candidates on a {task['task']} task: the class audit attacks every image "
                            "of the forgotten class in the pool (set pool instead)")
    return value


def check_suite_wide_audit(suite: dict[str, Any]) -> None:
    """A top-level `ulira` reaches random tasks only: in a suite without one it would audit
    nothing, silently (refused); beside class tasks that do not ask in their own table, one note."""
    if not suite.get("ulira"):
        return
    tasks = suite.get("tasks", [])
    if not any(t.get("task") == "random" for t in tasks):
        raise UserError(f"ulira = {suite['ulira']} at the top of the suite audits random tasks only, and this suite "
                        "has none: set ulira in each class task's own table to audit it")
    silent = [t for t in tasks if t.get("task") != "random" and "ulira" not in t]
    if silent:
        print(f"note: the top-level ulira audits the random tasks; {len(silent)} class task(s) are not audited "
              "(set ulira in a class task's own table to audit it)", file=sys.stderr)


def plan_audits(suite: dict[str, Any], grid: list[Any]) -> None:
    """Every audited run's U-LiRA plan (the pool within the training data, the candidates within
    half the pool, the memory estimate: ssd.privacy.audit.plan_for_run, what each run checks
    before its method) made before any work, on the CPU, from the checkpoint's metadata (or what
    the suite will pretrain it with). A value that cannot work refuses the whole suite in one line;
    it used to refuse the first seed's cell, plain methods included, at run time with exit 0."""
    import dataclasses
    import json

    audited: dict[tuple[Any, ...], Any] = {}
    for s in grid:
        if s.ulira:
            key = (s.net, s.dataset, s.weight_path, s.n_forget, s.ulira, json.dumps(s.ulira_settings, default=str))
            audited.setdefault(key, s)
    if not audited:
        return
    from ssd.experiment import Session, build_splits
    from ssd.privacy.audit import plan_for_run
    from ssd.suite.estimate import checkpoint_facts

    session = Session()
    for spec in audited.values():
        spec = dataclasses.replace(spec, device="cpu", channels_last=False)
        options, subset = checkpoint_facts(suite, spec)
        splits = build_splits(spec, session, "", {"model_options": options, "data_subset": subset})
        try:
            plan_for_run(spec, session.audit_scope(spec), splits)
        except UserError as err:
            raise UserError(f"suite: the U-LiRA audit of the {spec.task} task on {spec.dataset} ({spec.net}, "
                            f"n_forget {spec.n_forget}) cannot run: {err}") from None


def build_grid(suite: dict[str, Any], args: argparse.Namespace) -> list[Any]:
    from ssd.cli import method_overrides
    from ssd.experiment import RunSpec
    from ssd.methods.registry import METHODS

    seeds = suite_seeds(suite, args)
    methods = grid_methods(suite, args.methods)
    device = args.device or suite.get("device", "cpu")
    check_suite_wide_audit(suite)
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
                            threads=getattr(args, "threads", None),
                            precision=suite.get("precision"), channels_last=suite.get("channels_last", False),
                        ))
    return grid


def sweep_jobs(suite: dict[str, Any], args: argparse.Namespace, done: frozenset[str], shas: dict[str, str],
               device: str) -> list[Any]:
    """The suite's `[[sweeps]]` (α or λ grids on one forget request) as jobs, run after the
    grid's. They resume point by point: a sweep whose points are all recorded is skipped, and
    a job computes only the points not recorded yet (its `done`). A point two sweeps share
    (the baseline row of two sweeps on one forget request: its run key does not depend on the
    grid) is computed by the first only; the later one skips it as recorded (one run key, one row)."""
    from ssd.backends.jobs import SweepPayload
    from ssd.experiment import RunSpec
    from ssd.results import run_key
    from ssd.sweep import DEFAULT_METHODS, sweep_job, sweep_keys
    from ssd.utils import sha256_file

    seed = suite_seeds(suite, args)[0]
    jobs = []
    taken: set[str] = set()  # points an earlier sweep of this suite computes
    for sw in suite.get("sweeps", []):
        net = sw.get("net", (suite.get("nets") or ["ConvNet"])[0])
        ckpt = checkpoint_for(suite, net, sw["dataset"])
        if ckpt not in shas:  # the grid's checkpoints are ensured and hashed already
            ensure_checkpoint(Path(ckpt), net, sw["dataset"], device, args.data_root, args.download,
                              progress=not args.no_progress, **pretrain_settings(suite, net))
            shas[ckpt] = sha256_file(ckpt)
        sweep_id = run_key({**sw, "net": net, "seed": seed, "checkpoint_sha256": shas[ckpt]})
        spec = RunSpec(task=sw["task"], net=net, dataset=sw["dataset"], weight_path=ckpt, method="ssd",
                       forget_class=sw.get("forget_class"), n_forget=sw.get("n_forget", 100), seed=seed,
                       device=device, data_root=args.data_root, download=args.download,
                       retain_eval_size=suite.get("retain_eval_size", 5000),
                       overrides={**suite_protocol(suite), **sw.get("set", {})},
                       precision=suite.get("precision"), channels_last=suite.get("channels_last", False))
        base = sw.get("baseline_alphas")
        keys = set(sweep_keys(spec, shas[ckpt], sw.get("alphas", [10.0]), sw.get("lambdas", [1.0]),
                              sw.get("methods", DEFAULT_METHODS), base))
        skip = done | (keys & taken)
        taken |= keys
        if keys <= skip:
            continue  # every point recorded, or computed by an earlier sweep
        print(f"[suite] sweep {sw['task']} {sw['dataset']} {sw.get('forget_class') or ''}: "
              f"alphas {sw.get('alphas')} lambdas {sw.get('lambdas', [1.0])} (recorded points are skipped)",
              file=sys.stderr)
        jobs.append(sweep_job(SweepPayload(
            spec, alphas=tuple(sw.get("alphas", [10.0])), lambdas=tuple(sw.get("lambdas", [1.0])),
            methods=tuple(sw.get("methods", DEFAULT_METHODS)), baseline_alphas=None if base is None else tuple(base),
            suite_sweep=sweep_id, done=frozenset(skip)), sweep_id))
    return jobs


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
