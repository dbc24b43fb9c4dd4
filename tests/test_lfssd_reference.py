"""LFSSD's importances against the public reference (issue 21): if-loops/towards_poison_unlearning,
`src/utils.py`, `ParameterPerturber.calc_importance` with `label_free=True` (the "original",
not `x_D`), re-implemented here from that file as a plain loop: per batch, in eval mode,
`loss = torch.norm(out, p="fro", dim=1).pow(2).mean()`, `loss.backward()`,
`imp += p.grad.abs()`, then every importance ÷ the number of batches."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from datasets import load_dataset
from models import build_model
from ssd.importance import compute_importances


def reference_label_free(model: nn.Module, loader: DataLoader) -> dict[str, torch.Tensor]:
    model.eval()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)  # theirs: only for zero_grad
    imps = {k: torch.zeros_like(p) for k, p in model.named_parameters()}
    for x, _y in loader:
        opt.zero_grad()
        out = model(x)
        loss = torch.norm(out, p="fro", dim=1).pow(2).mean()
        loss.backward()
        for (_, p), imp in zip(model.named_parameters(), imps.values(), strict=True):
            if p.grad is not None:
                imp.data += p.grad.data.clone().abs()
    for imp in imps.values():
        imp.data /= float(len(loader))
    return imps


def test_lf_importances_equal_the_reference_code(one_thread) -> None:
    """Fails if ours squared the gradients, used the norm instead of its square, summed instead
    of averaging over the batch (each tried once: all fail)."""
    data = load_dataset("Digits", train=True).subset(torch.arange(150))
    torch.manual_seed(0)
    model = build_model("ConvNet", data.info)
    x = torch.cat([xb for xb, _ in data.batches(150)])  # normalised, in data order
    loader = DataLoader(TensorDataset(x, data.targets), batch_size=32, shuffle=False)
    want = reference_label_free(model, loader)
    got = compute_importances(model, data, mode="lf", batch_size=32, order_indices=torch.arange(150))
    for name, w in want.items():
        assert torch.allclose(got[name], w, rtol=1e-4, atol=1e-7), name
