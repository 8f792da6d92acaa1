"""STEP 1 entry point: corrupt labels, train a classifier, record training dynamics.

    python runner.py --dataset digits --noise_ratio 0.2 --noise_type uniform --num_epochs 40 --save runs
    python runner.py --data ~/data --dataset cifar10 --seed 1 --noise_ratio 0.2 --noise_type uniform \
        --net_type resnet --depth 32 --save results          # the paper's recipe: 200 epochs
A killed run resumes from its last finished epoch when the same command is run again.
"""
from __future__ import annotations

from core.distributed import end_worker, launched_by_torchrun
from labeltrace.errors import run_cli
from pipeline.generate import get_args_parser, main  # noqa: F401 (importable from here too)

if __name__ == "__main__":
    run_cli(lambda: main(get_args_parser().parse_args()))
    if launched_by_torchrun():
        end_worker(0)  # a finished worker skips the interpreter teardown where gloo may abort (core/distributed.py)
