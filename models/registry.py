"""The model registry: builders keyed by the names the authors' `-net` flag uses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from datasets.base import DatasetInfo
from ssd.registry import Registry


@dataclass(frozen=True)
class ModelEntry:
    """How to build a model for any dataset: channels, image size and classes are arguments."""

    name: str
    build: Callable[..., nn.Module]  # (num_classes, in_channels, image_size, pretrained) -> module
    description: str = ""


MODELS: Registry[ModelEntry] = Registry("model")


def register_model(name: str, description: str = "") -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        MODELS.add(name, ModelEntry(name, fn, description))
        return fn

    return deco


def build_model(name: str, info: DatasetInfo, pretrained: str | None = None) -> nn.Module:
    """Build `name` adapted to `info`'s channel count, image size and class count."""
    entry = MODELS.get(name)
    return entry.build(
        num_classes=info.num_classes,
        in_channels=info.channels,
        image_size=info.image_size,
        pretrained=pretrained,
    )
