"""The suite's checkpoints: where each net/dataset's lives, and pretraining a missing one."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ssd.errors import UserError


def checkpoint_for(suite: dict[str, Any], net: str, dataset: str) -> str:
    """The suite's checkpoint path for net/dataset, else where pretrain_model.py puts it.
    A path may name the suite's data and model settings, e.g. `…-w{width}-n{train_subset}/best.pt`,
    so a `--set width=64` run pretrains and uses its own checkpoint."""
    path = suite.get("checkpoints", {}).get(f"{net}/{dataset}", f"checkpoints/{net}-{dataset}-seed0/best.pt")
    try:
        return path.format(**{k: v for k, v in suite.items() if not isinstance(v, (dict, list))})
    except (KeyError, IndexError, ValueError) as err:
        raise UserError(f"checkpoint path {path!r} names {err} which the suite does not set") from None


def net_options(suite: dict[str, Any], net: str) -> dict[str, Any]:
    """The suite's architecture settings that `net` takes (`width = 16` applies to ResNet18 only)."""
    from models import MODELS

    return {k: suite[k] for k in MODELS.get(net).options if k in suite}


def pretrain_settings(suite: dict[str, Any], net: str) -> dict[str, Any]:
    """What a missing checkpoint is pretrained with, beyond net and dataset."""
    return {"model_options": net_options(suite, net), "train_subset": suite.get("train_subset"),
            "test_subset": suite.get("test_subset"), "epochs": suite.get("pretrain_epochs"),
            "pretrained": suite.get("pretrained", {}).get(net)}


def ensure_checkpoint(path: Path, net: str, dataset: str, device: str, data_root: str | None,
                      download: bool, progress: bool = True, pretrained: str | None = None,
                      model_options: dict[str, Any] | None = None, train_subset: int | None = None,
                      test_subset: int | None = None, epochs: int | None = None) -> None:
    """Pretrain a missing checkpoint. An existing one made with other architecture or data
    settings than the suite asks for is refused (its rows would be mislabelled); one from an
    unfinished pretraining (a killed run of an older version) is pretrained again: a
    half-trained model never stands in for a finished one."""
    if path.is_file():
        from ssd.checkpoint import model_options as options_of
        from ssd.checkpoint import read_meta, unfinished

        meta = read_meta(path)  # its weights are checked when a run loads it
        have = (options_of(meta), (meta.get("data_subset") or {}).get("train"), (meta.get("data_subset") or {}).get("test"))
        want = (dict(model_options or {}), train_subset or None, test_subset or None)
        if meta and have != want:
            raise UserError(f"checkpoint {path} was made with options/train/test subset {have}, the suite asks for "
                            f"{want}: name the settings in the suite's checkpoint path or delete the file")
        why = unfinished(path, meta)
        if why is None:
            return
        print(f"[suite] {path} is not used: {why}; pretraining it again", file=sys.stderr)
    from ssd.train import pretrain

    print(f"[suite] pretraining {net} on {dataset} → {path.parent}", file=sys.stderr)
    res = pretrain(net, dataset, data_root=data_root, download=download, seed=0, device=device,
                   out=path.parent, pretrained=pretrained, progress=progress, model_options=model_options,
                   train_subset=train_subset, test_subset=test_subset, epochs=epochs,
                   log=lambda s: print(f"[pretrain] {s}", file=sys.stderr))
    if path.name not in ("best.pt", "last.pt"):
        (path.parent / "best.pt").rename(path)
    mem = res.extra.get("best", {})
    print(f"[suite] {net}/{dataset} test accuracy {res.best_acc:.2f}%, train (eval mode) "
          f"{mem.get('train_eval_acc', float('nan')):.2f}%", file=sys.stderr)
