"""The suite's checkpoints: where each net/dataset's lives, and pretraining a missing one."""

from __future__ import annotations

import sys
from dataclasses import dataclass
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


def needs_pretraining(path: Path, model_options: dict[str, Any] | None = None, train_subset: int | None = None,
                      test_subset: int | None = None) -> bool:
    """Whether `path` must be pretrained: missing, or from an unfinished pretraining (a killed run
    of an older version: a half-trained model never stands in for a finished one). An existing
    one made with other architecture or data settings than the suite asks for is refused (its
    rows would be mislabelled)."""
    if not path.is_file():
        return True
    from ssd.checkpoint import check_meta, read_meta, unfinished
    from ssd.checkpoint import model_options as options_of

    meta = read_meta(path)  # its weights are checked when a run loads it
    check_meta(path, meta)
    have = (options_of(meta), (meta.get("data_subset") or {}).get("train"), (meta.get("data_subset") or {}).get("test"))
    want = (dict(model_options or {}), train_subset or None, test_subset or None)
    if meta and have != want:
        raise UserError(f"checkpoint {path} was made with options/train/test subset {have}, the suite asks for "
                        f"{want}: name the settings in the suite's checkpoint path or delete the file")
    why = unfinished(path, meta)
    if why is None:
        return False
    print(f"[suite] {path} is not used: {why}; pretraining it again", file=sys.stderr)
    return True


def ensure_checkpoint(path: Path, net: str, dataset: str, device: str, data_root: str | None,
                      download: bool, progress: bool = True, pretrained: str | None = None,
                      model_options: dict[str, Any] | None = None, train_subset: int | None = None,
                      test_subset: int | None = None, epochs: int | None = None) -> None:
    """Pretrain `path` in this process when :func:`needs_pretraining` says so."""
    if not needs_pretraining(path, model_options, train_subset, test_subset):
        return
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


@dataclass(frozen=True)
class PretrainPayload:
    """One missing checkpoint to pretrain, as a backend job (`device` is replaced by the GPU a
    Ray task is assigned)."""

    path: str
    net: str
    dataset: str
    device: str
    data_root: str | None
    download: bool
    progress: bool
    settings: dict[str, Any]  # pretrain_settings(suite, net)


def run_pretrain(_session: Any, p: PretrainPayload) -> list[dict[str, Any]]:
    """A backend job: pretrain one checkpoint (module-level: a Ray worker imports it by name)."""
    ensure_checkpoint(Path(p.path), p.net, p.dataset, p.device, p.data_root, p.download, progress=p.progress,
                      **p.settings)
    return []


def pretrain_missing(suite: dict[str, Any], needed: list[tuple[str, str, str]], device: str, args: Any,
                     backend: Any) -> None:
    """Every (net, dataset, path) checkpoint the grid needs checked here (a mismatched one is
    refused before any work), the missing ones pretrained as jobs on `backend`: Ray tasks side
    by side, each on the GPU it is assigned, or one after another in this process (serial)."""
    from ssd.backends import Job, RunsFailed, drive

    jobs = []
    for net, dataset, path in needed:
        settings = pretrain_settings(suite, net)
        if needs_pretraining(Path(path), settings["model_options"], settings["train_subset"], settings["test_subset"]):
            label = f"pretrain {net} {dataset}"
            jobs.append(Job(key=f"pretrain-{path}", label=label, cell=label, fn=run_pretrain, device=device,
                            payload=PretrainPayload(path, net, dataset, device, args.data_root, args.download,
                                                    not args.no_progress, settings)))
    if not jobs:
        return
    print(f"[suite] pretraining {len(jobs)} missing checkpoint(s) on the {backend.name} backend", file=sys.stderr)
    report = drive(jobs, backend, lambda _job, _row: None, progress=not args.no_progress, desc="pretrain")
    for why in report.refused.values():
        raise UserError(why)
    if report.failed:
        raise RunsFailed("pretraining failed, so the grid did not run: "
                         + "; ".join(f"{k}: {v}" for k, v in report.failed.items()))
