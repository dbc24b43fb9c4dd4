"""On-disk cache of importances: D's importances depend only on weights, data and settings.

A forget request on an already-seen checkpoint then costs only Df's importances (D is
the large set). An entry is `{"format", "key", "meta", "importances", "sha256"}` saved
with torch.save, written atomically; its name is the key, and the key inside the file,
the parameter names, shapes, dtypes and the content checksum (`sha256` of the
importances: zeroed or flipped bytes load without complaint otherwise) are checked on
load. Anything that does not match, or does not load, is reported with a one-line note
and recomputed — never used.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from datasets.base import ImageData
from ssd.errors import one_line
from ssd.utils import atomic_write_bytes, sha256_tensors, timed

FORMAT = "ssd-importance-cache/1"
log = logging.getLogger(__name__)


def indices_hash(data: ImageData, order: torch.Tensor | None = None) -> str:
    """sha256 of the original indices in the order they are visited (batch mode depends on it)."""
    assert data.indices is not None
    idx = data.indices.cpu().long()
    if order is not None:
        idx = idx[order.cpu().long()]
    return hashlib.sha256(idx.contiguous().numpy().tobytes()).hexdigest()


def model_sha256(model: nn.Module) -> str:
    """Fallback checkpoint identity when the caller has no checkpoint file hash."""
    return sha256_tensors(model.state_dict())


def importance_key(
    *,
    checkpoint_sha256: str,
    dataset: str,
    split: str,
    mode: str,
    batch_size: int,
    order: str,
    seed: int,
    transform: str = "none",
    params: list[str] | None = None,
    extra: dict[str, Any] | None = None,
) -> tuple[str, dict[str, Any]]:
    """(hex key, the fields it hashes). `params` names the parameters computed (None: all)."""
    fields: dict[str, Any] = {
        "checkpoint_sha256": checkpoint_sha256, "dataset": dataset, "split": split,
        "transform": transform, "mode": mode, "batch_size": int(batch_size), "order": order,
        "seed": int(seed), "params": params, **(extra or {}),
    }
    key = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()
    return key, fields


class ImportanceCache:
    """A directory of importance dicts keyed by :func:`importance_key`.

    `hits`, `misses` and `rejected` count lookups (tests and logs use them); `io_s` adds up the
    seconds spent reading, checking, hashing and writing entries, which a method's timed window
    leaves out (MethodTime is the method, not the cache: ssd/experiment.py `method_timing`).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.hits = 0
        self.misses = 0
        self.rejected = 0
        self.io_s = 0.0

    def path(self, key: str) -> Path:
        return self.root / f"importance-{key}.pt"

    def load(
        self, key: str, expect: dict[str, torch.Size], device: torch.device | str = "cpu"
    ) -> dict[str, torch.Tensor] | None:
        """The stored importances, or None when absent, unreadable or not matching `expect`."""
        entry = self.load_entry(key, expect, device)
        return None if entry is None else entry[0]

    def load_entry(
        self, key: str, expect: dict[str, torch.Size], device: torch.device | str = "cpu"
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
        """(the stored importances, the meta stored with them), or None as `load`."""
        t0 = time.perf_counter()
        try:
            return self._load_entry(key, expect, device)
        finally:
            self.io_s += time.perf_counter() - t0

    def _load_entry(
        self, key: str, expect: dict[str, torch.Size], device: torch.device | str
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
        path = self.path(key)
        if not path.is_file():
            self.misses += 1
            return None
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
            imps = self._validate(obj, key, expect)
        except Exception as err:  # a truncated zip, a foreign pickle, a wrong key: all mean "recompute"
            self.rejected += 1
            self.misses += 1
            log.warning("importance cache entry %s is unusable (%s); recomputing", path, one_line(err))
            return None
        self.hits += 1
        return {n: t.to(device) for n, t in imps.items()}, dict(obj.get("meta") or {})

    @staticmethod
    def _validate(obj: Any, key: str, expect: dict[str, torch.Size]) -> dict[str, torch.Tensor]:
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise ValueError("not an importance cache file")
        if obj.get("key") != key:
            raise ValueError(f"stored key {str(obj.get('key'))[:12]}… does not match")
        imps = obj.get("importances")
        if not isinstance(imps, dict) or set(imps) != set(expect):
            raise ValueError("parameter names differ from the model's")
        for name, shape in expect.items():
            t = imps[name]
            if not isinstance(t, torch.Tensor) or t.shape != shape or t.dtype != torch.float32:
                raise ValueError(f"{name}: stored {getattr(t, 'dtype', None)} {tuple(getattr(t, 'shape', ()))}, "
                                 f"expected float32 {tuple(shape)}")
            if not bool(torch.isfinite(t).all()) or bool((t < 0).any()):
                raise ValueError(f"{name}: stored importances are negative or not finite")
        if obj.get("sha256") != sha256_tensors(imps):
            raise ValueError("its content does not match the checksum stored with it (damaged)")
        return imps

    def save(self, key: str, imps: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
        """Write atomically (temporary file + rename): a reader never sees half an entry."""
        t0 = time.perf_counter()
        try:
            return self._save(key, imps, meta)
        finally:
            self.io_s += time.perf_counter() - t0

    def _save(self, key: str, imps: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
        buf = io.BytesIO()
        cpu = {n: t.detach().cpu() for n, t in imps.items()}
        torch.save({"format": FORMAT, "key": key, "meta": meta, "importances": cpu,
                    "sha256": sha256_tensors(cpu)}, buf)
        path = self.path(key)
        atomic_write_bytes(path, buf.getvalue())
        return path

    def get_or_compute(
        self,
        key: str,
        meta: dict[str, Any],
        expect: dict[str, torch.Size],
        compute: Callable[[], dict[str, torch.Tensor]],
        device: torch.device | str = "cpu",
    ) -> tuple[dict[str, torch.Tensor], bool, dict[str, Any]]:
        """(importances, hit, the entry's meta). On a miss `compute()` runs, timed, and its result is
        stored with `meta` + `compute_s` (its seconds), so a later hit reports what it saved; the
        meta returned is the stored one on a hit, that one on a miss."""
        entry = self.load_entry(key, expect, device)
        if entry is not None:
            return entry[0], True, entry[1]
        imps, seconds = timed(compute, torch.device(device))
        meta = {**meta, "compute_s": seconds}
        try:
            self.save(key, imps, meta)
        except OSError as err:  # a read-only or full disk costs speed, not correctness
            log.warning("could not write importance cache entry %s (%s)", self.path(key), one_line(err))
        return imps, False, meta
