#!/usr/bin/env bash
# Paper §4.3 data debugging on CUB-200 and mini-WebVision, label files for DivideMix/AugDesc.
# Every run the table needs (STEP 1, STEP 2, STEP 3), concurrently and resumably, then the table.
# usage: bash paper/data_debugging.sh <datadir> <result_save_path> [--dry_run] [--scale paper|proxy|tiny] [--seeds 1 2 3] [--jobs 2]
#   e.g. bash paper/data_debugging.sh ~/data results --dry_run     # the runs and their estimated time on a GPU and a CPU
#        bash paper/data_debugging.sh none runs/paper --scale proxy  # the CPU proxy (docs/paper_proxy.md)
# Writes the runs under <result_save_path>[/proxy|/tiny], the table in .../tables/data_debugging.md.
set -euo pipefail
if [ $# -lt 2 ]; then
  sed -n '4,6p' "$0" | sed 's/^# //' >&2
  exit 2
fi
source "$(dirname "$0")/../scripts/python.sh"
PYTHONPATH="$_root${PYTHONPATH:+:$PYTHONPATH}" exec "$PY" -m paper.data_debugging "$@"
