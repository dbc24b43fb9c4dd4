"""The scale study's figures (ssd/report/scale.py has the numbers): what SSD's α modes cost and
forget against scale, and the imp_Df / imp_D distribution α cuts, one line per scale."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from ssd.report.scale import FAMILIES, MODES, mean, scale_name

MODE_STYLE = {"α=10": ("tab:red", "o"), "auto": ("tab:blue", "s"), "search": ("tab:green", "^")}
PANELS = (("class", "drop", "full class: DrTest drop (points)"), ("class", "DfTest", "full class: DfTest (%)"),
          ("random", "drop", "random 10 %: DrTest drop (points)"), ("random", "Df", "random 10 %: Df (%)"))


def _points(recs: Sequence[dict[str, Any]], scales: list[tuple[int, int]], method: str, kind: str,
            key: str) -> list[float]:
    by: dict[tuple[int, int], list[float]] = defaultdict(list)
    for r in recs:
        if r["method"] == method and (r["request"] == "random") == (kind == "random"):
            by[r["scale"]].append(r[key])
    return [mean(by.get(s, [])) for s in scales]


def scale_figure(recs: Sequence[dict[str, Any]], params: dict[tuple[int, int], int], out: Path) -> Path:
    """DrTest drop and DfTest (Df on the random task) against scale, one line per α mode; retrain
    (grey dashes, where it ran) and the original model (grey dots) as references."""
    scales = sorted({r["scale"] for r in recs})
    xs = list(range(len(scales)))
    labels = [f"{scale_name(s)}\n{params.get(s, 0) / 1e6:.2f} M" for s in scales]
    fig = Figure(figsize=(16, 7.5), layout="constrained")
    axes = fig.subplots(len(FAMILIES), len(PANELS), squeeze=False)
    for i, fam in enumerate(FAMILIES):
        for j, (kind, key, title) in enumerate(PANELS):
            ax = axes[i][j]
            for mode in MODES:
                method = fam if mode == "α=10" else f"{fam}@{mode}"
                color, marker = MODE_STYLE[mode]
                ax.plot(xs, _points(recs, scales, method, kind, key), color=color, marker=marker,
                        label=f"{fam.upper()} {mode}")
            if key != "drop":
                for ref, style in (("retrain", "--"), ("baseline", ":")):
                    ys = _points(recs, scales, ref, kind, key)
                    if any(not math.isnan(y) for y in ys):
                        ax.plot(xs, ys, color="grey", linestyle=style, marker=".", label=ref)
            else:
                ax.axhline(2.0, color="grey", linestyle=":", linewidth=1, label="2-point tolerance")
            ax.set_xticks(xs, labels)
            ax.set_title(f"{fam.upper()}: {title}", fontsize=10)
            ax.grid(alpha=0.3)
            if j in (0, 1):
                ax.legend(fontsize=8)
    fig.suptitle("SSD / LFSSD against scale (ResNet18 width / training images; means over seeds and requests)")
    path = out / "scale.png"
    fig.savefig(path, dpi=110)
    return path


def ratio_figure(recs: Sequence[dict[str, Any]], out: Path) -> Path:
    """The share of parameter elements with imp_Df / imp_D > α against α (log–log), one line per
    scale: what each α selects (α = 10 marked; the search's picks as crosses on their scale's line)."""
    scales = sorted({r["scale"] for r in recs})
    fig = Figure(figsize=(12, 8), layout="constrained")
    axes = fig.subplots(2, 2, squeeze=False)
    for i, fam in enumerate(FAMILIES):
        for j, kind in enumerate(("class", "random")):
            ax = axes[i][j]
            for s in scales:
                rs = [r["ratios"] for r in recs if r["method"] == fam and r["scale"] == s and r["ratios"]
                      and (r["request"] == "random") == (kind == "random")]
                if not rs:
                    continue
                alphas = sorted(float(a) for a in rs[0]["share_above"])
                ys = [mean([100 * x["share_above"][f"{a:g}"] for x in rs]) for a in alphas]
                line = ax.plot(alphas, [max(y, 1e-5) for y in ys], marker=".", label=scale_name(s))[0]
                picks = [r["alpha"] for r in recs if r["method"] == f"{fam}@search" and r["scale"] == s
                         and (r["request"] == "random") == (kind == "random")]
                for a in picks:
                    y = _share_at(alphas, ys, a)
                    if not math.isnan(y):
                        ax.plot([a], [max(y, 1e-5)], marker="x", markersize=9, color=line.get_color())
            ax.axvline(10, color="tab:red", linestyle="--", linewidth=1, label="α = 10")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("α")
            ax.set_ylabel("% of weights with imp_Df / imp_D > α")
            ax.set_title(f"{fam.upper()}, {'full class' if kind == 'class' else 'random 10 %'}", fontsize=10)
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize=8)
    fig.suptitle("What α cuts: the tail of imp_Df / imp_D per scale (α = 10 rows; × = α the search chose)")
    path = out / "ratios.png"
    fig.savefig(path, dpi=110)
    return path


def _share_at(alphas: list[float], ys: list[float], alpha: float) -> float:
    """The share above `alpha`, interpolated linearly in log α between the grid's points."""
    la = [math.log(a) for a in alphas]
    x = math.log(alpha)
    for i in range(len(la) - 1):
        if la[i] <= x <= la[i + 1]:
            return ys[i] + (ys[i + 1] - ys[i]) * (x - la[i]) / (la[i + 1] - la[i])
    return math.nan
