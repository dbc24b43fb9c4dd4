"""`write_report`: tables, figures and an index page (report.md + a static index.html) in one folder.

The page is built once as a list of blocks and rendered twice (Markdown, HTML), so the
two never disagree about what is shown.
"""

from __future__ import annotations

import html
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ssd.report import figures as F
from ssd.report.rows import (
    Row,
    RowsOrPaths,
    choose_runs,
    class_label,
    df_key,
    find_baseline,
    load_rows,
    slug,
    split_rows,
)
from ssd.report.sweeps import sweep_groups, sweep_table, write_sweep_figures
from ssd.report.tables import build_tables, summary_csv, to_markdown, write_tables


@dataclass
class Page:
    """The page as blocks, so Markdown and HTML show the same things.

    ("h", level, text) ("p", text) ("md", markdown, html) ("img", relpath, caption) ("grid", header, body).
    """

    blocks: list[tuple[Any, ...]] = field(default_factory=list)

    def h(self, level: int, text: str) -> None:
        self.blocks.append(("h", level, text))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def img(self, path: Path, root: Path, caption: str) -> None:
        self.blocks.append(("img", path.relative_to(root).as_posix(), caption))

    def grid(self, header: list[str], body: list[list[str]]) -> None:
        self.blocks.append(("grid", header, body))

    def markdown(self) -> str:
        out: list[str] = []
        for b in self.blocks:
            if b[0] == "h":
                out.append(f"{'#' * b[1]} {b[2]}")
            elif b[0] == "p":
                out.append(b[1])
            elif b[0] == "md":
                out.append(b[1])
            elif b[0] == "img":
                out.append(f"![{b[2]}]({b[1]})\n\n*{b[2]}*")
            elif b[0] == "grid":
                out.append("\n".join(["| " + " | ".join(b[1]) + " |", "|" + "---|" * len(b[1]),
                                      *("| " + " | ".join(r) + " |" for r in b[2])]))
        return "\n\n".join(out) + "\n"

    def html(self, title: str) -> str:
        e = html.escape
        out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>"
               "body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
               "table{border-collapse:collapse;font-size:90%;margin:.5em 0}"
               "td,th{border:1px solid #ccc;padding:2px 6px;text-align:center}"
               "img{max-width:100%;border:1px solid #eee}figcaption{color:#444;font-size:90%}"
               "</style></head><body>"]
        for b in self.blocks:
            if b[0] == "h":
                out.append(f"<h{b[1]}>{e(b[2])}</h{b[1]}>")
            elif b[0] == "p":
                out.append(f"<p>{_inline_html(b[1])}</p>")
            elif b[0] == "md":
                out.append(b[2])
            elif b[0] == "img":
                out.append(f"<figure><a href='{e(b[1])}'><img src='{e(b[1])}' alt='{e(b[2])}'></a>"
                           f"<figcaption>{e(b[2])}</figcaption></figure>")
            elif b[0] == "grid":
                out.append(_html_table(b[1], b[2]))
        out.append("</body></html>")
        return "\n".join(out)


def _inline_html(text: str) -> str:
    """The only inline Markdown the page uses: [label](link) and `code`."""
    import re

    text = html.escape(text)
    text = re.sub(r"\[([^\]]+)\]\(([^)]+)\)", r"<a href='\2'>\1</a>", text)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


def _html_table(header: list[str], body: list[list[str]], caption: str | None = None) -> str:
    e = html.escape
    cap = f"<caption>{e(caption)}</caption>" if caption else ""
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    rows = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in body)
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _table_html(t: Any) -> str:
    """The paper layout in HTML, where column groups can span (Markdown cannot)."""
    from ssd.report.tables import COLUMNS, group_label

    e = html.escape
    k = len(COLUMNS)
    groups = "<th></th>" + "".join(f"<th colspan='{k}'>{e(group_label(t, c))}</th>" for c in t.classes)
    labels = "<th>Method</th>" + "".join(f"<th>{e(label)}</th>" for _ in t.classes for label, _ in COLUMNS)
    rows = "".join("<tr><td>" + e(m) + "</td>" + "".join(f"<td>{e(t.text(m, c, label, d))}</td>"
                                                          for c in t.classes for label, d in COLUMNS) + "</tr>"
                   for m in t.methods)
    return (f"<table><caption>{e(t.caption())}</caption><thead><tr>{groups}</tr><tr>{labels}</tr></thead>"
            f"<tbody>{rows}</tbody></table>")


def _tables_section(page: Page, runs: list[Row], out: Path) -> None:
    tables = build_tables(runs)
    files = write_tables(tables, out / "tables")
    (out / "tables" / "summary.csv").write_text(summary_csv(runs))
    page.h(2, "Tables")
    page.p("Mean ± std over seeds (sample std, n − 1). A row per method, a column group per forget class. "
           "Each table is also saved as Markdown, CSV (full precision) and LaTeX (booktabs); "
           "every metric of every group is in [tables/summary.csv](tables/summary.csv).")
    for t in tables:
        page.h(3, f"{t.task.replace('_', '-')} · {t.net} on {t.dataset}")
        page.blocks.append(("md", to_markdown(t) + f"\n\n*{t.caption()}*", _table_html(t)))
        links = " · ".join(f"[{label}]({files[t.name][fmt].relative_to(out).as_posix()})"
                           for label, fmt in (("Markdown", "md"), ("CSV", "csv"), ("LaTeX", "tex")))
        page.p(f"Files: {links}")


