"""The registry of unlearning methods: one signature, one typed config per method.

Every method is `fn(model, splits, cfg) -> model`: it may modify and return `model`
(the caller passes a copy, so the loaded checkpoint is never touched) or return a new
module of the same architecture. Its hyper-parameters live in a dataclass deriving
from :class:`MethodConfig`, defined beside the method.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from torch import nn

from ssd.registry import Registry

if TYPE_CHECKING:
    from ssd.splits import Splits


@dataclass
class MethodConfig:
    """Settings every method has; subclasses add their own (all with defaults).

    protocol: "ours" (the harness's defaults) or "authors" (the data order and batch
    sizes of the method's reference code, per task; see ssd/methods/protocol.py).
    """

    seed: int = 0
    device: str = "cpu"
    batch_size: int = 128
    progress: bool = False
    protocol: str = "ours"


C = TypeVar("C", bound=MethodConfig)
ALL_TASKS = ("full_class", "sub_class", "random")
MethodFn = Callable[[nn.Module, "Splits", C], nn.Module]


@dataclass(frozen=True)
class MethodEntry:
    name: str
    fn: Callable[[nn.Module, Splits, MethodConfig], nn.Module]
    config: type[MethodConfig]
    description: str = ""
    tasks: tuple[str, ...] = ALL_TASKS  # the forgetting tasks the method is defined for


METHODS: Registry[MethodEntry] = Registry("method")


def register_method(
    name: str,
    config: type[MethodConfig] = MethodConfig,
    description: str = "",
    tasks: tuple[str, ...] = ALL_TASKS,
) -> Callable[[MethodFn], MethodFn]:
    """Decorator: `@register_method("ssd", SSDConfig)` over `fn(model, splits, cfg)`."""

    def deco(fn: MethodFn) -> MethodFn:
        doc = description or (fn.__doc__ or "").strip().split("\n")[0]
        METHODS.add(name, MethodEntry(name, fn, config, doc, tuple(tasks)))
        return fn

    return deco
