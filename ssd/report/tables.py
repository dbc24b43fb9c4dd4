"""Paper-style tables: a row per method, a column group per forget class, mean ± std over seeds.

One table per (task, dataset, net), written as Markdown, CSV and LaTeX from the same
numbers (`ssd.summary.summarize`), so the three always agree. CSV keeps full precision;
Markdown and LaTeX show the rounded "mean ± std" the paper prints.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ssd.report.rows import (
    COLD_TIME,
    Row,
    cached_cold,
    class_label,
    df_key,
    order_methods,
    slug,
    with_cold_time,
)
from ssd.report.verdicts import Verdict, verdicts
from ssd.report.verdicts import legend as flag_rules
from ssd.summary import fmt, summarize

# (column label, how many decimals) per shown metric; "Df" resolves per task (see df_key).
# "Time (s)" is the cold time (ssd.report.rows.cold_time: D's importances included even when they
# came from the cache; "–" where unknown); "Cached (s)" is this run's MethodTime beside it (they
# differ only for SSD runs with a cache hit).
COLUMNS: tuple[tuple[str, int], ...] = (("Dr", 2), ("Df", 2), ("MIA", 3), ("ZRF", 3), ("Time (s)", 3),
                                        ("Cached (s)", 3))
# The stronger attacks and the distance to the retrained model: a second table per task.
PRIVACY_COLUMNS: tuple[tuple[str, int], ...] = (("MIA", 3), ("Loss AUC", 3), ("Conf AUC", 3),
                                                ("Loss TPR@1%", 3), ("Conf TPR@1%", 3), ("ActDist", 3))
LATEX_LABELS = {"Dr": "$D_r$", "Df": "$D_f$", "MIA": "MIA", "ZRF": "ZRF", "Time (s)": "Time (s)",
                "Cached (s)": "Cached (s)"}
SUMMARY_METRICS = ("DrTest", "DfTest", "Df", "DrTrain", "TestAcc", "MIA", "MIA_loss_auc", "MIA_conf_auc",
                   "MIA_loss_tpr@1%", "MIA_conf_tpr@1%", "ZRF", "ActDist", "DfLoss", "DrTestLoss", "MethodTime",
                   "MethodTimeCold")
METRIC_OF = {"Dr": "DrTest", "MIA": "MIA", "ZRF": "ZRF", "Time (s)": COLD_TIME, "Cached (s)": "MethodTime",
             "Loss AUC": "MIA_loss_auc",
             "Conf AUC": "MIA_conf_auc", "Loss TPR@1%": "MIA_loss_tpr@1%", "Conf TPR@1%": "MIA_conf_tpr@1%",
             "ActDist": "ActDist"}
FLAG = "Flag"  # the verdict column of the main table (ssd.report.verdicts)


def metric_key(label: str, task: str) -> str:
    """The row metric behind a column label for this task."""
    return df_key(task) if label == "Df" else METRIC_OF[label]


@dataclass
class Cell:
    mean: float
    std: float
    n: int


@dataclass
class Table:
    """One (task, dataset, net) table: `cells[(method, class, column label)]`."""

    task: str
    dataset: str
    net: str
    classes: list[str]
    methods: list[str]
    cells: dict[tuple[str, str, str], Cell] = field(default_factory=dict)
    columns: tuple[tuple[str, int], ...] = COLUMNS
    kind: str = "main"  # "main" (accuracies, flags) or "privacy" (stronger attacks, ActDist)
    flags: dict[tuple[str, str], Verdict] = field(default_factory=dict)  # (method, class) → verdict
    cached: set[tuple[str, str]] = field(default_factory=set)  # (method, class) whose cold time used a cache entry

    @property
    def labels(self) -> list[str]:
        """Column labels of one class group, the flag last when the table has flags."""
        return [label for label, _ in self.columns] + ([FLAG] if self.flags else [])

    @property
    def name(self) -> str:
        return slug(self.task, self.dataset, self.net) + ("" if self.kind == "main" else f"_{self.kind}")

    def seeds_text(self) -> str:
        ns = sorted({c.n for c in self.cells.values()})
        if not ns:
            return "no runs"
        span = str(ns[0]) if len(ns) == 1 else f"{ns[0]}–{ns[-1]}"
        return f"{span} seed{'s' if ns[-1] > 1 else ''}"

    def caption(self, legend: bool = True) -> str:
        """What the table shows; `legend`: with the flag rules (the page states them once above its tables)."""
        df = ("Df = accuracy (%) on the forget class's test images (DfTest)" if self.task != "random"
              else "Df = accuracy (%) on the forgotten training samples (the random task has no held-out forget set)")
        head = (f"{self.task.replace('_', '-')} forgetting, {self.net} on {self.dataset}: mean ± std over "
                f"{self.seeds_text()} (n/a: one seed). ")
        if self.kind == "privacy":
            return head + ("MIA = the paper's entropy attack (fraction of forget samples called members); "
                           "Loss/Conf AUC = ROC-AUC of a loss- or confidence-threshold attack, forget-train "
                           "against held-out test samples of the same classes (0.5 = indistinguishable); "
                           "TPR@1% = its true-positive rate at 1 % false positives; ActDist = mean L2 distance "
                           "of softmax outputs on the forget set to the retrained model of the same cell "
                           "(– where no retrained model was run first).")
        return head + (f"Dr = retain-test accuracy (%); {df}; MIA = fraction of forget "
                       "samples the entropy attack calls members; ZRF = 1 − JS divergence to an untrained model; "
                       "Time = method wall-clock seconds with D's importances computed (cold); Cached = the same "
                       "run's seconds, lower only where SSD read D's importances from the cache."
                       + (" † = the cold time adds D's importance time recorded when the cache entry was filled, "
                          "under another load: compare with care (clear the cache to re-time)." if self.cached else "")
                       + (f" {flag_rules()}" if self.flags and legend else ""))

    def text(self, method: str, cls: str, label: str, digits: int = 2) -> str:
        if label == FLAG:
            verdict = self.flags.get((method, cls))
            return "" if verdict is None else verdict.short()
        cell = self.cells.get((method, cls, label))
        mark = " †" if label == "Time (s)" and (method, cls) in self.cached else ""
        return "–" if cell is None else fmt(cell.mean, cell.std, digits) + mark

    def row_cells(self, method: str) -> list[str]:
        digits = dict(self.columns)
        return [self.text(method, c, label, digits.get(label, 2)) for c in self.classes for label in self.labels]


def build_tables(rows: Sequence[Row], kind: str = "main") -> list[Table]:
    """Tables from ordinary (non-sweep) rows, in first-seen (task, dataset, net) order.

    kind "main": accuracies, MIA, ZRF, time and the verdict flags; "privacy": the stronger
    attacks and ActDist (only methods that have them)."""
    columns = COLUMNS if kind == "main" else PRIVACY_COLUMNS
    tagged = [{**with_cold_time(r), "_class": class_label(r)} for r in rows]
    keys = ("task", "dataset", "net", "_class", "method")
    needed = sorted({metric_key(label, t) for label, _ in columns for t in ("full_class", "random")})
    summary = summarize(tagged, group_by=keys, metrics=needed)
    flags = verdicts(rows) if kind == "main" else {}
    tables: dict[tuple[str, str, str], Table] = {}
    for s in summary:
        tkey = (str(s["task"]), str(s["dataset"]), str(s["net"]))
        t = tables.setdefault(tkey, Table(*tkey, classes=[], methods=[], columns=columns, kind=kind))
        if s["_class"] not in t.classes:
            t.classes.append(s["_class"])
        t.methods.append(s["method"])
        for label, _ in columns:
            k = metric_key(label, t.task)
            t.cells[(s["method"], s["_class"], label)] = Cell(s[f"{k}_mean"], s[f"{k}_std"], s["n"])
        verdict = flags.get((*tkey, s["_class"], s["method"]))
        if verdict is not None:
            t.flags[(s["method"], s["_class"])] = verdict
    for r in tagged:
        t = tables.get((str(r.get("task")), str(r.get("dataset")), str(r.get("net"))))
        if t is not None and cached_cold(r):
            t.cached.add((str(r.get("method")), r["_class"]))
    for t in tables.values():
        t.methods = order_methods(t.methods)
    if kind != "main":  # drop columns no method has (e.g. ActDist without retrain)
        for t in tables.values():
            t.columns = tuple(c for c in t.columns if any(not math.isnan(cell.mean) for (_, _, lab), cell
                                                          in t.cells.items() if lab == c[0]))
    return [t for t in tables.values() if t.columns]


def group_label(t: Table, cls: str) -> str:
    """A column group's heading: "forget rocket", or "random samples" for the random task."""
    return "random samples" if t.task == "random" else f"forget {cls}"


