"""Shared fixtures: real MNIST when this machine has it, small synthetic copies otherwise.

Synthetic data is written once per session in the real on-disk formats (see
tests/synthetic.py), so torchvision's own loaders run on it, in-process or in a CLI
subprocess alike.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from synthetic import SYNTH_CIFAR10, SYNTH_CIFAR100, SYNTH_MNIST, write_cifar10, write_cifar100, write_mnist
from tiny_digits import task_setups, trained_digits
from torch import nn

from ssd.splits import Splits

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def mnist_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the real MNIST/raw (and FashionMNIST/raw): $SSD_MNIST_ROOT when set (any
    torchvision-layout copy, e.g. one made with --download), else unpacked once from ../shared/data."""
    env = os.environ.get("SSD_MNIST_ROOT")
    if env:
        if not (Path(env) / "MNIST" / "raw").is_dir():
            pytest.fail(f"SSD_MNIST_ROOT={env} has no MNIST/raw folder (torchvision's layout)")
        return Path(env)
    unpack = SHARED_DATA / "unpack"
    if not unpack.exists():
        pytest.skip("real MNIST needs $SSD_MNIST_ROOT (a folder with MNIST/raw) or ../shared/data; neither is here")
    dest = tmp_path_factory.mktemp("real_mnist")
    subprocess.run([str(unpack), str(dest)], check=True, capture_output=True, timeout=300)
    return dest


@pytest.fixture(scope="session")
def synthetic_cifar_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root with small CIFAR-10 and CIFAR-100 copies in torchvision's layout."""
    root = tmp_path_factory.mktemp("synthetic_cifar")
    write_cifar10(root, *SYNTH_CIFAR10, seed=0)
    write_cifar100(root, *SYNTH_CIFAR100, seed=1)
    return root


@pytest.fixture(scope="session")
def synthetic_mnist_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root with small MNIST and FashionMNIST copies as raw idx files."""
    root = tmp_path_factory.mktemp("synthetic_mnist")
    write_mnist(root, *SYNTH_MNIST, seed=0, name="MNIST")
    write_mnist(root, *SYNTH_MNIST, seed=1, name="FashionMNIST")
    return root


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny convolutions gain nothing from threads, and on a shared 2-core box they thrash."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def task_setup() -> dict[str, tuple[nn.Module, Splits]]:
    """Per task: a seeded, untrained ConvNet on tiny Digits and its splits (tests copy the model)."""
    return task_setups()


@pytest.fixture(scope="session")
def trained() -> tuple[nn.Module, Splits]:
    """A ConvNet fitted to tiny Digits and the full-class split of digit 3 (tests copy the model)."""
    return trained_digits()


@pytest.fixture(scope="session")
def untrained_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained Digits ConvNet saved as a finished checkpoint: refusals need no trained weights."""
    from datasets import dataset_info
    from models import build_model
    from ssd.checkpoint import save_checkpoint

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    save_checkpoint(path, build_model("ConvNet", dataset_info("Digits")),
                    {"net": "ConvNet", "dataset": "Digits", "classes": 10, "complete": True})
    return path


@pytest.fixture(scope="session")
def digits_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Digits ConvNet pretrained for 3 epochs (the U-LiRA mains' tests)."""
    from ssd.train import pretrain

    out = tmp_path_factory.mktemp("digits_ckpt")
    pretrain("ConvNet", "Digits", epochs=3, out=out, progress=False, log=None)
    return out / "best.pt"
