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
  times where the rows have them (SSD's importances of D computed, not read from the cache),
  else on MethodTime — then noted, since a cached importance makes SSD look faster.

Where a method fails a claim in a cell, the α/λ sweep of the same task and dataset (if the
rows hold one) is searched for the values at which forgets and retains would both hold.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ssd.report.rows import Row, class_label, df_key, metric
from ssd.summary import fmt
from ssd.summary import mean_std as _mean_std

FORGET_TOL = 5.0
RETAIN_TOL = 2.0
MIA_TOL = 5.0
SPEEDUP = 10.0
CLAIMED = ("ssd", "lfssd")
# A cold-time field, if the rows have one (first match wins); else MethodTime.
COLD_TIME_KEYS = ("MethodTimeCold", "ColdMethodTime")


@dataclass
class Verdict:
    claim: str
    method: str
    cell: str
    supported: bool | None  # None: not decidable (a reference row is missing)
    value: str
    reference: str
    note: str = ""


@dataclass
class ClaimsResult:
    verdicts: list[Verdict] = field(default_factory=list)
    sweep_notes: list[str] = field(default_factory=list)
    time_key: str = "MethodTime"


def _cell(row: Row) -> tuple[Any, ...]:
    return (row.get("task"), row.get("dataset"), row.get("net"), row.get("forget_class"),
            row.get("n_forget") if row.get("task") == "random" else None)


def _cell_name(rows: Sequence[Row]) -> str:
    r = rows[0]
    what = class_label(r) if r.get("task") != "random" else f"{r.get('n_forget')} random samples"
    return f"{str(r.get('task')).replace('_', '-')} · {r.get('dataset')} · {r.get('net')} · {what}"


def _ms(values: Sequence[float], digits: int = 2) -> str:
    return fmt(*_mean_std(values), digits)


def time_key(rows: Sequence[Row]) -> str:
    """The cold-time field if any row has it, else MethodTime."""
    for key in COLD_TIME_KEYS:
        if any(r.get("metrics", {}).get(key) is not None for r in rows):
            return key
    return "MethodTime"


def _values(rows: Sequence[Row], key: str, scale: float = 1.0) -> list[float]:
    """`key` of each row ×`scale`; a cold-time key falls back to the row's MethodTime (methods
    with nothing cached have only that)."""
    out = [metric(r, key) for r in rows]
    if key in COLD_TIME_KEYS:
        out = [metric(r, "MethodTime") if math.isnan(v) else v for r, v in zip(rows, out, strict=True)]
    return [v * scale for v in out]


def judge_cell(rows: Sequence[Row], tkey: str) -> list[Verdict]:
    """The four claims for SSD and LFSSD in one cell (rows of every method and seed)."""
    by_method: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        by_method[str(r.get("method"))].append(r)
    name = _cell_name(rows)
    dkey = df_key(rows[0].get("task"))
    retrain, base = by_method.get("retrain", []), by_method.get("baseline", [])
    out: list[Verdict] = []
    for method in CLAIMED:
        mine = by_method.get(method)
        if not mine:
            continue
        seeds = {r.get("seed") for r in mine}
        ref_r = [r for r in retrain if r.get("seed") in seeds]
        ref_b = [r for r in base if r.get("seed") in seeds]
        # 1. forgets
        m, _ = _mean_std(_values(mine, dkey))
        rr, _ = _mean_std(_values(ref_r, dkey))
        ok = None if math.isnan(m) or math.isnan(rr) else abs(m - rr) <= FORGET_TOL
        out.append(Verdict("forgets (Df close to retrain's)", method, name, ok, f"{dkey} {_ms(_values(mine, dkey))}",
                           f"retrain {_ms(_values(ref_r, dkey))}; original {_ms(_values(ref_b, dkey))}",
                           "" if ok is None else f"Δ {m - rr:+.2f} (tolerance ±{FORGET_TOL:g})"))
        # 2. retains
        m, _ = _mean_std(_values(mine, "DrTest"))
        b, _ = _mean_std(_values(ref_b, "DrTest"))
        ok = None if math.isnan(m) or math.isnan(b) else b - m <= RETAIN_TOL
        out.append(Verdict("keeps retain accuracy (DrTest within 2 of the original)", method, name, ok,
                           f"DrTest {_ms(_values(mine, 'DrTest'))}", f"original {_ms(_values(ref_b, 'DrTest'))}",
                           "" if ok is None else f"drop {b - m:.2f}"))
        # 3. MIA near retrain's
        m, _ = _mean_std(_values(mine, "MIA", 100.0))
        rr, _ = _mean_std(_values(ref_r, "MIA", 100.0))
        ok = None if math.isnan(m) or math.isnan(rr) else abs(m - rr) <= MIA_TOL
        out.append(Verdict("MIA near retrain's", method, name, ok, f"MIA % {_ms(_values(mine, 'MIA', 100.0))}",
                           f"retrain {_ms(_values(ref_r, 'MIA', 100.0))}; original "
                           f"{_ms(_values(ref_b, 'MIA', 100.0))}",
                           "" if ok is None else f"Δ {m - rr:+.2f} (tolerance ±{MIA_TOL:g})"))
        # 4. much faster than retrain
        m, _ = _mean_std(_values(mine, tkey))
        rr, _ = _mean_std(_values(ref_r, tkey))
        ratio = rr / m if m and not math.isnan(m) and not math.isnan(rr) else math.nan
        ok = None if math.isnan(ratio) else ratio >= SPEEDUP
        out.append(Verdict(f"much faster than retrain (≥ {SPEEDUP:g}×)", method, name, ok,
                           f"{tkey} {_ms(_values(mine, tkey), 3)} s", f"retrain {_ms(_values(ref_r, tkey), 1)} s",
                           "" if math.isnan(ratio) else f"{ratio:.1f}× faster"))
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
        target, _ = _mean_std(_values(retr, dkey))
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
        cells[_cell(r)].append(r)
    result = ClaimsResult(time_key=time_key(runs))
    for key in sorted(cells, key=lambda k: tuple(str(x) for x in k)):
        result.verdicts.extend(judge_cell(cells[key], result.time_key))
    failed = sorted({(v.method, v.cell) for v in result.verdicts if v.supported is False and "faster" not in v.claim})
    seen: set[tuple[str, str, str]] = set()
    for method, cell in failed:
        rows = next(rs for rs in cells.values() if _cell_name(rs) == cell)
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
    cold = result.time_key != "MethodTime"
    page.p("Each claim of Foster et al. for SSD and LFSSD, judged per cell on the means over seeds against the "
           f"retrain and original (baseline) rows of the same cell and seeds. Tolerances: forgets Df within ±"
           f"{FORGET_TOL:g} points of retrain's (DfTest for class tasks, forget-train Df for random); retains DrTest drop ≤ "
           f"{RETAIN_TOL:g}; MIA within ±{MIA_TOL:g} points of retrain's; much faster ≥ {SPEEDUP:g}× on `{result.time_key}`"
           + ("" if cold else " (no cold-time field in these rows: SSD's importances of D may have come from the "
              "cache after the first run on a checkpoint, so its time can be an underestimate)") + ".")
    page.grid(["claim", "method", "cells supported", "overall"], summary_lines(result))
    page.grid(["claim", "method", "cell", "value", "reference", "", "verdict"],
              [[v.claim, v.method, v.cell, v.value, v.reference, v.note, _mark(v.supported)] for v in result.verdicts])
    if result.sweep_notes:
        page.p("Where a claim fails, the α/λ sweeps: " + " ".join(f"{n}." for n in result.sweep_notes))
    return result
