"""Pretraining: schedules, the training loop, checkpoints and the authors' command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import pretrain_model
from datasets import dataset_info, load_dataset
from ssd.checkpoint import load_model, read_checkpoint, save_checkpoint
from ssd.errors import UserError
from ssd.schedules import load_schedule
from ssd.train import pretrain

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("net", "dataset", "epochs", "milestones"),
    [
        ("ResNet18", "Cifar100", 200, (60, 120, 160)),
        ("ResNet18", "Cifar20", 40, (15, 30, 35)),
        ("ResNet18", "Cifar10", 20, (8, 12, 16)),
        ("ViT", "Cifar100", 8, (7,)),
        ("ViT", "Cifar10", 8, (7,)),
        ("ViT", "Cifar20", 9, (8,)),
    ],
)
def test_paper_schedules(net: str, dataset: str, epochs: int, milestones: tuple[int, ...]) -> None:
    s = load_schedule(net, dataset)
    assert (s.epochs, s.milestones, s.optimizer) == (epochs, milestones, "sgd")
    assert (s.momentum, s.weight_decay, s.gamma, s.warmup_epochs) == (0.9, 5e-4, 0.2, 1)


def test_warmup_is_one_linear_epoch_to_the_base_rate() -> None:
    s = load_schedule("ResNet18", "Cifar10", lr=0.1)
    steps = 10
    warm = [s.lr_at(0, i, steps) for i in range(steps)]
    assert warm == sorted(warm) and warm[-1] == pytest.approx(0.1) and max(warm) <= 0.1 + 1e-12
    assert s.lr_at(1, 0, steps) == pytest.approx(0.1)
    assert s.lr_at(8, 0, steps) == pytest.approx(0.1 * 0.2)
    assert s.lr_at(16, 0, steps) == pytest.approx(0.1 * 0.2**3)


def test_cli_overrides_win_over_the_schedule() -> None:
    s = load_schedule("ResNet18", "Cifar100", epochs=2, batch_size=7, lr=0.5, warmup_epochs=0)
    assert (s.epochs, s.batch_size, s.lr, s.warmup_epochs) == (2, 7, 0.5, 0)


def test_pretrain_digits_reaches_high_accuracy_and_saves_checkpoints(tmp_path: Path) -> None:
    lines: list[str] = []
    res = pretrain("ConvNet", "Digits", out=tmp_path, progress=False, log=lines.append, seed=0)
    assert res.test_acc >= 90.0, res.test_acc
    sched = load_schedule("ConvNet", "Digits")
    assert len(lines) == sched.epochs and all("test_acc" in ln and "img/s" in ln for ln in lines)
    for name in ("best.pt", "last.pt"):
        state, meta = read_checkpoint(tmp_path / name)
        assert meta["net"] == "ConvNet" and meta["dataset"] == "Digits" and meta["classes"] == 10
        assert {"epoch", "test_acc", "seed", "config", "code_version"} <= set(meta)
    _, last = read_checkpoint(tmp_path / "last.pt")
    assert last["epoch"] == sched.epochs and last["test_acc"] == pytest.approx(res.test_acc)
    model, meta = load_model(tmp_path / "last.pt")
    x = next(load_dataset("Digits", train=False).batches(16))[0]
    model.eval()
    res.model.eval()
    torch.testing.assert_close(model(x), res.model(x), rtol=0, atol=0)
    assert len(meta["sha256"]) == 64


def test_same_seed_gives_identical_weights_on_cpu() -> None:
    a = pretrain("ConvNet", "Digits", epochs=2, seed=3, progress=False, log=None).model.state_dict()
    b = pretrain("ConvNet", "Digits", epochs=2, seed=3, progress=False, log=None).model.state_dict()
    c = pretrain("ConvNet", "Digits", epochs=2, seed=4, progress=False, log=None).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_checkpoint_of_another_architecture_or_class_count_is_refused(tmp_path: Path) -> None:
    from models import build_model

    path = save_checkpoint(tmp_path / "c.pt", build_model("ConvNet", dataset_info("Digits")),
                           {"net": "ConvNet", "dataset": "Digits", "classes": 10})
    with pytest.raises(UserError, match="ConvNet with 10 classes.*ResNet18 with 10 classes"):
        load_model(path, net="ResNet18")
    with pytest.raises(UserError, match="ConvNet with 10 classes.*ConvNet with 3 classes"):
        load_model(path, net="ConvNet", num_classes=3)
    # a bare state dict of the wrong shape (the authors' format) is refused by strict loading
    torch.save(build_model("ConvNet", dataset_info("DigitsCoarse")).state_dict(), tmp_path / "bare.pth")
    with pytest.raises(UserError, match="does not fit"):
        load_model(tmp_path / "bare.pth", net="ConvNet", dataset="Digits")


def test_truncated_or_foreign_checkpoint_is_one_line(tmp_path: Path) -> None:
    from models import build_model

    good = save_checkpoint(tmp_path / "g.pt", build_model("ConvNet", dataset_info("Digits")), {"net": "ConvNet"})
    data = good.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "foreign.pt").write_text("not a checkpoint\n")
    for name in ("trunc.pt", "foreign.pt", "missing.pt"):
        with pytest.raises(UserError) as info:
            read_checkpoint(tmp_path / name)
        assert "\n" not in str(info.value) and name in str(info.value)


def _run(args: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / "pretrain_model.py"), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300, **kw)  # type: ignore[call-overload]


def test_authors_command_line_parses_verbatim() -> None:
    args = pretrain_model.build_parser().parse_args(
        "-net ResNet18 -dataset Cifar100 -classes 100 -gpu -b 64 -warm 1 -lr 0.1".split()
    )
    assert (args.net, args.dataset, args.classes, args.gpu, args.b, args.warm, args.lr) == (
        "ResNet18", "Cifar100", 100, True, 64, 1, 0.1)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_authors_command_without_a_gpu_is_one_line_exit_2() -> None:
    r = _run("-net ResNet18 -dataset Cifar100 -classes 100 -gpu -b 64 -warm 1 -lr 0.1".split())
    assert r.returncode == 2 and "CUDA is not available" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_missing_data_is_one_line_naming_path_and_flag(tmp_path: Path) -> None:
    r = _run(["-net", "ConvNet", "-dataset", "MNIST", "--data-root", str(tmp_path / "nowhere")])
    assert r.returncode == 2, r.stderr
    assert str(tmp_path / "nowhere") in r.stderr and "--download" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_wrong_class_count_is_refused() -> None:
    r = _run(["-net", "ConvNet", "-dataset", "Digits", "-classes", "100"])
    assert r.returncode == 2 and "has 10 classes" in r.stderr and "Traceback" not in r.stderr


def test_cli_pretrains_on_synthetic_cifar_in_torchvision_layout(synthetic_cifar_root: Path, tmp_path: Path) -> None:
    r = _run(["-net", "ConvNet", "-dataset", "Cifar20", "-classes", "20", "-b", "64", "-warm", "1", "-lr", "0.01",
              "--epochs", "1", "--data-root", str(synthetic_cifar_root), "--out", str(tmp_path), "--no-progress"])
    assert r.returncode == 0, r.stderr
    assert "epoch 1/1" in r.stdout and "test accuracy:" in r.stdout
    _, meta = read_checkpoint(tmp_path / "best.pt")
    assert meta["classes"] == 20 and meta["config"]["schedule"]["lr"] == 0.01


def test_training_with_progress_bars_raises_no_autograd_warning() -> None:
    """The progress bar printed the loss with float(loss) on a tensor that requires grad, which torch
    warns about ("Converting a tensor with requires_grad=True to a scalar") in every run with bars."""
    import warnings

    from models import build_model
    from ssd.train import fit

    info = dataset_info("Digits")
    data = load_dataset("Digits", train=False)  # 450 images: one short epoch
    model = build_model("ConvNet", info)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit(model, data, load_schedule("ConvNet", "Digits", epochs=1), progress=True)
