"""Small synthetic datasets written in the real on-disk formats.

The files are laid out and encoded exactly as the published ones, so that torchvision's
own loaders (and ours on top of them) are exercised end to end:

* CIFAR: Python-2 pickles (protocol 2) whose dict keys and names are Python-2 `str`
  objects, so `pickle.load(f, encoding="latin1")` (what torchvision does) gives `str` keys
  and `encoding="bytes"` gives `b"data"` keys, as with the originals.
* MNIST / Fashion-MNIST: big-endian idx files, uncompressed, in `<name>/raw/`.

Images are class-dependent (a per-class colour and coarse pattern plus noise) so models
can learn them. `n_train` / `n_test` are totals; labels cycle through the classes before
shuffling, so every class gets `n // num_classes` or one more.

md5: torchvision checks every unpacked CIFAR file against the official md5 sums, which
no synthetic file can match. The project's CIFAR loader (datasets/cifar.py) therefore
checks unpacked files for presence and their contents structurally, not by md5, so these
files load in any process (the CLI tests run in subprocesses) with no monkeypatching.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np

# CIFAR-100's superclasses as the CIFAR web page lists them, written independently of the
# fine→coarse index table in datasets/cifar.py so that each checks the other.
CIFAR100_SUPERCLASSES: dict[str, tuple[str, ...]] = {
    "aquatic_mammals": ("beaver", "dolphin", "otter", "seal", "whale"),
    "fish": ("aquarium_fish", "flatfish", "ray", "shark", "trout"),
    "flowers": ("orchid", "poppy", "rose", "sunflower", "tulip"),
    "food_containers": ("bottle", "bowl", "can", "cup", "plate"),
    "fruit_and_vegetables": ("apple", "mushroom", "orange", "pear", "sweet_pepper"),
    "household_electrical_devices": ("clock", "keyboard", "lamp", "telephone", "television"),
    "household_furniture": ("bed", "chair", "couch", "table", "wardrobe"),
    "insects": ("bee", "beetle", "butterfly", "caterpillar", "cockroach"),
    "large_carnivores": ("bear", "leopard", "lion", "tiger", "wolf"),
    "large_man-made_outdoor_things": ("bridge", "castle", "house", "road", "skyscraper"),
    "large_natural_outdoor_scenes": ("cloud", "forest", "mountain", "plain", "sea"),
    "large_omnivores_and_herbivores": ("camel", "cattle", "chimpanzee", "elephant", "kangaroo"),
    "medium_mammals": ("fox", "porcupine", "possum", "raccoon", "skunk"),
    "non-insect_invertebrates": ("crab", "lobster", "snail", "spider", "worm"),
    "people": ("baby", "boy", "girl", "man", "woman"),
    "reptiles": ("crocodile", "dinosaur", "lizard", "snake", "turtle"),
    "small_mammals": ("hamster", "mouse", "rabbit", "shrew", "squirrel"),
    "trees": ("maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree"),
    "vehicles_1": ("bicycle", "bus", "motorcycle", "pickup_truck", "train"),
    "vehicles_2": ("lawn_mower", "rocket", "streetcar", "tank", "tractor"),
}
CIFAR100_FINE = tuple(sorted(n for names in CIFAR100_SUPERCLASSES.values() for n in names))
CIFAR100_COARSE = tuple(CIFAR100_SUPERCLASSES)
# (train, test) sizes of the copies the session fixtures in conftest.py write.
SYNTH_CIFAR10 = (200, 50)  # 20 / 5 per class
SYNTH_CIFAR100 = (2000, 500)  # 20 / 5 per fine class, 100 / 25 per superclass
SYNTH_MNIST = (200, 50)  # 20 / 5 per class, for MNIST and FashionMNIST alike
CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


class Py2Str(bytes):
    """Marks bytes to be pickled as a Python-2 `str` (decoded by the loader's `encoding`)."""


class _Py2Pickler(pickle._Pickler):  # type: ignore[name-defined]  # the pure-Python pickler
    """Protocol-2 pickler that writes :class:`Py2Str` with Python 2's string opcodes."""

    dispatch = pickle._Pickler.dispatch.copy()  # type: ignore[attr-defined]

    def save_py2str(self, obj: Py2Str) -> None:
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + bytes(obj))
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + bytes(obj))
        self.memoize(obj)

    dispatch[Py2Str] = save_py2str


def _s(text: str) -> Py2Str:
    return Py2Str(text.encode("latin1"))