def _methods_section(page: Page, runs: list[Row], out: Path) -> None:
    by_table: dict[tuple[Any, ...], list[Row]] = defaultdict(list)
    for r in runs:
        by_table[(r.get("task"), r.get("dataset"), r.get("net"))].append(r)
    if not by_table:
        return
    page.h(2, "Methods compared")
    for (task, dataset, net), members in by_table.items():
        page.h(3, f"{str(task).replace('_', '-')} · {net} on {dataset}")
        by_class: dict[str, list[Row]] = defaultdict(list)
        for r in members:
            by_class[class_label(r)].append(r)
        for cls, rows in by_class.items():
            path = F.method_bars_figure(rows, out / "figures" / f"methods_{slug(task, dataset, net, cls)}.png")
            which = "forget-train (random task)" if df_key(task) == "Df" else "forget-test"
            page.img(path, out, f"Dr (retain-test accuracy), Df ({which} accuracy) and MIA per method, forgetting "
                     f"{cls}: bars = mean over seeds, error bars = std; SSD in red, the baseline in grey.")
        path = F.time_figure(members, out / "figures" / f"time_{slug(task, dataset, net)}.png")
        if path is not None:
            page.img(path, out, "Method wall-clock time (log scale), pooled over forget classes and seeds; "
                     "methods with zero time (nothing to do) are left out.")


def _before_after_section(page: Page, runs: list[Row], out: Path, run_key: str | None) -> None:
    chosen = choose_runs(runs, run_key)
    if not chosen:
        return
    page.h(2, "Before and after")
    page.p("Before = the baseline row (the original model) of the same task, forget class, seed and checkpoint; "
           "after = the chosen run " + ("(given by --run)." if run_key else "(the first ssd run of each table, "
                                        "else its first non-baseline run; pick another with `--run RUN_KEY`)."))
    for row in chosen:
        page.h(3, F.run_title(row))
        base = find_baseline(runs, row)
        page.p(f"run_key `{row.get('run_key')}`, checkpoint `{row.get('checkpoint')}`.")
        if base is None:
            page.p("No baseline row for this run in the results given, so there is no before/after to draw.")
            continue
        tag = slug(row.get("task"), row.get("dataset"), row.get("net"), class_label(row), row.get("method"),
                   f"s{row.get('seed')}")
        made = [
            (F.accuracy_bars_figure(base, row, out / "figures" / f"accuracy_{tag}.png"),
             "Accuracy on the forget and retain sets before (baseline) and after the method; values in %."),
            (F.confusion_figure(base, row, out / "figures" / f"confusion_{tag}.png"),
             "Confusion matrices of the forget set (train images) and the retain-test set, before and after. "
             "Colour = share of each true class's samples, numbers = counts. After forgetting a class, its "
             "row should move off the diagonal while the other rows stay put (the retain-test set has no row "
             "for a forgotten class)."),
            (F.classwise_figure(base, row, out / "figures" / f"classwise_{tag}.png"),
             "Class-wise test accuracy before and after, and each class's drop in percentage points "
             "(\"forgetfulness\"): ideally only the forgotten class drops."),
        ]
        for path, caption in made:
            if path is None:
                page.p("(A figure was skipped: these rows have no per-class details, e.g. more than 20 classes "
                       "for confusion matrices.)")
            else:
                page.img(path, out, caption)


def _sweeps_section(page: Page, sweeps: list[Row], out: Path) -> None:
    if not sweeps:
        return
    page.h(2, "Sweeps")
    page.p("Rows written by `scripts/sweep.py`: SSD's importances are computed once and each point is one "
           "dampening plus one evaluation; output_dampening and global_dampening are applied to a fresh copy per "
           "point.")
    made = write_sweep_figures(sweeps, out / "figures")
    for key, members in sweep_groups(sweeps).items():
        page.h(3, f"{str(key[0]).replace('_', '-')} · {key[2]} on {key[1]} · forget {key[3]} · seed {key[4]}")
        tag = slug(*key[:5])
        for path, caption in made:
            if tag in path.name:
                page.img(path, out, caption)
        df = "Df (train)" if df_key(str(key[0])) == "Df" else "DfTest"
        page.grid(["method", "param", "value", "changed", f"{df} %", "DrTest %", "MIA", "forg. eff.", "retention"],
                  sweep_table(members))


def write_report(paths_or_rows: RowsOrPaths, out_dir: str | Path, run_key: str | None = None) -> Path:
    """Write tables (md/csv/tex), PNG figures, report.md and index.html under `out_dir`; returns report.md."""
    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    for stale in (out / "figures").glob("*.png"):  # a rewritten report links exactly what it drew
        stale.unlink()
    rows = load_rows(paths_or_rows)
    runs, sweeps = split_rows(rows)
    page = Page()
    page.h(1, "Unlearning report")
    sources = [str(p) for p in ([paths_or_rows] if isinstance(paths_or_rows, (str, Path)) else paths_or_rows)
               if not isinstance(p, dict)]
    page.p(f"{len(runs)} runs and {len(sweeps)} sweep points"
           + (f" from {', '.join(f'`{s}`' for s in sources)}" if sources else "")
           + f"; written {datetime.now(UTC).isoformat(timespec='seconds')}. Accuracies are in %, MIA and ZRF "
           "are fractions, times are seconds.")
    if runs:
        _tables_section(page, runs, out)
        _methods_section(page, runs, out)
        _before_after_section(page, runs, out, run_key)
    _sweeps_section(page, sweeps, out)
    if not rows:
        page.p("No result rows were found.")
    index = out / "report.md"
    index.write_text(page.markdown())
    (out / "index.html").write_text(page.html("Unlearning report"))
    return index
