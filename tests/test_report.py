"""Reports from a hand-made results file: every figure renders, tables hold the right numbers."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path
from typing import Any

import matplotlib.image as mpimg
import pytest

from ssd.errors import UserError
from ssd.report import load_rows, write_report
from ssd.report.tables import build_tables, to_csv, to_latex, to_markdown
from tests.scripts_module import load_script

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
C = 3  # classes of the toy dataset

# (task, method, class) → per-seed (DrTest, DfTest, Df, MIA, ZRF, MethodTime)
NUMBERS: dict[tuple[str, str, int | None], list[tuple[float, ...]]] = {
    ("full_class", "baseline", 0): [(90.0, 95.0, 100.0, 0.90, 0.40, 0.001), (92.0, 97.0, 100.0, 0.80, 0.44, 0.003)],
    ("full_class", "ssd", 0): [(88.0, 1.0, 0.0, 0.10, 0.60, 0.5), (86.0, 3.0, 2.0, 0.20, 0.64, 0.7)],
    ("full_class", "global_dampening", 0): [(10.0, 0.0, 0.0, 0.0, 0.99, 0.01), (12.0, 0.0, 0.0, 0.0, 0.97, 0.03)],
    ("full_class", "baseline", 1): [(91.0, 93.0, 99.0, 0.85, 0.41, 0.002), (93.0, 95.0, 99.0, 0.87, 0.43, 0.002)],
    ("full_class", "ssd", 1): [(89.0, 5.0, 4.0, 0.30, 0.58, 0.4), (85.0, 9.0, 6.0, 0.10, 0.62, 0.6)],
    ("full_class", "global_dampening", 1): [(11.0, 0.0, 0.0, 0.0, 0.98, 0.02), (13.0, 0.0, 0.0, 0.0, 0.96, 0.02)],
    ("random", "baseline", None): [(90.0, math.nan, 100.0, 0.7, 0.5, 0.001), (90.5, math.nan, 99.0, 0.72, 0.5, 0.001)],
    ("random", "ssd", None): [(89.0, math.nan, 97.0, 0.6, 0.55, 0.3), (88.0, math.nan, 95.0, 0.62, 0.56, 0.5)],
}
KEYS = ("DrTest", "DfTest", "Df", "MIA", "ZRF", "MethodTime")


def _details(drop_class: int | None) -> dict[str, Any]:
    acc = [95.0] * C
    forget = [[0] * C for _ in range(C)]
    retain = [[30 if i == j else 1 for j in range(C)] for i in range(C)]
    if drop_class is not None:
        acc[drop_class] = 5.0
        forget[drop_class] = [0 if j == drop_class else 20 for j in range(C)]
        retain[drop_class] = [0] * C
    else:
        forget = [[10 if i == j else 0 for j in range(C)] for i in range(C)]
    return {"test_class_acc": acc, "forget_confusion": forget, "retain_test_confusion": retain}


def _row(task: str, method: str, cls: int | None, seed: int, values: tuple[float, ...]) -> dict[str, Any]:
    metrics = {k: (None if math.isnan(v) else v) for k, v in zip(KEYS, values, strict=True)}
    metrics.update({"DrTrain": 99.0, "TestAcc": 91.0, "DfLoss": 2.0, "DrTestLoss": 0.3,
                    "MIA_loss_auc": 0.5 + values[3] / 4, "MIA_conf_auc": 0.5 + values[3] / 5,
                    "MIA_loss_tpr@1%": values[3] / 10, "MIA_conf_tpr@1%": values[3] / 20})
    metrics.update({"MethodTimeCold": values[5], "DCacheHit": False if method == "ssd" else None})  # nothing cached
    if method != "baseline":
        metrics["ActDist"] = 0.1
    forgot = method != "baseline" and cls is not None
    return {
        "run_key": f"{task}-{method}-{cls}-{seed}", "task": task, "net": "ConvNet", "dataset": "Toy",
        "method": method, "forget_class": cls, "forget_class_name": None if cls is None else f"c{cls}",
        "seed": seed, "metrics": metrics, "details": _details(cls if forgot else None), "n_forget": 20,
        "checkpoint": "ck.pt", "checkpoint_sha256": "abc",
    }


def _sweep_row(method: str, alpha: float | None, lam: float, df: float, dr: float, selected: int) -> dict[str, Any]:
    row = _row("full_class", method, 0, 0, (dr, df, df, 0.5, 0.5, 0.01))
    row["run_key"] = f"sweep-{method}-{alpha}-{lam}"
    param = "none" if alpha is None else "alpha"
    row["sweep"] = {"param": param, "value": alpha, "alpha": alpha, "lambda": lam, "selected": selected}
    return row


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Runs of two seeds, plus an α sweep (ssd + both baselines) and a λ sweep, as one JSON-lines file."""
    rows = [_row(t, m, c, seed, v) for (t, m, c), per_seed in NUMBERS.items() for seed, v in enumerate(per_seed)]
    rows.append(_sweep_row("baseline", None, 1.0, 95.0, 90.0, 0))
    for a, df, dr, sel in ((1, 0, 80, 900), (10, 2, 88, 100), (100, 60, 90, 5)):
        rows.append(_sweep_row("ssd", a, 1.0, df, dr, sel))
    for m in ("output_dampening", "global_dampening"):
        for a, df, dr in ((0.01, 0, 89), (0.1, 5, 60), (1.0, 95, 90)):
            rows.append(_sweep_row(m, a, 1.0, df, dr if m == "global_dampening" else 90, 0 if a == 1 else 50))
    for lam, df in ((0.1, 0), (1.0, 3), (10.0, 30)):
        rows.append(_sweep_row("ssd", 10, lam, df, 88, 100))
    path = tmp_path_factory.mktemp("results") / "results.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _mean_std(xs: list[float]) -> tuple[float, float]:
    m = sum(xs) / len(xs)
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def _is_png(path: Path) -> bool:
    data = path.read_bytes()
    return data[:8] == PNG_SIGNATURE and len(data) > 1000 and mpimg.imread(path).ndim == 3


