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


def data_need(dataset: str, data_root: str | None) -> Need:
    """Loads the dataset's test split the way a run will (structural checks included)."""
    from datasets import load_dataset
    from datasets.base import resolve_data_root
    from ssd.errors import UserError, one_line

    root = resolve_data_root(data_root)
    try:
        data = load_dataset(dataset, train=False, root=data_root)
    except UserError as err:
        return False, f"data {dataset}: {one_line(err)}"
    return True, f"data {dataset}: loads ({len(data):,} test images; data root {root})"


def pretrained_need(net: str, folder: str | None) -> Need:
    if not folder:
        return False, (f"{net} ImageNet weights: the suite names no [pretrained] folder for {net} (needed to "
                       "pretrain and for its reference models)")
    if not (Path(folder) / "config.json").is_file():
        return False, (f"{net} ImageNet weights: no {folder}/config.json; `save_pretrained` "
                       "google/vit-base-patch16-224 there (README, GPU)")
    return True, f"{net} ImageNet weights: {folder}"


def device_need(device: str) -> Need:
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        return False, f"device {device}: CUDA is not available on this machine (use --device cpu, or run on a GPU)"
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
