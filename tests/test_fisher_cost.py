"""Fisher forgetting says what it will cost before it runs (N × C per-sample gradients, the
gradients a chunk holds, the estimated time of the pass), and ViT's cap is a per-network default.

On ViT-B/16 the exact diagonal is one backward pass per retain sample and class (≈ 5 M per
CIFAR-100 run); the old code started it without a word. docs/departures.md ("Fisher forgetting
on ViT") has the cap's measurement and arithmetic."""

from __future__ import annotations

from typing import Any

import pytest
from torch import nn

from ssd.experiment import RunSpec, method_config
from ssd.methods import fisher as fisher_module
from ssd.methods.protocol import VIT_FISHER_SAMPLES
from ssd.splits import Splits


def test_cost_is_said_before_any_gradient(trained: tuple[nn.Module, Splits], monkeypatch: pytest.MonkeyPatch) -> None:
    """The first line comes before the first per-sample gradient and names N, C, N·C, the
    parameter count and the chunk's gradient memory; the second, after one chunk-class step, the
    estimated time of all ceil(N/K)·C steps. Old: nothing was said."""
    model, splits = trained
    data = splits.retain.subset(range(10))
    calls: list[int] = []
    real_vmap = fisher_module.vmap

    def counting_vmap(fn: Any, **kw: Any) -> Any:
        batched = real_vmap(fn, **kw)
        return lambda *a: calls.append(1) or batched(*a)

    monkeypatch.setattr(fisher_module, "vmap", counting_vmap)
    lines: list[tuple[str, int]] = []
    fisher_module.fisher_diagonal(model, data, chunk_size=4, log=lambda s: lines.append((s, len(calls))))
    n_params = sum(p.numel() for p in model.parameters())
    (first, before), (second, after) = lines
    assert before == 0 and after == 2  # the estimate times the second step (the first warms up)
    assert f"10 samples × 10 classes = 100 per-sample gradients of {n_params:,} parameters" in first
    assert f"{4 * n_params * 4 / 2**30:.2f} GiB" in first
    assert "whole pass ≈" in second and "(30 steps)" in second


def test_vit_fisher_is_capped_by_default_and_resnet_is_not() -> None:
    """The paper suite's ViT cells run Fisher on a seeded retain subset (NET_SETTINGS); ResNet18
    keeps all of Dr, as the authors; an explicit max_samples wins. Old: every ViT run took all of Dr."""
    def cfg(net: str, **kw: Any) -> Any:
        return method_config("fisher", RunSpec(task="full_class", net=net, dataset="Cifar100", weight_path="x",
                                               method="fisher", overrides=kw))

    assert cfg("ViT").max_samples == VIT_FISHER_SAMPLES and cfg("ResNet18").max_samples is None
    assert cfg("ViT", max_samples=None).max_samples is None
