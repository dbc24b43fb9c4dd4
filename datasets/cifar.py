"""CIFAR-10, CIFAR-100 and CIFAR-20 (CIFAR-100 images with its 20 superclass labels).

Files are read by torchvision's own CIFAR loaders from torchvision's on-disk layout
(`cifar-10-batches-py/`, `cifar-100-python/` under the data root), and downloaded only
when asked.

Integrity: torchvision compares the md5 of every unpacked batch file with the official
sums, which also rejects any copy that is not byte-identical to the published one (the
synthetic CIFAR that the tests write in the real format, for instance). We subclass the
loaders so that unpacked files are checked for presence, and their contents structurally
(shape, dtype, label range, class names) after loading instead. Downloads keep their
md5 check: torchvision verifies the downloaded archive before unpacking it. This matches
what torchvision already does for MNIST, whose unpacked files are not md5-checked either.
"""

from __future__ import annotations

import os
import pickle
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from datasets.base import DatasetInfo, DatasetSpec, ImageData, open_torchvision
from datasets.registry import register_dataset
from harness.errors import UserError

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
# CIFAR-100's fine label names in the order of its `meta` file (alphabetical).
CIFAR100_CLASSES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
    "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
    "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket",
    "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
    "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor",
    "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)
# The 20 superclasses in the order of CIFAR-100's `coarse_label_names`.
CIFAR20_CLASSES = (
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables",
    "household_electrical_devices", "household_furniture", "insects", "large_carnivores",
    "large_man-made_outdoor_things", "large_natural_outdoor_scenes", "large_omnivores_and_herbivores",
    "medium_mammals", "non-insect_invertebrates", "people", "reptiles", "small_mammals", "trees",
    "vehicles_1", "vehicles_2",
)
# Fine label → superclass, the standard table (identical to CIFAR-100's own `coarse_labels`).
CIFAR100_TO_20 = (
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3,
    3, 14, 9, 18, 7, 11, 3, 9, 7, 11,
    6, 11, 5, 10, 7, 6, 13, 15, 3, 15,
    0, 11, 1, 10, 12, 14, 16, 9, 11, 5,
    5, 19, 8, 8, 15, 13, 14, 17, 18, 10,
    16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
    10, 3, 2, 12, 12, 16, 12, 1, 9, 19,
    2, 10, 0, 1, 16, 12, 9, 13, 15, 13,
    16, 19, 2, 4, 6, 19, 5, 5, 8, 19,
    18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
)
# The superclass names the authors' command lines use.
CIFAR20_ALIASES = {
    "vehicle2": CIFAR20_CLASSES.index("vehicles_2"),
    "veg": CIFAR20_CLASSES.index("fruit_and_vegetables"),
    "people": CIFAR20_CLASSES.index("people"),
    "electrical_devices": CIFAR20_CLASSES.index("household_electrical_devices"),
    "natural_scenes": CIFAR20_CLASSES.index("large_natural_outdoor_scenes"),
}

_C10_STATS = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
_C100_STATS = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))


class _PresenceChecked:
    """Mixin for torchvision's CIFAR classes: unpacked files must exist, not match official md5s."""

    root: str
    base_folder: str
    train_list: list[list[str]]
    test_list: list[list[str]]
    meta: dict[str, str]

    def _path(self, filename: str) -> str:
        return os.path.join(self.root, self.base_folder, filename)

    def _check_integrity(self) -> bool:
        files = [f for f, _ in self.train_list + self.test_list] + [self.meta["filename"]]
        return all(os.path.isfile(self._path(f)) for f in files)

    def _load_meta(self) -> None:
        with open(self._path(self.meta["filename"]), "rb") as infile:
            data = pickle.load(infile, encoding="latin1")
        self.classes = data[self.meta["key"]]
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}


@cache
def loader_class(kind: str) -> type:
    """torchvision's CIFAR10 / CIFAR100 with presence checks, built on first use.

    Built lazily so that `import datasets` does not pay torchvision's import time.
    """
    from torchvision import datasets as tv

    base = {"cifar10": tv.CIFAR10, "cifar100": tv.CIFAR100}[kind]
    return type(f"PresenceChecked{base.__name__}", (_PresenceChecked, base), {})


def _open(kind: str, name: str, root: Path, train: bool, download: bool) -> Any:
    cls = loader_class(kind)
    return open_torchvision(cls, name, root, root / cls.base_folder, train=train, download=download,
                            corrupt=(pickle.UnpicklingError, EOFError, KeyError, ValueError))


def _images(ds: Any, name: str, classes: tuple[str, ...], root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """N×32×32×3 numpy → N×3×32×32 uint8 tensor, after checking what the pickles held."""
    data = np.asarray(ds.data)
    targets = torch.as_tensor(np.asarray(ds.targets, dtype=np.int64))
    folder = root / ds.base_folder
    if data.dtype != np.uint8 or data.shape[1:] != (32, 32, 3) or len(targets) != len(data):
        raise UserError(f"{name} files under {folder} are corrupt (images {data.dtype} {data.shape}, "
                        f"{len(targets)} labels); delete them and pass --download")
    if tuple(ds.classes) != classes:
        raise UserError(f"{name} files under {folder} name other classes than {name}'s; "
                        "delete them and pass --download")
    if len(targets) and not (0 <= int(targets.min()) and int(targets.max()) < len(classes)):
        raise UserError(f"{name} files under {folder} hold labels outside 0..{len(classes) - 1}")
    images = torch.from_numpy(np.ascontiguousarray(data.transpose(0, 3, 1, 2)))
    return images, targets


def _spec(info: DatasetInfo, kind: str, source_classes: tuple[str, ...], coarse: bool) -> DatasetSpec:
    def load(root: Path, train: bool, download: bool) -> ImageData:
        ds = _open(kind, info.name, root, train, download)
        images, fine = _images(ds, info.name, source_classes, root)
        if coarse:
            mapping = torch.tensor(CIFAR100_TO_20, dtype=torch.long)
            return ImageData(info, images, mapping[fine], fine_targets=fine)
        return ImageData(info, images, fine)

    return DatasetSpec(info=info, load=load)


CIFAR10_INFO = DatasetInfo("Cifar10", CIFAR10_CLASSES, 3, 32, *_C10_STATS, augment="crop_flip")
CIFAR100_INFO = DatasetInfo("Cifar100", CIFAR100_CLASSES, 3, 32, *_C100_STATS, augment="crop_flip")
CIFAR20_INFO = DatasetInfo(
    "Cifar20", CIFAR20_CLASSES, 3, 32, *_C100_STATS, augment="crop_flip",
    fine_classes=CIFAR100_CLASSES, fine_to_coarse=CIFAR100_TO_20, aliases=dict(CIFAR20_ALIASES),
)

register_dataset(_spec(CIFAR10_INFO, "cifar10", CIFAR10_CLASSES, coarse=False))
register_dataset(_spec(CIFAR100_INFO, "cifar100", CIFAR100_CLASSES, coarse=False))
register_dataset(_spec(CIFAR20_INFO, "cifar100", CIFAR100_CLASSES, coarse=True))
