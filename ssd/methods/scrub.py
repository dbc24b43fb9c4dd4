"""SCRUB (Kurmanji et al., NeurIPS 2023, "Towards Unbounded Machine Unlearning").

The student starts as the original model and a frozen copy is the teacher. Each epoch
first (for the first `msteps` epochs only) takes "max-steps" on the forget set, pushing
the student's predictions away from the teacher's (maximising KL(teacher‖student)),
then "min-steps" on the retain set, fitting the labels while staying close to the
teacher. One SGD optimizer (and momentum buffer) is shared by both phases, as in the
official code (`thirdparty/repdistiller/helper/loops.py::train_distill`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ssd.methods.common import generator_for, model_device, train_epochs
from ssd.methods.registry import MethodConfig, register_method
from ssd.splits import Splits


@dataclass
class ScrubConfig(MethodConfig):
    """SCRUB's CIFAR-10 ("large-scale") settings from the official notebook
    meghdadk/SCRUB `large_scale_unlearning.ipynb`, cell "SCRUB Forgetting"; the loss
    weights follow `train_distill` there: min-step = γ·CE + α·KL, max-step = −KL.
    `batch_size` (inherited, 128) is the retain batch (`args.sgda_batch_size = 128`;
    the notebook's retain loader itself used 256)."""

    epochs: int = 3  # args.sgda_epochs = 3
    msteps: int = 2  # args.msteps = 2: max-steps only in epochs 1..msteps
    lr: float = 5e-4  # args.sgda_learning_rate = 0.0005
    momentum: float = 0.9  # args.sgda_momentum = 0.9
    weight_decay: float = 5e-4  # args.sgda_weight_decay = 5e-4
    lr_decay_epochs: list[int] = field(default_factory=lambda: [3, 5, 9])  # args.lr_decay_epochs
    lr_decay_rate: float = 0.1  # args.lr_decay_rate (×0.1 after each listed epoch; none fire in 3)
    kd_temperature: float = 4.0  # args.kd_T = 4 (DistillKL, scaled by T²)
    # Named for what they weigh, not args.gamma/args.alpha, so the SSD mains' `-alpha`
    # flag cannot land on SCRUB by accident.
    ce_weight: float = 0.99  # args.gamma = 0.99: weight of the retain cross-entropy
    kl_weight: float = 0.001  # args.alpha = 0.001: weight of the retain KL to the teacher
    forget_batch_size: int = 512  # the notebook's forget_loader batch_size=512


def distill_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher‖student) on temperature-softened outputs, ×T² so gradients keep their scale
    (Hinton et al.; RepDistiller's `DistillKL`, summed and divided by the batch size)."""
    log_p_s = F.log_softmax(student_logits / temperature, dim=1)
    p_t = F.softmax(teacher_logits / temperature, dim=1)
    return F.kl_div(log_p_s, p_t, reduction="batchmean") * temperature**2


def scrub_lr(cfg: ScrubConfig, epoch: int) -> float:
    """Step decay of the official `adjust_learning_rate`: epochs count from 1."""
    steps = sum(epoch > d for d in cfg.lr_decay_epochs)
    return cfg.lr * cfg.lr_decay_rate**steps


@register_method("scrub", ScrubConfig)
def scrub(model: nn.Module, splits: Splits, cfg: ScrubConfig) -> nn.Module:
    """Teacher-student unlearning: alternate KL max-steps on Df and CE+KL min-steps on Dr."""
    teacher = copy.deepcopy(model).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    T = cfg.kd_temperature

    def max_loss(student: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            t = teacher(x)
        return -distill_kl(student(x), t, T)

    def min_loss(student: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            t = teacher(x)
        s = student(x)
        return cfg.ce_weight * F.cross_entropy(s, y) + cfg.kl_weight * distill_kl(s, t, T)

    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    gen = generator_for(cfg, device=model_device(model))
    for epoch in range(1, cfg.epochs + 1):
        for group in opt.param_groups:
            group["lr"] = scrub_lr(cfg, epoch)
        if epoch <= cfg.msteps:
            train_epochs(model, splits.forget, epochs=1, optimizer=opt, batch_size=cfg.forget_batch_size,
                         generator=gen, loss_fn=max_loss, progress=cfg.progress, desc=f"scrub max {epoch}")
        train_epochs(model, splits.retain, epochs=1, optimizer=opt, batch_size=cfg.batch_size,
                     generator=gen, loss_fn=min_loss, progress=cfg.progress, desc=f"scrub min {epoch}")
    return model.eval()
