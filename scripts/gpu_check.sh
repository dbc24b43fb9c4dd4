#!/usr/bin/env bash
# The device check (issue 19, docs/gpu.md): at most 8 minutes on one GPU, one summary file.
#   scripts/gpu_check.sh --data /path/to/fashion-mnist.tar.xz --out "$OUT"
#   scripts/gpu_check.sh --tiny --device cpu --data DIR --out DIR        (what the test runs)
# Uses the python on PATH (the device machine's own torch), or $PYTHON. The whole check is
# stopped (SIGINT, then SIGKILL 10 s later) at $GPU_CHECK_TIMEOUT seconds (default 470); the
# summary is written after every phase, so a stopped check keeps what it measured.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec timeout --signal=INT --kill-after=10 "${GPU_CHECK_TIMEOUT:-470}" "${PYTHON:-python3}" scripts/gpu_check.py "$@"
