"""Datasets: the CIFAR-20 map, loading every registered dataset from real-format files,
class names, missing data, the data root, augmentation and batching."""

from __future__ import annotations

import pickle
import shutil
from collections import Counter
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from synthetic import (
    CIFAR100_COARSE,
    CIFAR100_FINE,
    CIFAR100_SUPERCLASSES,
    SYNTH_CIFAR10,
    SYNTH_CIFAR100,
    SYNTH_MNIST,
)

from datasets import (
    DATASETS,
    DatasetInfo,
    ImageData,
    dataset_info,
    load_dataset,
    random_crop_flip,
    resolve_class,
    resolve_data_root,
)
from datasets.cifar import CIFAR20_CLASSES, CIFAR100_CLASSES, CIFAR100_TO_20
from ssd.errors import UserError

ALL = sorted(DATASETS.names())
CIFAR = {"Cifar10", "Cifar100", "Cifar20"}
MNISTS = {"MNIST", "MNISTCoarse", "FashionMNIST", "FashionMNISTCoarse"}


def _root_and_sizes(name: str, request: pytest.FixtureRequest) -> tuple[Path | None, tuple[int, int]]:
    """Where each dataset's synthetic copy lives, and its train/test sizes."""
    if name in CIFAR:
        sizes = SYNTH_CIFAR10 if name == "Cifar10" else SYNTH_CIFAR100
        return request.getfixturevalue("synthetic_cifar_root"), sizes
    if name in MNISTS:
        return request.getfixturevalue("synthetic_mnist_root"), SYNTH_MNIST
    if name in {"Digits", "DigitsCoarse"}:
        return None, (1347, 450)
    raise AssertionError(f"no synthetic data for {name}: add it to tests/synthetic.py")


# --- CIFAR-20 ---------------------------------------------------------------------------


def test_cifar20_map_has_20_superclasses_of_5() -> None:
    info = dataset_info("Cifar20")
    assert info.classes == CIFAR20_CLASSES and len(info.classes) == 20
    assert info.fine_classes == CIFAR100_CLASSES and len(set(info.fine_classes)) == 100
    assert Counter(info.fine_to_coarse) == {c: 5 for c in range(20)}
    coarse = {f: info.classes[c] for f, c in zip(info.fine_classes, info.fine_to_coarse, strict=True)}
    assert coarse["rocket"] == "vehicles_2" and coarse["baby"] == "people"
    assert coarse["lamp"] == "household_electrical_devices"
    assert coarse["sea"] == "large_natural_outdoor_scenes"
    assert coarse["mushroom"] == "fruit_and_vegetables"
    # The CIFAR web page's table, written independently in tests/synthetic.py.
    assert CIFAR100_FINE == CIFAR100_CLASSES and CIFAR100_COARSE == CIFAR20_CLASSES
    for c, fines in enumerate(CIFAR100_SUPERCLASSES.values()):
        assert {CIFAR100_TO_20[CIFAR100_CLASSES.index(f)] for f in fines} == {c}


def test_cifar20_targets_match_the_files_coarse_labels(synthetic_cifar_root: Path) -> None:
    folder = synthetic_cifar_root / "cifar-100-python"
    with open(folder / "meta", "rb") as f:
        meta = pickle.load(f, encoding="latin1")
    assert tuple(meta["coarse_label_names"]) == dataset_info("Cifar20").classes
    assert tuple(meta["fine_label_names"]) == dataset_info("Cifar20").fine_classes
    for train, split in ((True, "train"), (False, "test")):
        with open(folder / split, "rb") as f:
            raw = pickle.load(f, encoding="latin1")
        data = load_dataset("Cifar20", train=train, root=synthetic_cifar_root)
        assert data.targets.tolist() == raw["coarse_labels"]
        assert data.fine_targets is not None and data.fine_targets.tolist() == raw["fine_labels"]
        assert torch.equal(data.images, torch.from_numpy(raw["data"]).view(-1, 3, 32, 32))


def test_synthetic_cifar_pickles_look_like_the_originals(synthetic_cifar_root: Path) -> None:
    """Python-2 str keys: bytes under encoding='bytes', str under 'latin1'."""
    path = synthetic_cifar_root / "cifar-10-batches-py" / "data_batch_1"
    with open(path, "rb") as f:
        as_bytes = pickle.load(f, encoding="bytes")
    assert set(as_bytes) == {b"batch_label", b"labels", b"data", b"filenames"}
    assert as_bytes[b"data"].dtype == np.uint8 and as_bytes[b"data"].shape[1] == 3072
    with open(path, "rb") as f:
        assert set(pickle.load(f, encoding="latin1")) == {"batch_label", "labels", "data", "filenames"}


