"""Reading weight files: harness checkpoints and plain state dicts, checked before use.

A harness checkpoint is `{"format": FORMAT, "state_dict": ..., "meta": {...}, "sha256": ...}`
(written by ssd.checkpoint.save_checkpoint); `sha256` is the content hash of the state
dict, so damaged bytes are caught even where the zip container does not notice. The
authors' plain state-dict `.pth` files load too (no metadata, no checksum). Every file
is loaded with `weights_only=True`; anything else is one UserError line and nothing is
loaded. Lives in models/ so `--pretrained FILE` needs nothing from ssd/.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from harness.errors import UserError
from harness.tensors import sha256_tensors

FORMAT = "ssd-harness-checkpoint/1"


def _load_object(path: Path, mmap: bool = False) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        if "weights only" in str(err).lower() or "weights_only" in str(err).lower():
            raise UserError(f"checkpoint {path} is not a plain checkpoint (it holds Python objects other than "
                            "tensors, which could run code) and was not loaded") from None
        raise UserError(f"checkpoint {path} is damaged or truncated and was not loaded") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, AttributeError, TypeError):
        raise UserError(f"checkpoint {path} is damaged, truncated or not a PyTorch checkpoint "
                        "and was not loaded") from None


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def _open(path: Path, mmap: bool) -> tuple[dict[str, torch.Tensor], dict[str, Any], str | None]:
    """(state dict, meta, stored checksum) after checking the file's structure; nothing else."""
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist (make one with pretrain_model.py)")
    obj = _load_object(path, mmap=mmap)
    if isinstance(obj, dict) and "format" in obj:
        if obj.get("format") != FORMAT:
            raise UserError(f"checkpoint {path} has an unknown format {str(obj.get('format'))[:40]!r}; not loaded")
        state, meta = obj.get("state_dict"), obj.get("meta", {})
        if not _is_state_dict(state) or not isinstance(meta, dict):
            raise UserError(f"checkpoint {path} is malformed (its state_dict or meta is missing or of the wrong "
                            "type); not loaded")
        return state, dict(meta), obj.get("sha256")
    if _is_state_dict(obj):
        return obj, {}, None  # a bare state dict, e.g. the authors' .pth files
    raise UserError(f"checkpoint {path} is not a model checkpoint (no state dict found); not loaded")


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Return (state_dict, meta) after checking structure, checksum and finiteness."""
    path = Path(path)
    state, meta, stored = _open(path, mmap=False)
    if stored is not None and stored != sha256_tensors(state):
        raise UserError(f"checkpoint {path} is damaged: its weights do not match the checksum stored with "
                        "them; not loaded")
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise UserError(f"checkpoint {path} has NaN or infinite weights in {len(bad)} tensor(s) "
                        f"(first: {bad[0]}); not loaded")
    return state, meta


def read_meta(path: str | Path) -> dict[str, Any]:
    """A checkpoint's metadata without reading its weights ({} for a bare state dict).

    The file is memory-mapped (`torch.load(mmap=True)`), so no tensor bytes are read, where
    `read_weights` reads, hashes and scans every tensor. The structure is checked as there;
    the weights (checksum, NaN) are not: `read_weights` checks them when the model is loaded.
    A file in torch's legacy (non-zip) format cannot be mapped and is read whole.
    """
    path = Path(path)
    if path.is_file() and not zipfile.is_zipfile(path):
        return read_weights(path)[1]
    return _open(path, mmap=True)[1]


def load_state_strict(model: nn.Module, path: str | Path, state: dict[str, torch.Tensor],
                      meta: dict[str, Any]) -> None:
    """Load weights strictly; a shape or key mismatch becomes one line."""
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        detail = lines[1] if len(lines) > 1 else lines[0]
        raise UserError(
            f"checkpoint {path} ({meta.get('net', 'unknown net')}) does not fit the requested model: {detail[:160]}"
        ) from None


def load_weights_file(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a local state-dict or harness checkpoint into `model`, strictly.

    Shared by the non-Hugging-Face builders so `--pretrained FILE` means the same for
    all of them; a missing, foreign or mismatched file becomes one UserError line.
    """
    state, meta = read_weights(path)
    load_state_strict(model, path, state, meta)
    return model
