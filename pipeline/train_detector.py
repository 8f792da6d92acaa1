"""STEP 2: train the LSTM noise detector on the traces of runs with synthesized noise.

    python train_detector.py --dataset digits --r 0.2 --files_path runs/digits_.../computation4td_seed1
    python train_detector.py --dataset pooled --r 0.3 --td_run RUN_A --td_run RUN_B --out det.pth.tar
    python train_detector.py --dataset fashion_mnist --r 0.2 --files_path RUN --resume checkpoints/X.pth.tar

Writes ``<dataset>_<r>_lstm_detector.pth.tar`` (or ``--out``), the best epoch by validation ROC-AUC, whose
AUC and mAP are printed and stored in the checkpoint (docs/detector.md).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from core import cli
from labeltrace.cli import set_threads
from labeltrace.errors import UsageError
from labeltrace.io import check_writable, torch_save
from labeltrace.features import FEATURES, check_features
from labeltrace.lstm import DEFAULT_ANCHOR, DEFAULT_FEATURES, DEFAULT_VARIANT, VARIANTS
from labeltrace.predict import load_detector, non_finite_weights, read_checkpoint
from labeltrace.runfiles import check_output_file
from labeltrace.traces import load_run
from detector_models.train import DEFAULT_BATCH_SIZE, DEFAULT_EPOCHS, DEFAULT_LR, DEFAULT_VAL_FRACTION, DetectorRecipe, \
    pool_runs, train_detector

MAX_VAL_FRACTION = 0.5
val_fraction = cli.in_range(0.0, MAX_VAL_FRACTION, low_open=True, high_open=False,
                            what="(the rest trains the detector)")
traces_per_run = cli.checked(int, lambda v: v >= 10, "at least 10 traces per run")
# The detector reads every epoch in sequence: its time grows with the length (3 s per epoch of 200 traces at
# T=1000 on one CPU thread, minutes at 100,000), and a run records at most a few hundred epochs to resample.
MAX_LENGTH = 1000
epochs_length = cli.checked(cli.checked(int, lambda v: v >= 1, "a positive number of epochs"),
                            lambda v: v <= MAX_LENGTH, f"at most {MAX_LENGTH} epochs (a run records a few hundred)")


def get_args_parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(description="Noise detector training (STEP 2)")
    p.add_argument("--r", type=cli.ratio, default=0.2, help="noise ratio of the training runs (names the output)")
    p.add_argument("--dataset", default="cifar10", help="dataset name (names the output)")
    p.add_argument("--files_path", "--td_run", dest="files_path", action="append", required=True,
                   help="STEP 1 run folder (training_dynamics.npz + metadata.pth); repeat to pool runs")
    p.add_argument("--resume", default=None, help="detector checkpoint to fine-tune (its variant and length)")
    p.add_argument("--num_epochs", "--epochs", dest="epochs", type=cli.positive_int, default=DEFAULT_EPOCHS,
                   help=f"detector training epochs (default {DEFAULT_EPOCHS})")
    p.add_argument("--lr", type=cli.learning_rate, default=DEFAULT_LR, help="AdamW learning rate")
    p.add_argument("--batch_size", type=cli.positive_int, default=DEFAULT_BATCH_SIZE)
    p.add_argument("--seed", type=cli.seed, default=0, help="weights init, batch order and validation split")
    p.add_argument("--val_fraction", type=val_fraction, default=DEFAULT_VAL_FRACTION)
    p.add_argument("--variant", choices=VARIANTS, default=None,
                   help=f"input variant (default {DEFAULT_VARIANT}; with --resume, the checkpoint's)")
    p.add_argument("--features", default=None,
                   help=f"comma-separated per-epoch inputs from {', '.join(FEATURES)} (default "
                        f"{','.join(DEFAULT_FEATURES)}; prob alone is the paper's; with --resume, the checkpoint's)")
    p.add_argument("--anchor", action=argparse.BooleanOptionalAction, default=None,
                   help=f"linear term on each feature's time-mean (default {'on' if DEFAULT_ANCHOR else 'off'}; "
                        "with --resume, the checkpoint's)")
    p.add_argument("--length", type=epochs_length, default=None,
                   help="resample every run to this many epochs (default: the first run's, or --resume's)")
    p.add_argument("--max_per_run", type=traces_per_run, default=None,
                   help="train on at most this many traces of each run (seeded, stratified draw)")
    p.add_argument("--target", choices=("flipped", "injected"), default="flipped",
                   help="what the detector learns to find: the runs' synthetic noise (label_flipped), or the labels "
                        "runner.py --calibrate injected on top (self-calibration, for data without ground truth)")
    p.add_argument("--threads", type=cli.non_negative_int, default=1, help="torch CPU threads (0: torch's default)")
    p.add_argument("--out", default=None, help="checkpoint path (default <dataset>_<r>_lstm_detector.pth.tar)")
    return p


def default_name(dataset: str, r: float) -> str:
    """``cifar10_0.2_lstm_detector.pth.tar``: the original's name for one-decimal rates, exact for others."""
    return f"{dataset}_{r:g}_lstm_detector.pth.tar"


