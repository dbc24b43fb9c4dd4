"""SSD on real MNIST: a freshly pretrained ConvNet forgets digit 2 at the paper's α = 10, λ = 1.

The issue's target: digit 2's test accuracy below 5 % and every other digit within 3
points of its original accuracy. It holds with the default (shuffled) order; in the
authors' class-sorted order α = 10 selects a handful of weights and forgets nothing
(docs/ssd.md has the whole α sweep for both orders).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

import ssd.methods  # noqa: F401  (registers the methods)
from datasets import ImageData, load_dataset
from ssd.cache import ImportanceCache
from ssd.methods.registry import METHODS
from ssd.methods.ssd_methods import SSDConfig, ssd_unlearn
from ssd.metrics import class_accuracy, predict_logits
from ssd.splits import Splits, make_splits
from ssd.train import pretrain

FORGET = 2


@dataclass
class Trained:
    model: nn.Module
    splits: Splits
    per_digit: torch.Tensor  # test accuracy per digit, percent


def per_digit(model: nn.Module, test: ImageData) -> torch.Tensor:
    return torch.tensor(class_accuracy(predict_logits(model, test), test.targets, 10))


@pytest.fixture(scope="module")
def trained(mnist_root: Path) -> Trained:
    torch.set_num_threads(min(2, torch.get_num_threads()))
    train = load_dataset("MNIST", train=True, root=mnist_root)
    test = load_dataset("MNIST", train=False, root=mnist_root)
    res = pretrain("ConvNet", "MNIST", data_root=mnist_root, seed=0, progress=False, log=None,
                   train_data=train, test_data=test)
    assert res.test_acc >= 98.0, f"pretraining reached only {res.test_acc:.2f} %"
    splits = make_splits("full_class", train, test, forget_class=FORGET, seed=0)
    return Trained(res.model.eval(), splits, per_digit(res.model, test))


def forget_and_score(t: Trained, cfg: SSDConfig, method: str = "ssd") -> tuple[torch.Tensor, dict]:
    model = METHODS.get(method).fn(copy.deepcopy(t.model), t.splits, cfg)
    return per_digit(model, t.splits.test), dict(t.splits.context["ssd_stats"])


def describe(acc: torch.Tensor, base: torch.Tensor, stats: dict) -> str:
    drops = {c: round(float(base[c] - acc[c]), 2) for c in range(10) if c != FORGET}
    return (f"digit {FORGET}: {float(acc[FORGET]):.2f} % (was {float(base[FORGET]):.2f}); "
            f"drops {drops}; {stats['total_selected']} weights selected")


def assert_target(acc: torch.Tensor, base: torch.Tensor, stats: dict) -> None:
    msg = describe(acc, base, stats)
    assert acc[FORGET] < 5.0, msg
    for c in range(10):
        if c != FORGET:
            assert acc[c] >= base[c] - 3.0, msg


def test_ssd_forgets_digit_2_at_paper_alpha(trained: Trained) -> None:
    cfg = SSDConfig()  # α = 10, λ = 1, batch mode, D = the whole training set, shuffled order
    assert (cfg.alpha, cfg.lam, cfg.order) == (10.0, 1.0, "shuffled")  # reference None → "full" for a numeric α
    acc, stats = forget_and_score(trained, cfg)
    assert stats["order"] == "shuffled" and stats["reference"] == "full"
    assert_target(acc, trained.per_digit, stats)


def test_paper_order_needs_smaller_alpha(trained: Trained) -> None:
    """The authors' class-sorted order inflates imp_D: at α = 10 almost nothing is selected."""
    acc, stats = forget_and_score(trained, SSDConfig(order="paper"))
    assert acc[FORGET] > 90.0 and stats["total_selected"] < 200, describe(acc, trained.per_digit, stats)


def test_second_request_reuses_cached_d(trained: Trained, tmp_path: Path) -> None:
    """D's importances cached by the first request give the same weights on the second."""
    cache = ImportanceCache(tmp_path)
    cfg = SSDConfig()
    s = trained.splits
    first, second = copy.deepcopy(trained.model), copy.deepcopy(trained.model)
    a = ssd_unlearn(first, s.train, s.forget, cfg, cache, checkpoint_sha256="pretrained-in-test")
    b = ssd_unlearn(second, s.train, s.forget, cfg, cache, checkpoint_sha256="pretrained-in-test")
    assert (a.cache_hit, b.cache_hit) == (False, True) and a.selected == b.selected
    assert all(torch.equal(p, q) for p, q in zip(first.parameters(), second.parameters(), strict=True))