# --- loading ----------------------------------------------------------------------------


def test_every_dataset_is_registered() -> None:
    assert CIFAR | MNISTS | {"Digits", "DigitsCoarse"} <= set(ALL)


@pytest.mark.parametrize("name", ALL)
def test_every_dataset_loads_with_the_right_shapes(name: str, request: pytest.FixtureRequest) -> None:
    root, sizes = _root_and_sizes(name, request)
    info = dataset_info(name)
    for train, n in zip((True, False), sizes, strict=True):
        data = load_dataset(name, train=train, root=root)
        assert data.info is info and len(data) == n
        assert data.images.dtype == torch.uint8
        assert data.images.shape[1:] == (info.channels, info.image_size, info.image_size)
        assert data.targets.dtype == torch.long and torch.equal(data.indices, torch.arange(n))
        assert set(data.targets.tolist()) == set(range(info.num_classes))
        assert len(info.mean) == len(info.std) == info.channels
        if info.fine_classes is None:
            assert data.fine_targets is None and info.fine_to_coarse is None
        else:
            assert data.fine_targets is not None and info.fine_to_coarse is not None
            assert set(data.fine_targets.tolist()) == set(range(len(info.fine_classes)))
            assert torch.equal(torch.tensor(info.fine_to_coarse)[data.fine_targets], data.targets)
    assert info.augment == ("crop_flip" if name in CIFAR else "none")


def test_cifar10_images_are_the_files_pixels_channel_first(synthetic_cifar_root: Path) -> None:
    folder = synthetic_cifar_root / "cifar-10-batches-py"
    raw, labels = [], []
    for b in range(1, 6):
        with open(folder / f"data_batch_{b}", "rb") as f:
            entry = pickle.load(f, encoding="latin1")
        raw.append(entry["data"])
        labels += entry["labels"]
    data = load_dataset("Cifar10", train=True, root=synthetic_cifar_root)
    assert torch.equal(data.images, torch.from_numpy(np.vstack(raw)).view(-1, 3, 32, 32))
    assert data.targets.tolist() == labels


