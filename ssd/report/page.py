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

from ssd.errors import UserError
from ssd.report import figures as F
from ssd.report.claims import claims_section
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
from ssd.utils import check_writable, new_dirs_removed_on_failure


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

    def toc(self) -> None:
        """A table of contents of the h2/h3 headings, rendered where this is called."""
        self.blocks.append(("toc",))

    def anchors(self) -> list[str]:
        """An id per heading block, as GitHub derives them (lower case, punctuation dropped, spaces → -)."""
        seen: dict[str, int] = {}
        out = []
        for b in self.blocks:
            if b[0] != "h":
                continue
            base = "".join(c for c in b[2].lower() if c.isalnum() or c in " -_").replace(" ", "-")
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.append(base if n == 0 else f"{base}-{n}")
        return out

    def _toc_entries(self) -> list[tuple[int, str, str]]:
        heads = [b for b in self.blocks if b[0] == "h"]
        return [(b[1], b[2], a) for b, a in zip(heads, self.anchors(), strict=True) if b[1] in (2, 3)]

    def markdown(self) -> str:
        out: list[str] = []
        for b in self.blocks:
            if b[0] == "toc":
                out.append("\n".join(f"{'  ' * (lvl - 2)}- [{text}](#{a})" for lvl, text, a in self._toc_entries()))
            elif b[0] == "h":
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
               "tr.flagged td{background:#fdecea}nav.toc{background:#f6f6f6;padding:.3em 1em;columns:2}"
               "nav.toc ul{margin:0;padding-left:1.2em}"
               "</style></head><body>"]
        anchors = iter(self.anchors())
        for b in self.blocks:
            if b[0] == "toc":
                items = "".join(f"<li style='margin-left:{(lvl - 2) * 1.2}em'><a href='#{e(a)}'>{e(text)}</a></li>"
                                for lvl, text, a in self._toc_entries())
                out.append(f"<nav class='toc'><strong>Contents</strong><ul>{items}</ul></nav>")
            elif b[0] == "h":
                out.append(f"<h{b[1]} id='{e(next(anchors))}'>{e(b[2])}</h{b[1]}>")
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
    """The only inline Markdown the page uses: [label](link), `code` and **bold**."""
    import re

    text = html.escape(text)
    text = re.sub(r"\[([^\]]+)\]\(([^)]+)\)", r"<a href='\2'>\1</a>", text)
    text = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


