"""Tilted ReWeighting (TRW; Ebrahimpour-Boroojeny, Wang & Sundaram, arXiv 2506.20893).

Class unlearning by fine-tuning towards the distribution a model retrained without the class
would give the class's images: for a forget-class input x the target is the original model's
own distribution with the forgotten class zeroed and the remaining classes tilted towards the
ones most similar to the forgotten class,

    q(c | x) ∝ p(c | x) · exp(β · s_c)   for c ≠ f,   q(f | x) = 0,

where s is a softmax (temperature τ) over the cosine similarities between the forgotten class's
row of the output layer and the other rows, after centring them (a PCA that keeps every
component is a rotation, so the cosine of centred rows is the cosine in PCA space). Retain
inputs keep their labels. One epoch is one shuffled pass over D = Dr ∪ Df with soft targets.
What is the paper's and what is ours: docs/departures.md ("TRW").
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from datasets.base import concat_data
from ssd.errors import UserError
from ssd.methods.common import generator_for, model_device
from ssd.methods.dampening_baselines import output_layer
from ssd.methods.registry import MethodConfig, register_method
from ssd.metrics import predict_logits
from ssd.splits import Splits


@dataclass
class TRWConfig(MethodConfig):
    """beta: the tilt (the paper's β = 10); temperature: softmax temperature over the class
    similarities; epochs / lr / momentum / weight_decay: the fine-tuning (SGD), the harness's
    fine-tuning defaults (the paper's own schedule was not readable here: docs/departures.md)."""

    beta: float = 10.0
    temperature: float = 0.1
    epochs: int = 5
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 5e-4


def class_similarity(weight: torch.Tensor, forget_class: int, temperature: float) -> torch.Tensor:
    """s over the classes (s_f = 0): softmax over c ≠ f of cos(w_f, w_c) / τ on centred rows."""
    rows = weight.detach().double()
    rows = rows - rows.mean(dim=0, keepdim=True)
    cos = F.cosine_similarity(rows[forget_class].unsqueeze(0), rows, dim=1)
    cos[forget_class] = -torch.inf
    return torch.softmax(cos / temperature, dim=0)


def tilted_targets(probs: torch.Tensor, similarity: torch.Tensor, forget_class: int, beta: float) -> torch.Tensor:
    """q ∝ p · exp(β s) with the forgotten class zeroed, row by row (N×C, rows sum to 1)."""
    logq = torch.log(probs.double().clamp_min(1e-300)) + beta * similarity.to(probs.device).unsqueeze(0)
    logq[:, forget_class] = -torch.inf
    return torch.softmax(logq, dim=1).to(probs.dtype)


@register_method("trw", TRWConfig, tasks=("full_class",))
def trw(model: nn.Module, splits: Splits, cfg: TRWConfig) -> nn.Module:
    """Fine-tune on D with forget-class targets tilted towards similar classes (full class only)."""
    if splits.task != "full_class" or splits.forget_class is None:
        raise UserError("trw forgets a whole class (full_class task): its target zeroes the class's output")
    f = int(splits.forget_class)
    dev = model_device(model)
    _, head = output_layer(model, splits.num_classes)
    sim = class_similarity(head.weight, f, cfg.temperature).float().to(dev)
    probs = torch.softmax(predict_logits(model, splits.forget, device=dev).to(dev), dim=1)
    forget_q = tilted_targets(probs, sim, f, cfg.beta)
    data = concat_data(splits.retain, splits.forget).to(dev)
    targets = torch.cat([F.one_hot(splits.retain.targets.to(dev), splits.num_classes).float(), forget_q])
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    gen = generator_for(cfg, device=dev)
    bs = cfg.batch_size
    model.train()
    for epoch in range(cfg.epochs):
        order = torch.randperm(len(data), generator=gen, device=dev)  # drawn where the data is
        batches = zip(range(0, len(data), bs), data.batches(bs, order=order), strict=True)
        for start, (x, _) in tqdm(batches, total=data.num_batches(bs), desc=f"trw {epoch + 1}/{cfg.epochs}",
                                  leave=False, disable=not cfg.progress, file=sys.stderr):
            q = targets[order[start: start + bs]]
            loss = -(q * F.log_softmax(model(x), dim=1)).sum(dim=1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model.eval()
