"""Training schedules read from configs/schedules.toml, resolved per (model, dataset)."""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ssd.errors import UserError
from ssd.utils import REPO_ROOT

SCHEDULES_FILE = REPO_ROOT / "configs" / "schedules.toml"


@dataclass(frozen=True)
class Schedule:
    """Optimiser + learning-rate schedule: linear warm-up, then MultiStepLR by epoch."""

    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    gamma: float = 0.2
    warmup_epochs: int = 1
    batch_size: int = 64
    epochs: int = 20
    milestones: tuple[int, ...] = field(default=(8, 12, 16))
    augment: bool = True

    def __post_init__(self) -> None:
        """Nonsense (no epochs, an empty batch, a NaN rate) is one UserError line before any training."""
        import math

        def num(value: Any) -> bool:
            return isinstance(value, (int, float)) and not isinstance(value, bool)

        checks = (
            ("epochs", num(self.epochs) and int(self.epochs) == self.epochs and self.epochs >= 1, "a whole number ≥ 1"),
            ("batch_size", num(self.batch_size) and int(self.batch_size) == self.batch_size and self.batch_size >= 1,
             "a whole number ≥ 1 (-b)"),
            ("lr", num(self.lr) and math.isfinite(self.lr) and self.lr > 0, "a finite number > 0 (-lr)"),
            ("warmup_epochs", num(self.warmup_epochs) and int(self.warmup_epochs) == self.warmup_epochs
             and self.warmup_epochs >= 0, "a whole number ≥ 0 (-warm)"),
            ("momentum", num(self.momentum) and math.isfinite(self.momentum) and self.momentum >= 0, "finite, ≥ 0"),
            ("weight_decay", num(self.weight_decay) and math.isfinite(self.weight_decay) and self.weight_decay >= 0,
             "finite, ≥ 0"),
            ("gamma", num(self.gamma) and math.isfinite(self.gamma) and self.gamma > 0, "finite, > 0"),
        )
        for name, ok, want in checks:
            if not ok:
                raise UserError(f"training {name} must be {want}; got {getattr(self, name)!r}")
        if self.optimizer not in ("sgd", "adam", "adamw"):
            raise UserError(f"unknown optimizer {self.optimizer!r} (sgd, adam, adamw)")

    def lr_at(self, epoch: int, step: int, steps_per_epoch: int) -> float:
        """Rate for 0-based `epoch` and `step`: linear warm-up to `lr`, then γ per milestone passed."""
        if epoch < self.warmup_epochs:
            done = epoch * steps_per_epoch + step + 1
            return self.lr * done / (self.warmup_epochs * steps_per_epoch)
        passed = sum(1 for m in self.milestones if epoch >= m)
        return self.lr * self.gamma**passed

    def make_optimizer(self, params: Any) -> torch.optim.Optimizer:
        if self.optimizer == "sgd":
            return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)
        if self.optimizer == "adam":
            return torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
        if self.optimizer == "adamw":
            return torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        raise UserError(f"unknown optimizer {self.optimizer!r} (sgd, adam, adamw)")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["milestones"] = list(self.milestones)
        return d


def load_schedule(net: str, dataset: str, path: Path = SCHEDULES_FILE, **overrides: Any) -> Schedule:
    """[defaults] ← [net.default] ← [net.dataset] ← non-None `overrides` (CLI flags)."""
    with open(path, "rb") as f:
        table = tomllib.load(f)
    merged: dict[str, Any] = dict(table.get("defaults", {}))
    per_net = table.get(net, {})
    merged.update(per_net.get("default", {}))
    merged.update(per_net.get(dataset, {}))
    merged.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in fields(Schedule)}
    unknown = set(merged) - known
    if unknown:
        raise UserError(f"{path}: unknown schedule keys {sorted(unknown)}")
    merged["milestones"] = tuple(merged.get("milestones", ()))
    return replace(Schedule(), **merged)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
