"""What a suite needs before hours of work: data, ViT ImageNet weights, a device, writable outputs.

`suite_needs` returns one (ok, line) per need; the suite's `--dry-run` prints them and exits 2
when any is missing, so a paper run fails in seconds instead of after the first task.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

Need = tuple[bool, str]


def _writable(path: Path) -> bool:
    """Whether `path` can be written: an existing file must be writable, otherwise the nearest
    existing ancestor must be a folder we may create entries in."""
    if path.is_file():
        return os.access(path, os.W_OK)
    probe = path
    while not probe.exists():  # the filesystem root always exists
        probe = probe.parent
    return probe.is_dir() and os.access(probe, os.W_OK | os.X_OK)


def data_need(dataset: str, data_root: str | None, download: bool = False) -> Need:
    """Loads the dataset's test split the way a run will (structural checks included)."""
    from datasets import load_dataset
    from datasets.base import resolve_data_root
    from ssd.errors import UserError, one_line

    root = resolve_data_root(data_root)
    try:
        data = load_dataset(dataset, train=False, root=data_root)
    except UserError as err:
        if download:
            return True, f"data {dataset}: not under {root} yet; --download fetches it"
        return False, f"data {dataset}: {one_line(err)}"
    return True, f"data {dataset}: loads ({len(data):,} test images; data root {root})"


# Training images per second on this project's 2-core CPU, 2 threads, quiet machine
# (docs/measurements.md, `scripts/bench_train.py`): what a pretraining estimate uses.
CPU_IMAGES_PER_S = {"ConvNet": 5430.0, "ResNet18": 40.8, "SmallViT": 157.9, "ViT": 1.4}


def pretrain_estimate(net: str, dataset: str) -> tuple[int, float | None]:
    """(epochs, hours on this CPU) of the net's schedule for the dataset; hours None when unknown."""
    from ssd.schedules import load_schedule

    try:
        epochs = load_schedule(net, dataset).epochs
    except Exception:  # noqa: BLE001  (an estimate only: an unknown pair has none)
        return 0, None
    from ssd.suite.cost import KNOWN_SIZES  # (train, test) images per dataset, the cost model's table

    rate, n = CPU_IMAGES_PER_S.get(net), KNOWN_SIZES.get(dataset, (None, None))[0]
    return epochs, None if not (rate and n) else epochs * n / rate / 3600


def checkpoint_need(path: str, net: str, dataset: str, device: str) -> Need:
    """The checkpoint file, with realistic advice when it is missing: the pretraining command and
    what it costs on this CPU (a GPU where that is days)."""
    if Path(path).is_file():
        return True, f"checkpoint {path}: present"
    epochs, hours = pretrain_estimate(net, dataset)
    cmd = f"python pretrain_model.py -net {net} -dataset {dataset}" + (" -gpu" if device.startswith("cuda") else "")
    if hours is None:
        cost = ""
    elif hours < 1:
        cost = f"; {epochs} epochs, about {max(1, round(hours * 60))} min on a 2-core CPU"
    else:
        cost = (f"; {epochs} epochs, about {hours:,.0f} h on a 2-core CPU" + (" — pretrain on a GPU (-gpu)"
                                                                             if hours > 4 else ""))
    return False, f"checkpoint {path}: no such file (make one: {cmd}{cost})"


def pretrained_need(net: str, folder: str | None) -> Need:
    if not folder:
        return False, (f"{net} ImageNet weights: the suite names no [pretrained] folder for {net} (needed to "
                       "pretrain and for its reference models)")
    if not (Path(folder) / "config.json").is_file():
        return False, (f"{net} ImageNet weights: no {folder}/config.json; `save_pretrained` "
                       "google/vit-base-patch16-224 there (README, GPU)")
    return True, f"{net} ImageNet weights: {folder}"


def device_need(device: str, net: str | None = None, dataset: str | None = None) -> Need:
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        advice = "run on a machine with a GPU, or use --device cpu (drop -gpu)"
        if net and dataset:
            epochs, hours = pretrain_estimate(net, dataset)
            if hours is not None and hours > 4:
                advice += (f": on a 2-core CPU one {net} epoch over {dataset} alone takes ~{hours / max(1, epochs):.1f} "
                           "h, so the methods that train (retrain, finetune…) take hours to days")
        return False, f"device {device}: CUDA is not available on this machine ({advice})"
    try:
        torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        return False, f"unknown device {device!r}; use cpu, cuda, cuda:N or mps"
    return True, f"device {device}: available"


def output_needs(paths: dict[str, Path]) -> list[Need]:
    return [(_writable(p), f"{what} {p}: {'writable' if _writable(p) else 'NOT writable'}") for what, p in paths.items()]


def suite_needs(suite: dict[str, Any], grid: list[Any], *, data_root: str | None, results: Path,
                cache_dir: str, report: Path | None) -> list[Need]:
    """Every need of the grid's runs, datasets first."""
    needs: list[Need] = []
    datasets = sorted({s.dataset for s in grid})
    for name in datasets:
        needs.append(data_need(name, data_root))
    missing_ckpts = {s.net for s in grid if not Path(s.weight_path).is_file()}
    for net in sorted({s.net for s in grid}):
        if net == "ViT":  # pretraining and the reference models (retrain, blindspot, ZRF) start from it
            needs.append(pretrained_need(net, suite.get("pretrained", {}).get(net)))
        elif net in missing_ckpts:
            needs.append((True, f"{net}: missing checkpoints are pretrained first"))
    if grid:
        needs.append(device_need(grid[0].device))
    outputs = {"results file": results, "cache folder": Path(cache_dir)}
    if report is not None:
        outputs["report folder"] = report
    for s in grid:
        if not Path(s.weight_path).is_file():  # to be pretrained: its folder must take the checkpoint
            outputs.setdefault(f"checkpoint folder {s.net}/{s.dataset}", Path(s.weight_path).parent)
    needs += output_needs(outputs)
    return needs
