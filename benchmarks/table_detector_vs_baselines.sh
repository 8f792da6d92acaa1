#!/usr/bin/env bash
# The detector-vs-hand-crafted-scores table (docs/benchmark_grid.md), one command: digits and Fashion-MNIST are
# scored in two processes (one thread each, one per core), then merged. STEP 1 runs are reused when present.
# usage: bash benchmarks/table_detector_vs_baselines.sh [save_dir=runs/grid] [extra grid.py flags]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/python.sh
save=${1:-runs/grid}; shift || true
# STEP 1 first, one process per dataset (separate run folders), so the scoring processes never train the same run.
"$PY" benchmarks/grid.py --save "$save" --datasets digits --step1_only "$@" &
first=$!
"$PY" benchmarks/grid.py --save "$save" --datasets fashion_mnist --step1_only "$@"
wait "$first"
"$PY" benchmarks/grid.py --save "$save" --score_datasets digits --record_ablation --out docs/grid_digits.md "$@" &
digits=$!
"$PY" benchmarks/grid.py --save "$save" --score_datasets fashion_mnist --out docs/grid_fashion.md "$@"
wait "$digits"
# the recording ablation on Fashion-MNIST (its own process: 15 more STEP 1 runs)
"$PY" benchmarks/grid.py --save "$save" --datasets fashion_mnist --score_datasets fashion_mnist --record_ablation \
    --no_ablations --out docs/grid_fashion_record.md "$@"
"$PY" benchmarks/grid.py --render_only docs/grid_digits.json docs/grid_fashion.json docs/grid_fashion_record.json \
    --out docs/benchmark_grid.md
