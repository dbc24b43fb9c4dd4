"""The U-LiRA shadow cache: a damaged file is never used (one note, trained again, replaced), and
its key holds everything the trained shadows depend on (issue 21)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from damage import zero_largest_tensor

from datasets import load_dataset
from models import build_model
from ssd.privacy import shadow_cache
from ssd.privacy.audit import AuditScope, shadows_for
from ssd.privacy.settings import UliraSettings
from ssd.splits import make_splits

SETTINGS = UliraSettings(shadows=4, pool=120, epochs=2)


@pytest.fixture(scope="module")
def digits():
    train, test = load_dataset("Digits", train=True), load_dataset("Digits", train=False)
    splits = make_splits("random", train, test, n_forget=6, seed=0,
                         model_factory=lambda: build_model("ConvNet", train.info))
    return train, splits


def _shadows(tmp_path: Path, digits, settings: UliraSettings = SETTINGS):
    """A new process's view: an empty session store, the disk cache in tmp_path."""
    train, splits = digits
    scope = AuditScope("ConvNet", "Digits", None, "cpu", train, tmp_path)
    return shadows_for(scope, settings, splits)


def _weights(shadows) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in shadows.originals.params.items()}


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_damaged_cache_is_trained_again_with_one_note(tmp_path: Path, digits, capsys, one_thread, damage) -> None:
    """Old: flipped bytes were loaded unchecked (the AUC moved under the same run key) and a
    truncated file gave a traceback on every rerun until deleted by hand."""
    first = _weights(_shadows(tmp_path, digits))
    (path,) = (tmp_path / "ulira").glob("*.pt")
    assert torch.equal(_weights(_shadows(tmp_path, digits))["fc2.weight"], first["fc2.weight"])  # a clean hit
    assert "note" not in capsys.readouterr().err
    if damage == "flip":
        zero_largest_tensor(path)
    else:
        path.write_bytes(path.read_bytes()[:2000])
    again = _weights(_shadows(tmp_path, digits))
    notes = [ln for ln in capsys.readouterr().err.splitlines() if "note:" in ln]
    assert len(notes) == 1 and "shadow cache" in notes[0] and "training the shadows again" in notes[0]
    assert all(torch.equal(again[k], first[k]) for k in first)  # retrained to the same weights (CPU, seeded)
    _shadows(tmp_path, digits)  # the file was replaced: a clean hit again
    assert "note" not in capsys.readouterr().err


def test_cache_key_holds_schedule_data_root_pool_and_code_version(digits, monkeypatch) -> None:
    """Old key: net, dataset, n_forget, architecture and settings only, so shadows stayed stale
    after a configs/schedules.toml edit while the retrain and references followed it."""
    from ssd.privacy.audit import new_shadow_set

    train, splits = digits
    shadows = new_shadow_set("ConvNet", splits.model_factory, train, SETTINGS, 6, torch.device("cpu"))

    def key(**change):
        return shadow_cache.cache_key("ConvNet", "Digits", None, SETTINGS, 6, "arch",
                                      dataclasses.replace(shadows, **change))

    base = key()
    assert key(schedule=dataclasses.replace(shadows.schedule, lr=1e-2)) != base
    assert key(schedule=dataclasses.replace(shadows.schedule, batch_size=32)) != base
    assert key(schedule=dataclasses.replace(shadows.schedule, augment=True)) != base
    assert shadow_cache.cache_key("ConvNet", "Digits", "/elsewhere", SETTINGS, 6, "arch", shadows) != base
    other_pool = dataclasses.replace(shadows.pool, targets=(shadows.pool.targets + 1) % 10)
    assert key(pool=other_pool) != base
    monkeypatch.setattr(shadow_cache, "code_version", lambda: "another")
    assert key() != base
    monkeypatch.undo()  # the memory limit is not part of it
    assert shadow_cache.cache_key("ConvNet", "Digits", None, dataclasses.replace(SETTINGS, max_memory_gib=99.0),
                                  6, "arch", shadows) == base


def test_an_unwritable_cache_location_costs_only_the_reuse(tmp_path: Path, digits, capsys, one_thread) -> None:
    """Hunt: a folder where the cache file goes gave a traceback after the shadows trained."""
    first = _shadows(tmp_path, digits)
    (path,) = (tmp_path / "ulira").glob("*.pt")
    path.unlink()
    path.mkdir()
    again = _shadows(tmp_path, digits)  # no traceback: trained, used, not kept
    assert "could not keep the U-LiRA shadows" in capsys.readouterr().err
    assert torch.equal(_weights(again)["fc2.weight"], _weights(first)["fc2.weight"])
