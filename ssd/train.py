"""The training loop (pretraining, retraining, fine-tuning) and `pretrain`, the work behind
pretrain_model.py. Data is on the device as uint8; batches are augmented there."""

from __future__ import annotations

import copy
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from datasets import ImageData, balanced_subset, dataset_info, device_generator, load_dataset
from models import build_model
from ssd.checkpoint import save_checkpoint
from ssd.errors import UserError
from ssd.metrics import accuracy, predict_logits
from ssd.precision import key_fields as precision_key_fields
from ssd.precision import memory_format, precision_scope
from ssd.resume import NAME as RESUME_NAME
from ssd.resume import FitState, global_rng, load_state, save_state, set_global_rng, settings_of
from ssd.schedules import Schedule, load_schedule
from ssd.utils import (
    atomic_write_bytes,
    check_writable,
    code_version,
    resolve_device,
    seed_everything,
    synchronize,
)


@dataclass
class EpochStats:
    epoch: int
    loss: float
    train_acc: float
    test_acc: float | None
    images_per_s: float
    lr: float


def eval_accuracy(model: nn.Module, data: ImageData, batch_size: int = 512) -> float:
    """Percent correct over samples (not a mean of per-batch accuracies)."""
    return accuracy(predict_logits(model, data, batch_size=batch_size), data.targets)


def fit(
    model: nn.Module,
    train: ImageData,
    schedule: Schedule,
    *,
    seed: int = 0,
    test: ImageData | None = None,
    progress: bool = True,
    desc: str = "train",
    on_epoch: Callable[[EpochStats, nn.Module], None] | None = None,
    start: FitState | None = None,
    on_state: Callable[[FitState], None] | None = None,
) -> list[EpochStats]:
    """Train `model` in place on `train` (already on the model's device) with `schedule`.

    Shuffling and augmentation draw from one generator on the model's device seeded with
    `seed` (`device_generator`), so the same seed gives the same weights on CPU and no batch
    waits for a host-side draw. Nothing is read back from the device during an epoch: the
    loss and accuracy are summed there and read once at its end (a progress bar shows the
    previous epoch's loss). `start` (a state `on_state` was given after
    an epoch, with the model's weights of then) goes on from that epoch: the same weights
    as a run that was never stopped. Returns the stats of the epochs run here.
    """
    device = next(model.parameters()).device
    gen = device_generator(seed, device)
    opt = schedule.make_optimizer(model.parameters())
    steps = train.num_batches(schedule.batch_size)
    if start is not None:
        opt.load_state_dict(start.optimizer)
        gen.set_state(start.generator)
        set_global_rng(start.rng, device)
    history: list[EpochStats] = []
    for epoch in range(0 if start is None else start.epoch, schedule.epochs):
        model.train()
        t0 = time.perf_counter()
        loss_sum, correct, seen = torch.zeros((), device=device), torch.zeros((), device=device), 0
        bar = tqdm(
            train.batches(schedule.batch_size, shuffle=True, generator=gen, augment=schedule.augment),
            total=steps, desc=f"{desc} {epoch + 1}/{schedule.epochs}", leave=False,
            disable=not progress, file=sys.stderr, dynamic_ncols=True,
        )
        lr = schedule.lr
        for step, (x, y) in enumerate(bar):
            lr = schedule.lr_at(epoch, step, steps)
            for group in opt.param_groups:
                group["lr"] = lr
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach() * len(y)
            correct += (logits.detach().argmax(1) == y).sum()
            seen += len(y)
            if progress and step % 20 == 0:  # no loss here: reading it back would wait for the device
                bar.set_postfix(lr=f"{lr:.2e}", **({"last_loss": f"{history[-1].loss:.3f}"} if history else {}))
        synchronize(device)
        elapsed = time.perf_counter() - t0
        stats = EpochStats(
            epoch=epoch + 1,
            loss=float(loss_sum) / max(seen, 1),
            train_acc=100.0 * float(correct) / max(seen, 1),
            test_acc=None if test is None else eval_accuracy(model, test),
            images_per_s=seen / elapsed if elapsed > 0 else float("nan"),
            lr=lr,
        )
        history.append(stats)
        if on_epoch is not None:
            on_epoch(stats, model)
        if on_state is not None:
            on_state(FitState(epoch + 1, opt.state_dict(), gen.get_state(), global_rng(device)))
    return history


