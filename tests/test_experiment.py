"""The experiment pipeline end to end: the three mains, results rows, wandb, suite resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import forget_class_main
import forget_full_class_main
import forget_random_main
from ssd.errors import UserError
from ssd.results import append_row, read_rows
from ssd.train import pretrain
from ssd.utils import sha256_file

REPO = Path(__file__).resolve().parents[1]
ROW_KEYS = {"run_key", "metrics", "config", "split_hash", "seed", "checkpoint_sha256", "code_version", "method"}


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory: pytest.TempPathFactory, synthetic_cifar_root: Path) -> dict[str, Path]:
    """ConvNet checkpoints on synthetic CIFAR-10/100/20 and on Digits (short schedules)."""
    out = {}
    for ds in ("Cifar10", "Cifar100", "Cifar20", "Digits"):
        d = tmp_path_factory.mktemp(ds)
        root = None if ds == "Digits" else synthetic_cifar_root
        pretrain("ConvNet", ds, data_root=root, epochs=2 if ds != "Digits" else 8, out=d, progress=False, log=None)
        out[ds] = d / "best.pt"
    return out


def _check_row(row: dict, ckpt: Path, results: Path) -> None:
    assert ROW_KEYS <= set(row)
    assert row["checkpoint_sha256"] == sha256_file(ckpt)
    assert len(row["split_hash"]) == 64
    assert row["config"]["method"]["seed"] == row["seed"]
    assert read_rows(results)[-1]["run_key"] == row["run_key"]
    for k in ("Df", "DrTest", "TestAcc", "MIA", "ZRF", "MethodTime", "EvalTime"):
        assert k in row["metrics"]


def test_full_class_main_authors_flags(ckpts: dict[str, Path], synthetic_cifar_root: Path, tmp_path: Path) -> None:
    res = tmp_path / "r.jsonl"
    row = forget_full_class_main.main([
        "-net", "ConvNet", "-weight_path", str(ckpts["Cifar100"]), "-dataset", "Cifar100", "-classes", "100",
        "-b", "64", "-method", "finetune", "-forget_class", "rocket", "-epochs", "1", "-seed", "3",
        "--data-root", str(synthetic_cifar_root), "--results", str(res), "--logger", "none"])
    _check_row(row, ckpts["Cifar100"], res)
    assert (row["task"], row["forget_class"], row["forget_class_name"], row["seed"]) == ("full_class", 69, "rocket", 3)
    assert row["config"]["method"]["epochs"] == 1 and row["config"]["method"]["batch_size"] == 64


def test_sub_class_main_forgets_a_fine_class_scored_on_coarse(ckpts: dict[str, Path], synthetic_cifar_root: Path,
                                                              tmp_path: Path) -> None:
    res = tmp_path / "r.jsonl"
    row = forget_class_main.main([
        "-net", "ConvNet", "-weight_path", str(ckpts["Cifar20"]), "-dataset", "Cifar20", "-classes", "20",
        "-method", "baseline", "-forget_class", "rocket", "--data-root", str(synthetic_cifar_root),
        "--results", str(res), "--logger", "none"])
    _check_row(row, ckpts["Cifar20"], res)
    assert (row["task"], row["forget_class_name"]) == ("sub_class", "rocket")
    assert row["n_forget"] == 20 and row["n_retain"] == 99 * 20  # synthetic: 20 images per fine class


def test_random_main_forgets_exactly_n(ckpts: dict[str, Path], synthetic_cifar_root: Path, tmp_path: Path) -> None:
    res = tmp_path / "r.jsonl"
    row = forget_random_main.main([
        "-net", "ConvNet", "-weight_path", str(ckpts["Cifar10"]), "-dataset", "Cifar10", "-classes", "10",
        "-method", "baseline", "--n-forget", "37", "--data-root", str(synthetic_cifar_root),
        "--results", str(res), "--logger", "none"])
    _check_row(row, ckpts["Cifar10"], res)
    assert row["n_forget"] == 37 and row["forget_class"] is None


def test_wandb_sink_runs_offline_without_an_account(ckpts: dict[str, Path], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc → no account
    from ssd.loggers import wandb_mode

    assert wandb_mode() == "offline"
    res = tmp_path / "out" / "r.jsonl"
    forget_full_class_main.main([
        "-net", "ConvNet", "-weight_path", str(ckpts["Digits"]), "-dataset", "Digits", "-method", "baseline",
        "-forget_class", "2", "--results", str(res), "--logger", "wandb"])
    runs = list((tmp_path / "out" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1


def _cli(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / script), *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-method", "baseline"], "required: -forget_class"),
        (["-method", "nope", "-forget_class", "2"], "choose one of"),
        (["-method", "finetune", "-forget_class", "2", "--alpha", "3"], "has no alpha"),
        (["-method", "baseline", "-forget_class", "eleven"], "unknown class"),
    ],
)
def test_main_errors_are_one_line_exit_2(ckpts: dict[str, Path], tmp_path: Path, args: list[str],
                                         message: str) -> None:
    r = _cli("forget_full_class_main.py", "-net", "ConvNet", "-weight_path", str(ckpts["Digits"]),
             "-dataset", "Digits", "--logger", "none", "--results", str(tmp_path / "r.jsonl"), *args)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_append_is_atomic_a_crash_leaves_no_partial_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "r.jsonl"
    append_row(path, {"run_key": "a", "metrics": {"x": float("nan")}})
    before = path.read_bytes()

    real_write = os.write

    def crash(fd: int, data: bytes) -> int:  # interrupted half-way through the row's write
        real_write(fd, data[: len(data) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr("ssd.results.os.write", crash)
    with pytest.raises(KeyboardInterrupt):
        append_row(path, {"run_key": "b", "metrics": {}})
    assert path.read_bytes() == before
    assert [r["run_key"] for r in read_rows(path)] == ["a"] and read_rows(path)[0]["metrics"]["x"] is None
    assert json.loads(before)  # NaN stored as null: valid JSON everywhere


def test_suite_resumes_and_a_second_run_does_nothing(ckpts: dict[str, Path], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from ssd.suite import run_suite

    suite = tmp_path / "tiny.toml"
    results = tmp_path / "tiny.jsonl"
    suite.write_text(f"""
