#!/usr/bin/env bash
# Issue 22's real-data runs as they were made for docs/results/class-privacy/ (code 9130f80 in a
# detached checkout /work/hH-run; the MNIST rows from its seed-0 sub-class cell on at 9f05782; two processes side by side on the shared 2-core machine).
# Staged so that a run cut short by time has whole cells; finished runs are skipped by a later step.
export SSD_VENV=/work/main/.venv OMP_NUM_THREADS=1
R=/work/hH-runs
step() {  # suite, seeds, results file
  nice -n 10 ./MAIN_run_experiments.sh --suite "$1" --seeds "$2" --data-root /work/data \
    --results "$3" --cache-dir $R/cache --no-report --no-progress
}
# 1. ResNet18 w8 on Fashion-MNIST (the cpu-paper grid's class cells): stage 1 = Pullover and Trouser
(step docs/results/class-privacy/stage1.toml 0 $R/class-privacy.jsonl
 step docs/results/class-privacy/stage1.toml 1 $R/class-privacy.jsonl
 step class-privacy 0,1,2 $R/class-privacy.jsonl) &
# 2. ConvNet on MNIST (2,000-image subset), beside it
(for s in 0 1 2; do step class-privacy-mnist $s $R/class-privacy-mnist.jsonl; done) &
wait
# The noise floor (an independent retrain against another seed's reference) and the original's
# exposure, for the four cells (null.txt):
null() {  # task dataset class net checkpoint
  python scripts/cmia_null.py --data-root /work/data --cache-dir $R/cache --task "$1" --dataset "$2" \
    --forget-class "$3" --net "$4" --weight-path "$5" --seeds 0,1
}
null full_class FashionMNIST Trouser ResNet18 checkpoints/cpu-paper/ResNet18-w8-FashionMNIST-n1000/last.pt
null sub_class FashionMNISTCoarse Pullover ResNet18 checkpoints/cpu-paper/ResNet18-w8-FashionMNISTCoarse-n1000/last.pt
null full_class MNIST 2 ConvNet checkpoints/class-privacy/ConvNet-MNIST-n2000-e30/last.pt
null sub_class MNISTCoarse 3 ConvNet checkpoints/class-privacy/ConvNet-MNISTCoarse-n2000-e30/last.pt
# The report:
python scripts/make_report.py $R/class-privacy.jsonl $R/class-privacy-mnist.jsonl --out docs/results/class-privacy/report
