"""Pieces shared by the training-based unlearning methods (no copy-paste between them)."""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from datasets.base import ImageData, device_generator, on_device
from ssd.errors import UserError
from ssd.methods.registry import MethodConfig
from ssd.splits import Splits
from ssd.utils import model_device

__all__ = ["cross_entropy", "generator_for", "model_device", "train_epochs", "untrained_like", "wrong_labels"]

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def generator_for(cfg: MethodConfig, offset: int = 0, *, device: torch.device) -> torch.Generator:
    """A generator on `device` (the model's) seeded from the method's seed: shuffles and noise are
    drawn where the data is, with no copy per batch. On the CPU it is the CPU generator of that
    seed, so CPU results are as before; a CUDA run draws other (equally seeded) numbers."""
    return device_generator(cfg.seed + offset, device)


def cross_entropy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(model(x), y)


def train_epochs(
    model: nn.Module,
    data: ImageData,
    *,
    epochs: int,
    optimizer: torch.optim.Optimizer,
    batch_size: int,
    generator: torch.Generator,
    loss_fn: LossFn = cross_entropy,
    augment: bool = False,
    progress: bool = False,
    desc: str = "unlearn",
) -> None:
    """Plain shuffled epochs of `loss_fn` on `data` (moved to the model's device first)."""
    data = data.to(model_device(model))
    model.train()
    for epoch in range(epochs):
        batches = data.batches(batch_size, shuffle=True, generator=generator, augment=augment)
        for x, y in tqdm(batches, total=data.num_batches(batch_size), desc=f"{desc} {epoch + 1}/{epochs}",
                         leave=False, disable=not progress, file=sys.stderr):
            loss = loss_fn(model, x, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    model.eval()


def wrong_labels(targets: torch.Tensor, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """A label drawn uniformly from the `num_classes - 1` classes other than each target.

    Why draw from C−1 values and skip the true one: no rejection loop, never the true label.
    """
    if num_classes < 2:
        raise ValueError("relabelling needs at least two classes")
    draw = torch.randint(0, num_classes - 1, targets.shape, generator=generator, device=generator.device)
    draw = on_device(draw, targets.device)
    return draw + (draw >= targets).long()


def untrained_like(model: nn.Module, splits: Splits, seed: int = 0) -> nn.Module:
    """A freshly initialised model of the same architecture, on the same device, in eval mode.

    Uses `splits.model_factory` when given (for ViT: the ImageNet weights with a fresh head);
    otherwise re-initialises a deep copy's layers — refused when the driver said the
    reference models are unavailable (a ViT without its ImageNet weights folder), since a
    random ViT is not what the method's reference uses.
    """
    if splits.context.get("references_unavailable"):
        raise UserError(splits.context["references_unavailable"])
    torch.manual_seed(seed)
    if splits.model_factory is not None:
        fresh = splits.model_factory()
    else:
        fresh = copy.deepcopy(model)
        for m in fresh.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()  # type: ignore[operator]
    return fresh.to(model_device(model)).eval()
