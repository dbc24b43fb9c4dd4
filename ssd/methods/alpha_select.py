"""α without hand-tuning for SSD and LFSSD: `alpha="auto"` and `alpha="search"`.

* `auto`: Adaptive SSD's rule (Schoepf, Foster & Brintrup 2024, arXiv 2402.10098; code
  if-loops/adaptive-selective-synaptic-dampening, `error_unlearning.ipynb`, functions
  `ssd` and `ParameterPerturber.modify_weight`): α is the p-th percentile of the
  element-wise ratio imp_Df / imp_D over every parameter element (0/0 and x/0 left out),
  with p = 100 − ln(1 + 100·|Df| / (|Dr| + |Df|)). It costs one percentile beyond the
  importances. See docs/alpha.md.
* `search`: with the importances computed once, dampen with every (α, λ) of a grid,
  score each on selection sets carved from the *training* split (a seeded sample of Df
  and of Dr; never the test set), and pick by the rule in :func:`choose`. The whole
  search runs inside the method, so it is all in MethodTime.

Both record what they did in `splits.context["ssd_stats"]["alpha_select"]`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from datasets.base import ImageData
from ssd.dampening import dampen, snapshot_weights
from ssd.errors import UserError
from ssd.methods.registry import MethodConfig
from ssd.utils import model_device

# Geometric-ish grid around the paper's 10 (ViT's 5 and 25 included): 1 … 100.
DEFAULT_GRID = (1.0, 1.5, 2.0, 3.0, 5.0, 7.0, 10.0, 15.0, 20.0, 25.0, 30.0, 50.0, 100.0)


@dataclass
class AlphaSelectConfig(MethodConfig):
    """Settings of `alpha="search"` (ignored otherwise).

    search_alphas / search_lams: the grid (None: DEFAULT_GRID, and the config's own λ).
    search_budget: largest allowed fall of held-out retain accuracy, in points.
    search_target: held-out forget accuracy (percent) that counts as forgotten; None: the
    task's default (full/sub-class: chance = 100/C; random: the original model's
    accuracy on the held-out retain images), see `default_target`.
    search_forget_n / search_retain_n: sizes of the selection sets drawn from Df and Dr.
    """

    search_alphas: Sequence[float] | None = None
    search_lams: Sequence[float] | None = None
    search_budget: float = 1.0
    search_target: float | None = None
    search_forget_n: int = 500
    search_retain_n: int = 2000


def is_keyword(alpha: Any) -> bool:
    return isinstance(alpha, str)


def check_search(cfg: Any) -> None:
    """One-line UserErrors for the search settings `MethodConfig.__post_init__` does not cover
    (it refuses a wrong type, sign or non-finite number of α, search_budget and the rest when
    the config is made): the grids' contents, a target above 100 %, a zero sample size."""
    from ssd.methods.registry import check_grid

    for name, grid, positive in (("search_alphas", cfg.search_alphas, False), ("search_lams", cfg.search_lams, True)):
        if grid is not None:  # the rule of --alpha and --lambda (finite; λ > 0)
            check_grid(f"SSD {name}", grid, positive=positive)
    if cfg.search_target is not None and not 0 <= cfg.search_target <= 100:
        raise UserError(f"SSD search_target must be a percentage in 0..100; got {cfg.search_target!r}")
    if cfg.search_forget_n < 1 or cfg.search_retain_n < 1:
        raise UserError("SSD search_forget_n and search_retain_n must be positive")


# ---------------------------------------------------------------------------- auto


def effective_reference(cfg: Any) -> str:
    """D for SSD: the configured reference, else ASSD's (the retain set: `original_importances =
    calc_importance(retain_loader)`) for alpha="auto" and the paper's (retain ∪ forget) otherwise."""
    return cfg.reference or ("retain" if cfg.alpha == "auto" else "full")



def assd_percentile(n_forget: int, n_all: int) -> float:
    """ASSD's percentile: 100 − ln(1 + 100·|Df|/|D|), |D| = |Dr| + |Df| (the forget share in percent)."""
    return 100.0 - math.log1p(100.0 * n_forget / n_all)


def importance_ratios(imp_d: dict[str, torch.Tensor], imp_df: dict[str, torch.Tensor],
                      keep: Callable[[str], bool] | None = None) -> torch.Tensor:
    """imp_Df / imp_D of every (kept) parameter element, flattened, with NaN (0/0) and ±inf (x/0)
    dropped as ASSD does; float32 on the importances' device."""
    parts = []
    for name, d in imp_d.items():
        if keep is not None and not keep(name):
            continue
        r = (imp_df[name].float() / d.float()).flatten()
        parts.append(r[torch.isfinite(r)])
    return torch.cat(parts) if parts else torch.empty(0)


