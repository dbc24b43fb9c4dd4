"""Every registered method, on all three tasks, on tiny data: the shared contract.

Same architecture back, the loaded checkpoint untouched, deterministic for a seed.
Method-specific behaviour is tested beside each method (tests/test_baselines_*.py, …).
"""

from __future__ import annotations

import copy
from functools import cache

import pytest
import torch

import ssd.methods  # noqa: F401
from datasets import dataset_info, load_dataset
from models import build_model
from ssd.errors import UserError
from ssd.experiment import METHOD_ALIASES
from ssd.methods.registry import METHODS
from ssd.splits import Splits, make_splits

TASKS = {"full_class": ("Digits", 3), "sub_class": ("DigitsCoarse", 2), "random": ("Digits", None)}
# Keep the slow trainers small here: this test is about the contract, not about forgetting.
FAST = {"retrain": {"epochs": 1}, "finetune": {"epochs": 1}, "salun": {"epochs": 1}, "scrub": {"epochs": 1},
        "neggrad_plus": {"epochs": 1}, "amnesiac": {"epochs": 1}, "ntk": {"max_retain": 60},
        "UNSIR": {"noise_steps": 3}}


@cache
def _splits(task: str) -> Splits:
    name, cls = TASKS[task]
    train, test = load_dataset(name, train=True), load_dataset(name, train=False)
    g = torch.Generator().manual_seed(0)
    train = train.subset(torch.randperm(len(train), generator=g)[:300].sort().values)
    test = test.subset(torch.arange(0, len(test), 3))
    info = dataset_info(name)
    return make_splits(task, train, test, forget_class=cls, n_forget=20, seed=0,
                       model_factory=lambda: build_model("ConvNet", info),
                       context={"net": "ConvNet", "dataset": name})


@cache
def _model(task: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("ConvNet", dataset_info(TASKS[task][0])).eval()


def _run(name: str, task: str, seed: int = 0) -> torch.nn.Module:
    entry = METHODS.get(name)
    fields = set(entry.config.__dataclass_fields__)
    cfg = entry.config(seed=seed, **{k: v for k, v in FAST.get(name, {}).items() if k in fields})
    return entry.fn(copy.deepcopy(_model(task)), _splits(task), cfg)


def test_registry_refuses_duplicates_and_names_the_choices() -> None:
    with pytest.raises(ValueError, match="already registered"):
        METHODS.add("ssd" if "ssd" in METHODS else "baseline", METHODS.get("baseline"))
    with pytest.raises(UserError, match="choose one of: .*baseline"):
        METHODS.get("no-such-method")
    assert set(METHOD_ALIASES.values()) <= set(METHODS.names()) | {"ssd", "lfssd", "fisher", "ntk"}


@pytest.mark.parametrize("task", list(TASKS))
@pytest.mark.parametrize("name", METHODS.names())
def test_method_contract(name: str, task: str) -> None:
    torch.set_num_threads(1)
    if task not in METHODS.get(name).tasks:
        with pytest.raises(UserError):
            _run(name, task)
        return
    original = {k: v.clone() for k, v in _model(task).state_dict().items()}
    out = _run(name, task)
    assert type(out) is type(_model(task))
    after = out.state_dict()
    assert after.keys() == original.keys()
    assert all(after[k].shape == original[k].shape and after[k].dtype == original[k].dtype for k in after)
    assert all(torch.equal(v, _model(task).state_dict()[k]) for k, v in original.items()), "checkpoint touched"
    if name != "baseline":
        assert not all(torch.equal(after[k], original[k]) for k in after), "the method changed no weight"
    assert not out.training, "methods hand back a model in eval mode"
    again = _run(name, task).state_dict()
    assert all(torch.equal(after[k], again[k]) for k in after), "not deterministic for a fixed seed"


def test_every_method_module_is_imported_by_the_package() -> None:
    """Adding a method is one file with one @register_method: the package imports every module
    itself (a hand-kept import list would silently miss a new file)."""
    import sys
    from pathlib import Path

    folder = Path(ssd.methods.__file__).parent
    defining = [p.stem for p in folder.glob("*.py") if "@register_method(" in p.read_text()]
    assert len(defining) >= 10
    for stem in defining:
        assert f"ssd.methods.{stem}" in sys.modules, stem
