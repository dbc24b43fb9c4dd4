#!/usr/bin/env bash
# The cpu-paper grid, as run for docs/results/cpu-paper/ (issue 11).
cd /work/run-11
echo "commit $(git rev-parse HEAD)"
echo "start $(date -u +%FT%TZ)"
s=$(date +%s)
OMP_NUM_THREADS=1 ./MAIN_run_experiments.sh --suite cpu-paper --data-root /work/data \
  --results /work/results-11/cpu-paper.jsonl --cache-dir /work/results-11/cache \
  --report /work/results-11/report --no-progress
rc=$?
echo "end $(date -u +%FT%TZ) rc=$rc wall_s=$(( $(date +%s) - s ))"
