"""Sweep figures: accuracy, MIA and the classroom scores against α (and λ) on a log axis.

Rows come from `ssd.sweep` (they carry a "sweep" dict). One figure set per forget
request (task, dataset, net, class, seed, checkpoint). SSD's α is a selection threshold
while the baselines' α multiplies weights, so they share the axis but not its meaning;
legends say which.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ssd.report.figures import save
from ssd.report.rows import Row, class_label, df_key, metric, order_methods, slug

COLORS = {"ssd": "#d62728", "lfssd": "#ff7f0e", "output_dampening": "#2ca02c", "global_dampening": "#1f77b4"}
MEANING = {"ssd": "α: selection threshold", "lfssd": "α: selection threshold",
           "output_dampening": "α: factor on the class's logit weights",
           "global_dampening": "α: factor on every weight"}


def forgetting_efficiency(row: Row) -> float:
    """The classroom's score: (1 − forget-train accuracy as a fraction) ÷ forget loss (DfLoss)."""
    acc, loss = metric(row, "Df"), metric(row, "DfLoss")
    return (1 - acc / 100) / loss if loss > 0 else math.nan


def retention_score(row: Row) -> float:
    """The classroom's score: retain-test accuracy as a fraction ÷ retain-test loss (DrTestLoss)."""
    acc, loss = metric(row, "DrTest"), metric(row, "DrTestLoss")
    return (acc / 100) / loss if loss > 0 else math.nan


def _changed(row: Row) -> float:
    """Weights a sweep point changed; older SSD rows recorded only the selection, an upper bound."""
    s = row["sweep"]
    return float(s.get("changed", s.get("selected")) or 0)


def sweep_groups(rows: Sequence[Row]) -> dict[tuple[Any, ...], list[Row]]:
    groups: dict[tuple[Any, ...], list[Row]] = defaultdict(list)
    for r in rows:
        groups[(r.get("task"), r.get("dataset"), r.get("net"), class_label(r), r.get("seed"),
                r.get("checkpoint_sha256"))].append(r)
    return groups


def _lines(rows: Sequence[Row], x: str) -> dict[str, list[Row]]:
    """Curves for an x ("alpha" or "lambda"): one per method, SSD split by the other parameter when it varies."""
    other = "lambda" if x == "alpha" else "alpha"
    out: dict[str, list[Row]] = defaultdict(list)
    latest: dict[tuple[Any, ...], Row] = {}  # two sweeps may share points (e.g. α=10 at λ=1): the last one wins
    for r in rows:
        s = r["sweep"]
        if s.get("param") != "none" and s.get(x) is not None:
            latest[(r["method"], s.get("alpha"), s.get("lambda"))] = r
    for r in latest.values():
        s = r["sweep"]
        m = r["method"]
        varies = len({q["sweep"].get(other) for q in rows if q["method"] == m}) > 1
        label = f"{m} ({'λ' if other == 'lambda' else 'α'}={s.get(other):g})" if varies else m
        out[label].append(r)
    for label in out:
        out[label].sort(key=lambda r: float(r["sweep"][x]))
    return dict(out)


def _reference(rows: Sequence[Row]) -> Row | None:
    return next((r for r in rows if r["sweep"].get("param") == "none"), None)


def _panel(ax: Axes, curves: dict[str, list[Row]], x: str, value: Any, base: Row | None, ylabel: str,
           *, y_scale: str = "linear") -> None:
    for label, pts in curves.items():
        method = pts[0]["method"]
        xs = [float(r["sweep"][x]) for r in pts]
        ys = [value(r) for r in pts]
        ax.plot(xs, ys, marker="o", ms=4, color=COLORS.get(method), label=label,
                ls="-" if method in ("ssd", "lfssd") else "--")
    if base is not None and math.isfinite(value(base)):
        ax.axhline(value(base), color="#555555", lw=1, ls=":", label="original model")
    ax.set_xscale("log")
    if y_scale == "symlog":  # counts that reach 0: linear below 1, log above
        ax.set_yscale("symlog", linthresh=1)
    elif y_scale != "linear":
        ax.set_yscale(y_scale)
    ax.set_ylabel(ylabel)
    ax.set_xlabel("α (log scale)" if x == "alpha" else "λ (log scale)")
    ax.grid(True, which="major", alpha=0.3)


