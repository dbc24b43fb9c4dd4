"""Which configuration a result row ran, so reports never pool two settings as if they were seeds.

The mains append to one results file per task by default: `--alpha 10` and `--alpha 1000` (or a
method at two learning rates) land side by side. A table row must hold one configuration: when
a method of one (task, dataset, net) table ran with more than one, each gets its own row,
labelled with the settings that tell them apart (`ssd[alpha=1000]`), and the report says which
forget request and seed held several.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import defaultdict
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

Row = dict[str, Any]
# Never part of a configuration: the seed is what tables average over; the rest do not change a result.
NOT_SETTINGS = ("seed", "device", "progress", "cache_dir")
RUN_SETTINGS = ("retain_eval_size",)  # run-level settings that change what is measured


def base_method(row: Row) -> str:
    """The method a row's label stands for (a suite variant's `variant_of`, else `method`)."""
    return str(row.get("variant_of") or row.get("method"))


def settings_of(row: Row) -> dict[str, Any] | None:
    """The settings that make `row`'s run what it is (None: the row records none, an older row).

    The method config as resolved (SSD's search grid only when α is "search", its importance
    reference as resolved, as the run key does), the run settings that change what is measured,
    and the checkpoint. The baseline (the model unchanged) has no method settings."""
    config = row.get("config") if isinstance(row.get("config"), dict) else {}
    cfg, run = config.get("method"), config.get("run")
    if not isinstance(cfg, dict):
        return None
    out: dict[str, Any] = {}
    if base_method(row) != "baseline":
        # a setting added after the row was written counts as its default (what the older code ran)
        out = {**_defaults(base_method(row)), **cfg}
        out = {k: v for k, v in out.items() if k not in NOT_SETTINGS}
        if out.get("alpha") != "search":
            out = {k: v for k, v in out.items() if not k.startswith("search_")}
        if "reference" in out and "alpha" in out:
            from ssd.methods.alpha_select import effective_reference

            out["reference"] = effective_reference(SimpleNamespace(**out))
    if isinstance(run, dict):
        out.update({k: run[k] for k in RUN_SETTINGS if k in run})
    # the arithmetic as the run's device made it (ssd/precision.py); rows from before it was recorded ran fp32
    out["precision"] = row.get("precision") or "fp32"
    out["channels_last"] = bool(row.get("channels_last"))
    if row.get("checkpoint_sha256"):
        out["checkpoint"] = str(row["checkpoint_sha256"])[:8]
    return out


def _defaults(method: str) -> dict[str, Any]:
    """The registry config's default settings of `method` ({} for a method this checkout lacks)."""
    import ssd.methods  # noqa: F401  (registers the built-in methods)
    from ssd.experiment import METHOD_ALIASES
    from ssd.methods.registry import METHODS

    name = METHOD_ALIASES.get(method, method)
    if name not in METHODS:
        return {}
    out = {}
    for f in dataclasses.fields(METHODS.get(name).config):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return json.loads(json.dumps(out, default=str))  # as a row stores them (tuples as lists)


def _plain(value: Any) -> Any:
    """Numbers as floats (α = 10 and 10.0 are one setting), containers recursively, for comparing settings."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def _text(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:g}"
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def _label(method: str, c: dict[str, Any] | None, differ: list[str], implied: bool = True) -> str:
    """`method[k=v,...]` over the settings in `differ` that `c` has; SSD's reference is left out
    where α implies it (`implied`: "retain" for auto, "full" otherwise)."""
    if c is None:
        return f"{method}[settings unrecorded]"
    shown = [k for k in differ if k in c]
    if implied and "alpha" in c and c.get("reference") == ("retain" if c["alpha"] == "auto" else "full"):
        shown = [k for k in shown if k != "reference"]
    inner = ",".join(f"{k}={_text(c[k])}" for k in shown)
    return f"{method}[{inner or 'settings recorded'}]"


def _table(row: Row) -> tuple[Any, ...]:
    return (row.get("task"), row.get("dataset"), row.get("net"), row.get("method"))


def label_configurations(rows: Sequence[Row]) -> list[Row]:
    """`rows` with each method of a (task, dataset, net) table that ran with more than one
    configuration relabelled per configuration: `method` becomes `ssd[alpha=10]` (the settings
    that differ between them; `variant_of` keeps the method, `config_split` marks the row).
    Rows of a method with one configuration (and sweep rows) are returned unchanged."""
    groups: dict[tuple[Any, ...], dict[str, dict[str, Any] | None]] = defaultdict(dict)
    ids: list[str | None] = []
    for r in rows:
        if isinstance(r.get("sweep"), dict):
            ids.append(None)
            continue
        s = settings_of(r)
        ident = json.dumps(_plain(s), sort_keys=True, default=str)
        groups[_table(r)][ident] = s
        ids.append(ident)
    labels: dict[tuple[tuple[Any, ...], str], str] = {}
    for table, configs in groups.items():
        if len(configs) < 2:
            continue
        known = [c for c in configs.values() if c is not None]
        keys = sorted({k for c in known for k in c})
        # a setting tells configurations apart when it differs among those that have it (SSD's
        # search grid exists only for α = "search"); short labels first, every difference if they clash
        short = {ident: _label(table[3], c, [k for k in keys if len({_text(x[k]) for x in known if k in x}) > 1])
                 for ident, c in configs.items()}
        if len(set(short.values())) < len(short):
            every = [k for k in keys if len({_text(x.get(k, "–")) for x in known}) > 1]
            short = {ident: _label(table[3], c, every, implied=False) for ident, c in configs.items()}
        labels.update({(table, ident): label for ident, label in short.items()})
    out = []
    for r, ident in zip(rows, ids, strict=True):
        label = None if ident is None else labels.get((_table(r), ident))
        out.append(r if label is None else {**r, "method": label, "variant_of": base_method(r), "config_split": True})
    return out


def mixed_cells(rows: Sequence[Row]) -> list[str]:
    """One line per forget request and seed whose rows hold more than one configuration of a
    method (after `label_configurations`): what the report and stderr say about them."""
    from ssd.report.rows import class_label

    held: dict[tuple[Any, ...], set[str]] = defaultdict(set)
    for r in rows:
        if r.get("config_split"):
            key = (r.get("task"), r.get("dataset"), r.get("net"), class_label(r), r.get("seed"), base_method(r))
            held[key].add(str(r.get("method")))
    return [f"{task} {dataset} {net} {cls} seed {seed}: {len(labels)} configurations of {method} "
            f"({', '.join(sorted(labels))}), each shown as its own row"
            for (task, dataset, net, cls, seed, method), labels in held.items() if len(labels) > 1]
