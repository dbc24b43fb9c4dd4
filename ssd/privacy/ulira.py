"""U-LiRA (Hayes et al. 2024, after LiRA, Carlini et al. 2022): pure functions of confidences.

The game, per forget sample x of a target model t: was t trained on x and then made to
unlearn it (the method under test), or was it trained without x from the start (retraining,
the ideal unlearner)? Shadow models give, for every candidate x, observations of the
logit-scaled confidence φ = log p_y/(1 − p_y) in both worlds:

- "unlearned": shadows that trained on x and then unlearned it (x in their forget set);
- "never seen": retrain-from-scratch references, trained on their half without any candidate.

Two Gaussians are fitted per candidate (means per candidate; by default one variance per
world pooled over candidates, LiRA's fixed-variance variant for few shadows), and the
target's confidence on x is scored by the log likelihood ratio log N(φ; unlearned) −
log N(φ; never seen): > 0 says "unlearned" (distinguishable from retraining).

Every shadow serves as the target in turn, with the Gaussians fitted on the other K − 1
(leave-one-out: a target's own observation must never be part of its reference
distribution). The positives are each target's unlearned model on its forget samples, the
negatives its retrain reference on the same samples, so the two classes are balanced and
AUC 0.5 means the method is as private as retraining on these samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ssd.metrics import _auc, tpr_at_fpr


def logit_confidence(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """φ = log p_y − log(1 − p_y) of the softmax, computed stably as z_y − logsumexp_{j≠y} z_j.

    `logits` is ...×N×C, `targets` N; returns ...×N (float64).
    """
    z = logits.double()
    y = targets.cpu().long().view(*([1] * (z.dim() - 2)), -1, 1).expand(*z.shape[:-1], 1)
    true = z.gather(-1, y).squeeze(-1)
    others = z.scatter(-1, y, float("-inf"))
    return true - torch.logsumexp(others, dim=-1)


def random_halves(k: int, n: int, seed: int = 0) -> torch.Tensor:
    """K×N bool: each model holds a random exact half (⌊N/2⌋ rows) of the pool."""
    gen = torch.Generator().manual_seed(seed)
    out = torch.zeros(k, n, dtype=torch.bool)
    for i in range(k):
        out[i, torch.randperm(n, generator=gen)[: n // 2]] = True
    return out


def balanced_membership(k: int, n_pool: int, n_candidates: int, seed: int = 0) -> torch.Tensor:
    """K×N bool with every model holding exactly ⌊N/2⌋ rows of the pool.

    The first `n_candidates` columns are the candidates: each is in exactly K/2 models
    (LiRA's balanced design, so every candidate has as many "unlearned" shadows as
    possible), and each model holds the same number of them (⌊M/2⌋ or ⌈M/2⌉), so every
    forget set and every retain set has the same size and the ensemble trains each model
    with exactly the batches the plain loop would use. The other rows fill each model up to
    half the pool at random.
    """
    if k % 2 or k < 4:
        raise ValueError(f"U-LiRA needs an even number of at least 4 shadow models, got {k}")
    half = n_pool // 2
    if not 0 < n_candidates <= half:
        raise ValueError(f"candidates must be in 1..{half} (half the pool), got {n_candidates}")
    gen = torch.Generator().manual_seed(seed)
    cand = torch.zeros(k, n_candidates, dtype=torch.bool)
    for j in range(n_candidates):
        cand[torch.randperm(k, generator=gen)[: k // 2], j] = True
    while True:  # even out the rows by swapping within columns (column sums stay K/2)
        sums = cand.sum(1)
        hi, lo = int(sums.argmax()), int(sums.argmin())
        if int(sums[hi]) - int(sums[lo]) <= 1:
            break
        movable = (cand[hi] & ~cand[lo]).nonzero().flatten()
        j = int(movable[torch.randint(0, movable.numel(), (1,), generator=gen)])
        cand[hi, j], cand[lo, j] = False, True
    out = torch.zeros(k, n_pool, dtype=torch.bool)
    out[:, :n_candidates] = cand
    rest = torch.arange(n_candidates, n_pool)
    for i in range(k):
        need = half - int(cand[i].sum())
        if need > rest.numel():
            raise ValueError("the pool is too small for this many candidates")
        out[i, rest[torch.randperm(rest.numel(), generator=gen)[:need]]] = True
    return out


def _fit(obs: torch.Tensor, mask: torch.Tensor, fix_variance: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-column mean and std of `obs` (R×M) over rows where `mask`; nan where no row."""
    w = mask.double()
    n = w.sum(0)
    mean = (obs * w).sum(0) / n
    resid = ((obs - mean) ** 2 * w).nan_to_num(0.0)
    if fix_variance:
        var = resid.sum() / (n - 1).clamp_min(0).sum().clamp_min(1)
        std = var.sqrt().expand_as(mean)
    else:
        std = (resid.sum(0) / (n - 1).clamp_min(1)).sqrt()
    return mean, std.clamp_min(1e-6)


