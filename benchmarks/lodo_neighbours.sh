#!/usr/bin/env bash
# docs/lodo_neighbours.md: leave-one-dataset-out of the detector that reads the neighbour agreement besides the
# softmax, beside the design it would replace, on the pool recorded with --neighbours 20 (benchmarks/pool.py);
# the agreement's own hand-crafted score competes among the hand-crafted ones. Two processes of one thread.
#   bash benchmarks/lodo_neighbours.sh [OUT]        # default docs/lodo_neighbours.md (+ .json)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${1:-docs/lodo_neighbours.md}
TMP=$(mktemp -d)
DESIGNS=("prob+margin, anchored" "prob+margin+neighbours, anchored")
for held in digits fashion_mnist; do
  $PY benchmarks/lodo.py --heldout "$held" --candidates "${DESIGNS[@]}" --out "$TMP/$held.md" &
done
wait
$PY benchmarks/lodo.py --render "$TMP"/digits.json "$TMP"/fashion_mnist.json --out "$OUT"
