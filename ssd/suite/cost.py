"""The grid's cost before it runs: each method's passes over the data, priced by a throughput probe.

A run's work is a list of :class:`Work` items — so many images through the network, of one
kind, at one batch size:

* ``train``: forward + backward + optimiser step in train mode (retrain, fine-tuning, …);
* ``grad``: forward + backward without a step (SalUn's saliency, UNSIR's noise), priced as
  ``train`` (the step is a small part of it);
* ``imp``: SSD's importance passes (forward + backward), which run in true float32 whatever the
  run's precision (ssd/precision.py importance_scope): the probe times them so;
* ``fwd``: forward under no_grad (teachers, JiT's perturbed copies, the evaluation);
* ``psg``: per-sample gradients from ``torch.func`` (Fisher's C gradients per sample, NTK's
  Jacobian rows, SSD's sample mode), counted in sample-gradients;
* ``flop``: floating-point operations outside the network (NTK's kernel), at the probe's matmul rate.

`run_work` reads each method's config (epochs, batch sizes, caps) the way the method's code
does (ssd/methods/); tests/test_cost.py counts the images a real run of every method puts
through the model and compares them with these numbers, so the two cannot drift apart.
`ssd.suite.probe` measures images per second per kind on the chosen device; `estimate`
multiplies, adds a fixed overhead per run, and `schedule` spreads the runs over N workers
the way the Ray backend orders them (every method of a split after its retrain).
"""

from __future__ import annotations

import dataclasses
import heapq
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

KINDS = ("train", "grad", "imp", "fwd", "psg", "flop")
EVAL_BATCH = 512  # ssd.metrics.evaluate's batch size
RUN_OVERHEAD_S = 0.5  # per run: copying the model, building the split, writing the row (not measured)
# Standard split sizes (train, test), so the paper grid is priced without CIFAR on disk.
KNOWN_SIZES = {"Cifar10": (50_000, 10_000), "Cifar20": (50_000, 10_000), "Cifar100": (50_000, 10_000),
               "MNIST": (60_000, 10_000), "MNISTCoarse": (60_000, 10_000), "FashionMNIST": (60_000, 10_000),
               "FashionMNISTCoarse": (60_000, 10_000), "Digits": (1_347, 450), "DigitsCoarse": (1_347, 450)}


@dataclass(frozen=True)
class Work:
    kind: str  # one of KINDS
    images: float  # images through the network (sample-gradients for psg)
    batch: int
    what: str = ""
    passes: int = 1  # epochs: the images are `passes` equal passes, each cut into batches

    @property
    def effective_batch(self) -> int:
        """The mean batch a pass is cut into (a 100-image forget set at batch 512 runs at 100)."""
        per = self.images / max(self.passes, 1)
        return max(1, round(per / max(math.ceil(per / self.batch), 1)))


@dataclass(frozen=True)
class Sizes:
    """The set sizes a run sees (the split is class-balanced enough for a cost model)."""

    train: int
    test: int
    forget: int
    retain: int
    forget_test: int
    retain_eval: int
    classes: int
    fine_classes: int

    @classmethod
    def of(cls, task: str, n_train: int, n_test: int, classes: int, fine_classes: int | None,
           n_forget: float, retain_eval_size: int) -> Sizes:
        if task == "full_class":
            forget, forget_test = n_train // classes, n_test // classes
        elif task == "sub_class":
            forget, forget_test = n_train // (fine_classes or classes), n_test // (fine_classes or classes)
        else:
            forget = max(1, round(n_forget * n_train)) if isinstance(n_forget, float) and n_forget < 1 else int(n_forget)
            forget_test = 0
        retain = n_train - forget
        return cls(n_train, n_test, forget, retain, forget_test, min(retain_eval_size, retain), classes,
                   fine_classes or classes)


def _cfg(cfg: Any, name: str, default: Any = None) -> Any:
    return getattr(cfg, name, default)


def retrain_epochs(net: str, dataset: str, cfg: Any) -> tuple[int, int]:
    """(epochs, batch) of retrain's schedule (configs/schedules.toml, the config's overrides)."""
    from ssd.schedules import load_schedule

    batch = cfg.batch_size if _cfg(cfg, "protocol") == "authors" else None
    s = load_schedule(net, dataset, epochs=_cfg(cfg, "epochs"), lr=_cfg(cfg, "lr"), augment=_cfg(cfg, "augment"),
                      batch_size=batch)
    return s.epochs, s.batch_size


