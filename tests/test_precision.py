"""Precision, memory format and peak memory (ssd/precision.py): what a run computes in, what its
key and row say, and that a CPU run in the default setting is what it was before the setting."""

from __future__ import annotations

import dataclasses
import mmap
from pathlib import Path

import pytest
import torch
from torch import nn

from ssd import precision as prec
from ssd.errors import UserError
from ssd.experiment import RunSpec, Session, key_from_fields, method_config, run_one, spec_key
from ssd.importance import compute_importances
from ssd.train import pretrain

SHA = "cd" * 32


def _spec(**kw: object) -> RunSpec:
    base = {"task": "full_class", "net": "ConvNet", "dataset": "Digits", "weight_path": "w.pt", "method": "ssd",
            "forget_class": "2"}
    return RunSpec(**{**base, **kw})  # type: ignore[arg-type]


def _key(spec: RunSpec) -> str:
    return spec_key(spec, method_config(spec.method, spec), SHA)


def test_default_cpu_runs_keep_their_keys_and_effective_settings_are_keyed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A row written before the setting existed (no precision/channels_last in its config) keys as
    today's default CPU run, and as the key rules without the setting key it; tf32 and channels_last
    off CUDA are the same run; bf16 is another run, and so is a CUDA run in its default (tf32)
    against a CUDA fp32 one."""
    plain = _spec()
    old = {k: v for k, v in dataclasses.asdict(plain).items() if k not in ("precision", "channels_last")}
    cfg = dataclasses.asdict(method_config("ssd", plain))
    assert key_from_fields(old, cfg, SHA) == _key(plain)
    with monkeypatch.context() as m:  # the key rules as they were before the setting existed
        m.setattr(prec, "key_fields", lambda run: {})
        before = key_from_fields(old, cfg, SHA)
    assert before == _key(plain)
    assert _key(_spec(precision="fp32")) == _key(plain) == _key(_spec(precision="tf32"))
    assert _key(_spec(channels_last=True)) == _key(plain)
    assert _key(_spec(precision="bf16")) != _key(plain)
    assert _key(_spec(device="cuda", precision="fp32")) == _key(plain)  # the device alone never keys
    cuda = _key(_spec(device="cuda"))
    assert cuda != _key(plain) and cuda == _key(_spec(device="cuda", precision="tf32"))
    assert _key(_spec(device="cuda", channels_last=True)) != cuda
    assert prec.key_fields({"device": "cuda:1", "precision": None}) == {"precision": "tf32"}


def test_effective_precision_and_refusals() -> None:
    assert [prec.effective_precision(p, "cpu") for p in (None, "fp32", "tf32", "bf16")] == ["fp32", "fp32", "fp32",
                                                                                            "bf16"]
    assert [prec.effective_precision(p, "cuda") for p in (None, "fp32", "tf32", "bf16")] == ["tf32", "fp32", "tf32",
                                                                                             "bf16"]
    with pytest.raises(UserError, match="fp16"):
        prec.check_precision("fp16")


def test_cpu_default_scope_changes_nothing_and_bf16_autocasts() -> None:
    layer = nn.Linear(8, 4)
    x = torch.randn(2, 8)
    flags = prec.set_flags({})  # nothing set: reads nothing
    assert flags == {}
    with prec.precision_scope(None, "cpu") as eff:
        assert eff == "fp32" and not torch.is_autocast_enabled("cpu")
        assert layer(x).dtype == torch.float32
    with prec.precision_scope("bf16", "cpu") as eff:
        assert eff == "bf16" and layer(x).dtype == torch.bfloat16
        with prec.importance_scope("cpu"):
            assert layer(x).dtype == torch.float32
    assert not torch.is_autocast_enabled("cpu") and layer(x).dtype == torch.float32
    with prec.precision_scope("bf16", "cpu"):  # one region spans a whole method: weights edited in it are seen
        layer(x)
        with torch.no_grad():
            layer.weight.zero_()
        assert torch.equal(layer(x).float(), layer.bias.to(torch.bfloat16).float().expand(2, 4))


def test_bf16_training_learns(one_thread: None) -> None:
    """Three epochs on Digits in bf16 reach what fp32 reaches (measured 86.2 % vs 87.2 % train
    accuracy); with autocast's weight cache over the whole run it stayed at 7 % (the first step's
    weights were used for every forward)."""
    half = pretrain("ConvNet", "Digits", epochs=3, out=None, progress=False, log=None, precision="bf16")
    assert half.history[-1].train_acc > 70.0 and half.history[-1].loss < 1.0


def test_cuda_switches_are_set_inside_and_restored_after() -> None:
    """The CUDA branch runs here too (the switches are process-wide flags; tf32 has no autocast)."""
    names = ("matmul.allow_tf32", "cudnn.allow_tf32", "cudnn.benchmark")
    before = prec.set_flags(dict.fromkeys(names, False))
    try:
        with prec.precision_scope(None, "cuda"):
            assert prec.set_flags({}) == {} and torch.backends.cuda.matmul.allow_tf32
            assert torch.backends.cudnn.allow_tf32 and torch.backends.cudnn.benchmark
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.benchmark
        torch.backends.cudnn.allow_tf32 = True
        with prec.precision_scope("fp32", "cuda"):
            assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert torch.backends.cudnn.allow_tf32
        with prec.precision_scope("tf32", "cuda"):  # importances: true float32 on CUDA too
            assert torch.backends.cuda.matmul.allow_tf32
            with prec.importance_scope("cuda"):
                assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
                assert not torch.is_autocast_enabled("cuda")
            assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        with prec.precision_scope(None, "cpu"):  # CPU: no switch touched
            assert torch.backends.cudnn.allow_tf32 and not torch.backends.cudnn.benchmark
    finally:
        prec.set_flags(before)
    assert prec.cuda_flags("bf16") == {"matmul.allow_tf32": True, "cudnn.allow_tf32": True, "cudnn.benchmark": True}
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):  # a caller that used torch's newer TF32 API
        torch.backends.cuda.matmul.fp32_precision = "tf32"
        with prec.precision_scope("fp32", "cuda"):
            assert not torch.backends.cuda.matmul.allow_tf32
        assert torch.backends.cuda.matmul.allow_tf32
        prec.set_flags(before)


def test_channels_last_only_on_cuda() -> None:
    def conv() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())

    fmt = torch.channels_last
    assert prec.memory_format(conv(), True, "cpu")[0].weight.is_contiguous()
    assert not prec.memory_format(conv(), False, "cuda")[0].weight.is_contiguous(memory_format=fmt)
    assert prec.memory_format(conv(), True, "cuda")[0].weight.is_contiguous(memory_format=fmt)


def test_importances_stay_float32_inside_a_bf16_run(trained: tuple[nn.Module, object]) -> None:
    """SSD's importances are the same numbers in a bf16 run as in an fp32 one (docs/precision.md)."""
    model, splits = trained
    forget = splits.forget  # type: ignore[attr-defined]
    fp32 = compute_importances(model, forget, batch_size=32)
    with prec.precision_scope("bf16", "cpu"):
        inside = compute_importances(model, forget, batch_size=32)
    assert all(torch.equal(fp32[n], inside[n]) for n in fp32)


