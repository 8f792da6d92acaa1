#!/usr/bin/env bash
# STEP 3 on a Fashion-MNIST subset, CPU: test accuracy of noisy vs pruned vs relabelled vs oracle, uniform 0.2 and 0.4.
# usage: [DET=detector] bash benchmarks/denoise_fashion.sh [save=runs] [retrain_epochs=10]
# Subset: the first 3,000 training and 1,000 test images (--max_train 3000 --max_test 1000), the small CNN,
# STEP 1 20 epochs, seed 1. Detector: $DET, default baseline:confidence (minus the mean assigned-label
# probability); DET=digits trains an LSTM on digits (seed 2, 20% uniform, 40 epochs) and transfers it.
# Writes <save>/denoise_fashion_table.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/python.sh
SAVE=${1:-runs}
EPOCHS=${2:-10}
T=(--threads 1 --no_progress)
FM=(--dataset fashion_mnist --max_train 3000 --max_test 1000 --seed 1 --noise_type uniform)
DET=${DET:-baseline:confidence}
if [ "$DET" = digits ]; then  # an LSTM trained on digits only
  "$PY" runner.py --save "$SAVE" --record eval "${T[@]}" --dataset digits --noise_type uniform --noise_ratio 0.2 --num_epochs 40 --seed 2
  DET="$SAVE/digits_0.2_lstm_detector_seed2.pth.tar"
  [ -f "$DET" ] || "$PY" train_detector.py --dataset digits --r 0.2 --epochs 10 --threads 1 --out "$DET" \
    --files_path "$SAVE/digits_cnn3_percmislabeled0.2_uniform/computation4td_seed2"
fi
for r in 0.2 0.4; do
  "$PY" runner.py --save "$SAVE" --record eval "${T[@]}" "${FM[@]}" --noise_ratio $r --num_epochs 20
  "$PY" denoise.py --save "$SAVE" "${T[@]}" "${FM[@]}" --noise_ratio $r --num_epochs "$EPOCHS" \
    --detector "$DET" --remove_ratio $r --removal none,detector,oracle
  "$PY" data_debug.py --save "$SAVE" "${T[@]}" "${FM[@]}" --noise_ratio $r --num_epochs "$EPOCHS" \
    --detector "$DET" --relabel_ratio $r --retrain
done
"$PY" - "$SAVE" "$DET" <<'PYEOF'
import json, sys
from pathlib import Path
from pipeline.denoise import comparison_table, format_table
from pipeline.scoring import detector_name
save, det = Path(sys.argv[1]), detector_name(sys.argv[2])
out = []
for r in ("0.2", "0.4"):
    exp = save / f"fashion_mnist_cnn3_percmislabeled{r}_uniform"
    load = lambda p: json.loads((exp / p / "summary.json").read_text())
    runs = [load("prune4retrain_seed1/detector_none/percremove0.0"),
            load(f"prune4retrain_seed1/detector_{det}/percremove{r}"),
            {**load(f"relabel_seed1/detector_{det}/percrelabel{r}_truth"), "name": "relabelled (ground truth)",
             "num_removed": None, "removed_flipped": None},
            load("prune4retrain_seed1/detector_oracle/percremoveflipped")]
    out.append(f"uniform {r}\n\n" + format_table(comparison_table(runs)))
text = "\n\n".join(out) + "\n"
(save / "denoise_fashion_table.md").write_text(text)
print(text)
PYEOF
