"""Datasets by the names the authors' CLI uses, held in memory as uint8 tensors.

Note: this top-level package shadows Hugging Face's `datasets` inside this repository;
nothing here imports that library (tests/test_shadowing.py proves transformers still works).
"""

from datasets import cifar as _cifar  # noqa: F401  (registers Cifar10, Cifar100, Cifar20)
from datasets import digits as _digits  # noqa: F401  (registers Digits, DigitsCoarse)
from datasets import mnist as _mnist  # noqa: F401  (registers MNIST, FashionMNIST and their *Coarse)
from datasets.base import (
    DatasetInfo,
    DatasetSpec,
    ImageData,
    balanced_subset,
    concat_data,
    device_generator,
    on_device,
    prepare,
    random_crop_flip,
    resolve_class,
    resolve_data_root,
    with_targets,
)
from datasets.registry import DATASETS, dataset_info, load_dataset, register_dataset

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "DatasetSpec",
    "ImageData",
    "balanced_subset",
    "concat_data",
    "dataset_info",
    "device_generator",
    "load_dataset",
    "on_device",
    "prepare",
    "random_crop_flip",
    "register_dataset",
    "resolve_class",
    "resolve_data_root",
    "with_targets",
]
