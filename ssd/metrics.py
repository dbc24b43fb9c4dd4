"""The paper's metrics (accuracies, entropy MIA, ZRF) plus stronger MIAs and activation distance.

Everything but `predict_logits` and `evaluate` is a pure function of logits, so the
metrics are tested on hand-made tensors and every set is pushed through a model once.
Accuracies are in percent (0–100) like the paper's tables; the rest are fractions.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from datasets.base import ImageData
from ssd.splits import Splits
from ssd.utils import evaluation_state, model_device, synchronize

NAN = float("nan")


def predict_logits(
    model: nn.Module,
    data: ImageData,
    *,
    batch_size: int = 512,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """N×C float32 logits on the CPU, batched, in eval mode under no_grad.

    Every module's train/eval flag is restored afterwards, so scoring mid-training
    does not silently switch BatchNorm/Dropout off for the rest of the run.
    `device` defaults to where the model's parameters are. The logits stay on the device
    until the last batch and come back in one copy (one wait, not one per batch).
    """
    dev = torch.device(device) if device is not None else model_device(model)
    if len(data) == 0:
        return torch.empty(0, data.info.num_classes)
    with evaluation_state(model), torch.no_grad():
        out = [model(x).float() for x, _ in data.batches(batch_size, device=dev)]
    return torch.cat(out).cpu()


def accuracy(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Percent of samples whose argmax is the target; nan for no samples.

    Counts samples over the whole set: the authors average per-batch accuracies, which
    over-weights a short last batch.
    """
    if logits.shape[0] == 0:
        return NAN
    correct = (logits.argmax(dim=1).cpu() == targets.cpu()).sum().item()
    return 100.0 * correct / logits.shape[0]


