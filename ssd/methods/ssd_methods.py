"""SSD and LFSSD as registered methods, plus the Splits-free functions they are made of.

`ssd_importances` → (imp_D, imp_Df), `ssd_unlearn` = importances + `dampen`, `ssd_sweep`
= importances once, then one dampening (on a fresh copy of the weights) and one
evaluation per (α, λ) point. D's importances go through an optional
:class:`~ssd.cache.ImportanceCache`, so a second forget request on the same checkpoint
computes only Df's.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from datasets.base import ImageData
from ssd.cache import ImportanceCache, importance_key, indices_hash, model_sha256
from ssd.dampening import DampenStats, NameFilter, dampen, make_param_filter, ratio_summary, snapshot_weights
from ssd.errors import UserError
from ssd.importance import MODES, ORDERS, compute_importances, make_order, order_within, shuffled_order
from ssd.methods.alpha_select import AlphaSelectConfig, check_search, effective_reference, resolve_alpha
from ssd.methods.protocol import check_protocol
from ssd.methods.registry import register_method
from ssd.splits import Splits
from ssd.utils import model_device, timed

REFERENCES = ("full", "retain")


@dataclass
class SSDConfig(AlphaSelectConfig):
    """Selective Synaptic Dampening (Foster et al., AAAI 2024).

    alpha: selection weighting (select where imp_Df > α·imp_D), or "auto" (ASSD's
    percentile rule) or "search" (a grid scored on held-out training data; the search_*
    settings, see ssd/methods/alpha_select.py and docs/alpha.md); lam: dampening constant
    λ; exponent/bound: factor = min((λ·imp_D/imp_Df)^exponent, bound).
    mode: "batch" (the authors' estimate), "sample" (exact empirical Fisher) or "lf"
    (LFSSD). params: a regex on parameter names to restrict SSD to (None: all);
    exclude_norm: leave normalisation layers alone. reference: "full" (D = retain ∪
    forget, as the paper) or "retain" (D = retain, as the design card and ASSD's code
    read); None: "retain" for alpha="auto" (ASSD's D), else "full".
    order: "shuffled" (seeded from `seed`; the default, see docs/ssd.md) or "paper" (the
    authors' loaders' order for the task: class-sorted, fine-class-sorted or random_split's;
    `protocol="authors"` implies it). cache_dir: where D's importances are cached (None:
    no cache). chunk_size: samples per vmapped chunk in sample mode. batch_size: 64, the
    authors' class-task loaders' (their random task uses 128: `protocol="authors"`).
    """

    batch_size: int = 64
    alpha: float | str = 10.0
    lam: float = 1.0
    exponent: float = 1.0
    bound: float = 1.0
    mode: str = "batch"
    params: str | None = None
    exclude_norm: bool = False
    reference: str | None = None
    order: str = "shuffled"
    cache_dir: str | None = None
    chunk_size: int = 64

    def __post_init__(self) -> None:
        super().__post_init__()
        check_config(self)  # the choices and the search grid too, when the config is made: before any work


def effective_order(cfg: SSDConfig) -> str:
    """The order that runs: the authors' protocol always uses their loaders' ("paper") order."""
    return "paper" if cfg.protocol == "authors" else cfg.order


def check_config(cfg: SSDConfig) -> None:
    """One-line UserErrors for settings outside their choices. Types, signs and finiteness (α, λ,
    bound, batch and chunk sizes) are refused earlier, when the config is made
    (`MethodConfig.__post_init__`, ssd/methods/registry.py); tests/test_ssd_checks.py."""
    check_protocol(cfg.protocol)
    for name, value, choices in (("mode", cfg.mode, MODES), ("order", cfg.order, ORDERS),
                                 ("reference", effective_reference(cfg), REFERENCES)):
        if value not in choices:
            raise UserError(f"SSD {name} must be one of {', '.join(choices)}; got {value!r}")
    check_search(cfg)


@dataclass(frozen=True)
class ImportanceInfo:
    """How `ssd_importances` made its importances: the parameter filter they were computed for
    (dampening must use the same), whether D's came from the cache, and the seconds D's took
    when they were computed (read from the cache entry on a hit; None for an entry written
    before this was recorded)."""

    keep: NameFilter | None
    cache_hit: bool
    d_importance_s: float | None
    cache_io_s: float = 0.0  # seconds of cache keying, reading, checking and writing (not the method's time)


def ssd_importances(
    model: nn.Module,
    d_data: ImageData,
    df_data: ImageData,
    cfg: SSDConfig,
    cache: ImportanceCache | None = None,
    *,
    checkpoint_sha256: str | None = None,
    task: str = "full_class",
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], ImportanceInfo]:
    """(imp_D, imp_Df, :class:`ImportanceInfo`), in `cfg`'s mode and order.

    Paper order (`order="paper"` or `protocol="authors"`): D as the authors' loader for
    `task` visits it (:func:`ssd.importance.paper_order`), Df in the order its rows appear
    there (their forget loader and D's forget part are one list). Shuffled: seeded
    permutations of each.
    """
    check_config(cfg)
    device = model_device(model)
    keep = make_param_filter(model, cfg.params, cfg.exclude_norm)  # the one filter: dampening uses info.keep
    order = effective_order(cfg)
    d_order = make_order(order, d_data, cfg.seed, forget=df_data, task=task)
    df_order = order_within(d_order, d_data, df_data) if order == "paper" else shuffled_order(len(df_data), cfg.seed)
    if order == "paper" and len(df_order) != len(df_data):  # Df not inside D (reference="retain")
        df_order = None

    def importances(data: ImageData, order: torch.Tensor | None) -> dict[str, torch.Tensor]:
        return compute_importances(model, data, mode=cfg.mode, batch_size=cfg.batch_size, order_indices=order,
                                   device=device, chunk_size=cfg.chunk_size, only=keep)

    def d_importances() -> dict[str, torch.Tensor]:
        return importances(d_data, d_order)

    if cache is None:
        imp_d, d_s = timed(d_importances, device)
        hit = False
        io_s = 0.0
    else:
        io_before, t0 = cache.io_s, time.perf_counter()
        names = [n for n, _ in model.named_parameters()]
        key, fields = importance_key(
            checkpoint_sha256=checkpoint_sha256 or model_sha256(model), dataset=d_data.info.name,
            split=indices_hash(d_data, d_order), mode=cfg.mode,
            batch_size=1 if cfg.mode == "sample" else cfg.batch_size,  # sample mode does not depend on it
            order=order, seed=cfg.seed, params=None if keep is None else [n for n in names if keep(n)],
        )
        expect = {n: p.shape for n, p in model.named_parameters()}
        keying_s = time.perf_counter() - t0  # hashing D's order (and the weights when no checkpoint hash is given)
        # the entry stores D's compute seconds (`compute_s`): a later hit reports them
        imp_d, hit, entry = cache.get_or_compute(key, {**fields, "n": len(d_data)}, expect, d_importances,
                                                 device=device)
        d_s = entry.get("compute_s")
        io_s = keying_s + cache.io_s - io_before
    imp_df = importances(df_data, df_order)
    return imp_d, imp_df, ImportanceInfo(keep=keep, cache_hit=hit, d_importance_s=d_s, cache_io_s=io_s)


def _record(stats: DampenStats, cfg: SSDConfig, info: ImportanceInfo, task: str) -> DampenStats:
    stats.mode, stats.reference, stats.order = cfg.mode, effective_reference(cfg), effective_order(cfg)
    stats.batch_size, stats.seed, stats.cache_hit = cfg.batch_size, cfg.seed, info.cache_hit
    stats.protocol, stats.task = cfg.protocol, task
    stats.d_importance_s = info.d_importance_s
    stats.cache_io_s = info.cache_io_s
    return stats


def ssd_unlearn(
    model: nn.Module,
    d_data: ImageData,
    df_data: ImageData,
    cfg: SSDConfig,
    cache: ImportanceCache | None = None,
    *,
    checkpoint_sha256: str | None = None,
    task: str = "full_class",
    splits: Splits | None = None,
) -> DampenStats:
    """SSD in place on `model`: importances on D (`d_data`) and Df, then dampening.

    `d_data` is whichever reference set the caller chose (the registered method picks
    it from `cfg.reference`); both sets must be on the model's device or movable there.
    `task` picks the authors' order when it is used. α "auto"/"search" is resolved from
    the importances (search also needs `splits`).
    """
    imp_d, imp_df, info = ssd_importances(model, d_data, df_data, cfg, cache, checkpoint_sha256=checkpoint_sha256,
                                          task=task)
    n_all = len(d_data) + (len(df_data) if effective_reference(cfg) == "retain" else 0)
    alpha, lam, choice = resolve_alpha(model, cfg, imp_d, imp_df, info.keep, len(df_data), n_all, splits)
    stats = dampen(model, imp_d, imp_df, alpha=alpha, lam=lam, exponent=cfg.exponent, bound=cfg.bound,
                   param_filter=info.keep)
    stats.alpha_select = choice
    stats.ratios = ratio_summary(imp_d, imp_df, info.keep)
    return _record(stats, cfg, info, task)


def ssd_sweep(
    model: nn.Module,
    d_data: ImageData,
    df_data: ImageData,
    cfg: SSDConfig,
    alphas: Sequence[float],
    lambdas: Sequence[float],
    evaluate: Callable[[nn.Module], dict[str, Any]],
    cache: ImportanceCache | None = None,
    *,
    checkpoint_sha256: str | None = None,
    task: str = "full_class",
) -> list[dict[str, Any]]:
    """One row per (λ, α): its settings, selected count, stats and `evaluate(model)`'s dict.

    Importances are computed once; each point restores the original weights and dampens
    them. The model holds its original weights again when this returns.
    """
    imp_d, imp_df, info = ssd_importances(model, d_data, df_data, cfg, cache, checkpoint_sha256=checkpoint_sha256,
                                          task=task)
    restore = snapshot_weights(model)
    rows: list[dict[str, Any]] = []
    try:
        for lam in lambdas:
            for alpha in alphas:
                restore()
                stats = _record(dampen(model, imp_d, imp_df, alpha=alpha, lam=lam, exponent=cfg.exponent,
                                       bound=cfg.bound, param_filter=info.keep), cfg, info, task)
                rows.append({"alpha": float(alpha), "lam": float(lam), "selected": stats.total_selected,
                             "stats": dataclasses.asdict(stats), **evaluate(model)})
    finally:
        restore()
    return rows


def reference_data(splits: Splits, reference: str) -> ImageData:
    """D for SSD: the whole training set (paper) or the retain set only."""
    if reference == "full":
        return splits.train
    if reference == "retain":
        return splits.retain
    raise UserError(f"SSD reference must be one of {', '.join(REFERENCES)}; got {reference!r}")


def importance_cache(cfg: SSDConfig, driver_cache_dir: str | Path | None) -> ImportanceCache | None:
    """Where D's importances are cached: `cfg.cache_dir` if set, else the experiment driver's
    cache folder + `importances/` (runs and sweeps share it), else nowhere."""
    if cfg.cache_dir:
        return ImportanceCache(cfg.cache_dir)
    return ImportanceCache(Path(driver_cache_dir) / "importances") if driver_cache_dir else None


def run_ssd(model: nn.Module, splits: Splits, cfg: SSDConfig) -> nn.Module:
    """The registered methods' body; the stats land in `splits.context["ssd_stats"]`."""
    check_config(cfg)
    device = model_device(model)
    cache = importance_cache(cfg, splits.context.get("cache_dir"))
    d_data = reference_data(splits, effective_reference(cfg)).to(device)
    stats = ssd_unlearn(model, d_data, splits.forget.to(device), cfg, cache,
                        checkpoint_sha256=splits.context.get("checkpoint_sha256"), task=splits.task,
                        splits=splits)
    splits.context["ssd_stats"] = dataclasses.asdict(stats)
    return model


@register_method("ssd", SSDConfig)
def ssd(model: nn.Module, splits: Splits, cfg: SSDConfig) -> nn.Module:
    """Selective Synaptic Dampening: dampen weights far more important to Df than to D."""
    return run_ssd(model, splits, cfg)


@dataclass
class LFSSDConfig(SSDConfig):
    """LFSSD: SSD with label-free importances (|∂ mean‖f(x)‖² / ∂θ|); mode is always "lf"."""

    mode: str = "lf"


@register_method("lfssd", LFSSDConfig)
def lfssd(model: nn.Module, splits: Splits, cfg: LFSSDConfig) -> nn.Module:
    """Label-free SSD: importances from the logits' squared norm, no labels (mode forced to "lf")."""
    return run_ssd(model, splits, dataclasses.replace(cfg, mode="lf"))