def _html_table(header: list[str], body: list[list[str]], caption: str | None = None) -> str:
    e = html.escape
    cap = f"<caption>{e(caption)}</caption>" if caption else ""
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    rows = "".join("<tr>" + "".join(f"<td>{_inline_html(str(c))}</td>" for c in r) + "</tr>" for r in body)
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _table_html(t: Any) -> str:
    """The paper layout in HTML, where column groups can span (Markdown cannot); flagged rows are tinted."""
    from ssd.report.tables import group_label

    e = html.escape
    k = len(t.labels)
    groups = "<th></th>" + "".join(f"<th colspan='{k}'>{e(group_label(t, c))}</th>" for c in t.classes)
    labels = "<th>Method</th>" + "".join(f"<th>{e(label)}</th>" for _ in t.classes for label in t.labels)
    rows = []
    for m in t.methods:
        bad = [v for (meth, _), v in t.flags.items() if meth == m and v.bad]
        style = " class='flagged' title='" + e("; ".join(v.why for v in bad)) + "'" if bad else ""
        rows.append(f"<tr{style}><td>{e(m)}</td>" + "".join(f"<td>{e(c)}</td>" for c in t.row_cells(m)) + "</tr>")
    return (f"<table><caption>{e(t.caption(legend=False))}</caption><thead><tr>{groups}</tr><tr>{labels}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def _tables_section(page: Page, runs: list[Row], out: Path, notes: dict[str, str]) -> None:
    from ssd.report.verdicts import legend

    tables = build_tables(runs)
    privacy = {t.name.removesuffix("_privacy"): t for t in build_tables(runs, kind="privacy")}
    files = write_tables([*tables, *privacy.values()], out / "tables")
    (out / "tables" / "summary.csv").write_text(summary_csv(runs))
    page.h(2, "Tables")
    page.p("Mean ± std over seeds (sample std, n − 1; n/a with one seed). A row per method, a column group per "
           "forget class; a second table per task holds the stronger membership attacks and the distance to the "
           "retrained model. Each table is also saved as Markdown, CSV (full precision) and LaTeX (booktabs); "
           "every metric of every group is in [tables/summary.csv](tables/summary.csv).")
    page.p(legend(runs))
    from ssd.report.verdicts import missing_references

    for line in missing_references(runs):
        page.p(f"**Missing references**: {line}.")
    from ssd.report.configs import mixed_cells

    mixed = mixed_cells(runs)
    if mixed:
        page.p("**Several configurations in one cell** (not pooled as seeds: each configuration is its own "
               "row, labelled with the settings that tell them apart): " + "; ".join(mixed) + ".")
    if notes:
        page.p("Method notes (the suite's `[method_notes]`): " + "; ".join(f"**{m}**: {why}" for m, why in notes.items())
               + ".")
    for t in tables:
        page.h(3, f"{t.task.replace('_', '-')} · {t.net} on {t.dataset}")
        bad = [(m, c, v) for (m, c), v in t.flags.items() if v.bad]
        if bad:
            page.p("Flagged: " + "; ".join(f"{m}" + (f" ({c})" if len(t.classes) > 1 else "") + f" {v.flag}: {v.why}"
                                           + (" (see the method notes above)" if m in notes else "")
                                           for m, c, v in sorted(bad, key=lambda b: t.methods.index(b[0]))) + ".")
        for shown in (t, privacy.get(t.name)):
            if shown is None:
                continue
            page.blocks.append(("md", to_markdown(shown) + f"\n\n*{shown.caption(legend=False)}*", _table_html(shown)))
            links = " · ".join(f"[{label}]({files[shown.name][fmt].relative_to(out).as_posix()})"
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
            if path is None:
                page.p(f"(No per-method figure for {cls}: its rows hold none of the metrics it draws.)")
                continue
            which = "forget-train (random task)" if df_key(task) == "Df" else "forget-test"
            page.img(path, out, f"Per method, forgetting {cls}: Dr (retain-test accuracy), Df ({which} "
                     "accuracy), the entropy MIA, ActDist to the retrained model, and the loss and confidence "
                     "attacks (ROC-AUC, TPR at 1 % FPR); bars = mean over seeds, error bars = std; SSD in red, the "
                     "baseline in grey; flagged methods are hatched and named with their flag.")
        path = F.time_figure(members, out / "figures" / f"time_{slug(task, dataset, net)}.png")
        if path is not None:
            page.img(path, out, "Method wall-clock time (log scale), pooled over forget classes and seeds; "
                     f"methods under {F.TIME_FLOOR * 1000:g} ms (nothing trained), or whose rows show no cold time, "
                     "are left out and named in the title. Times on a shared machine: compare ratios within one run.")


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
        page.grid(["method", "param", "value", "selected", "changed", f"{df} %", "DrTest %", "MIA", "forg. eff.", "retention"],
                  sweep_table(members))


def write_report(paths_or_rows: RowsOrPaths, out_dir: str | Path, run_key: str | None = None,
                 notes: dict[str, str] | None = None, scale_rows: RowsOrPaths | None = None,
                 privacy_rows: RowsOrPaths | None = None) -> Path:
    """Write tables (md/csv/tex), PNG figures, report.md and index.html under `out_dir`; returns report.md.

    An unwritable `out_dir` is refused before anything is read or drawn; a report that
    fails part-way removes the folders it created (no empty folders are left behind).
    `notes`: method → why its settings are what they are, or why it cannot forget here (a suite's
    `[method_notes]`); printed beside the tables' flags. `scale_rows`: the scale study's rows
    (configs/suites/scale.toml), summarised after the claims (ssd.report.scale.scale_claims).
    `privacy_rows`: more rows whose audits (U-LiRA, the class-level attack) the privacy sections
    show beside the main rows' own — e.g. a grid's cells re-run with an attack it lacked; their
    other metrics stay out of the tables and claims. Rows without an audit are refused.
    """
    out = Path(out_dir)
    check_writable(out, "report folder (--out)", folder=True)
    extra = _audit_rows(privacy_rows) if privacy_rows is not None else None  # refused before any work
    with new_dirs_removed_on_failure(out, out / "figures", out / "tables"):
        return _write_report(paths_or_rows, out, run_key, notes, scale_rows, extra, _sources(privacy_rows))


def _audit_rows(source: RowsOrPaths) -> list[Row]:
    """The rows that the privacy sections would draw (their own predicates), or a refusal."""
    from ssd.report.class_privacy import has_cmia
    from ssd.report.privacy import has_ulira

    runs, _ = split_rows(load_rows(source))
    audited = [r for r in runs if has_ulira(r) or has_cmia(r)]
    if not audited:
        raise UserError("the privacy rows (--privacy) hold no audit (no U-LiRA or class-level attack with its details): "
                        "pass the results of runs made with --ulira or of class tasks")
    return audited


def _write_report(paths_or_rows: RowsOrPaths, out: Path, run_key: str | None,
                  notes: dict[str, str] | None = None, scale_rows: RowsOrPaths | None = None,
                  privacy_rows: list[Row] | None = None, privacy_sources: list[str] | None = None) -> Path:
    (out / "figures").mkdir(parents=True, exist_ok=True)
    for stale in (out / "figures").glob("*.png"):  # a rewritten report links exactly what it drew
        stale.unlink()
    rows = load_rows(paths_or_rows)
    runs, sweeps = split_rows(rows)
    seen = {r.get("run_key") for r in runs}
    extra = [r for r in privacy_rows or [] if r.get("run_key") not in seen]  # a run given twice counts once
    if run_key is not None:
        choose_runs(runs, run_key)  # an unknown --run is refused before anything is drawn
    page = Page()
    page.h(1, "Unlearning report")
    sources = _sources(paths_or_rows)
    page.p(f"{len(runs)} runs and {len(sweeps)} sweep points"
           + (f" from {', '.join(f'`{s}`' for s in sources)}" if sources else "")
           + f"; written {datetime.now(UTC).isoformat(timespec='seconds')}. Accuracies are in %, MIA and ZRF "
           "are fractions, times are seconds."
           + (f" The privacy sections also show the audits of {len(extra)} runs from "
              f"{', '.join(f'`{s}`' for s in privacy_sources or [])} (their other metrics are not in the tables)."
              if extra else ""))
    page.toc()
    if runs:
        _tables_section(page, runs, out, notes or {})
        claims_section(page, runs, sweeps)
        if scale_rows is not None:
            from ssd.report.scale import scale_claims

            scale_claims(page, load_rows(scale_rows))
        _methods_section(page, runs, out)
        _before_after_section(page, runs, out, run_key)
        from ssd.report.privacy import privacy_section  # U-LiRA rows only; drawn nowhere else

        privacy_section(page, [*runs, *extra], out)
        from ssd.report.class_privacy import class_privacy_section  # class rows with the class-level attack

        class_privacy_section(page, [*runs, *extra], out)
    _sweeps_section(page, sweeps, out)
    if not rows:
        page.p("No result rows were found.")
    index = out / "report.md"
    index.write_text(page.markdown())
    (out / "index.html").write_text(page.html("Unlearning report"))
    return index


def _sources(paths_or_rows: RowsOrPaths | None) -> list[str]:
    items = [paths_or_rows] if isinstance(paths_or_rows, (str, Path)) else list(paths_or_rows or [])
    return [str(p) for p in items if not isinstance(p, dict)]
