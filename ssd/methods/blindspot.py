"""Bad Teacher / "blindspot" (Chundawat et al., AAAI 2023, "Can Bad Teaching Induce Forgetting?").

The student (the model itself) is distilled from two frozen teachers at once: on forget
samples it copies an *incompetent* teacher (a randomly initialised network of the same
architecture), on retain samples the *competent* one (a frozen copy of the original).
The student thus unlearns Df towards chance-level outputs without damaging Dr.

Settings follow the SSD authors' `forget_*_strategies.py::blindspot` and
`unlearn.py::blindspot_unlearner`/`UnlearnerLoss` (themselves from
vikram2000b/bad-teaching-unlearning); the same for all three tasks.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from datasets.base import ImageData, concat_data, on_device, prepare
from ssd.methods.common import generator_for, model_device, untrained_like
from ssd.methods.registry import MethodConfig, register_method
from ssd.splits import Splits


@dataclass
class BlindspotConfig(MethodConfig):
    """Defaults from the SSD authors' `blindspot` (all tasks).

    `batch_size` 256: their `b_s = 256` (128 only for ViT, "to fit into memory").
    """

    batch_size: int = 256
    epochs: int = 1  # blindspot_unlearner(..., epochs=1)
    lr: float = 1e-4  # torch.optim.Adam(student.parameters(), lr=0.0001)
    temperature: float = 1.0  # KL_temperature = 1
    retain_fraction: float = 0.3  # random.sample(retain, int(0.3 * len(retain)))


def bad_teacher_loss(
    student_logits: torch.Tensor,
    competent_logits: torch.Tensor,
    incompetent_logits: torch.Tensor,
    is_forget: torch.Tensor,
    temperature: float = 1.0,
) -> torch.Tensor:
    """KL(teacher‖student) where the teacher is the incompetent one on forget rows.

    Why `batchmean`: it is the per-sample KL. The authors' `F.kl_div` default ("mean")
    also divides by the class count, a constant factor that Adam's scale invariance
    makes immaterial (up to its epsilon).
    """
    mask = is_forget.to(student_logits.dtype).unsqueeze(1)
    target = mask * F.softmax(incompetent_logits / temperature, dim=1) + (1 - mask) * F.softmax(
        competent_logits / temperature, dim=1
    )
    return F.kl_div(F.log_softmax(student_logits / temperature, dim=1), target, reduction="batchmean")


def flagged_batches(
    data: ImageData, is_forget: torch.Tensor, batch_size: int, generator: torch.Generator
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Shuffled `(x, is_forget)` batches: the flag travels with each row through the shuffle.

    The order and the flags are put on the data's device once; no batch copies from the host."""
    order = on_device(torch.randperm(len(data), generator=generator, device=generator.device), data.device)
    is_forget = on_device(is_forget, data.device)
    for start in range(0, len(data), batch_size):
        idx = order[start : start + batch_size]
        yield prepare(data.images[idx], data.info), is_forget[idx]


@register_method("blindspot", BlindspotConfig)
def blindspot(model: nn.Module, splits: Splits, cfg: BlindspotConfig) -> nn.Module:
    """Distil from an untrained teacher on Df and the original model on 30 % of Dr."""
    device = model_device(model)
    gen = generator_for(cfg, device=device)
    competent = copy.deepcopy(model).eval()
    incompetent = untrained_like(model, splits, seed=cfg.seed)
    for teacher in (competent, incompetent):
        for p in teacher.parameters():
            p.requires_grad_(False)

    n_keep = int(cfg.retain_fraction * len(splits.retain))
    keep = torch.randperm(len(splits.retain), generator=gen, device=gen.device)[:n_keep]
    data = concat_data(splits.forget, splits.retain.subset(keep)).to(device)
    is_forget = torch.cat([torch.ones(len(splits.forget), dtype=torch.bool), torch.zeros(n_keep, dtype=torch.bool)])

    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    model.train()  # the authors' student is a fresh, never-eval'd module: train mode
    for epoch in range(cfg.epochs):
        batches = flagged_batches(data, is_forget, cfg.batch_size, gen)
        for x, flag in tqdm(batches, total=data.num_batches(cfg.batch_size), leave=False,
                            desc=f"blindspot {epoch + 1}/{cfg.epochs}", disable=not cfg.progress,
                            file=sys.stderr):
            with torch.no_grad():
                good, bad = competent(x), incompetent(x)
            loss = bad_teacher_loss(model(x), good, bad, flag, cfg.temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model.eval()