def _title(rows: Sequence[Row]) -> str:
    r = rows[0]
    return (f"{str(r.get('task')).replace('_', '-')} · {r.get('net')}/{r.get('dataset')} · forget "
            f"{class_label(r)} · seed {r.get('seed')}")


def _legend(fig: Figure, axes: Sequence[Axes], curves: dict[str, list[Row]], x: str = "alpha") -> None:
    """One legend for all panels, saying what the swept parameter means for each method."""
    meaning = MEANING if x == "alpha" else {"ssd": "λ: dampening constant", "lfssd": "λ: dampening constant"}
    handles, labels = axes[0].get_legend_handles_labels()
    labels = [f"{lab} — {meaning[curves[lab][0]['method']]}" if lab in curves and curves[lab][0]["method"] in meaning
              else lab for lab in labels]
    fig.legend(handles, labels, loc="outside lower center", ncols=2, fontsize=9)


def param_figure(rows: Sequence[Row], x: str, path: Path) -> Path | None:
    """Forget acc, retain acc, MIA and changed-parameter count against α or λ (None: nothing varies)."""
    curves = _lines(rows, x)
    if x == "lambda":
        curves = {k: v for k, v in curves.items() if v[0]["method"] in ("ssd", "lfssd")}
    curves = {k: v for k, v in curves.items() if len({r["sweep"][x] for r in v}) > 1}
    if not curves:
        return None
    task = str(rows[0].get("task"))
    dk = df_key(task)
    base = _reference(rows)
    fig = Figure(figsize=(11, 8.4), layout="constrained")
    axes = fig.subplots(2, 2).ravel()
    which = "forget-train" if dk == "Df" else "forget-test"
    _panel(axes[0], curves, x, lambda r: metric(r, dk), base, f"Forget accuracy, {which} (%)")
    _panel(axes[1], curves, x, lambda r: metric(r, "DrTest"), base, "Retain accuracy, test (%)")
    _panel(axes[2], curves, x, lambda r: metric(r, "MIA"), base, "MIA (fraction called members)")
    _panel(axes[3], curves, x, _changed, None, "Weights changed (count, symlog scale)", y_scale="symlog")
    axes[3].set_title("Weights whose value differs from the original", fontsize=10)
    most = max(_changed(r) for pts in curves.values() for r in pts)
    axes[3].set_ylim(-0.4, max(most, 1.0) * 3)  # room for markers at 0 and at the top
    for ax in axes[:2]:
        ax.set_ylim(-3, 103)
    axes[2].set_ylim(-0.03, 1.03)
    _legend(fig, list(axes), curves, x)
    name = "α" if x == "alpha" else "λ"
    fig.suptitle(f"Sweep over {name}: {_title(rows)}")
    return save(fig, path)


def efficiency_figure(rows: Sequence[Row], path: Path) -> Path | None:
    """The classroom's forgetting efficiency and retention score against α, one line per method."""
    curves = {k: v for k, v in _lines(rows, "alpha").items() if len({r["sweep"]["alpha"] for r in v}) > 1}
    if not curves:
        return None
    base = _reference(rows)
    fig = Figure(figsize=(11, 5.2), layout="constrained")
    axes = fig.subplots(1, 2)
    _panel(axes[0], curves, "alpha", forgetting_efficiency, base,
           "Forgetting efficiency = (1 − Df) ÷ DfLoss")
    _panel(axes[1], curves, "alpha", retention_score, base,
           "Retention score = Dr ÷ DrTestLoss (log scale)", y_scale="log")
    score = forgetting_efficiency(base) if base is not None else math.nan
    axes[0].set_title("A ratio: not monotone in forgetting" + ("" if not math.isfinite(score) else
                      f" (the original model scores {score:.3g})"), fontsize=10)
    axes[1].set_title("Higher = retain set accurate and confident", fontsize=10)
    _legend(fig, list(axes), curves)
    fig.suptitle(f"Classroom scores against α: {_title(rows)}\n"
                 "Df = forget-train accuracy, Dr = retain-test accuracy (as fractions); losses = mean cross-entropy")
    return save(fig, path)


