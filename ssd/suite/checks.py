"""The value checks of a suite file: every table and list has the shape the grid reads, every
class, method and variant label exists, every grid of α/λ follows the mains' rule. A wrong value
is one line before any work, never a traceback or a cell dropped at run time with exit 0."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ssd.cli import whole_number
from ssd.errors import UserError


def check_class(task: str, dataset: str, cls: Any, where: str) -> None:
    """A forget class the dataset has (by name, alias or index), a fine class for sub_class:
    refused up front, not a dropped cell at run time (`classes = ["tow"]` used to exit 0)."""
    from datasets import dataset_info, resolve_class

    if isinstance(cls, bool) or not isinstance(cls, (str, int)):
        raise UserError(f"{where}: a class is a name or an index, e.g. \"2\"; got {cls!r}")
    info = dataset_info(dataset)
    fine = task == "sub_class"
    names = info.fine_classes if fine else info.classes
    if names is None:
        raise UserError(f"{where}: sub-class forgetting needs a coarse dataset (e.g. Cifar20), not {dataset}")
    try:
        resolve_class(cls, names, info.fine_aliases if fine else info.aliases)
    except UserError as err:
        raise UserError(f"{where}: {err}") from None


def check_variants(variants: Any, path: Path | str) -> None:
    """A variant's label names its own row: a method's name (`"ssd" = {method = "ssd", alpha = "auto"}`)
    would silently replace that method's runs, and `"retrain" = {...}` would become the report's
    reference, so such labels are refused, as are labels that look like a configuration label."""
    import ssd.methods  # noqa: F401  (registers the built-in methods)
    from ssd.experiment import METHOD_ALIASES
    from ssd.methods.registry import METHODS

    if not isinstance(variants, dict):
        raise UserError(f"suite {path}: [variants] must be a table of label = {{method = ..., setting = ...}}")
    taken = {n.lower() for n in (*METHODS.names(), *METHOD_ALIASES)}
    for label, v in variants.items():
        if label.lower() in taken or "[" in label or not label.strip():
            what = "a method's name" if label.lower() in taken else "not a usable label (empty, or holds '[')"
            raise UserError(f"suite {path}: variant label {label!r} is {what}: its rows would pass for another's; "
                            "name it e.g. \"ssd@auto\"")
        if not isinstance(v, dict) or "method" not in v:
            raise UserError(f"suite {path}: variant {label!r} needs a method, e.g. {{method = \"ssd\", alpha = \"auto\"}}")
        METHODS.get(str(v["method"]))


def method_names() -> tuple[set[str], dict[str, str]]:
    """(registered method names, the authors' aliases → name)."""
    import ssd.methods  # noqa: F401  (registers the built-in methods)
    from ssd.experiment import METHOD_ALIASES
    from ssd.methods.registry import METHODS

    return set(METHODS.names()), dict(METHOD_ALIASES)


def check_settings_table(table: Any, where: str) -> None:
    """`[method_settings]`: a table per registered method name (an alias or a variant label there
    would be silently ignored: the grid looks settings up by the method's own name)."""
    if not isinstance(table, dict):
        raise UserError(f"{where} must be a table of method = {{setting = value}}; got {table!r}")
    names, aliases = method_names()
    for method, settings in table.items():
        if method not in names:
            hint = f" (write {aliases[method]!r})" if method in aliases else ""
            raise UserError(f"{where}: no method {method!r}{hint}; known: {', '.join(sorted(names))}")
        if not isinstance(settings, dict):
            raise UserError(f"{where}.{method} must be a table of settings, e.g. {{lr = 0.1}}; got {settings!r}")


def check_values(suite: dict[str, Any], path: Path | str) -> None:
    """Types and ranges of the top-level settings, each task's and each sweep's."""
    from models import MODELS
    from ssd.methods.registry import check_grid

    where = f"suite {path}"
    names, _ = method_names()
    methods = suite.get("methods", "all")
    labels = set(suite.get("variants", {}))
    if methods != "all":
        if not isinstance(methods, list) or not methods or not all(isinstance(m, str) for m in methods):
            raise UserError(f"{where}: methods must be \"all\" or a non-empty list of names; got {methods!r}")
        unknown = [m for m in methods if m not in names and m not in labels]
        if unknown:
            raise UserError(f"{where}: unknown method(s) {', '.join(unknown)} in methods; known: "
                            f"{', '.join(sorted(names | labels))}")
    nets = suite.get("nets", ["ConvNet"])
    if not isinstance(nets, list) or not nets or not all(isinstance(n, str) for n in nets):
        raise UserError(f"{where}: nets must be a non-empty list of model names, e.g. nets = [\"ConvNet\"]; got {nets!r}")
    for n in nets:
        MODELS.get(n)
    for key in ("results", "device", "description"):
        if key in suite and not isinstance(suite[key], str):
            raise UserError(f"{where}: {key} must be a string; got {suite[key]!r}")
    if suite.get("logger", "none") not in ("none", "wandb"):
        raise UserError(f"{where}: logger must be \"none\" or \"wandb\"; got {suite['logger']!r}")
    options = {o for n in MODELS.names() for o in MODELS.get(n).options}  # sizes today (ResNet18's width)
    for key in sorted(options & set(suite)):
        if not whole_number(suite[key], 1):
            raise UserError(f"{where}: {key} (an architecture setting) must be a whole number ≥ 1; got {suite[key]!r}")
    for key, low in (("retain_eval_size", 1), ("batch_size", 1), ("pretrain_epochs", 1)):
        if key in suite and not whole_number(suite[key], low):
            raise UserError(f"{where}: {key} must be a whole number ≥ {low}; got {suite[key]!r}")
    for key in ("checkpoints", "pretrained", "method_notes", "ulira_settings"):
        if key in suite and not isinstance(suite[key], dict):
            raise UserError(f"{where}: {key} must be a table; got {suite[key]!r}")
    for key in ("checkpoints", "pretrained"):
        bad = {k: v for k, v in suite.get(key, {}).items() if not isinstance(v, str)}
        if bad:
            raise UserError(f"{where}: [{key}] maps NET/DATASET (or NET) to a path; got {bad!r}")
    check_settings_table(suite.get("method_settings", {}), f"{where}: method_settings")
    for i, t in enumerate(suite.get("tasks", []), 1):
        if "method_settings" in t:
            check_settings_table(t["method_settings"], f"{where}: task {i} method_settings")
        if "ulira_settings" in t and not isinstance(t["ulira_settings"], dict):
            raise UserError(f"{where}: task {i} ulira_settings must be a table; got {t['ulira_settings']!r}")
        n = t.get("n_forget", 100)
        if not (whole_number(n, 1) or (isinstance(n, float) and 0 < n < 1)):
            raise UserError(f"{where}: task {i} n_forget must be a whole number ≥ 1 or a fraction in (0, 1); got {n!r}")
    for i, sw in enumerate(suite.get("sweeps", []), 1):
        for key, positive in (("alphas", False), ("baseline_alphas", False), ("lambdas", True)):
            if key in sw:
                check_grid(f"{where}: sweep {i} {key}", sw[key], positive=positive)
        sweep_methods = sw.get("methods", ["ssd"])
        if not isinstance(sweep_methods, list) or not sweep_methods or any(m not in names for m in sweep_methods):
            raise UserError(f"{where}: sweep {i} methods must be a non-empty list of method names; got {sweep_methods!r}")
        if "set" in sw and not isinstance(sw["set"], dict):
            raise UserError(f"{where}: sweep {i} set must be a table of SSD settings; got {sw['set']!r}")


# The suite's [ray] keys and the flags they stand for (ssd.suite.run.suite_flag_defaults).
RAY_KEYS = {"address": "ray_address", "cpus_per_run": "cpus_per_run", "gpus_per_run": "gpus_per_run"}


def check_run_settings(suite: dict[str, Any], path: Path | str) -> None:
    """Where and how the runs execute: `threads`, `backend`, `[ray]`, `report` (defaults of their flags)."""
    from ssd.cli import check_threads
    from ssd.names import BACKEND_NAMES

    where = f"suite {path}"
    if "threads" in suite:
        check_threads(suite["threads"], f"{where}: threads")
    if "backend" in suite and suite["backend"] not in BACKEND_NAMES:
        raise UserError(f"{where}: backend must be one of {', '.join(BACKEND_NAMES)}; got {suite['backend']!r}")
    if "ray" in suite:
        ray = suite["ray"]
        if not isinstance(ray, dict):
            raise UserError(f"{where}: ray must be a table, e.g. [ray] with cpus_per_run = 1")
        extra = sorted(set(ray) - set(RAY_KEYS))
        if extra:
            raise UserError(f"{where}: unknown key(s) {', '.join(extra)} in [ray]; known: {', '.join(sorted(RAY_KEYS))}")
        for key in ("cpus_per_run", "gpus_per_run"):
            v = ray.get(key, 1)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise UserError(f"{where}: ray.{key} must be a number > 0; got {v!r}")
        if not isinstance(ray.get("address", ""), str):
            raise UserError(f"{where}: ray.address must be a string (auto, HOST:6379, ray://HOST:10001)")
    if "report" in suite and not (isinstance(suite["report"], str) and suite["report"]):
        raise UserError(f"{where}: report must be a folder path; got {suite['report']!r}")
