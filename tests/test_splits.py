"""Forget/retain splits: partitions, seeding, sub-class semantics, hashes and bad requests."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from datasets import load_dataset
from datasets.base import DatasetInfo, ImageData
from ssd.errors import UserError
from ssd.splits import Splits, check_partition, make_splits

TOY = DatasetInfo("Toy", ("a", "b", "c", "d"), 1, 2, (0.5,), (0.5,))
TOY_COARSE = DatasetInfo(
    "ToyCoarse", ("x", "y"), 1, 2, (0.5,), (0.5,),
    fine_classes=("a", "b", "c", "d"), fine_to_coarse=(0, 1, 1, 0),
)


@pytest.fixture(scope="module")
def digits() -> tuple[ImageData, ImageData]:
    return load_dataset("Digits", train=True), load_dataset("Digits", train=False)


@pytest.fixture(scope="module")
def coarse() -> tuple[ImageData, ImageData]:
    return load_dataset("DigitsCoarse", train=True), load_dataset("DigitsCoarse", train=False)


def toy(n: int, seed: int, coarse: bool = False, offset: int = 0) -> ImageData:
    """Small random data; `offset` gives non-trivial original indices (a subset of something)."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 1, 2, 2), generator=g, dtype=torch.uint8)
    fine = torch.arange(n) % 4  # every class present once n ≥ 4
    fine = fine[torch.randperm(n, generator=g)]
    indices = torch.randperm(n, generator=g) * 3 + offset
    if coarse:
        return ImageData(TOY_COARSE, images, torch.tensor(TOY_COARSE.fine_to_coarse)[fine], fine, indices)
    return ImageData(TOY, images, fine, indices=indices)


def ids(data: ImageData) -> set[int]:
    assert data.indices is not None
    return set(data.indices.tolist())


def assert_partition(s: Splits) -> None:
    assert ids(s.forget).isdisjoint(ids(s.retain))
    assert ids(s.forget) | ids(s.retain) == ids(s.train)
    assert len(s.forget) + len(s.retain) == len(s.train)
    assert ids(s.forget_test).isdisjoint(ids(s.retain_test))
    assert ids(s.forget_test) | ids(s.retain_test) == ids(s.test)
    assert s.retain_eval is not None and ids(s.retain_eval) <= ids(s.retain)
    check_partition(s.train, s.forget, s.retain)


@pytest.mark.parametrize("cls", [0, 3, 9])
def test_full_class_on_digits(digits: tuple[ImageData, ImageData], cls: int) -> None:
    train, test = digits
    s = make_splits("full_class", train, test, forget_class=cls)
    assert_partition(s)
    assert (s.forget.targets == cls).all() and len(s.forget) == int((train.targets == cls).sum())
    assert not (s.retain.targets == cls).any()
    assert (s.forget_test.targets == cls).all() and len(s.forget_test) == int((test.targets == cls).sum())
    assert not (s.retain_test.targets == cls).any()
    assert (s.forget_class, s.forget_fine_class, s.num_classes) == (cls, None, 10)
    assert s.context["dataset"] == "Digits" and len(s.context["split_hash"]) == 64
    assert s.retain_eval is s.retain  # 1,2xx retain samples < the 5,000 cap


def test_sub_class_forgets_a_fine_class_scored_on_coarse(coarse: tuple[ImageData, ImageData]) -> None:
    train, test = coarse
    s = make_splits("sub_class", train, test, forget_class=3)  # digit 3 lives in "curves" (2)
    assert_partition(s)
    assert (s.forget_fine_class, s.forget_class, s.num_classes) == (3, 2, 3)
    assert s.forget.fine_targets is not None and (s.forget.fine_targets == 3).all()
    assert (s.forget.targets == 2).all()  # scored on the coarse label
    assert len(s.forget) == int((train.fine_targets == 3).sum())
    assert s.retain.fine_targets is not None
    siblings = s.retain.targets[torch.isin(s.retain.fine_targets, torch.tensor([2, 5]))]
    assert siblings.numel() == int(torch.isin(train.fine_targets, torch.tensor([2, 5])).sum())
    assert (siblings == 2).all()
    assert not (s.retain.fine_targets == 3).any()
    assert s.forget_test.fine_targets is not None and (s.forget_test.fine_targets == 3).all()
    assert s.retain_test.fine_targets is not None and (s.retain_test.fine_targets == 5).any()
    assert len(s.forget_test) == int((test.fine_targets == 3).sum())


def test_random_takes_exactly_n_and_is_seeded(digits: tuple[ImageData, ImageData]) -> None:
    train, test = digits
    a = make_splits("random", train, test, n_forget=100, seed=1)
    b = make_splits("random", train, test, n_forget=100, seed=1)
    c = make_splits("random", train, test, n_forget=100, seed=2)
    assert_partition(a)
    assert len(a.forget) == 100 and len(a.retain) == len(train) - 100
    assert ids(a.forget) == ids(b.forget) and ids(a.forget) != ids(c.forget)
    assert a.context["split_hash"] == b.context["split_hash"] != c.context["split_hash"]
    assert len(a.forget_test) == 0 and a.forget_test.images.shape[1:] == test.images.shape[1:]
    assert ids(a.retain_test) == ids(test)
    assert a.forget_class is None and a.forget_fine_class is None


