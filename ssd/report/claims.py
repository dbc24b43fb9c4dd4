"""The paper's claims, checked against a grid's rows: supported or not, with the numbers.

Foster et al. (AAAI 2024) claim that SSD (and its label-free variant LFSSD, Foster et al.
2024) (1) forgets: the forget accuracy ends close to the retrained model's; (2) keeps
the retain accuracy of the original model; (3) leaves a membership-inference attack where
retraining leaves it; (4) is much faster than retraining. Each claim is judged per cell
(task, dataset, net, forget request) on the means over seeds, against the retrain and
baseline rows of the same cell and seeds.

Tolerances (stated, so a reader can disagree with them):
* forgets: |Df − Df_retrain| ≤ 5 points (Df = forget-test accuracy for class tasks, the
  paper's "Df"; forget-train accuracy for the random task, which has no held-out forget set);
* retains: DrTest ≥ DrTest_original − 2 points (the issue's "within 2 points");
* MIA: |MIA − MIA_retrain| ≤ 5 points (MIA as a fraction ×100; same scale as Df);
* much faster: retrain's time / the method's time ≥ 10 (an order of magnitude), on cold
  times (ssd.report.rows.cold_time: SSD's importances of D computed, even where a run read them
  from the cache); not judged where a run of the method or of retrain shows no cold time — a
  cached time would make SSD look faster than the authors' code, which recomputes D every run.

Where a method fails a claim in a cell, the α/λ sweep of the same task and dataset (if the
rows hold one) is searched for the values at which forgets and retains would both hold.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ssd.report.rows import COLD_TIME, Row, class_label, cold_time, df_key, metric, request_key
from ssd.summary import fmt, mean_std

FORGET_TOL = 5.0
RETAIN_TOL = 2.0
MIA_TOL = 5.0
SPEEDUP = 10.0
CLAIMED = ("ssd", "lfssd")


@dataclass
class Verdict:
    claim: str
    method: str
    cell: str
    supported: bool | None  # None: not decidable (a reference row or a cold time is missing)
    value: str
    reference: str
    note: str = ""


@dataclass
class ClaimsResult:
    verdicts: list[Verdict] = field(default_factory=list)
    sweep_notes: list[str] = field(default_factory=list)


def _cell_name(row: Row) -> str:
    what = class_label(row) if row.get("task") != "random" else f"{row.get('n_forget')} random samples"
    return f"{str(row.get('task')).replace('_', '-')} · {row.get('dataset')} · {row.get('net')} · {what}"


@dataclass(frozen=True)
class _Stat:
    """Mean ± std over seeds of one metric of one set of rows (NaN mean: no value)."""

    mean: float
    std: float

    @classmethod
    def of(cls, values: Sequence[float]) -> _Stat:
        return cls(*mean_std(values))

    def text(self, digits: int = 2) -> str:
        return fmt(self.mean, self.std, digits)


def _stat(rows: Sequence[Row], key: str, scale: float = 1.0) -> _Stat:
    return _Stat.of([metric(r, key) * scale for r in rows])


def _closeness(claim: str, method: str, cell: str, label: str, mine: _Stat, ref: _Stat, base: _Stat,
               tol: float) -> Verdict:
    """A claim that the method's mean lies within ±`tol` of retrain's (`ref`); `base` is shown beside it."""
    ok = None if math.isnan(mine.mean) or math.isnan(ref.mean) else abs(mine.mean - ref.mean) <= tol
    return Verdict(claim, method, cell, ok, f"{label} {mine.text()}", f"retrain {ref.text()}; original {base.text()}",
                   "" if ok is None else f"Δ {mine.mean - ref.mean:+.2f} (tolerance ±{tol:g})")


def _speed(method: str, cell: str, mine: Sequence[Row], ref: Sequence[Row]) -> Verdict:
    """Much faster than retrain, on cold times (cold_time); not judged where any run lacks one."""
    claim = f"much faster than retrain (≥ {SPEEDUP:g}×)"
    times, ref_times = [cold_time(r) for r in mine], [cold_time(r) for r in ref]
    t, tr = _Stat.of(times), _Stat.of(ref_times)
    value, reference = f"{COLD_TIME} {t.text(3)} s", f"retrain {tr.text(1)} s"
    missing = sum(math.isnan(v) for v in times) + sum(math.isnan(v) for v in ref_times)
    if missing:
        return Verdict(claim, method, cell, None, value, reference,
                       f"not judged: {missing} of {len(times) + len(ref_times)} runs show no cold time")
    ratio = tr.mean / t.mean if t.mean > 0 else math.nan  # NaN where retrain has no time (or no rows)
    ok = None if math.isnan(ratio) else ratio >= SPEEDUP
    return Verdict(claim, method, cell, ok, value, reference, "" if ok is None else f"{ratio:.1f}× faster")


def judge_cell(rows: Sequence[Row]) -> list[Verdict]:
    """The four claims for SSD and LFSSD in one forget request (rows of every method and seed)."""
    by_method: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        by_method[str(r.get("method"))].append(r)
    name = _cell_name(rows[0])
    dkey = df_key(rows[0].get("task"))
    out: list[Verdict] = []
    for method in CLAIMED:
        mine = by_method.get(method)
        if not mine:
            continue
        seeds = {r.get("seed") for r in mine}
        ref_r = [r for r in by_method.get("retrain", []) if r.get("seed") in seeds]
        ref_b = [r for r in by_method.get("baseline", []) if r.get("seed") in seeds]
        # 1. forgets
        out.append(_closeness("forgets (Df close to retrain's)", method, name, dkey, _stat(mine, dkey),
                              _stat(ref_r, dkey), _stat(ref_b, dkey), FORGET_TOL))
        # 2. retains
        dr, dr_b = _stat(mine, "DrTest"), _stat(ref_b, "DrTest")
        ok = None if math.isnan(dr.mean) or math.isnan(dr_b.mean) else dr_b.mean - dr.mean <= RETAIN_TOL
        out.append(Verdict("keeps retain accuracy (DrTest within 2 of the original)", method, name, ok,
                           f"DrTest {dr.text()}", f"original {dr_b.text()}",
                           "" if ok is None else f"drop {dr_b.mean - dr.mean:.2f}"))
        # 3. MIA near retrain's (as a percentage, the scale of Df)
        out.append(_closeness("MIA near retrain's", method, name, "MIA %", _stat(mine, "MIA", 100.0),
                              _stat(ref_r, "MIA", 100.0), _stat(ref_b, "MIA", 100.0), MIA_TOL))
        # 4. much faster than retrain
        out.append(_speed(method, name, mine, ref_r))
    return out


def sweep_explanation(sweeps: Sequence[Row], runs: Sequence[Row], task: str, dataset: str, method: str) -> str | None:
    """From the sweep of (task, dataset, method): the α (or λ) values where forgets and retains
    both hold against that sweep's own baseline and the grid's retrain mean for the sweep's
    forget request."""
    pts = [r for r in sweeps if r.get("task") == task and r.get("dataset") == dataset and r.get("method") == method]
    if not pts:
        return None
    dkey = df_key(task)
    base_pts = [r for r in sweeps if r.get("task") == task and r.get("dataset") == dataset
                and r.get("method") == "baseline"]
    parts: list[str] = []
    for param in ("alpha", "lambda"):
        line = sorted((r for r in pts if r["sweep"].get("param") == param), key=lambda r: float(r["sweep"]["value"]))
        if len(line) < 2:
            continue
        ref = line[0]
        retr = [r for r in runs if r.get("method") == "retrain" and r.get("task") == task
                and r.get("dataset") == dataset and r.get("forget_class") == ref.get("forget_class")
                and (task != "random" or r.get("n_forget") == ref.get("n_forget"))]
        base = [r for r in base_pts if r.get("forget_class") == ref.get("forget_class")]
        if not retr or not base:
            continue
        target = _stat(retr, dkey).mean
        b_dr = metric(base[0], "DrTest")
        good = [r["sweep"]["value"] for r in line
                if abs(metric(r, dkey) - target) <= FORGET_TOL and b_dr - metric(r, "DrTest") <= RETAIN_TOL]
        shown = ", ".join(f"{r['sweep']['value']:g}: {dkey} {metric(r, dkey):.1f} / DrTest {metric(r, 'DrTest'):.1f}"
                          for r in line)
        verdict = (f"both hold at {param} ∈ {{{', '.join(f'{v:g}' for v in good)}}}" if good
                   else f"no swept {param} meets both")
        parts.append(f"{param} sweep ({shown}; retrain {dkey} {target:.1f}, original DrTest {b_dr:.1f}): {verdict}")
    return "; ".join(parts) if parts else None


def check_claims(runs: Sequence[Row], sweeps: Sequence[Row] = ()) -> ClaimsResult:
    cells: dict[tuple[Any, ...], list[Row]] = defaultdict(list)
    for r in runs:
        cells[request_key(r)].append(r)
    result = ClaimsResult()
    for key in sorted(cells, key=lambda k: tuple(str(x) for x in k)):
        result.verdicts.extend(judge_cell(cells[key]))
    failed = sorted({(v.method, v.cell) for v in result.verdicts if v.supported is False and "faster" not in v.claim})
    seen: set[tuple[str, str, str]] = set()
    for method, cell in failed:
        rows = next(rs for rs in cells.values() if _cell_name(rs[0]) == cell)
        task, dataset = str(rows[0].get("task")), str(rows[0].get("dataset"))
        if (method, task, dataset) in seen:
            continue
        seen.add((method, task, dataset))
        note = sweep_explanation(sweeps, runs, task, dataset, method)
        result.sweep_notes.append(f"{method} on {task.replace('_', '-')} {dataset}: "
                                  + (note or "no sweep of this task and dataset in these rows"))
    return result


def _mark(ok: bool | None) -> str:
    return "n/a" if ok is None else ("supported" if ok else "**not supported**")


def summary_lines(result: ClaimsResult) -> list[list[str]]:
    """Per claim and method: cells supported / decided."""
    tally: dict[tuple[str, str], list[bool]] = defaultdict(list)
    for v in result.verdicts:
        if v.supported is not None:
            tally[(v.claim, v.method)].append(v.supported)
    return [[claim, method, f"{sum(oks)}/{len(oks)}", "supported" if all(oks) else
             ("partly" if any(oks) else "**not supported**")] for (claim, method), oks in tally.items()]


def claims_section(page: Any, runs: Sequence[Row], sweeps: Sequence[Row]) -> ClaimsResult | None:
    """Add the claims section to a report page (ssd.report.page.Page)."""
    if not any(r.get("method") in CLAIMED for r in runs):
        return None
    result = check_claims(runs, sweeps)
    page.h(2, "The paper's claims")
    unjudged = any(v.note.startswith("not judged") for v in result.verdicts)
    page.p("Each claim of Foster et al. for SSD and LFSSD, judged per cell on the means over seeds against the "
           f"retrain and original (baseline) rows of the same cell and seeds. Tolerances: forgets Df within ±"
           f"{FORGET_TOL:g} points of retrain's (DfTest for class tasks, forget-train Df for random); retains DrTest drop ≤ "
           f"{RETAIN_TOL:g}; MIA within ±{MIA_TOL:g} points of retrain's; much faster ≥ {SPEEDUP:g}× on `{COLD_TIME}`"
           + (" (SSD with D's importances computed; where a run's rows do not show its cold time — a cache hit whose "
              "compute time was not recorded, or a row from before cold times — the claim is not judged rather "
              "than judged on a cached time)" if unjudged else "") + ".")
    from ssd.report.verdicts import missing_references

    lacking = missing_references(runs)
    for line in lacking:
        page.p(f"**Missing references**: {line}.")
    if all(v.supported is None for v in result.verdicts):
        page.p("No claim could be judged here" + (": add the rows named above and re-run the suite (recorded runs "
                                                   "are skipped)." if lacking else "."))
        return result
    page.grid(["claim", "method", "cells supported", "overall"], summary_lines(result))
    page.grid(["claim", "method", "cell", "value", "reference", "", "verdict"],
              [[v.claim, v.method, v.cell, v.value, v.reference, v.note, _mark(v.supported)] for v in result.verdicts])
    if result.sweep_notes:
        page.p("Where a claim fails, the α/λ sweeps: " + " ".join(f"{n}." for n in result.sweep_notes))
    return result
