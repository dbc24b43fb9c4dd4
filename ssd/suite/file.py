"""A suite file: found by name, read, checked up front (a typo or a wrong type is one line, not a
different experiment: `methds` used to run every method; `seeds = "0-2"` iterated characters),
and `--set KEY=VALUE` applied on top."""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ssd.errors import UserError, one_line
from ssd.names import REPO_ROOT
from ssd.suite.checks import check_class, check_run_settings, check_values, check_variants

TASKS = ("full_class", "sub_class", "random")
# The keys a suite file may hold (a typo such as `methds` is refused, not ignored). Add new keys here.
SUITE_KEYS = {"description", "results", "device", "seeds", "methods", "nets", "logger", "retain_eval_size",
              "batch_size", "method_settings", "tasks", "sweeps", "checkpoints", "pretrained", "variants",
              "backend", "ray", "report", "protocol", "pretrain_epochs", "train_subset", "test_subset", "ulira",
              "ulira_settings", "method_notes", "threads", "precision",
              "channels_last"}  # plus every model's architecture options (e.g. ResNet18's width)
TASK_KEYS = {"task", "dataset", "classes", "n_forget", "ulira", "ulira_settings", "method_settings"}
SWEEP_KEYS = {"task", "dataset", "forget_class", "alphas", "lambdas", "baseline_alphas", "methods", "net", "set",
              "n_forget"}


def check_suite(suite: dict[str, Any], path: Path | str) -> None:
    """Refuse, up front, a suite that would run something other than what it says."""
    from datasets.registry import DATASETS

    def unknown(keys: Any, allowed: set[str], where: str) -> None:
        extra = sorted(set(keys) - allowed)
        if extra:
            raise UserError(f"suite {path}: unknown key(s) {', '.join(extra)} in {where}; "
                            f"known: {', '.join(sorted(allowed))}")

    from models import MODELS

    unknown(suite, SUITE_KEYS | {o for n in MODELS.names() for o in MODELS.get(n).options}, "the top level")
    tasks = suite.get("tasks")
    if not isinstance(tasks, list) or not tasks or not all(isinstance(t, dict) for t in tasks):
        raise UserError(f"suite {path} has no [[tasks]] tables (each with task = ... and dataset = ...)")
    for i, t in enumerate(tasks, 1):
        unknown(t, TASK_KEYS, f"task {i}")
        if t.get("task") not in TASKS:
            raise UserError(f"suite {path}: task {i} is {t.get('task')!r}; known tasks: {', '.join(TASKS)}")
        if "dataset" not in t:
            raise UserError(f"suite {path}: task {i} ({t['task']}) has no dataset")
        DATASETS.get(str(t["dataset"]))
        if t["task"] == "random" and "classes" in t:
            raise UserError(f"suite {path}: task {i} is random (random samples, no class): drop its classes")
        if t["task"] != "random":
            if not isinstance(t.get("classes"), list) or not t["classes"]:
                raise UserError(f"suite {path}: task {i} ({t['task']}) needs a non-empty list of classes to forget, "
                                f"e.g. classes = [\"2\"]; got {t.get('classes')!r}")
            for cls in t["classes"]:
                check_class(t["task"], str(t["dataset"]), cls, f"suite {path}: task {i} ({t['task']})")
    sweeps = suite.get("sweeps", [])
    if not isinstance(sweeps, list) or not all(isinstance(sw, dict) for sw in sweeps):
        raise UserError(f"suite {path}: sweeps must be [[sweeps]] tables (task, dataset, alphas...)")
    for i, sw in enumerate(sweeps, 1):
        unknown(sw, SWEEP_KEYS, f"sweep {i}")
        if sw.get("task") not in TASKS or "dataset" not in sw:
            raise UserError(f"suite {path}: sweep {i} needs task (one of {', '.join(TASKS)}) and dataset")
        DATASETS.get(str(sw["dataset"]))
        if sw["task"] == "random" and sw.get("forget_class") is not None:
            raise UserError(f"suite {path}: sweep {i} is random (random samples, no class): drop its forget_class")
        if sw["task"] != "random":
            check_class(sw["task"], str(sw["dataset"]), sw.get("forget_class"), f"suite {path}: sweep {i} ({sw['task']})")
    seeds = suite.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(x, int) and not isinstance(x, bool)
                                                           for x in seeds):
        raise UserError(f"suite {path}: seeds must be a list of whole numbers, e.g. seeds = [0, 1, 2]; "
                        f"got {seeds!r}")
    check_variants(suite.get("variants", {}), path)
    from ssd.precision import check_precision

    check_precision(suite.get("precision"), f"suite {path}: precision")
    if not isinstance(suite.get("channels_last", False), bool):
        raise UserError(f"suite {path}: channels_last must be true or false, got {suite['channels_last']!r}")
    check_run_settings(suite, path)
    check_values(suite, path)


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


def apply_sets(suite: dict[str, Any], sets: Sequence[str]) -> dict[str, Any]:
    """`--set KEY=VALUE` on the suite command line replaces a top-level suite setting
    (width, train_subset, test_subset, pretrain_epochs, retain_eval_size…); a dotted KEY sets
    one entry inside a table (`ulira_settings.seed=1`, `method_settings.finetune.epochs=5`)."""
    import copy

    from ssd.cli import parse_sets

    over = parse_sets(sets)
    flags = {"seeds": "--seeds 0,1", "methods": "--methods ssd,retrain", "nets": "--nets ConvNet,ResNet18"}
    for key in over:
        if key.split(".")[0] in flags:
            raise UserError(f"--set {key}: the suite's {key.split('.')[0]} are chosen with their own flag, "
                            f"e.g. {flags[key.split('.')[0]]}")
    tables = sorted(k for k in over if "." not in k and isinstance(suite.get(k), (dict, list)))
    if tables:
        raise UserError(f"--set cannot replace the suite's tables {tables}; set one entry (e.g. "
                        f"--set {tables[0]}.NAME=VALUE) or edit the suite file")
    merged = copy.deepcopy(suite)
    for key, value in over.items():
        *path, leaf = key.split(".")
        table = merged
        for i, part in enumerate(path):
            table = table.setdefault(part, {})
            if not isinstance(table, dict):
                raise UserError(f"--set {key}: {'.'.join(path[:i + 1])} is not a table of the suite")
        table[leaf] = value
    if over:
        check_suite(merged, "(after --set)")
    return merged


