"""Synthetic STEP 1 run folders for the detector tests: curves that look like a memorizing run.

Clean samples are learned early (assigned-label probability rises within the first epochs); mislabeled
ones stay low until a "memorization" epoch near T/2 (the LR drop), then jump to ~1 like the clean ones.
"""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch


def synth_curves(n: int, t: int, *, noise_rate: float = 0.3, seed: int = 0, memorize_at: float = 0.5,
                 jitter: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Return (curves (n, t) float32 in [0, 1], flipped (n,) bool); ``memorize_at`` in units of T."""
    rng = np.random.default_rng(seed)
    flipped = rng.random(n) < noise_rate
    epochs = np.linspace(0, 1, t)[None, :]
    learn_at = np.where(flipped, rng.normal(memorize_at, 0.05, n), rng.uniform(0.0, 0.3, n))[:, None]
    curves = 1 / (1 + np.exp(-(epochs - learn_at) * 25))
    curves = curves + rng.normal(0, jitter, (n, t))
    return np.clip(curves, 0, 1).astype(np.float32), flipped


def write_run(run_dir: Path, *, n: int = 400, t: int = 20, num_classes: int = 4, noise_rate: float = 0.3,
              seed: int = 0, num_valid: int = 0, **curve_options) -> Path:
    """Write training_dynamics.npz + metadata.pth as STEP 1 does; ``num_valid`` extra held-out samples."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed + 1)
    curves, flipped = synth_curves(n, t, noise_rate=noise_rate, seed=seed, **curve_options)
    td = np.zeros((n, t, num_classes), np.float16)
    td[:, :, 0] = curves
    td[:, :, 1:] = ((1 - curves) / (num_classes - 1))[:, :, None]
    true = rng.integers(0, num_classes, n)
    assigned = np.where(flipped, (true + 1) % num_classes, true)
    labels = np.stack([(assigned + k) % num_classes for k in range(num_classes)], 1).astype(np.int16)
    np.savez_compressed(run_dir / "training_dynamics.npz", td=td, labels=labels)
    # Full training set = n train rows scattered among num_valid held-out ones.
    total = n + num_valid
    perm = rng.permutation(total)
    train_idx, valid_idx = np.sort(perm[:n]), np.sort(perm[n:])
    full_true = rng.integers(0, num_classes, total)
    full_assigned, full_flipped = full_true.copy(), np.zeros(total, bool)
    full_true[train_idx], full_assigned[train_idx], full_flipped[train_idx] = true, assigned, flipped
    torch.save(OrderedDict(train_indices=torch.from_numpy(train_idx), valid_indices=torch.from_numpy(valid_idx),
                           true_targets=torch.from_numpy(full_true), assigned_targets=torch.from_numpy(full_assigned),
                           label_flipped=torch.from_numpy(full_flipped)), run_dir / "metadata.pth")
    return run_dir
