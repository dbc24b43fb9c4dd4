"""A pretraining's resumable state: what a killed `pretrain` needs to go on from its last finished epoch.

`resume.pt` in the checkpoint folder, rewritten atomically after every finished epoch: the
model, the optimizer, the training loop's generator (batch order, augmentation) and torch's
global random state (:class:`ssd.train.FitState`), the history and the best epoch so far,
and the settings the pretraining was started with. It is not a checkpoint (its own format:
nothing loads it as a model) and it goes once the finished checkpoints are published.

A pretraining resumes only from a state made with the same settings (net, data, subsets,
seed, schedule, model options, start weights; not the device); any other state, or one that
does not load or fails its checksum (the whole state is stored as one byte tensor with its sha256,
so a flipped weight or generator byte is caught), is set aside with one line and the
pretraining starts from epoch 1.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ssd.errors import one_line
from ssd.utils import atomic_write_bytes

FORMAT = "ssd-pretrain-resume/2"  # /2: the state is held as bytes with their sha256 (a damaged copy is refused)
NAME = "resume.pt"


@dataclass
class FitState:
    """Where a training loop stands after `epoch` finished epochs (enough to go on bit-for-bit)."""

    epoch: int
    optimizer: dict[str, Any]
    generator: torch.Tensor  # the state of the loop's generator (on its device): shuffling and augmentation
    rng: dict[str, Any]  # torch's global random state (CPU, and CUDA when training there)


def global_rng(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_global_rng(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def settings_of(config: dict[str, Any]) -> dict[str, Any]:
    """What must match for a state to be resumed: the pretraining's config without the device,
    in JSON form (so a tuple and a list of the same milestones compare equal)."""
    return json.loads(json.dumps({k: v for k, v in config.items() if k != "device"}, sort_keys=True, default=str))


def save_state(path: Path, settings: dict[str, Any], fit: FitState, model: dict[str, torch.Tensor],
               history: list[dict[str, Any]], best: dict[str, Any], code_version: str) -> None:
    cpu = {k: v.detach().to("cpu", copy=True) for k, v in model.items()}
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "settings": settings, "epoch": fit.epoch, "optimizer": fit.optimizer,
                "generator": fit.generator, "rng": fit.rng, "model": cpu, "history": history, "best": best,
                "code_version": code_version}, buf)
    write_state(path, buf.getvalue())


def write_state(path: Path, inner: bytes) -> None:
    """`inner` (a torch.save of the state) as one byte tensor with its sha256, atomically: the
    whole state is checksummed, as checkpoints are, so flipped bytes anywhere are caught."""
    outer = io.BytesIO()
    torch.save({"format": FORMAT, "sha256": hashlib.sha256(inner).hexdigest(),
                "state": torch.frombuffer(bytearray(inner), dtype=torch.uint8)}, outer)
    atomic_write_bytes(path, outer.getvalue())


def read_state(path: Path) -> Any:
    """The state `write_state` wrote; ValueError when it is another format or fails its checksum."""
    outer = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(outer, dict) or outer.get("format") != FORMAT or not torch.is_tensor(outer.get("state")):
        raise ValueError("not a resumable pretraining state of this version")
    inner = outer["state"].numpy().tobytes()
    if hashlib.sha256(inner).hexdigest() != outer.get("sha256"):
        raise ValueError("checksum mismatch: damaged")
    return torch.load(io.BytesIO(inner), map_location="cpu", weights_only=True)


def load_state(path: Path, settings: dict[str, Any], say: Callable[[str], None]) -> dict[str, Any] | None:
    """The state in `path` when it was made with `settings`; None (after one line through `say`)
    when it is missing, unreadable or made with other settings."""
    if not path.is_file():
        return None
    try:
        obj = read_state(path)
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise ValueError("not a resumable pretraining state")
        for key in ("settings", "epoch", "optimizer", "generator", "rng", "model", "history", "best"):
            if key not in obj:
                raise ValueError(f"no {key!r} in it")
    except Exception as err:  # truncated, foreign, damaged: start again rather than trust it
        say(f"note: {path} does not load ({one_line(err)}); pretraining from epoch 1")
        return None
    if obj["settings"] != settings:
        differ = sorted(k for k in set(obj["settings"]) | set(settings) if obj["settings"].get(k) != settings.get(k))
        say(f"note: {path} was made with other settings ({', '.join(differ)} differ); pretraining from epoch 1")
        return None
    return obj
