#!/usr/bin/env bash
# docs/lodo_finetune.md: leave-one-dataset-out with the fine-tuning runs in the pool (benchmarks/pool.py), the
# shipped design trained with and without them, and two designs that add one input to it (the run-wide margin
# quantile, the run context); two processes of one thread.
#   bash benchmarks/lodo_finetune.sh [OUT]        # default docs/lodo_finetune.md (+ .json)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${1:-docs/lodo_finetune.md}
TMP=$(mktemp -d)
FINETUNE=(digits_finetune_grid fashion_finetune_grid digits_finetune_extra fashion_finetune_extra shapes_finetune_extra)
DESIGNS=("prob+margin, anchored" "prob+margin+margin quantile, anchored"
         "prob+margin + run context, anchored")
for held in digits fashion_mnist; do
  ( $PY benchmarks/lodo.py --heldout "$held" --candidates "${DESIGNS[@]}" --out "$TMP/$held.md"
    $PY benchmarks/lodo.py --heldout "$held" --candidates "${DESIGNS[0]}" --leave_out "${FINETUNE[@]}" \
        --label " (no fine-tuning runs)" --out "$TMP/${held}_without.md" ) &
done
wait
$PY benchmarks/lodo.py --render "$TMP"/digits.json "$TMP"/digits_without.json "$TMP"/fashion_mnist.json \
    "$TMP"/fashion_mnist_without.json --out "$OUT"
