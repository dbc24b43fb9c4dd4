"""Results that are never silently wrong (issue 10): each test reproduces one defect of the old code.

Results files (damaged lines, duplicate keys, locks, modes, stale temporary files, claims),
checkpoints (unfinished pretraining, checksums, NaN weights, wrong dataset, malformed files)
and the retrained reference.
"""

from __future__ import annotations

import io
import os
import pickle
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from damage import zero_largest_tensor

from datasets import dataset_info
from models import build_model
from ssd.checkpoint import FORMAT, load_model, read_checkpoint, save_checkpoint
from ssd.errors import UserError
from ssd.results import append_row, read_rows
from ssd.summary import summarize
from ssd.utils import atomic_write_bytes

REPO = Path(__file__).resolve().parents[1]


def digits_convnet() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("ConvNet", dataset_info("Digits"))


# --- results files ---------------------------------------------------------------------------

def test_reading_skips_and_counts_bad_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Old: a non-UTF-8 byte crashed every reader; `null` became a None row; garbage was skipped silently."""
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"run_key": "a", "metrics": {}}\n\xff\xfe bad bytes\nnull\n[1, 2]\n{"run_key": "b", "metr\n'
                     b"garbage\n" b'{"run_key": "c", "metrics": {}}\n')
    rows = read_rows(path)
    assert [r["run_key"] for r in rows] == ["a", "c"]
    err = capsys.readouterr().err
    assert "skipped 5 unreadable line(s)" in err and "line 2, 3, 4, 5, 6" in err and "not UTF-8" in err
    assert path.read_bytes().count(b"\n") == 7  # reported, never deleted


def test_make_report_reads_a_damaged_file(tmp_path: Path) -> None:
    """Old: make_report died with a UnicodeDecodeError / AttributeError traceback."""
    path = tmp_path / "r.jsonl"
    path.write_bytes(b"\xff\nnull\n{trunc\n")
    proc = subprocess.run([sys.executable, "scripts/make_report.py", str(path), "--out", str(tmp_path / "rep")],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "skipped 3 unreadable line(s)" in proc.stderr
    assert (tmp_path / "rep" / "report.md").is_file()


def test_one_run_key_one_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Old: append_row appended a second row for the same key, and the summary counted it as a seed."""
    path = tmp_path / "r.jsonl"
    row = {"run_key": "k1", "task": "full_class", "method": "ssd", "seed": 0, "metrics": {"Df": 1.0}}
    append_row(path, row)
    with pytest.raises(UserError, match="already recorded"):
        append_row(path, {**row, "metrics": {"Df": 9.0}})
    assert len(path.read_text().splitlines()) == 1
    # a file an older version wrote with a duplicate: readers count the key once, and say so
    path.write_text(path.read_text() * 2 + '{"run_key": "k2", "task": "full_class", "method": "ssd", "seed": 1, '
                    '"metrics": {"Df": 3.0}}\n')
    rows = read_rows(path)
    assert [r["run_key"] for r in rows] == ["k1", "k2"] and "1 duplicate row(s)" in capsys.readouterr().err
    assert summarize(rows)[0]["n"] == 2


