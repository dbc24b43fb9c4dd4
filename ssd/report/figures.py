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

from ssd.report.rows import (
    Row,
    cached_cold,
    class_label,
    class_names,
    cold_time,
    df_key,
    metric,
    order_methods,
    output_class,
)
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


def _forget_class_acc(row: Row) -> np.ndarray:
    """Per-class accuracy (%) of the forget set from its confusion matrix (NaN for absent classes)."""
    cm = np.asarray(row.get("details", {}).get("forget_confusion") or [], dtype=float)
    if cm.ndim != 2 or cm.size == 0:
        return np.zeros(0)
    totals = cm.sum(axis=1)
    return np.divide(100 * np.diag(cm), totals, out=np.full(len(totals), np.nan), where=totals > 0)


def classwise_figure(before: Row, after: Row, path: Path) -> Path | None:
    """Per-class test accuracy before/after, and below it what forgetting changed.

    Class tasks: each class's drop ("forgetfulness"). Sub-class: the forgotten fine class
    (its test accuracy, DfTest) is drawn beside the coarse outputs, since only it should drop.
    Random samples: the test classes barely move, so the lower panel shows the forgotten
    samples' accuracy per class before and after instead."""
    acc_b = np.asarray(before.get("details", {}).get("test_class_acc") or [], dtype=float)
    acc_a = np.asarray(after.get("details", {}).get("test_class_acc") or [], dtype=float)
    if acc_b.size == 0 or acc_b.shape != acc_a.shape:
        return None
    task = after.get("task")
    names = class_names(after)
    names = names if len(names) == acc_a.size else [str(i) for i in range(acc_a.size)]
    forget = output_class(after)
    if task == "sub_class" and math.isfinite(metric(after, "DfTest")):
        names = [*names, f"{class_label(after)}\n(fine, forgotten)"]
        acc_b = np.append(acc_b, metric(before, "DfTest"))
        acc_a = np.append(acc_a, metric(after, "DfTest"))
    x = np.arange(acc_a.size)
    fig = Figure(figsize=(max(8.0, 0.35 * acc_a.size + 3), 7.5), layout="constrained")
    top, bottom = fig.subplots(2, 1)
    w = 0.4
    top.bar(x - w / 2, acc_b, w, color=BEFORE_COLOR, label="before (baseline)")
    top.bar(x + w / 2, acc_a, w, color=AFTER_COLOR, label=f"after ({after.get('method')})")
    top.set_ylabel("Test accuracy (%)")
    top.set_ylim(0, 119)
    top.set_title("Class-wise test accuracy" + (" (last bar: the forgotten fine class's test images)"
                                                if task == "sub_class" else ""), fontsize=10)
    top.legend(loc="upper center", ncols=2, fontsize=9)
    _ticks(top, names, "x")
    if task == "random":
        _random_forget_panel(bottom, before, after, names)
    else:
        drop = acc_b - acc_a
        red = {forget, acc_a.size - 1} if task == "sub_class" else {forget}
        colors = [HIGHLIGHT if i in red else AFTER_COLOR for i in x]
        bars = bottom.bar(x, drop, 0.6, color=colors)
        if acc_a.size <= 21:
            bottom.bar_label(bars, fmt="%.1f", fontsize=8, padding=2)
        bottom.axhline(0, color="black", lw=0.8)
        bottom.set_ylabel("Accuracy drop (points)")
        which = ("the forgotten class" if task == "full_class"
                 else "the forgotten fine class and the coarse class holding it")
        note = f"\nred = {which}" if forget is not None and forget < len(names) else ""
        bottom.set_title(f"Forgetfulness: before − after, per class{note}", fontsize=10)
        lo, hi = float(np.nanmin(np.append(drop, 0))), float(np.nanmax(np.append(drop, 0)))
        pad = 0.12 * max(hi - lo, 1.0)
        bottom.set_ylim(min(lo - pad, -5), max(hi + pad, 5))  # ±5 points at least: noise stays small
        _ticks(bottom, names, "x")
        bottom.set_xlabel("Class" if task != "sub_class" else "Coarse class (the model's outputs), then the fine class")
    fig.suptitle(run_title(after), fontsize=11)
    return save(fig, path)


