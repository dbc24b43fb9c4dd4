"""SCRUB, SalUn, NegGrad+ and JiT on tiny Digits data: contract checks for every task,
plus one behavioural check per method. A few hundred 8×8 images and the classroom
ConvNet keep the whole file to seconds on a CPU."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import models.convnet  # noqa: F401  (registers ConvNet)
from datasets import ImageData, load_dataset
from models import build_model
from ssd.methods.jit import TASK_SIGMA, JiTConfig, jit
from ssd.methods.neggrad_plus import NegGradPlusConfig, neggrad_plus
from ssd.methods.salun import SalUnConfig, random_other_labels, saliency_mask, salun
from ssd.methods.scrub import ScrubConfig, scrub
from ssd.splits import Splits, make_splits
from ssd.train import eval_accuracy as accuracy
from ssd.train import pretrain

N_TRAIN, N_TEST = 400, 150
TASKS: dict[str, tuple[str, dict[str, Any]]] = {
    "full_class": ("Digits", {"forget_class": 3}),
    "sub_class": ("DigitsCoarse", {"forget_class": 3}),  # fine digit 3 inside coarse "curves"
    "random": ("Digits", {"n_forget": 40}),
}


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny convolutions gain nothing from threads, and on a shared 2-core box they thrash."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny(name: str) -> tuple[ImageData, ImageData]:
    train, test = load_dataset(name, train=True), load_dataset(name, train=False)
    return train.subset(range(N_TRAIN)), test.subset(range(N_TEST))


@pytest.fixture(scope="module")
def task_setup() -> dict[str, tuple[nn.Module, Splits]]:
    """Per task: a seeded, untrained ConvNet and its splits (contracts need no training)."""
    out = {}
    for task, (dataset, kw) in TASKS.items():
        train, test = tiny(dataset)
        torch.manual_seed(0)
        out[task] = (build_model("ConvNet", train.info).eval(), make_splits(task, train, test, seed=0, **kw))
    return out


@pytest.fixture(scope="module")
def trained() -> tuple[nn.Module, Splits]:
    """A ConvNet fitted to the tiny Digits subset, with the full-class split of digit 3."""
    train, test = tiny("Digits")
    res = pretrain("ConvNet", "Digits", epochs=15, batch_size=32, lr=1e-3, progress=False, log=None, train_data=train, test_data=test)
    return res.model.eval(), make_splits("full_class", train, test, forget_class=3)


def state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def forget_loss(model: nn.Module, data: ImageData) -> float:
    with torch.no_grad():
        x, y = next(data.batches(len(data)))
        return float(F.cross_entropy(model(x), y))


def test_salun_only_moves_masked_weights(task_setup: dict[str, tuple[nn.Module, Splits]]) -> None:
    original, splits = task_setup["full_class"]
    cfg = SalUnConfig(epochs=2)
    mask = saliency_mask(original, splits.forget, cfg.mask_fraction, cfg.batch_size)
    kept = sum(int(m.sum()) for m in mask.values())
    total = sum(m.numel() for m in mask.values())
    assert abs(kept - round(cfg.mask_fraction * total)) <= 1
    before = dict(original.named_parameters())
    after = dict(salun(copy.deepcopy(original), splits, cfg).named_parameters())
    moved = 0
    for n, m in mask.items():
        assert torch.equal(after[n][~m], before[n][~m]), f"unmasked weights of {n} changed"
        moved += int((after[n][m] != before[n][m]).sum())
    assert moved > 0


def test_salun_random_labels_never_true() -> None:
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(10).repeat(500)
    new = random_other_labels(y, 10, gen)
    assert (new != y).all()
    assert new.min() >= 0 and new.max() <= 9
    for c in range(10):  # every other class is reachable from c
        assert set(new[y == c].tolist()) == set(range(10)) - {c}


def test_neggrad_plus_raises_forget_loss(trained: tuple[nn.Module, Splits]) -> None:
    """With the ascent weighted (β = 0.9) the forget loss must rise; at the CIFAR default
    β = 0.9999 descent on retain dominates at this tiny scale, so the sign isn't guaranteed."""
    model, splits = trained
    out = neggrad_plus(copy.deepcopy(model), splits, NegGradPlusConfig(beta=0.9))
    assert forget_loss(out, splits.forget) > forget_loss(model, splits.forget)


def test_scrub_lowers_forget_accuracy(trained: tuple[nn.Module, Splits]) -> None:
    """The CIFAR defaults take too few max-steps for ~40 forget images; a higher rate and
    smaller forget batches give SCRUB enough steps to act at this scale."""
    model, splits = trained
    before_f, before_r = accuracy(model, splits.forget), accuracy(model, splits.retain)
    assert before_f > 90
    out = scrub(copy.deepcopy(model), splits, ScrubConfig(lr=0.005, forget_batch_size=16))
    assert accuracy(out, splits.forget) < before_f - 30
    assert accuracy(out, splits.retain) > before_r - 30


class Forbidden:
    """Stands in for data a zero-shot method must never read: any use raises."""

    def __getattribute__(self, name: str) -> Any:
        raise AssertionError(f"zero-shot method touched forbidden data (.{name})")

    def __len__(self) -> int:
        raise AssertionError("zero-shot method touched forbidden data (len)")

    def __iter__(self) -> Any:
        raise AssertionError("zero-shot method touched forbidden data (iter)")


@pytest.mark.parametrize("task", list(TASKS))
def test_jit_never_reads_retain(task: str, task_setup: dict[str, tuple[nn.Module, Splits]]) -> None:
    """JiT sees only the forget set: every other data field of Splits (retain, D which
    contains retain, test sets, …) is replaced by a sentinel that raises on any use."""
    original, splits = task_setup[task]
    data_fields = [f.name for f in dataclasses.fields(splits) if isinstance(getattr(splits, f.name), ImageData)]
    assert {"retain", "train"} <= set(data_fields)
    blocked = dataclasses.replace(splits, **{n: Forbidden() for n in data_fields if n != "forget"})
    out = jit(copy.deepcopy(original), blocked, JiTConfig(n_samples=5))
    assert not same_state(state(out), state(original))
    with pytest.raises(AssertionError, match="forbidden"):
        len(blocked.retain)


def test_jit_sigma_follows_task() -> None:
    assert TASK_SIGMA == {"full_class": 0.5, "sub_class": 0.01, "random": 0.01}
    assert JiTConfig().sigma is None
