"""Selection and dampening: a hand case, properties on random models, the registered methods."""

from __future__ import annotations

import copy
import dataclasses
import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import ssd.methods  # noqa: F401  (registers the methods)
from datasets.base import DatasetInfo, ImageData
from ssd.dampening import dampen, make_param_filter, norm_param_names
from ssd.errors import UserError
from ssd.methods.dampening_baselines import output_layer
from ssd.methods.registry import METHODS
from ssd.methods.ssd_methods import SSDConfig
from ssd.splits import make_splits


def net(seed: int, dtype: torch.dtype = torch.float32) -> nn.Module:
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 4))
    with torch.no_grad():
        m[1].running_mean.uniform_(-1, 1)
        m[1].weight.uniform_(0.5, 1.5)
    return m.to(dtype)


def random_importances(model: nn.Module, seed: int, zero_frac: float = 0.2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for n, p in model.named_parameters():
        v = torch.rand(p.shape, generator=g) ** 3 * 10
        v[torch.rand(p.shape, generator=g) < zero_frac] = 0.0
        out[n] = v
    return out


def reference_dampen(model: nn.Module, d: dict, f: dict, alpha: float, lam: float, exponent: float,
                     bound: float) -> None:
    """The authors' modify_weight, as they wrote it (index lists, then a clamp)."""
    with torch.no_grad():
        for n, p in model.named_parameters():
            loc = torch.where(f[n] > d[n].mul(alpha))
            update = (d[n].mul(lam).div(f[n])).pow(exponent)[loc]
            update[torch.where(update > bound)] = bound
            p[loc] = p[loc].mul(update.to(p.dtype))


def test_hand_case() -> None:
    lin = nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[2.0, -4.0, 8.0]]))
    d = {"weight": torch.tensor([[1.0, 1.0, 0.0]])}
    f = {"weight": torch.tensor([[5.0, 20.0, 3.0]])}
    # α = 10: only 20 > 10·1 and 3 > 10·0 are selected; factors λ·1/20 = .05 and 0.
    stats = dampen(lin, d, f, alpha=10, lam=1)
    torch.testing.assert_close(lin.weight, torch.tensor([[2.0, -0.2, 0.0]]))
    assert lin.weight[0, 0] == 2.0 and lin.weight[0, 2] == 0.0
    assert stats.selected == {"weight": 2} and stats.total_selected == 2 and stats.total_params == 3
    json.dumps(dataclasses.asdict(stats))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), alpha=st.sampled_from([0.0, 0.5, 1.0, 2.0, 10.0, 50.0]),
       lam=st.sampled_from([0.1, 1.0, 5.0, 100.0]), exponent=st.sampled_from([1.0, 0.5, 2.0]),
       bound=st.sampled_from([1.0, 0.5]))
