"""The U-LiRA shadow cache: trained shadows and references on disk, keyed and checksummed.

The key holds everything the trained weights depend on: net, dataset, the data folder and
the pool's own images and labels (a hash), the forget-set size, the task and forgotten class,
the architecture, the audit
settings, the shadows' training schedule as resolved (optimiser, rate, batch, milestones,
augmentation, epochs; so a `configs/schedules.toml` edit retrains them, as it does the
retrain and the references), and the code version. The file holds its key and a checksum
of its tensors: a file that does not load, has another key or fails its checksum is never
used: one note, then the shadows are trained again and the file replaced.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from datasets.base import resolve_data_root
from ssd.errors import one_line
from ssd.privacy.settings import UliraSettings
from ssd.utils import atomic_write_bytes, code_version, sha256_tensors

ShadowSet = Any  # ssd.privacy.audit.ShadowSet (not imported: the audit imports this module)
FORMAT = "ssd-ulira-shadows/2"


def cache_key(net: str, dataset: str, data_root: str | None, settings: UliraSettings, n_forget: int,
              architecture: str, shadows: ShadowSet) -> dict[str, Any]:
    """What the trained shadows depend on (see the module docstring), as JSON-able values."""
    pool = shadows.pool
    return {"net": net, "dataset": dataset, "data_root": str(resolve_data_root(data_root).resolve()),
            "pool_sha256": sha256_tensors({"images": pool.images, "targets": pool.targets}),
            "n_forget": n_forget, "task": shadows.task, "forget_index": shadows.forget_index,
            "candidates": shadows.n_candidates, "architecture": architecture, "settings": settings.key(),
            "schedule": shadows.schedule.to_dict(), "code_version": code_version()}


def cache_file(cache_dir: Path, net: str, dataset: str, key: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return cache_dir / "ulira" / f"{net}-{dataset}-{digest}.pt"


def _tensors(shadows: ShadowSet) -> dict[str, torch.Tensor]:
    out = {"members": shadows.members.cpu(), "pool_indices": shadows.pool.indices.cpu()}
    for name, ens in (("originals", shadows.originals), ("references", shadows.references)):
        for kind, tensors in (("p", ens.params), ("b", ens.buffers)):
            out.update({f"{name}/{kind}/{p}": t.detach().cpu() for p, t in tensors.items()})
    return out


def save(path: Path, shadows: ShadowSet, key: dict[str, Any],
         say: Callable[[str], None] = lambda s: print(s, file=sys.stderr)) -> None:
    """Keep the trained set in `path`; a location that cannot be written (say a folder of that
    name) costs only the reuse: one note, and the audit goes on with the set in memory."""
    tensors = _tensors(shadows)
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "key": json.dumps(key, sort_keys=True), "tensors": tensors,
                "sha256": sha256_tensors(tensors), "train_seconds": shadows.train_seconds}, buf)
    try:
        atomic_write_bytes(path, buf.getvalue())
    except OSError as err:
        say(f"note: could not keep the U-LiRA shadows in {path} ({one_line(err)}); this audit goes on without "
            "the cache")


def load_into(path: Path, shadows: ShadowSet, key: dict[str, Any],
              say: Callable[[str], None] = lambda s: print(s, file=sys.stderr)) -> bool:
    """Fill a freshly built (untrained) ShadowSet from `path`. False when there is no file;
    also False, after one note through `say`, when it does not load, was made for another key
    or fails its checksum (the caller trains the shadows again and replaces it)."""
    if not path.is_file():
        return False
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ValueError("not a shadow set of this version")
        tensors = state["tensors"]
        if state["key"] != json.dumps(key, sort_keys=True):
            raise ValueError("made for other settings")
        if sha256_tensors(tensors) != state["sha256"]:
            raise ValueError("checksum mismatch: damaged")
        want = _tensors(shadows)
        if set(tensors) != set(want) or any(tensors[n].shape != t.shape or tensors[n].dtype != t.dtype
                                            for n, t in want.items()):
            raise ValueError("other tensors than this shadow set's")
        if not (torch.equal(tensors["members"], want["members"])
                and torch.equal(tensors["pool_indices"], want["pool_indices"])):
            raise ValueError("another pool or membership")
        train_seconds = float(state["train_seconds"])
    except Exception as err:  # truncated, flipped, foreign: never used
        say(f"note: U-LiRA shadow cache {path} is unusable ({one_line(err)}); training the shadows again")
        return False
    with torch.no_grad():
        for name, ens in (("originals", shadows.originals), ("references", shadows.references)):
            for kind, tensors_of in (("p", ens.params), ("b", ens.buffers)):
                for p, t in tensors_of.items():
                    t.copy_(tensors[f"{name}/{kind}/{p}"])
    shadows.train_seconds = train_seconds
    return True
