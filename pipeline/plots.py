"""Figures of a STEP 1 run: data map, ROC / precision-recall of the baselines (and a detector), the
assigned-label probability of clean vs flipped samples over epochs (the paper's Figure 1), training curves.

    python plots.py runs/digits_cnn3_percmislabeled0.2_uniform/computation4td_seed1
    python plots.py RUN_DIR --detector checkpoints/digits_0.2_lstm_detector.pth.tar --out figs/

Writes PNGs and detection_metrics.json into --out (default: RUN_DIR/plots). See docs/baselines.md.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from labeltrace import cli
from labeltrace.io import check_writable


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_run_dir(parser, help="STEP 1 run folder (training_dynamics.npz, metadata.pth, train_log.csv)")
    parser.add_argument("--detector", type=Path, default=None,
                        help="detector checkpoint (.pth.tar): its p_noisy joins the ROC/PR plots")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: RUN_DIR/plots)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for the detector (default 1; 0: torch's default)")
    return parser


def main(args: argparse.Namespace) -> None:
    import torch

    from labeltrace.traces import load_run
    from plotting.run_plots import make_plots

    cli.set_threads(args.threads)
    run_dir = Path(cli.run_dir(args))
    out = args.out or run_dir / "plots"
    check_writable(out, flag="--out", folder=True)  # before the detector runs and the first figure is drawn
    extra = {}
    if args.detector is not None:
        from labeltrace.predict import load_detector, score

        model, info = load_detector(args.detector, what="detector checkpoint (--detector)")
        run = load_run(run_dir)
        p_noisy, note = score(model, info, run.td, labels=run.assigned, neighbours=run.neighbours)
        if note:
            print(note)
        extra[f"detector ({info.variant})"] = p_noisy
    written = make_plots(run_dir, out, extra_scores=extra)
    print(f"wrote {len(written)} figures and detection_metrics.json to {out}")
