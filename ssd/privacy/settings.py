"""U-LiRA's settings and every check of an audit request, made before any work.

`check_request` reads only the run's audit flags (it is called by the mains as soon as the
flags are parsed); `plan` adds what needs the run's data and architecture (the pool against
the training split, the candidates against half the pool, --n-forget against a shadow's
share, the memory the two ensembles need) and is called before the method runs.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from ssd.errors import UserError

GIB = 1024**3
# fix_variance=False fits a variance per candidate from the shadows that forgot it, the target
# left out: K/2 − 1 of them. Fewer than 3 observations give no usable variance (K = 4 leaves
# one, whose std is clamped to 1e-6 and the attack degenerates), so it needs K ≥ 8.
MIN_SHADOWS_PER_CANDIDATE_VARIANCE = 8


class AuditRequest(Protocol):
    """The audit flags of a run (ssd.experiment.RunSpec has them); the audit reads no other."""

    task: str
    ulira: int
    ulira_settings: Mapping[str, Any]


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class UliraSettings:
    """shadows: K (even, ≥ 4); pool: images drawn from the full training set (each shadow trains
    on half; None: twice the run's D, at most 2,000, so a shadow's training set is as large as
    the target's when D is small, e.g. the CPU grid's 1,000-image subsets); candidates: samples
    under attack, even (None: 2 × the run's n_forget, so each shadow forgets about n_forget);
    epochs: shadow training epochs (None: the net's schedule for the dataset; retraining in the
    audit uses the same); seed: pool, halves and initialisations; fix_variance: one variance per
    world pooled over candidates (LiRA's choice for few shadows); max_memory_gib: refuse, before
    any work, an audit whose estimated peak memory (`ensemble_memory_bytes`) exceeds this."""

    shadows: int = 16
    pool: int | None = None
    candidates: int | None = None
    epochs: int | None = None
    seed: int = 0
    fix_variance: bool = True
    max_memory_gib: float = 16.0

    def __post_init__(self) -> None:
        """Every value checked for type and range (one UserError line naming the setting)."""
        checks = (
            ("shadows", _whole(self.shadows) and self.shadows >= 4 and self.shadows % 2 == 0,
             "an even whole number ≥ 4 (--ulira)"),
            ("pool", self.pool is None or (_whole(self.pool) and self.pool >= 1),
             "a whole number ≥ 1 (leave it out for the default: twice the run's training set, at most 2,000)"),
            ("candidates", self.candidates is None or (_whole(self.candidates) and self.candidates >= 2
                                                       and self.candidates % 2 == 0),
             "an even whole number ≥ 2 (half of them are forgotten by each shadow holding them)"),
            ("epochs", self.epochs is None or (_whole(self.epochs) and self.epochs >= 1), "a whole number ≥ 1"),
            ("seed", _whole(self.seed) and self.seed >= 0, "a whole number ≥ 0"),
            ("fix_variance", isinstance(self.fix_variance, bool), "true or false"),
            ("max_memory_gib", isinstance(self.max_memory_gib, (int, float)) and not isinstance(self.max_memory_gib, bool)
             and math.isfinite(self.max_memory_gib) and self.max_memory_gib > 0, "a finite number > 0"),
        )
        for name, ok, want in checks:
            if not ok:
                raise UserError(f"U-LiRA setting {name} must be {want}; got {getattr(self, name)!r}")
        if not self.fix_variance and self.shadows < MIN_SHADOWS_PER_CANDIDATE_VARIANCE:
            raise UserError(
                f"U-LiRA fix_variance=false fits each candidate's variance from the K/2 − 1 shadows that forgot it "
                f"(the target left out): --ulira {self.shadows} leaves {self.shadows // 2 - 1}; use --ulira "
                f"{MIN_SHADOWS_PER_CANDIDATE_VARIANCE} or more, or keep fix_variance=true")

    @classmethod
    def from_dict(cls, shadows: int, extra: Mapping[str, Any]) -> UliraSettings:
        names = {f.name for f in dataclasses.fields(cls)} - {"shadows"}
        unknown = set(extra) - names
        if unknown:
            raise UserError(f"unknown U-LiRA setting(s) {sorted(unknown)}; known: {sorted(names)}")
        return cls(shadows=shadows, **extra)

    def key(self) -> dict[str, Any]:
        """The fields that decide the shadows (the memory limit does not)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "max_memory_gib"}


AUDITED_TASKS = ("random", "full_class", "sub_class")


def check_request(spec: AuditRequest) -> UliraSettings:
    """Refuse a bad audit request from its flags alone (one line, exit code 2)."""
    if spec.task not in AUDITED_TASKS:
        raise UserError(f"U-LiRA audits the tasks {', '.join(AUDITED_TASKS)}, not {spec.task}")
    if not _whole(spec.ulira) or spec.ulira % 2 or spec.ulira < 4:
        raise UserError(f"--ulira {spec.ulira}: U-LiRA needs an even number of at least 4 shadow models")
    settings = UliraSettings.from_dict(spec.ulira, dict(spec.ulira_settings))
    if spec.task != "random" and settings.candidates is not None:
        raise UserError(f"U-LiRA on the {spec.task} task attacks every image of the forgotten class in the pool: "
                        "candidates cannot be set (set pool to change how many there are)")
    return settings


def resolve_pool(settings: UliraSettings, n_train: int, n_available: int) -> UliraSettings:
    """`pool=None` → twice the run's training-set size, at most 2,000 and at most the
    `n_available` images the dataset's training split has (Digits: 1,347)."""
    if settings.pool is not None:
        return settings
    return dataclasses.replace(settings, pool=min(2 * n_train, 2000, n_available))


def activation_floats(model: nn.Module, sample: torch.Tensor) -> tuple[int, int]:
    """(floats every module outputs for one sample, in total; the largest single output)."""
    sizes: list[int] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: sizes.append(out.numel() if torch.is_tensor(out) else 0))
             for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            model.eval()(sample)
    finally:
        for h in hooks:
            h.remove()
    return sum(sizes) + sample.numel(), max(sizes + [sample.numel()])


