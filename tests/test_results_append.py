"""Appending a result row costs O(row), and a killed or failed writer damages nothing.

`append_row` used to rewrite the whole file (copy + rename) for every row: O(rows²) bytes
over a grid. It now appends one line in place; these tests pin what that must keep.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import ssd.results as results
from ssd.results import AlreadyRecorded, append_row, read_rows, scan_file

REPO = Path(__file__).resolve().parents[1]


def row(key: str, size: int = 200) -> dict:
    return {"run_key": key, "metrics": {"Df": 1.5}, "details": "x" * size}


def test_append_writes_in_place_and_reads_only_what_is_new(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Old: every append replaced the file by a full copy (a new inode each time), and a
    version that re-read the whole file for the key check would parse it all every time."""
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps(row(f"old-{i}")) + "\n" for i in range(300)))
    inode = path.stat().st_ino
    append_row(path, row("a"))
    parsed: list[int] = []
    real = results._parse
    monkeypatch.setattr(results, "_parse", lambda data: parsed.append(len(data)) or real(data))
    append_row(path, row("b"))
    assert path.stat().st_ino == inode  # appended in place, not copied and renamed
    assert sum(parsed) <= len(json.dumps(row("a"))) + 1  # only the line appended since (row "a")
    assert [r["run_key"] for r in read_rows(path)][-2:] == ["a", "b"] and len(read_rows(path)) == 302


def test_killed_writer_partial_line_stays_apart(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A writer SIGKILLed holding the lock with half a line written: the row before it is intact,
    the lock is free, and the next row starts on a line of its own (a naive append would glue it
    to the fragment, losing both)."""
    path = tmp_path / "r.jsonl"
    append_row(path, row("before"))
    half = (json.dumps(row("killed")) + "\n").encode()[:57]
    code = ("import os, sys, time\nfrom ssd.results import locked\n"
            "with locked(sys.argv[1]):\n"
            "    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)\n"
            f"    os.write(fd, {half!r}); os.fsync(fd)\n"
            "    print('written', flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "written"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    append_row(path, row("after"))
    lines = path.read_bytes().split(b"\n")
    assert lines[1] == half and lines[3] == b""  # the fragment on its own line; the file ends with a newline
    assert [r["run_key"] for r in read_rows(path)] == ["before", "after"]
    assert "skipped 1 unreadable line(s) (line 2" in capsys.readouterr().err
    with pytest.raises(AlreadyRecorded):  # keys are still read right past the fragment
        append_row(path, row("after"))


def test_failed_write_leaves_the_file_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that stops half-way (a full disk) is truncated away: no partial row stays."""
    path = tmp_path / "r.jsonl"
    append_row(path, row("a"))
    before = path.read_bytes()
    real_write = os.write

    def half_then_fail(fd: int, data: bytes) -> int:
        real_write(fd, data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(results.os, "write", half_then_fail)
    with pytest.raises(OSError, match="No space"):
        append_row(path, row("b"))
    monkeypatch.undo()
    assert path.read_bytes() == before
    append_row(path, row("b"))
    assert [r["run_key"] for r in read_rows(path)] == ["a", "b"]


def test_key_check_sees_other_writers_and_rewritten_files(tmp_path: Path) -> None:
    """This process remembers what it read; a key another process appended since, or a file
    rewritten in place under it, must still be checked against what the file holds now."""
    path = tmp_path / "r.jsonl"
    append_row(path, row("mine"))
    subprocess.run([sys.executable, "-c", "import sys; from ssd.results import append_row; "
                    "append_row(sys.argv[1], {'run_key': 'theirs'})", str(path)], cwd=REPO, check=True, timeout=120)
    with pytest.raises(AlreadyRecorded):
        append_row(path, row("theirs"))
    with path.open("r+b") as f:  # rewritten in place (same inode), "mine" gone, a longer file
        f.truncate(0)
        f.write(b"".join(json.dumps(row(k, 400)).encode() + b"\n" for k in ("x", "y")))
    append_row(path, row("mine"))
    with pytest.raises(AlreadyRecorded):
        append_row(path, row("y"))
    assert [r["run_key"] for r in read_rows(path)] == ["x", "y", "mine"]


def test_reader_never_sees_a_line_being_written(tmp_path: Path) -> None:
    """A reader waits for a writer holding the lock: it sees the whole row, not a fragment it
    would report as a bad line."""
    path = tmp_path / "r.jsonl"
    append_row(path, row("a"))
    line = (json.dumps(row("b")) + "\n").encode()
    seen: list = []
    with results.locked(path):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        os.write(fd, line[:40])
        reader = threading.Thread(target=lambda: seen.append(scan_file(path)))
        reader.start()
        time.sleep(0.3)  # an unlocked reader would read the fragment now
        os.write(fd, line[40:])
        os.close(fd)
    reader.join(timeout=30)
    assert [r["run_key"] for r in seen[0].rows] == ["a", "b"] and seen[0].bad == []
