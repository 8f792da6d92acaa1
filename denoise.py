"""STEP 3 entry point: score a STEP 1 run with a detector, remove the most suspicious samples, retrain.

    python denoise.py --dataset digits --seed 1 --noise_ratio 0.2 --noise_type uniform --save runs \
        --detector checkpoints/digits_0.2_lstm_detector.pth.tar --remove_ratio 0.2 --num_epochs 40
    python denoise.py ... --removal all      # + random removal, the oracle (flipped removed), no removal; one table
    bash small_dataset_sym_denoise.sh <datadir> <dataset> <seed> <noise_ratio> <noise_type> <save> <detector> <ratio>
    bash large_dataset_denoise.sh <datadir> <dataset> <seed> <save> <detector> <ratio>
A killed retraining resumes from its last finished epoch when the same command is run again.
"""
from __future__ import annotations

from labeltrace.errors import run_cli
from pipeline.denoise import get_args_parser, main  # noqa: F401 (importable from here too)

if __name__ == "__main__":
    run_cli(lambda: main(get_args_parser().parse_args()))
