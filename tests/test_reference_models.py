"""Reference models and the membership attack, tested so that the named wrong implementations fail:

* retrain fine-tuning the loaded model instead of starting from a fresh initialisation;
* ViT references (retrain start, blindspot's incompetent teacher, ZRF's untrained model) built
  as random ViTs instead of from the checkpoint's ImageNet weights with a fresh head;
* the entropy MIA with members and non-members swapped.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from tiny_digits import tiny
from torch import nn

import ssd.methods  # noqa: F401  (registers the methods)
from models import build_model
from ssd.errors import UserError
from ssd.experiment import RunSpec, Session, build_splits, reference_start
from ssd.methods.basic import RetrainConfig, retrain
from ssd.methods.common import untrained_like
from ssd.metrics import evaluate
from ssd.splits import make_splits
from ssd.train import fit


def digits_splits(model_seed: int = 0):
    train, test = tiny("Digits")

    def factory() -> nn.Module:
        return build_model("ConvNet", train.info)

    return make_splits("full_class", train, test, forget_class=3, model_factory=factory,
                       context={"net": "ConvNet", "dataset": "Digits"})


def params(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_retrain_starts_from_a_fresh_initialisation(trained, one_thread, monkeypatch) -> None:
    """The model retrain trains (and returns) starts as the seeded fresh model, not the loaded one."""
    import ssd.train

    loaded, _ = trained
    splits = digits_splits()
    started: dict[str, dict[str, torch.Tensor]] = {}

    def no_training(model: nn.Module, *args: object, **kwargs: object) -> list:
        started["weights"] = params(model)
        return []

    monkeypatch.setattr(ssd.train, "fit", no_training)
    out = retrain(copy.deepcopy(loaded), splits, RetrainConfig(seed=5, epochs=1))
    torch.manual_seed(5)
    fresh = params(splits.model_factory())
    assert all(torch.equal(started["weights"][k], fresh[k]) for k in fresh)
    assert all(torch.equal(params(out)[k], fresh[k]) for k in fresh)  # the trained model is what comes back
    assert not all(torch.equal(started["weights"][k], v) for k, v in params(loaded).items())


def test_retrained_model_never_saw_the_forget_class(trained, one_thread) -> None:
    """Trained from scratch on Dr only, it cannot predict the forgotten digit; the loaded model can."""
    loaded, _ = trained
    splits = digits_splits()
    out = retrain(copy.deepcopy(loaded), splits, RetrainConfig(seed=0, epochs=3))
    m = evaluate(out, splits)
    base = evaluate(loaded, splits)
    assert m["DfTest"] == 0.0  # no retain label is 3, so no output 3 was ever rewarded
    assert base["DfTest"] > 50.0  # the loaded model knows the digit (fine-tuning it would keep much of that)


def memorising_model(n: int = 300) -> tuple[nn.Module, object]:
    """A ConvNet trained on `n` Digits images until it fits every one of them (100 %)."""
    train, test = tiny("Digits")
    train = train.subset(torch.arange(n))
    torch.manual_seed(0)
    model = build_model("ConvNet", train.info)
    from ssd.schedules import load_schedule

    sched = load_schedule("ConvNet", "Digits", epochs=60, batch_size=32, lr=3e-3)
    fit(model, train, sched, seed=0, progress=False)
    splits = make_splits("random", train, test, n_forget=60, seed=0)
    return model.eval(), splits


def test_mia_calls_members_members_on_a_memorising_model(one_thread) -> None:
    """Forget samples were trained on (members). On a model at 100 % training accuracy the
    entropy attack must call most of them members and the loss attack must rank them above
    held-out images: both are "better than chance in the right direction" (> 0.5); an attack
    with members and non-members swapped lands below 0.5 on both."""
    model, splits = memorising_model()
    m = evaluate(model, splits)
    assert m["Df"] == 100.0 and m["DrTrain"] == 100.0, "the model must memorise its training set"
    assert m["TestAcc"] < 100.0
    assert m["MIA"] > 0.5
    assert m["MIA_loss_auc"] > 0.5 and m["MIA_conf_auc"] > 0.5


# ---- ViT references


def tiny_vit_folder(path: Path) -> Path:
    from transformers import ViTConfig, ViTForImageClassification

    config = ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
                       image_size=32, patch_size=8, num_labels=7)
    torch.manual_seed(0)
    ViTForImageClassification(config).save_pretrained(path)
    return path


def vit_spec(**kw: object) -> RunSpec:
    fields = {"task": "full_class", "net": "ViT", "dataset": "Digits", "weight_path": "unused",
              "method": "baseline", "forget_class": "3", **kw}
    return RunSpec(**fields)  # type: ignore[arg-type]


def test_vit_references_start_from_the_checkpoints_imagenet_weights(tmp_path: Path) -> None:
    folder = tiny_vit_folder(tmp_path / "imagenet")
    meta = {"config": {"pretrained": str(folder)}}
    assert reference_start(vit_spec(), meta) == (str(folder), None)
    splits = build_splits(vit_spec(), Session(tmp_path / "cache"), "sha", meta)
    assert "references_unavailable" not in splits.context
    torch.manual_seed(0)
    ref = splits.model_factory()
    from transformers import ViTForImageClassification

    start = ViTForImageClassification.from_pretrained(str(folder)).state_dict()
    got = {k.removeprefix("net."): v for k, v in ref.state_dict().items()}
    backbone = [k for k in start if not k.startswith("classifier.")]
    assert backbone and all(torch.equal(got[k], start[k]) for k in backbone)
    assert got["classifier.weight"].shape[0] == 10  # a fresh head for the dataset's classes
    teacher = untrained_like(copy.deepcopy(ref), splits, seed=1)  # blindspot's incompetent teacher
    tgot = {k.removeprefix("net."): v for k, v in teacher.state_dict().items()}
    assert all(torch.equal(tgot[k], start[k]) for k in backbone)


def test_vit_without_imagenet_weights_says_references_are_unavailable(tmp_path: Path) -> None:
    spec = vit_spec(pretrained=str(tmp_path / "missing"))
    _, why = reference_start(spec, {})
    assert why and "--pretrained" in why and "does not exist" in why
    splits = build_splits(spec, Session(tmp_path / "cache"), "sha", {})
    assert splits.model_factory is None and splits.context["references_unavailable"] == why
    dummy = nn.Linear(2, 2)
    with pytest.raises(UserError, match="unavailable"):
        retrain(dummy, splits, RetrainConfig())
    with pytest.raises(UserError, match="unavailable"):
        untrained_like(dummy, splits)
    assert reference_start(vit_spec(net="ConvNet"), {}) == (None, None)  # from-scratch models need none