def test_mnist_images_are_the_idx_pixels(synthetic_mnist_root: Path) -> None:
    raw = (synthetic_mnist_root / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte").read_bytes()
    pixels = torch.from_numpy(np.frombuffer(raw[16:], dtype=np.uint8).copy()).view(-1, 1, 28, 28)
    assert torch.equal(load_dataset("FashionMNIST", train=False, root=synthetic_mnist_root).images, pixels)


@pytest.mark.parametrize("name", ["Cifar10", "Cifar20", "MNIST"])
def test_synthetic_images_are_learnable(name: str, request: pytest.FixtureRequest) -> None:
    """A nearest-class-mean classifier separates them, so later training tests can learn."""
    root, _ = _root_and_sizes(name, request)
    train, test = (load_dataset(name, train=t, root=root) for t in (True, False))
    x, xt = train.images.flatten(1).float(), test.images.flatten(1).float()

    def class_means(labels: torch.Tensor) -> torch.Tensor:
        onehot = F.one_hot(labels).float()
        return (onehot.T @ x) / onehot.sum(0)[:, None]

    pred = torch.cdist(xt, class_means(train.targets)).argmin(1)
    if name == "Cifar20":  # the coarse classes are unions: classify by fine class, then map
        assert train.fine_targets is not None
        fine_pred = torch.cdist(xt, class_means(train.fine_targets)).argmin(1)
        pred = torch.tensor(train.info.fine_to_coarse)[fine_pred]
    assert (pred == test.targets).float().mean() >= 0.9


def test_real_mnist_loads_full_size(mnist_root: Path) -> None:
    counts = {
        ("MNIST", True): [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
        ("MNIST", False): [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
        ("FashionMNIST", True): [6000] * 10,
        ("FashionMNIST", False): [1000] * 10,
    }
    for (name, train), expected in counts.items():
        data = load_dataset(name, train=train, root=mnist_root)
        assert len(data) == (60_000 if train else 10_000) and data.images.shape[1:] == (1, 28, 28)
        assert data.targets.bincount().tolist() == expected
    coarse = load_dataset("MNISTCoarse", train=False, root=mnist_root)
    digits = counts[("MNIST", False)]
    groups = [sum(digits[d] for d in g) for g in ((0, 6, 8, 9), (1, 4, 7), (2, 3, 5))]
    assert coarse.targets.bincount().tolist() == groups


def test_digits_split_is_fixed_and_stratified() -> None:
    from sklearn.datasets import load_digits

    from datasets import digits

    a = load_dataset("Digits", train=False)
    digits._split.cache_clear()
    b, train = load_dataset("Digits", train=False), load_dataset("Digits", train=True)
    assert torch.equal(a.images, b.images) and torch.equal(a.targets, b.targets)
    assert a.targets[:12].tolist() == [1, 4, 8, 6, 5, 9, 9, 1, 3, 5, 2, 2]
    total = np.bincount(load_digits().target)
    assert (train.targets.bincount().numpy() + b.targets.bincount().numpy() == total).all()
    assert np.abs(b.targets.bincount().numpy() - 0.25 * total).max() <= 1


# --- class names ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_classes_resolve_by_index_name_and_alias(name: str) -> None:
    info = dataset_info(name)
    tables = [(info.classes, info.aliases)]
    if info.fine_classes is not None:
        tables.append((info.fine_classes, info.fine_aliases))
    for names, aliases in tables:
        for i, cls in enumerate(names):
            assert resolve_class(i, names, aliases) == resolve_class(str(i), names, aliases) == i
            assert resolve_class(cls, names, aliases) == resolve_class(cls.upper(), names, aliases) == i
        for alias, i in aliases.items():
            assert resolve_class(alias, names, aliases) == i
        with pytest.raises(UserError, match="unknown class"):
            resolve_class("no_such_class", names, aliases)
        with pytest.raises(UserError, match="out of range"):
            resolve_class(len(names), names, aliases)


def test_authors_class_names() -> None:
    c20, c100 = dataset_info("Cifar20"), dataset_info("Cifar100")
    expect = {"vehicle2": "vehicles_2", "veg": "fruit_and_vegetables", "people": "people",
              "electrical_devices": "household_electrical_devices",
              "natural_scenes": "large_natural_outdoor_scenes"}
    for alias, cls in expect.items():
        assert c20.classes[resolve_class(alias, c20.classes, c20.aliases)] == cls
    for fine in ("rocket", "mushroom", "baby", "lamp", "sea"):
        assert c100.classes[resolve_class(fine, c100.classes, c100.aliases)] == fine
        assert c20.fine_classes is not None and resolve_class(fine, c20.fine_classes) == c100.classes.index(fine)
    mnist, fashion = dataset_info("MNIST"), dataset_info("FashionMNIST")
    assert mnist.classes == tuple("0123456789") and resolve_class("two", mnist.classes, mnist.aliases) == 2
    assert resolve_class("t-shirt", fashion.classes, fashion.aliases) == 0
    assert resolve_class("ankle boot", fashion.classes, fashion.aliases) == 9


# --- missing or broken data -------------------------------------------------------------


@pytest.fixture
def no_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any download attempt fails the test."""
    import torchvision.datasets.cifar as tv_cifar
    import torchvision.datasets.mnist as tv_mnist

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a download was attempted")

    for mod in (tv_cifar, tv_mnist):
        monkeypatch.setattr(mod, "download_and_extract_archive", refuse)


@pytest.mark.parametrize("name", [n for n in ALL if DATASETS.get(n).needs_files])
def test_missing_data_names_the_path_and_the_flag(name: str, tmp_path: Path, no_downloads: None) -> None:
    root = tmp_path / "nowhere"
    with pytest.raises(UserError) as err:
        load_dataset(name, train=True, root=root)
    msg = str(err.value)
    assert str(root.resolve()) in msg and "--download" in msg and "\n" not in msg
    assert not root.exists()


def test_partial_or_truncated_cifar_is_a_user_error(synthetic_cifar_root: Path, tmp_path: Path,
                                                   no_downloads: None) -> None:
    shutil.copytree(synthetic_cifar_root / "cifar-10-batches-py", tmp_path / "cifar-10-batches-py")
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    data = batch.read_bytes()
    batch.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="corrupt"):
        load_dataset("Cifar10", train=True, root=tmp_path)
    batch.unlink()
    with pytest.raises(UserError, match="--download"):
        load_dataset("Cifar10", train=True, root=tmp_path)


@pytest.mark.parametrize("name", ["Cifar10", "MNIST"])
def test_failed_download_is_one_line(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets.cifar as tv_cifar
    import torchvision.datasets.mnist as tv_mnist

    def offline(*args: object, **kwargs: object) -> None:
        raise URLError("no network")

    for mod in (tv_cifar, tv_mnist):
        monkeypatch.setattr(mod, "download_and_extract_archive", offline)
    with pytest.raises(UserError, match="could not download") as err:
        load_dataset(name, train=True, root=tmp_path, download=True)
    assert "\n" not in str(err.value)


def test_data_root_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SSD_DATA_ROOT", raising=False)
    assert resolve_data_root(None) == Path("data")
    monkeypatch.setenv("SSD_DATA_ROOT", str(tmp_path / "env"))
    assert resolve_data_root(None) == tmp_path / "env"
    assert resolve_data_root(tmp_path / "flag") == tmp_path / "flag"
    assert resolve_data_root(str(tmp_path / "flag")) == tmp_path / "flag"


# --- augmentation and batching ----------------------------------------------------------


def _windows(x: torch.Tensor, out: torch.Tensor, padding: int) -> torch.Tensor:
    """n × (offsets × flips) bool: which shifted (mirrored) window of padded x each output is."""
    h, w = x.shape[-2:]
    xp = F.pad(x, (padding,) * 4)
    hits = []
    for oy in range(2 * padding + 1):
        for ox in range(2 * padding + 1):
            win = xp[:, :, oy : oy + h, ox : ox + w]
            for cand in (win, win.flip(-1)):
                hits.append((out == cand).flatten(1).all(1))
    return torch.stack(hits, 1).view(len(x), 2 * padding + 1, 2 * padding + 1, 2)


def test_random_crop_flip_without_padding_is_identity_or_mirror() -> None:
    x = torch.rand(64, 3, 8, 8, generator=torch.Generator().manual_seed(0)) + 0.1
    out = random_crop_flip(x, padding=0, generator=torch.Generator().manual_seed(1))
    assert out.shape == x.shape
    same = (out == x).flatten(1).all(1)
    mirrored = (out == x.flip(-1)).flatten(1).all(1)
    assert bool((same ^ mirrored).all()) and same.any() and mirrored.any()


def test_random_crop_flip_is_a_shifted_window_of_the_padded_image() -> None:
    x = torch.rand(128, 2, 6, 6, generator=torch.Generator().manual_seed(0)) + 0.1
    out = random_crop_flip(x, padding=4, generator=torch.Generator().manual_seed(2))
    assert out.shape == x.shape
    hits = _windows(x, out, padding=4)
    assert bool((hits.flatten(1).sum(1) == 1).all())  # each output is exactly one window
    where = hits.nonzero()
    assert set(where[:, 1].tolist()) == set(range(9)) == set(where[:, 2].tolist())
    assert set(where[:, 3].tolist()) == {0, 1}
    again = random_crop_flip(x, padding=4, generator=torch.Generator().manual_seed(2))
    assert torch.equal(out, again)


def test_batches_cover_every_sample_once_per_epoch() -> None:
    info = DatasetInfo("Toy", tuple("ab"), 1, 2, (0.5,), (0.25,))
    n = 53
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous()
    data = ImageData(info, images, torch.arange(n))
    g = torch.Generator().manual_seed(0)
    orders = []
    for _ in range(2):
        xs, ys = zip(*data.batches(7, shuffle=True, generator=g), strict=True)
        y = torch.cat(ys)
        assert sorted(y.tolist()) == list(range(n)) and len(ys) == data.num_batches(7)
        expected = (y.float() / 255 - 0.5) / 0.25
        torch.testing.assert_close(torch.cat(xs)[:, 0, 0, 0], expected)
        orders.append(y.tolist())
    assert orders[0] != list(range(n)) and orders[0] != orders[1]
    dropped = torch.cat([y for _, y in data.batches(7, shuffle=True, generator=g, drop_last=True)])
    assert len(dropped) == n - n % 7 == 7 * data.num_batches(7, drop_last=True)
    assert len(set(dropped.tolist())) == len(dropped)
