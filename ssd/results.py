"""Results as JSON lines: one line per run, appended atomically, read back for resume/reports.

Appending rewrites the file through a temporary copy and a rename under an exclusive
lock, so a crash at any moment leaves either the old file or the new one, never a
partial line. Results files are small (one line per run), so the copy is cheap.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ssd.utils import atomic_write_bytes


def run_key(fields: dict[str, Any]) -> str:
    """A stable id for a run from what defines it (task, data, checkpoint, method config, seed)."""
    blob = json.dumps(fields, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def _clean(value: Any) -> Any:
    """JSON has no NaN/inf: store them as null so every line parses everywhere."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


@contextmanager
def _locked(path: Path):  # type: ignore[no-untyped-def]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def append_row(path: str | os.PathLike[str], row: dict[str, Any]) -> None:
    """Append one JSON line to `path` atomically (write a full copy, then rename)."""
    path = Path(path)
    line = json.dumps(_clean(row), sort_keys=True, default=str) + "\n"
    with _locked(path):
        old = path.read_bytes() if path.exists() else b""
        if old and not old.endswith(b"\n"):
            old += b"\n"
        atomic_write_bytes(path, old + line.encode())


def read_rows(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All rows of a results file; a missing file is empty; an unparsable line is skipped."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for ln in path.read_text().splitlines():
        if not ln.strip():
            continue
        try:
            rows.append(json.loads(ln))
        except json.JSONDecodeError:
            continue
    return rows


def done_keys(paths: Iterable[str | os.PathLike[str]]) -> set[str]:
    return {r["run_key"] for p in paths for r in read_rows(p) if "run_key" in r}