def percentile(values: torch.Tensor, q: float) -> float:
    """numpy's default ("linear") percentile of a 1-D tensor, via two k-th values (no size
    limit, unlike torch.quantile; works on any device)."""
    n = values.numel()
    if n == 0:
        return math.inf
    rank = q / 100.0 * (n - 1)
    lo, hi = math.floor(rank), math.ceil(rank)
    a = float(values.kthvalue(lo + 1).values)
    b = a if hi == lo else float(values.kthvalue(hi + 1).values)
    return a + (b - a) * (rank - lo)


def auto_alpha(imp_d: dict[str, torch.Tensor], imp_df: dict[str, torch.Tensor], n_forget: int, n_all: int,
               keep: Callable[[str], bool] | None = None) -> tuple[float, dict[str, Any]]:
    """(α, record): ASSD's α for a forget set of `n_forget` out of `n_all` training samples."""
    q = assd_percentile(n_forget, n_all)
    ratios = importance_ratios(imp_d, imp_df, keep)
    alpha = percentile(ratios, q)
    return alpha, {"mode": "auto", "alpha": alpha, "percentile": q, "n_forget": n_forget, "n_all": n_all,
                   "finite_ratios": int(ratios.numel()),
                   "rule": "ASSD: alpha = percentile 100 - ln(1 + 100*|Df|/|D|) of imp_Df/imp_D over all "
                           "parameter elements (0/0 and x/0 left out)"}


# ---------------------------------------------------------------------------- search


def selection_sets(forget: ImageData, retain: ImageData, retain_eval: ImageData | None, n_forget: int,
                   n_retain: int, seed: int) -> tuple[ImageData, ImageData]:
    """Seeded samples of the forget and retain *training* sets on which candidates are scored.

    Retain images that score DrTrain/MIA (`retain_eval`) are avoided while enough others
    remain, so the choice of α is not made on the rows that report it.
    """
    g = torch.Generator().manual_seed(10_007 + seed)
    f_rows = torch.randperm(len(forget), generator=g)[:n_forget].sort().values
    pool = torch.arange(len(retain))
    if retain_eval is not None and retain_eval is not retain and retain_eval.indices is not None:
        free = ~torch.isin(retain.indices.cpu(), retain_eval.indices.cpu())
        if int(free.sum()) >= min(n_retain, len(retain)):
            pool = pool[free]
    r_rows = pool[torch.randperm(len(pool), generator=g)[:n_retain]].sort().values
    return forget.subset(f_rows), retain.subset(r_rows)


def default_target(task: str, num_classes: int, retain_base: float) -> tuple[float, str]:
    """The held-out forget accuracy that counts as forgotten, and why.

    full_class: a retrained model never saw the class and scores ≈ 0 on it; we ask for
    no better than chance (100/C). sub_class: a retrained model's score lies between
    chance and what the sibling fine classes generalise to, which only retraining tells;
    we aim at chance and let the retain budget stop the search earlier. random: a
    retrained model scores forgotten random samples like unseen data, at most what the
    original scores on retained training images: that accuracy is the target.
    """
    if task == "random":
        return retain_base, "original model's held-out retain accuracy (forgotten samples should look no more " \
                            "familiar than retained ones)"
    return 100.0 / num_classes, f"chance (100/{num_classes})"


def choose(candidates: list[dict[str, Any]], target: float, budget: float, retain_base: float) -> tuple[int, str]:
    """Index of the chosen candidate and which branch of the rule chose it.

    1. `met`: among candidates whose held-out retain accuracy fell by ≤ budget and whose
       held-out forget accuracy is ≤ target, the largest α (then the largest λ): the
       mildest dampening that forgets.
    2. `closest`: none reaches the target within budget → the lowest forget accuracy
       within budget (ties: larger α, larger λ): forget as far as the budget allows.
    3. `budget_exceeded`: nothing is within budget → the smallest retain fall (ties: larger α).
    """
    def mild(i: int) -> tuple[float, float]:
        return candidates[i]["alpha"], candidates[i]["lam"]

    ok = [i for i, c in enumerate(candidates) if retain_base - c["retain_acc"] <= budget + 1e-9]
    met = [i for i in ok if candidates[i]["forget_acc"] <= target + 1e-9]
    if met:
        return max(met, key=mild), "met"
    if ok:
        return min(ok, key=lambda i: (candidates[i]["forget_acc"], tuple(-v for v in mild(i)))), "closest"
    return min(range(len(candidates)),
               key=lambda i: (retain_base - candidates[i]["retain_acc"], tuple(-v for v in mild(i)))), "budget_exceeded"