def write_sweep_figures(rows: Sequence[Row], out_dir: Path) -> list[tuple[Path, str]]:
    """Every sweep figure for every forget request in `rows`: [(path, caption)]."""
    out: list[tuple[Path, str]] = []
    for key, members in sweep_groups(rows).items():
        tag = slug(*key[:5])
        methods = ", ".join(order_methods(r["method"] for r in members if r["sweep"].get("param") != "none"))
        made = [
            (param_figure(members, "alpha", out_dir / f"sweep_alpha_{tag}.png"),
             f"Forget and retain accuracy, MIA and the number of weights touched against α ({methods}); "
             "dotted = original model. SSD's α is a selection threshold (larger α selects fewer weights; "
             "with λ = 1 a weight with imp_Df < imp_D gets factor 1, so α < 1 acts like α = 1), the "
             "baselines' α multiplies weights (α = 1 changes nothing)."),
            (param_figure(members, "lambda", out_dir / f"sweep_lambda_{tag}.png"),
             "SSD against its dampening constant λ (dampened weights are multiplied by "
             "min(λ·imp_D/imp_Df, 1), so a larger λ dampens less)."),
            (efficiency_figure(members, out_dir / f"sweep_efficiency_{tag}.png"),
             "The classroom's forgetting efficiency ((1 − forget-train accuracy) ÷ forget loss) and retention "
             "score (retain-test accuracy ÷ retain-test loss) against α. Both are ratios of small numbers near "
             "the original model, so read them next to the accuracies above."),
        ]
        out += [(p, cap) for p, cap in made if p is not None]
    return out


def sweep_table(rows: Sequence[Row]) -> list[list[str]]:
    """Method, parameter, value, selected and changed weight counts and the key metrics per point.

    "selected" is SSD's selection (imp_Df > α·imp_D); "changed" counts weights whose value
    differs from the original (a selected weight with factor 1 is unchanged; for the
    dampening baselines every scaled non-zero weight changes)."""
    order = order_methods(r["method"] for r in rows)
    latest = {(r["method"], r["sweep"].get("param"), r["sweep"].get("alpha"), r["sweep"].get("lambda")): r
              for r in rows}  # the same point from two sweep files: show it once
    body = []
    for r in sorted(latest.values(), key=lambda r: (order.index(r["method"]), str(r["sweep"].get("param")),
                                         float(r["sweep"].get("value") or 0))):
        s = r["sweep"]
        dk = df_key(r.get("task"))
        body.append([r["method"], str(s.get("param")), "–" if s.get("value") is None else f"{s['value']:g}",
                     _count(s.get("selected")) if r["method"] in ("ssd", "lfssd") else "–",
                     _count(s.get("changed", None if r["method"] in ("ssd", "lfssd") else s.get("selected"))),
                     _f(metric(r, dk)), _f(metric(r, "DrTest")), _f(metric(r, "MIA"), 3),
                     _f(forgetting_efficiency(r), 3), _f(retention_score(r), 3)])
    return body


def _count(v: Any) -> str:
    """A weight count; "n/a" for rows written before sweeps recorded it."""
    return "n/a" if v is None else f"{int(v):,}"


def _f(v: float, digits: int = 2) -> str:
    return "–" if not np.isfinite(v) else f"{v:.{digits}f}"
