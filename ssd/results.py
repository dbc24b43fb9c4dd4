"""Results as JSON lines: one line per run, appended atomically, read back for resume/reports.

Appending rewrites the file through a temporary copy and a rename under an exclusive
lock, so a crash at any moment leaves either the old file or the new one, never a
partial line. Results files are small (one line per run), so the copy is cheap.

One run key, one row: `append_row` refuses a row whose `run_key` is already in the file
(checked under the lock), and readers collapse duplicates that older versions wrote,
saying so. The lock is taken on the results file itself (no `.lock` sidecar); because a
rename replaces the file, a waiter that wakes on a replaced file takes the lock again.

Reading never crashes on a damaged file: lines that are not UTF-8, not JSON or not a
JSON object (a `null`, a truncated line, garbage) are skipped and counted, and one line
on stderr says how many and where.

Claims (`claim`/`release`) let several processes share one results file: a process
claims a unit of work (a grid cell, a sweep) before running it, and a unit already
recorded, or claimed by a live process, is left to that process. Claims live in a
hidden folder beside the results file, removed when empty.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import socket
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssd.errors import UserError
from ssd.utils import atomic_write_bytes, check_writable, pid_alive


class AlreadyRecorded(UserError):
    """A row whose run key is already in the results file (nothing was appended)."""


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


@dataclass
class Scan:
    """What a results file holds: its rows (in file order) and the lines that were not rows."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    bad: list[tuple[int, str]] = field(default_factory=list)  # (1-based line number, why)

    def keys(self) -> set[str]:
        return {r["run_key"] for r in self.rows if isinstance(r.get("run_key"), str)}


def _parse(data: bytes) -> Scan:
    scan = Scan()
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            scan.bad.append((number, "not UTF-8"))
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError:
            scan.bad.append((number, "not JSON (garbage or a truncated line)"))
            continue
        if not isinstance(obj, dict):
            scan.bad.append((number, f"a JSON {type(obj).__name__ if obj is not None else 'null'}, not a row"))
            continue
        scan.rows.append(obj)
    return scan


def scan_file(path: str | os.PathLike[str]) -> Scan:
    """Parse a results file without judging it (a missing file is empty)."""
    try:
        return _parse(Path(path).read_bytes())
    except FileNotFoundError:
        return Scan()
    except IsADirectoryError:
        raise UserError(f"results path {path} is a folder, not a file") from None
    except OSError as err:
        raise UserError(f"cannot read results {path} ({err.strerror or type(err).__name__})") from None


_told: set[tuple[str, str]] = set()


def _say_once(path: Path, message: str) -> None:
    if (str(path), message) not in _told:
        _told.add((str(path), message))
        print(f"note: {path}: {message}", file=sys.stderr)


def _lines(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:8])
    return shown + (f" and {len(numbers) - 8} more" if len(numbers) > 8 else "")


def read_rows(path: str | os.PathLike[str], *, quiet: bool = False) -> list[dict[str, Any]]:
    """The rows of a results file, one per run key (the first kept); bad lines skipped.

    Skipped lines and collapsed duplicates are reported on stderr (once per process).
    """
    path = Path(path)
    scan = scan_file(path)
    if scan.bad and not quiet:
        reasons = sorted({why for _, why in scan.bad})
        _say_once(path, f"skipped {len(scan.bad)} unreadable line(s) (line {_lines([n for n, _ in scan.bad])}: "
                  f"{'; '.join(reasons)}); they are left in the file")
    rows, seen, dropped = [], set(), 0
    for r in scan.rows:
        key = r.get("run_key")
        if isinstance(key, str):
            if key in seen:
                dropped += 1
                continue
            seen.add(key)
        rows.append(r)
    if dropped and not quiet:
        _say_once(path, f"{dropped} duplicate row(s) of run keys already recorded were ignored "
                  "(one run key, one row; the first is kept)")
    return rows


def done_keys(paths: Iterable[str | os.PathLike[str]]) -> set[str]:
    return {k for p in paths for k in scan_file(p).keys()}


@contextmanager
def locked(path: str | os.PathLike[str]) -> Iterator[Path]:
    """An exclusive lock on the results file itself (created empty if missing)."""
    path = Path(path)
    check_writable(path, "results")
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                current = os.stat(path).st_ino
            except FileNotFoundError:
                current = None
            if current == os.fstat(fd).st_ino:
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # the file was replaced while we waited: lock the new one
    try:
        yield path
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def append_row(path: str | os.PathLike[str], row: dict[str, Any]) -> None:
    """Append one JSON line to `path` atomically (write a full copy, then rename).

    Raises :class:`AlreadyRecorded` (nothing written) when the row's run key is there already.
    """
    path = Path(path)
    line = json.dumps(_clean(row), sort_keys=True, default=str) + "\n"
    with locked(path):
        old = path.read_bytes()
        key = row.get("run_key")
        if isinstance(key, str) and key in _parse(old).keys():
            raise AlreadyRecorded(f"run {key} is already recorded in {path}; not appended again")
        if old and not old.endswith(b"\n"):
            old += b"\n"
        atomic_write_bytes(path, old + line.encode())


# --- claims: several processes on one results file split the work -----------------------------

HOST = socket.gethostname()


def claims_dir(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    return path.with_name(f".{path.name}.claims")


def _owner(claim: Path) -> tuple[str, int] | None:
    try:
        host, pid = claim.read_text().split()
        return host, int(pid)
    except (OSError, ValueError):
        return None


def me() -> tuple[str, int]:
    """This process as a claim owner (host, pid)."""
    return HOST, os.getpid()


def _live_other(owner: tuple[str, int] | None, me: tuple[str, int]) -> bool:
    if owner is None or owner == me:
        return False
    host, pid = owner
    if host != HOST:
        return True  # another machine's process: respect it (delete the claim file to override)
    return pid_alive(pid)


def claim(path: str | os.PathLike[str], unit: str, keys: Iterable[str] = (),
          owner: tuple[str, int] | None = None) -> str:
    """Try to take `unit` of work for `owner` (default: this process): "ok" (taken, or already
    ours), "done" (all `keys` recorded) or "busy" (another live process holds it). A claim
    left by a dead process is taken over."""
    path = Path(path)
    keys = set(keys)
    owner = owner or me()
    with locked(path):
        if keys and keys <= scan_file(path).keys():
            return "done"
        folder = claims_dir(path)
        target = folder / unit
        if target.exists() and _live_other(_owner(target), owner):
            return "busy"
        folder.mkdir(exist_ok=True)
        target.write_text(f"{owner[0]} {owner[1]}\n")
        return "ok"


def release_all(path: str | os.PathLike[str], owner: tuple[str, int] | None = None) -> None:
    """Drop every claim `owner` (default: this process) holds on `path`, then tidy."""
    owner = owner or me()
    folder = claims_dir(path)
    if folder.is_dir():
        for entry in folder.iterdir():
            if _owner(entry) == owner:
                entry.unlink(missing_ok=True)
    tidy_claims(path)


def release(path: str | os.PathLike[str], unit: str) -> None:
    folder = claims_dir(path)
    (folder / unit).unlink(missing_ok=True)
    tidy_claims(path)


def tidy_claims(path: str | os.PathLike[str]) -> None:
    """Drop claims of dead processes on this host and the claims folder once it is empty."""
    folder = claims_dir(path)
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        owner = _owner(entry)
        if owner is None or (owner[0] == HOST and not pid_alive(owner[1])):
            entry.unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError:
        pass  # another process still holds a claim
