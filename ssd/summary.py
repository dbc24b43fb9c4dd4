"""Mean ± std over seeds of result rows, grouped (task × forget class × method by default)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

DEFAULT_GROUP = ("task", "dataset", "forget_class_name", "method")
DEFAULT_METRICS = ("DrTest", "DfTest", "Df", "MIA", "ZRF", "MethodTime")


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Sample mean and standard deviation (n−1); NaN when empty, and a NaN std for a single
    value (one seed has no spread: tables print "n/a" rather than a flattering ± 0.00)."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return math.nan, math.nan
    mean = sum(vals) / len(vals)
    if len(vals) == 1:
        return mean, math.nan
    var = sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)
    return mean, math.sqrt(var)


def summarize(
    rows: Iterable[dict[str, Any]],
    group_by: Sequence[str] = DEFAULT_GROUP,
    metrics: Sequence[str] = DEFAULT_METRICS,
) -> list[dict[str, Any]]:
    """One dict per group: the group's keys, `n` (runs) and `METRIC_mean` / `METRIC_std`."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[tuple(r.get(k) for k in group_by)].append(r)
    out = []
    for key, members in groups.items():
        entry: dict[str, Any] = dict(zip(group_by, key, strict=True))
        entry["n"] = len(members)
        for m in metrics:
            mean, std = mean_std([r.get("metrics", {}).get(m) for r in members])
            entry[f"{m}_mean"], entry[f"{m}_std"] = mean, std
        out.append(entry)
    return out


def fmt(mean: float, std: float, digits: int = 2) -> str:
    """"mean ± std"; "mean ± n/a" when the std is undefined (one seed); "–" without a mean."""
    if math.isnan(mean):
        return "–"
    return f"{mean:.{digits}f} ± " + ("n/a" if math.isnan(std) else f"{std:.{digits}f}")


def group_text(key: str, value: Any) -> str:
    """A group key for display: a random-task row has no forget class, so it reads "random", not None."""
    if value is None:
        return "random" if key in ("forget_class_name", "forget_class") else "–"
    return str(value)


def format_table(
    summary: Sequence[dict[str, Any]],
    group_by: Sequence[str] = DEFAULT_GROUP,
    metrics: Sequence[str] = DEFAULT_METRICS,
) -> str:
    """A plain-text table for the terminal (Markdown-compatible pipes)."""
    header = [*group_by, "n", *metrics]
    body = [
        [group_text(k, s.get(k)) for k in group_by] + [str(s["n"])]
        + [fmt(s[f"{m}_mean"], s[f"{m}_std"], 3 if m.startswith("MethodTime") else 2) for m in metrics]
        for s in summary
    ]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(header)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep, *(line(r) for r in body)])
