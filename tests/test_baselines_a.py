"""Bad Teacher, amnesiac, UNSIR, Fisher and NTK forgetting on tiny Digits data: contract
checks for every task, plus one behavioural check per method. A few hundred 8×8 images
and the classroom ConvNet keep the file to seconds on a CPU."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from tiny_digits import TASKS, same_state, state
from torch import nn

from datasets import ImageData, dataset_info
from models import build_model
from ssd.errors import UserError
from ssd.methods.blindspot import BlindspotConfig, blindspot
from ssd.methods.common import untrained_like, wrong_labels
from ssd.methods.fisher import FisherConfig, fisher, fisher_diagonal
from ssd.methods.ntk import NTKConfig, logit_jacobian, ntk
from ssd.methods.unsir import TASK_NOISE_STEPS, learn_noise
from ssd.splits import Splits, make_splits

pytestmark = pytest.mark.usefixtures("one_thread")


def whole(data: ImageData) -> tuple[torch.Tensor, torch.Tensor]:
    return next(data.batches(len(data)))


@pytest.mark.parametrize("task", list(TASKS))
def test_amnesiac_never_assigns_true_label(task: str, task_setup: dict[str, tuple[nn.Module, Splits]]) -> None:
    _, splits = task_setup[task]
    gen = torch.Generator().manual_seed(0)
    y = splits.forget.targets.repeat(50)
    new = wrong_labels(y, splits.num_classes, gen)
    assert (new != y).all()
    assert new.min() >= 0 and new.max() < splits.num_classes
    for c in y.unique().tolist():  # every other class is reachable
        assert set(new[y == c].tolist()) == set(range(splits.num_classes)) - {c}


def test_unsir_noise_raises_forget_class_loss(trained: tuple[nn.Module, Splits]) -> None:
    model, splits = trained
    labels = torch.full((32,), splits.forget_class)
    shape = tuple(splits.forget.images.shape[1:])
    before = state(model)
    noise = learn_noise(model, labels, shape, steps=TASK_NOISE_STEPS["full_class"],
                        generator=torch.Generator().manual_seed(0))
    assert same_state(state(model), before) and not model.training
    start = torch.randn((32, *shape), generator=torch.Generator().manual_seed(0))  # the noise's init
    with torch.no_grad():
        losses = {k: float(F.cross_entropy(model(v), labels))
                  for k, v in {"learnt": noise, "random": start, "zero": torch.zeros_like(noise)}.items()}
    assert losses["learnt"] > losses["random"] + 1 and losses["learnt"] > losses["zero"] + 1, losses


def test_blindspot_moves_towards_incompetent_teacher(trained: tuple[nn.Module, Splits]) -> None:
    model, splits = trained
    cfg = BlindspotConfig(seed=0)
    bad = untrained_like(model, splits, seed=cfg.seed)
    x, _ = whole(splits.forget)

    def kl_from_bad(student: nn.Module) -> float:
        with torch.no_grad():
            return float(F.kl_div(F.log_softmax(student(x), 1), F.softmax(bad(x), 1), reduction="batchmean"))

    out = blindspot(copy.deepcopy(model), splits, cfg)
    assert kl_from_bad(out) < kl_from_bad(model)


def test_fisher_zero_noise(task_setup: dict[str, tuple[nn.Module, Splits]]) -> None:
    """α = 0: nothing moves (random task); full class with a zero forget-row variance too:
    only the head's forget-class row changes, and it becomes exactly zero."""
    original, splits = task_setup["random"]
    out = fisher(copy.deepcopy(original), splits, FisherConfig(alpha=0.0))
    assert same_state(state(out), state(original))

    original, splits = task_setup["full_class"]
    out = fisher(copy.deepcopy(original), splits, FisherConfig(alpha=0.0, forget_row_var=0.0))
    before, after = state(original), state(out)
    for k in before:
        if before[k].shape[0] == splits.num_classes:  # the head (fc2 weight and bias)
            assert torch.equal(after[k][splits.forget_class], torch.zeros_like(after[k][0]))
            keep = torch.arange(splits.num_classes) != splits.forget_class
            assert torch.equal(after[k][keep], before[k][keep])
        else:
            assert torch.equal(after[k], before[k]), k


def test_fisher_diagonal_matches_per_sample_backward(trained: tuple[nn.Module, Splits]) -> None:
    """vmap'd per-sample gradients give the authors' batch-size-1, per-class Fisher."""
    model, splits = trained
    data = splits.retain.subset(range(5))
    fast = fisher_diagonal(model, data, chunk_size=2)
    slow = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for x, _ in data.batches(1):
        out = model(x)
        prob = F.softmax(out, dim=1).detach()
        for c in range(out.shape[1]):
            model.zero_grad()
            F.cross_entropy(out, torch.tensor([c])).backward(retain_graph=True)
            for n, p in model.named_parameters():
                slow[n] += prob[0, c] * p.grad.pow(2) / len(data)
    for n in slow:
        torch.testing.assert_close(fast[n], slow[n], rtol=1e-4, atol=1e-10)


def test_ntk_jacobian_matches_autograd(trained: tuple[nn.Module, Splits]) -> None:
    model, splits = trained
    data = splits.forget.subset(range(3))
    jac = logit_jacobian(model, data, chunk_size=2)
    x, _ = next(data.batches(3))
    out = model(x[1:2])[0]
    row = torch.autograd.grad(out[4], list(model.parameters()))
    torch.testing.assert_close(jac[1 * out.numel() + 4], torch.cat([g.flatten() for g in row]))


def test_ntk_refuses_resnet18_on_cifar() -> None:
    """Refused from sizes alone, before any forward pass, with the memory it would need."""
    info = dataset_info("Cifar10")
    n = 200
    fake = ImageData(info, torch.zeros(n, 3, 32, 32, dtype=torch.uint8), torch.arange(n) % 10)
    splits = make_splits("full_class", fake, fake.subset(range(20)), forget_class=0)
    model = build_model("ResNet18", info)
    with pytest.raises(UserError, match=r"ntk would need about [\d,.]+ GiB") as err:
        ntk(model, splits, NTKConfig())
    assert "\n" not in str(err.value)


def test_ntk_memory_limit_and_retain_cap(task_setup: dict[str, tuple[nn.Module, Splits]]) -> None:
    original, splits = task_setup["full_class"]
    with pytest.raises(UserError, match="GiB"):
        ntk(copy.deepcopy(original), splits, NTKConfig(max_memory_gib=0.01))
    out = ntk(copy.deepcopy(original), splits, NTKConfig(max_memory_gib=0.05, max_retain=20))
    assert not same_state(state(out), state(original))