def test_no_lock_sidecar_normal_mode_and_stale_temps_swept(tmp_path: Path) -> None:
    """Old: a `.lock` file beside every results file, mode 0600 after the first append, and the
    `*.tmp` of a killed writer stayed forever."""
    path = tmp_path / "r.jsonl"
    dead = subprocess.Popen(["true"])
    dead.wait()
    live = subprocess.Popen(["sleep", "60"])
    try:
        stale = tmp_path / f".r.jsonl.{dead.pid}-0badf00d.tmp"
        busy = tmp_path / f".r.jsonl.{live.pid}-0badf00d.tmp"
        stale.write_bytes(b"half a row")
        busy.write_bytes(b"being written")
        append_row(path, {"run_key": "a"})
        append_row(path, {"run_key": "b"})
        assert not stale.exists() and busy.exists()  # a live writer's temporary file is left alone
    finally:
        live.kill()
        live.wait()
    busy.unlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.jsonl"]
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    path.chmod(0o640)
    append_row(path, {"run_key": "c"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_concurrent_appends_keep_every_row(tmp_path: Path) -> None:
    """The lock on the file itself (no sidecar) still serialises writers that replace the file."""
    path = tmp_path / "r.jsonl"
    code = ("import sys; from ssd.results import append_row\n"
            "for i in range(15): append_row(sys.argv[1], {'run_key': f'{sys.argv[2]}-{i}'})\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path), f"p{j}"], cwd=REPO) for j in range(3)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    keys = [r["run_key"] for r in read_rows(path)]
    assert len(keys) == 45 and len(set(keys)) == 45


def test_claims_split_work_between_processes(tmp_path: Path) -> None:
    """A unit claimed by a live process is "busy" for others; a dead owner's claim is taken over;
    a unit whose keys are all recorded is "done"; the claims folder goes when empty."""
    from ssd.results import claim, claims_dir, release

    path = tmp_path / "r.jsonl"
    live = subprocess.Popen(["sleep", "60"])
    try:
        claims_dir(path).mkdir(parents=True)
        (claims_dir(path) / "cell-1").write_text(f"{os.uname().nodename} {live.pid}\n")
        assert claim(path, "cell-1") == "busy"
    finally:
        live.kill()
        live.wait()
    assert claim(path, "cell-1") == "ok"  # its owner died: taken over
    release(path, "cell-1")
    append_row(path, {"run_key": "x"})
    assert claim(path, "cell-2", ["x"]) == "done"
    assert claim(path, "cell-3", ["x", "y"]) == "ok"
    release(path, "cell-3")
    assert not claims_dir(path).exists()


# --- checkpoints -----------------------------------------------------------------------------

def test_killed_pretraining_publishes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Old: best.pt/last.pt were written every epoch, so a kill at epoch 2 of 30 left a best.pt
    that the suite then used as if finished."""
    import ssd.train as train

    real_fit = train.fit

    def killed_fit(*args, on_epoch=None, **kw):  # noqa: ANN001, ANN002, ANN003
        def hook(stats, model):  # noqa: ANN001
            on_epoch(stats, model)
            if stats.epoch == 2:
                raise KeyboardInterrupt  # the kill, after epoch 2's bookkeeping
        return real_fit(*args, on_epoch=hook, **kw)

    monkeypatch.setattr(train, "fit", killed_fit)
    with pytest.raises(KeyboardInterrupt):
        train.pretrain("ConvNet", "Digits", epochs=4, out=tmp_path, progress=False, log=None)
    assert [p.name for p in tmp_path.iterdir()] == ["resume.pt"]  # resumable state only, no checkpoint
    monkeypatch.setattr(train, "fit", real_fit)
    train.pretrain("ConvNet", "Digits", epochs=2, out=tmp_path, progress=False, log=None)
    from ssd.checkpoint import unfinished

    state, meta = read_checkpoint(tmp_path / "best.pt")
    assert meta["complete"] is True and unfinished(tmp_path / "best.pt", meta) is None
    assert read_checkpoint(tmp_path / "last.pt")[1]["epoch"] == 2


def test_suite_pretrains_again_over_an_unfinished_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A best.pt an older version left at epoch 2 of 30 (no history.json) is not used: re-pretrained."""
    import ssd.suite as suite
    import ssd.train as train

    path = tmp_path / "best.pt"
    meta = {"net": "ConvNet", "dataset": "Digits", "classes": 10, "epoch": 2,
            "config": {"schedule": {"epochs": 30}}}
    save_checkpoint(path, digits_convnet(), meta)
    with pytest.raises(UserError, match="unfinished pretraining"):
        load_model(path, net="ConvNet", dataset="Digits")
    calls = []
    monkeypatch.setattr(train, "pretrain", lambda *a, **k: calls.append(k["out"]) or pytest.skip("stubbed"))
    with pytest.raises(pytest.skip.Exception):
        suite.ensure_checkpoint(path, "ConvNet", "Digits", "cpu", None, False, progress=False)
    assert calls == [tmp_path]


def test_suite_reads_a_checkpoints_metadata_without_its_weights(tmp_path: Path) -> None:
    """`ensure_checkpoint` needs the metadata only: `read_meta` maps the file and reads no tensor
    bytes, so it neither hashes nor scans the weights (zeroed weights pass it; `read_checkpoint`,
    which every run's load goes through, still refuses them). Catches a `read_meta` that loads and
    checks every tensor, and one that skips the structural checks. A legacy (non-zip) file is read whole."""
    from ssd.checkpoint import read_meta
    from ssd.suite import ensure_checkpoint

    path = tmp_path / "best.pt"
    meta = {"net": "ConvNet", "dataset": "Digits", "classes": 10, "complete": True, "model_options": {}}
    save_checkpoint(path, digits_convnet(), meta)
    assert read_meta(path) == read_checkpoint(path)[1] == meta
    zero_largest_tensor(path)
    assert read_meta(path) == meta
    ensure_checkpoint(path, "ConvNet", "Digits", "cpu", None, False, progress=False)  # finished: nothing to do
    with pytest.raises(UserError, match="damaged"):
        read_checkpoint(path)
    legacy = tmp_path / "legacy.pth"
    torch.save(digits_convnet().state_dict(), legacy, _use_new_zipfile_serialization=False)
    assert read_meta(legacy) == {}
    bad = tmp_path / "bad.pt"
    torch.save({"format": FORMAT, "state_dict": {}, "meta": {}}, bad)
    with pytest.raises(UserError, match="malformed"):
        read_meta(bad)
    (tmp_path / "junk.pt").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(UserError, match="not loaded"):
        read_meta(tmp_path / "junk.pt")


@pytest.mark.parametrize("damage", ["zeroed", "nan", "dataset", "no_state", "wrong_types", "meta_list"])
def test_bad_checkpoints_are_refused(tmp_path: Path, damage: str) -> None:
    """Old: zeroed bytes and NaN weights loaded silently, another dataset's checkpoint was used,
    and malformed files gave KeyError/AttributeError tracebacks."""
    path = tmp_path / "c.pt"
    model = digits_convnet()
    meta = {"net": "ConvNet", "dataset": "Digits", "classes": 10, "complete": True}
    if damage == "zeroed":
        save_checkpoint(path, model, meta)
        zero_largest_tensor(path)
        want = "damaged"
    elif damage == "nan":
        with torch.no_grad():
            next(model.parameters())[0] = float("nan")
        save_checkpoint(path, model, meta)
        want = "NaN or infinite"
    elif damage == "dataset":
        save_checkpoint(path, model, {**meta, "dataset": "MNIST"})  # MNIST and Digits both: 10 classes, 1 channel
        want = "trained on MNIST"
    else:
        obj = {"no_state": {"format": FORMAT, "meta": meta},
               "wrong_types": {"format": FORMAT, "state_dict": [1, 2], "meta": meta},
               "meta_list": {"format": FORMAT, "state_dict": model.state_dict(), "meta": [1]}}[damage]
        torch.save(obj, path)
        want = "malformed"
    with pytest.raises(UserError, match=want):
        load_model(path, net="ConvNet", dataset="Digits")


def test_weights_only_refusal_says_not_loaded(tmp_path: Path) -> None:
    """Old: "truncated or not a PyTorch checkpoint (Weights only load failed. This file can still be lo…"."""
    path = tmp_path / "evil.pt"
    buf = io.BytesIO()
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": _Payload()}, buf)
    path.write_bytes(buf.getvalue())
    with pytest.raises(UserError) as err:
        read_checkpoint(path)
    text = str(err.value)
    assert "not a plain checkpoint" in text and "was not loaded" in text and "truncated" not in text
    assert text.endswith("was not loaded")


class _Payload:
    def __reduce__(self):  # noqa: ANN204
        return (print, ("this would have run",))


def test_retrained_reference_is_checked_and_rebuilt(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    task_setup) -> None:  # noqa: ANN001
    """Old: a damaged retrained reference was loaded as it was and ActDist measured against it."""
    import dataclasses

    from ssd.experiment import Session

    model, splits = task_setup["full_class"]
    splits = dataclasses.replace(splits, model_factory=digits_convnet)
    session = Session(tmp_path)
    session.save_retrained("ConvNet", splits, model, {})
    zero_largest_tensor(session.retrained_path("ConvNet", splits.context["split_hash"]))
    fresh, rebuilt = Session(tmp_path), []
    got = fresh.load_retrained("ConvNet", splits, lambda settings: rebuilt.append(settings) or fresh.save_retrained(
        "ConvNet", splits, model, {}))
    assert rebuilt == [{}] and "unusable" in capsys.readouterr().err
    assert got is not None and all(torch.equal(a, b) for a, b in zip(got.state_dict().values(),
                                                                       model.state_dict().values(), strict=True))


def test_checkpoint_pickle_protocol_still_refuses_objects(tmp_path: Path) -> None:
    """Guard: a plain pickle (not torch's zip) holding code is refused the same way."""
    path = tmp_path / "old.pt"
    path.write_bytes(pickle.dumps({"w": _Payload()}))
    with pytest.raises(UserError, match="was not loaded"):
        read_checkpoint(path)


def test_atomic_write_leaves_no_temp_on_failure(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        atomic_write_bytes(tmp_path / "x.bin", 12345)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_a_cell_held_by_another_live_suite_is_left_to_it(tmp_path: Path) -> None:
    """Two suites on one results file: a job whose cell another live driver holds returns no rows
    (that driver runs it); a free cell is claimed and run; claims go when the driver releases them."""
    from ssd.backends.claims import ClaimedPayload, run_claimed
    from ssd.results import claim, claims_dir, me, release_all

    path = tmp_path / "r.jsonl"
    other = subprocess.Popen(["sleep", "60"])
    ran: list[str] = []
    try:
        assert claim(path, "cell-a", owner=(me()[0], other.pid)) == "ok"
        job = lambda session, spec: ran.append(spec) or [{"run_key": spec}]  # noqa: E731
        assert run_claimed(None, ClaimedPayload("k1", job, str(path), "cell-a", "k1", me())) == []
        assert run_claimed(None, ClaimedPayload("k2", job, str(path), "cell-b", "k2", me())) == [{"run_key": "k2"}]
        assert run_claimed(None, ClaimedPayload("k3", job, str(path), "cell-b", "k3", me())) == [{"run_key": "k3"}]
        assert ran == ["k2", "k3"]
        release_all(path)
        assert sorted(p.name for p in claims_dir(path).iterdir()) == ["cell-a"]
    finally:
        other.kill()
        other.wait()
    release_all(path)  # the other driver died: its claim is dropped too
    assert not claims_dir(path).exists()