def search_alpha(model: nn.Module, splits: Any, cfg: Any, dampen_at: Callable[[float, float], int],
                 restore: Callable[[], None]) -> tuple[float, float, dict[str, Any]]:
    """Run the grid and return (α, λ, record); the model is left at its original weights.

    `dampen_at(alpha, lam)` dampens the model in place and returns the selected count;
    `restore()` puts the original weights back.
    """
    from ssd.metrics import accuracy, predict_logits

    device = model_device(model)
    f_sel, r_sel = selection_sets(splits.forget, splits.retain, splits.retain_eval, cfg.search_forget_n,
                                  cfg.search_retain_n, cfg.seed)
    f_sel, r_sel = f_sel.to(device), r_sel.to(device)

    def score() -> tuple[float, float]:
        return (accuracy(predict_logits(model, f_sel), f_sel.targets),
                accuracy(predict_logits(model, r_sel), r_sel.targets))

    forget_base, retain_base = score()
    if cfg.search_target is not None:
        target, why = float(cfg.search_target), "set by search_target"
    else:
        target, why = default_target(splits.task, splits.num_classes, retain_base)
    alphas = sorted({float(a) for a in (cfg.search_alphas or DEFAULT_GRID)}, reverse=True)
    lams = [float(v) for v in (cfg.search_lams or [cfg.lam])]
    candidates: list[dict[str, Any]] = []
    try:
        for lam in lams:
            for alpha in alphas:
                restore()
                selected = dampen_at(alpha, lam)
                f_acc, r_acc = score()
                candidates.append({"alpha": alpha, "lam": lam, "selected": selected,
                                   "forget_acc": f_acc, "retain_acc": r_acc})
    finally:
        restore()
    best, branch = choose(candidates, target, cfg.search_budget, retain_base)
    record = {
        "mode": "search", "alpha": candidates[best]["alpha"], "lam": candidates[best]["lam"], "branch": branch,
        "rule": f"largest alpha (then lambda) with held-out forget acc <= target and held-out retain acc "
                f">= base - {cfg.search_budget:g}; else lowest forget acc within budget; else smallest retain fall",
        "target": target, "target_reason": why, "budget": float(cfg.search_budget),
        "forget_base": forget_base, "retain_base": retain_base,
        "n_forget_heldout": len(f_sel), "n_retain_heldout": len(r_sel), "heldout_from": "train",
        "candidates": candidates,
    }
    return candidates[best]["alpha"], candidates[best]["lam"], record


def resolve_alpha(model: nn.Module, cfg: Any, imp_d: dict[str, torch.Tensor], imp_df: dict[str, torch.Tensor],
                  keep: Callable[[str], bool] | None, n_forget: int, n_all: int,
                  splits: Any = None) -> tuple[float, float, dict[str, Any] | None]:
    """(α, λ, record) to dampen with: the config's numbers, or those "auto"/"search" chose
    (record None for a number). The model's weights are unchanged on return."""
    if not is_keyword(cfg.alpha):
        return float(cfg.alpha), float(cfg.lam), None
    if cfg.alpha == "auto":
        alpha, record = auto_alpha(imp_d, imp_df, n_forget, n_all, keep)
        return alpha, float(cfg.lam), record
    if splits is None:
        raise UserError("SSD alpha='search' needs the forget/retain splits (run it as the ssd/lfssd method)")
    def dampen_at(alpha: float, lam: float) -> int:
        return dampen(model, imp_d, imp_df, alpha=alpha, lam=lam, exponent=cfg.exponent, bound=cfg.bound,
                      param_filter=keep).total_selected

    return search_alpha(model, splits, cfg, dampen_at, snapshot_weights(model))


def describe(record: dict[str, Any]) -> str:
    """Plain words for the console: the mode, the α it chose and why."""
    if record["mode"] == "auto":
        return (f"alpha=auto chose α = {record['alpha']:.4g}: the {record['percentile']:.2f}th percentile of "
                f"imp_Df/imp_D, since the forget set is {record['n_forget']} of {record['n_all']} training images")
    c = next(c for c in record["candidates"] if c["alpha"] == record["alpha"] and c["lam"] == record["lam"])
    why = {"met": "the mildest setting that forgets",
           "closest": "no setting forgot within the retain budget; this one forgets most within it",
           "budget_exceeded": "every setting cost more retain accuracy than the budget; this one costs least"}
    return (f"alpha=search chose α = {record['alpha']:g}, λ = {record['lam']:g} out of {len(record['candidates'])} "
            f"settings ({why.get(record['branch'], record['branch'])}): on held-out images it leaves forget "
            f"accuracy at {c['forget_acc']:.2f}% (forgotten means at most {record['target']:.2f}%) and retain "
            f"accuracy at {c['retain_acc']:.2f}% (the original: {record['retain_base']:.2f}%, budget "
            f"{record['budget']:g} points)")
