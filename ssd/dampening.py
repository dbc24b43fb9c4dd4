"""SSD's selection and dampening step, and the parameter filters that restrict it.

Every parameter element with imp_Df > α·imp_D is multiplied by
min((λ·imp_D / imp_Df)^exponent, bound); every other element, and every buffer, is left
bit-for-bit as it was. This is the authors' `modify_weight`, vectorised per tensor.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

NameFilter = Callable[[str], bool]

# Normalisation layers `exclude_norm` leaves alone (HF's ViT uses nn.LayerNorm too).
NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
)
if hasattr(nn, "RMSNorm"):
    NORM_TYPES = (*NORM_TYPES, nn.RMSNorm)


@dataclass
class DampenStats:
    """What one dampening did: selected elements per parameter tensor and overall.

    Plain fields only, so `dataclasses.asdict` gives JSON. `mode`, `reference` and
    `order` record how the importances were made (filled in by `ssd_unlearn`).
    """

    alpha: float
    lam: float
    exponent: float
    bound: float
    selected: dict[str, int] = field(default_factory=dict)
    total_selected: int = 0
    total_considered: int = 0  # elements the filter let through
    total_params: int = 0  # all parameter elements of the model
    skipped: list[str] = field(default_factory=list)  # parameter names the filter excluded
    mode: str | None = None
    reference: str | None = None
    order: str | None = None
    batch_size: int | None = None
    seed: int | None = None
    cache_hit: bool | None = None  # whether D's importances came from the cache
    protocol: str | None = None  # "ours" | "authors" (ssd/methods/protocol.py)
    task: str | None = None  # the task whose paper order was used
    d_importance_s: float | None = None  # seconds D's importances took when they were computed
    cache_io_s: float | None = None  # seconds of importance-cache I/O and hashing, left out of MethodTime
    alpha_select: dict | None = None  # how α was chosen when it was "auto"/"search" (ssd/methods/alpha_select.py)
    ratios: dict | None = None  # the imp_Df / imp_D distribution α cut (`ratio_summary`; set by ssd_unlearn)

    @property
    def fraction_selected(self) -> float:
        return self.total_selected / self.total_considered if self.total_considered else 0.0


def norm_param_names(model: nn.Module) -> set[str]:
    """Names of the parameters owned directly by normalisation layers."""
    names: set[str] = set()
    for mod_name, mod in model.named_modules():
        if isinstance(mod, NORM_TYPES):
            prefix = f"{mod_name}." if mod_name else ""
            names.update(prefix + n for n, _ in mod.named_parameters(recurse=False))
    return names


def make_param_filter(
    model: nn.Module, params: str | None = None, exclude_norm: bool = False
) -> NameFilter | None:
    """A name filter from a regex (`re.search` on the parameter name) and/or `exclude_norm`.

    None means "every parameter" (so callers can skip the per-name check).
    """
    if params is None and not exclude_norm:
        return None
    pattern = re.compile(params) if params is not None else None
    excluded = norm_param_names(model) if exclude_norm else set()

    def keep(name: str) -> bool:
        if name in excluded:
            return False
        return pattern is None or pattern.search(name) is not None

    return keep


def snapshot_weights(model: nn.Module) -> Callable[[], None]:
    """Copy `model`'s parameters now; the function returned copies them back in place (the
    same tensors, so optimisers and references stay valid). Buffers are not copied: dampening
    never touches them."""
    params = dict(model.named_parameters())
    original = {n: p.detach().clone() for n, p in params.items()}

    @torch.no_grad()
    def restore() -> None:
        for n, p in params.items():
            p.copy_(original[n])

    return restore


def _as_filter(param_filter: NameFilter | str | None) -> NameFilter | None:
    if isinstance(param_filter, str):
        pattern = re.compile(param_filter)
        return lambda name: pattern.search(name) is not None
    return param_filter


@torch.no_grad()
def dampen(
    model: nn.Module,
    imp_d: dict[str, torch.Tensor],
    imp_df: dict[str, torch.Tensor],
    *,
    alpha: float = 10.0,
    lam: float = 1.0,
    exponent: float = 1.0,
    bound: float = 1.0,
    param_filter: NameFilter | str | None = None,
) -> DampenStats:
    """Dampen `model`'s parameters in place; return what was selected.

    `param_filter` is a callable on parameter names or a regex; parameters it rejects
    are untouched. α = ∞ selects nothing (the limit of the rule, also where imp_D = 0).
    The factor is computed in float32 and applied in the parameter's own dtype; elements
    not selected are multiplied by exactly 1, which leaves them bit-identical.
    """
    if alpha < 0 or lam < 0 or bound < 0:
        raise ValueError(f"alpha, lam and bound must be non-negative (got {alpha}, {lam}, {bound})")
    keep = _as_filter(param_filter)
    stats = DampenStats(alpha=float(alpha), lam=float(lam), exponent=float(exponent), bound=float(bound))
    names: list[str] = []
    counts: list[torch.Tensor] = []
    for name, p in model.named_parameters():
        stats.total_params += p.numel()
        if keep is not None and not keep(name):
            stats.skipped.append(name)
            continue
        stats.total_considered += p.numel()
        if math.isinf(alpha):
            stats.selected[name] = 0
            continue
        d = imp_d[name].to(device=p.device, dtype=torch.float32)
        f = imp_df[name].to(device=p.device, dtype=torch.float32)
        if d.shape != p.shape or f.shape != p.shape:
            raise ValueError(f"importance of {name} has shape {tuple(d.shape)}/{tuple(f.shape)}, "
                             f"parameter has {tuple(p.shape)}")
        mask = f > d * alpha
        factor = (d * lam).div_(f)
        if exponent != 1.0:
            factor.pow_(exponent)
        factor.clamp_(max=bound)
        factor = torch.where(mask, factor, torch.ones((), dtype=factor.dtype, device=factor.device))
        p.mul_(factor.to(p.dtype))
        names.append(name)
        counts.append(mask.sum())
    if counts:  # one device sync for all counts
        for name, c in zip(names, torch.stack(counts).tolist(), strict=True):
            stats.selected[name] = int(c)
    stats.total_selected = sum(stats.selected.values())
    return stats


# The distribution α cuts, recorded with every SSD run (DampenStats.ratios): percentiles of
# imp_Df / imp_D and the share of elements each α on a log grid (4 points a decade) would select.
RATIO_PERCENTILES = (50.0, 90.0, 99.0, 99.9, 99.99)
RATIO_ALPHAS = tuple(float(f"{10 ** (k / 4):.4g}") for k in range(-4, 13))  # 0.1 … 1000


@torch.no_grad()
def ratio_summary(imp_d: dict[str, torch.Tensor], imp_df: dict[str, torch.Tensor],
                  keep: NameFilter | None = None) -> dict:
    """What α cuts: the element-wise imp_Df / imp_D over the kept parameters.

    `share_above[α]` is the share of kept elements that `dampen` selects at that α (imp_Df >
    α·imp_D): finite ratios above α plus the elements with imp_D = 0 < imp_Df (selected at
    every α). `percentiles` are over the finite ratios (0/0 and x/0 left out, as ASSD's rule).
    """
    parts: list[torch.Tensor] = []
    total = above_all = 0
    for name, d in imp_d.items():
        if keep is not None and not keep(name):
            continue
        d = d.detach().float().flatten()
        f = imp_df[name].detach().float().flatten().to(d.device)
        total += d.numel()
        zero = d == 0
        above_all += int((zero & (f > 0)).sum())
        parts.append((f[~zero] / d[~zero]).cpu())
    r = torch.cat(parts).sort().values if parts else torch.empty(0)
    n = r.numel()

    def pct(q: float) -> float | None:
        if n == 0:
            return None
        rank = q / 100.0 * (n - 1)
        lo, hi = math.floor(rank), math.ceil(rank)
        return float(r[lo] + (r[hi] - r[lo]) * (rank - lo))

    def share(alpha: float) -> float:
        over = n - int(torch.searchsorted(r, torch.tensor(alpha, dtype=r.dtype), right=True)) if n else 0
        return (over + above_all) / total if total else 0.0

    return {"elements": total, "finite": n, "zero_d_positive_df": above_all,
            "percentiles": {f"{q:g}": pct(q) for q in RATIO_PERCENTILES},
            "share_above": {f"{a:g}": share(a) for a in RATIO_ALPHAS}}
