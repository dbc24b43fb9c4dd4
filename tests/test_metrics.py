"""Metrics on hand-made logits, plus the batched prediction helper and `evaluate` on a tiny model."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from datasets import load_dataset
from datasets.base import ImageData
from ssd.metrics import (
    accuracy,
    activation_distance,
    entropy,
    evaluate,
    js_divergence,
    mia_entropy,
    mia_scores,
    predict_logits,
    strong_mia_sets,
    tpr_at_fpr,
    zrf,
)
from ssd.splits import Splits, make_splits

LN2 = math.log(2.0)


def confident(n: int, c: int = 10, seed: int = 0, scale: float = 20.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits confidently right about random targets (low loss, low entropy)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, c, (n,), generator=g)
    return torch.randn(n, c, generator=g) + scale * nn.functional.one_hot(y, c), y


def vague(n: int, c: int = 10, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Near-uniform logits (high loss, high entropy)."""
    g = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(n, c, generator=g), torch.randint(0, c, (n,), generator=g)


def same_dist(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return 2.0 * torch.randn(n, 10, generator=g), torch.randint(0, 10, (n,), generator=g)


# --- accuracy and entropy ---------------------------------------------------------------


def test_accuracy_counts_samples_not_batches() -> None:
    y = torch.tensor([0, 1, 2, 3, 0])
    logits = nn.functional.one_hot(torch.tensor([0, 1, 2, 3, 1]), 4).float()  # last one wrong
    assert accuracy(logits, y) == pytest.approx(80.0)
    per_batch = (accuracy(logits[:4], y[:4]) + accuracy(logits[4:], y[4:])) / 2
    assert per_batch == pytest.approx(50.0)  # what averaging batches of 4 would report
    assert math.isnan(accuracy(torch.empty(0, 4), torch.empty(0, dtype=torch.long)))


def test_entropy_bounds() -> None:
    assert entropy(torch.zeros(3, 10)) == pytest.approx(torch.full((3,), math.log(10)).double())
    sharp = torch.tensor([[0.0, -float("inf"), -float("inf")], [1000.0, 0.0, 0.0]])
    assert torch.allclose(entropy(sharp), torch.zeros(2, dtype=torch.double))


# --- the paper's entropy MIA ------------------------------------------------------------


def test_mia_entropy_separable_forget_like_retain_is_one() -> None:
    retain, test, forget = confident(500, seed=1)[0], vague(500, seed=2)[0], confident(200, seed=3)[0]
    assert mia_entropy(retain, test, forget) == 1.0


def test_mia_entropy_forget_like_test_is_zero() -> None:
    retain, test, forget = confident(500, seed=1)[0], vague(500, seed=2)[0], vague(200, seed=3)[0]
    assert mia_entropy(retain, test, forget) == 0.0


def test_mia_entropy_identical_distributions_is_a_coin_flip() -> None:
    retain, test, forget = same_dist(3000, 1)[0], same_dist(3000, 2)[0], same_dist(3000, 3)[0]
    assert 0.35 < mia_entropy(retain, test, forget) < 0.65


def test_mia_entropy_balances_unequal_sizes() -> None:
    # 10× more members than non-members must not make everything "member".
    retain, test, forget = same_dist(5000, 1)[0], same_dist(500, 2)[0], same_dist(2000, 3)[0]
    assert 0.2 < mia_entropy(retain, test, forget) < 0.8


def test_mia_entropy_empty_is_nan() -> None:
    assert math.isnan(mia_entropy(confident(5)[0], vague(5)[0], torch.empty(0, 10)))


# --- stronger attacks -------------------------------------------------------------------


def test_mia_scores_separable_and_identical() -> None:
    strong = mia_scores(*confident(300, seed=1), *vague(300, seed=2))
    assert strong["MIA_loss_auc"] == 1.0 and strong["MIA_conf_auc"] == 1.0
    assert strong["MIA_loss_tpr@1%"] == 1.0 and strong["MIA_conf_tpr@1%"] == 1.0
    same = mia_scores(*same_dist(3000, 1), *same_dist(3000, 2))
    assert set(same) == {"MIA_loss_auc", "MIA_loss_tpr@1%", "MIA_conf_auc", "MIA_conf_tpr@1%"}
    assert 0.45 < same["MIA_loss_auc"] < 0.55 and 0.45 < same["MIA_conf_auc"] < 0.55
    assert same["MIA_loss_tpr@1%"] < 0.05


def test_tpr_at_fpr_on_a_constructed_case() -> None:
    non = torch.arange(100.0)  # one non-member per FPR step of 1 %
    members = torch.cat([torch.full((30,), 200.0), torch.full((20,), 97.5), torch.full((50,), -1.0)])
    assert tpr_at_fpr(members, non, 0.0) == pytest.approx(0.3)
    assert tpr_at_fpr(members, non, 0.01) == pytest.approx(0.3)  # threshold 99: 1 FP
    assert tpr_at_fpr(members, non, 0.02) == pytest.approx(0.5)  # threshold 97.5: 2 FPs (98, 99)
    assert math.isnan(tpr_at_fpr(members, torch.empty(0)))


def test_mia_scores_tpr_through_logits() -> None:
    # Two classes, logits [0, s], target 1: loss and confidence are both monotone in s ≥ 0.
    def logits(s: torch.Tensor) -> torch.Tensor:
        return torch.stack([torch.zeros_like(s), s], dim=1)

    s_non = 0.05 * torch.arange(100.0)
    s_mem = torch.cat([torch.full((30,), 10.0), torch.full((20,), 4.875), torch.zeros(50)])  # 4.875: 2 % FPR
    ones = torch.ones(100, dtype=torch.long)
    out = mia_scores(logits(s_mem), ones, logits(s_non), ones)
    assert out["MIA_loss_tpr@1%"] == pytest.approx(0.3)
    assert out["MIA_conf_tpr@1%"] == pytest.approx(0.3)


# --- ZRF and activation distance --------------------------------------------------------


def test_zrf_self_is_one_and_opposite_is_one_minus_ln2() -> None:
    a = torch.randn(50, 10)
    assert zrf(a, a) == pytest.approx(1.0, abs=1e-9)
    left = torch.tensor([[100.0, -100.0]] * 4)
    assert zrf(left, left.flip(1)) == pytest.approx(1.0 - LN2, abs=1e-9)
    assert math.isnan(zrf(torch.empty(0, 3), torch.empty(0, 3)))


def test_js_is_symmetric_and_bounded() -> None:
    a, b = 5 * torch.randn(200, 7), 5 * torch.randn(200, 7)
    js = js_divergence(a, b)
    assert torch.allclose(js, js_divergence(b, a))
    assert bool((js >= 0).all()) and bool((js <= LN2 + 1e-12).all())
    assert 1 - LN2 <= zrf(a, b) <= 1


def test_activation_distance() -> None:
    a = torch.randn(20, 5)
    assert activation_distance(a, a) == pytest.approx(0.0, abs=1e-12)
    left = torch.tensor([[100.0, -100.0]] * 3)
    assert activation_distance(left, left.flip(1)) == pytest.approx(math.sqrt(2.0))


# --- models: prediction and evaluate ----------------------------------------------------


def tiny_model(seed: int = 0, classes: int = 10) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, classes)
    )


