"""The model registry: builders keyed by the names the authors' `-net` flag uses."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from datasets.base import DatasetInfo
from harness.registry import Registry


@dataclass(frozen=True)
class ModelEntry:
    """How to build a model for any dataset: channels, image size and classes are arguments."""

    name: str
    build: Callable[..., nn.Module]  # (num_classes, in_channels, image_size, pretrained, **options) -> module
    description: str = ""

    @property
    def options(self) -> tuple[str, ...]:
        """Architecture options the builder takes beyond the dataset-given ones (e.g. ResNet18's width)."""
        fixed = {"num_classes", "in_channels", "image_size", "pretrained"}
        return tuple(n for n in inspect.signature(self.build).parameters if n not in fixed)


MODELS: Registry[ModelEntry] = Registry("model")


def register_model(name: str, description: str = "") -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        MODELS.add(name, ModelEntry(name, fn, description))
        return fn

    return deco


def build_model(name: str, info: DatasetInfo, pretrained: str | None = None, **options: Any) -> nn.Module:
    """Build `name` adapted to `info`'s channel count, image size and class count.

    `options` are the architecture's own settings (`MODELS.get(name).options`); one the
    builder does not take is a ValueError naming the ones it does.
    """
    entry = MODELS.get(name)
    unknown = set(options) - set(entry.options)
    if unknown:
        have = ", ".join(entry.options) or "none"
        raise ValueError(f"model {name} has no option(s) {sorted(unknown)}; its options: {have}")
    return entry.build(
        num_classes=info.num_classes,
        in_channels=info.channels,
        image_size=info.image_size,
        pretrained=pretrained,
        **options,
    )