def unsir_retain(z: Sizes, cfg: Any, task: str) -> int:
    """UNSIR's capped retain set: `samples_per_class` of each (fine, for sub_class) class."""
    groups = z.fine_classes if task == "sub_class" else z.classes
    per = z.retain / max(groups - (1 if task != "random" else 0), 1)
    return int(min(z.retain, min(per, cfg.samples_per_class) * (groups - (1 if task != "random" else 0))))


def method_work(method: str, cfg: Any, z: Sizes, *, task: str, net: str, dataset: str,
                d_cached: bool = False, params: int = 0) -> list[Work]:
    """The passes `method` makes (see the module docstring); `d_cached`: SSD's D importances
    come from the cache (computed by an earlier run on the same checkpoint, mode and seed);
    `params`: the model's parameter count (NTK's kernel and its memory refusal; 0: unknown)."""
    b = int(_cfg(cfg, "batch_size", 128))
    if method in ("baseline", "output_dampening", "global_dampening"):
        return []
    if method == "retrain":
        epochs, batch = retrain_epochs(net, dataset, cfg)
        return [Work("train", epochs * z.retain, batch, f"{epochs} epochs on Dr", epochs)]
    if method == "finetune":
        return [Work("train", cfg.epochs * z.retain, b, f"{cfg.epochs} epochs on Dr", cfg.epochs)]
    if method == "amnesiac":
        return [Work("train", cfg.epochs * (z.forget + z.retain), b, f"{cfg.epochs} epochs on Df+Dr", cfg.epochs)]
    if method == "blindspot":
        n = z.forget + int(cfg.retain_fraction * z.retain)
        return [Work("train", cfg.epochs * n, b, "student", cfg.epochs),
                Work("fwd", 2 * cfg.epochs * n, b, "two teachers", 2 * cfg.epochs)]
    if method == "UNSIR":
        from ssd.methods.unsir import TASK_NOISE_STEPS

        steps = cfg.noise_steps if cfg.noise_steps is not None else TASK_NOISE_STEPS[task]
        rt = unsir_retain(z, cfg, task)
        return [Work("grad", steps * cfg.noise_batch, cfg.noise_batch, f"{steps} noise steps", steps),
                Work("train", cfg.impair_epochs * (cfg.noise_copies * cfg.noise_batch + rt), cfg.impair_batch_size,
                     "impair", cfg.impair_epochs),
                Work("train", cfg.repair_epochs * rt, b, "repair", cfg.repair_epochs)]
    if method == "fisher":
        n = z.retain if cfg.max_samples is None else min(cfg.max_samples, z.retain)
        return [Work("fwd", n, cfg.chunk_size, "p(y|x)"),
                Work("psg", n * z.classes, cfg.chunk_size, f"{z.classes} classes × {n:,} samples", z.classes)]
    if method in ("ssd", "lfssd"):
        return ssd_work(cfg, z, d_cached=d_cached)
    if method == "scrub":
        max_epochs = min(cfg.msteps, cfg.epochs)
        return [Work("train", max_epochs * z.forget, cfg.forget_batch_size, "max-steps", max_epochs),
                Work("fwd", max_epochs * z.forget, cfg.forget_batch_size, "teacher (max)", max_epochs),
                Work("train", cfg.epochs * z.retain, b, "min-steps", cfg.epochs),
                Work("fwd", cfg.epochs * z.retain, b, "teacher (min)", cfg.epochs)]
    if method == "salun":
        return [Work("grad", z.forget, b, "saliency"),
                Work("train", cfg.epochs * (z.forget + z.retain), b, f"{cfg.epochs} epochs on Df+Dr", cfg.epochs)]
    if method == "neggrad_plus":
        fb = cfg.forget_batch_size or b  # each retain step takes the next forget batch (cycled)
        steps = cfg.epochs * math.ceil(z.retain / b)
        return [Work("train", cfg.epochs * z.retain, b, "retain", cfg.epochs),
                Work("train", steps * z.forget / math.ceil(z.forget / fb), fb, "forget", steps)]
    if method == "jit":
        return [Work("grad", cfg.epochs * z.forget, b, "clean", cfg.epochs),
                Work("fwd", cfg.epochs * cfg.n_samples * z.forget, b, f"{cfg.n_samples} perturbed copies",
                     cfg.epochs * cfg.n_samples)]
    if method == "trw":
        return [Work("fwd", z.forget, EVAL_BATCH, "original's predictions on Df"),
                Work("train", cfg.epochs * (z.forget + z.retain), b, f"{cfg.epochs} epochs on Dr+Df", cfg.epochs)]
    if method == "ntk":
        from ssd.methods.ntk import GIB, ntk_memory_bytes

        retain = z.retain if cfg.max_retain is None else min(cfg.max_retain, z.retain)
        n = retain + z.forget
        if params and ntk_memory_bytes(params, retain, z.forget, z.classes) > cfg.max_memory_gib * GIB:
            return []  # refused before any work
        kernel = 2.0 * (n * z.classes) ** 2 * params  # J Jᵀ in fp32 (the ridge solves are smaller)
        return [Work("psg", n * z.classes, cfg.chunk_size, "logit Jacobian", z.classes),
                Work("fwd", n, EVAL_BATCH, "residuals"), Work("flop", kernel, 1, "kernel J Jᵀ")]
    raise KeyError(f"no cost model for method {method!r}")


