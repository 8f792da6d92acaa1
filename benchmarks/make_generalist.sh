#!/usr/bin/env bash
# The shipped generalist detectors, trained on every run of the image pool (benchmarks/pool.py: digits,
# Fashion-MNIST and shapes, CNNs with SGD, from scratch and fine-tuned, 118 runs, each recording the neighbour
# agreement), with the designs that won leave-one-dataset-out (docs/lodo_neighbours.md, docs/lodo_finetune.md):
#   generalist_lstm_detector.pth.tar          prob, margin and the neighbour agreement, anchored (the default)
#   generalist_softmax_lstm_detector.pth.tar  prob and margin, anchored: for runs that recorded no agreement
# ~60 min for the pool on 2 cores, ~9 min for each detector on one thread.
#   bash benchmarks/make_generalist.sh [OUT_DIR] [neighbours|softmax|both]   # default labeltrace/data, both
#   POOL=runs/pool bash benchmarks/make_generalist.sh                        # the image pool elsewhere
#   REGIMES=runs/pool_regimes ...   # + the regimes pool (benchmarks/regimes.py: BERT, ViT, MLPs; docs/regimes.md)
#   FEATURES=prob,margin,neighbours,neighbours_class_quantile,margin_quantile REGIMES=... ...   # design C there
#   SKIP_BUILD=1 ...   # train on the finished runs as they are (no pool run started)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${1:-labeltrace/data}
WHICH=${2:-both}
POOL=${POOL:-runs/pool}
REGIMES=${REGIMES:-}
FEATURES=${FEATURES:-prob,margin,neighbours}
MAX_PER_RUN=${MAX_PER_RUN:-2000}
EPOCHS=${EPOCHS:-15}
if [ -z "${SKIP_BUILD:-}" ]; then
  $PY benchmarks/pool.py --save "$POOL" --jobs 2 --threads 1
  if [ -n "$REGIMES" ]; then $PY benchmarks/regimes.py --save "$REGIMES" --jobs 2 --threads 1; fi
fi
args=()
while read -r run; do args+=(--files_path "$run"); done < <($PY benchmarks/pool.py --save "$POOL" --list
  if [ -n "$REGIMES" ]; then $PY benchmarks/regimes.py --save "$REGIMES" --list; fi)
train() {  # $1: features, $2: output file
  $PY train_detector.py --dataset generalist --r 0.3 "${args[@]}" --features "$1" --anchor --length 32 \
      --max_per_run "$MAX_PER_RUN" --epochs "$EPOCHS" --batch_size 256 --threads 1 --out "$2"
}
if [ "$WHICH" != softmax ]; then train "$FEATURES" "$OUT/generalist_lstm_detector.pth.tar"; fi
if [ "$WHICH" != neighbours ]; then train prob,margin "$OUT/generalist_softmax_lstm_detector.pth.tar"; fi
