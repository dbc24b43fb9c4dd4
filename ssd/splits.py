"""Forget/retain splits shared by every unlearning method and metric."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from datasets.base import ImageData

TASKS = ("full_class", "sub_class", "random")


@dataclass
class Splits:
    """What a method may use. D (`train`) = retain ∪ forget; *_test are for scoring only.

    `forget_class` is the model's output index being forgotten (full class: that class;
    sub-class: the coarse class holding the forgotten fine class; random: None).
    `model_factory` builds a fresh, untrained model of the same architecture
    (retraining, bad teachers, ZRF). `context` carries provenance such as the
    checkpoint sha256, the dataset name and the split hash (used by caches).
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