def ssd_work(cfg: Any, z: Sizes, *, d_cached: bool) -> list[Work]:
    from ssd.methods.alpha_select import effective_reference

    d = z.train if effective_reference(cfg) == "full" else z.retain
    kind = "psg" if cfg.mode == "sample" else "imp"
    batch = cfg.chunk_size if kind == "psg" else cfg.batch_size
    out = [] if d_cached else [Work(kind, d, batch, "importances on D")]
    return [*out, Work(kind, z.forget, batch, "importances on Df")]


def eval_work(z: Sizes, task: str, *, references: bool = True) -> list[Work]:
    """ssd.metrics.evaluate: the test set once, Df, retain-eval (the MIA's members are Df and
    its non-members rows of the test set), and the untrained and retrained references on Df
    (and the untrained one on forget-test)."""
    sets = [("test", z.test), ("Df", z.forget), ("retain-eval", z.retain_eval)]
    if references:
        sets += [("Df, untrained", z.forget), ("forget-test, untrained", z.forget_test), ("Df, retrained", z.forget)]
    return [Work("fwd", n, EVAL_BATCH, f"evaluation: {what}") for what, n in sets if n]


def price(work: Sequence[Work], rate: Callable[[str, int], float]) -> float:
    """Seconds for `work` at `rate(kind, batch)` images per second."""
    return sum(w.images / rate("train" if w.kind == "grad" else w.kind, w.effective_batch) for w in work if w.images)


@dataclass
class RunCost:
    net: str
    method: str  # the row's label
    task: str
    dataset: str
    seconds: float
    split: tuple[Any, ...]
    is_retrain: bool
    work: list[Work] = dataclasses.field(default_factory=list)
    work_s: float = 0.0  # `seconds` less the fixed per-run overhead


def schedule(runs: Sequence[RunCost], workers: int) -> float:
    """Makespan of `runs` on `workers` in grid order, each method of a split starting only
    after that split's retrain has ended (ssd.backends.jobs.grid_jobs), the first free
    worker taking the next ready run."""
    if workers <= 1:
        return sum(r.seconds for r in runs)
    retrain_end: dict[tuple[Any, ...], float] = {}
    free = [0.0] * workers
    heapq.heapify(free)
    pending = list(runs)
    end = 0.0
    # retrains first (they are first in each cell and the serial order already runs them first)
    for r in sorted(pending, key=lambda r: not r.is_retrain):
        start = heapq.heappop(free)
        if not r.is_retrain:
            start = max(start, retrain_end.get(r.split, 0.0))
        finish = start + r.seconds
        if r.is_retrain:
            retrain_end[r.split] = finish
        heapq.heappush(free, finish)
        end = max(end, finish)
    return end


def hours(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
