"""Numeric precision, memory format and peak memory of a run: one place every entry point calls.

Settings (`--precision`, a suite's `precision` key, `RunSpec.precision`):

* ``fp32`` — plain float32 everywhere (on CUDA: TF32 off for matmuls and convolutions).
* ``tf32`` — float32 tensors, TF32 tensor-core matmuls/convolutions on CUDA. On other devices
  there is no TF32, so it is the same run as fp32 (and keyed as one).
* ``bf16`` — bfloat16 autocast for training and evaluation (weights, optimiser state and
  gradients stay float32; autocast runs matmuls/convolutions in bf16). It runs on CPU too.
* unset (None) — ``tf32`` on CUDA, ``fp32`` elsewhere: CPU runs are what they were before
  this setting existed.

SSD's importances are computed in float32 (no autocast, no TF32) whatever the run's precision
(:func:`importance_scope`, `IMPORTANCE_PRECISION`): docs/precision.md has the measurement this
default follows from.

`channels_last` (conv nets on CUDA only; off by default, see docs/precision.md) and
`cudnn.benchmark` (on for every CUDA run) are applied by :func:`precision_scope` and
:func:`memory_format`. :class:`PeakMemory` measures a run's peak memory: the device's allocated
peak on CUDA, the process's resident-set peak (VmHWM, reset at the start) on CPU.
"""

from __future__ import annotations

import contextlib
import resource
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ssd.errors import UserError
from ssd.names import PRECISIONS  # the choices (torch-free, for --help)

# Precision of SSD's importances (squared gradients) whatever the run's precision: "fp32"
# computes them outside autocast; "run" would follow the run. Chosen from docs/precision.md.
IMPORTANCE_PRECISION = "fp32"


def check_precision(value: Any, where: str = "--precision") -> str | None:
    """`value` if it names a precision (or is None: the device's default); else one UserError line."""
    if value is None or value in PRECISIONS:
        return value
    raise UserError(f"{where} must be one of {', '.join(PRECISIONS)}, got {value!r}")


def effective_precision(precision: str | None, device: str | torch.device) -> str:
    """What a run on `device` with `precision` actually computes in: None is tf32 on CUDA and
    fp32 elsewhere; tf32 off CUDA is fp32 (no TF32 units there)."""
    check_precision(precision)
    cuda = torch.device(device).type == "cuda"
    if precision is None:
        return "tf32" if cuda else "fp32"
    if precision == "tf32" and not cuda:
        return "fp32"
    return precision


def effective_channels_last(channels_last: bool | None, device: str | torch.device) -> bool:
    """channels_last applies to CUDA runs only (CPU runs are unchanged); off unless asked for."""
    return bool(channels_last) and torch.device(device).type == "cuda"


def key_fields(run: dict[str, Any]) -> dict[str, Any]:
    """What a run key holds about precision and memory format, from a RunSpec's fields: nothing
    for a plain fp32 run in the default memory format (so rows made before these settings existed
    keep their keys), else the effective values."""
    device = run.get("device") or "cpu"
    out: dict[str, Any] = {}
    value = run.get("precision")
    eff = effective_precision(value, device) if value is None or value in PRECISIONS else value  # a row's odd value
    if eff != "fp32":
        out["precision"] = eff
    if effective_channels_last(run.get("channels_last"), device):
        out["channels_last"] = True
    return out


def cuda_flags(effective: str) -> dict[str, bool]:
    """The torch.backends switches a CUDA run sets for an effective precision. bf16 keeps TF32 on
    for what autocast leaves in float32; cudnn.benchmark picks the fastest convolution algorithm
    per input shape (the shapes of a run repeat)."""
    tf32 = effective != "fp32"
    return {"matmul.allow_tf32": tf32, "cudnn.allow_tf32": tf32, "cudnn.benchmark": True}


def _flag_owner(name: str) -> tuple[Any, str]:
    group, attr = name.split(".")
    return (torch.backends.cuda.matmul if group == "matmul" else torch.backends.cudnn), attr


