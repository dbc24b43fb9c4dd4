"""Importances: hand-derived values per mode, sample = exact per-sample loop, state restored."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from datasets.base import DatasetInfo, ImageData
from ssd.importance import compute_importances, make_order, ordered_batches, paper_order, shuffled_order

# std 0.5, mean 0: a raw pixel 255 becomes exactly 2.0, 0 stays 0.
TOY = DatasetInfo("Toy2", ("a", "b"), 1, 1, (0.0,), (0.5,))
SMALL = DatasetInfo("Small", ("a", "b", "c"), 2, 6, (0.5, 0.4), (0.25, 0.3))


def toy_data() -> ImageData:
    """Three 1×1×2 images: x1 = (2, 0) y=0, x2 = (0, 2) y=1, x3 = (2, 2) y=1."""
    px = torch.tensor([[255, 0], [0, 255], [255, 255]], dtype=torch.uint8).view(3, 1, 1, 2)
    return ImageData(TOY, px, torch.tensor([0, 1, 1]))


def linear(weight: list[list[float]], bias: list[float]) -> nn.Module:
    lin = nn.Linear(2, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(weight))
        lin.bias.copy_(torch.tensor(bias))
    return nn.Sequential(nn.Flatten(), lin)


def test_batch_mode_by_hand() -> None:
    # W = 0, b = 0 → softmax (½, ½); dCE/dW = (p − e_y) xᵀ, dCE/db = p − e_y.
    # Batch {x1, x2}: mean dW = [[-.5, .5], [.5, -.5]], db = 0; batch {x3}: dW = [[1, 1], [-1, -1]], db = (.5, -.5).
    # Squared, summed, / 2 batches: W → .625 everywhere, b → .125.
    imp = compute_importances(linear([[0, 0], [0, 0]], [0, 0]), toy_data(), mode="batch", batch_size=2)
    torch.testing.assert_close(imp["1.weight"], torch.full((2, 2), 0.625))
    torch.testing.assert_close(imp["1.bias"], torch.full((2,), 0.125))


def test_sample_mode_by_hand() -> None:
    # Per sample dW: [[-1, 0], [1, 0]], [[0, 1], [0, -1]], [[1, 1], [-1, -1]]; squares summed = 2, / 3 samples.
    # Every per-sample db is ±(.5, -.5): squared .25.
    imp = compute_importances(linear([[0, 0], [0, 0]], [0, 0]), toy_data(), mode="sample", chunk_size=2)
    torch.testing.assert_close(imp["1.weight"], torch.full((2, 2), 2 / 3))
    torch.testing.assert_close(imp["1.bias"], torch.full((2,), 0.25))


def test_lf_mode_by_hand() -> None:
    # W = [[1, 0], [0, -1]], b = (0, 1): z1 = (2, 1), z2 = (0, -1), z3 = (2, -1); loss = mean ‖z‖²,
    # dW = mean 2 z xᵀ, db = mean 2 z. Per sample dW: [[8, 0], [4, 0]], [[0, 0], [0, -4]], [[8, 8], [-4, -4]].
    # Batch {1, 2}: dW = [[4, 0], [2, -2]], db = (2, 0); batch {3}: dW = [[8, 8], [-4, -4]], db = (4, -2).
    # |.| summed / 2: W = [[6, 4], [3, 3]], b = (3, 1).
    imp = compute_importances(linear([[1, 0], [0, -1]], [0, 1]), toy_data(), mode="lf", batch_size=2)
    torch.testing.assert_close(imp["1.weight"], torch.tensor([[6.0, 4.0], [3.0, 3.0]]))
    torch.testing.assert_close(imp["1.bias"], torch.tensor([3.0, 1.0]))


def test_order_changes_batch_mode() -> None:
    # Order (x3, x1 | x2): batch 1 mean dW = [[0, .5], [0, -.5]], db = 0; batch 2 dW = [[0, 1], [0, -1]], db = (.5, -.5).
    model = linear([[0, 0], [0, 0]], [0, 0])
    imp = compute_importances(model, toy_data(), batch_size=2, order_indices=torch.tensor([2, 0, 1]))
    torch.testing.assert_close(imp["1.weight"], torch.tensor([[0.0, 0.625], [0.0, 0.625]]))
    torch.testing.assert_close(imp["1.bias"], torch.full((2,), 0.125))


class SmallNet(nn.Module):
    """Conv + BatchNorm + Dropout + Linear, and one parameter the forward never uses."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(4 * 3 * 3, 3)
        self.unused = nn.Parameter(torch.ones(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.bn(self.conv(x))), 2)
        return self.fc(self.drop(x.flatten(1)))


