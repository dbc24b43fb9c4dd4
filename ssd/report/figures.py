"""Before/after and per-method figures from result rows (PNG, no display needed).

Figures are built on `matplotlib.figure.Figure` directly rather than pyplot, so nothing
here touches global backend state: it renders headless and is safe inside other code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ssd.report.rows import Row, class_label, class_names, df_key, metric, order_methods, output_class
from ssd.summary import mean_std

BEFORE_COLOR, AFTER_COLOR, HIGHLIGHT = "#8c8c8c", "#1f77b4", "#d62728"
DPI = 120


def save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)  # constrained layout already fits everything: no second "tight" pass
    return path


def run_title(row: Row) -> str:
    """"ssd · full-class · ConvNet/Digits · forget 2 · seed 0": what a figure is about, in one line."""
    task = str(row.get("task", "")).replace("_", "-")
    what = f"{row.get('n_forget', '')} random samples".lstrip() if row.get("task") == "random" else class_label(row)
    return (f"{row.get('method')} · {task} · {row.get('net')}/{row.get('dataset')} · forget {what} · "
            f"seed {row.get('seed')}")


def _ticks(ax: Axes, names: Sequence[str], axis: str = "x") -> None:
    """Class tick labels, thinned to at most ~25 so 100 classes stay legible."""
    step = max(1, math.ceil(len(names) / 25))
    pos = list(range(0, len(names), step))
    labels = [names[i] for i in pos]
    rotate = 45 if max((len(s) for s in labels), default=0) > 3 else 0
    if axis == "x":
        ax.set_xticks(pos, labels, rotation=rotate, ha="right" if rotate else "center")
    else:
        ax.set_yticks(pos, labels)


def confusion_figure(before: Row, after: Row, path: Path) -> Path | None:
    """Confusion matrices (forget set, retain-test set) × (before, after); None without details.

    The forget set of a class task holds one true class, so its empty rows are hidden
    (a 1×C strip instead of a mostly blank square).
    """
    keys = ("forget_confusion", "retain_test_confusion")
    mats = [[np.asarray(r.get("details", {}).get(k) or [], dtype=float) for r in (before, after)] for k in keys]
    if any(m.ndim != 2 or m.size == 0 or m.shape != mats[0][0].shape for pair in mats for m in pair):
        return None
    names = class_names(after)
    n = mats[0][0].shape[0]
    names = names if len(names) == n else [str(i) for i in range(n)]
    forget_rows = [i for i in range(n) if mats[0][0][i].sum() > 0 or mats[0][1][i].sum() > 0]
    rows_shown = [forget_rows, list(range(n))]
    fig = Figure(figsize=(11, 2.2 + 0.55 * (len(forget_rows) + n)), layout="constrained")
    axes = fig.subplots(2, 2, gridspec_kw={"height_ratios": [max(len(forget_rows), 1.6), n]})
    image = None
    for i, label in enumerate(("Forget set (train)", "Retain set (test)")):
        for j, row in enumerate((before, after)):
            ax, full = axes[i][j], mats[i][j]
            cm = full[rows_shown[i]]
            totals = cm.sum(axis=1, keepdims=True)
            pct = np.divide(100 * cm, totals, out=np.full_like(cm, np.nan), where=totals > 0)
            image = ax.imshow(np.ma.masked_invalid(pct), cmap="Blues", vmin=0, vmax=100, aspect="auto")
            if n <= 12:
                for (r, c), v in np.ndenumerate(cm):
                    if totals[r, 0] > 0:
                        ax.text(c, r, f"{int(v)}", ha="center", va="center", fontsize=8,
                                color="white" if pct[r, c] > 60 else "black")
            which = "before: baseline" if j == 0 else f"after: {row.get('method')}"
            ax.set_title(f"{label} — {which}\n{int(cm.sum())} samples, accuracy {_diag_acc(full):.1f}%", fontsize=10)
            _ticks(ax, names, "x")
            shown = [names[k] for k in rows_shown[i]]
            step = max(1, math.ceil(len(shown) / 25))
            ax.set_yticks(range(0, len(shown), step), shown[::step])
            ax.set_xlabel("Predicted class")
            ax.set_ylabel("True class")
    assert image is not None
    fig.colorbar(image, ax=axes, shrink=0.8, label="% of the true class (row)")
    fig.suptitle(f"Confusion matrices before and after unlearning — colour: % of each true class, numbers: counts; "
                 f"forget set: only classes present\n{run_title(after)}")
    return save(fig, path)


def _diag_acc(cm: np.ndarray) -> float:
    total = cm.sum()
    return float(100 * np.trace(cm) / total) if total else math.nan


def classwise_figure(before: Row, after: Row, path: Path) -> Path | None:
    """Per-class test accuracy before/after, and each class's drop ("forgetfulness") as bars."""
    acc_b = np.asarray(before.get("details", {}).get("test_class_acc") or [], dtype=float)
    acc_a = np.asarray(after.get("details", {}).get("test_class_acc") or [], dtype=float)
    if acc_b.size == 0 or acc_b.shape != acc_a.shape:
        return None
    names = class_names(after)
    names = names if len(names) == acc_a.size else [str(i) for i in range(acc_a.size)]
    x = np.arange(acc_a.size)
    forget = output_class(after)
    fig = Figure(figsize=(max(8.0, 0.35 * acc_a.size + 3), 7.5), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    w = 0.4
    top.bar(x - w / 2, acc_b, w, color=BEFORE_COLOR, label="before (baseline)")
    top.bar(x + w / 2, acc_a, w, color=AFTER_COLOR, label=f"after ({after.get('method')})")
    top.set_ylabel("Test accuracy (%)")
    top.set_ylim(0, 119)
    top.set_title("Class-wise test accuracy")
    top.legend(loc="upper center", ncols=2, fontsize=9)
    drop = acc_b - acc_a
    colors = [HIGHLIGHT if forget is not None and i == forget else AFTER_COLOR for i in x]
    bars = bottom.bar(x, drop, 0.6, color=colors)
    if acc_a.size <= 20:
        bottom.bar_label(bars, fmt="%.1f", fontsize=8, padding=2)
    bottom.axhline(0, color="black", lw=0.8)
    bottom.set_ylabel("Accuracy drop (percentage points)")
    which = "the forgotten class" if after.get("task") == "full_class" else "the coarse class holding the sub-class"
    note = f"; red = {which} ({names[forget]})" if forget is not None and forget < len(names) else ""
    bottom.set_title(f"Forgetfulness: before − after, per class{note}")
    lo, hi = float(np.nanmin(np.append(drop, 0))), float(np.nanmax(np.append(drop, 0)))
    pad = 0.12 * max(hi - lo, 1.0)
    bottom.set_ylim(lo - pad, hi + pad)
    _ticks(bottom, names, "x")
    bottom.set_xlabel("Class" if after.get("task") != "sub_class" else "Coarse class (the model's outputs)")
    fig.suptitle(run_title(after))
    return save(fig, path)


def accuracy_bars_figure(before: Row, after: Row, path: Path) -> Path:
    """Baseline vs method accuracy on the forget and retain sets, with value labels."""
    sets = [("Forget (train)\nDf", "Df"), ("Forget (test)\nDfTest", "DfTest"),
            ("Retain (train)\nDrTrain", "DrTrain"), ("Retain (test)\nDr", "DrTest")]
    sets = [(lab, k) for lab, k in sets if not (math.isnan(metric(before, k)) and math.isnan(metric(after, k)))]
    x = np.arange(len(sets))
    fig = Figure(figsize=(1.9 * len(sets) + 2.5, 4.8), layout="constrained")
    ax = fig.subplots()
    w = 0.38
    for off, row, color, label in ((-w / 2, before, BEFORE_COLOR, "before (baseline)"),
                                   (w / 2, after, AFTER_COLOR, f"after ({after.get('method')})")):
        bars = ax.bar(x + off, [metric(row, k) for _, k in sets], w, color=color, label=label)
        ax.bar_label(bars, fmt="%.1f", padding=2, fontsize=9)
    ax.set_xticks(x, [lab for lab, _ in sets])
    ax.set_ylabel("Accuracy (%)")
    ax.set_ylim(0, 109)
    fig.legend(loc="outside lower center", ncols=2, fontsize=9)
    ax.set_title(f"Accuracy before and after unlearning\n{run_title(after)}")
    return save(fig, path)


def method_bars_figure(rows: Sequence[Row], path: Path) -> Path:
    """Dr, Df and MIA per method (mean over seeds, error bars = std) for one forget request."""
    task = str(rows[0].get("task"))
    dk = df_key(task)
    panels = [("Dr: retain-test accuracy (%)", "DrTest", 100.0),
              (f"Df: forget-{'train' if dk == 'Df' else 'test'} accuracy (%)", dk, 100.0),
              ("MIA: forget samples called members", "MIA", 1.0)]
    methods = order_methods(r["method"] for r in rows)
    fig = Figure(figsize=(max(9.0, 3 * (0.42 * len(methods) + 0.8)), 4.6), layout="constrained")
    axes = fig.subplots(1, 3)
    x = np.arange(len(methods))
    for ax, (title, key, top) in zip(axes, panels, strict=True):
        stats = [mean_std([metric(r, key) for r in rows if r["method"] == m]) for m in methods]
        means = np.array([s[0] for s in stats])
        stds = np.nan_to_num(np.array([s[1] for s in stats]))
        colors = [HIGHLIGHT if m in ("ssd", "lfssd") else BEFORE_COLOR if m == "baseline" else AFTER_COLOR
                  for m in methods]
        ax.bar(x, np.nan_to_num(means), 0.7, yerr=stds, capsize=3, color=colors, error_kw={"lw": 1})
        for xi, mu, sd in zip(x, means, stds, strict=True):
            text = "n/a" if math.isnan(mu) else f"{mu:.1f}" if top > 1 else f"{mu:.2f}"
            ax.text(xi, np.nan_to_num(mu) + sd + top * 0.01, text, ha="center", va="bottom", fontsize=7)
        ax.set_xticks(x, methods, rotation=45, ha="right")
        ax.set_ylim(0, top * 1.12)
        ax.set_title(title, fontsize=10)
    seeds = sorted({r.get("seed") for r in rows}, key=str)
    fig.suptitle(f"{task.replace('_', '-')} · {rows[0].get('net')}/{rows[0].get('dataset')} · forget "
                 f"{class_label(rows[0])} — mean ± std over {len(seeds)} seed(s); red = SSD")
    return save(fig, path)


def time_figure(rows: Sequence[Row], path: Path) -> Path | None:
    """Method wall-clock time per method on a log axis (pooled over forget classes and seeds): the
    cold time (SSD with D's importances computed, even where this run read them from the cache)."""
    methods = order_methods(r["method"] for r in rows)
    key = {id(r): "MethodTimeCold" if "MethodTimeCold" in r.get("metrics", {}) else "MethodTime" for r in rows}
    stats = {m: mean_std([metric(r, key[id(r)]) for r in rows if r["method"] == m]) for m in methods}
    methods = [m for m in methods if stats[m][0] > 0]  # log axis: a zero time cannot be drawn
    if not methods:
        return None
    means = np.array([stats[m][0] for m in methods])
    stds = np.nan_to_num(np.array([stats[m][1] for m in methods]))
    lower = np.minimum(stds, means * 0.9)  # keep the whisker above zero on a log axis
    fig = Figure(figsize=(8, 0.42 * len(methods) + 1.8), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(methods))
    colors = [HIGHLIGHT if m in ("ssd", "lfssd") else AFTER_COLOR for m in methods]
    ax.barh(y, means, 0.65, xerr=[lower, stds], capsize=3, color=colors, error_kw={"lw": 1})
    for yi, mu, sd in zip(y, means, stds, strict=True):
        ax.text((mu + sd) * 1.25, yi, _seconds(mu), va="center", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(means.min() / 3, (means + stds).max() * 12)
    ax.set_yticks(y, methods)
    ax.invert_yaxis()
    ax.set_xlabel("Method wall-clock time, cold (s, log scale); error bars = std over runs")
    r0 = rows[0]
    ax.set_title(f"Method time — {str(r0.get('task')).replace('_', '-')} · {r0.get('net')}/{r0.get('dataset')}")
    return save(fig, path)


def _seconds(t: float) -> str:
    if t < 1e-3:
        return f"{t * 1e6:.0f} µs"
    return f"{t * 1000:.1f} ms" if t < 1 else f"{t:.2f} s" if t < 100 else f"{t:.0f} s"
