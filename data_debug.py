"""Data debugging entry point (paper §4.3): relabel the most suspicious samples, write the corrected labels
(JSON list by sample index, as DivideMix-style loaders read a noise file, and CSV), optionally retrain.

    python data_debug.py --dataset digits --seed 1 --noise_ratio 0.2 --save runs \
        --detector checkpoints/digits_0.2_lstm_detector.pth.tar --relabel_ratio 0.2 --retrain --num_epochs 40
    python data_debug.py --data ~/data --dataset webvision50 --seed 1 --save results \
        --detector cifar100_0.3_lstm_detector.pth.tar --relabel_ratio 0.1     # real noise: the model's labels
"""
from __future__ import annotations

from labeltrace.errors import run_cli
from pipeline.data_debug import get_args_parser, main  # noqa: F401 (importable from here too)

if __name__ == "__main__":
    run_cli(lambda: main(get_args_parser().parse_args()))
