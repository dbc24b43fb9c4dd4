"""NTK forgetting (Golatkar, Achille & Soatto, ECCV 2020, "Forgetting Outside the Box").

Linearise the network around its weights w (the neural tangent kernel view): training
a linearised model on a set S from w would move the weights by
    Δw_S = −J_Sᵀ (J_S J_Sᵀ + |S|·λ·I)⁻¹ (p_S − y_S),
with J_S the Jacobian of the logits w.r.t. all parameters (one row per sample and
class), p_S the softmax outputs and y_S one-hot labels. The difference between training
on Dr alone and on D = Dr ∪ Df, δ = Δw_r − Δw_D, is the "scrubbing direction" that
removes Df's contribution; it is applied with a norm correction.

Matched to the SSD authors' `forget_full_class_strategies.py::NTK` (from
AdityaGolatkar/SelectiveForgetting), which runs for every task here:
* λ = weight_decay = 0.1; rows ordered sample-major, class-minor; model in eval mode;
* their `model_init` is a copy of the model itself, so the "prediction error"
  m = w − w_init − Δw_r is just −Δw_r. Their scale, |δ| + 2·sin(arccos(c) − π/2)·|m|
  for c < 0 and |δ| + 2·cos(arccos(c))·|m| otherwise (c the cosine between δ and m),
  equals |δ| + 2·|c|·|m| in both branches, which is what is computed here; then
  w += (that / |δ|)·δ, as their `p.data += direction[k] * scale`;
Simplifications (ours): Jacobians come from `torch.func` (vmap of jacrev, chunked) rather
than N·C backward passes; the retain kernel is the top-left block of the full kernel
(J_D = [J_r; J_f]) instead of a second product; the systems are solved in float64 with
`torch.linalg.solve` instead of forming explicit inverses.
The Jacobian alone is n_samples · classes · n_params floats, so the method is only for
small models and data; it refuses, before any work, what would exceed `max_memory_gib`.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, jacrev, vmap
from tqdm import tqdm

from datasets.base import ImageData
from ssd.errors import UserError
from ssd.methods.common import generator_for, model_device
from ssd.methods.registry import MethodConfig, register_method
from ssd.splits import Splits

GIB = 1024**3


@dataclass
class NTKConfig(MethodConfig):
    """`weight_decay` from the SSD authors' `NTK` (`weight_decay = 0.1`); the rest are ours.
    `batch_size` (inherited) is unused."""

    weight_decay: float = 0.1  # λ: kernel ridge |S|·λ·I (authors: weight_decay = 0.1)
    max_memory_gib: float = 2.0  # refuse runs whose estimate (ntk_memory_bytes) exceeds this
    max_retain: int | None = None  # None: all of Dr (authors); else a seeded random subset
    chunk_size: int = 32  # samples per vmap(jacrev) call


def ntk_memory_bytes(n_params: int, n_retain: int, n_forget: int, n_classes: int) -> int:
    """Peak bytes: the float32 Jacobian (rows × n_params) plus the rows × rows kernel, held as
    J·Jᵀ in float32, its float64 copy and the solver's float64 factorisation (≤ 3 × 8 bytes each)."""
    rows = (n_retain + n_forget) * n_classes
    return 4 * n_params * rows + 3 * 8 * rows * rows


