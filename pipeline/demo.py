"""The quick start: the whole chain on a noisy copy of scikit-learn's digits, on the CPU, in a few minutes.

    bash quickstart.sh [--save runs/quickstart] [--num_epochs 40] [--retrain_epochs 20] [--detector D.pth.tar]

1. STEP 1 on digits with 20% uniform noise (seed 11): train, record the training dynamics.
2. A detector: ``--detector``, else the shipped generalist ``checkpoints/generalist_lstm_detector.pth.tar``
   (trained on the pool of ``benchmarks/pool.py``, whose digits runs use seeds 1-6: it never saw this noisy
   copy), else one trained here on another noisy copy (seed + 1). The demo checks the checkpoint's
   ``files_path`` and says so if it was trained on the scored run itself.
3. STEP 3: remove the 20% most suspicious samples and retrain, with the references (no removal, random
   removal, the oracle that removes exactly the flipped samples), and relabel the same 20% (data debugging).
Ends with one table: ROC-AUC, mAP, remaining noise and test accuracy for each.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from core import cli
from labeltrace.errors import run_cli
from labeltrace.io import write_csv, write_text
from labeltrace.predict import GENERALIST, read_checkpoint
from pipeline import data_debug, denoise, generate

SHIPPED = GENERALIST


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser("quick start on digits: STEP 1, a detector, STEP 3 with references, relabelling")
    p.add_argument("--save", default="runs/quickstart")
    p.add_argument("--num_epochs", type=int, default=40, help="STEP 1 epochs")
    p.add_argument("--retrain_epochs", type=int, default=20, help="STEP 3 epochs (the paper: 300)")
    p.add_argument("--detector", default=None, help="detector checkpoint (default: shipped, else trained here)")
    p.add_argument("--remove_ratio", type=cli.ratio, default=0.2)
    p.add_argument("--seed", type=int, default=11,
                   help="seed of the scored run (the generalist's pool uses digits seeds 1-6)")
    p.add_argument("--threads", type=int, default=1, help="one thread: faster than two when the cores are shared")
    return p


def step1(a: argparse.Namespace, seed: int) -> Path:
    return generate.main(generate.get_args_parser().parse_args(
        ["--dataset", "digits", "--noise_type", "uniform", "--noise_ratio", "0.2", "--seed", str(seed),
         "--num_epochs", str(a.num_epochs), "--save", a.save, "--threads", str(a.threads), "--no_progress"]))


def fresh_detector(a: argparse.Namespace) -> Path:
    """Train a detector on the traces of another noisy copy of digits (seed + 1)."""
    from pipeline import train_detector

    run = step1(a, a.seed + 1)
    out = Path(a.save) / f"digits_0.2_lstm_detector_seed{a.seed + 1}.pth.tar"
    if not out.is_file():
        train_detector.main(train_detector.get_args_parser().parse_args(
            ["--dataset", "digits", "--r", "0.2", "--files_path", str(run), "--epochs", "10",
             "--threads", str(a.threads), "--out", str(out)]))
    return out


def in_sample(detector: str, run: Path) -> bool:
    """Whether a checkpoint says (``args.files_path``) it was trained on ``run``."""
    if not Path(detector).is_file():
        return False
    args = read_checkpoint(detector).get("args") or {}
    return any(Path(p).resolve() == run.resolve() for p in args.get("files_path") or [])


def main(a: argparse.Namespace) -> None:
    print("== STEP 1: noisy digits, training dynamics")
    run = step1(a, a.seed)
    print("\n== STEP 2: the detector")
    detector = a.detector or (str(SHIPPED) if SHIPPED.is_file() else None) or str(fresh_detector(a))
    print(f"detector: {detector}")
    if in_sample(detector, run):
        print(f"note: {detector} was trained on {run} itself: its ROC-AUC/mAP below are in-sample (optimistic)")
    stage3 = ["--dataset", "digits", "--noise_type", "uniform", "--noise_ratio", "0.2", "--seed", str(a.seed),
              "--save", a.save, "--threads", str(a.threads), "--no_progress", "--num_epochs", str(a.retrain_epochs),
              "--detector", detector]
    print("\n== STEP 3: remove and retrain (with the references)")
    runs = denoise.main(denoise.get_args_parser().parse_args(
        [*stage3, "--remove_ratio", str(a.remove_ratio), "--removal", "all"]))
    print("\n== data debugging: relabel the same samples with the ground truth, retrain")
    fixed = data_debug.main(data_debug.get_args_parser().parse_args(
        [*stage3, "--relabel_ratio", str(a.remove_ratio), "--retrain"]))
    by = {s["removal"]: s for s in runs}
    relabelled = {**fixed, "name": f"relabelled (top {a.remove_ratio:.0%}, ground truth)", "num_removed": None,
                  "removed_flipped": None}
    table = denoise.comparison_table([by["none"], by["detector"], relabelled, by["random"], by["oracle"]])
    text = denoise.format_table(table)
    write_csv(Path(a.save) / "quickstart_table.csv", table)
    write_text(Path(a.save) / "quickstart_table.md", text + "\n")
    print(f"\n== digits (seed {a.seed}), 20% uniform noise, detector {Path(detector).name}, STEP 3 "
          f"{a.retrain_epochs} epochs\n{text}")
    print(f"(ROC-AUC/mAP: the detector's; noise_after: flipped fraction of what is trained on; "
          f"written to {Path(a.save) / 'quickstart_table.md'})")


if __name__ == "__main__":
    run_cli(lambda: main(get_args_parser().parse_args()))
