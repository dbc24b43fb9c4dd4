"""SalUn (Fan et al., ICLR 2024, "SalUn: Empowering Machine Unlearning via Gradient-based
Weight Saliency in Both Image Classification and Generation").

1. Weight saliency: the gradient of the forgetting loss (gradient ascent, −CE on Df) at
   the original weights; the mask keeps the `mask_fraction` of all weights with the
   largest |gradient| (one hard threshold over the whole network, paper Eq. 3).
2. Random-label fine-tuning restricted to the mask: forget samples get a random label
   other than their own (redrawn every epoch; the official `RL.py` draws uniformly over
   all classes, so about 1/C keep their true label — docs/departures.md), are shuffled together with the retain set
   (the official CIFAR-100 branch of `RL.py`; its CIFAR-10 branch runs the two sets one
   after the other), and only masked weights move.

Masking gradients alone is not enough with SGD: weight decay and momentum would still
move unmasked weights, so after every step those coordinates are put back to their
original values and their momentum is cleared (the official `RL.py` does the same).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from datasets.base import ImageData, concat_data, with_targets
from ssd.methods.common import generator_for, model_device, train_epochs, wrong_labels
from ssd.methods.registry import MethodConfig, register_method
from ssd.splits import Splits

Mask = dict[str, torch.Tensor]


@dataclass
class SalUnConfig(MethodConfig):
    """Official OPTML-Group/Unlearn-Saliency classification settings: README's SalUn
    command (`--unlearn RL --unlearn_epochs 10 --unlearn_lr 0.1`, mask `hard_0.5`) and
    `arg_parser.py` defaults (batch 256, momentum 0.9, wd 5e-4; `impl.py` builds SGD
    and its lr milestones 91,136 never fire within 10 epochs)."""

    epochs: int = 10  # --unlearn_epochs 10
    lr: float = 0.1  # --unlearn_lr 0.1 (README SalUn command)
    momentum: float = 0.9  # arg_parser --momentum
    weight_decay: float = 5e-4  # arg_parser --weight_decay
    batch_size: int = 256  # arg_parser --batch_size
    mask_fraction: float = 0.5  # paper's default sparsity: top 50 % most salient weights


def saliency_mask(model: nn.Module, forget: ImageData, fraction: float, batch_size: int) -> Mask:
    """Boolean mask per parameter: True for the `fraction` of weights with the largest
    |∇θ (−CE on Df)|, summed over forget batches at the (unchanged) original weights."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"mask_fraction must be in (0, 1], got {fraction}")
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    grads = {n: torch.zeros_like(p) for n, p in params.items()}
    was_training = model.training
    model.eval()
    for x, y in forget.to(model_device(model)).batches(batch_size):
        loss = -F.cross_entropy(model(x), y)
        step = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
        for n, g in zip(params, step, strict=True):
            if g is not None:
                grads[n] += g
    model.train(was_training)
    # Largest |g| first, as paper Eq. 3 (m = 1[|g| ≥ γ]) and the public generate_mask.py
    # (it ranks −|g| ascending, i.e. |g| descending).
    flat = torch.cat([g.abs().flatten() for g in grads.values()])
    k = int(round(fraction * flat.numel()))
    keep = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    keep[torch.argsort(flat, descending=True, stable=True)[:k]] = True
    mask, start = {}, 0
    for n, g in grads.items():
        mask[n] = keep[start : start + g.numel()].view_as(g)
        start += g.numel()
    return mask


def masked_updates(model: nn.Module, mask: Mask, optimizer: torch.optim.Optimizer) -> Callable[[], None]:
    """Zero unmasked gradients and pin unmasked weights after each step; returns an undo."""
    params = dict(model.named_parameters())
    frozen = {n: params[n].detach().clone() for n in mask}
    handles = [params[n].register_hook(lambda g, m=m: g * m) for n, m in mask.items()]

    def restore(opt: torch.optim.Optimizer, args: object, kwargs: object) -> None:
        with torch.no_grad():
            for n, m in mask.items():
                p = params[n]
                p.copy_(torch.where(m, p, frozen[n]))
                buf = opt.state.get(p, {}).get("momentum_buffer")
                if buf is not None:
                    buf.mul_(m)

    handles.append(optimizer.register_step_post_hook(restore))

    def undo() -> None:
        for h in handles:
            h.remove()

    return undo


@register_method("salun", SalUnConfig)
def salun(model: nn.Module, splits: Splits, cfg: SalUnConfig) -> nn.Module:
    """Saliency-masked random-label fine-tuning on Df (relabelled) ∪ Dr."""
    device = model_device(model)
    forget, retain = splits.forget.to(device), splits.retain.to(device)
    mask = saliency_mask(model, forget, cfg.mask_fraction, cfg.batch_size)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    gen = generator_for(cfg, device=device)
    undo = masked_updates(model, mask, opt)
    try:
        for epoch in range(cfg.epochs):
            relabelled = with_targets(forget, wrong_labels(forget.targets, splits.num_classes, gen))
            train_epochs(model, concat_data(relabelled, retain), epochs=1, optimizer=opt,
                         batch_size=cfg.batch_size, generator=gen, progress=cfg.progress,
                         desc=f"salun {epoch + 1}/{cfg.epochs}")
    finally:
        undo()
    return model.eval()
