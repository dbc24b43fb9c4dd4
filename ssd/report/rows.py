"""Loading result rows and the small lookups every table and figure shares.

Kept apart from the plotting code so tables (no matplotlib) and tests can use it alone.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from ssd.experiment import METHOD_ALIASES, key_from_fields, unaudited_key
from ssd.methods.registry import METHODS
from ssd.results import read_rows

Row = dict[str, Any]
RowsOrPaths = str | os.PathLike[str] | Iterable[Row | str | os.PathLike[str]]

# The paper's column order: reference points first, SSD last; anything else in between.
METHOD_FIRST = ("baseline", "retrain")
METHOD_LAST = ("ssd", "lfssd")


def load_rows(source: RowsOrPaths) -> list[Row]:
    """Rows from a results path, an iterable of paths, or already-parsed row dicts (mixed is fine).

    One run key, one row: a key seen twice (within a file or across files) is counted
    once, and stderr says how many were collapsed, so duplicates never pass for extra seeds.
    A run recorded both with its U-LiRA audit and without it (a grid's cell, and the same cell
    audited by configs/suites/ulira-resnet.toml) is one run, shown once (`with_audit`).
    A method that ran with several configurations in one table gets a labelled row per
    configuration (`ssd[alpha=10]`; ssd.report.configs), never pooled as seeds; stderr names
    the forget requests and seeds that held more than one.
    """
    from ssd.report.configs import label_configurations, mixed_cells

    items = [source] if isinstance(source, (str, os.PathLike)) else source
    rows: list[Row] = []
    for item in items:
        rows.extend([item] if isinstance(item, dict) else read_rows(item))
    problems = [(r, row_problem(r)) for r in rows]
    bad = [(r, why) for r, why in problems if why]
    if bad:
        shown = "; ".join(f"{str(r.get('run_key', r))[:40]}: {why}" for r, why in bad[:3])
        print(f"note: {len(bad)} row(s) that are not result rows were skipped ({shown}"
              f"{'; …' if len(bad) > 3 else ''})", file=sys.stderr)
        rows = [r for r, why in problems if not why]
    unique: dict[Any, Row] = {}
    for i, r in enumerate(rows):
        unique.setdefault(identity(r) or ("row", i), r)
    if len(unique) < len(rows):
        print(f"note: {len(rows) - len(unique)} duplicate row(s) (a run recorded twice) were counted once",
              file=sys.stderr)
    plain = {k: unaudited_key(r) for k, r in unique.items()}  # None unless the row carries an audit
    audits: dict[str, list[Any]] = {}
    for k, p in plain.items():
        if p is not None:
            audits.setdefault(p, []).append(k)
    for line in several_audits(unique, audits):
        print(f"note: {line}", file=sys.stderr)
    extra = {k for ks in audits.values() for k in ks[1:]}  # later audits of a run: the first is shown
    kept = [with_audit(r, unique[audits[k][0]]) if k in audits else r for k, r in unique.items()
            if plain[k] not in unique and k not in extra]
    if len(kept) < len(unique):
        print(f"note: {len(unique) - len(kept)} run(s) recorded both in a grid and with their U-LiRA audit are "
              "shown once: the grid's row with the audit's figures", file=sys.stderr)
    kept = label_configurations(kept)
    for line in mixed_cells(kept):
        print(f"note: {line}", file=sys.stderr)
    return kept


def several_audits(unique: dict[Any, Row], audits: dict[str, list[Any]]) -> list[str]:
    """One line per run audited more than once (say with `ulira_settings.seed` 0 and 1): the
    report shows the first recorded audit, once; the line names how the audits differ."""
    lines = []
    for keys in audits.values():
        if len(keys) > 1:
            runs = [(unique[k].get("config") or {}).get("run") or {} for k in keys]
            how = "; ".join(f"ulira={r.get('ulira')} ulira_settings={r.get('ulira_settings') or {}}" for r in runs)
            row = unique[keys[0]]
            lines.append(f"{len(keys)} U-LiRA audits of one run ({row.get('method')} {row.get('task')} seed "
                         f"{row.get('seed')}: {how}); the report shows the first recorded one; put each audit "
                         "in its own results file to compare them")
    return lines


# A result row's fields the report reads, with the types it reads them as (None allowed unless required).
ROW_FIELDS: dict[str, tuple[type, ...]] = {
    "task": (str,), "dataset": (str,), "net": (str,), "method": (str,), "metrics": (dict,),
    "run_key": (str,), "seed": (int,), "forget_class": (int,), "forget_class_name": (str,), "n_forget": (int,),
    "details": (dict,), "config": (dict,), "sweep": (dict,), "method_stats": (dict,), "variant_of": (str,),
    "checkpoint_sha256": (str,), "checkpoint": (str,)}
REQUIRED = ("method", "metrics")
LIST_DETAILS = ("test_class_acc", "forget_confusion", "retain_test_confusion")
ULIRA_DETAILS = ("shadows", "pool", "candidates", "epochs", "pairs", "score", "score_ref", "candidate_indices")


def audit_problem(row: Row) -> str | None:
    """Why a row's `details.ulira` cannot be drawn by the privacy section (ssd/report/privacy.py), or None."""
    audit = (row.get("details") or {}).get("ulira") or {}
    lacking = [k for k in ULIRA_DETAILS if k not in audit]
    lacking += [k for k in ("score", "score_ref", "candidate_indices") if k in audit and not isinstance(audit[k], list)]
    if lacking:
        return f"details.ulira lacks or misshapes {', '.join(dict.fromkeys(lacking))}"
    if any(v is not None and not isinstance(v, (int, float)) for k in ("score", "score_ref") for v in audit[k]):
        return "details.ulira scores are not numbers"
    return None


