"""STEP 2: train the LSTM noise detector on the traces of runs with synthesized noise (pipeline/train_detector.py).

    python train_detector.py --dataset digits --r 0.2 --td_run runs/digits_.../computation4td_seed1
    python train_detector.py --dataset pooled --r 0.3 --td_run RUN_A --td_run RUN_B --out det.pth.tar
    python train_detector.py --dataset fashion_mnist --r 0.2 --td_run RUN --resume checkpoints/X.pth.tar

``--td_run`` is also spelled ``--files_path`` (the original's), ``--num_epochs`` also ``--epochs``.
"""
from __future__ import annotations

from labeltrace.errors import run_cli
from pipeline.train_detector import default_name, get_args_parser, main  # noqa: F401 (importable from here too)

if __name__ == "__main__":
    run_cli(lambda: main(get_args_parser().parse_args()), resumable=False)  # an interrupted training starts over
