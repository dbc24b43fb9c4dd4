"""Tiny Digits set-ups shared by the per-method test files (fixtures live in conftest.py)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from datasets import ImageData, load_dataset
from models import build_model
from ssd.splits import Splits, make_splits
from ssd.train import pretrain

N_TRAIN, N_TEST = 400, 150
TASKS: dict[str, tuple[str, dict[str, Any]]] = {
    "full_class": ("Digits", {"forget_class": 3}),
    "sub_class": ("DigitsCoarse", {"forget_class": 3}),  # fine digit 3 inside coarse "curves"
    "random": ("Digits", {"n_forget": 40}),
}


def tiny(name: str) -> tuple[ImageData, ImageData]:
    train, test = load_dataset(name, train=True), load_dataset(name, train=False)
    return train.subset(range(N_TRAIN)), test.subset(range(N_TEST))


def task_setups() -> dict[str, tuple[nn.Module, Splits]]:
    """Per task: a seeded, untrained ConvNet and its splits (contracts need no training)."""
    out = {}
    for task, (dataset, kw) in TASKS.items():
        train, test = tiny(dataset)
        torch.manual_seed(0)
        out[task] = (build_model("ConvNet", train.info).eval(), make_splits(task, train, test, seed=0, **kw))
    return out


def trained_digits() -> tuple[nn.Module, Splits]:
    """A ConvNet fitted to the tiny Digits subset (fixed settings, independent of the
    tunable schedule file), with the full-class split of digit 3."""
    train, test = tiny("Digits")
    res = pretrain("ConvNet", "Digits", epochs=15, batch_size=32, lr=1e-3, progress=False, log=None,
                   train_data=train, test_data=test)
    return res.model.eval(), make_splits("full_class", train, test, forget_class=3)


def state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