def ensemble_memory_bytes(n_params: int, activations: tuple[int, int], k: int, batch_size: int,
                          optimizer: str, eval_batch: int = 512) -> int:
    """A rough peak for the audit: both ensembles' weights (2·K·P floats), one ensemble's
    gradients and optimiser state while it trains (Adam/AdamW: 2 per weight, SGD: 1), its
    activations kept for the backward pass and their gradients (2·K·batch·A floats), or when
    predicting, the largest layer output for an evaluation batch through all K models at once
    (twice: input and output), whichever is larger."""
    total, largest = activations
    state = 2 if optimizer in ("adam", "adamw") else 1
    weights = 4 * k * n_params * (2 + 1 + state)
    train = 4 * 2 * k * batch_size * total
    predict = 4 * 2 * k * eval_batch * largest
    return weights + max(train, predict)


def plan(request: AuditRequest, *, n_train: int, n_available: int, n_forget: int, dataset: str,
         factory: Callable[[], nn.Module], sample: torch.Tensor,
         schedule_of: Callable[[int | None], Any],
         class_images: Callable[[UliraSettings], int] | None = None) -> UliraSettings:
    """All of `check_request`, then what needs the run: the pool within the training split,
    the candidates (random task: 2 × --n-forget unless set; class tasks: `class_images(settings)`,
    the forgotten class's images in the drawn pool) within half the pool and, for a class, at
    least 2 of them, and the memory estimate within `max_memory_gib`; the settings with the pool
    resolved. `schedule_of(epochs)`: the shadows' training schedule."""
    settings = resolve_pool(check_request(request), n_train, n_available)
    pool = int(settings.pool or 0)
    if pool > n_available:
        raise UserError(f"U-LiRA pool {pool} is more than the {n_available:,} training images of {dataset}")
    half = pool // 2
    if class_images is not None:
        m = class_images(settings)
        if m < 2:
            raise UserError(f"the U-LiRA pool of {pool:,} images holds {m} of the forgotten class; the class audit "
                            "needs at least 2 (raise --ulira-set pool)")
        if m > half:
            raise UserError(f"the forgotten class has {m:,} of the U-LiRA pool's {pool:,} images, more than half: "
                            "every shadow could not hold a different half of them; this class cannot be audited")
    else:
        m = settings.candidates if settings.candidates is not None else 2 * n_forget
    if m > half:
        if settings.candidates is None:
            raise UserError(f"--n-forget {n_forget} is more than a shadow's share: each shadow forgets about "
                            f"n_forget of its {half} images only when 2 × n_forget ≤ {half} (half the pool "
                            f"of {pool}); lower --n-forget, raise --ulira-set pool, or set candidates")
        raise UserError(f"U-LiRA candidates {m} must be at most half the pool ({half} of {pool})")
    schedule = schedule_of(settings.epochs)  # the shadows' training (its batch size and optimiser)
    probe = factory()
    n_params = sum(p.numel() for p in probe.parameters())
    need = ensemble_memory_bytes(n_params, activation_floats(probe, sample), settings.shadows,
                                 min(schedule.batch_size, half), schedule.optimizer)
    if need > settings.max_memory_gib * GIB:
        raise UserError(f"U-LiRA with {settings.shadows:,} shadows would need about {need / GIB:,.1f} GiB "
                        f"(two ensembles of {settings.shadows:,} × {n_params:,} parameters, their optimiser and "
                        f"activations), over the {settings.max_memory_gib:g} GiB limit; use fewer shadows or raise "
                        "--ulira-set max_memory_gib")
    return settings