def _read_flag(name: str) -> bool:
    owner, attr = _flag_owner(name)
    try:
        return bool(getattr(owner, attr))
    except RuntimeError:  # torch ≥ 2.9 refuses the legacy read once the new fp32_precision API was used
        new = torch.backends.cuda.matmul if name.startswith("matmul") else torch.backends.cudnn.conv
        return new.fp32_precision == "tf32"


def set_flags(flags: dict[str, bool]) -> dict[str, bool]:
    """Set torch.backends switches named as in :func:`cuda_flags`; returns their previous values."""
    old = {}
    for name, value in flags.items():
        owner, attr = _flag_owner(name)
        old[name] = _read_flag(name)
        setattr(owner, attr, value)
    return old


def autocast(effective: str, device: str | torch.device) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on `device`'s type for a bf16 run; nothing otherwise."""
    if effective != "bf16":
        return contextlib.nullcontext()
    # No cast cache: autocast keeps the bf16 copy of each weight until the region is left, and this
    # region spans a whole method, so with the cache every forward after the first optimiser step
    # (or in-place weight edit) would still see the first step's weights: training would not learn.
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, cache_enabled=False)


@contextlib.contextmanager
def precision_scope(precision: str | None, device: str | torch.device) -> Iterator[str]:
    """Run the body in the run's precision (yields the effective one): TF32 and cudnn.benchmark
    switches on CUDA (restored afterwards), bf16 autocast for a bf16 run. On CPU with fp32 it
    changes nothing."""
    eff = effective_precision(precision, device)
    old = set_flags(cuda_flags(eff)) if torch.device(device).type == "cuda" else {}
    try:
        with autocast(eff, device):
            yield eff
    finally:
        set_flags(old)


@contextlib.contextmanager
def importance_scope(device: str | torch.device) -> Iterator[None]:
    """Around SSD's importance passes: when IMPORTANCE_PRECISION is "fp32", true float32 (autocast
    off and, on CUDA, TF32 off; restored afterwards) whatever the run's precision."""
    if IMPORTANCE_PRECISION == "run":
        yield
        return
    dev = torch.device(device)
    old = set_flags({"matmul.allow_tf32": False, "cudnn.allow_tf32": False}) if dev.type == "cuda" else {}
    try:
        with torch.autocast(dev.type, enabled=False):
            yield
    finally:
        set_flags(old)


def memory_format(model: nn.Module, channels_last: bool | None, device: str | torch.device) -> nn.Module:
    """`model` in channels_last when asked for on CUDA and it has 4-D (convolution) weights; as is otherwise."""
    if effective_channels_last(channels_last, device) and any(p.dim() == 4 for p in model.parameters()):
        return model.to(memory_format=torch.channels_last)
    return model


STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def rss_peak_bytes() -> tuple[int, str]:
    """(resident-set peak in bytes, since when: "reset" or "process"): VmHWM from /proc (reset by
    :func:`reset_rss_peak`), else getrusage's peak over the whole process (Linux: KiB)."""
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024, "reset"
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024, "process"


def reset_rss_peak() -> bool:
    """Reset the process's resident-set peak to its current size (Linux ≥ 4.0); False where it cannot."""
    try:
        CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


class PeakMemory:
    """`with PeakMemory(device) as peak: ...` then `peak.record()`: the body's peak memory.

    CUDA: torch.cuda.max_memory_allocated after reset_peak_memory_stats (tensors only, not the
    allocator's cache). Elsewhere: the process's resident-set peak, reset on entry where Linux
    allows (`since` "run"); otherwise the peak since the process started (`since` "process")."""

    def __init__(self, device: str | torch.device) -> None:
        self.device = torch.device(device)
        self.bytes = 0
        self.since = "run"

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        elif not reset_rss_peak():
            self.since = "process"
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            self.bytes = int(torch.cuda.max_memory_allocated(self.device))
        else:
            self.bytes, how = rss_peak_bytes()
            if how == "process":
                self.since = "process"

    def record(self) -> dict[str, Any]:
        """The row's `peak_memory` entry."""
        kind = "cuda_allocated" if self.device.type == "cuda" else "rss"
        return {"mb": round(self.bytes / 2**20, 1), "kind": kind, "since": self.since}
