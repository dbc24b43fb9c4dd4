"""The registry of unlearning methods: one signature, one typed config per method.

Every method is `fn(model, splits, cfg) -> model`: it may modify and return `model`
(the caller passes a copy, so the loaded checkpoint is never touched) or return a new
module of the same architecture. Its hyper-parameters live in a dataclass deriving
from :class:`MethodConfig`, defined beside the method.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from torch import nn

from ssd.registry import Registry

if TYPE_CHECKING:
    from ssd.splits import Splits


@dataclass
class MethodConfig:
    """Settings every method has; subclasses add their own (all with defaults).

    protocol: "ours" (the harness's defaults) or "authors" (the data order and batch
    sizes of the method's reference code, per task; see ssd/methods/protocol.py).
    """

    seed: int = 0
    device: str = "cpu"
    batch_size: int = 128
    progress: bool = False
    protocol: str = "ours"

    def __post_init__(self) -> None:
        validate_config(self)

    def notes(self) -> list[str]:
        """Settings that are legal but unusual, said in the printout and recorded in the row."""
        return config_notes(self)


# Words a numeric α may also be (issue 13's rules that choose α); only where the field's type admits str.
ALPHA_WORDS = ("auto", "search")
# Must be > 0 (not just ≥ 0): zero means "no training" or "no dampening", never a run.
POSITIVE = ("epochs", "lr", "lam", "n_samples", "temperature", "kd_temperature", "noise_batch")
POSITIVE_SUFFIXES = ("batch_size", "chunk_size", "_lr")
ANY_SIGN = ("seed",)


def _types(annotation: Any) -> set[str] | None:
    """The simple types a field annotation names ("int | None" → {"int", "None"}); None if not simple."""
    parts = {p.strip() for p in str(annotation).replace("Optional[", "").rstrip("]").split("|")}
    simple = {"int", "float", "bool", "str", "None"}
    return parts if parts <= simple else None


def _kind(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    return "str" if isinstance(value, str) else type(value).__name__


def validate_config(cfg: Any) -> None:
    """The same rule for every entry point (mains, --set, suites, sweeps): a value of the wrong
    type, a NaN or infinite number, a negative hyper-parameter, a zero epoch count, batch,
    rate or λ is one UserError line before any work. α may be 0 (see config_notes)."""
    from ssd.errors import UserError

    cls = type(cfg).__name__
    for f in dataclasses.fields(cfg):
        value, types = getattr(cfg, f.name), _types(f.type)
        if types is not None:
            kind = _kind(value)
            ok = kind in types or (kind == "int" and "float" in types)
            if not ok:
                want = " or ".join(sorted(t for t in types if t != "None")) + (" (or None)" if "None" in types else "")
                raise UserError(f"method setting {f.name} must be {want}; got {value!r} ({cls})")
            if kind == "int" and "int" not in types:  # `--set alpha=10` is `--alpha 10`: one setting, one run key
                value = float(value)
                setattr(cfg, f.name, value)
        if isinstance(value, str) and f.name == "alpha" and value not in ALPHA_WORDS:
            raise UserError(f"method setting alpha must be a number ≥ 0 or one of {', '.join(ALPHA_WORDS)}; "
                            f"got {value!r} ({cls})")
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        if not math.isfinite(value):
            raise UserError(f"method setting {f.name} must be a finite number; got {value!r} ({cls})")
        if f.name in ANY_SIGN:
            continue
        positive = f.name in POSITIVE or f.name.endswith(POSITIVE_SUFFIXES)
        if value < 0 or (positive and value == 0):
            raise UserError(f"method setting {f.name} must be {'> 0' if positive else '≥ 0'}; got {value!r} ({cls})")


def check_grid(name: str, values: Any, *, positive: bool = False) -> list[float]:
    """A list of α (`positive=False`: finite, ≥ 0, as --alpha) or λ values (`positive`: finite,
    > 0, as --lambda): the one rule for SSD's search grid, the sweeps' and the suites'."""
    from ssd.errors import UserError

    rule = "> 0" if positive else "≥ 0"
    if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)) or not values:
        raise UserError(f"{name} must be a non-empty list of finite numbers {rule}, e.g. [1, 10, 100]; got {values!r}")
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
           or v < 0 or (positive and v == 0)]
    if bad:
        raise UserError(f"{name} values must be finite numbers {rule}; got {', '.join(map(repr, bad))}")
    return [float(v) for v in values]


def config_notes(cfg: Any) -> list[str]:
    notes = []
    if getattr(cfg, "alpha", None) == 0:
        notes.append("alpha = 0 is legal but unusual: for SSD every parameter with any forget importance is "
                     "selected; for the dampening baselines the scaled weights become 0")
    return notes


C = TypeVar("C", bound=MethodConfig)
ALL_TASKS = ("full_class", "sub_class", "random")
MethodFn = Callable[[nn.Module, "Splits", C], nn.Module]


@dataclass(frozen=True)
class MethodEntry:
    name: str
    fn: Callable[[nn.Module, Splits, MethodConfig], nn.Module]
    config: type[MethodConfig]
    description: str = ""
    tasks: tuple[str, ...] = ALL_TASKS  # the forgetting tasks the method is defined for


METHODS: Registry[MethodEntry] = Registry("method")


def register_method(
    name: str,
    config: type[MethodConfig] = MethodConfig,
    description: str = "",
    tasks: tuple[str, ...] = ALL_TASKS,
) -> Callable[[MethodFn], MethodFn]:
    """Decorator: `@register_method("ssd", SSDConfig)` over `fn(model, splits, cfg)`."""

    def deco(fn: MethodFn) -> MethodFn:
        doc = description or (fn.__doc__ or "").strip().split("\n")[0]
        METHODS.add(name, MethodEntry(name, fn, config, doc, tuple(tasks)))
        return fn

    return deco
