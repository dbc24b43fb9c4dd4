#!/usr/bin/env bash
# The test suite: sets up .venv, checks lint, runs pytest (slow tests only with -m slow).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
ruff check .
python -m pytest -m "not slow" -q "$@"