@pytest.fixture(scope="module")
def report(results: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The full report, rendered once for the tests that only read it."""
    return write_report([results], tmp_path_factory.mktemp("report"))


def test_every_figure_renders_and_the_index_links_all(report: Path) -> None:
    out, index = report.parent, report
    assert index == out / "report.md" and index.is_file()
    pngs = sorted(p.name for p in (out / "figures").glob("*.png"))
    kinds = {name.split("_")[0] for name in pngs}
    assert {"confusion", "classwise", "accuracy", "methods", "time"} <= kinds
    assert {"sweep_alpha", "sweep_lambda", "sweep_efficiency"} <= {"_".join(n.split("_")[:2]) for n in pngs}
    for name in pngs:
        assert _is_png(out / "figures" / name), name
    text = index.read_text()
    linked = set(re.findall(r"\]\(figures/([^)]+\.png)\)", text))
    assert linked == set(pngs)
    page = (out / "index.html").read_text()
    assert all(f"figures/{name}" in page for name in pngs)
    for t in ("full_class_Toy_ConvNet", "random_Toy_ConvNet"):
        for ext in ("md", "csv", "tex"):
            assert (out / "tables" / f"{t}.{ext}").is_file()
            assert f"tables/{t}.{ext}" in text


def test_tables_hold_hand_computed_means_and_stds(results: Path) -> None:
    tables = {t.task: t for t in build_tables([r for r in load_rows(results) if "sweep" not in r])}
    full = tables["full_class"]
    assert full.classes == ["c0", "c1"]
    assert full.methods == ["baseline", "global_dampening", "ssd"]  # baseline first, SSD last
    cell = full.cells[("ssd", "c1", "Df")]  # Df of a class task is DfTest: 5, 9
    assert (cell.mean, cell.n) == (7.0, 2) and cell.std == pytest.approx(math.sqrt(8))
    cell = full.cells[("baseline", "c0", "Dr")]
    assert (cell.mean, cell.std) == pytest.approx(_mean_std([90.0, 92.0]))
    cell = full.cells[("ssd", "c0", "Time (s)")]
    assert (cell.mean, cell.std) == pytest.approx(_mean_std([0.5, 0.7]))
    rand = tables["random"].cells[("ssd", "random 20", "Df")]  # the random task shows forget-train Df
    assert (rand.mean, rand.std) == pytest.approx(_mean_std([97.0, 95.0]))
    assert "test images" in full.caption() and "training samples" in tables["random"].caption()


def test_markdown_csv_and_latex_agree(results: Path) -> None:
    full = next(t for t in build_tables([r for r in load_rows(results) if "sweep" not in r])
                if t.task == "full_class")
    md, tex = to_markdown(full), to_latex(full)
    grid = list(csv.reader(to_csv(full).splitlines()))
    header, body = grid[0], {r[0]: r for r in grid[1:]}
    md_rows = {cells[0]: cells[1:] for line in md.splitlines() if line.startswith("| ") and "---" not in line
               for cells in [[c.strip() for c in line.strip("|").split("|")]]}
    tex_rows = {cells[0].replace(r"\_", "_"): cells[1:] for line in tex.splitlines() if line.endswith(r"\\")
                and r"$\pm$" in line for cells in [[c.strip() for c in line[:-2].split("&")]]}
    md_header = [c.strip() for c in md.splitlines()[0].strip("|").split("|")]
    for method in full.methods:
        for i, label in enumerate(md_header[1:]):
            cls, metric = (s.strip() for s in label.split("·"))
            if metric == "Flag":  # the verdict: the same words in all three
                flag = body[method][header.index(f"{cls} flag")]
                assert md_rows[method][i].removeprefix("⚠ ") == flag
                assert tex_rows[method][i].removeprefix(r"\textbf{!} ") == flag
                continue
            mean = float(body[method][header.index(f"{cls} {metric} mean")])
            std = float(body[method][header.index(f"{cls} {metric} std")])
            digits = 3 if metric in ("MIA", "ZRF", "Time (s)", "Cached (s)") else 2
            expect = f"{mean:.{digits}f} ± {std:.{digits}f}"
            assert md_rows[method][i] == expect
            assert tex_rows[method][i] == expect.replace("±", r"$\pm$")
    assert r"\multicolumn{7}{c}{forget c0}" in tex and r"\begin{tabular}" in tex


def test_chosen_run_and_unknown_run(results: Path, tmp_path: Path) -> None:
    rows = [r for r in load_rows(results) if r["forget_class"] == 1 and r["seed"] == 1]  # few figures: fast
    index = write_report(rows, tmp_path / "one", run_key="full_class-global_dampening-1-1")
    figs = {p.name for p in (tmp_path / "one" / "figures").glob("confusion_*.png")}
    assert figs == {"confusion_full_class_Toy_ConvNet_c1_global_dampening_s1.png"}
    assert "full_class-global_dampening-1-1" in index.read_text()
    with pytest.raises(UserError, match="no run with run_key"):
        write_report(rows, tmp_path / "two", run_key="nope")


def test_make_report_script(results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    module = load_script("make_report")
    small = tmp_path / "small.jsonl"  # two runs: the script is thin, the full report is tested above
    small.write_text("".join(json.dumps(r) + "\n" for r in load_rows(results) if r["run_key"] in
                             ("random-baseline-None-0", "random-ssd-None-0")))
    module.main([str(small), "--out", str(tmp_path / "cli")])
    assert (tmp_path / "cli" / "report.md").is_file() and "report:" in capsys.readouterr().out
    with pytest.raises(UserError, match="no results file"):
        module.main([str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "x")])


def test_time_column_is_cold_with_the_cached_time_beside_it() -> None:
    """SSD with D's importances from the cache: the headline time adds D's compute time back."""
    row = _row("full_class", "ssd", 0, 0, (90.0, 1.0, 2.0, 0.1, 0.9, 0.05))
    row["metrics"].update({"MethodTimeCold": 3.05, "DCacheHit": True, "DImportanceTime": 3.0})
    table = build_tables([row])[0]
    assert table.cells[("ssd", "c0", "Time (s)")].mean == pytest.approx(3.05)
    assert table.cells[("ssd", "c0", "Cached (s)")].mean == pytest.approx(0.05)


def test_rows_that_did_not_forget_or_collapsed_are_flagged(results: Path) -> None:
    """global_dampening sits at ~11 % retain accuracy on 3 classes (chance 33 %, original ~91 %): collapsed;
    SSD's random-task forget accuracy (96 %) is within 5 points of the original's (99.5 %): did not forget.
    A table that printed these rows without a word would flatter."""
    tables = {t.task: t for t in build_tables([r for r in load_rows(results) if "sweep" not in r])}
    full, rand = tables["full_class"], tables["random"]
    assert full.flags[("global_dampening", "c0")].flag == "collapsed"
    assert full.flags[("ssd", "c0")].flag == ""  # forgot (2 % vs 96 %), kept retain (87 vs 91: within 5)
    assert full.flags[("baseline", "c0")].flag == "reference"
    assert rand.flags[("ssd", "random 20")].flag == "did not forget"
    md = to_markdown(full)
    assert "⚠ collapsed" in md and "⚠ did not forget" not in md


def test_a_retrained_model_that_stays_put_means_not_judged(results: Path) -> None:
    from ssd.report.verdicts import cell_verdicts

    rows = [r for r in load_rows(results) if r["task"] == "random" and "sweep" not in r]
    retrain = [{**r, "method": "retrain", "run_key": r["run_key"] + "-r"} for r in rows if r["method"] == "baseline"]
    for r in retrain:  # a retrained model that scores the forgotten samples like the original: nothing to detect
        r["metrics"] = {**r["metrics"], "Df": r["metrics"]["Df"] - 1.0}
    assert cell_verdicts(rows + retrain)["ssd"].flag == "not judged"
    # ... but a retain cost is still flagged there (it hid SSD's −19-point seed on the quick suite)
    worse = [{**r, "metrics": {**r["metrics"], "DrTest": r["metrics"]["DrTest"] - 12.0}} if r["method"] == "ssd"
             else r for r in rows]
    verdict = cell_verdicts(worse + retrain)["ssd"]
    assert verdict.flag.startswith("retain −") and "not judged" in verdict.why


def test_one_seed_prints_na_not_zero_spread(results: Path) -> None:
    rows = [r for r in load_rows(results) if "sweep" not in r and r["seed"] == 0]
    full = next(t for t in build_tables(rows) if t.task == "full_class")
    assert full.text("ssd", "c0", "Dr", 2) == "88.00 ± n/a"
    assert "± 0.00" not in to_markdown(full)


def test_privacy_table_and_page_contents(report: Path) -> None:
    out = report.parent
    text, page = report.read_text(), (out / "index.html").read_text()
    assert (out / "tables" / "full_class_Toy_ConvNet_privacy.md").is_file()
    assert "Loss AUC" in text and "TPR@1%" in text
    anchors = re.findall(r"\]\(#([^)]+)\)", text)  # the table of contents links every h2/h3 heading
    assert "tables" in anchors and "sweeps" in anchors
    for a in anchors:
        assert f"id='{a}'" in page, a