def mean_loss(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Mean cross-entropy over samples (nan when empty): the classroom's forget/retain loss."""
    if logits.shape[0] == 0:
        return math.nan
    return float(F.cross_entropy(logits.double(), targets.to(logits.device).long()))


def confusion_matrix(logits: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """C×C counts, rows = true class, columns = predicted class."""
    idx = targets.cpu().long() * num_classes + logits.argmax(1).cpu()
    return torch.bincount(idx, minlength=num_classes * num_classes).view(num_classes, num_classes)


def class_accuracy(logits: torch.Tensor, targets: torch.Tensor, num_classes: int) -> list[float]:
    """Per-class accuracy in percent (nan for a class with no samples)."""
    cm = confusion_matrix(logits, targets, num_classes).double()
    totals = cm.sum(1)
    return [float(100 * cm[c, c] / totals[c]) if totals[c] > 0 else math.nan for c in range(num_classes)]


MAX_CONFUSION_CLASSES = 20  # larger matrices would bloat every result row


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (nats) of each row's softmax; 0·log 0 counts as 0."""
    p = F.softmax(logits.double(), dim=1)
    return torch.special.entr(p).sum(dim=1)


def mia_entropy(
    retain_logits: torch.Tensor,
    test_logits: torch.Tensor,
    forget_logits: torch.Tensor,
    *,
    seed: int = 0,
) -> float:
    """The paper's MIA: fraction of forget-train samples an entropy attack calls "member".

    As in the authors' code (after Chundawat et al.): the only feature is the prediction
    entropy; a class-balanced logistic regression is fit on retain-train (member, 1) vs
    test (non-member, 0), and applied to the forget set. The authors use all of retain
    and test with no capping; `class_weight="balanced"` already evens out the sizes. They
    ask for sklearn's old `multi_class="multinomial"` (gone from current sklearn), which
    for two classes only halves the L2 penalty — negligible with one feature and
    thousands of samples. Retain and forget sets should be disjoint (forget is a member
    set we ask about, not one we train on). nan when any set is empty, or when a diverged
    model's outputs are not finite (there is no attack to fit on them).
    """
    if min(retain_logits.shape[0], test_logits.shape[0], forget_logits.shape[0]) == 0:
        return NAN
    if not _finite(retain_logits, test_logits, forget_logits):
        return NAN
    x = torch.cat([entropy(retain_logits), entropy(test_logits)]).numpy().reshape(-1, 1)
    y = np.concatenate([np.ones(retain_logits.shape[0]), np.zeros(test_logits.shape[0])])
    from sklearn.linear_model import LogisticRegression  # here: training need not import sklearn

    clf = LogisticRegression(class_weight="balanced", solver="lbfgs", random_state=seed)
    clf.fit(x, y)
    pred = clf.predict(entropy(forget_logits).numpy().reshape(-1, 1))
    return float(pred.mean())


def tpr_at_fpr(member_scores: torch.Tensor, nonmember_scores: torch.Tensor, fpr: float = 0.01) -> float:
    """Highest true-positive rate with false-positive rate ≤ `fpr` (higher score = member).

    With fewer than 1/fpr non-members the attainable FPR steps are coarser than `fpr`, so
    this becomes the TPR at FPR 0 — the strict reading (Carlini et al. 2022).
    """
    from sklearn.metrics import roc_curve

    if member_scores.numel() == 0 or nonmember_scores.numel() == 0 or not _finite(member_scores, nonmember_scores):
        return NAN
    fprs, tprs, _ = roc_curve(*_labelled(member_scores, nonmember_scores), drop_intermediate=False)
    return float(tprs[fprs <= fpr + 1e-12].max())


def _auc(member_scores: torch.Tensor, nonmember_scores: torch.Tensor) -> float:
    from sklearn.metrics import roc_auc_score

    if member_scores.numel() == 0 or nonmember_scores.numel() == 0 or not _finite(member_scores, nonmember_scores):
        return NAN
    return float(roc_auc_score(*_labelled(member_scores, nonmember_scores)))


def _finite(*tensors: torch.Tensor) -> bool:
    """Whether every value is finite: a diverged model (NaN weights) gives NaN outputs, and an
    attack on them is undefined (nan), not an error that stops a sweep."""
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def _labelled(member_scores: torch.Tensor, nonmember_scores: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(labels 1 = member / 0 = non-member, scores) as an attack's ROC inputs."""
    y = np.concatenate([np.ones(member_scores.numel()), np.zeros(nonmember_scores.numel())])
    s = torch.cat([member_scores.flatten(), nonmember_scores.flatten()]).double().numpy()
    return y, s


def mia_scores(
    member_logits: torch.Tensor,
    member_targets: torch.Tensor,
    nonmember_logits: torch.Tensor,
    nonmember_targets: torch.Tensor,
) -> dict[str, float]:
    """Threshold attacks that need no shadow model, as ROC-AUC and TPR at 1 % FPR.

    loss: score = −cross-entropy on the true label (Yeom et al. 2018); the true-class
    probability is a monotone function of it, so it would give identical numbers.
    conf: score = max softmax probability (label-free). AUC 0.5 = the attacker cannot
    tell forget-train from held-out; AUC 1 = every member is exposed.
    """
    out: dict[str, float] = {}
    scores = {
        "loss": (
            -F.cross_entropy(member_logits.double(), member_targets.cpu(), reduction="none"),
            -F.cross_entropy(nonmember_logits.double(), nonmember_targets.cpu(), reduction="none"),
        ),
        "conf": (
            F.softmax(member_logits.double(), dim=1).amax(dim=1),
            F.softmax(nonmember_logits.double(), dim=1).amax(dim=1),
        ),
    }
    for name, (mem, non) in scores.items():
        out[f"MIA_{name}_auc"] = _auc(mem, non)
        out[f"MIA_{name}_tpr@1%"] = tpr_at_fpr(mem, non, 0.01)
    return out


def strong_mia_sets(splits: Splits) -> tuple[ImageData, ImageData]:
    """(members, non-members) for `mia_scores`: forget-train vs held-out images like it.

    Class tasks: the forget class's test images (`forget_test`), so the attack cannot
    win by spotting the class. Random: the test images of the classes present in the
    forget set (with a few hundred samples, usually the whole test set).
    """
    if len(splits.forget_test) > 0:
        return splits.forget, splits.forget_test
    classes = splits.forget.targets.unique().to(splits.test.targets.device)
    rows = torch.isin(splits.test.targets, classes).nonzero().flatten()
    return splits.forget, splits.test.subset(rows.cpu())


def js_divergence(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """Per-sample Jensen–Shannon divergence of two softmaxes, natural log, in [0, ln 2]."""
    p = F.softmax(p_logits.double(), dim=1)
    q = F.softmax(q_logits.double(), dim=1)
    m = (p + q) / 2
    kl_pm = (torch.special.xlogy(p, p) - torch.special.xlogy(p, m)).sum(dim=1)
    kl_qm = (torch.special.xlogy(q, q) - torch.special.xlogy(q, m)).sum(dim=1)
    return (0.5 * (kl_pm + kl_qm)).clamp_min(0.0)


def zrf(model_logits: torch.Tensor, random_logits: torch.Tensor) -> float:
    """Zero Retrain Forgetting score: 1 − mean JS(model ‖ untrained model), natural log.

    1 means the model predicts exactly like a randomly initialised one; with natural log
    the minimum is 1 − ln 2 ≈ 0.307 (opposite one-hot predictions). The authors' code
    (from the bad-teaching repo) uses `F.kl_div` with its default "mean" reduction, which
    divides by samples × classes and swaps each KL's arguments, so their ZRF sits nearer 1
    and is not comparable digit-for-digit with this textbook version.
    """
    if model_logits.shape[0] == 0:
        return NAN
    return 1.0 - float(js_divergence(model_logits, random_logits).mean())


def activation_distance(logits_a: torch.Tensor, logits_b: torch.Tensor) -> float:
    """Mean L2 distance between two models' softmax outputs (Chundawat et al.); 0 = identical."""
    if logits_a.shape[0] == 0:
        return NAN
    diff = F.softmax(logits_a.double(), dim=1) - F.softmax(logits_b.double(), dim=1)
    return float(diff.norm(dim=1).mean())


def _rows_in(sub: ImageData, full: ImageData) -> torch.Tensor | None:
    """Positions in `full` of `sub`'s samples, or None if any is missing.

    Matched by original index, then confirmed on the pixels and labels: index values of
    a train-derived set collide with test indices, and reusing those rows would be silent.
    """
    assert sub.indices is not None and full.indices is not None
    keys = full.indices.cpu()
    order = keys.argsort()
    sorted_keys = keys[order]
    want = sub.indices.cpu().long()
    if want.numel() == 0:
        return want
    if keys.numel() == 0:
        return None
    pos = torch.searchsorted(sorted_keys, want).clamp_max(keys.numel() - 1)
    if not torch.equal(sorted_keys[pos], want):
        return None
    rows = order[pos]
    if not torch.equal(full.targets[rows.to(full.targets.device)].cpu(), sub.targets.cpu()):
        return None
    for start in range(0, rows.numel(), 1024):  # chunked: ViT-sized images are large
        chunk = rows[start : start + 1024].to(full.images.device)
        if not torch.equal(full.images[chunk], sub.images[start : start + 1024].to(full.images.device)):
            return None
    return rows


def evaluate(
    model: nn.Module,
    splits: Splits,
    *,
    device: torch.device | str | None = None,
    batch_size: int = 512,
    untrained: nn.Module | None = None,
    retrained: nn.Module | None = None,
    seed: int = 0,
    details: dict[str, object] | None = None,
) -> dict[str, float]:
    """Every metric for one model; accuracies in percent (0–100), others as fractions.

    Keys: Df (forget-train acc), DrTrain (retain_eval subset), DfTest, DrTest (the
    authors' RetainTestAcc), TestAcc, MIA (paper's entropy attack, retain_eval vs test),
    MIA_{loss,conf}_{auc,tpr@1%} (forget vs `strong_mia_sets`), ZRF and ZRF_DfTest (when
    `untrained` is given; the authors' code scores ZRF on forget-test for class tasks and
    also reports "Df" on forget-test there), ActDist (forget set, when `retrained` is
    given), DfLoss / DrTestLoss (mean cross-entropy) and EvalTime (seconds, device-synchronised). nan where a set is empty
    (forget-test of the random task). The test set is predicted once; its sub-sets reuse it.
    A `details` dict, when given, receives per-class test accuracy and (up to
    MAX_CONFUSION_CLASSES classes) confusion matrices of the forget set and retain-test set.
    """
    dev = torch.device(device) if device is not None else model_device(model)
    synchronize(dev)
    start = time.perf_counter()

    def run(m: nn.Module, data: ImageData) -> torch.Tensor:
        # Reference models (untrained, retrained) run wherever their own weights live.
        return predict_logits(m, data, batch_size=batch_size, device=dev if m is model else None)

    test_logits = run(model, splits.test)

    def of_test(data: ImageData) -> torch.Tensor:
        rows = _rows_in(data, splits.test)
        return test_logits[rows] if rows is not None else run(model, data)

    retain_eval = splits.retain_eval if splits.retain_eval is not None else splits.retain
    forget_logits = run(model, splits.forget)
    retain_logits = run(model, retain_eval)
    forget_test_logits = of_test(splits.forget_test)
    members, nonmembers = strong_mia_sets(splits)

    res: dict[str, float] = {
        "Df": accuracy(forget_logits, splits.forget.targets),
        "DrTrain": accuracy(retain_logits, retain_eval.targets),
        "DfTest": accuracy(forget_test_logits, splits.forget_test.targets),
        "DrTest": accuracy(of_test(splits.retain_test), splits.retain_test.targets),
        "TestAcc": accuracy(test_logits, splits.test.targets),
        "MIA": mia_entropy(retain_logits, test_logits, forget_logits, seed=seed),
        "DfLoss": mean_loss(forget_logits, splits.forget.targets),
        "DrTestLoss": mean_loss(of_test(splits.retain_test), splits.retain_test.targets),
    }
    if details is not None:
        c = splits.num_classes
        details["test_class_acc"] = class_accuracy(test_logits, splits.test.targets, c)
        if c <= MAX_CONFUSION_CLASSES:
            details["forget_confusion"] = confusion_matrix(forget_logits, splits.forget.targets, c).tolist()
            details["retain_test_confusion"] = confusion_matrix(
                of_test(splits.retain_test), splits.retain_test.targets, c).tolist()
    member_logits = forget_logits if members is splits.forget else run(model, members)
    res.update(mia_scores(member_logits, members.targets, of_test(nonmembers), nonmembers.targets))
    if untrained is not None:
        res["ZRF"] = zrf(forget_logits, run(untrained, splits.forget))
        res["ZRF_DfTest"] = zrf(forget_test_logits, run(untrained, splits.forget_test))
    if retrained is not None:
        res["ActDist"] = activation_distance(forget_logits, run(retrained, splits.forget))
    synchronize(dev)
    res["EvalTime"] = time.perf_counter() - start
    return res
