"""The U-LiRA driver: shadow models on random halves of a pool, unlearning, retrain references.

For a task and a method: K shadow models (one vectorised ensemble) train on random exact
halves of a seeded pool drawn from the training set; a set of 2 × n_forget candidates is
spread so that each candidate is in exactly K/2 halves, which makes every shadow forget
about n_forget of its members (the random task's protocol). Each shadow then unlearns its
candidates with the method under test, called through the registry as `fn(model, splits,
cfg)` with the run's own settings (only the seed changes per shadow). K retrain-from-scratch
references (a second ensemble) train on the same halves without any candidate. The
confidences go to the pure attack in :mod:`ssd.privacy.ulira`.

Shadows and references do not depend on the method, so they are trained once per
(net, dataset, settings) and kept in the session and on disk under the cache folder.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import io
import json
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from datasets import ImageData
from ssd.errors import UserError
from ssd.methods.registry import METHODS, MethodConfig
from ssd.metrics import accuracy, predict_logits
from ssd.privacy.ensemble import Ensemble, fit_ensemble
from ssd.privacy.ulira import UliraResult, balanced_membership, logit_confidence, ulira_attack
from ssd.schedules import Schedule, load_schedule
from ssd.splits import Splits, check_partition
from ssd.utils import atomic_write_bytes


class AuditRequest(Protocol):
    """The audit flags of a run (ssd.experiment.RunSpec has them); the audit reads no other."""

    task: str
    ulira: int
    ulira_settings: Mapping[str, Any]


@dataclass
class AuditScope:
    """What an audit needs from the run that asks for it, handed over by the caller
    (ssd.experiment builds one per run), so the audit never imports the experiment.

    full_train: the dataset's full training split (the pool is drawn from it); store: the
    caller's shadow sets kept between runs (a session's), keyed by `shadows_for`."""

    net: str
    dataset: str
    data_root: str | None
    device: str
    full_train: ImageData
    cache_dir: Path
    store: dict[Any, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class UliraSettings:
    """shadows: K (even, ≥ 4); pool: images drawn from the full training set (each shadow trains
    on half; None: twice the run's D, at most 2,000, so a shadow's training set is as large as
    the target's when D is small, e.g. the CPU grid's 1,000-image subsets); candidates: samples under attack (None: 2 × the run's n_forget, so each shadow
    forgets about n_forget); epochs: shadow training epochs (None: the net's schedule for the
    dataset; retraining in the audit uses the same); seed: pool, halves and initialisations;
    fix_variance: one variance per world pooled over candidates (LiRA's choice for few shadows)."""

    shadows: int = 16
    pool: int | None = None
    candidates: int | None = None
    epochs: int | None = None
    seed: int = 0
    fix_variance: bool = True

    @classmethod
    def from_dict(cls, shadows: int, extra: dict[str, Any]) -> UliraSettings:
        names = {f.name for f in dataclasses.fields(cls)} - {"shadows"}
        unknown = set(extra) - names
        if unknown:
            raise UserError(f"unknown U-LiRA setting(s) {sorted(unknown)}; known: {sorted(names)}")
        return cls(shadows=shadows, **extra)


@dataclass
class ShadowSet:
    """The method-independent half of an audit: pool, membership, trained shadows and references."""

    net: str
    factory: Callable[[], nn.Module]  # the run's architecture (with its options, e.g. width)
    pool: ImageData
    members: torch.Tensor  # K×N bool; the first n_candidates columns are the candidates
    n_candidates: int
    schedule: Schedule
    originals: Ensemble
    references: Ensemble
    train_seconds: float
    reference_test_acc: float | None = None  # on the run's test set, computed once

    @property
    def forgotten(self) -> torch.Tensor:
        return self.members[:, : self.n_candidates]

    @property
    def candidates(self) -> ImageData:
        return self.pool.subset(torch.arange(self.n_candidates))


def new_shadow_set(net: str, factory: Callable[[], nn.Module], train: ImageData, settings: UliraSettings,
                   n_forget: int, device: torch.device) -> ShadowSet:
    """Draw the pool, spread the candidates and initialise both ensembles (nothing trained yet).
    `settings.pool` must be resolved (see `resolve_pool`)."""
    info = train.info
    m = settings.candidates or 2 * n_forget
    size = int(settings.pool or 0)
    if not 0 < size <= len(train):
        raise UserError(f"U-LiRA pool {size} must be in 1..{len(train)} (the training images of {info.name})")
    try:
        members = balanced_membership(settings.shadows, size, m, seed=settings.seed)
    except ValueError as err:
        raise UserError(f"U-LiRA: {err} (pool {size}, {m} candidates)") from err
    gen = torch.Generator().manual_seed(settings.seed)
    pool = train.subset(torch.randperm(len(train), generator=gen)[:size]).to(device)
    return ShadowSet(net, factory, pool, members, m, load_schedule(net, info.name, epochs=settings.epochs),
                     Ensemble(factory, settings.shadows, seed=settings.seed, device=device),
                     Ensemble(factory, settings.shadows, seed=settings.seed + 1, device=device), 0.0)


def train_shadows(shadows: ShadowSet, seed: int, *, progress: bool = False) -> ShadowSet:
    """Train the shadows on their halves and the references on their halves minus every candidate."""
    t0 = time.perf_counter()
    fit_ensemble(shadows.originals, shadows.pool, shadows.members, shadows.schedule, seed=seed,
                 progress=progress, desc="U-LiRA shadows")
    reference_members = shadows.members.clone()
    reference_members[:, : shadows.n_candidates] = False
    fit_ensemble(shadows.references, shadows.pool, reference_members, shadows.schedule, seed=seed + 1,
                 progress=progress, desc="U-LiRA references")
    shadows.train_seconds = time.perf_counter() - t0
    return shadows


def shadow_splits(shadows: ShadowSet, k: int, test: ImageData, context: dict[str, Any]) -> Splits:
    """Shadow k's forget request: its half of the pool, forgetting the candidates it holds."""
    own = shadows.members[k].nonzero().flatten()
    forget_rows = own[own < shadows.n_candidates]
    retain_rows = own[own >= shadows.n_candidates]
    train, forget, retain = (shadows.pool.subset(r) for r in (own, forget_rows, retain_rows))
    check_partition(train, forget, retain)
    return Splits(task="random", train=train, forget=forget, retain=retain, test=test,
                  forget_test=test.subset(torch.arange(0)), retain_test=test,
                  num_classes=shadows.pool.info.num_classes, model_factory=shadows.factory, context=dict(context))


def audit(shadows: ShadowSet, method: str, cfg: MethodConfig, test: ImageData, *, fix_variance: bool = True,
          progress: bool = False) -> tuple[UliraResult, dict[str, float]]:
    """Make every shadow unlearn its candidates with `method` and `cfg`, then attack.

    Returns the attack result and side figures (mean test accuracy of the unlearned shadows
    and of the references on `test`, the unlearning time)."""
    entry = METHODS.get(method)
    if method == "retrain" and hasattr(cfg, "epochs"):
        cfg = dataclasses.replace(cfg, epochs=shadows.schedule.epochs)  # retrain = the shadows' own training
    candidates = shadows.candidates
    k_all = shadows.originals.k
    unlearned = torch.empty(k_all, shadows.n_candidates, dtype=torch.float64)
    test_acc = []
    context = {"net": shadows.net, "dataset": shadows.pool.info.name}
    t0 = time.perf_counter()
    for k in range(k_all):
        if progress:
            print(f"[ulira] {method}: shadow {k + 1}/{k_all}", file=sys.stderr)
        splits = shadow_splits(shadows, k, test, context)
        model = entry.fn(shadows.originals.model(k), splits, dataclasses.replace(copy.copy(cfg), seed=cfg.seed + k))
        logits = predict_logits(model, candidates)
        unlearned[k] = logit_confidence(logits, candidates.targets)
        test_acc.append(accuracy(predict_logits(model, test), test.targets))
    seconds = time.perf_counter() - t0
    never_seen = logit_confidence(shadows.references.predict(candidates), candidates.targets)
    if shadows.reference_test_acc is None:
        ref_logits = shadows.references.predict(test)
        shadows.reference_test_acc = sum(accuracy(ref_logits[k], test.targets) for k in range(k_all)) / k_all
    result = ulira_attack(unlearned, never_seen, shadows.forgotten, fix_variance=fix_variance)
    side = {"ULiRA_unlearned_test_acc": sum(test_acc) / k_all, "ULiRA_reference_test_acc": shadows.reference_test_acc,
            "ULiRA_method_s": seconds}
    return result, side


def _cache_file(cache_dir: Path, net: str, dataset: str, settings: UliraSettings, n_forget: int,
                architecture: str) -> Path:
    key = json.dumps({"net": net, "dataset": dataset, "n_forget": n_forget, "architecture": architecture,
                      **dataclasses.asdict(settings)}, sort_keys=True)
    return cache_dir / "ulira" / f"{net}-{dataset}-{hashlib.sha256(key.encode()).hexdigest()[:20]}.pt"


def _save(path: Path, shadows: ShadowSet) -> None:
    buf = io.BytesIO()
    torch.save({"members": shadows.members, "pool_indices": shadows.pool.indices,
                "train_seconds": shadows.train_seconds,
                **{f"{name}/{kind}/{p}": t.detach().cpu() for name, ens in
                   (("originals", shadows.originals), ("references", shadows.references))
                   for kind, tensors in (("p", ens.params), ("b", ens.buffers)) for p, t in tensors.items()}}, buf)
    atomic_write_bytes(path, buf.getvalue())


def _load_into(path: Path, shadows: ShadowSet) -> bool:
    """Fill a freshly built (untrained) ShadowSet from `path`; False if it does not match."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not torch.equal(state["members"], shadows.members) or not torch.equal(state["pool_indices"],
                                                                              shadows.pool.indices.cpu()):
        return False
    with torch.no_grad():
        for name, ens in (("originals", shadows.originals), ("references", shadows.references)):
            for kind, tensors in (("p", ens.params), ("b", ens.buffers)):
                for p, t in tensors.items():
                    t.copy_(state[f"{name}/{kind}/{p}"])
    shadows.train_seconds = float(state["train_seconds"])
    return True


def resolve_pool(settings: UliraSettings, n_train: int, n_available: int) -> UliraSettings:
    """`pool=None` → twice the run's training-set size, at most 2,000 and at most the
    `n_available` images the dataset's training split has (Digits: 1,347)."""
    if settings.pool:
        return settings
    return dataclasses.replace(settings, pool=min(2 * n_train, 2000, n_available))


def shadows_for(scope: AuditScope, settings: UliraSettings, splits: Splits, *,
                progress: bool = False) -> ShadowSet:
    """The session's (or the disk cache's) shadow set for this run's architecture, dataset,
    forget-set size and settings, trained here when neither has it; the pool comes from the
    full training set."""
    architecture = architecture_digest(splits)
    key = (scope.net, scope.dataset, scope.data_root, len(splits.forget), scope.device, settings, architecture)
    store: dict[Any, ShadowSet] = scope.store
    if key not in store:
        shadows, path, stored = stored_shadow_set(scope, settings, splits, architecture)
        if not stored:
            train_shadows(shadows, settings.seed, progress=progress)
            _save(path, shadows)
        store[key] = shadows
    return store[key]


def architecture_digest(splits: Splits) -> str:
    """The run's architecture (parameter names and shapes of a fresh model), part of the cache key."""
    if splits.model_factory is None:
        raise UserError("U-LiRA needs fresh models of the run's architecture, which this run cannot build: "
                        + str(splits.context.get("references_unavailable", "no model factory")))
    probe = splits.model_factory()
    return hashlib.sha256(repr([(k, tuple(v.shape)) for k, v in probe.state_dict().items()]).encode()).hexdigest()


def stored_shadow_set(scope: AuditScope, settings: UliraSettings, splits: Splits,
                      architecture: str) -> tuple[ShadowSet, Path, bool]:
    """(the run's shadow set, its disk-cache file, whether its trained weights were loaded from
    that file); an unloaded set is initialised, not trained."""
    n_forget = len(splits.forget)
    shadows = new_shadow_set(scope.net, splits.model_factory, scope.full_train, settings, n_forget,
                             torch.device(scope.device))
    path = _cache_file(scope.cache_dir, scope.net, scope.dataset, settings, n_forget, architecture)
    return shadows, path, path.is_file() and _load_into(path, shadows)


def check_request(spec: AuditRequest) -> UliraSettings:
    """Refuse a bad audit request before any work is done (one line, exit code 2)."""
    if spec.task != "random":
        raise UserError(f"U-LiRA audits the random task only (each shadow forgets random samples), not {spec.task}")
    if spec.ulira % 2 or spec.ulira < 4:
        raise UserError(f"--ulira {spec.ulira}: U-LiRA needs an even number of at least 4 shadow models")
    return UliraSettings.from_dict(spec.ulira, dict(spec.ulira_settings))


def ulira_for_run(request: AuditRequest, scope: AuditScope, method: str, cfg: MethodConfig, splits: Splits, *,
                  progress: bool = False) -> tuple[dict[str, float], dict[str, Any]]:
    """U-LiRA metrics for one run (random task) and the per-sample details for the report."""
    settings = resolve_pool(check_request(request), len(splits.train), len(scope.full_train))
    shadows = shadows_for(scope, settings, splits, progress=progress)
    t0 = time.perf_counter()
    result, side = audit(shadows, method, cfg, splits.test,
                         fix_variance=settings.fix_variance, progress=progress)
    metrics = {**result.metrics(), **side, "ULiRA_time": time.perf_counter() - t0,
               "ULiRA_shadow_train_s": shadows.train_seconds}
    details = {"shadows": settings.shadows, "pool": settings.pool, "candidates": shadows.n_candidates,
               "epochs": shadows.schedule.epochs, "pairs": result.n_pairs,
               "candidate_indices": shadows.candidates.indices.tolist(),
               "score": [round(float(v), 4) for v in result.per_sample],
               "score_ref": [round(float(v), 4) for v in result.per_sample_ref]}
    return metrics, details
