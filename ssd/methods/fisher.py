"""Fisher forgetting (Golatkar, Achille & Soatto, CVPR 2020, "Eternal Sunshine of the Spotless Net").

Weights the retain data pins down (large Fisher information) get little noise, weights
it does not care about get much, so information specific to Df is destroyed while Dr's
loss barely moves: w ← w + √(α·F_r⁻¹)·ε, with F_r the diagonal Fisher over Dr.

Matched to the SSD authors' `forget_*_strategies.py::FisherForgetting` (`hessian` and
`get_mean_var`, from AdityaGolatkar/SelectiveForgetting):
* F_r = (1/N) Σ_x Σ_y p(y|x) (∇_w CE(f(x), y))² — the *true* Fisher: every class y is
  weighted by the model's own probability, not only the label; model in eval mode.
  Here per-sample gradients come from `torch.func` (vmap of grad, chunked) instead of
  N·C batch-size-1 backward passes; the sum is the same.
* var = α · clamp(1 / (F + 1e-8), max=1e3); for "head" parameters (first dimension equal
  to the number of classes — the authors' test) the clamp is 1e2 instead.
* for parameters with ≥ 2 dims, var is averaged over dim 1 (one variance per output
  unit and kernel position), then broadcast back.
* full class only: the head's forget-class row gets mean 0 and variance 1e-4, and the
  head's variance is ×10; 1-D parameters not in the head (the authors' "BatchNorm"
  comment, but every bias is 1-D) ×10. Sub-class and random: only 1-D parameters ×10,
  no row handling (their sub-class/random files drop those lines).
* α = 1e-6 (the value passed in all three files; the function default 3e-6 is unused).
Noise is drawn from a generator on the model's device seeded with `cfg.seed` (on the CPU: as before).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap
from tqdm import tqdm

from datasets.base import ImageData, on_device
from ssd.methods.common import generator_for, model_device
from ssd.methods.registry import MethodConfig, register_method
from ssd.splits import Splits
from ssd.utils import synchronize


@dataclass
class FisherConfig(MethodConfig):
    """Defaults from the SSD authors' `FisherForgetting` (see the module docstring).
    `batch_size` (inherited) is unused; `chunk_size` bounds the per-sample gradients held at once."""

    alpha: float = 1e-6  # alpha = 1e-6: scales the inverse-Fisher variance
    eps: float = 1e-8  # 1.0 / (p.grad2_acc + 1e-8)
    max_var: float = 1e3  # var.clamp(max=1e3)
    max_head_var: float = 1e2  # if p.size(0) == num_classes: var.clamp(max=1e2)
    forget_row_var: float = 1e-4  # full class: var[forget_class] = 0.0001 (mu[forget_class] = 0)
    head_var_scale: float = 10.0  # full class: "Last layer" var *= 10
    one_dim_var_scale: float = 10.0  # "BatchNorm" (every 1-D parameter) var *= 10
    chunk_size: int = 32  # samples per vmap call (ours: memory ≈ chunk · n_params · 4 bytes)
    max_samples: int | None = None  # None: all of Dr, as the authors; else a seeded subset


def fisher_cost(n_samples: int, n_classes: int, n_params: int, chunk_size: int) -> str:
    """What the exact Fisher will cost, said before it runs: N × C per-sample gradients (one
    backward per sample and class, as the authors' loop), each as large as the model, and the
    gradients one vmapped chunk holds at once (activations come on top)."""
    grads = n_samples * n_classes
    chunk_gib = min(chunk_size, max(n_samples, 1)) * n_params * 4 / 2**30
    return (f"[fisher] {n_samples:,} samples × {n_classes} classes = {grads:,} per-sample gradients of "
            f"{n_params:,} parameters; a chunk of {chunk_size} holds ≈ {chunk_gib:.2f} GiB of gradients")


def fisher_diagonal(
    model: nn.Module, data: ImageData, *, chunk_size: int = 32, progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict[str, torch.Tensor]:
    """Diagonal true Fisher (1/N) Σ_x Σ_y p(y|x) g_y(x)², keyed by parameter name.

    The model is evaluated in eval mode (as the authors' `hessian`) and left in eval mode.
    `log` (default: stderr) gets its cost before any gradient is taken (:func:`fisher_cost`)
    and, after its second chunk-class step (the first carries one-off costs), the estimated
    time of the whole pass.
    """
    say = log or (lambda line: print(line, file=sys.stderr))
    model.eval()
    device = model_device(model)
    params = {n: p.detach() for n, p in model.named_parameters()}
    buffers = {n: b.detach() for n, b in model.named_buffers()}
    steps = None  # chunk-class steps of the whole pass, known after the first chunk's forward
    done = 0

    def sample_loss(p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(functional_call(model, (p, buffers), (x.unsqueeze(0),)), y.unsqueeze(0))

    per_sample_grad = vmap(grad(sample_loss), in_dims=(None, 0, 0))
    fisher = {n: torch.zeros_like(p) for n, p in params.items()}
    batches = data.batches(chunk_size, device=device)
    for x, _ in tqdm(batches, total=data.num_batches(chunk_size), desc="fisher", leave=False,
                     disable=not progress, file=sys.stderr):
        with torch.no_grad():
            prob = F.softmax(model(x), dim=1)
        if steps is None:  # before any gradient: what the pass will cost
            say(fisher_cost(len(data), prob.shape[1], sum(p.numel() for p in params.values()), chunk_size))
            steps = data.num_batches(chunk_size) * prob.shape[1]
        for c in range(prob.shape[1]):
            timed_step = done == 1  # the second step: the first carries one-off tracing and allocation
            if timed_step:
                synchronize(device)
                t0 = time.perf_counter()
            grads = per_sample_grad(params, x, torch.full((len(x),), c, device=device, dtype=torch.long))
            weight = prob[:, c]
            for n, g in grads.items():
                fisher[n] += torch.einsum("b,b...->...", weight, g.pow(2))
            done += 1
            if timed_step:
                synchronize(device)
                step_s = time.perf_counter() - t0
                say(f"[fisher] one chunk-class step took {step_s:.3f} s: the whole pass ≈ {step_s * steps:,.0f} s "
                    f"({steps:,} steps)")
    for f in fisher.values():
        f /= max(len(data), 1)
    return fisher


def noise_variance(
    param: torch.Tensor, fisher: torch.Tensor, splits: Splits, cfg: FisherConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, variance) of the Gaussian a parameter is resampled from (the authors' `get_mean_var`)."""
    head = param.dim() >= 1 and param.shape[0] == splits.num_classes
    var = (1.0 / (fisher + cfg.eps)).clamp(max=cfg.max_var)
    if head:
        var = var.clamp(max=cfg.max_head_var)
    var = cfg.alpha * var
    if param.dim() > 1:
        var = var.mean(dim=1, keepdim=True).expand_as(param).clone()
    mu = param.detach().clone()
    class_rows = splits.task == "full_class" and head and splits.forget_class is not None
    if class_rows:
        mu[splits.forget_class] = 0
        var[splits.forget_class] = cfg.forget_row_var
        var *= cfg.head_var_scale
    elif param.dim() == 1:
        var *= cfg.one_dim_var_scale
    return mu, var


@register_method("fisher", FisherConfig)
def fisher(model: nn.Module, splits: Splits, cfg: FisherConfig) -> nn.Module:
    """Resample each weight around its value with variance ∝ inverse retain Fisher."""
    gen = generator_for(cfg, device=model_device(model))
    retain = splits.retain
    if cfg.max_samples is not None and cfg.max_samples < len(retain):
        print(f"[fisher] the Fisher diagonal over {cfg.max_samples:,} seeded retain samples of {len(retain):,} "
              "(max_samples)", file=sys.stderr)
        pick = torch.randperm(len(retain), generator=gen, device=gen.device)[: cfg.max_samples]
        retain = retain.subset(pick.sort().values)
    diag = fisher_diagonal(model, retain.to(model_device(model)), chunk_size=cfg.chunk_size,
                           progress=cfg.progress)
    with torch.no_grad():
        for name, p in model.named_parameters():
            mu, var = noise_variance(p, diag[name], splits, cfg)
            eps = on_device(torch.randn(p.shape, generator=gen, device=gen.device), p.device).to(p.dtype)
            p.copy_(mu + var.sqrt() * eps)
    return model.eval()
