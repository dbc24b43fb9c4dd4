"""Checkpoints: state dict + metadata, written atomically, loaded with weights_only=True.

A checkpoint is `{"format": FORMAT, "state_dict": ..., "meta": {...}}`. The authors'
plain state-dict `.pth` files load too (their metadata is then unknown, and the
architecture is checked by loading the weights strictly).
"""

from __future__ import annotations

import io
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ssd.errors import UserError
from ssd.utils import atomic_write_bytes, sha256_file

FORMAT = "ssd-harness-checkpoint/1"


def save_checkpoint(path: str | Path, model: nn.Module, meta: dict[str, Any]) -> Path:
    """Write `model`'s weights (on CPU) and `meta` to `path` via a temporary file and rename."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "state_dict": state, "meta": meta}, buf)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Return (state_dict, meta); any unreadable or foreign file is one UserError line."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist (make one with pretrain_model.py)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"checkpoint {path} is truncated or not a PyTorch checkpoint ({first[:120]})") from None
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        return obj["state_dict"], dict(obj.get("meta", {}))
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj, {}  # a bare state dict, e.g. the authors' .pth files
    raise UserError(f"checkpoint {path} is not a model checkpoint (no state dict found)")


def check_compatible(path: str | Path, meta: dict[str, Any], net: str | None, num_classes: int | None) -> None:
    """A checkpoint of another architecture or class count is refused, naming both."""
    have_net, have_cls = meta.get("net"), meta.get("classes")
    if (net is not None and have_net is not None and have_net != net) or (
        num_classes is not None and have_cls is not None and int(have_cls) != int(num_classes)
    ):
        raise UserError(
            f"checkpoint {path} holds {have_net} with {have_cls} classes, "
            f"but {net or have_net} with {num_classes if num_classes is not None else have_cls} classes was requested"
        )


def load_into(model: nn.Module, path: str | Path, state: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Load weights strictly; a shape or key mismatch becomes one line."""
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        detail = lines[1] if len(lines) > 1 else lines[0]
        raise UserError(
            f"checkpoint {path} ({meta.get('net', 'unknown net')}) does not fit the requested model: {detail[:160]}"
        ) from None


def model_options(meta: dict[str, Any]) -> dict[str, Any]:
    """The architecture settings a checkpoint was built with (e.g. ResNet18's width); none for
    older checkpoints and bare state dicts (the builder's defaults, the paper's architecture)."""
    return dict(meta.get("model_options") or {})


def load_model(
    path: str | Path,
    *,
    net: str | None = None,
    dataset: str | None = None,
    num_classes: int | None = None,
    device: torch.device | str = "cpu",
) -> tuple[nn.Module, dict[str, Any]]:
    """Build the checkpoint's model (or `net` on `dataset` for a bare state dict) and load it."""
    from datasets import dataset_info
    from models import build_model

    state, meta = read_checkpoint(path)
    check_compatible(path, meta, net, num_classes)
    net = net or meta.get("net")
    dataset = dataset or meta.get("dataset")
    if net is None or dataset is None:
        raise UserError(f"checkpoint {path} has no metadata: pass -net and -dataset")
    with warnings.catch_warnings():  # the weights are loaded next: "randomly initialised" would mislead
        warnings.filterwarnings("ignore", message=".*randomly initiali[sz]ed")
        model = build_model(net, dataset_info(dataset), **model_options(meta))
    load_into(model, path, state, meta)
    meta = {**meta, "sha256": sha256_file(path), "path": str(path)}
    return model.to(device), meta
