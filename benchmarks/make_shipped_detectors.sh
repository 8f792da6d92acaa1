#!/usr/bin/env bash
# Reproduce the detectors shipped in checkpoints/ and the tables in docs/detector.md.
# Needs the STEP 1 runs of benchmarks/make_detector_runs.sh (runs/ is gitignored). 2-core CPU, 1 thread:
# ~10-30 s per detector (the variant study: ~15 min). Tables: benchmarks/results/detector_*.json and docs/detector.md;
# the non-shipped comparison detectors go to results/ (gitignored).
#   bash benchmarks/make_detector_runs.sh && bash benchmarks/make_shipped_detectors.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
# These are the paper-style detectors: its one input (prob), no anchor (train_detector.py's default is now the
# generalist design, benchmarks/make_generalist.sh).
PAPER="--features prob --no-anchor"
D=runs/digits_cnn3_percmislabeled
F=runs/fashion_mnist_cnn3_percmislabeled
S=computation4td_seed1
mkdir -p checkpoints results benchmarks/results

# Which variant: every variant x 3 seeds on three runs (val ROC-AUC, stratified 10% split).
$PY benchmarks/detector_variants.py ${D}0.2_uniform/$S ${D}0.4_flip/$S ${F}0.4_flip/$S --seeds 0 1 2 \
    --out benchmarks/results/detector_variants.json
$PY benchmarks/detector_variants.py ${F}0.2_uniform/$S ${D}0.2_flip/$S --seeds 0 1 2 \
    --recipes "forward lr1e-3 x20" "reversed lr1e-3 x20" "pooled lr1e-3 x20" --out benchmarks/results/detector_variants_more.json

# One detector per dataset and rate (uniform noise), default recipe: pooled, AdamW 1e-3, 20 epochs, batch 64.
$PY train_detector.py $PAPER --dataset digits --r 0.2 --files_path ${D}0.2_uniform/$S --out checkpoints/digits_0.2_lstm_detector.pth.tar
$PY train_detector.py $PAPER --dataset digits --r 0.4 --files_path ${D}0.4_uniform/$S --out checkpoints/digits_0.4_lstm_detector.pth.tar
$PY train_detector.py $PAPER --dataset fashion_mnist --r 0.2 --files_path ${F}0.2_uniform/$S --out checkpoints/fashion_mnist_0.2_lstm_detector.pth.tar
$PY train_detector.py $PAPER --dataset fashion_mnist --r 0.4 --files_path ${F}0.4_uniform/$S --out checkpoints/fashion_mnist_0.4_lstm_detector.pth.tar
# Pooled: every digits run (uniform and flip, 0.2 and 0.4); evaluated on fashion_mnist, which it never saw.
$PY train_detector.py $PAPER --dataset digits_pooled --r 0.3 --files_path ${D}0.2_uniform/$S --files_path ${D}0.4_uniform/$S \
    --files_path ${D}0.2_flip/$S --files_path ${D}0.4_flip/$S --out checkpoints/digits_pooled_lstm_detector.pth.tar

# The same digits run with the other variants, for the transfer comparison (not shipped).
for v in reversed bidirectional; do
  $PY train_detector.py $PAPER --dataset digits --r 0.2 --variant $v --files_path ${D}0.2_uniform/$S \
      --out results/digits_0.2_${v}_lstm_detector.pth.tar
done

# Dataset transfer (no retraining), beside the mean assigned-label probability.
$PY benchmarks/detector_transfer.py --detector checkpoints/digits_0.2_lstm_detector.pth.tar \
    checkpoints/digits_0.4_lstm_detector.pth.tar checkpoints/digits_pooled_lstm_detector.pth.tar \
    results/digits_0.2_reversed_lstm_detector.pth.tar results/digits_0.2_bidirectional_lstm_detector.pth.tar \
    --runs ${F}0.2_uniform/$S ${F}0.4_uniform/$S ${F}0.2_flip/$S ${F}0.4_flip/$S --out benchmarks/results/detector_transfer_digits_to_fashion.json
$PY benchmarks/detector_transfer.py --detector checkpoints/fashion_mnist_0.2_lstm_detector.pth.tar \
    checkpoints/fashion_mnist_0.4_lstm_detector.pth.tar \
    --runs ${D}0.2_uniform/$S ${D}0.4_uniform/$S ${D}0.2_flip/$S ${D}0.4_flip/$S --out benchmarks/results/detector_transfer_fashion_to_digits.json

# Length transfer: detectors trained at T=40 and T=80 (digits uniform 0.2, seeds 1 and 2) scoring seed-3 runs of
# both lengths; and each detector on the validation rows of a detector trained on the seed-3 T=80 run itself.
$PY train_detector.py $PAPER --dataset digits --r 0.2 --files_path runs/len80/digits_cnn3_percmislabeled0.2_uniform/computation4td_seed2 \
    --out results/digits_0.2_T80_lstm_detector.pth.tar
$PY train_detector.py $PAPER --dataset digits --r 0.2 --files_path runs/len80/digits_cnn3_percmislabeled0.2_uniform/computation4td_seed3 \
    --out results/digits_0.2_T80_seed3run_lstm_detector.pth.tar
$PY benchmarks/detector_transfer.py --detector checkpoints/digits_0.2_lstm_detector.pth.tar results/digits_0.2_T80_lstm_detector.pth.tar \
    --runs runs/len40/digits_cnn3_percmislabeled0.2_uniform/computation4td_seed3 \
    runs/len80/digits_cnn3_percmislabeled0.2_uniform/computation4td_seed3 --out benchmarks/results/detector_length_transfer.json
$PY benchmarks/detector_transfer.py --detector checkpoints/digits_0.2_lstm_detector.pth.tar \
    results/digits_0.2_T80_seed3run_lstm_detector.pth.tar --val_split_seed 0 \
    --runs runs/len80/digits_cnn3_percmislabeled0.2_uniform/computation4td_seed3 --out benchmarks/results/detector_length_same_run.json

# Fine-tuning instead of transfer: digits_0.2 on fashion flip 0.4 (epoch 0 = the transferred detector).
$PY train_detector.py $PAPER --dataset fashion_mnist --r 0.4 --files_path ${F}0.4_flip/$S \
    --resume checkpoints/digits_0.2_lstm_detector.pth.tar --out results/digits_0.2_finetuned_fashion_flip0.4.pth.tar

# Inference speed at T=200 (quiet machine wanted: other jobs on the cores halve these figures).
$PY benchmarks/detector_speed.py --n 200000 --threads 2 --lengths 16 32 64 200 --out benchmarks/results/detector_speed.json
