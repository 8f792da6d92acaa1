#!/usr/bin/env bash
# STEP 3 (real noise: webvision50, clothing100k): score the STEP 1 run with a detector, remove the remove_ratio
# most suspicious samples, retrain on the rest (300 epochs, lr 0.1, LR drops at 33% and 67%). No ground truth.
# usage: bash large_dataset_denoise.sh <datadir> <dataset> <seed> <result_save_path> <detector_file> <remove_ratio> [denoise.py flags]
#   e.g. bash large_dataset_denoise.sh ~/data webvision50 1 results cifar100_0.3_lstm_detector.pth.tar 0.2
# Writes <result_save_path>/<dataset>_<net><depth>/<net><depth>_prune4retrain_seed<seed>/detector_<name>/percremove<ratio>/.
set -euo pipefail
if [ $# -lt 6 ]; then
  sed -n '4,5p' "$0" | sed 's/^# //' >&2
  exit 2
fi
source "$(dirname "$0")/scripts/python.sh"
exec "$PY" "$(dirname "$0")/denoise.py" --data "$1" --dataset "$2" --seed "$3" --save "$4" \
  --detector "$5" --remove_ratio "$6" "${@:7}"