@pytest.fixture(scope="module")
def digits() -> tuple[ImageData, ImageData]:
    return load_dataset("Digits", train=True), load_dataset("Digits", train=False)


def test_predict_logits_matches_forward_and_restores_modes(digits: tuple[ImageData, ImageData]) -> None:
    _, test = digits
    model = tiny_model()
    model.train()
    model[4].eval()  # a mixed state must come back exactly
    got = predict_logits(model, test, batch_size=37)
    assert model.training and model[2].training and not model[4].training
    model.eval()
    with torch.no_grad():
        x, _ = next(test.batches(len(test)))
        want = model(x)
    assert got.dtype == torch.float32 and got.device.type == "cpu"
    assert torch.allclose(got, want, atol=1e-5)
    assert predict_logits(model, test.subset([])).shape == (0, 10)


def _check_evaluate(res: dict[str, float], extra: set[str]) -> None:
    base = {"Df", "DrTrain", "DfTest", "DrTest", "TestAcc", "MIA", "MIA_loss_auc", "MIA_loss_tpr@1%",
            "MIA_conf_auc", "MIA_conf_tpr@1%", "EvalTime", "DfLoss", "DrTestLoss"}
    assert set(res) == base | extra
    for key in ("Df", "DrTrain", "DrTest", "TestAcc"):
        assert 0.0 <= res[key] <= 100.0
    assert 0.0 <= res["MIA"] <= 1.0 and res["EvalTime"] >= 0.0


