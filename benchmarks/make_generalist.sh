#!/usr/bin/env bash
# The shipped generalist detector: trained on every run of the pool (benchmarks/pool.py), both offline datasets and
# shapes, from scratch and fine-tuned (118 runs), with the design that won leave-one-dataset-out
# (docs/lodo_finetune.md). ~44 min for the pool on 2 cores, ~8 min for the detector on one thread.
#   bash benchmarks/make_generalist.sh [OUT]        # default checkpoints/generalist_lstm_detector.pth.tar
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${1:-checkpoints/generalist_lstm_detector.pth.tar}
$PY benchmarks/pool.py --jobs 2 --threads 1
args=()
while read -r run; do args+=(--files_path "$run"); done < <($PY benchmarks/pool.py --list)
$PY train_detector.py --dataset generalist --r 0.3 "${args[@]}" --features prob,margin --anchor --length 32 --max_per_run 2000 \
    --epochs 15 --batch_size 256 --threads 1 --out "$OUT"
