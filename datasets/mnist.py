"""MNIST and Fashion-MNIST, plus coarse variants for sub-class forgetting.

torchvision reads the raw idx files (`MNIST/raw/…`, `FashionMNIST/raw/…` under the data
root) straight into one uint8 tensor, so loading costs no per-image Python. Files are
downloaded only when asked.

Coarse variants group the ten classes so that one fine class can be forgotten while its
group stays: digits by stroke shape (see datasets/digits.py), clothes by kind of garment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from datasets.base import DatasetInfo, DatasetSpec, ImageData, open_torchvision
from datasets.digits import DIGIT_GROUPS, DIGIT_NAMES, DIGIT_TO_GROUP
from datasets.registry import register_dataset
from harness.errors import UserError

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
FASHION_GROUPS = ("tops", "footwear", "trouser", "dress", "bag")
# T-shirt/top, Pullover, Coat, Shirt → tops; Sandal, Sneaker, Ankle boot → footwear.
FASHION_TO_GROUP = (0, 2, 0, 3, 0, 1, 0, 1, 4, 1)
# Spellings a shell makes easier than "T-shirt/top".
FASHION_ALIASES = {"tshirt": 0, "t_shirt": 0, "top": 0, "boot": 9}

_MNIST_STATS = ((0.1307,), (0.3081,))
_FASHION_STATS = ((0.2860,), (0.3530,))


def _open(kind: str, name: str, root: Path, train: bool, download: bool) -> Any:
    """torchvision is imported here, not at module level, so `import datasets` stays cheap."""
    from torchvision import datasets as tv

    cls = {"MNIST": tv.MNIST, "FashionMNIST": tv.FashionMNIST}[kind]
    return open_torchvision(cls, name, root, root / kind / "raw", train=train, download=download,
                            corrupt=(AssertionError, TypeError, ValueError))  # the idx parser on a foreign file


def _spec(info: DatasetInfo, kind: str, fine_to_coarse: tuple[int, ...] | None) -> DatasetSpec:
    def load(root: Path, train: bool, download: bool) -> ImageData:
        ds = _open(kind, info.name, root, train, download)
        images = ds.data
        fine = torch.as_tensor(ds.targets, dtype=torch.long)
        if images.dtype != torch.uint8 or images.dim() != 3 or images.shape[1:] != (28, 28) or len(fine) != len(images):
            raise UserError(f"{info.name} files under {root / kind / 'raw'} are corrupt "
                            f"(images {tuple(images.shape)}, {len(fine)} labels); delete them and pass --download")
        if len(fine) and not (0 <= int(fine.min()) and int(fine.max()) < 10):
            raise UserError(f"{info.name} files under {root / kind / 'raw'} hold labels outside 0..9")
        images = images.unsqueeze(1).contiguous()
        if fine_to_coarse is None:
            return ImageData(info, images, fine)
        return ImageData(info, images, torch.tensor(fine_to_coarse)[fine], fine_targets=fine)

    return DatasetSpec(info=info, load=load)


_DIGIT_ALIASES = {w: i for i, w in enumerate(DIGIT_WORDS)}

MNIST_INFO = DatasetInfo("MNIST", DIGIT_NAMES, 1, 28, *_MNIST_STATS, aliases=dict(_DIGIT_ALIASES))
MNIST_COARSE_INFO = DatasetInfo(
    "MNISTCoarse", DIGIT_GROUPS, 1, 28, *_MNIST_STATS,
    fine_classes=DIGIT_NAMES, fine_to_coarse=DIGIT_TO_GROUP, fine_aliases=dict(_DIGIT_ALIASES),
)
FASHION_INFO = DatasetInfo("FashionMNIST", FASHION_CLASSES, 1, 28, *_FASHION_STATS, aliases=dict(FASHION_ALIASES))
FASHION_COARSE_INFO = DatasetInfo(
    "FashionMNISTCoarse", FASHION_GROUPS, 1, 28, *_FASHION_STATS,
    fine_classes=FASHION_CLASSES, fine_to_coarse=FASHION_TO_GROUP, fine_aliases=dict(FASHION_ALIASES),
)

register_dataset(_spec(MNIST_INFO, "MNIST", None))
register_dataset(_spec(MNIST_COARSE_INFO, "MNIST", DIGIT_TO_GROUP))
register_dataset(_spec(FASHION_INFO, "FashionMNIST", None))
register_dataset(_spec(FASHION_COARSE_INFO, "FashionMNIST", FASHION_TO_GROUP))


SHARED_UNPACK = Path(__file__).resolve().parents[2] / "shared" / "data" / "unpack"


def unpack_shared_mnist(root: Path) -> Path:
    """On the project machines: write real MNIST/Fashion-MNIST under `root` from
    `../shared/data` (idempotent) so scripts need no download; elsewhere use --download."""
    import subprocess

    if not (root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").is_file():
        if not SHARED_UNPACK.exists():
            raise UserError(f"no MNIST under {root} and no {SHARED_UNPACK} to unpack it from; pass --download")
        subprocess.run([str(SHARED_UNPACK), str(root)], check=True)
    return root
