"""The dry run's cost model (ssd/suite/cost.py) against what each method really does.

Every registered method runs on tiny Digits with a forward hook on the model (and on every
copy and fresh model it makes) that counts the images it sees: with gradients (train and
grad passes), without (teachers, perturbed copies) and per-sample under torch.func. The
counts must equal `method_work`'s, so a method that changes its passes changes its price.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections import Counter
from pathlib import Path

import pytest
import torch
from torch import nn

import ssd.methods  # noqa: F401
from ssd.methods.registry import METHODS
from ssd.suite.cost import RunCost, Sizes, eval_work, method_work, price, schedule
from ssd.suite.probe import Rates, interpolate, timed_steps

FT = torch._C._functorch

# Settings that keep each method to a second on tiny Digits (the counts scale with them).
SMALL = {"retrain": {"epochs": 2}, "ntk": {"max_retain": 30}, "fisher": {"max_samples": 40},
         "salun": {"epochs": 2}, "UNSIR": {"noise_steps": 3}}


def physical_batch(x: torch.Tensor) -> tuple[int, bool]:
    """(rows, under vmap): a torch.func batched input's physical size."""
    n, batched = 1, False
    while FT.is_functorch_wrapped_tensor(x):
        if FT.is_batchedtensor(x):
            n *= FT.get_unwrapped(x).shape[FT.maybe_get_bdim(x)]
            batched = True
        x = FT.get_unwrapped(x)
    return (n, True) if batched else (x.shape[0], False)


def counting(model: nn.Module, counts: Counter) -> nn.Module:
    def hook(mod: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        n, batched = physical_batch(inputs[0])
        counts["psg" if batched else ("grad" if torch.is_grad_enabled() else "fwd")] += n

    model.register_forward_hook(hook)  # deep copies (teachers) keep it
    return model


def expected(method: str, cfg: object, splits: object, task: str) -> Counter:
    z = Sizes(len(splits.train), len(splits.test), len(splits.forget), len(splits.retain), len(splits.forget_test),
              len(splits.retain_eval), splits.num_classes, len(splits.train.info.fine_classes or ()) or splits.num_classes)
    out: Counter = Counter()
    for w in method_work(method, cfg, z, task=task, net="ConvNet", dataset=splits.train.info.name):
        kind = "grad" if w.kind in ("train", "imp") else w.kind
        # NTK's Jacobian is one forward per sample and C backward passes (the model prices C)
        out[kind] += w.images / (z.classes if method == "ntk" and w.kind == "psg" else 1)
    return out


@pytest.mark.parametrize("task", ["full_class", "sub_class", "random"])
def test_method_passes_match_what_the_methods_do(task_setup, task, one_thread):
    from models import build_model

    model0, splits0 = task_setup[task]
    for method in METHODS.names():
        entry = METHODS.get(method)
        if task not in entry.tasks:
            continue
        counts: Counter = Counter()
        splits = dataclasses.replace(splits0, context={**splits0.context, "net": "ConvNet",
                                                         "dataset": splits0.train.info.name})
        splits.model_factory = lambda c=counts: counting(build_model("ConvNet", splits0.train.info).eval(), c)
        cfg = entry.config(**SMALL.get(method, {}))
        model = counting(copy.deepcopy(model0), counts)
        entry.fn(model, splits, cfg)
        want = expected(method, cfg, splits, task)
        got = {k: v for k, v in counts.items() if v}
        assert got == pytest.approx({k: v for k, v in want.items() if v}, rel=0.02), (method, task, got, want)


def test_evaluation_passes_match_evaluate(task_setup, one_thread):
    from ssd.metrics import evaluate

    model0, splits = task_setup["full_class"]
    counts: Counter = Counter()
    model = counting(copy.deepcopy(model0), counts)
    refs = [counting(copy.deepcopy(model0), counts) for _ in range(2)]
    evaluate(model, splits, untrained=refs[0], retrained=refs[1])
    z = Sizes(len(splits.train), len(splits.test), len(splits.forget), len(splits.retain), len(splits.forget_test),
              len(splits.retain_eval), splits.num_classes, splits.num_classes)
    assert counts["fwd"] == sum(w.images for w in eval_work(z, "full_class"))


def test_price_and_interpolation():
    rates = Rates("X", "cpu", train={64: 100.0, 256: 400.0}, fwd={512: 1000.0})
    assert interpolate(rates.train, 128) == pytest.approx(250.0)  # halfway in log(batch)
    assert interpolate(rates.train, 8) == 100.0 and interpolate(rates.train, 1024) == 400.0
    z = Sizes.of("full_class", 1000, 200, 10, None, 100, 5000)
    assert (z.forget, z.retain, z.forget_test, z.retain_eval) == (100, 900, 20, 900)
    # a 100-image pass at batch 256 is priced at the rate of batch 100
    from ssd.suite.cost import Work

    assert price([Work("train", 100, 256)], rates.rate) == pytest.approx(100 / interpolate(rates.train, 100))
    assert price([Work("grad", 640, 64, passes=10)], rates.rate) == pytest.approx(6.4)


def test_schedule_waits_for_each_splits_retrain():
    runs = [RunCost("n", "retrain", "t", "d", 10.0, ("a",), True), RunCost("n", "ssd", "t", "d", 1.0, ("a",), False),
            RunCost("n", "retrain", "t", "d", 10.0, ("b",), True), RunCost("n", "ssd", "t", "d", 1.0, ("b",), False)]
    assert schedule(runs, 1) == 22.0
    assert schedule(runs, 2) == 11.0  # each ssd after its retrain, on the worker that ran it
    assert schedule(runs, 4) == 11.0  # no faster than retrain + the run after it


def test_timed_steps_shrinks_a_slow_batch():
    import time

    seen = []

    def step(n: int) -> None:
        seen.append(n)
        time.sleep(0.002 * n)

    used, rate = timed_steps(step, 512, torch.device("cpu"), budget=0.3)
    assert 32 <= used < 512 and 0.002 * used <= 0.3 / 2  # grown by doubling while a step stays under budget/2
    assert rate == pytest.approx(500, rel=0.5)


def test_dry_run_prints_an_estimate(tmp_path: Path, capsys, one_thread):
    """The quick suite's dry run: a probe, a line per (net, method), totals for 1 and N workers."""
    from ssd.suite.run import run_suite

    out = tmp_path / "est.json"
    run_suite(["--suite", "quick", "--dry-run", "--methods", "ssd,retrain,fisher", "--seeds", "0",
               "--results", str(tmp_path / "r.jsonl"), "--cache-dir", str(tmp_path / "c"),
               "--probe-budget", "0.05", "--estimate-workers", "4", "--estimate-json", str(out), "--no-sweeps"])
    text = capsys.readouterr().out
    assert "probe ConvNet on cpu" in text and "estimate on one device" in text and "4 Ray workers" in text
    doc = json.loads(out.read_text())
    assert {r["method"] for r in doc["runs"]} == {"ssd", "retrain", "fisher"}
    assert doc["totals_s"]["1"] >= doc["totals_s"]["4"] > 0
    # priced again from the JSON's own rates, without a probe: the same per-run seconds
    run_suite(["--suite", "quick", "--dry-run", "--methods", "ssd,retrain,fisher", "--seeds", "0",
               "--results", str(tmp_path / "r.jsonl"), "--cache-dir", str(tmp_path / "c"), "--rates", str(out),
               "--estimate-json", str(tmp_path / "again.json"), "--no-sweeps"])
    again = json.loads((tmp_path / "again.json").read_text())
    assert [r["work_s"] for r in again["runs"]] == pytest.approx([r["work_s"] for r in doc["runs"]])
