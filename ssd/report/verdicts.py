"""Flags that keep a table from flattering: rows that did not forget, and rows that collapsed.

A method is judged on the means over seeds of its (task, dataset, net, forget class) cell,
against the baseline (the original model) and, where present, the retrained model of the
same cell:

* **did not forget**: its forget accuracy is within `FORGET_MARGIN` percentage points of
  the original model's. 5 points because the smallest forget set the suites score is
  Digits' forget-test class (~45 images, 2.2 points each): 5 points is two images, far
  above seed noise of an unchanged model (whose forget accuracy does not move) and far
  below what retraining does on a class task (~98 points). Not judged where the retrained
  model itself stays within the margin (random samples of a model that generalises: there
  is nothing for the forget accuracy to show), and the page says so.
* **collapsed**: its retain-test accuracy is closer to chance (100 / classes) than to the
  original model's, i.e. below their midpoint: the model no longer classifies, so a low
  forget accuracy means nothing.
* **retain −N pts**: not collapsed, but retain-test accuracy fell more than `FORGET_MARGIN`
  points below the original's (a cost the reader should see beside the forget column); shown
  in a "not judged" cell too, where it is the only thing to flag.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ssd.report.rows import Row, class_label, df_key, metric
from ssd.summary import mean_std

FORGET_MARGIN = 5.0  # percentage points; see the module docstring for why


@dataclass(frozen=True)
class Verdict:
    flag: str  # "" (fine), "did not forget", "collapsed", "retain −N pts", "not judged", "reference"
    why: str  # one sentence with the numbers behind the flag

    @property
    def bad(self) -> bool:
        return self.flag in ("did not forget", "collapsed")

    def short(self) -> str:
        return f"⚠ {self.flag}" if self.bad else self.flag


def n_classes(rows: Sequence[Row]) -> int | None:
    """The model's number of outputs: from the dataset registry, else the per-class details."""
    for r in rows:
        try:
            from datasets import dataset_info

            return int(dataset_info(str(r.get("dataset"))).num_classes)
        except Exception:
            acc = r.get("details", {}).get("test_class_acc")
            if acc:
                return len(acc)
    return None


def _mean(rows: Sequence[Row], key: str) -> float:
    return mean_std([metric(r, key) for r in rows])[0]


def cell_verdicts(rows: Sequence[Row]) -> dict[str, Verdict]:
    """Method → verdict for the rows of one (task, dataset, net, forget class) cell."""
    by_method: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        by_method[str(r.get("method"))].append(r)
    if "baseline" not in by_method:
        return {}
    task = str(rows[0].get("task"))
    dk = df_key(task)
    orig_df, orig_dr = _mean(by_method["baseline"], dk), _mean(by_method["baseline"], "DrTest")
    retr_df = _mean(by_method["retrain"], dk) if "retrain" in by_method else math.nan
    judge_forget = not (math.isfinite(retr_df) and abs(orig_df - retr_df) < FORGET_MARGIN)
    classes = n_classes(rows)
    chance = 100.0 / classes if classes else math.nan
    unjudged = (f"the retrained model's forget accuracy ({retr_df:.1f} %) is within {FORGET_MARGIN:g} points "
                f"of the original's ({orig_df:.1f} %)")
    out: dict[str, Verdict] = {}
    for method, members in by_method.items():
        if method in ("baseline", "retrain"):
            out[method] = Verdict("reference", "the original model" if method == "baseline" else "the gold standard")
            continue
        df, dr = _mean(members, dk), _mean(members, "DrTest")
        if math.isfinite(chance) and math.isfinite(dr) and dr < (orig_dr + chance) / 2:
            out[method] = Verdict("collapsed", f"retain-test accuracy {dr:.1f} % is closer to chance "
                                  f"({chance:.1f} %) than to the original's {orig_dr:.1f} %")
        elif judge_forget and math.isfinite(df) and orig_df - df < FORGET_MARGIN:
            out[method] = Verdict("did not forget", f"forget accuracy {df:.1f} % is within {FORGET_MARGIN:g} points "
                                  f"of the original's {orig_df:.1f} %")
        elif math.isfinite(dr) and orig_dr - dr > FORGET_MARGIN:  # a retain cost shows in an unjudged cell too
            note = "" if judge_forget else f" (forgetting not judged: {unjudged})"
            out[method] = Verdict(f"retain −{orig_dr - dr:.0f} pts", f"retain-test accuracy {dr:.1f} % vs the "
                                  f"original's {orig_dr:.1f} %{note}")
        elif not judge_forget:
            out[method] = Verdict("not judged", unjudged)
        else:
            out[method] = Verdict("", "")
    return out


def verdicts(rows: Sequence[Row]) -> dict[tuple[Any, ...], Verdict]:
    """(task, dataset, net, class label, method) → verdict, for every cell with a baseline."""
    cells: dict[tuple[Any, ...], list[Row]] = defaultdict(list)
    for r in rows:
        cells[(r.get("task"), r.get("dataset"), r.get("net"), class_label(r))].append(r)
    out: dict[tuple[Any, ...], Verdict] = {}
    for key, members in cells.items():
        for method, v in cell_verdicts(members).items():
            out[(*key, method)] = v
    return out


def legend(rows: Sequence[Row] = ()) -> str:
    """The rules, for captions and the page; the margin worded in the report's own datasets' images
    (the smallest forget-test class of each dataset among the rows' class tasks)."""
    sizes: dict[str, int] = {}
    for r in rows:
        n = r.get("n_forget_test")
        if r.get("task") != "random" and isinstance(n, int) and n > 0:
            sizes[str(r.get("dataset"))] = min(n, sizes.get(str(r.get("dataset")), n))
    scale = "; ".join(f"on {ds}: {FORGET_MARGIN / 100 * n:.0f} of the {n:,} images of the smallest forget-test "
                      "class" for ds, n in sorted(sizes.items()))
    return (f"Flags: “did not forget” = forget accuracy within {FORGET_MARGIN:g} points of the original model's "
            f"({scale + '; ' if scale else ''}retraining moves a class task by ~98 points); “collapsed” = "
            "retain-test accuracy closer to chance (100/classes) than to the original's; "
            f"“retain −N pts” = retain-test accuracy more than {FORGET_MARGIN:g} points below the original's; "
            "“not judged” = the retrained model's own forget accuracy is within the margin of the original's "
            "(nothing to detect, e.g. random samples of a model that generalises). Judged on means over seeds.")


def missing_references(rows: Sequence[Row]) -> list[str]:
    """One sentence per (task, dataset, net) whose cells lack the rows flags and claims judge against."""
    have: dict[tuple[Any, ...], set[str]] = defaultdict(set)
    for r in rows:
        have[(r.get("task"), r.get("dataset"), r.get("net"))].add(str(r.get("variant_of") or r.get("method")))
    out = []
    for (task, dataset, net), methods in sorted(have.items(), key=str):
        lack = [m for m in ("baseline", "retrain") if m not in methods]
        if lack:
            what = {"baseline": "the flags compare each method with the original model's row",
                    "retrain": "the claims and the 'not judged' rule compare with the retrained model's"}
            out.append(f"{str(task).replace('_', '-')} · {net}/{dataset} has no {' and no '.join(lack)} rows: add "
                       f"{' and '.join(repr(m) for m in lack)} to the suite's methods "
                       f"({'; '.join(what[m] for m in lack)})")
    return out
