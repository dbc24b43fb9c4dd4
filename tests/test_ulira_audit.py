"""How the U-LiRA audit builds its two worlds, in the default run (issue 21): seed streams that
never overlap, every model's own initialisation, the ensemble's step equal to a model's own
(SGD and Adam), and a fast end-to-end audit whose thresholds fail each wrong wiring."""

from __future__ import annotations

import pytest
import torch

import ssd.methods  # noqa: F401  (registers the methods)
from datasets import load_dataset
from models import build_model
from ssd.methods.registry import MethodConfig, MethodEntry
from ssd.privacy import audit as audit_module
from ssd.privacy.audit import new_shadow_set
from ssd.privacy.settings import UliraSettings


@pytest.fixture(scope="module")
def digits():
    return load_dataset("Digits", train=True), load_dataset("Digits", train=False)


def _factory(info):
    return lambda: build_model("ConvNet", info)


def _inits(ens) -> list[torch.Tensor]:
    return [ens.params["fc1.weight"][k].clone() for k in range(ens.k)]


def test_every_shadow_reference_and_audited_model_starts_from_its_own_weights(digits, monkeypatch) -> None:
    """Old: shadow k's unlearning was seeded cfg.seed + k, an ensemble's initialisation seed
    (retraining shadow 0 started from shadow 0's own initial weights, shadow 1's from
    reference 0's), and an audit with seed=1 drew its shadows from seed 0's reference stream.
    Also fails when every shadow and reference gets the same initial weights."""
    train, test = digits
    factory = _factory(train.info)
    sets = [new_shadow_set("ConvNet", factory, train, UliraSettings(shadows=4, pool=60, seed=s), 5,
                           torch.device("cpu")) for s in (0, 1)]
    inits = [w for s in sets for ens in (s.originals, s.references) for w in _inits(ens)]
    assert not any(torch.equal(a, b) for i, a in enumerate(inits) for b in inits[i + 1:])
    seeds: list[int] = []

    def spy(model, splits, cfg):  # records the seed shadow k's unlearning gets
        seeds.append(cfg.seed)
        return model

    entry = MethodEntry("spy", spy, MethodConfig)
    monkeypatch.setattr(audit_module, "METHODS", type("R", (), {"get": staticmethod(lambda name: entry)}))
    audit_module.audit(sets[0], "spy", MethodConfig(seed=0), test.subset(torch.arange(20)))
    assert len(set(seeds)) == 4
    for s in seeds:  # what retrain (torch.manual_seed(cfg.seed); a fresh model) would start from
        torch.manual_seed(s)
        fresh = factory().fc1.weight.detach()
        assert not any(torch.equal(fresh, w) for w in inits), s
