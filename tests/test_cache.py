"""The importance cache: hits are bit-identical and skip work; changes miss; damage is recomputed."""

from __future__ import annotations

import copy
import logging
import math
from pathlib import Path

import pytest
import torch
from damage import zero_largest_tensor
from torch import nn

import ssd.methods.ssd_methods as sm
from datasets.base import DatasetInfo, ImageData
from ssd.cache import ImportanceCache, importance_key, indices_hash
from ssd.methods.ssd_methods import SSDConfig, ssd_sweep, ssd_unlearn
from ssd.splits import make_splits

INFO = DatasetInfo("TinyCache", ("a", "b", "c"), 1, 4, (0.5,), (0.25,))


def model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(48, 3))


def data(n: int = 40) -> ImageData:
    g = torch.Generator().manual_seed(1)
    y = torch.arange(n) % 3
    images = (torch.rand(n, 1, 4, 4, generator=g) * 100 + y.view(-1, 1, 1, 1) * 70).to(torch.uint8)
    return ImageData(INFO, images, y)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts compute_importances calls made by the SSD functions (each call = one data set)."""
    calls: list[int] = []
    real = sm.compute_importances

    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(len(args[1]))
        return real(*args, **kwargs)

    monkeypatch.setattr(sm, "compute_importances", wrapper)
    return calls


def forget_request(cls: int):
    train = data()
    return make_splits("full_class", train, train, forget_class=cls)


def test_hit_is_bit_identical_and_skips_d(tmp_path: Path, counted: list[int]) -> None:
    cache = ImportanceCache(tmp_path)
    cfg = SSDConfig(batch_size=8, alpha=1.0)
    net = model()
    s1 = forget_request(1)
    first = copy.deepcopy(net)
    st1 = ssd_unlearn(first, s1.train, s1.forget, cfg, cache, checkpoint_sha256="abc")
    assert counted == [40, len(s1.forget)] and st1.cache_hit is False and cache.misses == 1
    # the same request again: only Df is computed, the result is bit-identical
    again = copy.deepcopy(net)
    st2 = ssd_unlearn(again, s1.train, s1.forget, cfg, cache, checkpoint_sha256="abc")
    assert counted[2:] == [len(s1.forget)] and st2.cache_hit is True and cache.hits == 1
    for p, q in zip(first.parameters(), again.parameters(), strict=True):
        assert torch.equal(p, q)
    # another forget class on the same checkpoint (shuffled order): D's entry is reused
    s2 = forget_request(2)
    st3 = ssd_unlearn(copy.deepcopy(net), s2.train, s2.forget, cfg, cache, checkpoint_sha256="abc")
    assert counted[3:] == [len(s2.forget)] and st3.cache_hit is True


def test_stored_importances_equal_computed(tmp_path: Path) -> None:
    cache = ImportanceCache(tmp_path)
    net, d = model(), data()
    expect = {n: p.shape for n, p in net.named_parameters()}
    computed = sm.compute_importances(net, d, batch_size=8)
    got, hit, _ = cache.get_or_compute("k1", {}, expect, lambda: computed)
    assert not hit
    loaded, hit, _ = cache.get_or_compute("k1", {}, expect, lambda: pytest.fail("recomputed"))
    assert hit and all(torch.equal(loaded[n], computed[n]) for n in computed)


def test_changed_checkpoint_or_settings_miss(tmp_path: Path, counted: list[int]) -> None:
    cache = ImportanceCache(tmp_path)
    s = forget_request(0)
    ssd_unlearn(model(0), s.train, s.forget, SSDConfig(), cache)  # key from the weights' own hash
    ssd_unlearn(model(1), s.train, s.forget, SSDConfig(), cache)  # other weights: miss
    ssd_unlearn(model(1), s.train, s.forget, SSDConfig(batch_size=16), cache)  # other batch size: miss
    ssd_unlearn(model(1), s.train, s.forget, SSDConfig(seed=3), cache)  # other shuffle: miss
    ssd_unlearn(model(1), s.train, s.forget, SSDConfig(order="paper"), cache)  # other order: miss
    assert cache.hits == 0 and cache.misses == 5 and len(list(tmp_path.glob("importance-*.pt"))) == 5
    ssd_unlearn(model(1), s.train, s.forget, SSDConfig(seed=3), cache)
    assert cache.hits == 1


def test_key_covers_every_field() -> None:
    base = dict(checkpoint_sha256="a", dataset="MNIST", split="s", mode="batch", batch_size=64,
                order="paper", seed=0)
    k0, fields = importance_key(**base)
    assert fields["transform"] == "none"
    for name, other in [("checkpoint_sha256", "b"), ("dataset", "X"), ("split", "t"), ("mode", "lf"),
                        ("batch_size", 32), ("order", "shuffled"), ("seed", 1)]:
        assert importance_key(**{**base, name: other})[0] != k0, name
    d = data()
    assert indices_hash(d) != indices_hash(d, torch.arange(len(d)).flip(0))


def corrupt_truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def corrupt_garbage(path: Path) -> None:
    path.write_bytes(b"not a torch file")


def corrupt_zeroed_bytes(path: Path) -> None:
    """Old: loaded as a hit (zeros are valid, finite, non-negative importances): SSD then selected
    other weights under the same run key. Caught now by the entry's content checksum."""
    zero_largest_tensor(path)