@dataclass
class PretrainResult:
    model: nn.Module
    test_acc: float
    best_acc: float
    history: list[EpochStats]
    config: dict[str, Any]
    best_path: Path | None = None
    last_path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def take_subset(data: ImageData, n: int | None, seed: int = 0) -> ImageData:
    """`data` itself, or a class-balanced seeded subset of `n` rows (a checkpoint's
    `data_subset` meta names it, so unlearning runs see the model's own training set)."""
    if not n or n >= len(data):
        return data
    try:
        return balanced_subset(data, int(n), seed)
    except ValueError as err:
        raise UserError(f"{data.info.name}: {err}") from None


def default_out_dir(net: str, dataset: str, seed: int) -> Path:
    return Path("checkpoints") / f"{net}-{dataset}-seed{seed}"


def pretrain(
    net: str,
    dataset: str,
    *,
    data_root: str | Path | None = None,
    download: bool = False,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    warm: int | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    out: str | Path | None = None,
    pretrained: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
    train_data: ImageData | None = None,
    test_data: ImageData | None = None,
    model_options: dict[str, Any] | None = None,
    train_subset: int | None = None,
    test_subset: int | None = None,
    precision: str | None = None,
    channels_last: bool = False,
) -> PretrainResult:
    """Train `net` on `dataset` with its schedule; save best/last checkpoints under `out`.

    `out=None` saves nothing (tests); pass `train_data`/`test_data` to skip loading.
    `model_options` are the architecture's settings (ResNet18's `width`); `train_subset` /
    `test_subset` train and score on class-balanced subsets (seed 0) of that many rows.
    Both are written into the checkpoint's metadata, which is where unlearning runs read them.
    `precision` / `channels_last` as in ssd/precision.py (training and scoring run in them); the
    config records the precision when it is not plain fp32 (so older resume states still match).
    With `out`, the state after each finished epoch is kept in `out/resume.pt`, and a call with
    the same settings goes on from it (ssd/resume.py); it is removed once the checkpoints are out.
    """
    device = resolve_device(str(device)) if not isinstance(device, torch.device) else device
    out_dir = Path(out) if out is not None else None
    if out_dir is not None:  # before any work: an unwritable --out fails now, not after training
        check_writable(out_dir, "checkpoint folder (--out)", folder=True)
    info = dataset_info(dataset)
    schedule = load_schedule(net, dataset, epochs=epochs, batch_size=batch_size, lr=lr, warmup_epochs=warm)
    model_options = dict(model_options or {})
    subset = {"train": train_subset or None, "test": test_subset or None, "seed": 0}
    train = take_subset(train_data or load_dataset(dataset, train=True, root=data_root, download=download),
                        subset["train"]).to(device)
    test = take_subset(test_data or load_dataset(dataset, train=False, root=data_root, download=download),
                       subset["test"]).to(device)
    seed_everything(seed)
    try:
        model = build_model(net, info, pretrained=pretrained, **model_options).to(device)
    except ValueError as err:
        raise UserError(str(err)) from None
    model = memory_format(model, channels_last, device)
    config = {
        "net": net, "dataset": dataset, "classes": info.num_classes, "seed": seed,
        "device": str(device), "schedule": schedule.to_dict(), "pretrained": pretrained,
        "n_train": len(train), "n_test": len(test), "model_options": model_options, "data_subset": subset,
        **precision_key_fields({"precision": precision, "channels_last": channels_last, "device": str(device)}),
    }
    version = code_version()
    best: dict[str, Any] = {"acc": -1.0, "state": None, "meta": None}

    def meta_for(stats: EpochStats) -> dict[str, Any]:
        return {
            "net": net, "dataset": dataset, "classes": info.num_classes,
            "class_names": list(info.classes), "epoch": stats.epoch,
            "test_acc": stats.test_acc, "train_acc": stats.train_acc, "seed": seed, "config": config,
            "code_version": version, "model_options": model_options, "data_subset": subset,
        }

    def on_epoch(stats: EpochStats, m: nn.Module) -> None:
        if log is not None:
            log(
                f"epoch {stats.epoch}/{schedule.epochs}  loss {stats.loss:.4f}  "
                f"train_acc {stats.train_acc:.2f}%  test_acc {stats.test_acc:.2f}%  "
                f"{stats.images_per_s:.0f} img/s  lr {stats.lr:.2e}"
            )
        assert stats.test_acc is not None
        if out_dir is not None and stats.test_acc > best["acc"]:  # kept in memory: published at the end
            best.update(acc=stats.test_acc, meta=meta_for(stats),
                        state={k: v.detach().to("cpu", copy=True) for k, v in m.state_dict().items()})

    done: list[EpochStats] = []  # epochs a killed run of the same settings finished (resume.pt)
    start, on_state, settings = None, None, settings_of(config)
    if out_dir is not None:
        resume_path = out_dir / RESUME_NAME
        state = load_state(resume_path, settings, lambda s: print(s, file=sys.stderr))
        if state is not None and state["generator"].numel() != device_generator(0, device).get_state().numel():
            # the loop's generator lives on the device: a CPU state cannot go on a CUDA one
            print(f"note: {resume_path} was made on another kind of device; pretraining from epoch 1",
                  file=sys.stderr)
            state = None
        if state is not None:
            model.load_state_dict(state["model"])
            done = [EpochStats(**h) for h in state["history"]]
            best.update(state["best"])
            start = FitState(state["epoch"], state["optimizer"], state["generator"], state["rng"])
            print(f"note: resuming the pretraining after epoch {start.epoch}/{schedule.epochs} ({resume_path})",
                  file=sys.stderr)

        def on_state(fit_state: FitState) -> None:  # after every finished epoch: what a resume needs
            save_state(resume_path, settings, fit_state, model.state_dict(), [vars(h) for h in done + ran],
                       best, version)

    ran: list[EpochStats] = []
    with precision_scope(precision, device):
        history = done + fit(model, train, schedule, seed=seed, test=test, progress=progress,
                             desc=f"{net}/{dataset}", on_epoch=lambda st, m: (ran.append(st), on_epoch(st, m)),
                             start=start, on_state=on_state)
    final = history[-1].test_acc if history else eval_accuracy(model, test)
    assert final is not None
    memorisation: dict[str, Any] = {}
    paths: dict[str, Path] = {}
    if out_dir is not None and history:
        best_model = copy.deepcopy(model)
        best_model.load_state_dict(best["state"])
        finished = {"last": (model, meta_for(history[-1])), "best": (best_model, best["meta"])}
        for kind, (scored, meta) in finished.items():  # eval-mode accuracy on the whole training set
            with precision_scope(precision, device):
                meta["train_eval_acc"] = eval_accuracy(scored, train)
            meta["train_test_gap"] = meta["train_eval_acc"] - float(meta["test_acc"])
            memorisation[kind] = {k: meta[k] for k in ("epoch", "train_eval_acc", "test_acc", "train_test_gap")}
        summary = {"config": config, "history": [vars(h) for h in history], "code_version": version,
                   "memorisation": memorisation, **({"resumed_after_epoch": len(done)} if done else {})}
        paths = publish(out_dir, finished, summary)
        (out_dir / RESUME_NAME).unlink(missing_ok=True)  # finished: nothing left to resume
    return PretrainResult(
        model=model, test_acc=final, best_acc=max(best["acc"], final), history=history,
        config=config, best_path=paths.get("best"), last_path=paths.get("last"), extra=memorisation,
    )


def publish(out_dir: Path, finished: dict[str, tuple[nn.Module, dict[str, Any]]],
            summary: dict[str, Any]) -> dict[str, Path]:
    """Write a finished pretraining's checkpoints (`complete: true`) and history.

    Nothing is written here before training ends, so a killed pretraining leaves no best.pt
    or last.pt that could pass for finished ones, only its resumable state (resume.pt, see
    ssd/resume.py), from which a restart with the same settings goes on. Each file is written
    atomically; best.pt, what the suites use, comes last.
    """
    paths = {"last": save_checkpoint(out_dir / "last.pt", finished["last"][0], {**finished["last"][1], "complete": True})}
    atomic_write_bytes(out_dir / "history.json", json.dumps(summary, indent=2).encode())
    paths["best"] = save_checkpoint(out_dir / "best.pt", finished["best"][0], {**finished["best"][1], "complete": True})
    return paths