results = "{results}"
seeds = [0, 1]
methods = ["baseline", "finetune"]
nets = ["ConvNet"]
[[tasks]]
task = "full_class"
dataset = "Digits"
classes = ["2"]
[[tasks]]
task = "random"
dataset = "Digits"
n_forget = 25
[[sweeps]]
task = "full_class"
dataset = "Digits"
forget_class = "2"
alphas = [1, 100]
baseline_alphas = [0.1]
methods = ["ssd", "global_dampening"]
[checkpoints]
"ConvNet/Digits" = "{ckpts['Digits']}"
""")
    args = ["--suite", str(suite), "--no-progress", "--cache-dir", str(tmp_path / "cache"), "--no-report"]
    first = run_suite(args)
    sweep_rows = [r for r in read_rows(results) if "sweep" in r]
    assert len(first) == 8 and len(read_rows(results)) == 8 + len(sweep_rows)
    assert [r["method"] for r in sweep_rows] == ["baseline", "ssd", "ssd", "global_dampening"]
    out = capsys.readouterr()
    assert "baseline" in out.out and "± " in out.out
    lines = results.read_text().splitlines()
    results.write_text("\n".join(lines[:5]) + "\n")  # as if killed after 5 runs (before the sweeps)
    run_suite(args)
    assert "5 already in" in capsys.readouterr().err and len(read_rows(results)) == 8 + len(sweep_rows)
    run_suite(args)
    err = capsys.readouterr().err
    assert "8 already in" in err and ", 0 to run" in err and "[suite] sweep" not in err
    assert len(read_rows(results)) == 8 + len(sweep_rows)


def test_paper_suite_grid_dry_run(capsys: pytest.CaptureFixture[str], synthetic_cifar_root: Path,
                                  tmp_path: Path) -> None:
    """The paper grid: 2 nets × (5 + 5 full-class + 5 sub-class classes + 1 random) × 5 seeds × 13 methods.
    The dry run also checks what the grid needs: CIFAR under the data root (loaded as a run would),
    the ViT ImageNet folder; a missing need is a MISSING line and exit code 2, before any work."""
    from ssd.suite import run_suite

    with pytest.raises(UserError, match="needs are missing"):
        run_suite(["--suite", "paper", "--dry-run", "--data-root", str(synthetic_cifar_root),
                   "--results", str(tmp_path / "paper.jsonl")])
    out = capsys.readouterr().out
    assert "ok      data Cifar100: loads" in out and "ok      data Cifar10: loads" in out
    assert "MISSING ViT ImageNet weights" in out  # weights/vit-base-patch16-224 is not in a clone
    with pytest.raises(UserError, match="needs are missing"):
        run_suite(["--suite", "paper", "--dry-run", "--data-root", str(tmp_path / "empty"), "--methods", "ssd",
                   "--nets", "ResNet18"])
    assert "MISSING data Cifar20: Cifar20 data not found" in capsys.readouterr().out
    with pytest.raises(UserError):
        run_suite(["--suite", "paper", "--dry-run"])
    out = capsys.readouterr().out
    assert "2080 runs in total on cuda" in out
    assert "sub_class  Cifar20      ResNet18  ssd                 25 runs" in out
    assert "checkpoint ViT/Cifar100: checkpoints/ViT-Cifar100-seed0/best.pt" in out


def test_checkpoint_of_another_net_exits_2_naming_both(ckpts: dict[str, Path], tmp_path: Path) -> None:
    r = _cli("forget_full_class_main.py", "-net", "ResNet18", "-weight_path", str(ckpts["Digits"]), "-dataset",
             "Digits", "-method", "baseline", "-forget_class", "2", "--logger", "none",
             "--results", str(tmp_path / "r.jsonl"))
    assert r.returncode == 2 and "ConvNet with 10 classes" in r.stderr and "ResNet18" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_activation_distance_uses_a_retrained_model_from_an_earlier_process(ckpts: dict[str, Path],
                                                                          tmp_path: Path) -> None:
    """ActDist needs the retrained model of the same split: kept in the cache folder across runs."""
    common = ["-net", "ConvNet", "-weight_path", str(ckpts["Digits"]), "-dataset", "Digits", "-forget_class", "2",
              "--logger", "none", "--results", str(tmp_path / "r.jsonl"), "--cache-dir", str(tmp_path / "cache")]
    first = forget_full_class_main.main([*common, "-method", "baseline"])
    assert "ActDist" not in first["metrics"]
    forget_full_class_main.main([*common, "-method", "retrain", "-epochs", "2"])
    # the same run again is "already recorded" (one run key, one row): score it into another results file
    again = forget_full_class_main.main([*common, "-method", "baseline", "-seed", "0",
                                         "--results", str(tmp_path / "r2.jsonl")])
    assert again["metrics"]["ActDist"] > 0
    other_seed = forget_full_class_main.main([*common, "-method", "baseline", "-seed", "1"])
    assert "ActDist" not in other_seed["metrics"]  # another seed is another split
