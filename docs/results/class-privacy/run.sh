#!/usr/bin/env bash
# Issue 22's real-data runs for docs/results/class-privacy/, as they were made (each step from a clean
# detached checkout of main at the commit named; /work/data = ../shared/data unpacked; one torch thread).
# Finished runs are skipped by a later step (results files are appended to), so each step can be re-run.
export SSD_VENV=/work/main/.venv OMP_NUM_THREADS=1
step() {  # suite, seeds, results file, cache
  nice -n 10 ./MAIN_run_experiments.sh --suite "$1" --seeds "$2" --data-root /work/data \
    --results "$3" --cache-dir "$4" --no-report --no-progress
}
C=/work/hH-runs/cache   # the cache of the earlier session's steps: its retrained references are reused
# --- last session (9130f80 / 9f05782): stage1.toml (Trouser + Pullover) seeds 0, 1; MNIST seeds 0, 1 ---
# --- 2026-12-02 22:54 UTC, f90f7a9: the rest of both grids (seed 2; T-shirt/top, Sneaker), side by side ---
(step docs/results/class-privacy/stage1.toml 2 class-privacy.jsonl $C
 for s in 0 1 2; do step class-privacy $s class-privacy.jsonl $C; done) &
step class-privacy-mnist 2 class-privacy-mnist.jsonl $C &
wait
# --- 23:27, ff463a5: MNIST NTK at its 4 GiB limit (the 3 old sub-class NTK rows, made at 2 GiB, removed first) ---
nice -n 15 ./MAIN_run_experiments.sh --suite class-privacy-mnist --methods ntk --data-root /work/data \
  --results class-privacy-mnist.jsonl --cache-dir $C --no-report --no-progress &
# --- 23:27, ff463a5: class U-LiRA on the ResNet cells; on MNIST digit 2 (digit 3 failed there: odd class
#     count, fixed in the next commit; re-run from b72f944, which skips digit 2's finished audits) ---
step class-ulira 0 class-ulira.jsonl $C &
step class-ulira-mnist 0 class-ulira-mnist.jsonl /work/r22/cache-u &
# --- 00:37, b72f944: digit 2's audit repeated with audit seed 1, six methods ---
step docs/results/class-privacy/class-ulira-mnist-seed1.toml 0 class-ulira-mnist-seed1.jsonl /work/r22/cache-u &
wait
# The noise floor and the original's exposure per cell (reads the cached references; trains nothing):
null() {  # task dataset class net checkpoint name
  python scripts/cmia_null.py --data-root /work/data --cache-dir $C --task "$1" --dataset "$2" \
    --forget-class "$3" --net "$4" --weight-path "$5" --seeds 0,1,2 > "docs/results/class-privacy/null/$6.txt"
}
R=checkpoints/cpu-paper/ResNet18-w8
null full_class FashionMNIST Trouser ResNet18 $R-FashionMNIST-n1000/last.pt trouser
null full_class FashionMNIST T-shirt/top ResNet18 $R-FashionMNIST-n1000/last.pt tshirt
null full_class FashionMNIST Sneaker ResNet18 $R-FashionMNIST-n1000/last.pt sneaker
null sub_class FashionMNISTCoarse Pullover ResNet18 $R-FashionMNISTCoarse-n1000/last.pt pullover
null full_class MNIST 2 ConvNet checkpoints/class-privacy/ConvNet-MNIST-n2000-e30/last.pt mnist-full_class
null sub_class MNISTCoarse 3 ConvNet checkpoints/class-privacy/ConvNet-MNISTCoarse-n2000-e30/last.pt mnist-sub_class
# The report:
D=docs/results/class-privacy
python scripts/make_report.py $D/class-privacy.jsonl $D/class-privacy-mnist.jsonl $D/class-ulira.jsonl \
  $D/class-ulira-mnist.jsonl --out $D/report
