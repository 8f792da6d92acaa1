#!/usr/bin/env bash
# The shipped generalist detectors, trained on every run of the pool (benchmarks/pool.py: digits, Fashion-MNIST and
# shapes, from scratch and fine-tuned, 118 runs, each recording the neighbour agreement), with the designs that won
# leave-one-dataset-out (docs/lodo_neighbours.md, docs/lodo_finetune.md):
#   generalist_lstm_detector.pth.tar          prob, margin and the neighbour agreement, anchored (the default)
#   generalist_softmax_lstm_detector.pth.tar  prob and margin, anchored: for runs that recorded no agreement
# ~60 min for the pool on 2 cores, ~9 min for each detector on one thread.
#   bash benchmarks/make_generalist.sh [OUT_DIR] [neighbours|softmax|both]   # default labeltrace/data, both
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${1:-labeltrace/data}
WHICH=${2:-both}
$PY benchmarks/pool.py --jobs 2 --threads 1
args=()
while read -r run; do args+=(--files_path "$run"); done < <($PY benchmarks/pool.py --list)
train() {  # $1: features, $2: output file
  $PY train_detector.py --dataset generalist --r 0.3 "${args[@]}" --features "$1" --anchor --length 32 \
      --max_per_run 2000 --epochs 15 --batch_size 256 --threads 1 --out "$2"
}
if [ "$WHICH" != softmax ]; then train prob,margin,neighbours "$OUT/generalist_lstm_detector.pth.tar"; fi
if [ "$WHICH" != neighbours ]; then train prob,margin "$OUT/generalist_softmax_lstm_detector.pth.tar"; fi
