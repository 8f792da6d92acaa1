"""What every example trains: scikit-learn's digits (1,797 8x8 images, bundled, offline) with a seeded 20% of
the labels replaced by another class, a small MLP, and the report each example ends with."""
from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.metrics import roc_auc_score

from labeltrace import find_label_issues, get_label_quality_scores

NUM_CLASSES = 10


def noisy_digits(rate: float = 0.2, seed: int = 0):
    """Images (N, 64) float32 in [0, 1], true labels (N,), noisy labels (N,), which were flipped (N,) bool."""
    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(seed)
    flipped = rng.random(len(y)) < rate
    noisy = np.where(flipped, (y + rng.integers(1, NUM_CLASSES, len(y))) % NUM_CLASSES, y)
    return torch.tensor(x / 16, dtype=torch.float32), y, noisy, flipped


def mlp(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, NUM_CLASSES))


def report(run_dir, flipped: np.ndarray) -> float:
    """Print the ten most suspicious samples and the ROC-AUC of the ranking against the synthesized noise."""
    top = find_label_issues(run_dir, num_to_find=10, return_indices_ranked_by="p_noisy")
    auc = roc_auc_score(flipped, 1 - get_label_quality_scores(run_dir))
    print(f"most suspicious samples: {top.tolist()} ({int(flipped[top].sum())} of 10 truly flipped)")
    print(f"ROC-AUC {auc:.4f} against the {int(flipped.sum())} flipped labels")
    return auc
