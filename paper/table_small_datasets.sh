#!/usr/bin/env bash
# Paper §4.1 CIFAR-10 (uniform 0.2) and CIFAR-100 (uniform 0.4; --flip: flip 0.4 besides): detection ROC-AUC/mAP, test accuracy after removal.
# Every run the table needs (STEP 1, STEP 2, STEP 3), concurrently and resumably, then the table.
# usage: bash paper/table_small_datasets.sh <datadir> <result_save_path> [--dry_run] [--scale paper|proxy|tiny] [--seeds 1 2 3] [--jobs 2]
#   e.g. bash paper/table_small_datasets.sh ~/data results --dry_run     # the runs and their estimated time on a GPU and a CPU
#        bash paper/table_small_datasets.sh none runs/paper --scale proxy  # the CPU proxy (docs/paper_proxy.md)
# Writes the runs under <result_save_path>[/proxy|/tiny], the table in .../tables/small_datasets.md.
set -euo pipefail
if [ $# -lt 2 ]; then
  sed -n '4,6p' "$0" | sed 's/^# //' >&2
  exit 2
fi
source "$(dirname "$0")/../scripts/python.sh"
PYTHONPATH="$_root${PYTHONPATH:+:$PYTHONPATH}" exec "$PY" -m paper.small_datasets "$@"