def test_peak_memory_is_the_windows_own_peak() -> None:
    """The RSS peak is reset at entry: a window that allocates 64 MiB reports at least that much
    more than the process held before, and a later window that allocates nothing reports less."""
    if not prec.reset_rss_peak():
        pytest.skip("this kernel does not let a process reset its RSS peak (/proc/self/clear_refs)")
    start, _ = prec.rss_peak_bytes()
    with prec.PeakMemory("cpu") as big:
        # fresh anonymous pages, every one touched: torch.ones could reuse heap pages already
        # resident from earlier tests (glibc raises its mmap threshold after a big free), and then
        # the RSS would not grow by the block's size (seen in a full test run)
        block = mmap.mmap(-1, 64 * 2**20)
        for offset in range(0, len(block), 4096):
            block[offset] = 1
        block.close()
    with prec.PeakMemory("cpu") as small:
        pass
    assert big.record()["kind"] == "rss" and big.record()["since"] == "run"
    assert big.bytes >= start + 60 * 2**20
    assert small.bytes < big.bytes - 48 * 2**20


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("digits_convnet")
    pretrain("ConvNet", "Digits", epochs=3, out=out, progress=False, log=None)
    return out / "best.pt"


def test_rows_record_precision_and_peak_memory(ckpt: Path, tmp_path: Path, one_thread: None) -> None:
    """Default CPU rows say fp32 and keep the pre-setting key; a bf16 run (autocast on CPU) runs
    the method and its evaluation in bf16, says so, keys apart and scores differently."""
    session = Session(tmp_path / "cache")
    spec = _spec(weight_path=str(ckpt), method="finetune", overrides={"epochs": 1}, retain_eval_size=200)
    row = run_one(spec, session)
    assert (row["precision"], row["channels_last"]) == ("fp32", False)
    assert row["peak_memory"]["kind"] == "rss" and row["peak_memory"]["mb"] > 10
    old = {k: v for k, v in row["config"]["run"].items() if k not in ("precision", "channels_last")}
    assert key_from_fields(old, row["config"]["method"], row["checkpoint_sha256"]) == row["run_key"]
    half = run_one(dataclasses.replace(spec, precision="bf16"), session)
    assert half["precision"] == "bf16" and half["run_key"] != row["run_key"]
    assert half["metrics"]["DrTest"] != row["metrics"]["DrTest"] or half["metrics"]["Df"] != row["metrics"]["Df"]


