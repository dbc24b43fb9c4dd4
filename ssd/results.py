"""Results as JSON lines: one line per run, appended under a lock, read back for resume/reports.

Appending writes the one new line at the end of the file with a single `write` and an
`fsync`, under an exclusive lock on the results file itself (no `.lock` sidecar), so
appending N rows costs O(N) bytes, not the O(N²) of rewriting the file per row. A killed
writer can at worst leave the end of one line unwritten (a partial line with no newline):
the next append writes a newline first, so that fragment stays a separate bad line that
readers skip, and it neither damages the row before it nor merges with the next row. An
append that fails with an error (a full disk) truncates the file back to its old length.

One run key, one row: `append_row` refuses a row whose `run_key` is already in the file
(checked under the lock). Each process remembers the keys it has read and how far, and
reads only what other writers appended since (a file replaced, shortened or rewritten
under it is read again in full). Readers collapse duplicates that older versions wrote,
saying so. Readers take a shared lock, so they never see a line being written.

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
from ssd.utils import check_writable, pid_alive, sweep_stale_temps


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


def _read_all(fd: int) -> bytes:
    chunks, offset = [], 0
    while chunk := os.pread(fd, 1 << 20, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def scan_file(path: str | os.PathLike[str]) -> Scan:
    """Parse a results file without judging it (a missing file is empty). A shared lock is
    held while reading, so a line another process is appending is never seen half-written."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return Scan()
    except IsADirectoryError:
        raise UserError(f"results path {path} is a folder, not a file") from None
    except OSError as err:
        raise UserError(f"cannot read results {path} ({err.strerror or type(err).__name__})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
        except OSError:
            pass  # a file system without locks: read as it is
        try:
            return _parse(_read_all(fd))
        except IsADirectoryError:
            raise UserError(f"results path {path} is a folder, not a file") from None
        except OSError as err:
            raise UserError(f"cannot read results {path} ({err.strerror or type(err).__name__})") from None
    finally:
        os.close(fd)  # releases the shared lock


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
def _locked_fd(path: Path) -> Iterator[int]:
    """An exclusive lock on the results file itself (created empty if missing), and its
    descriptor (opened for appending)."""
    check_writable(path, "results")
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)
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
        os.close(fd)  # the file was replaced while we waited (an older version renames): lock the new one
    try:
        yield fd
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


@contextmanager
def locked(path: str | os.PathLike[str]) -> Iterator[Path]:
    """An exclusive lock on the results file itself (created empty if missing)."""
    with _locked_fd(Path(path)):
        yield Path(path)


@dataclass
class _Seen:
    """What this process has read of one results file: its keys up to `offset` (the end of
    the last whole line read), and the bytes just before `offset` to tell an append (they
    are unchanged) from a file rewritten in place (they differ: read it again)."""

    file: tuple[int, int]  # (st_dev, st_ino)
    offset: int
    tail: bytes
    keys: set[str]


_seen: dict[str, _Seen] = {}
_TAIL = 64


def _recorded(path: Path, fd: int) -> tuple[set[str], int, bool]:
    """(the run keys in the file, its size, whether it ends with a newline), reading only the
    bytes appended since this process last looked. Call under the exclusive lock."""
    st = os.fstat(fd)
    size, ident = st.st_size, (st.st_dev, st.st_ino)
    seen = _seen.get(str(path))
    if (seen is None or seen.file != ident or seen.offset > size
            or os.pread(fd, len(seen.tail), seen.offset - len(seen.tail)) != seen.tail):
        seen = _Seen(ident, 0, b"", set())
    new = os.pread(fd, size - seen.offset, seen.offset) if size > seen.offset else b""
    whole = new.rfind(b"\n") + 1  # the unterminated rest is read again next time
    keys = seen.keys | _parse(new[:whole]).keys()
    rest = _parse(new[whole:]).keys()  # a last line without its newline that is a whole row still counts
    offset = seen.offset + whole
    tail = os.pread(fd, min(_TAIL, offset), offset - min(_TAIL, offset))
    _seen[str(path)] = _Seen(ident, offset, tail, keys)
    return keys | rest, size, whole == len(new)  # (`offset` always follows a newline)


def append_row(path: str | os.PathLike[str], row: dict[str, Any]) -> None:
    """Append one JSON line to `path`: one write and an fsync under the file's lock.

    Raises :class:`AlreadyRecorded` (nothing written) when the row's run key is there already.
    A partial last line (a killed writer's) gets its newline first, so it stays a bad line of
    its own; a failed write is truncated away, leaving the file as it was.
    """
    path = Path(path)
    line = (json.dumps(_clean(row), sort_keys=True, default=str) + "\n").encode()
    with _locked_fd(path) as fd:
        if str(path) not in _seen:  # once per process and file: copies an older version's killed writer left
            sweep_stale_temps(path)
        keys, size, ends = _recorded(path, fd)
        key = row.get("run_key")
        if isinstance(key, str) and key in keys:
            raise AlreadyRecorded(f"run {key} is already recorded in {path}; not appended again")
        data = line if ends else b"\n" + line
        try:
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(f"short write ({written} of {len(data)} bytes)")
            os.fsync(fd)
        except BaseException:
            try:
                os.ftruncate(fd, size)  # nothing half-written stays
            except OSError:
                pass
            raise
        if size == 0:  # a new file: make its name durable too
            _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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
    with _locked_fd(path) as fd:
        if keys and keys <= _recorded(path, fd)[0]:
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
