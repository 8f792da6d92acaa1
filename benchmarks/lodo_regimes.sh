#!/usr/bin/env bash
# docs/lodo_regimes.md: leave-one-group-out over the image pool (benchmarks/pool.py) and the regimes pool
# (benchmarks/regimes.py), three designs that read the neighbour agreement beside the shipped generalist as it
# is; two processes of one thread (~16 min on 2 cores once both pools are built).
#   bash benchmarks/lodo_regimes.sh [OUT]        # default docs/lodo_regimes.md (+ .json)
#   POOL=elsewhere/pool REGIMES=elsewhere/pool_regimes bash benchmarks/lodo_regimes.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${1:-docs/lodo_regimes.md}
POOL=${POOL:-runs/pool}
REGIMES=${REGIMES:-runs/pool_regimes}
TMP=$(mktemp -d)
DESIGNS=("prob+margin+neighbours, anchored" "prob+margin+neighbours+class rank, anchored"
         "prob+margin+neighbours+class rank+margin quantile, anchored")
common=(--image_pool "$POOL" --pool "$REGIMES" --candidates "${DESIGNS[@]}" --max_per_run 500 --epochs 8)
$PY benchmarks/lodo_regimes.py "${common[@]}" --held_out digits bert_text_scratch vit_digits_scratch mlp_tabular \
    --out "$TMP/a.md" &
$PY benchmarks/lodo_regimes.py "${common[@]}" --held_out fashion_mnist bert_text_finetune vit_fashion_finetune \
    --out "$TMP/b.md" &
wait
$PY benchmarks/lodo_regimes.py --render "$TMP/a.json" "$TMP/b.json" --out "$OUT"