def main(args: argparse.Namespace) -> dict:
    set_threads(args.threads)  # the numeric flags were checked while parsing (core.cli)
    # Checked before minutes of training: the checkpoint must be writable, the one to fine-tune a torch file.
    out = Path(args.out or default_name(args.dataset, args.r))
    check_writable(out, flag="--out", folder=False)
    # --out may be the --resume checkpoint (fine-tuned in place, atomically), never a run's file.
    check_output_file(out, flag="--out", inputs=tuple(args.files_path))
    seen = {}
    for path in args.files_path:  # the same run twice would be pooled twice: its validation rows in training
        key = str(Path(path).resolve())
        if key in seen:
            raise UsageError(f"--files_path: {path} is given twice (also as {seen[key]}): give each run once")
        seen[key] = path
    try:
        features = check_features(args.features) if args.features is not None else None
    except ValueError as exc:
        raise UsageError(f"--features: {exc}") from None
    init_state, variant, length = None, args.variant or DEFAULT_VARIANT, args.length
    anchor = DEFAULT_ANCHOR if args.anchor is None else args.anchor
    if args.resume:
        # validates file, variant and shapes before we train for minutes
        model, info = load_detector(args.resume, what="detector checkpoint (--resume)")
        for flag, asked, has in (("--variant", args.variant, info.variant), ("--features", features, info.features),
                                 ("--anchor", args.anchor, info.anchor)):
            if asked is not None and asked != has:
                show = (lambda v: ",".join(v) if isinstance(v, tuple) else v)  # noqa: E731
                raise UsageError(f"{flag} {show(asked)} conflicts with {args.resume}, which has {show(has)}")
        init_state, variant, length = model.state_dict(), info.variant, length or info.train_length
        features, anchor = info.features, info.anchor
        print(f"fine-tuning {args.resume} ({info.variant}, features {','.join(features)}, T={info.train_length}, "
              f"epoch {info.epoch})")
    features = features or DEFAULT_FEATURES
    runs = [load_run(path) for path in args.files_path]
    if args.target == "injected":
        runs = [run.injected_as_truth() for run in runs]
    length = length or runs[0].num_epochs
    inputs, flipped, strata = pool_runs(runs, features=features, length=length, max_per_run=args.max_per_run,
                                        seed=args.seed)  # refuses a run without label_flipped, naming it
    for path, run in zip(args.files_path, runs):
        note = f", resampled to T={length}" if run.num_epochs != length else ""
        print(f"{path}: {len(run.td)} traces, T={run.num_epochs}, {run.label_flipped.mean():.1%} {args.target}{note}")
    recipe = DetectorRecipe(variant=variant, features=features, anchor=anchor, lr=args.lr, epochs=args.epochs,
                            batch_size=args.batch_size, val_fraction=args.val_fraction, seed=args.seed)
    result = train_detector(inputs, flipped, recipe, strata=strata, init_state=init_state)
    if non_finite_weights(result.state_dict):  # _BestEpoch refuses a diverged epoch; never save one
        raise UsageError("the trained detector has NaN or infinite weights: nothing saved (lower --lr?)")
    out.parent.mkdir(parents=True, exist_ok=True)
    torch_save(result.checkpoint(args=json.loads(json.dumps(vars(args)))), out)
    read_checkpoint(out)  # what we wrote must load under weights_only, as every reader will load it
    print(f"best epoch {result.best_epoch}: val ROC-AUC {result.val_auc:.4f}  mAP {result.val_map:.4f}  "
          f"(acc {result.val_accuracy:.4f}, {result.variant}, features {','.join(result.features)}"
          f"{', anchored' if result.anchor else ''}, T={result.train_length}) -> {out}")
    return dict(path=str(out), val_auc=result.val_auc, val_map=result.val_map, best_epoch=result.best_epoch)
