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

from ssd.report.rows import Row, class_label, df_key, order_methods, slug
from ssd.summary import fmt, summarize

# (column label, how many decimals) per shown metric; "Df" resolves per task (see df_key).
# "Time (s)" is the cold time (D's importances included even when they came from the cache);
# "Cached (s)" is this run's MethodTime beside it (they differ only for SSD runs with a cache hit).
COLUMNS: tuple[tuple[str, int], ...] = (("Dr", 2), ("Df", 2), ("MIA", 3), ("ZRF", 3), ("Time (s)", 3),
                                        ("Cached (s)", 3))
LATEX_LABELS = {"Dr": "$D_r$", "Df": "$D_f$", "MIA": "MIA", "ZRF": "ZRF", "Time (s)": "Time (s)",
                "Cached (s)": "Cached (s)"}
SUMMARY_METRICS = ("DrTest", "DfTest", "Df", "DrTrain", "TestAcc", "MIA", "MIA_loss_auc", "MIA_conf_auc",
                   "ZRF", "ActDist", "DfLoss", "DrTestLoss", "MethodTime")


def metric_key(label: str, task: str) -> str:
    """The row metric behind a column label for this task."""
    return {"Dr": "DrTest", "Df": df_key(task), "MIA": "MIA", "ZRF": "ZRF", "Time (s)": "MethodTimeCold",
            "Cached (s)": "MethodTime"}[label]


def with_cold_time(row: Row) -> Row:
    """Rows written before MethodTimeCold existed: their MethodTime is the best cold figure known."""
    m = row.get("metrics", {})
    return row if "MethodTimeCold" in m else {**row, "metrics": {**m, "MethodTimeCold": m.get("MethodTime")}}


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

    @property
    def name(self) -> str:
        return slug(self.task, self.dataset, self.net)

    def seeds_text(self) -> str:
        ns = sorted({c.n for c in self.cells.values()})
        if not ns:
            return "no runs"
        span = str(ns[0]) if len(ns) == 1 else f"{ns[0]}–{ns[-1]}"
        return f"{span} seed{'s' if ns[-1] > 1 else ''}"

    def caption(self) -> str:
        df = ("Df = accuracy (%) on the forget class's test images (DfTest)" if self.task != "random"
              else "Df = accuracy (%) on the forgotten training samples (the random task has no held-out forget set)")
        return (f"{self.task.replace('_', '-')} forgetting, {self.net} on {self.dataset}: mean ± std over "
                f"{self.seeds_text()}. Dr = retain-test accuracy (%); {df}; MIA = fraction of forget "
                "samples the entropy attack calls members; ZRF = 1 − JS divergence to an untrained model; "
                "Time = method wall-clock seconds with D's importances computed (cold); Cached = the same run's "
                "seconds, lower only where SSD read D's importances from the cache.")

    def text(self, method: str, cls: str, label: str, digits: int) -> str:
        cell = self.cells.get((method, cls, label))
        return "–" if cell is None else fmt(cell.mean, cell.std, digits)


def build_tables(rows: Sequence[Row]) -> list[Table]:
    """Tables from ordinary (non-sweep) rows, in first-seen (task, dataset, net) order."""
    tagged = [{**with_cold_time(r), "_class": class_label(r)} for r in rows]
    keys = ("task", "dataset", "net", "_class", "method")
    summary = summarize(tagged, group_by=keys,
                        metrics=("DrTest", "DfTest", "Df", "MIA", "ZRF", "MethodTimeCold", "MethodTime"))
    tables: dict[tuple[str, str, str], Table] = {}
    for s in summary:
        tkey = (str(s["task"]), str(s["dataset"]), str(s["net"]))
        t = tables.setdefault(tkey, Table(*tkey, classes=[], methods=[]))
        if s["_class"] not in t.classes:
            t.classes.append(s["_class"])
        t.methods.append(s["method"])
        for label, _ in COLUMNS:
            k = metric_key(label, t.task)
            t.cells[(s["method"], s["_class"], label)] = Cell(s[f"{k}_mean"], s[f"{k}_std"], s["n"])
    for t in tables.values():
        t.methods = order_methods(t.methods)
    return list(tables.values())