def test_evaluate_full_class_all_keys(digits: tuple[ImageData, ImageData]) -> None:
    train, test = digits
    splits = make_splits("full_class", train, test, forget_class=4, retain_eval_size=300)
    model = tiny_model(0)
    res = evaluate(model, splits, batch_size=128, untrained=tiny_model(1), retrained=tiny_model(2))
    _check_evaluate(res, {"ZRF", "ZRF_DfTest", "ActDist"})
    assert 1 - LN2 <= res["ZRF"] <= 1 and res["ActDist"] >= 0
    # Sub-sets of the test set reuse its logits: check against direct scoring.
    assert res["DrTest"] == pytest.approx(accuracy(predict_logits(model, splits.retain_test), splits.retain_test.targets))
    assert res["DfTest"] == pytest.approx(accuracy(predict_logits(model, splits.forget_test), splits.forget_test.targets))
    self_ref = evaluate(model, splits, untrained=model, retrained=model)
    assert self_ref["ZRF"] == pytest.approx(1.0) and self_ref["ActDist"] == pytest.approx(0.0)


def test_evaluate_random_and_sub_class(digits: tuple[ImageData, ImageData]) -> None:
    train, test = digits
    rnd = evaluate(tiny_model(0), make_splits("random", train, test, n_forget=50))
    _check_evaluate(rnd, set())
    assert math.isnan(rnd["DfTest"]) and not math.isnan(rnd["MIA_loss_auc"])
    ctrain, ctest = load_dataset("DigitsCoarse", train=True), load_dataset("DigitsCoarse", train=False)
    sub = evaluate(tiny_model(0, classes=3), make_splits("sub_class", ctrain, ctest, forget_class=7),
                   untrained=tiny_model(1, classes=3))
    _check_evaluate(sub, {"ZRF", "ZRF_DfTest"})


def test_a_diverged_model_is_scored_not_raised(digits: tuple[ImageData, ImageData]) -> None:
    """NaN weights (a method that diverged, e.g. NegGrad+ at lr 0.1) give NaN outputs: the
    attacks are undefined there (nan) instead of sklearn's "Input X contains NaN" stopping a
    sweep; the accuracies still say the model is broken."""
    train, test = digits
    model = tiny_model(0)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    res = evaluate(model, make_splits("random", train, test, n_forget=50))
    assert math.isnan(res["MIA"]) and math.isnan(res["MIA_loss_auc"]) and math.isnan(res["MIA_conf_tpr@1%"])
    assert res["TestAcc"] < 50


def test_evaluate_hand_built_splits_not_drawn_from_test(digits: tuple[ImageData, ImageData]) -> None:
    train, test = digits
    # forget_test comes from the training data here, so it cannot reuse the test logits.
    s = Splits("full_class", train, train.subset(range(20)), train.subset(range(20, len(train))), test,
               train.subset(range(20, 40)), test, 10, forget_class=0)
    res = evaluate(tiny_model(0), s)
    model = tiny_model(0)
    assert res["DfTest"] == pytest.approx(accuracy(predict_logits(model, s.forget_test), s.forget_test.targets))


def test_strong_mia_sets(digits: tuple[ImageData, ImageData]) -> None:
    train, test = digits
    full = make_splits("full_class", train, test, forget_class=2)
    members, non = strong_mia_sets(full)
    assert members is full.forget and non is full.forget_test
    rnd = make_splits("random", train, test, n_forget=1, seed=3)
    members, non = strong_mia_sets(rnd)
    cls = int(rnd.forget.targets[0])
    assert len(non) == int((test.targets == cls).sum()) and bool((non.targets == cls).all())


def test_confusion_class_accuracy_and_loss_on_hand_made_logits() -> None:
    from ssd.metrics import class_accuracy, confusion_matrix, mean_loss

    targets = torch.tensor([0, 0, 1, 1, 2])
    logits = torch.eye(3)[torch.tensor([0, 1, 1, 1, 0])] * 10  # predictions 0,1,1,1,0
    cm = confusion_matrix(logits, targets, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert class_accuracy(logits, targets, 3) == [50.0, 100.0, 0.0]
    assert math.isnan(class_accuracy(logits[:2], targets[:2], 3)[2])
    uniform = torch.zeros(4, 4)
    assert mean_loss(uniform, torch.tensor([0, 1, 2, 3])) == pytest.approx(math.log(4))
    assert math.isnan(mean_loss(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)))