def test_flags_reach_the_row_and_nonsense_is_refused(ckpt: Path, tmp_path: Path, one_thread: None) -> None:
    import forget_full_class_main
    from ssd.suite.file import check_suite

    row = forget_full_class_main.main([
        "-net", "ConvNet", "-weight_path", str(ckpt), "-dataset", "Digits", "-method", "ssd", "-forget_class", "2",
        "--precision", "bf16", "--channels-last", "--retain-eval-size", "200", "--results", str(tmp_path / "r.jsonl"),
        "--cache-dir", str(tmp_path / "cache"), "--logger", "none"])
    assert (row["precision"], row["channels_last"]) == ("bf16", False)  # channels_last: CUDA only
    assert row["config"]["run"]["precision"] == "bf16"
    suite = {"tasks": [{"task": "full_class", "dataset": "Digits", "classes": ["2"]}]}
    check_suite({**suite, "precision": "bf16", "channels_last": True}, "s.toml")
    for bad, why in (({"precision": "fp16"}, "precision must be one of"), ({"channels_last": "yes"}, "true or false")):
        with pytest.raises(UserError, match=why):
            check_suite({**suite, **bad}, "s.toml")


def test_the_suite_key_reaches_every_run_of_the_grid() -> None:
    from ssd.suite import apply_sets, build_grid, load_suite
    from tests.test_quick_suite import grid_args

    plain = build_grid(load_suite("quick"), grid_args())
    half = build_grid(apply_sets(load_suite("quick"), ["precision=bf16", "channels_last=true"]), grid_args())
    assert {(s.precision, s.channels_last) for s in plain} == {(None, False)}
    assert {(s.precision, s.channels_last) for s in half} == {("bf16", True)}
    assert {_key(s) for s in half}.isdisjoint(_key(s) for s in plain)


def test_retrained_references_are_kept_per_precision(ckpt: Path, tmp_path: Path, one_thread: None) -> None:
    """A bf16 retrain is the reference of bf16 runs only: fp32 runs (whose file name is unchanged)
    never score against it, in this session or from the cache folder."""
    from ssd.experiment import build_splits

    session = Session(tmp_path / "cache")
    spec = _spec(weight_path=str(ckpt), method="retrain", overrides={"epochs": 1}, retain_eval_size=200,
                 precision="bf16")
    run_one(spec, session)
    files = sorted(p.name for p in (tmp_path / "cache" / "retrained").glob("*.pt"))
    assert len(files) == 1 and files[0].endswith("-bf16.pt")
    _, meta = session.model(spec)
    for fresh in (session, Session(tmp_path / "cache")):
        fp32 = build_splits(dataclasses.replace(spec, precision=None), fresh, meta["sha256"], meta)
        assert fresh.load_retrained("ConvNet", fp32, lambda _s: None) is None
        half = build_splits(spec, fresh, meta["sha256"], meta)
        assert fresh.load_retrained("ConvNet", half, lambda _s: None) is not None
    assert session.retrained_path("ConvNet", "ab" * 32).name == "ConvNet-" + "ab" * 12 + ".pt"


def test_cuda_peak_is_the_allocators_peak_after_a_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CUDA branch, with torch.cuda's counters faked: reset on entry, read on exit."""
    calls: list[str] = []
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda dev=None: calls.append(f"reset {dev}"))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated",
                        lambda dev=None: calls.append(f"read {dev}") or 3 * 2**30)
    with prec.PeakMemory("cuda:1") as peak:
        assert calls == ["reset cuda:1"]
    assert calls == ["reset cuda:1", "read cuda:1"]
    assert peak.record() == {"mb": 3072.0, "kind": "cuda_allocated", "since": "run"}
