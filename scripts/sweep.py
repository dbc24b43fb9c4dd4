"""α / λ sweep of SSD and the dampening baselines on one checkpoint and forget request.

    python scripts/sweep.py -net ConvNet -weight_path checkpoints/ConvNet-Digits-seed0/best.pt -dataset Digits \
        -forget_class 2 --alphas 1,2,5,10,20,50,100 --results results/sweep.jsonl

The work is in ssd/sweep.py (`run_sweep`); see `--help` for every flag.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from ssd.errors import run_cli
    from ssd.sweep import main

    sys.exit(run_cli(main))
