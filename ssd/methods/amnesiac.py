"""Amnesiac unlearning (Graves et al., AAAI 2021, "Amnesiac Machine Learning").

Forget samples get a random *wrong* label and are trained on together with all of
the retain set, so the model stops predicting their true labels while Dr keeps the
rest intact. The SSD authors' variant (from vikram2000b/bad-teaching-unlearning)
differs per task only in what "wrong" means, and all three rules are one rule here:
any output class but the sample's own training label —
full class: any class but the forget class (every Df label *is* the forget class);
sub-class: any superclass but its own (Df's coarse label is the forget superclass);
random: any class but the sample's own label.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from datasets.base import concat_data, with_targets
from ssd.methods.common import generator_for, model_device, train_epochs, wrong_labels
from ssd.methods.registry import MethodConfig, register_method
from ssd.splits import Splits


@dataclass
class AmnesiacConfig(MethodConfig):
    """Defaults from the SSD authors' `forget_*_strategies.py::amnesiac` (all tasks):
    `fit_one_unlearning_cycle(3, model, loader, ..., lr=0.0001)` with Adam and a
    `DataLoader(unlearning_trainset, 128, shuffle=True)` — `batch_size` (inherited) is 128."""

    epochs: int = 3  # fit_one_unlearning_cycle(3, ...)
    lr: float = 1e-4  # lr=0.0001, torch.optim.Adam in fit_one_unlearning_cycle


@register_method("amnesiac", AmnesiacConfig)
def amnesiac(model: nn.Module, splits: Splits, cfg: AmnesiacConfig) -> nn.Module:
    """Train on Df with random wrong labels mixed with all of Dr (Adam, 3 epochs)."""
    gen = generator_for(cfg, device=model_device(model))
    relabelled = with_targets(splits.forget, wrong_labels(splits.forget.targets, splits.num_classes, gen))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    train_epochs(model, concat_data(relabelled, splits.retain), epochs=cfg.epochs, optimizer=opt,
                 batch_size=cfg.batch_size, generator=gen, progress=cfg.progress, desc="amnesiac")
    return model.eval()
