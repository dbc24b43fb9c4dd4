#!/usr/bin/env bash
# Run the experiment suites.
#   ./MAIN_run_experiments.sh 0                  the paper suite (configs/suites/paper.toml) on GPU 0
#   ./MAIN_run_experiments.sh 0 --seeds 1-123    ... over the authors' seed range
#   ./MAIN_run_experiments.sh --suite quick      every method on the bundled Digits data, on CPU
#   ./MAIN_run_experiments.sh --suite mnist --data-root DIR   real MNIST, ConvNet, digit 2
# Extra flags go to `python -m ssd.suite` (see --help). Finished runs are skipped on a re-run.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/scripts/env.sh"
if [[ $# -ge 1 && "$1" =~ ^[0-9]+$ ]]; then
  gpu="$1"; shift
  exec python -m ssd.suite --suite paper --device "cuda:${gpu}" "$@"
fi
exec python -m ssd.suite "$@"
