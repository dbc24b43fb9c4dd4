"""One unlearning run, end to end: data → checkpoint → splits → method (timed) → metrics → row.

A :class:`Session` keeps loaded datasets, checkpoints and retrained reference models
between runs, so a grid loads each once and the per-run cost is the method plus the
evaluation.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

import ssd.methods  # noqa: F401  (registers the built-in methods)
from datasets import ImageData, dataset_info, load_dataset, resolve_class
from models import build_model
from ssd import precision as prec
from ssd.checkpoint import load_model, model_options, read_checkpoint, read_meta, save_checkpoint
from ssd.errors import UserError, one_line
from ssd.methods.protocol import apply_protocol
from ssd.methods.registry import METHODS, MethodConfig
from ssd.names import METHOD_ALIASES  # noqa: F401  (re-exported: the authors' -method names)
from ssd.run_keys import canonical_class, key_from_fields, spec_key, unaudited_key  # noqa: F401  (re-exported)
from ssd.splits import Splits, make_splits
from ssd.utils import atomic_write_bytes, code_version, synchronize

if TYPE_CHECKING:
    from ssd.privacy.audit import AuditScope


@dataclass
class RunSpec:
    """Everything that defines one run (what a main's flags or a suite's grid cell say)."""

    task: str  # full_class | sub_class | random
    net: str
    dataset: str
    weight_path: str
    method: str
    forget_class: str | None = None  # a name or an index; a fine class for sub_class
    n_forget: int | float = 100  # random task: a count, or a fraction of the training set (0 < f < 1)
    seed: int = 0
    device: str = "cpu"
    batch_size: int | None = None  # None: each method's own default (the authors' -b sets all)
    data_root: str | None = None
    download: bool = False
    retain_eval_size: int = 5000
    overrides: dict[str, Any] = field(default_factory=dict)  # method config fields (alpha, lam, epochs…)
    # ImageNet weights folder the checkpoint was fine-tuned from (ViT); None: the checkpoint's own record
    pretrained: str | None = None
    ulira: int = 0  # U-LiRA shadow models (0: no privacy audit); ssd/privacy/audit.py
    ulira_settings: dict[str, Any] = field(default_factory=dict)  # UliraSettings fields (pool, epochs…)
    label: str | None = None  # a suite variant's name (e.g. "ssd@auto"): the row's method label
    threads: int | None = None  # torch CPU threads for this run (None: the process's); not in the run key
    precision: str | None = None  # fp32 | tf32 | bf16; None: tf32 on CUDA, fp32 elsewhere (ssd/precision.py)
    channels_last: bool = False  # conv nets in channels_last memory format (CUDA only)


def method_config(method: str, spec: RunSpec) -> MethodConfig:
    """The method's dataclass with the run's seed/device/batch size and the overrides applied."""
    entry = METHODS.get(METHOD_ALIASES.get(method, method))
    names = {f.name for f in dataclasses.fields(entry.config)}
    unknown = set(spec.overrides) - names
    if unknown:
        raise UserError(f"method {entry.name!r} has no setting(s) {sorted(unknown)}; it has {sorted(names)}")
    base: dict[str, Any] = {"seed": spec.seed, "device": spec.device}
    if spec.batch_size is not None:
        base["batch_size"] = spec.batch_size
    cfg = entry.config(**{**base, **spec.overrides})
    explicit = set(spec.overrides) | ({"batch_size"} if spec.batch_size is not None else set())
    return apply_protocol(cfg, entry.name, spec.task, spec.net, explicit)


class Session:
    """Caches what several runs share: datasets, checkpoints, retrained reference models."""

    def __init__(self, cache_dir: str | Path = "cache") -> None:
        self.cache_dir = Path(cache_dir)
        self._data: dict[tuple[str, str | None, bool], ImageData] = {}
        self._models: dict[tuple[str, str, str, str], tuple[nn.Module, dict[str, Any]]] = {}
        self.retrained: dict[str, nn.Module] = {}  # on the CPU; each use gets a device copy (load_retrained)
        self.ulira_shadows: dict[Any, Any] = {}  # U-LiRA shadow sets (ssd.privacy.audit.shadows_for)

    def data(self, spec: RunSpec, train: bool, subset: int | None = None) -> ImageData:
        """The dataset split; `subset` rows of it (class-balanced, seed 0) when the checkpoint
        was trained on a subset (its `data_subset` meta)."""
        key = (spec.dataset, spec.data_root, train, subset)
        if key not in self._data:
            from ssd.train import take_subset

            full = load_dataset(spec.dataset, train=train, root=spec.data_root, download=spec.download)
            self._data[key] = take_subset(full, subset)
        return self._data[key]

    def audit_scope(self, spec: RunSpec) -> AuditScope:
        """What the privacy audit needs from this session for `spec` (ssd.privacy.audit.AuditScope):
        the full training split, the cache folder and the session's shadow sets."""
        from ssd.privacy.audit import AuditScope

        return AuditScope(spec.net, spec.dataset, spec.data_root, spec.device, self.data(spec, True),
                          self.cache_dir, self.ulira_shadows)

    def retrained_path(self, net: str, split_hash: str, precision: str | None = None) -> Path:
        """Where a split's retrained reference is kept; one per precision (`precision` from the
        split's context: none for fp32, so fp32 references keep their files)."""
        return self.cache_dir / "retrained" / f"{net}-{split_hash[:24]}{'-' + precision if precision else ''}.pt"

    def save_retrained(self, net: str, splits: Splits, model: nn.Module, config: dict[str, Any]) -> None:
        """Keep the retrained model of this split: later runs of any method (here or in another
        process) score their activation distance to it. The retrain settings that made it are
        also kept in a small file beside it, so a damaged copy is rebuilt with those settings."""
        key, tag = splits.context["split_hash"], splits.context.get("precision")
        self.retrained[f"{net}/{key}/{tag}"] = model_copy(model, "cpu").eval()  # off the device between uses
        path = self.retrained_path(net, key, tag)
        try:
            atomic_write_bytes(path.with_suffix(".json"), json.dumps({"config": config}, default=str).encode())
            save_checkpoint(path, model,
                            {"net": net, "dataset": splits.context.get("dataset"), "split_hash": key, "config": config})
        except OSError as err:  # the run itself is kept; only other processes lose the reference
            print(f"note: could not keep the retrained reference in {self.cache_dir} ({one_line(err)})", file=sys.stderr)

    def retrained_settings(self, path: Path) -> dict[str, Any] | None:
        """The retrain settings a reference was made with: from the file beside it, else from the
        reference's own metadata (readable when only its weights are damaged); None if unknown."""
        try:
            config = json.loads(path.with_suffix(".json").read_text()).get("config")
        except (OSError, ValueError, AttributeError):
            try:
                config = read_meta(path).get("config")  # the metadata alone: the weights are the damaged part
            except Exception:  # truncated or not a checkpoint: the settings are lost with it
                config = None
        return config if isinstance(config, dict) else None

    def load_retrained(self, net: str, splits: Splits, rebuild: Callable[[dict[str, Any] | None], None],
                       device: str | torch.device | None = None) -> nn.Module | None:
        """A copy on `device` (default: where the split's data lives) of the retrained model of this
        split (memory, else the cache folder). The session keeps its own copy on the CPU: a grid
        holds one reference per split (80 ViTs in the paper grid) and only the run using one has
        it on the device, until that run drops it. A damaged file (checksum, NaN, unreadable) is
        never used: one note, then `rebuild(settings)` retrains it with the retrain settings it
        was made with (None when they are unknown)."""
        key, tag = splits.context["split_hash"], splits.context.get("precision")
        path = self.retrained_path(net, key, tag)
        if f"{net}/{key}/{tag}" not in self.retrained and path.is_file() and splits.model_factory:
            try:
                state, _ = read_checkpoint(path)
            except UserError as err:
                print(f"note: retrained reference {path} is unusable ({err}); retraining it", file=sys.stderr)
                rebuild(self.retrained_settings(path))  # replaces the file (a refusal leaves it, to refuse again)
            else:
                model = splits.model_factory()
                model.load_state_dict(state)
                self.retrained[f"{net}/{key}/{tag}"] = model_copy(model, "cpu").eval()
        kept = self.retrained.get(f"{net}/{key}/{tag}")
        return None if kept is None else model_copy(kept, device or splits.forget.images.device).eval()

    def drop_models(self, keep: str | None = None) -> None:
        """Forget the checkpoints, and the U-LiRA shadow sets, held on any device but `keep` (a Ray
        worker that moves to another GPU: ssd/backends/ray_backend.py)."""
        for key in [k for k in self._models if k[3] != keep]:
            del self._models[key]
        for key in [k for k in self.ulira_shadows if isinstance(k, tuple) and len(k) > 4 and k[4] != keep]:
            del self.ulira_shadows[key]  # keyed (net, dataset, data root, n_forget, device, …): privacy/audit.py

    def model(self, spec: RunSpec) -> tuple[nn.Module, dict[str, Any]]:
        key = (spec.weight_path, spec.net, spec.dataset, spec.device)
        if key not in self._models:
            info = dataset_info(spec.dataset)
            self._models[key] = load_model(spec.weight_path, net=spec.net, dataset=spec.dataset,
                                           num_classes=info.num_classes, device=spec.device)
        return self._models[key]


