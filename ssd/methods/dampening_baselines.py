"""Crude dampening baselines that show what SSD's selection buys.

`output_dampening` (the classroom method) scales only the forget class's output row and
bias; `global_dampening` scales every Linear and Conv weight and bias alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ssd.errors import UserError
from ssd.methods.registry import MethodConfig, register_method
from ssd.splits import Splits

CLASSIFIER_NAMES = ("classifier", "head", "fc")


def output_layer(model: nn.Module, num_classes: int | None = None) -> tuple[str, nn.Linear]:
    """The layer producing the logits: (qualified name, module).

    Among Linears with `num_classes` outputs, one named like a classifier head
    (`classifier` as in Hugging Face models, `head`, `fc`) wins, else the last registered;
    with no such Linear (or no `num_classes`), the last Linear. Why the care: ViTs
    register many Linears and an HF wrapper nests its head one level down.
    """
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise UserError(f"{type(model).__name__} has no nn.Linear output layer to dampen")
    fits = [(n, m) for n, m in linears if num_classes is not None and m.out_features == num_classes]
    named = [(n, m) for n, m in fits if n.rsplit(".", 1)[-1] in CLASSIFIER_NAMES]
    return (named or fits or linears)[-1]


@dataclass
class OutputDampeningConfig(MethodConfig):
    """alpha: factor applied to the forget class's output weight row and bias entry."""

    alpha: float = 0.01


@register_method("output_dampening", OutputDampeningConfig, tasks=("full_class", "sub_class"))
def output_dampening(model: nn.Module, splits: Splits, cfg: OutputDampeningConfig) -> nn.Module:
    """Scale the forget class's logit weights by α (classroom baseline; class tasks only)."""
    if splits.forget_class is None:
        raise UserError("output_dampening needs a forget class (full_class or sub_class task), not the random task")
    _, layer = output_layer(model, splits.num_classes)
    c = splits.forget_class
    if not 0 <= c < layer.out_features:
        raise UserError(f"forget class {c} is outside the output layer's {layer.out_features} classes")
    with torch.no_grad():
        layer.weight[c].mul_(cfg.alpha)
        if layer.bias is not None:
            layer.bias[c].mul_(cfg.alpha)
    return model


@dataclass
class GlobalDampeningConfig(MethodConfig):
    """alpha: factor applied to every Linear and Conv weight and bias."""

    alpha: float = 0.01


@register_method("global_dampening", GlobalDampeningConfig)
def global_dampening(model: nn.Module, splits: Splits, cfg: GlobalDampeningConfig) -> nn.Module:
    """Scale every Linear and Conv weight and bias by α (no selection at all)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear | nn.modules.conv._ConvNd):
                for p in m.parameters(recurse=False):
                    p.mul_(cfg.alpha)
    return model
