"""What a forgetting main prints: a short readable summary, then one valid JSON line for scripts.

Pure formatting of a result row (plus the original model's accuracies on the same split, when
the caller has them); no torch here, so it is cheap to import and to test.
"""

from __future__ import annotations

import json
import math
from typing import Any

# The metrics of the JSON line, in order (U-LiRA's when the run was audited).
JSON_KEYS = ("DrTest", "DfTest", "Df", "DrTrain", "TestAcc", "MIA", "ZRF", "MethodTime", "MethodTimeCold")
ULIRA_KEYS = ("ULiRA_auc", "ULiRA_acc", "ULiRA_tpr@1%")
# (metric, label) of the before → after table; DfTest is empty (NaN) on the random task.
ACCURACIES = (("Df", "forget set (train)"), ("DfTest", "forget class, test"), ("DrTest", "retained, test"))


def finite_or_none(value: Any) -> float | None:
    """A number for JSON: NaN, ±inf and missing values become null (JSON has no NaN)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def json_line(metrics: dict[str, Any], audited: bool = False) -> str:
    """The scripts' line: strict JSON (`allow_nan=False` would raise on a NaN that slipped through)."""
    keys = JSON_KEYS + (ULIRA_KEYS if audited else ())
    values = {k: finite_or_none(metrics.get(k)) for k in keys}
    return json.dumps({k: None if v is None else round(v, 4) for k, v in values.items()}, allow_nan=False)


def _pct(value: Any) -> str:
    v = finite_or_none(value)
    return "   –  " if v is None else f"{v:5.1f} %"


def _secs(value: Any) -> str:
    v = finite_or_none(value)
    return "–" if v is None else (f"{v:.2f} s" if v < 10 else f"{v:.0f} s")


def summary_lines(row: dict[str, Any], original: dict[str, float] | None = None, *, alpha_source: str = "",
                  total_s: float | None = None) -> list[str]:
    """A few lines a person reads: what ran, the settings that matter, the selection, before →
    after, and where the time went."""
    m, cfg = row.get("metrics") or {}, (row.get("config") or {}).get("method") or {}
    what = (f"forget class {row['forget_class_name']!r}" if row.get("forget_class_name") is not None
            else f"forget {row.get('n_forget')} random training samples")
    lines = [f"{row['method']} on {row['dataset']} ({row['net']}), {row['task'].replace('_', '-')}: {what}, "
             f"seed {row['seed']}"]
    stats = row.get("method_stats") or {}
    if "alpha" in cfg and "lam" in cfg:
        used = stats.get("alpha_select") or {}
        alpha = f"α = {cfg['alpha']}" + (f" → {used['alpha']:g}" if used.get("alpha") is not None else "")
        lines.append(f"  {alpha}, λ = {cfg['lam']}" + (f" ({alpha_source})" if alpha_source else ""))
    if stats.get("total_params"):
        sel, total = int(stats.get("total_selected", 0)), int(stats["total_params"])
        lines.append(f"  weights selected and dampened: {sel:,} of {total:,} ({100 * sel / total:.2f} %)")
    lines.append("  accuracy              " + ("original →  " if original else "") + "after")
    for key, label in ACCURACIES:
        if finite_or_none(m.get(key)) is None and not (original and finite_or_none(original.get(key)) is not None):
            continue
        before = f"{_pct(original.get(key))} →  " if original else ""
        lines.append(f"  {label:20}  {before}{_pct(m.get(key))}")
    if finite_or_none(m.get("MIA")) is not None:
        lines.append(f"  MIA (entropy attack on the forget set; lower = more forgotten): {m['MIA']:.3f}")
    parts = [f"method {_secs(m.get('MethodTime'))}"]
    if m.get("DCacheHit"):
        parts.append(f"D's importances read from the cache (computing them took {_secs(m.get('DImportanceTime'))} "
                     "when the entry was filled)")
    elif finite_or_none(m.get("DImportanceTime")) is not None:
        parts.append(f"of which D's importances {_secs(m.get('DImportanceTime'))}")
    if finite_or_none(m.get("EvalTime")) is not None:
        parts.append(f"evaluation {_secs(m.get('EvalTime'))}")
    if total_s is not None:
        parts.append(f"total {_secs(total_s)} with loading")
    lines.append("  time: " + ", ".join(parts))
    return lines