def model_copy(model: nn.Module, device: str | torch.device) -> nn.Module:
    """A copy of `model` with its parameters and buffers on `device`, made without a second
    copy on the model's own device (a deepcopy then `.to()` would briefly hold two on the GPU)."""
    memo: dict[int, Any] = {}
    for p in model.parameters():
        memo[id(p)] = nn.Parameter(p.detach().to(device, copy=True), requires_grad=p.requires_grad)
    for b in model.buffers():
        memo[id(b)] = b.detach().to(device, copy=True)
    return copy.deepcopy(model, memo)


def resolve_forget_class(spec: RunSpec) -> int | None:
    """A class given by name or index: a model output for full_class, a fine class for sub_class."""
    info = dataset_info(spec.dataset)
    if spec.task == "random":
        if spec.forget_class is not None:
            raise UserError("the random task forgets random samples, not a class: drop -forget_class "
                            "(--n-forget sets how many)")
        return None
    if spec.forget_class is None:
        raise UserError(f"task {spec.task} needs -forget_class")
    if spec.task == "sub_class":
        if info.fine_classes is None:
            raise UserError(f"sub-class forgetting needs a coarse dataset (e.g. Cifar20), not {spec.dataset}")
        return resolve_class(spec.forget_class, info.fine_classes, info.fine_aliases)
    return resolve_class(spec.forget_class, info.classes, info.aliases)


