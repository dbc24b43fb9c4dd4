#!/usr/bin/env bash
# Create or reuse the repo's virtual environment (.venv) and install requirements.txt.
# Sourced by the README's commands; re-installs only when requirements.txt changed.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SSD_VENV:-$REPO/.venv}"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x "$VENV/bin/python" ]; then
  echo "[env] creating $VENV with $($PY --version 2>&1)" >&2
  "$PY" -m venv "$VENV"
fi
STAMP="$VENV/.requirements.sha256"
WANT="$(sha256sum "$REPO/requirements.txt" | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$WANT" ]; then
  echo "[env] installing requirements.txt (first run takes a few minutes)" >&2
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$REPO/requirements.txt"
  echo "$WANT" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export WANDB_MODE="${WANDB_MODE:-offline}"
cd "$REPO"
