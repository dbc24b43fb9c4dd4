"""Count, by call site, the Python-level calls of this repository's code that would make a CUDA
device wait for the host or copy from it.

On a CPU-only machine no call really synchronises, so we count the calls that would on CUDA:
reading a value back (`.item()`, `.tolist()`, `.numpy()`, `.cpu()`, `float(t)`, `int(t)`,
`bool(t)`, `operator.index(t)`, formatting a tensor), operations whose output size depends on
the data (`nonzero`, `unique`, `masked_select`, indexing with a boolean mask), explicit
moves (`.to(<device>)`, `.cuda()`, `torch.tensor(..., device=...)`): in a hot loop these are
host tensors copied to the device; and random draws that name no device (`torch.randn(shape,
generator=g)`), which land on the host and must be copied to a GPU before use. Only calls made from this repository's own files (not
tests/, not torch's or any library's code) are counted: torch's optimisers, for instance,
read their CPU step counters with `.item()`, which never waits for a GPU.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
_SKIP = (str(REPO / "tests"), str(REPO / ".venv"))
_READS = ("item", "tolist", "numpy", "cpu", "__float__", "__int__", "__bool__", "__index__", "__format__",
          "nonzero", "unique", "masked_select")
_FUNCS = ("nonzero", "unique", "masked_select")
_DRAWS = ("rand", "randn", "randint", "randperm", "normal")


def _ours(frame: Any, skip: tuple[str, ...]) -> str | None:
    name = frame.f_code.co_filename
    if not name.startswith(str(REPO)) or name.startswith(skip) or "site-packages" in name:
        return None
    return f"{Path(name).relative_to(REPO)}:{frame.f_lineno}"


def _names_device(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether a `Tensor.to(...)` call names a device (a dtype-only cast does not)."""
    if kwargs.get("device") is not None:
        return True
    return any(isinstance(a, (torch.device, str, torch.Tensor)) or (isinstance(a, int) and not isinstance(a, bool))
               for a in args)


def _tensor_args(args: tuple[Any, ...]) -> bool:
    """`torch.normal(mean_tensor, std)` draws where its tensors are: that names a device."""
    return any(isinstance(a, torch.Tensor) for a in args)


def _bool_index(index: Any) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, torch.Tensor) and p.dtype == torch.bool for p in parts)


class SyncCounter:
    """`calls[(kind, "path:line")]`: how often our code made each call while installed."""

    def __init__(self, skip: tuple[str, ...] = _SKIP) -> None:
        self.calls: Counter[tuple[str, str]] = Counter()
        self.skip = skip

    def _note(self, kind: str) -> None:
        site = _ours(sys._getframe(2), self.skip)
        if site is not None:
            self.calls[(kind, site)] += 1

    def _wrap(self, kind: str, original: Callable[..., Any], when: Callable[..., bool] | None = None
              ) -> Callable[..., Any]:
        note = self._note

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if when is None or when(*args, **kwargs):
                note(kind)
            return original(*args, **kwargs)

        return wrapper

    @contextmanager
    def installed(self) -> Iterator[SyncCounter]:
        patched: list[tuple[Any, str, Any]] = []

        def patch(owner: Any, name: str, new: Callable[..., Any]) -> None:
            patched.append((owner, name, owner.__dict__.get(name, _MISSING)))
            setattr(owner, name, new)

        T = torch.Tensor
        for name in _READS:
            patch(T, name, self._wrap(name, getattr(T, name)))
        patch(T, "to", self._wrap("to(device)", T.to, lambda _t, *a, **k: _names_device(a, k)))
        patch(T, "cuda", self._wrap("cuda", T.cuda))
        patch(T, "__getitem__", self._wrap("bool-mask index", T.__getitem__, lambda _t, i: _bool_index(i)))
        for name in _FUNCS:
            patch(torch, name, self._wrap(f"torch.{name}", getattr(torch, name)))
        for name in _DRAWS:
            patch(torch, name, self._wrap(f"torch.{name} on the host", getattr(torch, name),
                                          lambda *a, **k: k.get("device") is None and not _tensor_args(a)))
        for name in ("tensor", "as_tensor"):
            patch(torch, name, self._wrap(f"torch.{name}(device=)", getattr(torch, name),
                                          lambda *a, **k: k.get("device") is not None))
        try:
            yield self
        finally:
            for owner, name, old in reversed(patched):
                if old is _MISSING:
                    delattr(owner, name)
                else:
                    setattr(owner, name, old)


_MISSING = object()


def count_calls(fn: Callable[[], Any], skip: tuple[str, ...] = _SKIP) -> Counter[tuple[str, str]]:
    """The calls `fn` makes from this repository's files, other than those under `skip`."""
    counter = SyncCounter(skip)
    with counter.installed():
        fn()
    return counter.calls


def growth(small: Counter[tuple[str, str]], large: Counter[tuple[str, str]]) -> list[str]:
    """Call sites made more often on the larger data, as readable lines (empty: none grew)."""
    return [f"{kind} at {site}: {small[(kind, site)]} -> {n}"
            for (kind, site), n in sorted(large.items()) if n > small[(kind, site)]]
