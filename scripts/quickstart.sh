#!/usr/bin/env bash
# The main job on the embedded default: sets up .venv, pretrains the ConvNet on the
# bundled Digits data (no download) and prints its test accuracy.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
python pretrain_model.py -net ConvNet -dataset Digits "$@"
