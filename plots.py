"""Figures of a STEP 1 run: data map, ROC / precision-recall of the baselines (and a detector), the
assigned-label probability of clean vs flipped samples over epochs (the paper's Figure 1), training curves
(pipeline/plots.py).

    python plots.py runs/digits_cnn3_percmislabeled0.2_uniform/computation4td_seed1
    python plots.py RUN_DIR --detector checkpoints/digits_0.2_lstm_detector.pth.tar --out figs/

Writes PNGs and detection_metrics.json into --out (default: RUN_DIR/plots). See docs/baselines.md.
"""
from __future__ import annotations

from labeltrace.errors import run_cli
from pipeline.plots import get_args_parser, main  # noqa: F401 (importable from here too)

if __name__ == "__main__":
    run_cli(lambda: main(get_args_parser().parse_args()), resumable=False)
