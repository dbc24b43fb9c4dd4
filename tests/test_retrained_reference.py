"""A damaged retrained reference is rebuilt with the retrain settings that made it, not retrain's defaults.

The reference (cache/retrained/NET-SPLIT.pt) is what ActDist of every method of a split is
measured against. A suite may retrain with its own settings (say 1 epoch instead of the
schedule's 30); rebuilding a damaged copy with the defaults would score later runs against
another model than the earlier runs of the same split.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from damage import zero_largest_tensor

from ssd.errors import UserError
from ssd.experiment import RunSpec, Session, run_one
from ssd.methods.registry import METHODS
from ssd.train import pretrain


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("digits")
    pretrain("ConvNet", "Digits", epochs=1, out=out, progress=False, log=None)
    return out / "best.pt"


def specs(checkpoint: Path) -> tuple[RunSpec, RunSpec]:
    retrain = RunSpec(task="full_class", net="ConvNet", dataset="Digits", weight_path=str(checkpoint),
                      method="retrain", forget_class="2", retain_eval_size=200,
                      overrides={"epochs": 1, "lr": 0.002, "augment": False})
    return retrain, dataclasses.replace(retrain, method="baseline", overrides={})


def spy_on_retrain(monkeypatch: pytest.MonkeyPatch, fn) -> None:  # noqa: ANN001
    monkeypatch.setitem(METHODS._entries, "retrain", dataclasses.replace(METHODS.get("retrain"), fn=fn))


@pytest.mark.parametrize("beside", [True, False], ids=["settings-file", "own-metadata"])
def test_damaged_reference_is_rebuilt_with_its_settings(checkpoint: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str], beside: bool) -> None:
    """Old: rebuilt with retrain's defaults (epochs None = the schedule's 30, its lr, augmentation).
    Without the settings file (a reference an older version saved) its own metadata tells them."""
    retrain_spec, baseline_spec = specs(checkpoint)
    run_one(retrain_spec, Session(tmp_path))
    session = Session(tmp_path)
    (ref,) = (tmp_path / "retrained").glob("*.pt")
    zero_largest_tensor(ref)
    if not beside:
        ref.with_suffix(".json").unlink()
    used = []
    spy_on_retrain(monkeypatch, lambda model, splits, cfg: used.append(cfg) or splits.model_factory().eval())
    row = run_one(baseline_spec, session)
    assert "unusable" in capsys.readouterr().err and len(used) == 1
    assert (used[0].epochs, used[0].lr, used[0].augment, used[0].seed) == (1, 0.002, False, 0)
    assert "ActDist" in row["metrics"]


def test_reference_with_unknown_settings_is_refused(checkpoint: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A reference whose settings are lost with it (truncated, nothing beside it, as an older
    version left it): one line saying what to run, no rebuild with guessed settings, and the
    damaged file stays so the next run refuses too instead of scoring without a reference."""
    retrain_spec, baseline_spec = specs(checkpoint)
    run_one(retrain_spec, Session(tmp_path))
    (ref,) = (tmp_path / "retrained").glob("*.pt")
    ref.with_suffix(".json").unlink(missing_ok=True)
    ref.write_bytes(ref.read_bytes()[:300])
    used = []
    spy_on_retrain(monkeypatch, lambda model, splits, cfg: used.append(cfg) or model)
    with pytest.raises(UserError, match="retrain settings that made it are unknown") as err:
        run_one(baseline_spec, Session(tmp_path))
    assert used == [] and "\n" not in str(err.value) and ref.is_file()


def test_retrained_reference_is_kept_off_the_device(tmp_path: Path, task_setup) -> None:  # noqa: ANN001
    """The session keeps each split's reference on the CPU (the paper grid holds 80 ViT references)
    and every use gets its own copy on the run's device, dropped with it. Old: the run's own model
    object was kept, on its device, for the whole grid."""
    model, splits = task_setup["full_class"]
    session = Session(tmp_path)
    session.save_retrained("ConvNet", splits, model, {})
    (kept,) = session.retrained.values()
    assert kept is not model and all(p.device.type == "cpu" for p in kept.parameters())
    assert not {p.data_ptr() for p in kept.parameters()} & {p.data_ptr() for p in model.parameters()}
    got = session.load_retrained("ConvNet", splits, lambda settings: None, device="meta")
    assert got is not None and all(p.device.type == "meta" for p in got.parameters())
    assert all(p.device.type == "cpu" for p in kept.parameters())
