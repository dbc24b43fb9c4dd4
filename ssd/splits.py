"""Forget/retain splits shared by every unlearning method and metric.

A split is a set of row positions in the training data, so every method and metric sees
the very same images; `make_splits` checks that forget and retain partition the training
set and fingerprints the forget set (`context["split_hash"]`) so caches can key on it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from datasets.base import ImageData
from ssd.errors import UserError

TASKS = ("full_class", "sub_class", "random")


@dataclass
class Splits:
    """What a method may use. D (`train`) = retain ∪ forget; *_test are for scoring only.

    `forget_class` is the model's output index being forgotten (full class: that class;
    sub-class: the coarse class holding the forgotten fine class; random: None).
    `model_factory` builds a fresh, untrained model of the same architecture
    (retraining, bad teachers, ZRF). `context` carries provenance such as the
    checkpoint sha256, the dataset name and the split hash (used by caches).
    `retain_eval` is a fixed, seeded subset of `retain` used only to *score* retain-train
    accuracy and the MIA (scoring all of a 50k retain set costs more than it tells);
    left as None it becomes `retain` itself. For the random task `forget_test` is empty
    (0 rows): random training samples have no held-out counterpart.
    """

    task: str
    train: ImageData
    forget: ImageData
    retain: ImageData
    test: ImageData
    forget_test: ImageData
    retain_test: ImageData
    num_classes: int
    forget_class: int | None = None
    forget_fine_class: int | None = None
    model_factory: Callable[[], nn.Module] | None = None
    context: dict[str, Any] = field(default_factory=dict)
    retain_eval: ImageData | None = None

    def __post_init__(self) -> None:
        if self.retain_eval is None:
            self.retain_eval = self.retain


def make_splits(
    task: str,
    train: ImageData,
    test: ImageData,
    *,
    forget_class: int | None = None,
    n_forget: int = 100,
    seed: int = 0,
    retain_eval_size: int = 5000,
    model_factory: Callable[[], nn.Module] | None = None,
    context: dict[str, Any] | None = None,
) -> Splits:
    """Build the forget/retain split of `task` ("full_class", "sub_class" or "random").

    full_class: forget every training image whose target is `forget_class` (an output index).
    sub_class: `forget_class` is a *fine* class of a coarse dataset; the model is still
    scored on coarse labels, and the sibling fine classes stay in retain.
    random: exactly `n_forget` training samples drawn with `seed` (the authors'
    `random_split` by fraction rounds; we take exactly N); forget_test is empty.
    Bad requests raise `UserError` with one line.
    """
    if task not in TASKS:
        raise UserError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}")
    if train.info.name != test.info.name:
        raise UserError(f"train and test come from different datasets ({train.info.name} vs {test.info.name})")
    if retain_eval_size <= 0:
        raise UserError(f"retain_eval_size must be positive, got {retain_eval_size}")
    info = train.info
    generator = torch.Generator().manual_seed(seed)
    fine_class: int | None = None
    coarse_class: int | None = None

    if task == "full_class":
        coarse_class = _check_class(forget_class, info.num_classes, "full_class", "class")
        forget_mask = train.targets.cpu() == coarse_class
        forget_test_mask = test.targets.cpu() == coarse_class
    elif task == "sub_class":
        if info.fine_to_coarse is None or train.fine_targets is None or test.fine_targets is None:
            raise UserError(f"sub_class forgetting needs a dataset with coarse labels; {info.name} has none")
        fine_class = _check_class(forget_class, len(info.fine_to_coarse), "sub_class", "fine class")
        coarse_class = int(info.fine_to_coarse[fine_class])
        forget_mask = train.fine_targets.cpu() == fine_class
        forget_test_mask = test.fine_targets.cpu() == fine_class
    else:
        if forget_class is not None:
            raise UserError("the random task forgets random samples; do not give a forget class")
        if not 0 < n_forget < len(train):
            raise UserError(
                f"n_forget must be in 1..{len(train) - 1} (retain may not be empty; {len(train)} training samples), "
                f"got {n_forget}"
            )
        forget_mask = torch.zeros(len(train), dtype=torch.bool)
        forget_mask[torch.randperm(len(train), generator=generator)[:n_forget]] = True
        forget_test_mask = torch.zeros(len(test), dtype=torch.bool)

    if not bool(forget_mask.any()):
        raise UserError(f"{task}: no training image of class {forget_class} in {info.name}")
    if bool(forget_mask.all()):
        raise UserError(f"{task}: the forget set would be the whole training set of {info.name}")

    forget = train.subset(forget_mask.nonzero().flatten())
    retain = train.subset((~forget_mask).nonzero().flatten())
    check_partition(train, forget, retain)
    keep = min(retain_eval_size, len(retain))
    eval_rows = torch.randperm(len(retain), generator=generator)[:keep].sort().values
    retain_eval = retain if keep == len(retain) else retain.subset(eval_rows)

    ctx = dict(context or {})
    ctx["dataset"] = info.name
    ctx["split_hash"] = split_hash(task, info.name, coarse_class, fine_class, seed, forget)
    return Splits(
        task=task,
        train=train,
        forget=forget,
        retain=retain,
        test=test,
        forget_test=test.subset(forget_test_mask.nonzero().flatten()),
        retain_test=test.subset((~forget_test_mask).nonzero().flatten()),
        num_classes=info.num_classes,
        forget_class=coarse_class,
        forget_fine_class=fine_class,
        model_factory=model_factory,
        context=ctx,
        retain_eval=retain_eval,
    )


def _check_class(value: int | None, n: int, task: str, what: str) -> int:
    """An int in 0..n-1, else a one-line UserError naming the valid range."""
    if value is None or isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"{task} forgetting needs a {what} index in 0..{n - 1}, got {value!r}")
    if not 0 <= value < n:
        raise UserError(f"{task}: {what} index {value} out of range 0..{n - 1}")
    return value


def check_partition(train: ImageData, forget: ImageData, retain: ImageData) -> None:
    """Raise ValueError unless forget and retain split `train` exactly (by original index).

    Why: a sample in both sets, or in neither, silently corrupts every metric downstream.
    """
    assert train.indices is not None and forget.indices is not None and retain.indices is not None
    whole = train.indices.cpu()
    if whole.unique().numel() != whole.numel():
        raise ValueError("train.indices has duplicates; splits must be sets of distinct samples")
    f, r = forget.indices.cpu(), retain.indices.cpu()
    overlap = f[torch.isin(f, r)]
    if overlap.numel():
        raise ValueError(f"forget and retain overlap in {overlap.numel()} samples (e.g. index {int(overlap[0])})")
    union = torch.cat([f, r]).sort().values
    if union.numel() != whole.numel() or not torch.equal(union, whole.sort().values):
        raise ValueError(
            f"forget ({f.numel()}) ∪ retain ({r.numel()}) is not the training set ({whole.numel()} samples)"
        )


def split_hash(
    task: str,
    dataset: str,
    forget_class: int | None,
    forget_fine_class: int | None,
    seed: int,
    forget: ImageData,
) -> str:
    """sha256 over what identifies a forget set: task, dataset, classes, seed, sorted indices.

    `retain_eval_size` is deliberately left out: it changes how we score, not what a method
    is asked to forget, so results cached under one hash stay valid.
    """
    assert forget.indices is not None
    payload = {
        "task": task,
        "dataset": dataset,
        "forget_class": forget_class,
        "forget_fine_class": forget_fine_class,
        "seed": seed,
        "forget_indices": sorted(int(i) for i in forget.indices.cpu().tolist()),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
