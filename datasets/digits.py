"""scikit-learn's bundled 8×8 digits: the embedded default, nothing to download.

1,797 images, split once into train/test with a fixed seed (stratified, 25 % test) so
every run and every machine sees the same split.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from datasets.base import DatasetInfo, DatasetSpec, ImageData
from datasets.registry import register_dataset

DIGIT_NAMES = tuple(str(i) for i in range(10))
# Digit groups by stroke shape, shared by MNIST and Digits for sub-class forgetting:
# closed loops {0, 6, 8, 9}, straight strokes {1, 4, 7}, open curves {2, 3, 5}.
DIGIT_GROUPS = ("loops", "strokes", "curves")
DIGIT_TO_GROUP = (0, 1, 2, 2, 1, 2, 0, 1, 0, 0)

SPLIT_SEED = 0
TEST_FRACTION = 0.25
# Pixel statistics of the 8×8 digits scaled to [0, 1] (train split).
_MEAN, _STD = (0.3067,), (0.3792,)


@lru_cache(maxsize=1)
def _split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)  # 0..16 → 0..255
    idx = np.arange(len(images))
    tr, te = train_test_split(
        idx, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=bunch.target
    )
    tr.sort()
    te.sort()
    return images[tr], bunch.target[tr], images[te], bunch.target[te]


def _load(info: DatasetInfo, coarse: bool) -> DatasetSpec:
    def load(root: Path, train: bool, download: bool) -> ImageData:
        xtr, ytr, xte, yte = _split()
        x, y = (xtr, ytr) if train else (xte, yte)
        fine = torch.from_numpy(y.astype(np.int64))
        images = torch.from_numpy(x).unsqueeze(1).contiguous()
        if coarse:
            mapping = torch.tensor(DIGIT_TO_GROUP)
            return ImageData(info, images, mapping[fine], fine_targets=fine)
        return ImageData(info, images, fine)

    return DatasetSpec(info=info, load=load, needs_files=False)


DIGITS = DatasetInfo("Digits", DIGIT_NAMES, 1, 8, _MEAN, _STD)
DIGITS_COARSE = DatasetInfo(
    "DigitsCoarse", DIGIT_GROUPS, 1, 8, _MEAN, _STD,
    fine_classes=DIGIT_NAMES, fine_to_coarse=DIGIT_TO_GROUP,
)
register_dataset(_load(DIGITS, coarse=False))
register_dataset(_load(DIGITS_COARSE, coarse=True))