def small(n: int = 13, seed: int = 0) -> tuple[nn.Module, ImageData]:
    torch.manual_seed(seed)
    net = SmallNet()
    with torch.no_grad():  # non-trivial running statistics, so eval mode matters
        net.bn.running_mean.uniform_(-0.5, 0.5)
        net.bn.running_var.uniform_(0.5, 2.0)
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 2, 6, 6), dtype=torch.uint8, generator=g)
    return net.double().float(), ImageData(SMALL, images, torch.randint(0, 3, (n,), generator=g))


def loop_fisher(model: nn.Module, data: ImageData) -> dict[str, torch.Tensor]:
    """The definition, one sample at a time, in float64."""
    ref = SmallNet().double()
    ref.load_state_dict(model.state_dict())
    ref.eval()
    out = {n: torch.zeros_like(p) for n, p in ref.named_parameters()}
    for x, y in ordered_batches(data, 1):
        ref.zero_grad()
        F.cross_entropy(ref(x.double()), y).backward()
        for n, p in ref.named_parameters():
            if p.grad is not None:
                out[n] += p.grad**2
    return {n: v / len(data) for n, v in out.items()}


@pytest.mark.parametrize("chunk", [1, 4, 64])
def test_sample_matches_python_loop(chunk: int) -> None:
    model, data = small()
    imp = compute_importances(model, data, mode="sample", chunk_size=chunk)
    ref = loop_fisher(model, data)
    for n, v in imp.items():
        assert v.dtype == torch.float32
        torch.testing.assert_close(v.double(), ref[n], rtol=1e-6, atol=1e-12, msg=n)
    assert torch.count_nonzero(imp["unused"]) == 0


def test_sample_equals_batch_at_batch_size_one() -> None:
    model, data = small(seed=1)
    order = shuffled_order(len(data), 3)
    a = compute_importances(model, data, mode="batch", batch_size=1, order_indices=order)
    b = compute_importances(model, data, mode="sample", chunk_size=5)
    for n in a:
        torch.testing.assert_close(a[n], b[n], rtol=1e-6, atol=1e-12, msg=n)


@pytest.mark.parametrize("mode", ["batch", "sample", "lf"])
def test_state_restored_and_weights_untouched(mode: str) -> None:
    model, data = small(seed=2)
    model.train()
    model.bn.eval()
    model.conv.weight.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    imp = compute_importances(model, data, mode=mode, batch_size=4, chunk_size=3)
    assert model.training and not model.bn.training and model.drop.training
    assert not model.conv.weight.requires_grad and model.fc.weight.requires_grad
    assert all(p.grad is None for p in model.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert list(imp) == [n for n, _ in model.named_parameters()]
    assert all(v.dtype == torch.float32 and v.shape == p.shape for (_, p), v in zip(model.named_parameters(),
                                                                                    imp.values(), strict=True))
    assert torch.count_nonzero(imp["unused"]) == 0 and bool((imp["conv.weight"] > 0).any())


@pytest.mark.parametrize("mode", ["batch", "sample", "lf"])
def test_only_filter_zeroes_the_rest(mode: str) -> None:
    model, data = small(seed=3)
    full = compute_importances(model, data, mode=mode, batch_size=4)
    part = compute_importances(model, data, mode=mode, batch_size=4, only=lambda n: n.startswith("fc."))
    for n in full:
        if n.startswith("fc."):
            torch.testing.assert_close(part[n], full[n], rtol=1e-5, atol=1e-9)
        else:
            assert torch.count_nonzero(part[n]) == 0


def test_half_precision_model_gives_float32() -> None:
    model, data = small(seed=4)
    imp = compute_importances(model.to(torch.bfloat16), data, batch_size=4)
    assert all(v.dtype == torch.float32 for v in imp.values())
    assert next(model.parameters()).dtype == torch.bfloat16


def test_empty_data_and_bad_mode() -> None:
    model, data = small()
    empty = data.subset(torch.tensor([], dtype=torch.long))
    assert all(torch.count_nonzero(v) == 0 for v in compute_importances(model, empty).values())
    with pytest.raises(ValueError, match="mode"):
        compute_importances(model, data, mode="fisher")


def test_paper_order_is_class_sorted_retain_then_forget() -> None:
    targets = torch.tensor([2, 0, 1, 0, 2, 1, 1])
    data = ImageData(SMALL, torch.zeros(7, 2, 6, 6, dtype=torch.uint8), targets,
                     indices=torch.tensor([10, 11, 12, 13, 14, 15, 16]))
    forget = data.subset(torch.tensor([2, 5, 6]))  # every 1
    assert paper_order(data, forget).tolist() == [1, 3, 0, 4, 2, 5, 6]
    assert paper_order(data).tolist() == [1, 3, 2, 5, 6, 0, 4]
    assert torch.equal(make_order("shuffled", data, 5), make_order("shuffled", data, 5))
    assert sorted(make_order("shuffled", data, 5).tolist()) == list(range(7))
    with pytest.raises(ValueError):
        make_order("sorted", data, 0)
