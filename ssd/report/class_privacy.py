"""The class-task privacy section: the class-level attack (MIA-NN / CMIA) beside the paper's MIA.

Rows of the full-class and sub-class tasks carry `metrics["CMIA_*"]` and `details["cmia"]`
(per-image scores of the forget set for the model and for the run's retrained reference) when
the run had a retrained reference (ssd/privacy/cmia.py). One table per (task, dataset, net,
forget class): each method's mean ± sd over its seeds; one figure per group of per-image scores.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ssd.report.figures import save
from ssd.report.rows import Row, class_label, metric, order_methods, slug
from ssd.report.styles import method_styles

COLUMNS = (("Df", "Df %", 1), ("MIA", "MIA (paper)", 3), ("MIA_loss_auc", "loss-MIA AUC", 3),
           ("CMIA_auc", "CMIA AUC", 3), ("CMIA_tpr@1%", "TPR@1%FPR", 3), ("CMIA_tpr@0.1%", "TPR@0.1%FPR", 3))
# The paper's MIA reads a method as forgotten at or below retraining's + MIA_MARGIN; the class-level
# attack calls it exposed when its AUC is more than AUC_MARGIN from chance, either way (retrain's own
# row is its reference: 0.5 exactly; far below 0.5 the model gives the neighbours more than the
# reference does, which tells it from retraining as well: a collapsed model predicting one class).
MIA_MARGIN, AUC_MARGIN = 0.05, 0.05


def has_cmia(row: Row) -> bool:
    """A class-task row that carries the class-level attack: its AUC and its per-image details."""
    return row.get("task") in ("full_class", "sub_class") and bool((row.get("details") or {}).get("cmia")) \
        and not math.isnan(metric(row, "CMIA_auc"))


def class_groups(runs: list[Row]) -> dict[tuple[Any, ...], dict[str, list[Row]]]:
    """(task, dataset, net, forget class) → method → its rows (one per seed) that carry the attack."""
    out: dict[tuple[Any, ...], dict[str, list[Row]]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        if has_cmia(r):
            out[(r.get("task"), r.get("dataset"), r.get("net"), class_label(r))][str(r.get("method"))].append(r)
    return out


def _mean_sd(rows: list[Row], key: str, digits: int) -> str:
    vals = [v for v in (metric(r, key) for r in rows) if not math.isnan(v)]
    if not vals:
        return "–"
    if len(vals) == 1:
        return f"{vals[0]:.{digits}f}"
    return f"{np.mean(vals):.{digits}f} ± {np.std(vals, ddof=1):.{digits}f}"


def mean(rows: list[Row], key: str) -> float:
    vals = [v for v in (metric(r, key) for r in rows) if not math.isnan(v)]
    return float(np.mean(vals)) if vals else math.nan


def table(methods: dict[str, list[Row]]) -> tuple[list[str], list[list[str]]]:
    header = ["method", "seeds", *(label for _, label, _ in COLUMNS)]
    body = [[m, str(len(methods[m])), *(_mean_sd(methods[m], key, d) for key, _, d in COLUMNS)]
            for m in order_methods(methods)]
    return header, body


def disagreement(methods: dict[str, list[Row]]) -> str:
    """Where the paper's MIA and the class-level attack judge the methods differently."""
    if "retrain" not in methods:
        return "No retrain row, so the paper's MIA has no reference to be compared against."
    ref = mean(methods["retrain"], "MIA")
    others = [m for m in order_methods(methods) if m not in ("baseline", "retrain")]
    passed = [m for m in others if mean(methods[m], "MIA") <= ref + MIA_MARGIN]
    exposed = [m for m in passed if off_chance(methods[m]) > AUC_MARGIN]
    if exposed:
        first = (f"The paper's MIA reads {', '.join(exposed)} as forgotten (mean MIA at or below retrain's "
                 f"{ref:.2f} + {MIA_MARGIN}), yet the class-level attack tells them from retraining (CMIA AUC "
                 + ", ".join(f"{m} {mean(methods[m], 'CMIA_auc'):.2f}" for m in exposed) + ").")
    else:
        first = (f"No method passes the paper's MIA (at or below retrain's {ref:.2f} + {MIA_MARGIN}) while the "
                 f"class-level attack exposes it (|AUC − 0.5| > {AUC_MARGIN}).")
    hidden = [m for m in others if m not in passed and off_chance(methods[m]) <= AUC_MARGIN]
    if hidden:
        verb = "fails" if len(hidden) == 1 else "fail"
        first += (" The other way round, " + ", ".join(hidden) + f" {verb} the paper's MIA but look"
                  + ("s" if len(hidden) == 1 else "") + " retrained to the class-level attack.")
    order = sorted(others, key=lambda m: off_chance(methods[m]))
    return first + f" Closest to retraining first (|CMIA AUC − 0.5|): {' < '.join(order)}."


