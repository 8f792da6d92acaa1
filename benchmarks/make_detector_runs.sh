#!/usr/bin/env bash
# STEP 1 runs the detector benchmarks and the shipped detectors are made from (runs/ is gitignored).
# Digits: ~20 s per 40-epoch run; Fashion-MNIST (3k-sample subset, 20 epochs): ~5-8 min per run on a shared
# 2-core CPU (a 10k subset costs ~90 s per epoch there, too slow for a CPU pool).
#   bash benchmarks/make_detector_runs.sh            # all
#   bash benchmarks/make_detector_runs.sh digits     # only the digits ones
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
which=${1:-all}
run() { $PY runner.py --save runs --threads 1 --no_progress --record eval "$@"; }  # the paper's recording

if [[ $which == all || $which == digits ]]; then
  for noise in uniform flip; do
    for r in 0.2 0.4; do
      run --dataset digits --noise_type $noise --noise_ratio $r --num_epochs 40 --seed 1
    done
  done
  # Length transfer: the same setting at T=80 (two seeds) and a second T=40 seed.
  run --dataset digits --noise_type uniform --noise_ratio 0.2 --num_epochs 80 --seed 2 --save runs/len80
  run --dataset digits --noise_type uniform --noise_ratio 0.2 --num_epochs 80 --seed 3 --save runs/len80
  run --dataset digits --noise_type uniform --noise_ratio 0.2 --num_epochs 40 --seed 3 --save runs/len40
fi
if [[ $which == all || $which == fashion ]]; then
  for setting in "uniform 0.2" "flip 0.4" "uniform 0.4" "flip 0.2"; do
    set -- $setting
    run --dataset fashion_mnist --max_train 3000 --max_test 1000 --noise_type $1 --noise_ratio $2 \
        --num_epochs 20 --seed 1
  done
fi