def row_problem(row: Any) -> str | None:
    """Why `row` cannot be a result row (a hand-edited or foreign line: `{"foo": 1}`, metrics as a
    string), or None: such rows are skipped with a note, never a traceback halfway through a report."""
    if not isinstance(row, dict):
        return "not a JSON object"
    missing = [k for k in REQUIRED if row.get(k) is None]
    if missing:
        return f"no {', '.join(missing)}"
    for key, types in ROW_FIELDS.items():
        value = row.get(key)
        if value is not None and (not isinstance(value, types) or (isinstance(value, bool) and bool not in types)):
            return f"{key} is {type(value).__name__}, not {' or '.join(t.__name__ for t in types)}"
    odd = [k for k, v in row["metrics"].items() if v is not None and not isinstance(v, (int, float))]
    if odd:
        return f"metrics {', '.join(map(str, odd[:3]))} not numbers"
    config = row.get("config") or {}
    if any(config.get(k) is not None and not isinstance(config[k], dict) for k in ("method", "run")):
        return "config.method or config.run is not an object"
    details = row.get("details") or {}
    odd = [k for k in LIST_DETAILS if details.get(k) is not None and not isinstance(details[k], list)]
    if odd or not isinstance(details.get("ulira") or {}, dict):
        return f"details {', '.join(odd) or 'ulira'} of the wrong shape"
    if "sweep" in row and row["sweep"] is not None and not isinstance(row["sweep"].get("param"), str):
        return "a sweep row without its param"
    return None


def with_audit(row: Row, audited: Row) -> Row:
    """A grid's row with the U-LiRA figures of the same run audited elsewhere. Everything else
    (accuracies, MIA, times) stays the grid's, so a cell's times are measured in one run."""
    metrics = {**row.get("metrics", {}), **{k: v for k, v in audited.get("metrics", {}).items()
                                            if k.startswith("ULiRA")}}
    details = {**(row.get("details") or {}), "ulira": (audited.get("details") or {}).get("ulira")}
    return {**row, "metrics": metrics, "details": details, "ulira_run_key": audited.get("run_key")}


def identity(row: Row) -> str | None:
    """Which run a row records: its key recomputed from the config it stores (so a row written
    before a change to what keys hold still matches its run), else its stored run_key."""
    config = row.get("config") or {}
    if not is_sweep(row) and isinstance(config.get("run"), dict) and isinstance(config.get("method"), dict) \
            and row.get("checkpoint_sha256"):
        return key_from_fields(config["run"], config["method"], row["checkpoint_sha256"])
    return row.get("run_key") if isinstance(row.get("run_key"), str) else None