def _random_forget_panel(ax: Axes, before: Row, after: Row, names: Sequence[str]) -> None:
    """Accuracy on the forgotten training samples per class, before and after (random task)."""
    fb, fa = _forget_class_acc(before), _forget_class_acc(after)
    cm = np.asarray(after.get("details", {}).get("forget_confusion") or [], dtype=float)
    if fb.size == 0 or fb.shape != fa.shape or fb.size != len(names):
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no per-class forget-set details in these rows", ha="center", transform=ax.transAxes)
        return
    x = np.arange(fb.size)
    w = 0.4
    ax.bar(x - w / 2, np.nan_to_num(fb), w, color=BEFORE_COLOR, label="before")
    bars = ax.bar(x + w / 2, np.nan_to_num(fa), w, color=AFTER_COLOR, label="after")
    counts = cm.sum(axis=1).astype(int)
    ax.bar_label(bars, labels=[f"n={c}" for c in counts], fontsize=7, padding=2)
    ax.set_ylim(0, 119)
    ax.set_ylabel("Accuracy on forgotten\nsamples (%)")
    ax.set_title(f"The {int(cm.sum())} forgotten training samples, by class: accuracy before and after "
                 f"(overall {metric(before, 'Df'):.1f} → {metric(after, 'Df'):.1f} %)", fontsize=10)
    _ticks(ax, names, "x")
    ax.set_xlabel("Class")


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


def method_bars_figure(rows: Sequence[Row], path: Path) -> Path | None:
    """Every headline metric per method for one forget request: a grid of horizontal-bar panels
    sharing the method axis (mean over seeds, error bars = std). Methods the report flags carry
    the flag in their label and are hatched; dashed = the original model, dotted = retrain."""
    from ssd.report.verdicts import cell_verdicts

    task = str(rows[0].get("task"))
    dk = df_key(task)
    panels = [("Dr: retain-test accuracy (%)", "DrTest", 100.0),
              (f"Df: forget-{'train' if dk == 'Df' else 'test'} accuracy (%)", dk, 100.0),
              ("MIA (entropy): share called members", "MIA", 1.0),
              ("ActDist: L2 to the retrained model", "ActDist", math.nan),
              ("Loss attack ROC-AUC (0.5 = chance)", "MIA_loss_auc", 1.0),
              ("Confidence attack ROC-AUC", "MIA_conf_auc", 1.0),
              ("Loss attack TPR at 1% FPR (0.01 = chance)", "MIA_loss_tpr@1%", 1.0),
              ("Confidence attack TPR at 1% FPR", "MIA_conf_tpr@1%", 1.0)]
    panels = [p for p in panels if any(math.isfinite(metric(r, p[1])) for r in rows)]
    if not panels:  # rows without any of these metrics (hand-made or foreign): nothing to draw
        return None
    methods = order_methods(r["method"] for r in rows)
    flags = cell_verdicts(rows)
    labels = [m + (f"  ⚠ {flags[m].flag}" if m in flags and flags[m].bad else "") for m in methods]
    ncols = min(4, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = Figure(figsize=(3.6 * ncols + 1.8, nrows * (0.26 * len(methods) + 1.3) + 0.9), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, sharey=True, squeeze=False)).ravel()
    y = np.arange(len(methods))
    reference = {m: [r for r in rows if r["method"] == m] for m in ("baseline", "retrain")}
    for ax, (title, key, top) in zip(axes, panels, strict=False):
        stats = [mean_std([metric(r, key) for r in rows if r["method"] == m]) for m in methods]
        means = np.array([s[0] for s in stats])
        stds = np.nan_to_num(np.array([s[1] for s in stats]))
        colors = [HIGHLIGHT if m in ("ssd", "lfssd") else BEFORE_COLOR if m == "baseline" else AFTER_COLOR
                  for m in methods]
        bars = ax.barh(y, np.nan_to_num(means), 0.7, xerr=stds, capsize=2, color=colors, error_kw={"lw": 0.8})
        for bar, m in zip(bars, methods, strict=True):
            if m in flags and flags[m].bad:
                bar.set_hatch("///")
                bar.set_alpha(0.55)
        reach = float(np.nanmax(np.append(np.nan_to_num(means) + stds, 1e-9)))
        span = max(top, reach) if math.isfinite(top) else max(reach, 1e-9)  # fixed axes; a bar past it widens it
        for yi, mu, sd in zip(y, means, stds, strict=True):
            text = "n/a" if math.isnan(mu) else f"{mu:.1f}" if span > 1.5 else f"{mu:.2f}"
            # the label right of the bar, kept inside the panel (xlim below leaves room for it)
            ax.text(min(np.nan_to_num(mu) + sd + span * 0.015, span * 1.02), yi, text, va="center", fontsize=7,
                    clip_on=True)
        for ref_rows, style in zip(reference.values(), ("--", ":"), strict=True):
            value = mean_std([metric(r, key) for r in ref_rows])[0] if ref_rows else math.nan
            if math.isfinite(value) and key != "ActDist":
                ax.axvline(value, color="#444444", ls=style, lw=1)
        if key.endswith("_auc"):
            ax.axvline(0.5, color="#2ca02c", lw=1)
        if key.endswith("tpr@1%"):  # an attacker at chance finds 1 % of members at 1 % FPR
            ax.axvline(0.01, color="#2ca02c", lw=1)
        ax.set_xlim(0, span * 1.22)
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(True, axis="x", alpha=0.3)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    axes[0].set_yticks(y, labels, fontsize=8)
    axes[0].invert_yaxis()
    seeds = sorted({r.get("seed") for r in rows}, key=str)
    fig.suptitle(f"{task.replace('_', '-')} · {rows[0].get('net')}/{rows[0].get('dataset')} · forget "
                 f"{class_label(rows[0])} — mean ± std over {len(seeds)} seed(s). Red = SSD, grey = the original "
                 "model; dashed line = original, dotted = retrain, green = chance; hatched = flagged", fontsize=10)
    return save(fig, path)