def logit_jacobian(model: nn.Module, data: ImageData, *, chunk_size: int, progress: bool = False) -> torch.Tensor:
    """(len(data)·C) × n_params Jacobian of the logits, rows ordered (sample, class)."""
    device = model_device(model)
    params = {n: p.detach() for n, p in model.named_parameters()}
    buffers = {n: b.detach() for n, b in model.named_buffers()}

    def logits(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(model, (p, buffers), (x.unsqueeze(0),)).squeeze(0)

    per_sample = vmap(jacrev(logits), in_dims=(None, 0))
    n_params = sum(p.numel() for p in params.values())
    rows: list[torch.Tensor] = []
    for x, _ in tqdm(data.batches(chunk_size, device=device), total=data.num_batches(chunk_size),
                     desc="ntk jacobian", leave=False, disable=not progress, file=sys.stderr):
        jac = per_sample(params, x)  # name -> chunk × C × *shape
        rows.append(torch.cat([jac[n].flatten(2) for n in params], dim=2).reshape(-1, n_params))
    return torch.cat(rows)


def residuals(model: nn.Module, data: ImageData, num_classes: int) -> torch.Tensor:
    """softmax(f(x)) − onehot(y), flattened sample-major (the authors' `f0_minus_y`)."""
    device = model_device(model)
    with torch.no_grad():
        out = [F.softmax(model(x), dim=1) - F.one_hot(y, num_classes).float() for x, y in data.batches(512)]
    return torch.cat(out).flatten().to(device)


def ridge_step(jac: torch.Tensor, kernel: torch.Tensor, resid: torch.Tensor, ridge: float) -> torch.Tensor:
    """−Jᵀ (K + ridge·I)⁻¹ r: the linearised training step, solved in float64."""
    eye = torch.eye(kernel.shape[0], dtype=torch.float64, device=kernel.device)
    coef = torch.linalg.solve(kernel + ridge * eye, resid.double())
    return -(jac.T @ coef.to(jac.dtype))


@register_method("ntk", NTKConfig)
def ntk(model: nn.Module, splits: Splits, cfg: NTKConfig) -> nn.Module:
    """Move the weights along the NTK estimate of (train on Dr) − (train on D)."""
    retain = splits.retain
    if cfg.max_retain is not None and cfg.max_retain < len(retain):
        gen = generator_for(cfg, device=model_device(model))
        pick = torch.randperm(len(retain), generator=gen, device=gen.device)[: cfg.max_retain]
        retain = retain.subset(pick.sort().values)
    n_params = sum(p.numel() for p in model.parameters())
    need = ntk_memory_bytes(n_params, len(retain), len(splits.forget), splits.num_classes)
    if need > cfg.max_memory_gib * GIB:
        raise UserError(
            f"ntk would need about {need / GIB:,.1f} GiB ({n_params:,} parameters × "
            f"{len(retain) + len(splits.forget):,} samples × {splits.num_classes} classes), over the "
            f"{cfg.max_memory_gib:g} GiB limit; use a smaller model or cap the retain samples (max_retain)"
        )

    device = model_device(model)
    model.eval()
    retain, forget = retain.to(device), splits.forget.to(device)
    n_r, n_f = len(retain), len(forget)
    jac = torch.cat([logit_jacobian(model, d, chunk_size=cfg.chunk_size, progress=cfg.progress)
                     for d in (retain, forget)])
    resid = torch.cat([residuals(model, d, splits.num_classes) for d in (retain, forget)])
    kernel = (jac @ jac.T).double()
    rows_r = n_r * splits.num_classes

    w_complete = ridge_step(jac, kernel, resid, (n_r + n_f) * cfg.weight_decay)
    w_retain = ridge_step(jac[:rows_r], kernel[:rows_r, :rows_r], resid[:rows_r], n_r * cfg.weight_decay)
    del kernel
    delta = w_retain - w_complete
    delta_norm, m_norm = float(delta.norm()), float(w_retain.norm())  # m = −w_retain
    if delta_norm == 0 or not math.isfinite(delta_norm):
        return model
    cosine = float(delta @ -w_retain) / (delta_norm * m_norm) if m_norm > 0 else 0.0
    scale = (delta_norm + 2 * abs(cosine) * m_norm) / delta_norm

    with torch.no_grad():
        offset = 0
        for p in model.parameters():
            step = delta[offset : offset + p.numel()].view_as(p)
            p.add_(scale * step.to(p.dtype))
            offset += p.numel()
    return model.eval()