# Models fine-tuned from ImageNet weights: their reference models (retrain, blindspot's
# incompetent teacher, ZRF's untrained model) start from those weights with a fresh head,
# as the authors' `ViT(num_classes)` does, never from a random backbone.
PRETRAINED_START = ("ViT",)


def reference_start(spec: RunSpec, meta: dict[str, Any] | None) -> tuple[str | None, str | None]:
    """(ImageNet weights folder for the reference models, why they are unavailable).

    The folder is `spec.pretrained` (--pretrained, a suite's [pretrained] table), else the one
    recorded in the checkpoint by pretrain_model.py; models trained from scratch need none.
    """
    if spec.net not in PRETRAINED_START:
        return None, None
    folder = spec.pretrained or ((meta or {}).get("config") or {}).get("pretrained")
    if folder and Path(folder).is_dir():
        return str(folder), None
    missing = f" ({folder} does not exist)" if folder else ""
    return None, (f"{spec.net} ZRF, ActDist, retrain and blindspot are unavailable: their reference models start "
                  f"from the ImageNet weights the checkpoint was fine-tuned from{missing}; pass --pretrained DIR")


def build_splits(spec: RunSpec, session: Session, checkpoint_sha: str, meta: dict[str, Any] | None = None) -> Splits:
    """The forget/retain split on the checkpoint's own data (its `data_subset` meta); fresh
    models (retrain, ZRF's untrained twin) get the checkpoint's architecture options."""
    info = dataset_info(spec.dataset)
    device = torch.device(spec.device)
    start, unavailable = reference_start(spec, meta)
    options = model_options(meta or {})
    subset = (meta or {}).get("data_subset") or {}

    def factory() -> nn.Module:
        model = build_model(spec.net, info, pretrained=start, **options).to(device)
        return prec.memory_format(model, spec.channels_last, device)

    train = session.data(spec, True, subset.get("train")).to(device)
    test = session.data(spec, False, subset.get("test")).to(device)
    n_forget = spec.n_forget
    if isinstance(n_forget, float) and 0 < n_forget < 1:  # a fraction of the training set
        n_forget = max(1, round(n_forget * len(train)))
    context = {"checkpoint_sha256": checkpoint_sha, "dataset": spec.dataset, "net": spec.net,
               "cache_dir": str(session.cache_dir)}
    if unavailable:
        context["references_unavailable"] = unavailable
    if prec.key_fields(dataclasses.asdict(spec)).get("precision"):  # retrained references are kept per precision
        context["precision"] = prec.effective_precision(spec.precision, spec.device)
    return make_splits(
        spec.task, train, test, forget_class=resolve_forget_class(spec), n_forget=int(n_forget),
        seed=spec.seed, retain_eval_size=spec.retain_eval_size, model_factory=None if unavailable else factory,
        context=context,
    )


