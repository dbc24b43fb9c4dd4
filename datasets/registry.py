"""The dataset registry: every dataset module registers its spec here by name."""

from __future__ import annotations

from pathlib import Path

from datasets.base import DatasetInfo, DatasetSpec, ImageData, resolve_data_root
from harness.registry import Registry

DATASETS: Registry[DatasetSpec] = Registry("dataset")


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    return DATASETS.add(spec.info.name, spec)


def dataset_info(name: str) -> DatasetInfo:
    return DATASETS.get(name).info


def load_dataset(
    name: str, *, train: bool, root: str | Path | None = None, download: bool = False
) -> ImageData:
    """Load one split as in-memory uint8 tensors (root: --data-root / $SSD_DATA_ROOT / ./data)."""
    spec = DATASETS.get(name)
    return spec.load(resolve_data_root(root), train, download)
