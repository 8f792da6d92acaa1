#!/usr/bin/env bash
# STEP 1: corrupt labels, train a classifier, record the training dynamics of every training sample.
# usage: bash generate_td.sh <datadir> <dataset> <seed> <noise_ratio> <noise_type> <net_type> <depth> <result_save_path> [runner.py flags]
#   e.g. bash generate_td.sh ~/data cifar10 1 0.2 uniform resnet 32 results
#        bash generate_td.sh none digits 1 0.2 uniform cnn 3 runs --num_epochs 40
# Writes <result_save_path>/<dataset>_<net><depth>_percmislabeled<r>_<type>/computation4td_seed<seed>/.
set -euo pipefail
# The positional arguments are those before the first flag: exactly 8.
positional=0
for arg in "$@"; do
  case "$arg" in -*) break ;; *) positional=$((positional + 1)) ;; esac
done
if [ "$positional" -ne 8 ]; then
  echo "error: generate_td.sh expects 8 positional arguments before the runner.py flags, got $positional" >&2
  sed -n '3,5p' "$0" | sed 's/^# //' >&2
  exit 2
fi
source "$(dirname "$0")/scripts/python.sh"
exec "$PY" "$(dirname "$0")/runner.py" --data "$1" --dataset "$2" --seed "$3" --noise_ratio "$4" \
  --noise_type "$5" --net_type "$6" --depth "$7" --save "$8" "${@:9}"
