"""Run keys: what makes two runs the same run (`key_from_fields`), for a RunSpec (`spec_key`),
for a row's run without its U-LiRA audit (`unaudited_key`), with the forget class as one
spelling (`canonical_class`). ssd.experiment re-exports them."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from datasets import dataset_info, resolve_class
from ssd import precision as prec
from ssd.errors import UserError
from ssd.methods.alpha_select import effective_reference
from ssd.names import METHOD_ALIASES
from ssd.results import run_key

if TYPE_CHECKING:
    from ssd.experiment import RunSpec
    from ssd.methods.registry import MethodConfig


def spec_key(spec: RunSpec, cfg: MethodConfig, checkpoint_sha: str) -> str:
    return key_from_fields(dataclasses.asdict(spec), dataclasses.asdict(cfg), checkpoint_sha)


def key_from_fields(run: dict[str, Any], cfg: dict[str, Any], checkpoint_sha: str, *, audit: bool = True) -> str:
    """A run's key from its RunSpec and method-config fields (a row's `config["run"]` and
    `config["method"]` give them back). Only what can change the run's result goes in:
    - no device, paths or weight folders;
    - no U-LiRA fields unless the run has the audit (`audit=False` leaves them out, giving
      the key of the same run without its audit), and no label unless it has one, so runs
      made before either existed keep their keys;
    - SSD's `search_*` settings only when alpha is "search" (no other α reads them), and its
      reference as resolved (None means "full", or "retain" for alpha = "auto"), so
      numeric-α runs keep the keys they had before α selection existed;
    - the forget class as resolved (`-forget_class two`, `2` and `02` on MNIST are one run);
    - precision and channels_last as the run's device makes them (ssd/precision.py key_fields),
      and only when not plain fp32 / the default memory format, so CPU runs keep their keys."""
    fields = {k: v for k, v in run.items() if k not in ("precision", "channels_last")}
    fields.update(prec.key_fields(run))
    for transient in ("device", "data_root", "download", "weight_path", "overrides", "pretrained", "threads"):
        fields.pop(transient, None)
    if not (audit and fields.get("ulira")):
        fields.pop("ulira", None), fields.pop("ulira_settings", None)
    if fields.get("label") is None:
        fields.pop("label", None)
    if fields.get("forget_class") is not None:
        fields["forget_class"] = canonical_class(fields)
    cfg_fields = {k: v for k, v in cfg.items() if k not in ("device", "progress")}
    if "alpha" in cfg_fields and cfg_fields["alpha"] != "search":
        cfg_fields = {k: v for k, v in cfg_fields.items() if not k.startswith("search_")}
    if "reference" in cfg_fields:
        cfg_fields["reference"] = effective_reference(SimpleNamespace(**cfg_fields))
    return run_key({**fields, "method": METHOD_ALIASES.get(fields["method"], fields["method"]),
                    "cfg": cfg_fields, "checkpoint_sha256": checkpoint_sha})


def canonical_class(run: dict[str, Any]) -> Any:
    """A run's forget class as one spelling: the dataset's name of the class it resolves to
    (`two`, `2`, `02` → "2" on MNIST; `sneaker` → "Sneaker"), so one experiment has one key.
    The names are what the mains and suites were given before, so recorded keys stay valid;
    a class or dataset this checkout cannot resolve is kept as given."""
    try:
        info = dataset_info(str(run.get("dataset")))
        fine = run.get("task") == "sub_class"
        names = info.fine_classes if fine else info.classes
        if names is None:
            return run["forget_class"]
        return names[resolve_class(run["forget_class"], names, info.fine_aliases if fine else info.aliases)]
    except (UserError, KeyError, TypeError):
        return run["forget_class"]


def unaudited_key(row: dict[str, Any]) -> str | None:
    """For a row made with the U-LiRA audit, the key of the same run without it (the audit
    adds metrics and changes nothing else); None for other rows."""
    config = row.get("config") or {}
    run, cfg = config.get("run") or {}, config.get("method")
    if not run.get("ulira") or not isinstance(cfg, dict) or not row.get("checkpoint_sha256"):
        return None
    return key_from_fields(run, cfg, row["checkpoint_sha256"], audit=False)
