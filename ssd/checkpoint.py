"""Checkpoints: state dict + metadata + content checksum, written atomically, loaded checked.

A checkpoint is `{"format": FORMAT, "state_dict": ..., "meta": {...}, "sha256": ...}`.
Reading (structure, checksum, NaN weights, weights-only loading; `read_meta` for the
metadata alone, without reading the weights) lives in models/weights.py, so models can
load a `--pretrained FILE` without importing ssd/.
The authors' plain state-dict `.pth` files load too (their metadata is then unknown,
and the architecture is checked by loading the weights strictly).

Pretraining publishes its checkpoints only when it has finished; their metadata says
`"complete": true`. A checkpoint from an unfinished pretraining is refused (see
:func:`unfinished`).
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.weights import FORMAT, load_state_strict, read_meta, read_weights
from ssd.errors import UserError
from ssd.utils import atomic_write_bytes, sha256_file, sha256_tensors

read_checkpoint = read_weights
load_into = load_state_strict
__all__ = ["FORMAT", "check_compatible", "load_into", "load_model", "read_checkpoint", "read_meta",
           "save_checkpoint", "unfinished"]


def save_checkpoint(path: str | Path, model: nn.Module, meta: dict[str, Any]) -> Path:
    """Write `model`'s weights (on CPU), `meta` and their checksum to `path` (temporary file + rename)."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "state_dict": state, "meta": meta, "sha256": sha256_tensors(state)}, buf)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def unfinished(path: str | Path, meta: dict[str, Any]) -> str | None:
    """Why `path` is not a finished pretraining checkpoint, or None when it is (or is not ours).

    New checkpoints say `complete`; one written by an older version is finished when the
    `history.json` beside it (written at the end of training) records every scheduled epoch.
    """
    if meta.get("complete") is True:
        return None
    sched = (meta.get("config") or {}).get("schedule") if isinstance(meta.get("config"), dict) else None
    if meta.get("complete") is False:
        return f"it is from an unfinished pretraining (epoch {meta.get('epoch')})"
    if not isinstance(sched, dict) or "epochs" not in sched:
        return None  # not a pretraining checkpoint of ours (a bare .pth, a retrained reference, a test file)
    total = sched["epochs"]
    history = Path(path).with_name("history.json")
    try:
        done = len(json.loads(history.read_text()).get("history", []))
    except (OSError, ValueError, AttributeError):
        done = None
    if done is not None and done >= total:
        return None
    return (f"it is from an unfinished pretraining (epoch {meta.get('epoch')} of {total}; "
            f"{'no history.json beside it' if done is None else f'history.json records {done}'})")


def check_compatible(path: str | Path, meta: dict[str, Any], net: str | None, num_classes: int | None,
                     dataset: str | None = None) -> None:
    """A checkpoint of another architecture, class count or dataset is refused, naming both."""
    have_net, have_cls, have_data = meta.get("net"), meta.get("classes"), meta.get("dataset")
    if (net is not None and have_net is not None and have_net != net) or (
        num_classes is not None and have_cls is not None and int(have_cls) != int(num_classes)
    ):
        raise UserError(
            f"checkpoint {path} holds {have_net} with {have_cls} classes, "
            f"but {net or have_net} with {num_classes if num_classes is not None else have_cls} classes was requested"
        )
    if dataset is not None and have_data is not None and have_data != dataset:
        raise UserError(f"checkpoint {path} was trained on {have_data}, but -dataset {dataset} was given; "
                        "pass the checkpoint of that dataset")


def check_meta(path: str | Path, meta: Any) -> None:
    """Refuse checkpoint metadata of the wrong shape in one line (a hand-edited or foreign file):
    `classes` not a whole number, `model_options` not a table, `data_subset` not a table of sizes."""
    def bad(what: str, value: Any) -> UserError:
        return UserError(f"checkpoint {path}: its metadata's {what} is {value!r}; remake it with pretrain_model.py")

    if not isinstance(meta, dict):
        raise bad("header", type(meta).__name__)
    for key in ("net", "dataset"):
        if meta.get(key) is not None and not isinstance(meta[key], str):
            raise bad(key, meta[key])
    cls = meta.get("classes")
    if cls is not None and (isinstance(cls, bool) or not isinstance(cls, int) or cls < 1):
        raise bad("classes", cls)
    if meta.get("model_options") is not None and not isinstance(meta["model_options"], dict):
        raise bad("model_options", meta["model_options"])
    subset = meta.get("data_subset")
    if subset is not None and (not isinstance(subset, dict) or any(
            v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0) for v in subset.values())):
        raise bad("data_subset", subset)


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
    check_meta(path, meta)
    why = unfinished(path, meta)
    if why:
        raise UserError(f"checkpoint {path} was not used: {why}; finish it with pretrain_model.py")
    check_compatible(path, meta, net, num_classes, dataset)
    net = net or meta.get("net")
    dataset = dataset or meta.get("dataset")
    if net is None or dataset is None:
        raise UserError(f"checkpoint {path} has no metadata: pass -net and -dataset")
    with warnings.catch_warnings():  # the weights are loaded next: "randomly initialised" would mislead
        warnings.filterwarnings("ignore", message=".*randomly initiali[sz]ed")
        try:
            model = build_model(net, dataset_info(dataset), **model_options(meta))
        except (TypeError, ValueError) as err:  # options this architecture does not take, or of the wrong type
            raise UserError(f"checkpoint {path}: its metadata's model_options {model_options(meta)} do not build "
                            f"{net} ({err}); remake it with pretrain_model.py") from None
    load_into(model, path, state, meta)
    meta = {**meta, "sha256": sha256_file(path), "path": str(path)}
    return model.to(device), meta