@pytest.mark.parametrize("corrupt", [corrupt_truncate, corrupt_garbage, corrupt_zeroed_bytes])
def test_corrupt_entry_is_recomputed(tmp_path: Path, corrupt, caplog: pytest.LogCaptureFixture) -> None:
    cache = ImportanceCache(tmp_path)
    net, d = model(), data()
    expect = {n: p.shape for n, p in net.named_parameters()}
    computed = sm.compute_importances(net, d, batch_size=8)
    cache.get_or_compute("k", {}, expect, lambda: computed)
    corrupt(cache.path("k"))
    calls = []
    with caplog.at_level(logging.WARNING, logger="ssd.cache"):
        got, hit, _ = cache.get_or_compute("k", {}, expect, lambda: calls.append(1) or computed)
    assert not hit and calls == [1] and cache.rejected == 1
    assert "unusable" in caplog.text
    again, hit, _ = cache.get_or_compute("k", {}, expect, lambda: pytest.fail("rewritten entry not used"))
    assert hit and all(torch.equal(again[n], computed[n]) for n in computed)


def test_mismatched_entries_are_rejected(tmp_path: Path) -> None:
    cache = ImportanceCache(tmp_path)
    net = model()
    expect = {n: p.shape for n, p in net.named_parameters()}
    imps = {n: torch.ones(s) for n, s in expect.items()}
    cache.save("other", imps, {})
    cache.path("other").rename(cache.path("k"))  # a file under the wrong name
    assert cache.load("k", expect) is None
    bad_shape = dict(imps, **{"3.bias": torch.ones(4)})
    cache.save("k", bad_shape, {})
    assert cache.load("k", expect) is None
    cache.save("k", {n: v for n, v in imps.items() if n != "3.bias"}, {})  # a missing parameter
    assert cache.load("k", expect) is None
    cache.save("k", dict(imps, **{"3.bias": torch.full((3,), float("nan"))}), {})
    assert cache.load("k", expect) is None
    assert cache.rejected == 4 and cache.hits == 0
    cache.save("k", imps, {})
    assert cache.load("k", expect) is not None


def test_sweep_reuses_importances(tmp_path: Path, counted: list[int]) -> None:
    s = forget_request(1)
    net = model()
    before = copy.deepcopy(net.state_dict())
    seen: list[float] = []

    def evaluate(m: nn.Module) -> dict[str, float]:
        seen.append(float(sum(p.detach().abs().sum() for p in m.parameters())))
        return {"norm": seen[-1]}

    rows = ssd_sweep(net, s.train, s.forget, SSDConfig(batch_size=8), [0.5, 1.0, 1e9], [1.0, 0.1], evaluate)
    assert len(counted) == 2 and len(rows) == 6  # importances once, six dampenings
    assert [(r["alpha"], r["lam"]) for r in rows][:3] == [(0.5, 1.0), (1.0, 1.0), (1e9, 1.0)]
    assert rows[0]["selected"] >= rows[1]["selected"] >= rows[2]["selected"]
    single = copy.deepcopy(net)
    stats = ssd_unlearn(single, s.train, s.forget, SSDConfig(batch_size=8, alpha=1.0, lam=0.1))
    assert rows[4]["selected"] == stats.total_selected
    assert rows[4]["norm"] == pytest.approx(float(sum(p.detach().abs().sum() for p in single.parameters())), rel=1e-6)
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k  # the original weights are back


def test_row_timing_comes_from_this_lookup(tmp_path: Path) -> None:
    """DCacheHit / DImportanceTime of a run's row (method_timing of the stats run_ssd leaves) on a
    miss, a hit, a hit on an entry whose meta is empty, and a damaged entry. Catches: a hit's row
    losing DImportanceTime (NaN / None instead of the entry's seconds) or carrying another figure than
    the entry's, a miss (first run, damaged entry) reported as a hit, and a hit
    whose entry has an empty (falsy) meta reported as a miss."""
    from ssd.experiment import method_timing
    from ssd.methods.ssd_methods import run_ssd

    net, s = model(), forget_request(1)
    s.context.update(cache_dir=str(tmp_path), checkpoint_sha256="abc")
    cfg = SSDConfig(batch_size=8, alpha=1.0)

    def row(method_time: float = 0.25) -> dict[str, float]:
        run_ssd(copy.deepcopy(net), s, cfg)
        return method_timing(method_time, s.context.pop("ssd_stats"))

    miss = row()
    assert miss["DCacheHit"] is False and miss["DImportanceTime"] > 0 and miss["CacheIOTime"] > 0
    assert miss["MethodTimeCold"] == miss["MethodTime"] == pytest.approx(0.25 - miss["CacheIOTime"])  # I/O left out
    (entry,) = (tmp_path / "importances").glob("importance-*.pt")
    cache = ImportanceCache(tmp_path / "importances")
    key = entry.stem.removeprefix("importance-")
    expect = {n: p.shape for n, p in net.named_parameters()}
    imps, meta = cache.load_entry(key, expect)
    assert meta["compute_s"] == miss["DImportanceTime"]  # what the miss measured is what it stored
    cache.save(key, imps, {**meta, "compute_s": 7.5})  # a distinctive figure: the row must carry this one
    hit = row()
    assert hit["DCacheHit"] is True and hit["DImportanceTime"] == 7.5
    assert hit["MethodTimeCold"] == pytest.approx(0.25 - hit["CacheIOTime"] + 7.5)
    cache.save(key, imps, {})  # an entry written before compute times were recorded: still a hit
    old = row()
    assert old["DCacheHit"] is True and math.isnan(old["DImportanceTime"]) and math.isnan(old["MethodTimeCold"])
    zero_largest_tensor(entry)  # damaged: recomputed, a miss with a fresh figure
    again = row()
    assert again["DCacheHit"] is False and again["MethodTimeCold"] == pytest.approx(0.25 - again["CacheIOTime"])
    assert 0 < again["DImportanceTime"] != 7.5