def _log_normal(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return -0.5 * ((x - mean) / std) ** 2 - std.log() - 0.5 * math.log(2 * math.pi)


def lira_scores(
    query: torch.Tensor,
    unlearned: torch.Tensor,
    forgotten: torch.Tensor,
    never_seen: torch.Tensor,
    *,
    exclude: int | None = None,
    fix_variance: bool = True,
) -> torch.Tensor:
    """log N(query; unlearned) − log N(query; never seen), per candidate (M).

    `unlearned`, `never_seen`: K×M confidences of the unlearned shadows and of the retrain
    references; `forgotten`: K×M bool, which shadow unlearned which candidate (only those
    observations describe the "unlearned" world). `exclude`: a shadow left out of both
    fits (the target). nan for a candidate with no "unlearned" observation left.
    """
    keep = torch.ones(unlearned.shape[0], dtype=torch.bool)
    if exclude is not None:
        keep[exclude] = False
    mu_in, sd_in = _fit(unlearned[keep], forgotten[keep], fix_variance)
    mu_out, sd_out = _fit(never_seen[keep], torch.ones_like(forgotten[keep]), fix_variance)
    return _log_normal(query, mu_in, sd_in) - _log_normal(query, mu_out, sd_out)


@dataclass
class UliraResult:
    """Attack figures over every target's forget set, and per-candidate vulnerability.

    `per_sample[j]`: candidate j's mean score on the unlearned targets that forgot it;
    `per_sample_ref[j]`: the same on their retrain references (what a perfect unlearner
    gets; its spread is the noise band). nan for a candidate never forgotten.
    """

    auc: float
    accuracy: float
    tpr_1: float
    tpr_01: float
    n_pairs: int
    per_sample: torch.Tensor
    per_sample_ref: torch.Tensor

    def metrics(self) -> dict[str, float]:
        return {"ULiRA_auc": self.auc, "ULiRA_acc": self.accuracy, "ULiRA_tpr@1%": self.tpr_1,
                "ULiRA_tpr@0.1%": self.tpr_01}


def ulira_attack(
    unlearned: torch.Tensor,
    never_seen: torch.Tensor,
    forgotten: torch.Tensor,
    *,
    fix_variance: bool = True,
) -> UliraResult:
    """Score every shadow as the target (leave-one-out); see the module docstring.

    Positives: target t's unlearned confidence on each x it forgot; negatives: t's retrain
    reference on the same x. Accuracy thresholds the log ratio at 0 (equal priors).
    """
    k, m = unlearned.shape
    if never_seen.shape != (k, m) or forgotten.shape != (k, m):
        raise ValueError("unlearned, never_seen and forgotten must all be K×M")
    pos, neg, cand = [], [], []
    for t in range(k):
        rows = forgotten[t].nonzero().flatten()
        if rows.numel() == 0:
            continue
        fitted = dict(unlearned=unlearned, forgotten=forgotten, never_seen=never_seen, exclude=t,
                      fix_variance=fix_variance)
        # both queries in one call: the two Gaussians of every candidate are fitted once per target
        scores = lira_scores(torch.stack([unlearned[t], never_seen[t]]), **fitted)[:, rows]
        pos.append(scores[0])
        neg.append(scores[1])
        cand.append(rows)
    p, q, c = torch.cat(pos), torch.cat(neg), torch.cat(cand)
    ok = p.isfinite() & q.isfinite()
    p, q, c = p[ok], q[ok], c[ok]
    counts = torch.zeros(m, dtype=torch.float64).index_add_(0, c, torch.ones_like(p))
    per = torch.zeros(m, dtype=torch.float64).index_add_(0, c, p) / counts
    per_ref = torch.zeros(m, dtype=torch.float64).index_add_(0, c, q) / counts
    acc = 0.5 * (float((p > 0).double().mean()) + float((q <= 0).double().mean())) if p.numel() else math.nan
    return UliraResult(auc=_auc(p, q), accuracy=acc, tpr_1=tpr_at_fpr(p, q, 0.01),
                       tpr_01=tpr_at_fpr(p, q, 0.001), n_pairs=int(p.numel()),
                       per_sample=per, per_sample_ref=per_ref)
