"""`protocol`: which loaders a method runs with — ours (the default) or its reference code's.

Every method has a `protocol` setting (in :class:`~ssd.methods.registry.MethodConfig`):

* ``"ours"`` — the harness's defaults (for SSD: D in a seeded shuffled order, batch 64 in
  every task; see docs/ssd.md for why);
* ``"authors"`` — the data order and batch sizes of the method's reference implementation,
  per task (table below). For SSD/LFSSD this is the authors' D order (`order="paper"`,
  task by task, see :func:`ssd.importance.paper_order`) with their batch size.

The batch sizes are resolved when a method's config is built (:func:`apply_protocol`,
called by the experiment driver), so every result row's config shows the batch sizes
that ran. A batch size given explicitly (`-b`, `--set batch_size=…`) wins, as the
authors' own `-b` flag changes their loaders too. Every departure that no protocol
restores is listed in docs/departures.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from ssd.errors import UserError
from ssd.methods.registry import MethodConfig

PROTOCOLS = ("ours", "authors")
CLASS_TASKS = ("full_class", "sub_class")


def _per_task(full_class: int, sub_class: int, random: int) -> dict[str, int]:
    return {"full_class": full_class, "sub_class": sub_class, "random": random}


# Reference loaders' batch sizes: method → setting → task → value (ViT overrides below).
# Sources (file paths in the reference repositories):
#  SSD authors (if-loops/selective-synaptic-dampening, src/): forget_full_class_main.py and
#   forget_subclass_main.py `-b` default 64 for every loader (full_train_dl, forget_train_dl,
#   retain_train_dl); forget_random_main.py `-b` default 128 and `batch_size=128` for the
#   forget/retain loaders. finetune and retrain train on retain_train_dl (that batch size);
#   blindspot `b_s = 256` (ViT 128); amnesiac `DataLoader(..., 128)`; UNSIR noise loader 32,
#   heal loader 128 (the harness's defaults already).
#  LFSSD (jwf40/Information-Theoretic-Unlearning, src/forget_*_main.py): the same loaders.
#  JiT (same repository): forget_train_dl = `-b` (full class 128, sub-class 64) and
#   `batch_size=128` in forget_random_main.py.
#  NegGrad+ (meghdadk/SCRUB, MIA_experiments.ipynb: args.retain_bs = 32, args.forget_bs = 16,
#   with ng_alpha 0.9999, ng_epochs 5, ng_lr 0.01 — the settings our defaults come from).
#  SCRUB (meghdadk/SCRUB, large_scale_unlearning.ipynb: retain_loader batch_size=256,
#   forget_loader batch_size=512).
#  SalUn (OPTML-Group/Unlearn-Saliency, arg_parser.py --batch_size 256): our default already.
AUTHORS_SETTINGS: dict[str, dict[str, dict[str, int]]] = {
    "ssd": {"batch_size": _per_task(64, 64, 128)},
    "lfssd": {"batch_size": _per_task(64, 64, 128)},
    "finetune": {"batch_size": _per_task(64, 64, 128)},
    "retrain": {"batch_size": _per_task(64, 64, 128)},
    "blindspot": {"batch_size": _per_task(256, 256, 256)},
    "amnesiac": {"batch_size": _per_task(128, 128, 128)},
    "UNSIR": {"batch_size": _per_task(128, 128, 128), "impair_batch_size": _per_task(32, 32, 32)},
    "jit": {"batch_size": _per_task(128, 64, 128)},
    "neggrad_plus": {"batch_size": _per_task(32, 32, 32), "forget_batch_size": _per_task(16, 16, 16)},
    "scrub": {"batch_size": _per_task(256, 256, 256), "forget_batch_size": _per_task(512, 512, 512)},
    "salun": {"batch_size": _per_task(256, 256, 256)},
}
# Per-network batch sizes where the reference code sets its own for a network, applied under
# both protocols (a setting given explicitly still wins). docs/departures.md ("Per-network batch
# sizes") has the sources and what ViT at 224 px needs without them:
#  blindspot on ViT: `b_s = 128  # lowered batch size from 256 (original) to fit into memory`
#   (SSD repository src/forget_full_class_strategies.py L201-204, forget_subclass_strategies.py
#   L197-200, forget_random_strategies.py L155-158).
#  SCRUB on ViT: the SCRUB repository has no ViT; the only reference that runs SCRUB on ViT
#   (jwf40/Information-Theoretic-Unlearning src/forget_*_strategies.py::scrub, e.g. full class
#   L1152-1153) distils on the main's forget_train_dl / retain_train_dl, both at `-b`: 128 full
#   class (forget_full_class_main.py L42, L133-134), 64 sub-class (forget_subclass_main.py L60,
#   L148-149), 128 random (forget_random_main.py L125-126).
#  Fisher on ViT (not a reference setting: the authors' scripts never run FisherForgetting, on
#   any network): its exact diagonal over a seeded VIT_FISHER_SAMPLES-sample retain subset, not
#   all ≈ 50,000 (one ViT-B backward per sample and class: ≈ 5 M per CIFAR-100 run); the
#   measurement and arithmetic behind the number are in docs/departures.md.
VIT_FISHER_SAMPLES = 1000
NET_SETTINGS: dict[str, dict[str, dict[str, dict[str, int]]]] = {
    "ViT": {
        "blindspot": {"batch_size": _per_task(128, 128, 128)},
        "scrub": {"batch_size": _per_task(128, 64, 128), "forget_batch_size": _per_task(128, 64, 128)},
        "fisher": {"max_samples": _per_task(VIT_FISHER_SAMPLES, VIT_FISHER_SAMPLES, VIT_FISHER_SAMPLES)},
    },
}


def check_protocol(value: str) -> None:
    if value not in PROTOCOLS:
        raise UserError(f"protocol must be one of {', '.join(PROTOCOLS)}; got {value!r}")


def _resolved(table: dict[str, dict[str, int]], task: str) -> dict[str, Any]:
    return {name: by_task[task] for name, by_task in table.items() if task in by_task}


def net_settings(method: str, task: str, net: str | None) -> dict[str, Any]:
    """The reference code's batch sizes for `method` on this network and task ({} when it has none)."""
    return _resolved(NET_SETTINGS.get(net or "", {}).get(method, {}), task)


def authors_settings(method: str, task: str, net: str | None = None) -> dict[str, Any]:
    """The reference code's batch sizes for `method` on `task` ({} when it has none); a network's
    own (NET_SETTINGS) replace the defaults."""
    return {**_resolved(AUTHORS_SETTINGS.get(method, {}), task), **net_settings(method, task, net)}


def apply_protocol(cfg: MethodConfig, method: str, task: str, net: str | None = None,
                   explicit: Iterable[str] = ()) -> MethodConfig:
    """`cfg` with the network's own batch sizes filled in (NET_SETTINGS, either protocol) and,
    when `cfg.protocol == "authors"`, the authors' settings; settings named in `explicit`
    (given by the user) are kept."""
    check_protocol(cfg.protocol)
    wanted = authors_settings(method, task, net) if cfg.protocol == "authors" else net_settings(method, task, net)
    names = {f.name for f in dataclasses.fields(cfg)}
    keep = set(explicit)
    changes = {k: v for k, v in wanted.items() if k in names and k not in keep}
    return dataclasses.replace(cfg, **changes) if changes else cfg
