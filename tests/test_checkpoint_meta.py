"""Checkpoint metadata of the wrong shape: one line before any work, never a traceback (issue 21)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from test_refusals import SUITE_OK, refused

import forget_full_class_main
from datasets import dataset_info
from models import build_model
from ssd.checkpoint import save_checkpoint

CASES: dict[str, tuple[str, dict[str, Any], str]] = {
    "convnet_width": ("ConvNet", {"model_options": {"width": 16}}, "do not build ConvNet"),
    "resnet_width_abc": ("ResNet18", {"model_options": {"width": "abc"}}, "do not build ResNet18"),
    "options_list": ("ConvNet", {"model_options": [16]}, "model_options is [16]"),
    "classes_ten": ("ConvNet", {"classes": "ten"}, "classes is 'ten'"),
    "subset_word": ("ConvNet", {"data_subset": {"train": "x"}}, "data_subset is"),
    "subset_list": ("ConvNet", {"data_subset": [3]}, "data_subset is [3]"),
}


def _checkpoint(tmp_path: Path, name: str) -> tuple[str, Path, str]:
    net, extra, want = CASES[name]
    torch.manual_seed(0)
    model = build_model(net, dataset_info("Digits"), **({"width": 4} if net == "ResNet18" else {}))
    path = tmp_path / f"{name}.pt"
    save_checkpoint(path, model, {"net": net, "dataset": "Digits", "classes": 10, "complete": True, **extra})
    return net, path, want


@pytest.mark.parametrize("name", list(CASES))
def test_a_main_refuses_misshapen_metadata(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    net, path, want = _checkpoint(tmp_path, name)
    refused(capsys, forget_full_class_main.main,
            ["-net", net, "-weight_path", str(path), "-dataset", "Digits", "-method", "baseline", "-forget_class", "2",
             "--results", str(tmp_path / "r.jsonl"), "--logger", "none", "--cache-dir", str(tmp_path / "c")], want)
    assert not (tmp_path / "r.jsonl").exists()


@pytest.mark.parametrize("name", ["options_list", "subset_list", "classes_ten"])
def test_a_suite_refuses_misshapen_metadata(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    from ssd.suite import main

    _, path, want = _checkpoint(tmp_path, name)
    (tmp_path / "s.toml").write_text(SUITE_OK.format(results=tmp_path / "r.jsonl", ckpt=path))
    refused(capsys, main, ["--suite", str(tmp_path / "s.toml"), "--no-progress", "--no-report",
                           "--cache-dir", str(tmp_path / "c")], want)
    assert not (tmp_path / "r.jsonl").exists()