def run_one(spec: RunSpec, session: Session | None = None, *, progress: bool = False,
            on_splits: Callable[[nn.Module, Splits], None] | None = None) -> dict[str, Any]:
    """Run one method on one forget request and return the result row (metrics + provenance).
    `on_splits(original model, splits)` is called once the run is checked, before the method."""
    from ssd.metrics import evaluate

    session = session or Session()
    if spec.threads:
        torch.set_num_threads(spec.threads)
    method = METHOD_ALIASES.get(spec.method, spec.method)
    cfg = method_config(method, spec)
    cfg.progress = progress
    if spec.task not in METHODS.get(method).tasks:
        raise UserError(f"method {method!r} is not defined for the {spec.task} task")
    original, meta = session.model(spec)
    splits = build_splits(spec, session, meta["sha256"], meta)
    if splits.context.get("references_unavailable"):
        print(f"[run] {splits.context['references_unavailable']}", file=sys.stderr)
    audit_settings = None
    if spec.ulira:  # every audit setting checked against the run (sizes, memory) before any work
        from ssd.privacy.audit import plan_for_run

        audit_settings = plan_for_run(spec, session.audit_scope(spec), splits)
    if on_splits is not None:  # the unchanged model on this split (a main's summary), not a second split
        on_splits(original, splits)
    device = torch.device(spec.device)

    model = prec.memory_format(copy.deepcopy(original), spec.channels_last, device)
    peak = prec.PeakMemory(device)
    with peak, prec.precision_scope(spec.precision, device):  # the method and its evaluation (docs/precision.md)
        synchronize(device)
        t0 = time.perf_counter()
        model = METHODS.get(method).fn(model, splits, cfg)
        synchronize(device)
        method_time = time.perf_counter() - t0

        if method == "retrain":
            session.save_retrained(spec.net, splits, model, dataclasses.asdict(cfg))

        def rebuild(settings: dict[str, Any] | None) -> None:  # a damaged retrained reference
            rcfg = retrain_config(settings, spec, session.retrained_path(spec.net, splits.context["split_hash"],
                                                                         splits.context.get("precision")))
            rcfg.progress = progress
            ref = METHODS.get("retrain").fn(copy.deepcopy(original), splits, rcfg)
            session.save_retrained(spec.net, splits, ref, dataclasses.asdict(rcfg))

        retrained = session.load_retrained(spec.net, splits, rebuild, device)
        torch.manual_seed(spec.seed)
        untrained = splits.model_factory() if splits.model_factory else None
        details: dict[str, Any] = {}
        metrics = evaluate(model, splits, device=device, untrained=untrained,
                           retrained=retrained, seed=spec.seed, details=details)
        if spec.task in ("full_class", "sub_class") and retrained is not None:
            from ssd.privacy.cmia import cmia_for_run  # the class-level attack (MIA-NN), docs/privacy.md

            cmia_metrics, details["cmia"] = cmia_for_run(model, retrained, splits)
            metrics.update(cmia_metrics)
        del model, retrained, untrained  # the reference models' device copies are released before the audit
    metrics.update(method_timing(method_time, splits.context.get("ssd_stats")))
    if spec.ulira:
        from ssd.privacy.audit import ulira_for_run

        audit_metrics, details["ulira"] = ulira_for_run(spec, session.audit_scope(spec), method, cfg, splits,
                                                        settings=audit_settings, progress=progress)
        metrics.update(audit_metrics)
    return result_row(spec, method, cfg, meta, splits, metrics, details, spec_key(spec, cfg, meta["sha256"]),
                      peak_memory=peak.record())