def group_label(t: Table, cls: str) -> str:
    """A column group's heading: "forget rocket", or "random samples" for the random task."""
    return "random samples" if t.task == "random" else f"forget {cls}"


def _header(t: Table) -> list[str]:
    if len(t.classes) == 1:
        return ["Method", *(label for label, _ in COLUMNS)]
    return ["Method", *(f"{c} · {label}" for c in t.classes for label, _ in COLUMNS)]


def to_markdown(t: Table) -> str:
    """A pipe table (GitHub Markdown has no column spans, so a group is named in each header)."""
    body = [[m, *(t.text(m, c, label, d) for c in t.classes for label, d in COLUMNS)] for m in t.methods]
    header = _header(t)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + [":-:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    if len(t.classes) == 1:
        what = "random training samples" if t.task == "random" else f"class **{t.classes[0]}**"
        lines.insert(0, f"Forgetting {what}\n")
    return "\n".join(lines)


def to_csv(t: Table) -> str:
    """Wide CSV, one row per method: `<class> <metric> mean|std` at full precision and `<class> n`."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["method", *(f"{c} {col}" for c in t.classes
                            for col in ("n", *(f"{label} {s}" for label, _ in COLUMNS for s in ("mean", "std"))))])
    for m in t.methods:
        out: list[str] = [m]
        for c in t.classes:
            first = t.cells.get((m, c, COLUMNS[0][0]))
            out.append("" if first is None else str(first.n))
            for label, _ in COLUMNS:
                cell = t.cells.get((m, c, label))
                for v in (None, None) if cell is None else (cell.mean, cell.std):
                    out.append("" if v is None or math.isnan(v) else repr(float(v)))
        w.writerow(out)
    return buf.getvalue()


_LATEX = {"\\": r"\textbackslash{}", "_": r"\_", "&": r"\&", "%": r"\%", "#": r"\#", "$": r"\$",
          "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}",
          "±": r"$\pm$", "−": "$-$", "–": "--", "·": " "}


def latex_escape(text: str) -> str:
    """Escape TeX specials and map the few non-ASCII signs we print, so pdflatex needs no packages."""
    return "".join(_LATEX.get(ch, ch) for ch in text)


def to_latex(t: Table) -> str:
    """A booktabs table with \\multicolumn groups per class, as the paper lays them out."""
    k = len(COLUMNS)
    spec = "l" + " ".join("c" * k for _ in t.classes)
    lines = [r"\begin{table}[t]", r"\centering", r"\small",
             rf"\caption{{{latex_escape(t.caption())}}}",
             rf"\label{{tab:{t.name}}}", rf"\begin{{tabular}}{{{spec}}}", r"\toprule"]
    groups = " & ".join(rf"\multicolumn{{{k}}}{{c}}{{{latex_escape(group_label(t, c))}}}" for c in t.classes)
    rules = " ".join(rf"\cmidrule(lr){{{2 + i * k}-{1 + (i + 1) * k}}}" for i in range(len(t.classes)))
    lines += [f" & {groups} \\\\", rules]
    lines.append("Method & " + " & ".join(LATEX_LABELS[label] for _ in t.classes for label, _ in COLUMNS) + r" \\")
    lines.append(r"\midrule")
    for m in t.methods:
        cells = [latex_escape(t.text(m, c, label, d)) for c in t.classes for label, d in COLUMNS]
        lines.append(latex_escape(m) + " & " + " & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def summary_csv(rows: Sequence[Row]) -> str:
    """Every group and metric in one long CSV (for scripts rather than readers)."""
    group = ("task", "dataset", "net", "forget_class_name", "method")
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
