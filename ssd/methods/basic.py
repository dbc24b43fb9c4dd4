"""The reference points every table needs: the untouched model, retraining and fine-tuning."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ssd.errors import UserError
from ssd.methods.common import generator_for, model_device, train_epochs
from ssd.methods.registry import MethodConfig, register_method
from ssd.schedules import load_schedule
from ssd.splits import Splits


@register_method("baseline")
def baseline(model: nn.Module, splits: Splits, cfg: MethodConfig) -> nn.Module:
    """The original model, unchanged: what every method is compared against."""
    return model


@dataclass
class RetrainConfig(MethodConfig):
    """Retraining from scratch on the retain set with the model's pretraining schedule
    (configs/schedules.toml), from a fresh initialisation (for ViT: the ImageNet weights
    the checkpoint started from, with a fresh head). The gold standard; the authors'
    `retrain` only reset the parameters of the model's direct children that have
    `reset_parameters` (the head; the rest kept the trained weights), at lr 0.01 —
    see docs/departures.md. `batch_size` is unused under protocol "ours" (the schedule's)."""

    epochs: int | None = None  # None: the pretraining schedule's epoch count
    lr: float | None = None  # None: the schedule's base rate
    augment: bool | None = None  # None: the schedule's setting


@register_method("retrain", RetrainConfig)
def retrain(model: nn.Module, splits: Splits, cfg: RetrainConfig) -> nn.Module:
    """Train a fresh model on Dr only (same architecture, same schedule)."""
    if splits.model_factory is None:
        raise UserError(splits.context.get("references_unavailable")
                        or "retrain needs a model factory (the experiment driver provides one)")
    net, dataset = splits.context.get("net"), splits.context.get("dataset")
    if net is None or dataset is None:
        raise UserError("retrain needs splits.context['net'] and ['dataset'] to find the schedule")
    from ssd.train import fit

    # protocol="authors": their retain loader's batch size (64 class tasks, 128 random)
    batch = cfg.batch_size if cfg.protocol == "authors" else None
    schedule = load_schedule(net, dataset, epochs=cfg.epochs, lr=cfg.lr, augment=cfg.augment, batch_size=batch)
    torch.manual_seed(cfg.seed)
    fresh = splits.model_factory().to(model_device(model))
    fit(fresh, splits.retain.to(model_device(model)), schedule, seed=cfg.seed, progress=cfg.progress,
        desc="retrain")
    return fresh.eval()


@dataclass
class FinetuneConfig(MethodConfig):
    """Fine-tuning on the retain set only (catastrophic forgetting of Df), as the paper:
    5 epochs at learning rate 0.02 (the SSD authors' `finetune`: `fit_one_cycle(5, ...,
    lr=0.02)` on retain_train_dl, batch 64 in class tasks and 128 in the random task —
    `protocol="authors"`; ours is 128 everywhere)."""

    epochs: int = 5
    lr: float = 0.02
    momentum: float = 0.9  # SGD, as in the authors' training utilities
    weight_decay: float = 5e-4


@register_method("finetune", FinetuneConfig)
def finetune(model: nn.Module, splits: Splits, cfg: FinetuneConfig) -> nn.Module:
    """A few epochs of SGD on Dr."""
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    train_epochs(model, splits.retain, epochs=cfg.epochs, optimizer=opt, batch_size=cfg.batch_size,
                 generator=generator_for(cfg, device=model_device(model)), progress=cfg.progress, desc="finetune")
    return model
