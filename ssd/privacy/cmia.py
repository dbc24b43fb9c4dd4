"""The class-level attack (MIA-NN / CMIA; Ebrahimpour-Boroojeny, Wang & Sundaram, arXiv 2506.20893).

A model that no longer predicts the forgotten class can still arrange the other classes'
probabilities on that class's images unlike a model retrained without it. The attacker has a
retrained reference (the paper: models retrained from scratch without the class):

1. the forgotten class's *neighbours* are the k classes the reference gives the most
   probability, on average, on the class's images (its nearest classes in the reference's eyes);
2. each image's score is the neighbour-mass deficit −log Σ_{c ∈ neighbours} p(c | x): high when
   the model withholds from the neighbours the probability a model that never saw the class
   gives them (the original model, which still names the class, scores high on every image).

"Members" are the model's scores on the class's images (its training images Df, then its test
images), "non-members" the reference's scores on the same images; AUC and TPR at 1 % / 0.1 %
FPR as the other attacks. AUC 0.5: the model treats the class's images as the retrained
reference does. Cost: one forward pass of each model over the class's images (n = 200 on the
CPU grid) and a sort; the row's CMIA_time measures it (≈ 0.05 s there). What differs from the
paper (its attack is an SVM; a learned classifier separates two independently retrained models
from one reference, AUC ≈ 0.9, measured): docs/departures.md ("MIA-NN").
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from datasets import ImageData
from datasets.base import concat_data
from ssd.metrics import _auc, predict_logits, tpr_at_fpr
from ssd.splits import Splits


@dataclass(frozen=True)
class CmiaSettings:
    """neighbours: k, the classes whose probability mass is the score."""

    neighbours: int = 3


def neighbour_classes(reference_logits: torch.Tensor, excluded: int | None, k: int) -> list[int]:
    """The k classes the reference gives the most mean probability on the forgotten class's
    images; `excluded` (the forgotten output, full-class task) is never one of them, and at least
    one other class is always left out: neighbours holding every class would hold all the mass
    (score 0 for every model; MNISTCoarse's 3 classes with k = 3 did that)."""
    mean = F.softmax(reference_logits.double(), dim=1).mean(dim=0)
    if excluded is not None:
        mean[excluded] = -1.0
    k = max(1, min(k, mean.numel() - 1 - (excluded is not None)))
    return [int(c) for c in mean.argsort(descending=True)[:k]]


def neighbour_deficit(logits: torch.Tensor, neighbours: list[int]) -> torch.Tensor:
    """Per image: −log of the probability (softmax over every class) the neighbours get together."""
    return -torch.logsumexp(F.log_softmax(logits.double(), dim=1)[:, neighbours], dim=1)


@dataclass
class CmiaResult:
    neighbours: list[int]
    member_scores: torch.Tensor  # the model under test, per image
    nonmember_scores: torch.Tensor  # the reference, per image

    def metrics(self) -> dict[str, float]:
        m, n = self.member_scores, self.nonmember_scores
        return {"CMIA_auc": _auc(m, n), "CMIA_tpr@1%": tpr_at_fpr(m, n, 0.01),
                "CMIA_tpr@0.1%": tpr_at_fpr(m, n, 0.001)}


def cmia_attack(model_logits: torch.Tensor, reference_logits: torch.Tensor, excluded: int | None,
                settings: CmiaSettings = CmiaSettings()) -> CmiaResult:
    """The attack on logits of the same images (the forgotten class's) from both models."""
    neighbours = neighbour_classes(reference_logits, excluded, settings.neighbours)
    return CmiaResult(neighbours, neighbour_deficit(model_logits, neighbours),
                      neighbour_deficit(reference_logits, neighbours))


def attacked_images(splits: Splits) -> ImageData:
    """The forgotten class's images: its training images (Df) then its test images."""
    return concat_data(splits.forget, splits.forget_test.to(splits.forget.device))


def cmia_for_run(model: nn.Module, retrained: nn.Module, splits: Splits, settings: CmiaSettings = CmiaSettings()
                 ) -> tuple[dict[str, float], dict[str, object]]:
    """CMIA metrics for a class-task run (the run's retrained reference as the attacker's) and
    the per-image details for the report (scores of Df's images, by original index)."""
    t0 = time.perf_counter()
    images = attacked_images(splits)
    excluded = splits.forget_class if splits.task == "full_class" else None
    result = cmia_attack(predict_logits(model, images), predict_logits(retrained, images), excluded, settings)
    n_forget = len(splits.forget)
    metrics = {**result.metrics(), "CMIA_time": time.perf_counter() - t0}
    details: dict[str, object] = {
        "neighbours": result.neighbours, "k": settings.neighbours, "images": len(images),
        "forget_indices": splits.forget.indices.tolist(),
        "score": [round(float(v), 4) for v in result.member_scores[:n_forget]],
        "score_ref": [round(float(v), 4) for v in result.nonmember_scores[:n_forget]],
    }
    return metrics, details