def test_matches_authors_rule_and_never_grows(seed: int, alpha: float, lam: float, exponent: float,
                                              bound: float) -> None:
    model = net(seed)
    d, f = random_importances(model, seed), random_importances(model, seed + 1)
    expected = copy.deepcopy(model)
    reference_dampen(expected, d, f, alpha, lam, exponent, bound)
    before = copy.deepcopy(model)
    stats = dampen(model, d, f, alpha=alpha, lam=lam, exponent=exponent, bound=bound)
    for (n, p), q, p0 in zip(model.named_parameters(), expected.parameters(), before.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=0, msg=n)
        assert bool((p.abs() <= p0.abs()).all()), n
        selected = f[n] > alpha * d[n]
        assert stats.selected[n] == int(selected.sum())
        assert torch.equal(p[~selected], p0[~selected]), n  # nothing else changes, bit for bit
        assert not bool((selected & (f[n] == 0)).any())  # imp_Df = 0 is never selected
        zeroed = (d[n] == 0) & (f[n] > 0)
        assert bool((p[zeroed] == 0).all())  # imp_D = 0 < imp_Df zeroes θ
        clamp = selected & ((lam * d[n] / f[n].clamp_min(1e-30)) ** exponent >= bound)
        torch.testing.assert_close(p[clamp], p0[clamp] * bound)  # clamped at the bound
    for (n, b), b0 in zip(model.named_buffers(), before.buffers(), strict=True):
        assert torch.equal(b, b0), n


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), alpha=st.sampled_from([1.0, 3.0, 1e6]))
def test_no_change_when_alpha_infinite_or_importances_equal(seed: int, alpha: float) -> None:
    model = net(seed)
    state = copy.deepcopy(model.state_dict())
    d, f = random_importances(model, seed), random_importances(model, seed + 7)
    assert dampen(model, d, f, alpha=math.inf, lam=1.0).total_selected == 0
    assert dampen(model, d, d, alpha=alpha, lam=0.1).total_selected == 0
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_lambda_above_alpha_clamps_everything_but_zero_reference() -> None:
    model = net(3)
    before = copy.deepcopy(model)
    d = {n: torch.ones(p.shape) for n, p in model.named_parameters()}
    f = {n: torch.full(p.shape, 20.0) for n, p in model.named_parameters()}
    d["4.bias"][0] = 0.0
    stats = dampen(model, d, f, alpha=10.0, lam=50.0)  # every element selected; λ·1/20 = 2.5 > bound
    assert stats.total_selected == stats.total_params
    for (n, p), p0 in zip(model.named_parameters(), before.parameters(), strict=True):
        if n != "4.bias":
            assert torch.equal(p, p0), n
    assert model[4].bias[0] == 0 and torch.equal(model[4].bias[1:], before[4].bias[1:])


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_dtype_and_device_kept(dtype: torch.dtype) -> None:
    model = net(5, dtype)
    d, f = random_importances(model, 1), random_importances(model, 2)
    before = copy.deepcopy(model)
    stats = dampen(model, d, f, alpha=1.0, lam=1.0)
    assert stats.total_selected > 0
    for p, p0 in zip(model.parameters(), before.parameters(), strict=True):
        assert p.dtype == dtype and p.device == p0.device
        assert bool((p.abs() <= p0.abs()).all())


def test_param_filter_and_exclude_norm() -> None:
    model = net(6)
    before = copy.deepcopy(model)
    d = {n: torch.zeros(p.shape) for n, p in model.named_parameters()}
    f = {n: torch.ones(p.shape) for n, p in model.named_parameters()}  # selects (and zeroes) all it may
    assert norm_param_names(model) == {"1.weight", "1.bias"}
    keep = make_param_filter(model, exclude_norm=True)
    stats = dampen(model, d, f, alpha=10, lam=1, param_filter=keep)
    assert sorted(stats.skipped) == ["1.bias", "1.weight"]
    assert torch.equal(model[1].weight, before[1].weight) and bool((model[0].weight == 0).all())
    model = copy.deepcopy(before)
    stats = dampen(model, d, f, alpha=10, lam=1, param_filter=r"^4\.weight$")
    assert list(stats.selected) == ["4.weight"] and bool((model[4].weight == 0).all())
    assert torch.equal(model[4].bias, before[4].bias) and torch.equal(model[0].weight, before[0].weight)
    assert make_param_filter(model) is None
    only_fc = make_param_filter(model, r"^4\.", exclude_norm=True)
    assert only_fc is not None and only_fc("4.bias") and not only_fc("0.weight")


# -- the registered methods on a tiny hand-made data set ---------------------------------------------

TINY = DatasetInfo("TinyDamp", ("a", "b", "c"), 1, 6, (0.5,), (0.25,))


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 3 * 3, 8)
        self.out = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.max_pool2d(torch.relu(self.conv(x)), 2)
        return self.out(torch.relu(self.fc(x.flatten(1))))


def tiny_splits(task: str = "full_class"):
    g = torch.Generator().manual_seed(0)
    y = torch.arange(60) % 3
    images = (torch.rand(60, 1, 6, 6, generator=g) * 80 + y.view(-1, 1, 1, 1) * 60).to(torch.uint8)
    train = ImageData(TINY, images, y)
    test = ImageData(TINY, images[:30].clone(), y[:30].clone())
    return make_splits(task, train, test, forget_class=1 if task == "full_class" else None, n_forget=10)