TIME_FLOOR = 1e-3  # seconds: below this a method did no training (baseline, the dampening baselines)


def time_figure(rows: Sequence[Row], path: Path) -> Path | None:
    """Method wall-clock time per method on a log axis (pooled over forget classes and seeds): the
    cold time (ssd.report.rows.cold_time: SSD with D's importances computed, even where this run
    read them from the cache); methods under `TIME_FLOOR`, and methods none of whose rows shows
    a cold time, are left out and named in the title."""
    methods = order_methods(r["method"] for r in rows)
    stats = {m: mean_std([cold_time(r) for r in rows if r["method"] == m]) for m in methods}
    unknown = [m for m in methods if math.isnan(stats[m][0])]
    left_out = [m for m in methods if m not in unknown and not stats[m][0] >= TIME_FLOOR]
    methods = [m for m in methods if m not in left_out and m not in unknown]
    if not methods:
        return None
    means = np.array([stats[m][0] for m in methods])
    stds = np.nan_to_num(np.array([stats[m][1] for m in methods]))
    lower = np.minimum(stds, means * 0.9)  # keep the whisker above zero on a log axis
    cached = {m for m in methods if any(cached_cold(r) for r in rows if r["method"] == m)}
    fig = Figure(figsize=(8, 0.42 * len(methods) + 2.0), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(methods))
    colors = [HIGHLIGHT if m in ("ssd", "lfssd") else AFTER_COLOR for m in methods]
    bars = ax.barh(y, means, 0.65, xerr=[lower, stds], capsize=3, color=colors, error_kw={"lw": 1})
    for bar, m in zip(bars, methods, strict=True):
        if m in cached:
            bar.set_hatch("xx")
            bar.set_alpha(0.6)
    for yi, mu, sd, m in zip(y, means, stds, methods, strict=True):
        ax.text((mu + sd) * 1.25, yi, _seconds(mu) + (" †" if m in cached else ""), va="center", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(means.min() / 3, (means + stds).max() * 12)
    ax.set_yticks(y, methods)
    ax.invert_yaxis()
    ax.set_xlabel("Method wall-clock time, cold (s, log scale); error bars = std over runs")
    r0 = rows[0]
    note = f"\nleft out (under {TIME_FLOOR * 1000:g} ms, nothing trained): {', '.join(left_out)}" if left_out else ""
    note += f"\nleft out (no cold time in the rows): {', '.join(unknown)}" if unknown else ""
    note += ("\n† hatched: includes D's importance time recorded when the cache entry was filled (another load); "
             "compare with care" if cached else "")
    ax.set_title(f"Method time — {str(r0.get('task')).replace('_', '-')} · {r0.get('net')}/{r0.get('dataset')}{note}",
                 fontsize=10)
    return save(fig, path)


def _seconds(t: float) -> str:
    if t < 1e-3:
        return f"{t * 1e6:.0f} µs"
    return f"{t * 1000:.1f} ms" if t < 1 else f"{t:.2f} s" if t < 100 else f"{t:.0f} s"