def _dump(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        _Py2Pickler(f, protocol=2).dump(obj)


def _labels(n: int, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(np.arange(n) % num_classes)


def _images(labels: np.ndarray, protos: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each image: its class prototype plus Gaussian noise, as uint8 N×C×H×W."""
    x = protos[labels] + rng.normal(0.0, 24.0, size=(len(labels), *protos.shape[1:]))
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def _prototypes(num_classes: int, channels: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """A per-class colour plus a smooth 4×4 pattern, float C×H×W in about [30, 225]."""
    colour = rng.uniform(60, 195, size=(num_classes, channels, 1, 1))
    coarse = rng.uniform(-1, 1, size=(num_classes, channels, 4, 4))
    pattern = np.kron(coarse, np.ones((1, 1, size // 4, size // 4)))
    return colour + 30.0 * pattern


def _cifar_split(n_train: int, n_test: int, num_classes: int, seed: int) -> tuple[np.ndarray, ...]:
    """(train_images N×3072, train_labels, test_images, test_labels) in CIFAR's row layout."""
    rng = np.random.default_rng(seed)
    protos = _prototypes(num_classes, 3, 32, rng)
    ytr, yte = _labels(n_train, num_classes, rng), _labels(n_test, num_classes, rng)
    xtr, xte = _images(ytr, protos, rng), _images(yte, protos, rng)
    return xtr.reshape(len(xtr), 3072), ytr, xte.reshape(len(xte), 3072), yte


def _filenames(prefix: str, n: int) -> list[Py2Str]:
    return [_s(f"{prefix}_{i:05d}.png") for i in range(n)]


def write_cifar10(root: str | Path, n_train: int, n_test: int, seed: int = 0) -> Path:
    """`root/cifar-10-batches-py/` with data_batch_1..5, test_batch and batches.meta."""
    folder = Path(root) / "cifar-10-batches-py"
    xtr, ytr, xte, yte = _cifar_split(n_train, n_test, len(CIFAR10_NAMES), seed)
    for b, part in enumerate(np.array_split(np.arange(n_train), 5), start=1):
        _dump(folder / f"data_batch_{b}", {
            _s("batch_label"): _s(f"training batch {b} of 5"),
            _s("labels"): [int(y) for y in ytr[part]],
            _s("data"): xtr[part],
            _s("filenames"): _filenames(f"train{b}", len(part)),
        })
    _dump(folder / "test_batch", {
        _s("batch_label"): _s("testing batch 1 of 1"),
        _s("labels"): [int(y) for y in yte],
        _s("data"): xte,
        _s("filenames"): _filenames("test", n_test),
    })
    _dump(folder / "batches.meta", {
        _s("num_cases_per_batch"): max(1, -(-n_train // 5)),
        _s("label_names"): [_s(n) for n in CIFAR10_NAMES],
        _s("num_vis"): 3072,
    })
    return Path(root)


def write_cifar100(root: str | Path, n_train: int, n_test: int, seed: int = 0) -> Path:
    """`root/cifar-100-python/` with train, test and meta (fine and coarse labels and names)."""
    folder = Path(root) / "cifar-100-python"
    coarse_of = {f: c for c, (_, fines) in enumerate(CIFAR100_SUPERCLASSES.items()) for f in fines}
    to_coarse = np.array([coarse_of[f] for f in CIFAR100_FINE])
    xtr, ytr, xte, yte = _cifar_split(n_train, n_test, len(CIFAR100_FINE), seed)
    for split, x, y in (("train", xtr, ytr), ("test", xte, yte)):
        _dump(folder / split, {
            _s("filenames"): _filenames(split, len(y)),
            _s("batch_label"): _s(f"{'testing' if split == 'test' else 'training'} batch 1 of 1"),
            _s("fine_labels"): [int(v) for v in y],
            _s("coarse_labels"): [int(v) for v in to_coarse[y]],
            _s("data"): x,
        })
    _dump(folder / "meta", {
        _s("fine_label_names"): [_s(n) for n in CIFAR100_FINE],
        _s("coarse_label_names"): [_s(n) for n in CIFAR100_COARSE],
    })
    return Path(root)


def _write_idx(path: Path, array: np.ndarray) -> None:
    """An idx file of unsigned bytes: magic 0x0000_08_<ndim>, big-endian dims, raw data."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def write_mnist(root: str | Path, n_train: int, n_test: int, seed: int = 0, name: str = "MNIST") -> Path:
    """`root/<name>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`, 28×28 grey, 10 classes."""
    raw = Path(root) / name / "raw"
    rng = np.random.default_rng(seed)
    protos = _prototypes(10, 1, 28, rng)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        y = _labels(n, 10, rng)
        x = _images(y, protos, rng)[:, 0]
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", x)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", y.astype(np.uint8))
    return Path(root)