def off_chance(rows: list[Row]) -> float:
    """How far the mean CMIA AUC is from chance, either way."""
    return abs(mean(rows, "CMIA_auc") - 0.5)


def score_figure(methods: dict[str, list[Row]], title: str, path: Path) -> Path | None:
    """Per forget image, the model's neighbour-mass deficit minus the retrained reference's
    (first seed of each method), sorted; 0 = exactly what the reference does on that image."""
    fig = Figure(figsize=(9, 5.5), layout="constrained")
    ax = fig.subplots()
    style = method_styles()
    drawn = 0
    for m in order_methods(methods):
        d = sorted(methods[m], key=lambda r: r.get("seed", 0))[0]["details"]["cmia"]
        diff = np.asarray(d["score"], dtype=float) - np.asarray(d["score_ref"], dtype=float)
        diff = np.sort(diff[np.isfinite(diff)])[::-1]
        if m == "retrain" or not diff.size:
            continue
        ax.plot(np.linspace(0, 100, diff.size), diff, label=m, **style(m))
        drawn += 1
    if not drawn:
        return None
    ax.axhline(0, color="black", lw=0.6)
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_xlabel("forget images, largest deficit first (%)")
    ax.set_ylabel("neighbour-mass deficit − the retrained reference's (nats)")
    ax.set_title(f"Class-level attack, per image — {title}", fontsize=10)
    ax.legend(fontsize=8, ncols=2)
    return save(fig, path)


def class_privacy_section(page: Any, runs: list[Row], out: Path) -> None:
    groups = class_groups(runs)
    if not groups:
        return
    page.h(2, "Class-task privacy (MIA-NN / CMIA)")
    page.p("The class-level attack of Ebrahimpour-Boroojeny, Wang & Sundaram (arXiv 2506.20893, MIA-NN): the "
           "forgotten class's neighbours are the k classes the run's retrained reference gives most probability on "
           "the class's images; each image's score is −log of the probability the model gives those neighbours, "
           "compared with the reference's score on the same image (AUC, TPR at 1 % and 0.1 % FPR over the class's "
           "training and test images). AUC 0.5: the class's images are treated as by a model that never saw the "
           "class; far below 0.5 the model gives the neighbours more than a retrained model does (as "
           "distinguishable, the other way); retrain's own row is its reference (0.5 by construction). The paper's MIA is the entropy attack "
           "of the tables above. Mean ± sd over seeds (each seed has its own retrained reference); "
           "docs/privacy.md gives an independent retrain's AUC (the attack's noise floor).")
    for (task, dataset, net, cls), methods in groups.items():
        d = next(iter(methods.values()))[0]["details"]["cmia"]
        title = f"{str(task).replace('_', '-')} {cls} · {net} on {dataset}"
        page.h(3, title)
        page.p(f"{d['images']} images of the class attacked, k = {len(d['neighbours'])} neighbours "
               f"(first seed's reference: classes {d['neighbours']}).")
        page.grid(*table(methods))
        page.p(disagreement(methods))
        path = score_figure(methods, title, out / "figures" / f"cmia_{slug(task, dataset, net, cls)}.png")
        if path is not None:
            page.img(path, out, "Per forget image, the model's neighbour-mass deficit minus the retrained "
                     "reference's, sorted (first seed): above 0 the model withholds from the neighbours the "
                     "probability a retrained model gives them.")
