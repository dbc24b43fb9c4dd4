"""A killed pretraining goes on from its last finished epoch, to the very weights of a run never stopped.

The kill is simulated by raising once the resumable state of epoch k is written (what a
SIGKILL between epochs leaves), or in the middle of an epoch (the state of the epoch before
is what is left). Tiny Digits, one torch thread: training is deterministic on CPU.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
from tiny_digits import same_state, tiny

import ssd.train as train
from ssd.checkpoint import read_checkpoint
from ssd.errors import UserError
from ssd.resume import NAME, read_state, write_state

SETTINGS = {"epochs": 4, "batch_size": 32, "lr": 1e-3}


class Killed(BaseException):
    """A kill: nothing in the code under test catches it."""


def run(out: Path | None, monkeypatch: pytest.MonkeyPatch, kill_after: int | None = None,
        kill_during: int | None = None, **settings: float) -> list[int]:
    """Pretrain into `out`; returns the epochs this call trained. `kill_after=k`: killed once
    epoch k's resumable state is written; `kill_during=k`: killed inside epoch k."""
    ran: list[int] = []
    real_fit = train.fit

    def fit(*args, on_epoch=None, on_state=None, **kw):  # noqa: ANN001, ANN002, ANN003, ANN202
        def epoch_hook(stats, model):  # noqa: ANN001, ANN202
            if stats.epoch == kill_during:
                raise Killed
            ran.append(stats.epoch)
            on_epoch(stats, model)

        def state_hook(state):  # noqa: ANN001, ANN202
            on_state(state)
            if state.epoch == kill_after:
                raise Killed

        return real_fit(*args, on_epoch=epoch_hook, on_state=state_hook if on_state else None, **kw)

    monkeypatch.setattr(train, "fit", fit)
    data, test = tiny("Digits")
    try:
        train.pretrain("ConvNet", "Digits", out=out, progress=False, log=None, train_data=data, test_data=test,
                       **{**SETTINGS, **settings})
    finally:
        monkeypatch.setattr(train, "fit", real_fit)
    return ran


def published(out: Path) -> tuple[dict, dict, list]:
    last, best = read_checkpoint(out / "last.pt")[0], read_checkpoint(out / "best.pt")[0]
    history = [{k: v for k, v in h.items() if k != "images_per_s"}
               for h in json.loads((out / "history.json").read_text())["history"]]
    return last, best, history


@pytest.mark.parametrize(("kill", "left"), [({"kill_after": 2}, [3, 4]), ({"kill_during": 3}, [3, 4]),
                                           ({"kill_after": 4}, [])])
def test_killed_pretraining_resumes_to_the_same_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str], one_thread: None,
                                                        kill: dict, left: list[int]) -> None:
    """Old: the restart trained all 4 epochs again from epoch 1 (same weights, twice the work).
    Killed after the last epoch, before publishing: nothing is trained again, only published."""
    assert run(tmp_path / "whole", monkeypatch) == [1, 2, 3, 4]
    out = tmp_path / "killed"
    with pytest.raises(Killed):
        run(out, monkeypatch, **kill)
    assert sorted(p.name for p in out.iterdir()) == [NAME]  # no best.pt/last.pt/history.json before the end
    with pytest.raises(UserError, match="unknown format"):
        read_checkpoint(out / NAME)  # the state is not a checkpoint anything could load as a model
    assert run(out, monkeypatch) == left
    assert f"resuming the pretraining after epoch {4 - len(left)}/4" in capsys.readouterr().err
    want, got = published(tmp_path / "whole"), published(out)
    assert same_state(want[0], got[0]) and same_state(want[1], got[1]) and want[2] == got[2]
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "history.json", "last.pt"]  # state removed
    assert read_checkpoint(out / "best.pt")[1]["complete"] is True