def is_sweep(row: Row) -> bool:
    """Sweep rows (from scripts/sweep.py) go to sweep figures, never into the seed tables."""
    return isinstance(row.get("sweep"), dict)


def split_rows(rows: Sequence[Row]) -> tuple[list[Row], list[Row]]:
    """(ordinary runs, sweep rows)."""
    return [r for r in rows if not is_sweep(r)], [r for r in rows if is_sweep(r)]


def df_key(task: str | None) -> str:
    """Which forget accuracy a table shows: forget-test for class tasks (as the paper), forget-train for random.

    The random task has no held-out forget set, so its DfTest is null.
    """
    return "Df" if task == "random" else "DfTest"


def order_methods(methods: Iterable[str]) -> list[str]:
    """Baseline, retrain, the rest in first-seen order, then SSD/LFSSD (the paper's tables); a
    method's configurations (`ssd[alpha=10]`, ssd.report.configs) stand where the method does."""
    seen = list(dict.fromkeys(methods))
    base = {m: m.split("[", 1)[0] for m in seen}
    first = [m for name in METHOD_FIRST for m in seen if base[m] == name]
    last = [m for name in METHOD_LAST for m in seen if base[m] == name]
    return first + [m for m in seen if m not in first and m not in last] + last


def class_label(row: Row) -> str:
    """A forget class's column label: its name, else its index, else "random" (no class)."""
    if row.get("forget_class_name") is not None:
        return str(row["forget_class_name"])
    if row.get("forget_class") is not None:
        return str(row["forget_class"])
    return f"random {row['n_forget']}" if row.get("n_forget") is not None else "random"


def metric(row: Row, key: str) -> float:
    """A metric as float; NaN when missing or null (so plots and means skip it)."""
    value = row.get("metrics", {}).get(key)
    return math.nan if value is None else float(value)


COLD_TIME = "MethodTimeCold"  # the field name reports show the cold time under
CACHE_SETTING = "cache_dir"  # a method whose settings have it can read D's importances from a cache (SSDConfig)


def cold_time(row: Row) -> float:
    """A run's cold method time in seconds: what it costs with nothing read from a cache (SSD
    with D's importances computed, as the authors' code does every run; the paper's speed
    claim is about this). The one rule tables, figures, claims and the wandb logger read times by:

    1. the row's `MethodTimeCold` when it has the field (ssd.experiment.method_timing); null or
       NaN there means a cache hit whose compute time is unknown, so NaN;
    2. a row from before that field that records the cache (`DCacheHit`, else
       `method_stats.cache_hit`): a miss → `MethodTime`; a hit → `MethodTime` plus D's stored
       compute time (`DImportanceTime`, else `method_stats.d_importance_s`), NaN when unknown;
    3. no record of a cache: `MethodTime` when the method cannot cache (no `cache_dir` among its
       settings: the row's `config.method`, else the registry's config of `variant_of`/`method`);
    4. otherwise NaN (unknown): tables print "–", the figure names the method, the speed claim
       is not judged. A warm (cached) time is never returned as the cold one.
    """
    m = row.get("metrics") or {}
    if COLD_TIME in m:
        return _num(m[COLD_TIME])
    stats = row.get("method_stats") if isinstance(row.get("method_stats"), dict) else {}
    hit = m.get("DCacheHit", stats.get("cache_hit"))
    if hit is False or (hit is None and _can_cache(row) is False):
        return _num(m.get("MethodTime"))
    if hit:
        d_s = m.get("DImportanceTime", stats.get("d_importance_s"))
        return _num(m.get("MethodTime")) + _num(d_s)
    return math.nan


