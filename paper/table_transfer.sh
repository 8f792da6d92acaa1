#!/usr/bin/env bash
# Paper §4.1 transfer: the CIFAR detectors score Tiny ImageNet, CUB-200 and Caltech-256 (uniform/flip 0.2, 0.4) without retraining.
# Every run the table needs (STEP 1, STEP 2, STEP 3), concurrently and resumably, then the table.
# usage: bash paper/table_transfer.sh <datadir> <result_save_path> [--dry_run] [--scale paper|proxy|tiny] [--seeds 1 2 3] [--jobs 2]
#   e.g. bash paper/table_transfer.sh ~/data results --dry_run     # the runs and their estimated time on a GPU and a CPU
#        bash paper/table_transfer.sh none runs/paper --scale proxy  # the CPU proxy (docs/paper_proxy.md)
# Writes the runs under <result_save_path>[/proxy|/tiny], the table in .../tables/transfer.md.
set -euo pipefail
if [ $# -lt 2 ]; then
  sed -n '4,6p' "$0" | sed 's/^# //' >&2
  exit 2
fi
source "$(dirname "$0")/../scripts/python.sh"
PYTHONPATH="$_root${PYTHONPATH:+:$PYTHONPATH}" exec "$PY" -m paper.transfer "$@"
