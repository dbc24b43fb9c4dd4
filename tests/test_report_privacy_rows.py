"""make_report --privacy: another file's audits in the privacy sections, nothing else of it.

On the committed rows: the cpu-paper grid's sub-class cell (no class-level attack: its checkpoints
were lost) and the same cell re-run with the attack (docs/results/class-privacy/).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ssd.errors import run_cli
from tests.scripts_module import load_script

REPO = Path(__file__).resolve().parents[1]
GRID = REPO / "docs" / "results" / "cpu-paper" / "cpu-paper.jsonl"
RERUN = REPO / "docs" / "results" / "class-privacy" / "class-privacy.jsonl"


def _make_report():  # noqa: ANN202
    return load_script("make_report").main


def _pullover(src: Path, dst: Path, methods: tuple[str, ...] = ("baseline", "retrain", "ssd")) -> Path:
    rows = [json.loads(line) for line in src.read_text().splitlines() if line.strip()]
    keep = [r for r in rows if r.get("task") == "sub_class" and r.get("method") in methods and "sweep" not in r]
    dst.write_text("".join(json.dumps(r) + "\n" for r in keep))
    return dst


def _section(page: str, title: str) -> str:
    start = page.index(f"## {title}")
    end = page.find("\n## ", start + 3)
    return page[start:] if end < 0 else page[start:end]


@pytest.fixture()
def files(tmp_path: Path) -> tuple[Path, Path]:
    return _pullover(GRID, tmp_path / "grid.jsonl"), _pullover(RERUN, tmp_path / "rerun.jsonl")


def test_privacy_rows_reach_the_privacy_sections_and_not_the_tables(files, tmp_path: Path) -> None:
    grid, rerun = files
    main = _make_report()
    assert run_cli(main, [str(grid), "--out", str(tmp_path / "plain")]) == 0
    assert run_cli(main, [str(grid), "--privacy", str(rerun), "--out", str(tmp_path / "with")]) == 0
    plain = (tmp_path / "plain" / "report.md").read_text()
    page = (tmp_path / "with" / "report.md").read_text()
    assert "Class-task privacy" not in plain  # the grid's rows carry no class-level attack
    section = _section(page, "Class-task privacy (MIA-NN / CMIA)")
    assert "ssd" in section and "Pullover" in section
    assert "checkpoint=" not in page  # the re-run's rows (another checkpoint) stay out of the tables
    assert _section(page, "Tables") == _section(plain, "Tables")
    assert "also show the audits of 9 runs from" in page and "rerun.jsonl" in page


def test_rows_given_twice_count_once(files, tmp_path: Path) -> None:
    _, rerun = files
    main = _make_report()
    assert run_cli(main, [str(rerun), "--out", str(tmp_path / "once")]) == 0
    assert run_cli(main, [str(rerun), "--privacy", str(rerun), "--out", str(tmp_path / "twice")]) == 0
    once = _section((tmp_path / "once" / "report.md").read_text(), "Class-task privacy (MIA-NN / CMIA)")
    twice = _section((tmp_path / "twice" / "report.md").read_text(), "Class-task privacy (MIA-NN / CMIA)")
    assert once == twice  # six "seeds" would change every mean ± sd


def test_bad_privacy_files_are_refused_before_any_work(files, tmp_path: Path, capsys) -> None:
    grid, _ = files
    bare = tmp_path / "bare.jsonl"
    bare.write_text('{"run_key": "a", "task": "full_class", "method": "ssd", "metrics": {"DfTest": 1.0}}\n')
    main = _make_report()
    for extra, want in (([str(bare)], "hold no audit"), ([str(tmp_path / "missing.jsonl")], "no results file")):
        code = run_cli(main, [str(grid), "--privacy", *extra, "--out", str(tmp_path / "rep")])
        err = capsys.readouterr().err
        lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
        assert code == 2 and len(lines) == 1 and want in lines[0] and "Traceback" not in err, err
        assert not (tmp_path / "rep").exists()
