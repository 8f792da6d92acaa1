"""STEP 2: train the LSTM noise detector on the traces of runs with synthesized noise.

    python train_detector.py --dataset digits --r 0.2 --files_path runs/digits_.../computation4td_seed1
    python train_detector.py --dataset pooled --r 0.3 --files_path RUN_A --files_path RUN_B --out det.pth.tar
    python train_detector.py --dataset fashion_mnist --r 0.2 --files_path RUN --resume checkpoints/X.pth.tar

Writes ``<dataset>_<r>_lstm_detector.pth.tar`` (or ``--out``), the best epoch by validation ROC-AUC, whose
AUC and mAP are printed and stored in the checkpoint (docs/detector.md).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from core.errors import UsageError, run_cli
from core.io import torch_save
from detector_models.lstm import DEFAULT_VARIANT, VARIANTS
from detector_models.predict import load_detector, make_checkpoint, read_checkpoint
from detector_models.traces import load_run, resample_time
from detector_models.train import DEFAULT_BATCH_SIZE, DEFAULT_EPOCHS, DEFAULT_LR, DEFAULT_VAL_FRACTION, \
    train_detector


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Noise detector training (STEP 2)")
    p.add_argument("--r", type=float, default=0.2, help="noise ratio of the training runs (names the output)")
    p.add_argument("--dataset", default="cifar10", help="dataset name (names the output)")
    p.add_argument("--files_path", action="append", required=True,
                   help="STEP 1 run folder (training_dynamics.npz + metadata.pth); repeat to pool runs")
    p.add_argument("--resume", default=None, help="detector checkpoint to fine-tune (its variant and length)")
    p.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    p.add_argument("--lr", type=float, default=DEFAULT_LR, help="AdamW learning rate")
    p.add_argument("--batch_size", type=int, default=DEFAULT_BATCH_SIZE)
    p.add_argument("--seed", type=int, default=0, help="weights init, batch order and validation split")
    p.add_argument("--val_fraction", type=float, default=DEFAULT_VAL_FRACTION)
    p.add_argument("--variant", choices=VARIANTS, default=None,
                   help=f"input variant (default {DEFAULT_VARIANT}; with --resume, the checkpoint's)")
    p.add_argument("--length", type=int, default=None,
                   help="resample every run to this many epochs (default: the first run's, or --resume's)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--out", default=None, help="checkpoint path (default <dataset>_<r>_lstm_detector.pth.tar)")
    return p


def default_name(dataset: str, r: float) -> str:
    """``cifar10_0.2_lstm_detector.pth.tar``: the original's name for one-decimal rates, exact for others."""
    return f"{dataset}_{r:g}_lstm_detector.pth.tar"


def main(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    if args.epochs < 1 or args.batch_size < 1 or not 0 < args.val_fraction < 1:
        raise UsageError("--epochs and --batch_size must be >= 1 and --val_fraction in (0, 1)")
    init_state, variant, length = None, args.variant or DEFAULT_VARIANT, args.length
    if args.resume:
        model, info = load_detector(args.resume)  # validates variant and shapes before we train for minutes
        if args.variant and args.variant != info.variant:
            raise UsageError(f"--variant {args.variant} conflicts with {args.resume}, a {info.variant} detector")
        init_state, variant, length = model.state_dict(), info.variant, length or info.train_length
        print(f"fine-tuning {args.resume} ({info.variant}, T={info.train_length}, epoch {info.epoch})")
    runs = [load_run(path) for path in args.files_path]
    length = length or runs[0].num_epochs
    curves, flipped, strata = [], [], []
    for i, (path, run) in enumerate(zip(args.files_path, runs)):
        if run.label_flipped is None:
            raise UsageError(f"{path}: no label_flipped in metadata.pth: cannot train a detector on it")
        note = f", resampled to T={length}" if run.num_epochs != length else ""
        print(f"{path}: {len(run.td)} traces, T={run.num_epochs}, {run.label_flipped.mean():.1%} flipped{note}")
        curves.append(resample_time(run.curves, length))
        flipped.append(run.label_flipped)
        strata.append(np.full(len(run.td), i))
    result = train_detector(np.concatenate(curves), np.concatenate(flipped), variant=variant, lr=args.lr,
                            epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                            val_fraction=args.val_fraction, strata=np.concatenate(strata),
                            init_state=init_state)
    out = Path(args.out or default_name(args.dataset, args.r))
    out.parent.mkdir(parents=True, exist_ok=True)
    ckpt = make_checkpoint(result.state_dict, epoch=result.best_epoch, best_prec=result.val_accuracy,
                           optimizer_state=result.optimizer_state, variant=result.variant,
                           train_length=result.train_length, val_auc=result.val_auc, val_map=result.val_map,
                           args=json.loads(json.dumps(vars(args))), history=result.history)
    torch_save(ckpt, out)
    read_checkpoint(out)  # what we wrote must load under weights_only, as every reader will load it
    print(f"best epoch {result.best_epoch}: val ROC-AUC {result.val_auc:.4f}  mAP {result.val_map:.4f}  "
          f"(acc {result.val_accuracy:.4f}, {result.variant}, T={result.train_length}) -> {out}")
    return dict(path=str(out), val_auc=result.val_auc, val_map=result.val_map, best_epoch=result.best_epoch)


if __name__ == "__main__":
    run_cli(lambda: main(get_args_parser().parse_args()))
