"""Small shared helpers: seeding, devices, hashing, atomic writes, code version."""

from __future__ import annotations

import functools
import hashlib
import os
import random
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from harness.errors import UserError
from harness.tensors import sha256_tensors  # noqa: F401  (re-exported)

T = TypeVar("T")

from ssd.names import REPO_ROOT  # noqa: E402,F401  (re-exported)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU generator for explicit shuffles."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def resolve_device(device: str | None = None, gpu: bool = False) -> torch.device:
    """`--device` wins; the authors' `-gpu` means cuda; otherwise CPU."""
    name = device or ("cuda" if gpu else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise UserError(f"unknown device {name!r}; use cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r} requested but CUDA is not available here; use --device cpu")
    return dev


def model_device(model: torch.nn.Module) -> torch.device:
    """Where a model's weights live (CPU for a model without parameters)."""
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@contextmanager
def evaluation_state(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode for the duration; every module's mode and every `requires_grad` restored after,
    so scoring or measuring mid-training never leaves BatchNorm/Dropout switched."""
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    try:
        yield
    finally:
        for m, mode in modes:
            m.training = mode
        for p, flag in flags:
            p.requires_grad_(flag)


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels so wall-clock timings mean something."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], T], device: torch.device) -> tuple[T, float]:
    """(fn(), its wall-clock seconds, queued kernels on `device` included)."""
    t0 = time.perf_counter()
    out = fn()
    synchronize(device)
    return out, time.perf_counter() - t0


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


TMP_SUFFIX = ".tmp"


def temp_name(path: Path) -> Path:
    """`.NAME.PID-RANDOM.tmp` beside `path`: the writer's pid lets a later writer tell a
    live temporary file from one a killed process left behind."""
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}{TMP_SUFFIX}")


def sweep_stale_temps(path: Path) -> int:
    """Remove temporary files of `path` whose writer is dead (a kill between write and rename)."""
    removed = 0
    prefix = f".{path.name}."
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return 0
    for entry in entries:
        name = entry.name
        if not (name.startswith(prefix) and name.endswith(TMP_SUFFIX)):
            continue
        pid_part = name[len(prefix):-len(TMP_SUFFIX)].split("-", 1)[0]
        if pid_part.isdigit() and int(pid_part) != os.getpid() and not pid_alive(int(pid_part)):
            try:
                entry.unlink()
                removed += 1
            except OSError:
                pass
    return removed


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename: readers never see half a file.

    The file keeps the mode it had (a new one gets the mode `open` would give it, not
    mkstemp's 0600), and temporary files of `path` left by a killed writer are removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temps(path)
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    tmp = temp_name(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_writable(path: str | os.PathLike[str], what: str, *, folder: bool = False) -> Path:
    """Refuse, before any work, an output location that cannot be written: one UserError line.

    Creates nothing: the nearest existing ancestor must be a writable folder (and an
    existing target must be writable and of the right kind).
    """
    p = Path(path)
    if p.exists():
        if folder != p.is_dir():
            kind = "a folder" if p.is_dir() else "a file"
            raise UserError(f"cannot write {what} {p}: it is {kind}; choose another path")
        writable = os.access(p if folder else p.parent, os.W_OK | os.X_OK) and (folder or os.access(p, os.W_OK))
        if not writable:
            raise UserError(f"cannot write {what} {p}: permission denied; choose another path")
        return p
    anc = p.parent
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        raise UserError(f"cannot write {what} {p}: {anc} is a file, not a folder; choose another path")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise UserError(f"cannot write {what} {p}: {anc} is not writable; choose another path")
    return p


@contextmanager
def new_dirs_removed_on_failure(*dirs: str | os.PathLike[str]) -> Iterator[None]:
    """On an exception, remove the folders among `dirs` (and their missing ancestors) that did not
    exist before, with what was written into them: a failed writer leaves no half-made or empty
    folders behind (folders that existed before are left as they were)."""
    import shutil

    fresh: set[Path] = set()
    for d in map(Path, dirs):
        while not d.exists() and d != d.parent:
            fresh.add(d)
            d = d.parent
    try:
        yield
    except BaseException:
        for d in sorted(fresh, key=lambda p: len(p.parts)):  # outermost first: it takes the rest along
            shutil.rmtree(d, ignore_errors=True)
        raise


@functools.cache
def code_version() -> str:
    """The git commit of this checkout (with `+dirty` when modified), or 'unknown'.

    Read once per process: a suite that runs for hours records the code it started with,
    not whatever the checkout holds when each row is written (the run entry points ask first:
    run_task_main, run_suite, the sweep's main).
    """
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
