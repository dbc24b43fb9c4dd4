"""What an α / λ sweep records, known before it runs: every point's config (`sweep_plan`,
which validates them all), what the sweep varies (`sweep_param`) and each point's run key
(`point_key`, `sweep_keys`: resume and a suite's plan skip recorded points). ssd.sweep
re-exports them."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

SSD_LIKE = ("ssd", "lfssd")


def sweep_param(alphas: Sequence[float], lambdas: Sequence[float]) -> str:
    """What an SSD sweep varies: "alpha", "lambda" (one α, several λ) or "grid" (both)."""
    if len(lambdas) > 1 and len(alphas) == 1:
        return "lambda"
    return "grid" if len(lambdas) > 1 else "alpha"


def sweep_plan(spec: Any, alphas: Sequence[float], lambdas: Sequence[float], methods: Sequence[str],
               baseline_alphas: Sequence[float] | None) -> tuple[Any, list[tuple[str, Any, list[Any]]]]:
    """(the baseline's config, [(method, its config, one config per point)]): every point's
    settings built, hence validated, before any work; methods not defined for the task left out."""
    from ssd.experiment import method_config
    from ssd.methods.registry import METHODS

    base_cfg = method_config("baseline", dataclasses.replace(spec, method="baseline", overrides={}))
    plan: list[tuple[str, Any, list[Any]]] = []
    for method in methods:
        if spec.task not in METHODS.get(method).tasks:
            continue
        if method in SSD_LIKE:
            cfg = method_config(method, dataclasses.replace(spec, method=method))
            if method == "lfssd":
                cfg = dataclasses.replace(cfg, mode="lf")
            plan.append((method, cfg, [dataclasses.replace(cfg, alpha=float(a), lam=float(lam))  # as rows record them
                                       for lam in lambdas for a in alphas if not isinstance(a, str)]
                         + [dataclasses.replace(cfg, alpha=a) for a in alphas if isinstance(a, str)]))
        else:
            grid = [a for a in (baseline_alphas if baseline_alphas is not None else alphas) if not isinstance(a, str)]
            plan.append((method, None, [method_config(method, dataclasses.replace(
                spec, method=method, overrides={"alpha": a})) for a in grid]))
    return base_cfg, plan


def sweep_keys(spec: Any, checkpoint_sha: str, alphas: Sequence[float], lambdas: Sequence[float],
               methods: Sequence[str], baseline_alphas: Sequence[float] | None) -> list[str]:
    """The run keys of every point a sweep records (its baseline row included), without running it."""
    base_cfg, plan = sweep_plan(spec, alphas, lambdas, methods, baseline_alphas)
    param = sweep_param(alphas, lambdas)
    return [point_key(spec, "baseline", base_cfg, checkpoint_sha, "none")] + [
        point_key(spec, m, c, checkpoint_sha, param if m in SSD_LIKE else "alpha") for m, _, cfgs in plan for c in cfgs]


def labelled(spec: Any, method: str, cfg: Any) -> Any:
    """An α-keyword point ("auto"/"search") is its own labelled curve, e.g. `ssd@auto`."""
    alpha = getattr(cfg, "alpha", None)
    return dataclasses.replace(spec, label=f"{method}@{alpha}") if isinstance(alpha, str) else spec


def point_key(spec: Any, method: str, cfg: Any, checkpoint_sha: str, param: str) -> str:
    """A sweep point's run key (known before the point is computed, so resume can skip it)."""
    from ssd.results import run_key
    from ssd.run_keys import spec_key

    return run_key({"sweep_of": spec_key(labelled(dataclasses.replace(spec, method=method), method, cfg), cfg,
                                         checkpoint_sha),
                    "param": param})