def cached_cold(row: Row) -> bool:
    """Whether the row's cold time adds D's importance time from a cache entry filled earlier (under
    another load): such times are marked † in tables and hatched in figures."""
    m = row.get("metrics") or {}
    stats = row.get("method_stats") if isinstance(row.get("method_stats"), dict) else {}
    return bool(m.get("DCacheHit", stats.get("cache_hit"))) and math.isfinite(cold_time(row))


def with_cold_time(row: Row) -> Row:
    """A copy of `row` whose metrics hold `cold_time(row)` under COLD_TIME (for ssd.summary.summarize)."""
    return {**row, "metrics": {**(row.get("metrics") or {}), COLD_TIME: cold_time(row)}}


def _num(value: Any) -> float:
    return math.nan if value is None else float(value)


def _can_cache(row: Row) -> bool | None:
    """Whether the row's method can read D's importances from a cache; None when unknown."""
    settings = (row.get("config") or {}).get("method")
    if isinstance(settings, dict):
        return CACHE_SETTING in settings
    for name in (row.get("variant_of"), row.get("method")):
        name = METHOD_ALIASES.get(name, name) if isinstance(name, str) else None
        if name is not None and name in METHODS:
            return CACHE_SETTING in {f.name for f in dataclasses.fields(METHODS.get(name).config)}
    return None


def request_key(row: Row) -> tuple[Any, ...]:
    """One forget request of a grid (task, dataset, net, forget class, random size): what the
    claims judge on means over seeds."""
    n = row.get("n_forget") if row.get("task") == "random" else None  # two random cells may differ only in size
    return (row.get("task"), row.get("dataset"), row.get("net"), row.get("forget_class"), n)


def cell_key(row: Row) -> tuple[Any, ...]:
    """What makes a baseline row the "before" of another row: same request, seed and checkpoint."""
    return (*request_key(row), row.get("seed"), row.get("checkpoint_sha256") or row.get("checkpoint"))


def find_baseline(rows: Sequence[Row], row: Row) -> Row | None:
    """The baseline row of `row`'s (task, dataset, net, forget class, seed, checkpoint), if any."""
    key = cell_key(row)
    for r in rows:
        if r.get("method") == "baseline" and cell_key(r) == key:
            return r
    return None


def choose_runs(rows: Sequence[Row], run_key: str | None = None) -> list[Row]:
    """The runs the before/after figures show.

    A given `run_key` picks that run alone. Otherwise one run per (task, dataset, net):
    the first ssd run, else the first run that is not the baseline.
    """
    if run_key is not None:
        picked = [r for r in rows if r.get("run_key") == run_key]
        if not picked:
            from ssd.errors import UserError

            raise UserError(f"no run with run_key {run_key!r} in the results given")
        return picked[:1]
    chosen: dict[tuple[Any, ...], Row] = {}
    for r in rows:
        group = (r.get("task"), r.get("dataset"), r.get("net"))
        if r.get("method") == "baseline":
            continue
        if group not in chosen or (r.get("method") == "ssd" and chosen[group].get("method") != "ssd"):
            chosen[group] = r
    return list(chosen.values())


def class_names(row: Row) -> list[str]:
    """Names of the model's output classes for tick labels (indices when the dataset is unknown)."""
    n = len(row.get("details", {}).get("test_class_acc") or [])
    try:
        from datasets import dataset_info

        names = list(dataset_info(str(row.get("dataset"))).classes)
    except Exception:  # a results file from a dataset this checkout lacks still renders
        names = []
    return names if names and (n == 0 or len(names) == n) else [str(i) for i in range(n)]


def output_class(row: Row) -> int | None:
    """The model output the request forgets: the class itself, or a sub-class's coarse class; None for random."""
    fc = row.get("forget_class")
    if fc is None or row.get("task") == "random":
        return None
    if row.get("task") != "sub_class":
        return int(fc)
    try:
        from datasets import dataset_info

        mapping = dataset_info(str(row.get("dataset"))).fine_to_coarse
    except Exception:
        return None
    return None if mapping is None else int(mapping[int(fc)])


def slug(*parts: Any) -> str:
    """A file-name-safe id from parts (class names may hold spaces or slashes)."""
    text = "_".join(str(p) for p in parts if p is not None and p != "")
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text)