def test_retain_eval_is_a_seeded_capped_subset(digits: tuple[ImageData, ImageData]) -> None:
    train, test = digits
    a = make_splits("full_class", train, test, forget_class=1, retain_eval_size=100, seed=0)
    b = make_splits("full_class", train, test, forget_class=1, retain_eval_size=100, seed=0)
    c = make_splits("full_class", train, test, forget_class=1, retain_eval_size=100, seed=1)
    assert a.retain_eval is not None and b.retain_eval is not None and c.retain_eval is not None
    assert len(a.retain_eval) == 100 and ids(a.retain_eval) <= ids(a.retain)
    assert ids(a.retain_eval) == ids(b.retain_eval) != ids(c.retain_eval)
    # The cap changes scoring, not the forget set, so the hash ignores it.
    full = make_splits("full_class", train, test, forget_class=1, seed=0)
    assert full.context["split_hash"] == a.context["split_hash"]


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(min_value=5, max_value=60),
    data_seed=st.integers(min_value=0, max_value=10_000),
    split_seed=st.integers(min_value=0, max_value=10_000),
    frac=st.floats(min_value=0.0, max_value=1.0),
    cls=st.integers(min_value=0, max_value=3),
    offset=st.integers(min_value=0, max_value=1000),
)
def test_property_partitions_on_random_data(
    n: int, data_seed: int, split_seed: int, frac: float, cls: int, offset: int
) -> None:
    train, test = toy(n, data_seed, offset=offset), toy(n, data_seed + 1)
    n_forget = 1 + int(frac * (n - 2))  # 1..n-1
    s = make_splits("random", train, test, n_forget=n_forget, seed=split_seed, retain_eval_size=3)
    assert_partition(s)
    assert len(s.forget) == n_forget and len(s.retain_eval or []) == min(3, n - n_forget)
    again = make_splits("random", train, test, n_forget=n_forget, seed=split_seed, retain_eval_size=3)
    assert ids(again.forget) == ids(s.forget) and again.context["split_hash"] == s.context["split_hash"]

    f = make_splits("full_class", train, test, forget_class=cls, seed=split_seed)
    assert_partition(f)
    assert (f.forget.targets == cls).all() and not (f.retain.targets == cls).any()

    ctrain, ctest = toy(n, data_seed, coarse=True, offset=offset), toy(n, data_seed + 1, coarse=True)
    sc = make_splits("sub_class", ctrain, ctest, forget_class=cls, seed=split_seed)
    assert_partition(sc)
    assert sc.forget_class == TOY_COARSE.fine_to_coarse[cls]  # type: ignore[index]
    assert (sc.forget.targets == sc.forget_class).all()


def test_hash_changes_with_class_seed_and_task(digits: tuple[ImageData, ImageData]) -> None:
    train, test = digits
    h = {
        (task, c, seed): make_splits(task, train, test, forget_class=c, seed=seed).context["split_hash"]
        for task, c, seed in [("full_class", 1, 0), ("full_class", 2, 0), ("full_class", 1, 5)]
    }
    h[("random", None, 0)] = make_splits("random", train, test, seed=0).context["split_hash"]
    assert len(set(h.values())) == len(h)
    assert make_splits("full_class", train, test, forget_class=1).context["split_hash"] == h[("full_class", 1, 0)]


def test_context_is_copied_and_extended(digits: tuple[ImageData, ImageData]) -> None:
    train, test = digits
    ctx = {"checkpoint_sha256": "abc"}
    s = make_splits("random", train, test, n_forget=10, context=ctx)
    assert s.context["checkpoint_sha256"] == "abc" and "split_hash" in s.context
    assert ctx == {"checkpoint_sha256": "abc"}


def test_hand_built_splits_default_retain_eval_to_retain() -> None:
    data = toy(8, 0)
    s = Splits("random", data, data.subset([0]), data.subset(range(1, 8)), data, data.subset([]), data, 4)
    assert s.retain_eval is s.retain


@pytest.mark.parametrize(
    ("task", "dataset", "kwargs", "match"),
    [
        ("full_class", "Digits", {"forget_class": 10}, "out of range"),
        ("full_class", "Digits", {"forget_class": -1}, "out of range"),
        ("full_class", "Digits", {}, "needs a class index"),
        ("sub_class", "Digits", {"forget_class": 3}, "coarse labels"),
        ("sub_class", "DigitsCoarse", {"forget_class": 10}, "out of range"),
        ("random", "Digits", {"n_forget": 0}, "n_forget"),
        ("random", "Digits", {"n_forget": -5}, "n_forget"),
        ("random", "Digits", {"n_forget": 1347}, "n_forget"),
        ("random", "Digits", {"n_forget": 10_000}, "n_forget"),
        ("random", "Digits", {"forget_class": 1}, "random"),
        ("random", "Digits", {"retain_eval_size": 0}, "retain_eval_size"),
        ("everything", "Digits", {}, "unknown task"),
    ],
)
def test_bad_requests_are_one_line_user_errors(task: str, dataset: str, kwargs: dict, match: str) -> None:
    train, test = load_dataset(dataset, train=True), load_dataset(dataset, train=False)
    with pytest.raises(UserError, match=match) as err:
        make_splits(task, train, test, **kwargs)
    assert "\n" not in str(err.value)


def test_absent_class_is_a_user_error() -> None:
    data = toy(3, 0)  # classes 0, 1, 2 only
    with pytest.raises(UserError, match="no training image"):
        make_splits("full_class", data, data, forget_class=3)


def test_check_partition_rejects_overlap_and_gaps() -> None:
    data = toy(10, 0)
    with pytest.raises(ValueError, match="overlap"):
        check_partition(data, data.subset([0, 1, 2]), data.subset(range(2, 10)))
    with pytest.raises(ValueError, match="not the training set"):
        check_partition(data, data.subset([0, 1]), data.subset(range(3, 10)))
