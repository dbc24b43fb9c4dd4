#!/usr/bin/env bash
# The test suite: sets up .venv, checks lint, runs pytest without the slow tests.
#   ./scripts/test.sh                  ruff + pytest -m "not slow"
#   ./scripts/test.sh -m slow          the slow tests only (a -m naming "slow" replaces the default filter)
#   ./scripts/test.sh -m "not cuda"    combined with the default: -m "not slow and (not cuda)"
#   ./scripts/test.sh -k NAME          any other pytest argument is passed on
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
ruff check .
marker="not slow"
args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    -m) user="${2:?-m needs an expression}"; shift 2 ;;
    -m*) user="${1#-m}"; shift ;;
    *) args+=("$1"); shift; continue ;;
  esac
  if [[ "$user" =~ (^|[^[:alnum:]_])slow([^[:alnum:]_]|$) ]]; then marker="$user"; else marker="$marker and ($user)"; fi
done
exec python -m pytest -m "$marker" -q ${args[@]+"${args[@]}"}
