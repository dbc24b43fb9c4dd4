"""Issue 24's scale study: the rows of configs/suites/scale.toml, run at several points of
ResNet18 width × training-set size, summarised per scale (scripts/scale_study.py writes them).

A scale is (width, |D|) from each row's `model_options` and `data_subset`. Every SSD/LFSSD row
carries its selection (`method_stats.selected`, per parameter tensor) and the distribution of
imp_Df / imp_D its α cut (`method_stats.ratios`, ssd.dampening.ratio_summary); α modes are the
suite's labels: `ssd` (α = 10), `ssd@auto`, `ssd@search`, and the same for LFSSD.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from ssd.report.rows import Row, class_label, cold_time, find_baseline, is_sweep, metric

MODES = ("α=10", "auto", "search")
FAMILIES = ("ssd", "lfssd")
STAGES = ("conv1", "conv2_x", "conv3_x", "conv4_x", "conv5_x", "fc")  # the authors' ResNet18 names


def scale_of(row: Row) -> tuple[int, int]:
    return int((row.get("model_options") or {}).get("width", 64)), int((row.get("data_subset") or {}).get("train") or 0)


def scale_name(scale: tuple[int, int]) -> str:
    return f"w{scale[0]}/n{scale[1]}"


def family_mode(row: Row) -> tuple[str, str] | None:
    """("ssd"|"lfssd", "α=10"|"auto"|"search") of an SSD-family row; None for other methods."""
    fam, _, mode = str(row.get("method")).partition("@")
    if fam not in FAMILIES:
        return None
    return fam, {"": "α=10", "auto": "auto", "search": "search"}.get(mode, mode)


def request(row: Row) -> str:
    """The forget request: the class name, or "random" (the suite's one random task, 10 % of D)."""
    return "random" if row.get("task") == "random" else class_label(row)


def alpha_used(row: Row) -> float:
    stats = row.get("method_stats") or {}
    chosen = stats.get("alpha_select") or {}
    return float(chosen.get("alpha", stats.get("alpha", math.nan)))


def stage(name: str) -> str:
    top = name.split(".")[0]
    return top if top in STAGES else "other"


def mean(values: Sequence[float]) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return sum(vals) / len(vals) if vals else math.nan


def fmt(v: float, digits: int = 1) -> str:
    return "–" if v is None or math.isnan(v) else f"{v:.{digits}f}"


def run_record(row: Row, rows: Sequence[Row]) -> dict[str, Any]:
    """One run's numbers: accuracies, the DrTest drop against the same seed's baseline, MIA (%),
    cold time, α used, selected count and share, and the selected share per stage."""
    base = find_baseline(rows, row)
    drop = metric(base, "DrTest") - metric(row, "DrTest") if base else math.nan
    stats = row.get("method_stats") or {}
    selected = stats.get("selected") or {}
    total = stats.get("total_selected")
    per_stage: dict[str, int] = defaultdict(int)
    for name, count in selected.items():
        per_stage[stage(name)] += int(count)
    considered = stats.get("total_considered") or 0
    return {"scale": scale_of(row), "request": request(row), "method": row.get("method"), "seed": row.get("seed"),
            "Df": metric(row, "Df"), "DfTest": metric(row, "DfTest"), "DrTest": metric(row, "DrTest"),
            "DrTrain": metric(row, "DrTrain"), "drop": drop, "MIA": 100 * metric(row, "MIA"),
            "cold_s": cold_time(row), "alpha": alpha_used(row) if family_mode(row) else math.nan,
            "selected": math.nan if total is None else float(total),
            "share": 100 * total / considered if total is not None and considered else math.nan,
            "per_stage": dict(per_stage), "ratios": stats.get("ratios")}


def label(row: Row) -> str:
    """The suite's method label (`ssd@auto`), without the `[checkpoint=…]` that load_rows adds when one
    table holds several checkpoints (ssd.report.configs): here the scale tells them apart."""
    return str(row.get("method")).split("[")[0]


def records(rows: Sequence[Row]) -> list[dict[str, Any]]:
    plain = [{**r, "method": label(r)} for r in rows if not is_sweep(r) and r.get("metrics")]
    return [run_record(r, plain) for r in plain]


def grouped(recs: Sequence[dict[str, Any]]) -> dict[tuple[Any, ...], list[dict[str, Any]]]:
    """Records by (scale, request, method), seeds together."""
    out: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in recs:
        out[(r["scale"], r["request"], r["method"])].append(r)
    return out


def method_order(method: str) -> tuple[int, int]:
    fm = family_mode({"method": method})
    if fm is None:
        return (0 if method == "baseline" else 1, 0)
    return (2 + FAMILIES.index(fm[0]), MODES.index(fm[1]) if fm[1] in MODES else 9)


def runs_table(recs: Sequence[dict[str, Any]]) -> list[str]:
    """Means over seeds per scale × request × method (n = seeds)."""
    lines = ["| scale | request | method | n | α used | selected | share % | Df | DfTest | DrTest | "
             "DrTest drop | MIA % | cold s |", "|" + "---|" * 13]
    groups = grouped(recs)
    for key in sorted(groups, key=lambda k: (k[0], k[1] != "random", k[1], method_order(k[2]))):
        g = groups[key]
        alphas = [r["alpha"] for r in g if not math.isnan(r["alpha"])]
        alpha = "–" if not alphas else "/".join(f"{a:g}" for a in alphas)
        lines.append(f"| {scale_name(key[0])} | {key[1]} | {key[2]} | {len(g)} | {alpha} | "
                     f"{fmt(mean([r['selected'] for r in g]), 0)} | {fmt(mean([r['share'] for r in g]), 3)} | "
                     + " | ".join(fmt(mean([r[k] for r in g])) for k in ("Df", "DfTest", "DrTest", "drop", "MIA"))
                     + f" | {fmt(mean([r['cold_s'] for r in g]))} |")
    return lines


def stage_table(recs: Sequence[dict[str, Any]]) -> list[str]:
    """Where the selected weights sit: share (%) of each run's selected elements per stage, means
    over seeds and requests, per scale and SSD-family method."""
    lines = ["| scale | method | selected (mean) | " + " | ".join(STAGES) + " |", "|" + "---|" * (3 + len(STAGES))]
    by: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in recs:
        if family_mode(r) and r["selected"] == r["selected"]:
            by[(r["scale"], r["method"])].append(r)
    for key in sorted(by, key=lambda k: (k[0], method_order(k[1]))):
        g = by[key]
        shares = {s: mean([100 * r["per_stage"].get(s, 0) / r["selected"] if r["selected"] else math.nan
                           for r in g]) for s in STAGES}
        lines.append(f"| {scale_name(key[0])} | {key[1]} | {fmt(mean([r['selected'] for r in g]), 0)} | "
                     + " | ".join(fmt(shares[s]) for s in STAGES) + " |")
    return lines


RATIO_SHOWN = ("1", "3.162", "10", "31.62", "100")


def ratio_table(recs: Sequence[dict[str, Any]]) -> list[str]:
    """imp_Df / imp_D per scale and request (the α = 10 rows, D = retain ∪ forget; means over
    seeds): percentiles of the finite ratios and the share (%) of elements above each α."""
    lines = ["| scale | method | request | p50 | p90 | p99 | p99.9 | p99.99 | "
             + " | ".join(f"% > {a}" for a in RATIO_SHOWN) + " |", "|" + "---|" * (8 + len(RATIO_SHOWN))]
    by: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in recs:
        if r["method"] in FAMILIES and r["ratios"]:
            by[(r["scale"], r["method"], r["request"])].append(r["ratios"])
    for key in sorted(by, key=lambda k: (k[1], k[2] != "random", k[2], k[0])):
        g = by[key]
        pct = [fmt(mean([x["percentiles"][q] for x in g]), 2) for q in ("50", "90", "99", "99.9", "99.99")]
        share = [fmt(mean([100 * x["share_above"][a] for x in g]), 3) for a in RATIO_SHOWN]
        lines.append(f"| {scale_name(key[0])} | {key[1]} | {key[2]} | " + " | ".join(pct + share) + " |")
    return lines


def summary(recs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per scale and SSD-family method: mean DrTest drop and DfTest over the class requests,
    the random request's drop and Df, and the α each mode used (all requests and seeds)."""
    out: dict[str, Any] = {}
    by: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in recs:
        by[(r["scale"], r["method"])].append(r)
    for (scale, method), g in sorted(by.items(), key=lambda kv: (kv[0][0], method_order(kv[0][1]))):
        cls = [r for r in g if r["request"] != "random"]
        rnd = [r for r in g if r["request"] == "random"]
        out.setdefault(scale_name(scale), {})[method] = {
            "class_drop": mean([r["drop"] for r in cls]), "class_DfTest": mean([r["DfTest"] for r in cls]),
            "class_MIA": mean([r["MIA"] for r in cls]), "random_drop": mean([r["drop"] for r in rnd]),
            "random_Df": mean([r["Df"] for r in rnd]), "random_MIA": mean([r["MIA"] for r in rnd]),
            "alphas": sorted(r["alpha"] for r in g if not math.isnan(r["alpha"])),
            "class_alphas": sorted(r["alpha"] for r in cls if not math.isnan(r["alpha"])),
            "share": mean([r["share"] for r in g]), "runs": len(g)}
    return out


def _alpha_text(alphas: Sequence[float]) -> str:
    if not alphas:
        return "–"
    med = sorted(alphas)[len(alphas) // 2] if len(alphas) % 2 else \
        (sorted(alphas)[len(alphas) // 2 - 1] + sorted(alphas)[len(alphas) // 2]) / 2
    return f"{med:.3g} ({min(alphas):.3g}–{max(alphas):.3g})"


def trend(values: Sequence[float]) -> str:
    """"shrinks" / "grows" when the values move one way across the scales, else "does not move one way"."""
    vals = [v for v in values if not math.isnan(v)]
    if len(vals) < 2:
        return "cannot be told (fewer than two scales)"
    if all(b < a for a, b in zip(vals, vals[1:], strict=False)):
        return "shrinks"
    if all(b > a for a, b in zip(vals, vals[1:], strict=False)):
        return "grows"
    return "does not move one way"


def scale_claims(page: Any, rows: Sequence[Row]) -> None:
    """The report's paragraph on scale (issue 24), from the scale study's rows: per scale, SSD's
    and LFSSD's retain cost at α = 10, `auto` and `search`, and the α the latter two used."""
    recs = records([r for r in rows if r.get("net") == "ResNet18"])
    summ = summary(recs)
    if not summ:
        return
    page.h(3, "Does the retain cost shrink as the model and its data grow? (the scale study)")
    body, ssd_drops = [], []
    for name, methods in summ.items():
        def cell(method: str, key: str, methods: dict = methods) -> str:
            return fmt(methods.get(method, {}).get(key, math.nan))
        ssd_drops.append(methods.get("ssd", {}).get("class_drop", math.nan))
        body.append([name, cell("ssd", "class_drop"), cell("ssd", "class_DfTest"), cell("ssd", "random_drop"),
                     _alpha_text(methods.get("ssd@auto", {}).get("class_alphas", [])), cell("ssd@auto", "class_drop"),
                     _alpha_text(methods.get("ssd@search", {}).get("class_alphas", [])), cell("ssd@search", "class_drop"),
                     cell("lfssd", "class_drop"), _alpha_text(methods.get("lfssd@search", {}).get("class_alphas", [])),
                     cell("lfssd@search", "class_drop")])
    page.p(f"ResNet18 at {len(summ)} widths × training-set sizes (configs/suites/scale.toml, rows in "
           "docs/results/scale/): means over seeds; full class = the mean over the class requests. SSD's full-class "
           f"retain cost at α = 10 {trend(ssd_drops)} across the scales "
           f"({' → '.join(fmt(v) for v in ssd_drops)} points). α and drop columns: the full-class requests, median "
           "(range) of α over requests and seeds; random drop: the random 10 % request at α = 10.")
    page.grid(["scale", "SSD α=10 class drop", "DfTest", "random drop", "auto α", "auto drop", "search α",
               "search drop", "LFSSD α=10 class drop", "LFSSD search α", "LFSSD search drop"], body)