@pytest.mark.parametrize("name", ["ssd", "lfssd"])
@pytest.mark.parametrize("order", ["paper", "shuffled"])
def test_ssd_methods_through_registry(name: str, order: str) -> None:
    splits = tiny_splits()
    torch.manual_seed(0)
    model = TinyNet()
    before = copy.deepcopy(model)
    entry = METHODS.get(name)
    assert issubclass(entry.config, SSDConfig)
    cfg = entry.config(alpha=1.0, order=order, batch_size=8)
    out = entry.fn(model, splits, cfg)
    assert out is model
    stats = splits.context["ssd_stats"]
    assert stats["order"] == order and stats["reference"] == "full"
    assert stats["mode"] == ("lf" if name == "lfssd" else "batch") and stats["total_selected"] > 0
    assert all((p.abs() <= p0.abs()).all() for p, p0 in zip(model.parameters(), before.parameters(), strict=True))
    json.dumps(stats)


def test_ssd_retain_reference_and_bad_settings() -> None:
    splits = tiny_splits("random")
    model = TinyNet()
    METHODS.get("ssd").fn(model, splits, SSDConfig(reference="retain", mode="sample", alpha=2.0))
    assert splits.context["ssd_stats"]["reference"] == "retain"
    with pytest.raises(UserError, match="order"):
        METHODS.get("ssd").fn(model, splits, SSDConfig(order="sorted"))


def test_output_dampening_changes_only_the_forget_row() -> None:
    splits = tiny_splits()
    model = TinyNet()
    before = copy.deepcopy(model)
    METHODS.get("output_dampening").fn(model, splits, METHODS.get("output_dampening").config(alpha=0.5))
    for (n, p), p0 in zip(model.named_parameters(), before.parameters(), strict=True):
        if n.startswith("out."):
            torch.testing.assert_close(p[1], p0[1] * 0.5)
            assert torch.equal(p[[0, 2]], p0[[0, 2]])
        else:
            assert torch.equal(p, p0), n
    with pytest.raises(UserError, match="forget class"):
        METHODS.get("output_dampening").fn(model, tiny_splits("random"), METHODS.get("output_dampening").config())


def test_output_layer_prefers_named_classifier() -> None:
    class Wrapped(nn.Module):  # an HF-style head nested one level down, registered before another Linear
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Module()
            self.net.classifier = nn.Linear(8, 3)
            self.net.pooler = nn.Linear(3, 3)

    name, _ = output_layer(Wrapped(), 3)
    assert name == "net.classifier"
    assert output_layer(TinyNet(), 3)[0] == "out"
    assert output_layer(TinyNet(), None)[0] == "out"


def test_global_dampening_scales_every_linear_and_conv() -> None:
    splits = tiny_splits()
    model = TinyNet()
    before = copy.deepcopy(model)
    METHODS.get("global_dampening").fn(model, splits, METHODS.get("global_dampening").config())
    for p, p0 in zip(model.parameters(), before.parameters(), strict=True):
        torch.testing.assert_close(p, p0 * 0.01)


def test_ratio_summary_is_what_dampen_selects() -> None:
    """share_above[α] is dampen's selected share at that α (imp_D = 0 < imp_Df counts at every α,
    0/0 at none); percentiles are over the finite ratios; a filtered-out tensor is not counted."""
    from ssd.dampening import RATIO_ALPHAS, ratio_summary

    m = net(3)
    g = torch.Generator().manual_seed(0)
    imp_d = {n: torch.rand(p.shape, generator=g) ** 4 for n, p in m.named_parameters()}
    imp_df = {n: torch.rand(p.shape, generator=g) for n, p in m.named_parameters()}
    w = "4.weight"
    imp_d[w].view(-1)[:5] = 0.0  # x/0: selected at every α
    imp_df[w].view(-1)[:2] = 0.0  # two of them 0/0: never selected
    keep = make_param_filter(m, exclude_norm=True)
    summary = ratio_summary(imp_d, imp_df, keep)
    assert summary["zero_d_positive_df"] == 3 and summary["finite"] == summary["elements"] - 5
    for alpha in RATIO_ALPHAS:
        model = copy.deepcopy(m)
        stats = dampen(model, imp_d, imp_df, alpha=alpha, param_filter=keep)
        assert summary["share_above"][f"{alpha:g}"] == pytest.approx(stats.fraction_selected, abs=1e-12), alpha
    lin = {"weight": torch.ones(1, 5)}
    one = ratio_summary(lin, {"weight": torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0]])})
    assert one["percentiles"]["50"] == 3.0 and one["percentiles"]["90"] == pytest.approx(4.6)
    assert one["share_above"]["1"] == 0.8 and one["share_above"]["5.623"] == 0.0  # a ratio equal to α is not above it