def _header(t: Table) -> list[str]:
    if len(t.classes) == 1:
        return ["Method", *t.labels]
    return ["Method", *(f"{c} · {label}" for c in t.classes for label in t.labels)]


def to_markdown(t: Table) -> str:
    """A pipe table (GitHub Markdown has no column spans, so a group is named in each header)."""
    body = [[m, *t.row_cells(m)] for m in t.methods]
    header = _header(t)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + [":-:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    if len(t.classes) == 1:
        what = "random training samples" if t.task == "random" else f"class **{t.classes[0]}**"
        lines.insert(0, f"Forgetting {what}\n")
    return "\n".join(lines)


def to_csv(t: Table) -> str:
    """Wide CSV, one row per method: `<class> <metric> mean|std` at full precision, `<class> n`
    and `<class> flag` (the verdict) when the table has flags."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["method", *(f"{c} {col}" for c in t.classes
                            for col in ("n", *(f"{label} {s}" for label, _ in t.columns for s in ("mean", "std")),
                                        *(["flag"] if t.flags else [])))])
    for m in t.methods:
        out: list[str] = [m]
        for c in t.classes:
            first = t.cells.get((m, c, t.columns[0][0]))
            out.append("" if first is None else str(first.n))
            for label, _ in t.columns:
                cell = t.cells.get((m, c, label))
                for v in (None, None) if cell is None else (cell.mean, cell.std):
                    out.append("" if v is None or math.isnan(v) else repr(float(v)))
            if t.flags:
                verdict = t.flags.get((m, c))
                out.append("" if verdict is None else verdict.flag)
        w.writerow(out)
    return buf.getvalue()


_LATEX = {"\\": r"\textbackslash{}", "_": r"\_", "&": r"\&", "%": r"\%", "#": r"\#", "$": r"\$",
          "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}",
          "±": r"$\pm$", "−": "$-$", "–": "--", "·": " ",
          "⚠": r"\textbf{!}", "“": "``", "”": "''"}


def latex_escape(text: str) -> str:
    """Escape TeX specials and map the few non-ASCII signs we print, so pdflatex needs no packages."""
    return "".join(_LATEX.get(ch, ch) for ch in text)


def to_latex(t: Table) -> str:
    """A booktabs table with \\multicolumn groups per class, as the paper lays them out."""
    k = len(t.labels)
    spec = "l" + " ".join("c" * k for _ in t.classes)
    lines = [r"\begin{table}[t]", r"\centering", r"\small",
             rf"\caption{{{latex_escape(t.caption())}}}",
             rf"\label{{tab:{t.name}}}", rf"\begin{{tabular}}{{{spec}}}", r"\toprule"]
    groups = " & ".join(rf"\multicolumn{{{k}}}{{c}}{{{latex_escape(group_label(t, c))}}}" for c in t.classes)
    rules = " ".join(rf"\cmidrule(lr){{{2 + i * k}-{1 + (i + 1) * k}}}" for i in range(len(t.classes)))
    lines += [f" & {groups} \\\\", rules]
    lines.append("Method & " + " & ".join(LATEX_LABELS.get(label, latex_escape(label))
                                          for _ in t.classes for label in t.labels) + r" \\")
    lines.append(r"\midrule")
    for m in t.methods:
        lines.append(latex_escape(m) + " & " + " & ".join(latex_escape(c) for c in t.row_cells(m)) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def summary_csv(rows: Sequence[Row]) -> str:
    """Every group and metric in one long CSV (for scripts rather than readers)."""
    group = ("task", "dataset", "net", "forget_class_name", "method")
    # "random" rather than an empty class; the cold time by the one rule (ssd.report.rows.cold_time)
    rows = [{**with_cold_time(r), "forget_class_name": class_label(r)} for r in rows]
    summary = summarize(rows, group_by=group, metrics=SUMMARY_METRICS)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    cols = [*group, "n", *(f"{m}_{s}" for m in SUMMARY_METRICS for s in ("mean", "std"))]
    w.writerow(cols)
    for s in summary:
        w.writerow(["" if s.get(c) is None or (isinstance(s.get(c), float) and math.isnan(s[c])) else s[c]
                    for c in cols])
    return buf.getvalue()


def write_tables(tables: Sequence[Table], out_dir: Path) -> dict[str, dict[str, Path]]:
    """Write each table as .md/.csv/.tex under `out_dir`; {table name: {format: path}}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, dict[str, Path]] = {}
    for t in tables:
        paths = {"md": out_dir / f"{t.name}.md", "csv": out_dir / f"{t.name}.csv", "tex": out_dir / f"{t.name}.tex"}
        paths["md"].write_text(f"{to_markdown(t)}\n\n*{t.caption()}*\n")
        paths["csv"].write_text(to_csv(t))
        paths["tex"].write_text(to_latex(t))
        written[t.name] = paths
    return written
