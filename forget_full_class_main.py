"""Full-class forgetting: forget every training image of one class.

    python forget_full_class_main.py -net ResNet18 -weight_path CKPT -dataset Cifar100 -classes 100 -gpu -method ssd_tuning -forget_class rocket -seed 1

Methods: see ssd/methods (`python -c "import ssd.methods as m; print(m.METHODS.names())"`).
Results are appended to results/full_class.jsonl and logged to wandb (offline without an account).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from ssd.cli import SSDParams, run_task_main
from ssd.errors import run_cli

# SSD / LFSSD hyper-parameters for this task, per model: (alpha = selection weighting,
# lambda = dampening constant). Edit here; --alpha / --lambda override them for one run.
# ResNet18/ViT: the paper's values. ConvNet: from the MNIST sweeps in docs/measurements.md.
SSD_PARAMS: SSDParams = {
    "ResNet18": (10.0, 1.0),
    "ViT": (5.0, 1.0),
    "SmallViT": (10.0, 1.0),
    "ConvNet": (10.0, 1.0),
}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    return run_task_main("full_class", SSD_PARAMS, argv)


if __name__ == "__main__":
    sys.exit(run_cli(main))
