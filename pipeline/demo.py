"""The quick start: STEP 1 on a noisy copy of digits, and how well its traces reveal the flipped labels.

    bash quickstart.sh [--save runs/quickstart] [--num_epochs 40]
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from core.errors import run_cli
from pipeline import generate


def main() -> None:
    p = argparse.ArgumentParser("quick start on digits")
    p.add_argument("--save", default="runs/quickstart")
    p.add_argument("--num_epochs", type=int, default=40)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    run_dir = generate.main(generate.get_args_parser().parse_args(
        ["--dataset", "digits", "--noise_type", "uniform", "--noise_ratio", "0.2", "--seed", str(a.seed),
         "--num_epochs", str(a.num_epochs), "--save", a.save, "--threads", str(a.threads), "--no_progress"]))
    with np.load(run_dir / "training_dynamics.npz") as z:
        p_assigned = z["td"][:, :, 0].astype(np.float32).mean(1)
    flipped = torch.load(run_dir / "metadata.pth", weights_only=True)["label_flipped"].numpy()
    print(f"\nmean assigned-label probability as a noise score: ROC-AUC {roc_auc_score(flipped, -p_assigned):.4f}, "
          f"mAP {average_precision_score(flipped, -p_assigned):.4f} ({flipped.sum()} of {len(flipped)} flipped)")


if __name__ == "__main__":
    run_cli(main)
