"""JiT, "Just in Time" zero-shot unlearning (Foster, Fogarty, Schoepf, Öztireli &
Brintrup 2024, "Zero-Shot Machine Unlearning at Scale via Lipschitz Regularization").

Zero-shot: only the model and the forget set are used — never the retain set nor D.
For every forget sample x, draw N noisy copies x' = clip(x + δ), δ ~ N(0, σ²), and take
one SGD step per batch on the local Lipschitz estimate

    loss = (1/N) Σ_n Σ_{x in batch} ‖f(x) − f(x'_n)‖₂ / ‖x − x'_n‖₂

which smooths the output around forget samples (forgetting them) while barely touching
the rest of the function. As in the official `lipschitz.py::modify_weight`, f(x') is
computed without gradient (only the clean branch is differentiated), noise is added to
the normalised input and clipped to the batch's min/max, and the loss sums over the batch.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

from datasets.base import on_device
from ssd.methods.common import generator_for, model_device
from ssd.methods.registry import MethodConfig, register_method
from ssd.splits import Splits

# (σ, η) per task in the official code (jwf40/Information-Theoretic-Unlearning,
# src/forget_full_class_main.py, forget_subclass_main.py, forget_random_main.py:
# `lipschitz_weighting`, `learning_rate`): the `VGG16` branch for CNNs, the `ViT` branch for ViT.
TASK_SIGMA = {"full_class": 0.5, "sub_class": 0.01, "random": 0.01}
CNN_LR = 3e-4  # learning_rate = 0.0003 in every task
VIT_SETTINGS = {"full_class": (0.8, 1.5), "sub_class": (1.5, 0.5), "random": (0.5, 0.1)}


def reference_values(net: str | None, task: str) -> tuple[float, float]:
    """(σ, η) of the official JiT runs for this model and task (ViT's own values for "ViT")."""
    return VIT_SETTINGS[task] if net == "ViT" else (TASK_SIGMA[task], CNN_LR)


@dataclass
class JiTConfig(MethodConfig):
    """Official JiT settings: σ and η per model and task (`reference_values`: VGG's for CNNs,
    ViT's for ViT), `n_samples = 25`, `n_epochs = 1`, forget loader batch 128 (`-b` default;
    64 in their sub-class main: `protocol="authors"`), plain SGD
    (`torch.optim.SGD(model.parameters(), lr=learning_rate)`)."""

    lr: float | None = None  # η; None: the reference value for the model and task (CNN 3e-4)
    sigma: float | None = None  # σ of the input noise; None: the reference value (CNN: TASK_SIGMA)
    n_samples: int = 25  # N perturbations per forget sample ("n_samples": 25)
    epochs: int = 1  # one pass over Df ("n_epochs": 1)
    batch_size: int = 128  # forget_train_dl batch size


def lipschitz_loss(model: nn.Module, x: torch.Tensor, sigma: float, n_samples: int,
                   generator: torch.Generator) -> torch.Tensor:
    """Mean over N perturbations of Σ_batch ‖f(x) − f(x')‖ / ‖x − x'‖ (f(x') without grad).

    Noise is drawn on the generator's device (the data's: no copy per batch); ‖x − x'‖ is
    floored at float eps so a perturbation erased by clipping cannot divide by zero.
    """
    out = model(x)
    lo, hi = x.min(), x.max()
    loss = out.new_zeros(())
    for _ in range(n_samples):
        noise = on_device(torch.randn(x.shape, generator=generator, device=generator.device), x.device)
        x2 = torch.clamp(x + sigma * noise, min=lo, max=hi)
        with torch.no_grad():
            out2 = model(x2)
        in_norm = torch.linalg.vector_norm((x - x2).flatten(1), dim=1).clamp_min(torch.finfo(x.dtype).eps)
        out_norm = torch.linalg.vector_norm(out - out2, dim=1)
        loss = loss + (out_norm / in_norm).sum()
    return loss / n_samples


@register_method("jit", JiTConfig)
def jit(model: nn.Module, splits: Splits, cfg: JiTConfig) -> nn.Module:
    """Zero-shot Lipschitz smoothing around each forget sample (reads only `splits.forget`).

    The model runs in eval mode: batch-norm statistics stay those of the original training
    data instead of drifting toward noisy forget samples (the official script leaves the
    module in whatever mode it was loaded in).
    """
    ref_sigma, ref_lr = reference_values(splits.context.get("net"), splits.task)
    sigma = cfg.sigma if cfg.sigma is not None else ref_sigma
    forget = splits.forget.to(model_device(model))
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr if cfg.lr is not None else ref_lr)
    gen = generator_for(cfg, device=forget.device)
    model.eval()
    for epoch in range(cfg.epochs):
        batches = forget.batches(cfg.batch_size)  # the official forget loader does not shuffle
        for x, _ in tqdm(batches, total=forget.num_batches(cfg.batch_size), desc=f"jit {epoch + 1}/{cfg.epochs}",
                         leave=False, disable=not cfg.progress, file=sys.stderr):
            loss = lipschitz_loss(model, x, sigma, cfg.n_samples, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model.eval()
