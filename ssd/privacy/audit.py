"""The U-LiRA driver: shadow models on random halves of a pool, unlearning, retrain references.

For a task and a method: K shadow models (one vectorised ensemble) train on random exact
halves of a seeded pool drawn from the training set; the candidates are spread so that each
is in exactly K/2 halves. Random task: 2 × n_forget candidates, so every shadow forgets about
n_forget of its members. Class tasks (full class, sub-class): the candidates are every image
of the forgotten class in the pool (put first in it), so a shadow's forget request is the
class's images in its half, exactly what `make_splits` gives for its half. Each shadow then
unlearns with the method under test, called through the registry as `fn(model, splits,
cfg)` with the run's own settings (only the seed changes per shadow). K retrain-from-scratch
references (a second ensemble) train on the same halves without any candidate (class tasks:
without the class). The confidences go to the pure attack in :mod:`ssd.privacy.ulira`.

Shadows and references do not depend on the method, so they are trained once per
(net, dataset, settings) and kept in the session and on disk under the cache folder.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from datasets import ImageData
from ssd.errors import UserError
from ssd.methods.registry import METHODS, MethodConfig
from ssd.metrics import accuracy, predict_logits
from ssd.privacy import shadow_cache
from ssd.privacy.cmia import CmiaSettings, neighbour_classes, neighbour_deficit
from ssd.privacy.ensemble import Ensemble, fit_ensemble
from ssd.privacy.settings import AuditRequest, UliraSettings, check_request, plan, resolve_pool  # noqa: F401  (re-exported)
from ssd.privacy.ulira import UliraResult, balanced_membership, logit_confidence, ulira_attack
from ssd.schedules import Schedule, load_schedule
from ssd.splits import Splits, check_partition, make_splits


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
    seed: int = 0  # the audit's seed (UliraSettings.seed): every stream derives from it (`stream`)
    task: str = "random"  # the forget request the shadows get (random, full_class, sub_class)
    forget_index: int | None = None  # class tasks: the class as make_splits takes it (sub-class: the fine one)

    @property
    def forgotten(self) -> torch.Tensor:
        return self.members[:, : self.n_candidates]

    @property
    def candidates(self) -> ImageData:
        return self.pool.subset(torch.arange(self.n_candidates))


def new_shadow_set(net: str, factory: Callable[[], nn.Module], train: ImageData, settings: UliraSettings,
                   n_forget: int, device: torch.device, *, task: str = "random",
                   forget_index: int | None = None) -> ShadowSet:
    """Draw the pool, spread the candidates and initialise both ensembles (nothing trained yet).
    `settings.pool` must be resolved (see `resolve_pool`); class tasks: `forget_index` is the
    forgotten class (sub-class: the fine class) and `n_forget` is not used."""
    info = train.info
    pool, class_images = draw_pool(train, settings, task, forget_index)
    m = class_images if task != "random" else settings.candidates or 2 * n_forget
    try:
        members = balanced_membership(settings.shadows, len(pool), m, seed=stream(settings.seed, "membership"))
    except ValueError as err:
        raise UserError(f"U-LiRA: {err} (pool {len(pool)}, {m} candidates)") from err
    return ShadowSet(net, factory, pool.to(device), members, m, load_schedule(net, info.name, epochs=settings.epochs),
                     Ensemble(factory, settings.shadows, seed=stream(settings.seed, "originals", "init"), device=device),
                     Ensemble(factory, settings.shadows, seed=stream(settings.seed, "references", "init"), device=device),
                     0.0, seed=settings.seed, task=task, forget_index=forget_index)


def class_mask(data: ImageData, task: str, forget_index: int | None) -> torch.Tensor:
    """Which images of `data` a class task forgets (as `make_splits` picks them)."""
    labels = data.fine_targets if task == "sub_class" else data.targets
    if labels is None or forget_index is None:
        raise UserError(f"U-LiRA on the {task} task needs the forgotten class and its labels")
    return labels.cpu() == forget_index


def draw_pool(train: ImageData, settings: UliraSettings, task: str = "random",
              forget_index: int | None = None) -> tuple[ImageData, int]:
    """The audit's pool, seeded by `settings.seed`, and how many images of the forgotten class it
    holds (0 for the random task); class tasks put those first (they are the candidates), an even
    number of them: with an odd count one is left out of the pool."""
    size = int(settings.pool or 0)
    if not 0 < size <= len(train):
        raise UserError(f"U-LiRA pool {size} must be in 1..{len(train)} (the training images of {train.info.name})")
    gen = torch.Generator().manual_seed(stream(settings.seed, "pool"))
    pool = train.subset(torch.randperm(len(train), generator=gen)[:size])
    if task == "random":
        return pool, 0
    mask = class_mask(pool, task, forget_index)
    rows = mask.nonzero().flatten()
    if rows.numel() % 2:  # an odd count would leave the shadows' retain halves one image apart, which can
        rows = rows[:-1]  # need another number of batches (896 vs 897 at 128): drop one class image
    return pool.subset(torch.cat([rows, (~mask).nonzero().flatten()])), int(rows.numel())


def stream(seed: int, *use: object) -> int:
    """The seed of one use of an audit's randomness (the pool, the membership, each ensemble's
    initialisation and batch order, shadow k's unlearning): a hash of the audit's `seed` and the
    use, so no two uses share a stream, within one audit or across audits with other seeds
    (before, shadow k's unlearning was seeded cfg.seed + k, an ensemble's initialisation seed,
    and an audit with seed 1 reused seed 0's reference streams)."""
    digest = hashlib.sha256(repr(("ulira", seed, *use)).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def train_shadows(shadows: ShadowSet, seed: int | None = None, *, progress: bool = False) -> ShadowSet:
    """Train the shadows on their halves and the references on their halves minus every candidate
    (`seed`: the audit's, as the set was drawn with)."""
    seed = shadows.seed if seed is None else seed
    t0 = time.perf_counter()
    fit_ensemble(shadows.originals, shadows.pool, shadows.members, shadows.schedule,
                 seed=stream(seed, "originals", "order"), progress=progress, desc="U-LiRA shadows")
    reference_members = shadows.members.clone()
    reference_members[:, : shadows.n_candidates] = False
    fit_ensemble(shadows.references, shadows.pool, reference_members, shadows.schedule,
                 seed=stream(seed, "references", "order"), progress=progress, desc="U-LiRA references")
    shadows.train_seconds = time.perf_counter() - t0
    return shadows


def shadow_splits(shadows: ShadowSet, k: int, test: ImageData, context: dict[str, Any]) -> Splits:
    """Shadow k's forget request: its half of the pool, forgetting the candidates it holds (class
    tasks: the class's images in its half, from `make_splits`, as the run's own request)."""
    own = shadows.members[k].nonzero().flatten()
    if shadows.task != "random":
        half = shadows.pool.subset(own)
        splits = make_splits(shadows.task, half, test, forget_class=shadows.forget_index, retain_eval_size=len(half),
                             model_factory=shadows.factory, context=dict(context))
        if len(splits.forget) != int((own < shadows.n_candidates).sum()):  # the candidates are the whole class
            raise RuntimeError(f"shadow {k}: its class images are not its candidates")
        return splits
    forget_rows = own[own < shadows.n_candidates]
    retain_rows = own[own >= shadows.n_candidates]
    train, forget, retain = (shadows.pool.subset(r) for r in (own, forget_rows, retain_rows))
    check_partition(train, forget, retain)
    return Splits(task="random", train=train, forget=forget, retain=retain, test=test,
                  forget_test=test.subset(torch.arange(0)), retain_test=test,
                  num_classes=shadows.pool.info.num_classes, model_factory=shadows.factory, context=dict(context))


def audit(shadows: ShadowSet, method: str, cfg: MethodConfig, test: ImageData, *, fix_variance: bool = True,
          progress: bool = False) -> tuple[UliraResult, dict[str, Any]]:
    """Make every shadow unlearn its candidates with `method` and `cfg`, then attack.

    Returns the attack result and side figures (mean test accuracy of the unlearned shadows
    and of the references on `test`, the unlearning time). Class tasks also get the attack on
    the class-level feature (`ULiRA_nn_*`; the result itself under "nn"): the same likelihood
    ratio on the neighbour-mass deficit of ssd.privacy.cmia instead of the forgotten label's
    confidence, the neighbours taken from the references (MIA-NN with K retrained references)."""
    entry = METHODS.get(method)
    if method == "retrain" and hasattr(cfg, "epochs"):
        cfg = dataclasses.replace(cfg, epochs=shadows.schedule.epochs)  # retrain = the shadows' own training
    candidates = shadows.candidates
    k_all = shadows.originals.k
    unlearned = torch.empty(k_all, shadows.n_candidates, dtype=torch.float64)
    outputs = torch.empty(k_all, shadows.n_candidates, candidates.info.num_classes)  # class tasks' logits
    test_acc = []
    context = {"net": shadows.net, "dataset": shadows.pool.info.name}
    t0 = time.perf_counter()
    for k in range(k_all):
        if progress:
            print(f"[ulira] {method}: shadow {k + 1}/{k_all}", file=sys.stderr)
        splits = shadow_splits(shadows, k, test, context)
        own_seed = stream(shadows.seed, "unlearn", cfg.seed, k)
        model = entry.fn(shadows.originals.model(k), splits, dataclasses.replace(copy.copy(cfg), seed=own_seed))
        logits = predict_logits(model, candidates)
        unlearned[k] = logit_confidence(logits, candidates.targets)
        outputs[k] = logits.float().cpu()
        test_acc.append(accuracy(predict_logits(model, test), test.targets))
    seconds = time.perf_counter() - t0
    ref_outputs = shadows.references.predict(candidates)
    never_seen = logit_confidence(ref_outputs, candidates.targets)
    if shadows.reference_test_acc is None:
        ref_logits = shadows.references.predict(test)
        shadows.reference_test_acc = sum(accuracy(ref_logits[k], test.targets) for k in range(k_all)) / k_all
    result = ulira_attack(unlearned, never_seen, shadows.forgotten, fix_variance=fix_variance)
    side: dict[str, Any] = {"ULiRA_unlearned_test_acc": sum(test_acc) / k_all,
                            "ULiRA_reference_test_acc": shadows.reference_test_acc, "ULiRA_method_s": seconds}
    if shadows.task != "random":
        nn_result, neighbours = neighbour_attack(shadows, outputs, ref_outputs, fix_variance)
        side.update({"ULiRA_nn_auc": nn_result.auc, "ULiRA_nn_tpr@1%": nn_result.tpr_1,
                     "ULiRA_nn_tpr@0.1%": nn_result.tpr_01, "nn": (nn_result, neighbours)})
    return result, side


def neighbour_attack(shadows: ShadowSet, outputs: torch.Tensor, ref_outputs: torch.Tensor,
                     fix_variance: bool) -> tuple[UliraResult, list[int]]:
    """The class-level feature under U-LiRA: each model's neighbour-mass deficit on the class's
    images (`outputs`, `ref_outputs`: K×M×classes logits of the unlearned shadows and of the
    references); the neighbours are the k classes all references together give most mass."""
    k_all, m, c = outputs.shape
    excluded = shadows.forget_index if shadows.task == "full_class" else None
    neighbours = neighbour_classes(ref_outputs.reshape(-1, c), excluded, CmiaSettings().neighbours)
    deficit = [neighbour_deficit(o.reshape(-1, c), neighbours).view(k_all, m) for o in (outputs, ref_outputs)]
    return ulira_attack(deficit[0], deficit[1], shadows.forgotten, fix_variance=fix_variance), neighbours


def class_target(splits: Splits) -> tuple[str, int | None]:
    """(task, the forgotten class as make_splits takes it: the fine class for sub-class; None for random)."""
    if splits.task == "random":
        return "random", None
    return splits.task, splits.forget_fine_class if splits.task == "sub_class" else splits.forget_class


def shadows_for(scope: AuditScope, settings: UliraSettings, splits: Splits, *,
                progress: bool = False) -> ShadowSet:
    """The session's (or the disk cache's) shadow set for this run's architecture, dataset,
    request (random: the forget-set size; class tasks: the class) and settings, trained here
    when neither has it; the pool comes from the full training set."""
    architecture = architecture_digest(splits)
    key = (scope.net, scope.dataset, scope.data_root, audit_n_forget(splits), scope.device, settings, architecture,
           class_target(splits))
    store: dict[Any, ShadowSet] = scope.store
    if key not in store:
        shadows, path, stored = stored_shadow_set(scope, settings, splits, architecture)
        if not stored:
            train_shadows(shadows, settings.seed, progress=progress)
            shadow_cache.save(path, shadows, shadow_cache.cache_key(
                scope.net, scope.dataset, scope.data_root, settings, audit_n_forget(splits), architecture, shadows))
        store[key] = shadows
    return store[key]


def audit_n_forget(splits: Splits) -> int:
    """The run's forget-set size where it shapes the shadows (random task); 0 for class tasks,
    whose candidates are the class's images in the pool whatever the run's D holds."""
    return len(splits.forget) if splits.task == "random" else 0


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
    n_forget = audit_n_forget(splits)
    task, forget_index = class_target(splits)
    shadows = new_shadow_set(scope.net, splits.model_factory, scope.full_train, settings, n_forget,
                             torch.device(scope.device), task=task, forget_index=forget_index)
    key = shadow_cache.cache_key(scope.net, scope.dataset, scope.data_root, settings, n_forget, architecture, shadows)
    path = shadow_cache.cache_file(scope.cache_dir, scope.net, scope.dataset, key)
    return shadows, path, shadow_cache.load_into(path, shadows, key)


def plan_for_run(request: AuditRequest, scope: AuditScope, splits: Splits) -> UliraSettings:
    """Every check of the audit that needs the run (sizes, memory), made before the method runs;
    the settings with the pool resolved."""
    if splits.model_factory is None:
        architecture_digest(splits)  # refuses in one line, saying why
    sample = next(iter(scope.full_train.subset(torch.arange(1)).batches(1)))[0]
    task, forget_index = class_target(splits)

    def class_images(settings: UliraSettings) -> int:  # the forgotten class's images in the drawn pool
        return draw_pool(scope.full_train, settings, task, forget_index)[1]

    return plan(request, n_train=len(splits.train), n_available=len(scope.full_train), n_forget=len(splits.forget),
                dataset=scope.dataset, factory=splits.model_factory, sample=sample.to(scope.device),
                schedule_of=lambda epochs: load_schedule(scope.net, scope.dataset, epochs=epochs),
                class_images=None if task == "random" else class_images)


def ulira_for_run(request: AuditRequest, scope: AuditScope, method: str, cfg: MethodConfig, splits: Splits, *,
                  settings: UliraSettings | None = None, progress: bool = False
                  ) -> tuple[dict[str, float], dict[str, Any]]:
    """U-LiRA metrics for one run (any task) and the per-sample details for the report.
    `settings`: what `plan_for_run` gave before the method ran (planned here when None)."""
    settings = settings or plan_for_run(request, scope, splits)
    shadows = shadows_for(scope, settings, splits, progress=progress)
    t0 = time.perf_counter()
    result, side = audit(shadows, method, cfg, splits.test,
                         fix_variance=settings.fix_variance, progress=progress)
    nn = side.pop("nn", None)
    metrics = {**result.metrics(), **side, "ULiRA_time": time.perf_counter() - t0,
               "ULiRA_shadow_train_s": shadows.train_seconds}
    details = {"task": shadows.task, "shadows": settings.shadows, "pool": settings.pool, "candidates": shadows.n_candidates,
               "epochs": shadows.schedule.epochs, "pairs": result.n_pairs,
               "candidate_indices": shadows.candidates.indices.tolist(),
               "score": [round(float(v), 4) for v in result.per_sample],
               "score_ref": [round(float(v), 4) for v in result.per_sample_ref]}
    if nn is not None:  # class tasks: the neighbour feature's per-candidate scores
        details.update({"nn_neighbours": nn[1], "nn_score": [round(float(v), 4) for v in nn[0].per_sample],
                        "nn_score_ref": [round(float(v), 4) for v in nn[0].per_sample_ref]})
    return metrics, details
