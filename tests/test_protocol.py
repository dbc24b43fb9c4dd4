"""`protocol="authors"`: SSD's importances and dampened weights equal those of an independent
plain re-implementation of the authors' loaders + ParameterPerturber (tests/authors_reference.py),
in all three tasks; the batch sizes resolve per task and method; rows and suites carry it.

Fast version on tiny Digits / DigitsCoarse (untrained seeded ConvNet: the check is about
loaders and arithmetic, not about forgetting); the real-MNIST version is marked slow.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from authors_reference import authors_ssd, authors_task_loaders
from torch import nn

import ssd.methods  # noqa: F401  (registers the methods)
from datasets import ImageData, load_dataset
from models import build_model
from ssd.errors import UserError
from ssd.experiment import RunSpec, method_config
from ssd.importance import paper_order
from ssd.methods.protocol import apply_protocol, authors_settings
from ssd.methods.registry import METHODS
from ssd.methods.ssd_methods import SSDConfig, ssd_importances
from ssd.splits import Splits, make_splits

TASKS = ("full_class", "sub_class", "random")
ALPHA = 2.0  # untrained model: a small α so that the dampening step has weights to act on


def authors_side(model: nn.Module, splits: Splits, cfg: SSDConfig) -> tuple[dict, dict, int, nn.Module]:
    info = splits.train.info
    sub = splits.task == "sub_class"
    num_classes = len(info.fine_classes) if sub else info.num_classes
    forget_class = splits.forget_fine_class if sub else splits.forget_class
    forget_dl, full_dl = authors_task_loaders(splits.task, splits.train, splits.forget, num_classes, forget_class,
                                              cfg.seed, cfg.batch_size)
    theirs = copy.deepcopy(model)
    imp_d, imp_f, selected = authors_ssd(theirs, forget_dl, full_dl, cfg.alpha, cfg.lam)
    return imp_d, imp_f, selected, theirs


def assert_equivalent(model: nn.Module, splits: Splits, cfg: SSDConfig) -> dict[str, int]:
    """Importances and dampened weights of ours (protocol authors) = the reference's; returns counts."""
    ours_d, ours_f, _ = ssd_importances(copy.deepcopy(model), splits.train, splits.forget, cfg, task=splits.task)
    ref_d, ref_f, ref_selected, ref_model = authors_side(model, splits, cfg)
    for name in ref_d:  # float32 sums in the same order: equal up to accumulation rounding
        torch.testing.assert_close(ours_d[name], ref_d[name], rtol=1e-5, atol=1e-12, msg=f"imp_D {name}")
        torch.testing.assert_close(ours_f[name], ref_f[name], rtol=1e-5, atol=1e-12, msg=f"imp_Df {name}")
    ours_model = METHODS.get("ssd").fn(copy.deepcopy(model), splits, cfg)
    stats = splits.context["ssd_stats"]
    assert stats["total_selected"] == ref_selected
    assert (stats["protocol"], stats["order"], stats["batch_size"]) == ("authors", "paper", cfg.batch_size)
    for (name, a), (_, b) in zip(ours_model.named_parameters(), ref_model.named_parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-9, msg=f"dampened {name}")
    return {"selected": ref_selected}


@pytest.mark.parametrize("task", TASKS)
def test_authors_protocol_equals_reference_implementation(task: str, task_setup, one_thread) -> None:
    model, splits = task_setup[task]
    cfg = apply_protocol(SSDConfig(protocol="authors", alpha=ALPHA), "ssd", task)
    assert cfg.batch_size == {"full_class": 64, "sub_class": 64, "random": 128}[task]
    counts = assert_equivalent(model, splits, cfg)
    assert counts["selected"] > 0, "no weight selected: the weight comparison would be vacuous"


