"""No host<->device syncs in hot loops: the calls that would make a GPU wait do not grow with batches.

Each component (a training epoch, the importance passes, an evaluation, the vectorised shadow
ensemble, and one run of every registered method) runs on tiny Digits data at two sizes, the
second with 4x the rows and so about 4x the batches at the same batch size; the count of calls
that would synchronise on CUDA or copy from the host (tests/sync_counter.py) must not grow at
any call site. Per-run setup (a split, a seed, one read-back of the result) may sync; a batch
may not. A CPU-only machine sees Python-level calls, not real CUDA syncs: the `cuda`-marked
test checks the real thing with torch's sync debug mode where a GPU is present.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from functools import cache
from typing import Any

import pytest
import torch
from sync_counter import count_calls, growth
from torch import nn

import ssd.methods  # noqa: F401  (registers every method)
from datasets import ImageData, balanced_subset, load_dataset
from models import build_model
from ssd.importance import compute_importances, paper_order
from ssd.methods.registry import METHODS
from ssd.metrics import evaluate
from ssd.privacy.ensemble import Ensemble, fit_ensemble
from ssd.schedules import load_schedule
from ssd.splits import Splits, make_splits
from ssd.train import fit

ROWS = 80  # training rows at scale 1 (about 8 of them digit 3, the forget class)
SCALES = (1, 4)
BATCH = 8  # small batches, so that 4x the rows is 4x the batches
# Small batches for every method that has such a field, and short runs for the slow ones.
SMALL = {"batch_size": BATCH, "forget_batch_size": BATCH, "impair_batch_size": BATCH, "chunk_size": BATCH,
         "epochs": 1, "noise_steps": 2, "max_retain": 16, "protocol": "authors"}
ONLY = {"ntk": {"chunk_size": 2}, "fisher": {"chunk_size": 16}}  # its retain set is capped (the Jacobian), so the forget set's chunks grow


@cache
def _host_data(scale: int) -> tuple[ImageData, ImageData]:
    train, test = load_dataset("Digits", train=True), load_dataset("Digits", train=False)
    return balanced_subset(train, ROWS * scale, seed=0), balanced_subset(test, ROWS * scale // 2, seed=0)


def _data(scale: int, device: str) -> tuple[ImageData, ImageData]:
    """Train and test rows on `device`, where the experiment driver puts them."""
    train, test = _host_data(scale)
    return train.to(device), test.to(device)


def _splits(scale: int, device: str) -> Splits:
    train, test = _data(scale, device)
    return make_splits("full_class", train, test, forget_class=3, seed=0,
                       model_factory=lambda: build_model("ConvNet", train.info),
                       context={"net": "ConvNet", "dataset": "Digits"})


def _model(device: str = "cpu") -> nn.Module:
    torch.manual_seed(0)
    return build_model("ConvNet", load_dataset("Digits", train=False).info).to(device).eval()


def _augmented(data: ImageData) -> ImageData:
    """The same rows under an info that asks for CIFAR's crop + flip, so augmentation runs too."""
    info = dataclasses.replace(data.info, augment="crop_flip")
    return ImageData(info, data.images, data.targets, data.fine_targets, data.indices)


def _train(scale: int, device: str) -> None:
    schedule = load_schedule("ConvNet", "Digits", epochs=1, batch_size=BATCH, augment=True)
    fit(_model(device).train(), _augmented(_data(scale, device)[0]), schedule, seed=0,
        progress=True)  # the suite's default


def _importances(scale: int, device: str) -> None:
    splits = _splits(scale, device)
    order = paper_order(splits.train, splits.forget, task="full_class")
    for mode in ("batch", "lf", "sample"):
        compute_importances(_model(device), splits.train, mode=mode, batch_size=BATCH, chunk_size=BATCH,
                            order_indices=order)


def _evaluation(scale: int, device: str) -> None:
    evaluate(_model(device), _splits(scale, device), batch_size=BATCH, untrained=_model(device),
             retrained=_model(device), details={})


def _ensemble(scale: int, device: str) -> None:
    train = _augmented(_data(scale, device)[0])
    members = torch.zeros(2, len(train), dtype=torch.bool)
    members[0, ::2] = members[1, 1::2] = True
    ens = Ensemble(_model, 2, seed=0, device=device)
    schedule = load_schedule("ConvNet", "Digits", epochs=1, batch_size=BATCH, augment=True)
    fit_ensemble(ens, train, members, schedule, seed=0)
    ens.predict(train, batch_size=BATCH)


def _method(name: str, **extra: Any) -> Callable[[int, str], None]:
    entry = METHODS.get(name)
    fields = set(entry.config.__dataclass_fields__)
    settings: dict[str, Any] = {k: v for k, v in {**SMALL, **ONLY.get(name, {}), **extra}.items() if k in fields}

    def run(scale: int, device: str) -> None:
        cfg = entry.config(seed=0, progress=True, device=device, **settings)
        entry.fn(_model(device), _splits(scale, device), cfg)

    return run


COMPONENTS: dict[str, Callable[[int, str], None]] = {
    "train epoch": _train, "importances": _importances, "evaluation": _evaluation, "shadow ensemble": _ensemble,
    **{f"method {name}": _method(name) for name in METHODS.names()},
    "method ssd alpha=auto": _method("ssd", alpha="auto"),
    "method ssd alpha=search": _method("ssd", alpha="search", search_alphas=[1.0, 10.0]),
}


@pytest.mark.parametrize("component", list(COMPONENTS))
def test_syncs_do_not_grow_with_the_number_of_batches(component: str, one_thread: None) -> None:
    run = COMPONENTS[component]
    small, large = (count_calls(lambda s=s: run(s, "cpu")) for s in SCALES)
    grew = growth(small, large)
    assert not grew, f"{component}: calls that sync on a GPU grow with the batches:\n  " + "\n  ".join(grew)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (torch's sync debug mode)")
@pytest.mark.parametrize("component", list(COMPONENTS))
def test_real_cuda_syncs_do_not_grow_with_the_number_of_batches(component: str) -> None:
    """The same on a GPU, counted by torch itself (`set_sync_debug_mode("warn")` warns at each
    synchronising call): the number of warnings must not grow with the batches."""
    run = COMPONENTS[component]
    run(1, "cuda")  # warm-up: lazy initialisation syncs once

    def warnings_at(scale: int) -> int:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                run(scale, "cuda")
            finally:
                torch.cuda.set_sync_debug_mode("default")
        return sum("synchroniz" in str(w.message) for w in seen)

    small, large = (warnings_at(s) for s in SCALES)
    assert large <= small, f"{component}: {small} synchronising calls at {SCALES[0]}x the rows, {large} at {SCALES[1]}x"


def test_the_counter_sees_a_per_batch_read_back() -> None:
    """The instrument itself: a loop that reads a loss back each batch is caught, one that does not is not."""
    def loop(read_back: bool, scale: int) -> None:
        total = torch.zeros(())
        for x in torch.ones(10 * scale, BATCH):
            loss = x.mean()
            total += loss
            if read_back:
                loss.item()
        float(total)

    for read_back in (True, False):
        small, large = (count_calls(lambda s=s, r=read_back: loop(r, s), skip=()) for s in SCALES)
        assert bool(growth(small, large)) is read_back
