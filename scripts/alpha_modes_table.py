"""SSD/LFSSD at the paper's α, `auto` and `search`, side by side: one Markdown table per task.

    python scripts/alpha_modes_table.py RESULTS.jsonl [MORE.jsonl ...] [--out docs/results/alpha-modes/table.md]

Reads result rows (suite runs; sweep rows are skipped), groups them by task × method label
(`ssd`, `ssd@auto`, `ssd@search`, …; baseline and retrain rows are shown as references when
present) and prints mean ± std over seeds and forget classes of Df (forget-train), DfTest,
DrTest, MIA, the cold time (ssd.report.rows.cold_time: D's importances computed even where
the run read them from the cache; "–" where a row does not show it) and this run's cached
MethodTime beside it, with the α each mode chose (mean, min–max) and, for `search`,
how often each branch of its rule decided (met / closest / budget_exceeded).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ssd.errors import run_cli  # noqa: E402
from ssd.report.rows import with_cold_time  # noqa: E402
from ssd.results import read_rows  # noqa: E402
from ssd.summary import fmt, mean_std  # noqa: E402

METRICS = ("Df", "DfTest", "DrTest", "MIA", "MethodTimeCold", "MethodTime")
SHOWN = ("baseline", "retrain")


def keep(row: dict[str, Any]) -> bool:
    method = str(row.get("method"))
    return "sweep" not in row and (method in SHOWN or method.split("@")[0] in ("ssd", "lfssd"))


def table(rows: Sequence[dict[str, Any]]) -> str:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if keep(r):
            groups[(r["task"], r["method"])].append(with_cold_time(r))
    out = []
    for task in sorted({t for t, _ in groups}):
        out += [f"### {task}", "", "| method | n | α chosen | " + " | ".join(METRICS) + " | search branch |",
                "|---|---:|---|" + "---:|" * len(METRICS) + "---|"]
        methods = sorted((m for t, m in groups if t == task),
                         key=lambda m: (SHOWN.index(m) if m in SHOWN else len(SHOWN), m))
        for m in methods:
            members = groups[(task, m)]
            alphas = [r["method_stats"]["alpha"] for r in members if r.get("method_stats")]
            a_mean, _ = mean_std(alphas)
            a_txt = "–" if not alphas else f"{a_mean:.3g} ({min(alphas):.3g}–{max(alphas):.3g})"
            cells = [fmt(*mean_std([r["metrics"].get(k) for r in members]), 3 if k.startswith("MethodTime") else 2)
                     for k in METRICS]
            branches = Counter((r.get("method_stats") or {}).get("alpha_select", {}).get("branch")
                               for r in members if ((r.get("method_stats") or {}).get("alpha_select") or {})
                               .get("mode") == "search")
            b_txt = ", ".join(f"{k} {v}" for k, v in sorted(branches.items())) or "–"
            out.append(f"| {m} | {len(members)} | {a_txt} | " + " | ".join(cells) + f" | {b_txt} |")
        out.append("")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("results", nargs="+", help="JSON-lines result files")
    p.add_argument("--out", default=None, help="also write the tables to this Markdown file")
    args = p.parse_args(argv)
    rows = [r for path in args.results for r in read_rows(path)]
    text = table(rows)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    sys.exit(run_cli(main))