@pytest.mark.parametrize("task", TASKS)
def test_our_protocol_differs_from_the_reference(task: str, task_setup, one_thread) -> None:
    """The comparison above can fail: D in our shuffled order gives other importances."""
    model, splits = task_setup[task]
    cfg = apply_protocol(SSDConfig(protocol="authors", alpha=ALPHA), "ssd", task)
    ours_d, _, _ = ssd_importances(copy.deepcopy(model), splits.train, splits.forget,
                                   SSDConfig(batch_size=cfg.batch_size), task=task)
    ref_d, _, _, _ = authors_side(model, splits, cfg)
    assert any(not torch.allclose(ours_d[n], ref_d[n], rtol=1e-3) for n in ref_d)


def test_sub_class_paper_order_groups_fine_classes(task_setup) -> None:
    """Sub-class: retain is visited fine class by fine class, then the forgotten fine class."""
    _, splits = task_setup["sub_class"]
    order = paper_order(splits.train, splits.forget, task="sub_class")
    fine = splits.train.fine_targets.cpu()[order]
    n_retain = len(splits.retain)
    assert torch.equal(fine[:n_retain], fine[:n_retain].sort().values)
    assert bool((fine[n_retain:] == splits.forget_fine_class).all())
    coarse_sorted = paper_order(splits.train, splits.forget, task="full_class")
    assert not torch.equal(order, coarse_sorted)  # sorting by the coarse label would differ


def test_random_paper_order_is_seeded_retain_then_forget(task_setup) -> None:
    _, splits = task_setup["random"]
    a = paper_order(splits.train, splits.forget, task="random", seed=3)
    assert torch.equal(a, paper_order(splits.train, splits.forget, task="random", seed=3))
    assert not torch.equal(a, paper_order(splits.train, splits.forget, task="random", seed=4))
    assert sorted(a.tolist()) == list(range(len(splits.train)))
    is_forget = torch.isin(splits.train.indices[a], splits.forget.indices)
    assert not bool(is_forget[: len(splits.retain)].any()) and bool(is_forget[len(splits.retain):].all())
    labels = splits.train.targets[a[: len(splits.retain)]]
    assert not torch.equal(labels, labels.sort().values)  # mixed, not class-sorted


def test_batch_sizes_resolve_per_task_and_method() -> None:
    def cfg(method: str, task: str, net: str = "ConvNet", **kw: object):
        spec = RunSpec(task=task, net=net, dataset="Digits", weight_path="x", method=method,
                       overrides={"protocol": "authors", **kw})
        return method_config(method, spec)

    assert cfg("ssd", "full_class").batch_size == 64 and cfg("ssd", "random").batch_size == 128
    assert cfg("finetune", "sub_class").batch_size == 64 and cfg("finetune", "random").batch_size == 128
    ng = cfg("neggrad_plus", "full_class")
    assert (ng.batch_size, ng.forget_batch_size) == (32, 16)
    assert cfg("blindspot", "full_class", net="ViT").batch_size == 128
    assert cfg("jit", "sub_class").batch_size == 64
    assert cfg("scrub", "random").batch_size == 256
    assert cfg("ssd", "full_class", batch_size=32).batch_size == 32  # explicit settings win
    ours = method_config("ssd", RunSpec(task="random", net="ConvNet", dataset="Digits", weight_path="x",
                                        method="ssd"))
    assert (ours.protocol, ours.batch_size) == ("ours", 64)
    assert authors_settings("baseline", "full_class") == {}
    with pytest.raises(UserError, match="protocol"):
        cfg("ssd", "full_class", protocol="theirs")