def test_state_of_other_settings_or_damaged_is_not_resumed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str], one_thread: None) -> None:
    """A state made with another learning rate is set aside (one line) and the run starts from
    epoch 1: its weights are those of a run with the new settings only. So is a damaged state."""
    out = tmp_path / "out"
    with pytest.raises(Killed):
        run(out, monkeypatch, kill_after=2, lr=3e-3)
    capsys.readouterr()
    with pytest.raises(Killed):
        run(out, monkeypatch, kill_after=1)  # with the default lr
    notes = [ln for ln in capsys.readouterr().err.splitlines() if NAME in ln]
    assert len(notes) == 1 and "other settings (schedule differ)" in notes[0] and "from epoch 1" in notes[0]
    (out / NAME).write_bytes((out / NAME).read_bytes()[:1000])  # a half-written copy
    assert run(out, monkeypatch) == [1, 2, 3, 4]
    assert "does not load" in capsys.readouterr().err
    assert run(tmp_path / "whole", monkeypatch) == [1, 2, 3, 4]
    assert same_state(published(out)[0], published(tmp_path / "whole")[0])


def _state_tensors(path: Path) -> dict:
    """The resumable state's tensors, read as stored (the checksummed layout holds the state as bytes)."""
    obj = read_state(path)
    return {"weight": obj["model"]["fc1.weight"], "generator": obj["generator"]}


@pytest.mark.parametrize(("part", "n"), [("weight", 40), ("generator", 400)])
def test_damaged_but_loadable_state_is_set_aside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str], one_thread: None,
                                                part: str, n: int) -> None:
    """Issue 21: 40 bytes of a weight or 400 bytes of the generator state flipped in resume.pt
    still loaded, resumed, and published a "complete" checkpoint that differed from an
    uninterrupted run. The state is checksummed as checkpoints are: set aside, from epoch 1."""
    from damage import flip_bytes_of

    out = tmp_path / "out"
    with pytest.raises(Killed):
        run(out, monkeypatch, kill_after=2)
    tensor = _state_tensors(out / NAME)[part]
    flip_bytes_of(out / NAME, tensor.contiguous().view(torch.uint8).numpy().tobytes()[:n], n)
    capsys.readouterr()
    assert run(out, monkeypatch) == [1, 2, 3, 4]
    err = capsys.readouterr().err
    assert "checksum" in err and "from epoch 1" in err
    assert run(tmp_path / "whole", monkeypatch) == [1, 2, 3, 4]
    assert same_state(published(out)[0], published(tmp_path / "whole")[0])


def test_fit_start_continues_the_loop(one_thread: None) -> None:
    """fit() alone: 2 epochs, then 2 more from the state it reported, equal 4 epochs at once."""
    from models import build_model
    from ssd.schedules import load_schedule

    data, _ = tiny("Digits")
    schedule = load_schedule("ConvNet", "Digits", **SETTINGS)
    torch.manual_seed(0)
    whole = build_model("ConvNet", data.info)
    torch.manual_seed(0)
    part = build_model("ConvNet", data.info)
    train.fit(whole, data, schedule, seed=1, progress=False)
    states: list = []
    try:
        train.fit(part, data, schedule, seed=1, progress=False, on_state=lambda s: states.append(s) or (
            s.epoch == 2 and (_ for _ in ()).throw(Killed)))
    except Killed:
        pass
    history = train.fit(part, data, schedule, seed=1, progress=False, start=states[-1])
    assert [h.epoch for h in history] == [3, 4] and same_state(whole.state_dict(), part.state_dict())


def test_state_from_another_kind_of_device_is_not_resumed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str], one_thread: None) -> None:
    """The loop's generator lives on the training device: a state whose generator is another
    device's (a CUDA generator's 16 bytes here, on a CPU run) starts again from epoch 1 with one line
    instead of failing in set_state."""
    out = tmp_path / "out"
    with pytest.raises(Killed):
        run(out, monkeypatch, kill_after=2)
    state = read_state(out / NAME)
    state["generator"] = torch.zeros(16, dtype=torch.uint8)
    buf = io.BytesIO()
    torch.save(state, buf)
    write_state(out / NAME, buf.getvalue())  # a well-formed state, checksum and all
    capsys.readouterr()
    assert run(out, monkeypatch) == [1, 2, 3, 4]
    assert "made on another kind of device; pretraining from epoch 1" in capsys.readouterr().err
