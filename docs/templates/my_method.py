"""A template unlearning method: copy this file to ssd/methods/my_method.py and edit it.

The package ssd.methods imports every module in its folder, so the copy registers itself:
nothing else to edit. Then run it like any built-in method:

    python forget_full_class_main.py -net ConvNet -dataset Digits \
        -weight_path checkpoints/ConvNet-Digits-seed0/best.pt -method my_method -forget_class 2 \
        --logger none --set lr=0.05 --set steps=20

or name it in a suite's `methods = [...]` (docs/first-study.md). Every field of the config
dataclass below is a setting (`--set NAME=VALUE` on a main, `[method_settings.my_method]` in a
suite); each is checked before any work (type, finite, > 0 for rates/epochs/batches).

What the method does here (replace it with yours): a few steps of gradient ascent on the
forget set Df, each followed by one step of descent on the retain set Dr.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ssd.methods.common import generator_for, model_device
from ssd.methods.registry import MethodConfig, register_method
from ssd.splits import Splits


@dataclass
class MyMethodConfig(MethodConfig):
    """Your settings, all with defaults (seed, device, batch_size, progress, protocol come from
    MethodConfig). The row records every field; run keys change when a field changes."""

    lr: float = 0.01
    steps: int = 10


# tasks: the forgetting tasks your method supports ("full_class", "sub_class", "random");
# suites skip the others and the mains refuse them in one line.
@register_method("my_method", MyMethodConfig, tasks=("full_class", "sub_class", "random"))
def my_method(model: nn.Module, splits: Splits, cfg: MyMethodConfig) -> nn.Module:
    """fn(model, splits, cfg) -> model: the caller passes a copy, so change `model` in place
    and return it (or return a new model of the same architecture)."""
    device = model_device(model)
    forget, retain = splits.forget.to(device), splits.retain.to(device)
    gen_f, gen_r = generator_for(cfg, 0, device=device), generator_for(cfg, 1, device=device)  # from cfg.seed
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9)
    model.train()
    step = 0
    while step < cfg.steps:
        for (xf, yf), (xr, yr) in zip(forget.batches(cfg.batch_size, shuffle=True, generator=gen_f),
                                      retain.batches(cfg.batch_size, shuffle=True, generator=gen_r),
                                      strict=False):  # the shorter of the two sets ends a pass
            loss = -F.cross_entropy(model(xf), yf) + F.cross_entropy(model(xr), yr)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if step >= cfg.steps:
                break
    return model.eval()