@pytest.mark.parametrize("protocol", ["ours", "authors"])
def test_vit_takes_the_batch_sizes_its_reference_code_runs_it_with(protocol: str) -> None:
    """blindspot 128 on ViT (the SSD authors' "lowered ... to fit into memory") and SCRUB at the
    JiT repository's ViT loaders (forget = retain = -b: 128, 64 sub-class), under either protocol;
    ResNet18 keeps the method's own; an explicit setting wins. Old: ViT took blindspot 256 and
    SCRUB's forget batch 512 (≈ 60 GB at 224 px) unless protocol was "authors"."""
    def cfg(method: str, net: str, task: str = "full_class", **kw: object):
        return method_config(method, RunSpec(task=task, net=net, dataset="Cifar10", weight_path="x", method=method,
                                             overrides={"protocol": protocol, **kw}))

    assert cfg("blindspot", "ViT").batch_size == 128 and cfg("blindspot", "ResNet18").batch_size == 256
    vit = cfg("scrub", "ViT")
    assert (vit.batch_size, vit.forget_batch_size) == (128, 128)
    assert cfg("scrub", "ViT", task="sub_class").forget_batch_size == 64
    assert cfg("scrub", "ResNet18").forget_batch_size == 512
    assert cfg("scrub", "ViT", forget_batch_size=256).forget_batch_size == 256


def test_suite_protocol_key_sets_every_method() -> None:
    import argparse

    from ssd.suite import build_grid

    suite = {"protocol": "authors", "tasks": [{"task": "random", "dataset": "Digits"}], "nets": ["ConvNet"],
             "methods": ["ssd", "finetune", "baseline"], "seeds": [0]}
    args = argparse.Namespace(seeds=None, methods=None, nets=None, device="cpu", data_root=None, download=False)
    grid = build_grid(suite, args)
    assert grid and all(s.overrides.get("protocol") == "authors" for s in grid)
    assert {method_config(s.method, s).batch_size for s in grid if s.method in ("ssd", "finetune")} == {128}
    with pytest.raises(UserError, match="protocol"):
        build_grid({**suite, "protocol": "paper"}, args)


# ---- real MNIST (slow): ConvNet, full class (digit 2), sub-class (MNISTCoarse digit 2), random 100


def quick_model(train: ImageData, seed: int = 0) -> nn.Module:
    """A ConvNet after one Adam epoch on 12,000 images: enough to make importances meaningful."""
    from ssd.schedules import load_schedule
    from ssd.train import fit

    torch.manual_seed(seed)
    model = build_model("ConvNet", train.info)
    fit(model, train.subset(torch.arange(12000)), load_schedule("ConvNet", train.info.name, epochs=1),
        seed=seed, progress=False)
    return model.eval()


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_authors_protocol_on_real_mnist(task: str, mnist_root: Path) -> None:
    torch.set_num_threads(min(2, torch.get_num_threads()))
    name = "MNISTCoarse" if task == "sub_class" else "MNIST"
    train, test = load_dataset(name, train=True, root=mnist_root), load_dataset(name, train=False, root=mnist_root)
    kw = {"n_forget": 100} if task == "random" else {"forget_class": 2}
    splits = make_splits(task, train, test, seed=0, **kw)
    cfg = apply_protocol(SSDConfig(protocol="authors"), "ssd", task)  # the paper's α = 10, λ = 1
    assert_equivalent(quick_model(train), splits, cfg)


def test_unsir_sub_class_caps_per_fine_class(task_setup, monkeypatch) -> None:
    """The authors' sub-class UNSIR keys `classwise_train` on the fine label: 500 per fine class."""
    from ssd.methods import unsir as unsir_module

    _, splits = task_setup["sub_class"]
    capped = unsir_module.capped_per_class(splits.retain, 5, fine=True)
    fine = capped.fine_targets.cpu()
    n_fine = len(splits.retain.fine_targets.unique())
    assert len(capped) == 5 * n_fine and all(int((fine == c).sum()) == 5 for c in fine.unique())
    seen = {}
    original = unsir_module.capped_per_class

    def spy(data: ImageData, cap: int, *, fine: bool = False) -> ImageData:
        seen["fine"] = fine
        return original(data, cap, fine=fine)

    monkeypatch.setattr(unsir_module, "capped_per_class", spy)
    model, _ = task_setup["sub_class"]
    cfg = unsir_module.UNSIRConfig(noise_steps=1, samples_per_class=5)
    METHODS.get("UNSIR").fn(copy.deepcopy(model), splits, cfg)
    assert seen == {"fine": True}