def retrain_config(settings: dict[str, Any] | None, spec: RunSpec, path: Path) -> MethodConfig:
    """The retrain config a damaged reference was made with (say a suite's retrain epochs), on
    this run's device; refused in one line when those settings are unknown, since retrain's
    defaults would make another reference than the one the other runs were scored against."""
    entry = METHODS.get("retrain")
    names = {f.name for f in dataclasses.fields(entry.config)}
    if settings is None or not set(settings) <= names:
        raise UserError(f"retrained reference {path} is damaged and the retrain settings that made it are unknown "
                        f"(no {path.with_suffix('.json').name} beside it): remake it by running this split's retrain "
                        "with those settings (the retrain row's config.method) into another results file, then "
                        "run this again")
    kept = {k: v for k, v in settings.items() if k not in ("device", "progress")}
    return entry.config(**{**kept, "device": spec.device})


def method_timing(method_time: float, ssd_stats: dict[str, Any] | None) -> dict[str, Any]:
    """MethodTime (this run), whether D's importances came from the cache, the seconds they
    took when they were computed, and MethodTimeCold: what the run costs without a cache
    (the authors' code recomputes D every run, and the paper's speed claim is about that).

    MethodTimeCold = MethodTime, plus D's compute time when D came from the cache; NaN when
    a cached entry predates recorded compute times (unknown, not zero). The importance
    cache's own work (keying, reading, checking, writing: `cache_io_s`) is in neither: the
    timed window holds it, so it is taken out here and recorded as CacheIOTime.
    """
    hit = None if not ssd_stats else ssd_stats.get("cache_hit")
    d_s = None if not ssd_stats else ssd_stats.get("d_importance_s")
    io_s = float((ssd_stats or {}).get("cache_io_s") or 0.0)
    method_time = max(method_time - io_s, 0.0)
    if hit:
        cold = method_time + d_s if d_s is not None else float("nan")
    else:
        cold = method_time
    return {"MethodTime": method_time, "MethodTimeCold": cold, "DCacheHit": hit,
            "DImportanceTime": float("nan") if d_s is None else float(d_s), "CacheIOTime": io_s}


def result_row(spec: RunSpec, method: str, cfg: MethodConfig, meta: dict[str, Any], splits: Splits,
               metrics: dict[str, Any], details: dict[str, Any], key: str, *,
               peak_memory: dict[str, Any] | None = None) -> dict[str, Any]:
    """One result line: metrics plus everything needed to trust, re-run and compare it
    (resolved config, split hash, seed, checkpoint sha256, code version). Runs and sweep
    points both write this shape."""
    info = dataset_info(spec.dataset)
    fc = splits.forget_fine_class if spec.task == "sub_class" else splits.forget_class
    names = info.fine_classes if spec.task == "sub_class" else info.classes
    return {
        "run_key": key,
        "task": spec.task, "net": spec.net, "dataset": spec.dataset, "method": spec.label or method,
        **({"variant_of": method} if spec.label else {}),
        "forget_class": None if fc is None else int(fc),
        "forget_class_name": None if fc is None or names is None else names[fc],
        "seed": spec.seed, "protocol": getattr(cfg, "protocol", "ours"), "metrics": metrics, "details": details,
        "precision": prec.effective_precision(spec.precision, spec.device),
        "channels_last": prec.effective_channels_last(spec.channels_last, spec.device),
        **({"peak_memory": peak_memory} if peak_memory else {}),  # the method and its evaluation
        "method_stats": splits.context.get("ssd_stats"),
        "references_unavailable": splits.context.get("references_unavailable"),
        "config": {"method": dataclasses.asdict(cfg), "run": dataclasses.asdict(spec)},
        "split_hash": splits.context.get("split_hash"),
        "n_forget": len(splits.forget), "n_retain": len(splits.retain), "n_forget_test": len(splits.forget_test),
        "checkpoint": spec.weight_path, "checkpoint_sha256": meta["sha256"],
        "model_options": model_options(meta), "data_subset": meta.get("data_subset"),
        "threads": torch.get_num_threads(),
        "code_version": code_version(), "time_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        **({"notes": cfg.notes()} if cfg.notes() else {}),
    }
