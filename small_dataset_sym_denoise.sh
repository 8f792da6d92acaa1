#!/usr/bin/env bash
# STEP 3 (synthesized noise): score the STEP 1 run of these settings with a detector, remove the remove_ratio
# most suspicious samples, retrain on the rest (300 epochs, lr 0.1, one LR drop at 50%), report.
# usage: bash small_dataset_sym_denoise.sh <datadir> <dataset> <seed> <noise_ratio> <noise_type> <result_save_path> <detector_file> <remove_ratio> [denoise.py flags]
#   e.g. bash small_dataset_sym_denoise.sh ~/data cifar10 1 0.2 uniform results cifar10_0.2_lstm_detector.pth.tar 0.2
#        bash small_dataset_sym_denoise.sh none digits 1 0.2 uniform runs baseline:confidence 0.2 --num_epochs 40 --removal all
# Writes <result_save_path>/<dataset>_<net><depth>_percmislabeled<r>_<type>/prune4retrain_seed<seed>/detector_<name>/percremove<ratio>/.
set -euo pipefail
if [ $# -lt 8 ]; then
  sed -n '4,6p' "$0" | sed 's/^# //' >&2
  exit 2
fi
source "$(dirname "$0")/scripts/python.sh"
exec "$PY" "$(dirname "$0")/denoise.py" --data "$1" --dataset "$2" --seed "$3" --noise_ratio "$4" \
  --noise_type "$5" --save "$6" --detector "$7" --remove_ratio "$8" "${@:9}"
