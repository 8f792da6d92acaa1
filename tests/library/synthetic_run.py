"""Synthetic STEP 1 run folders in the traces-file format of docs/formats.md, for every test that reads one.

Two kinds of traces, one writer (:func:`write_folder`):

- :func:`make_traces` / :func:`make_run`: full softmax traces over ``classes`` classes from random logits; clean
  samples climb to their label, flipped ones stay low, then are memorized after the "LR drop" (t >= 0.6).
  The folder has 10 validation samples first in the metadata, then the td rows, and a ``train_log.csv``.
- :func:`synth_curves` / :func:`write_run`: assigned-label probability curves that look like a memorizing run
  (clean samples learned within the first 30% of the epochs, mislabeled ones jump to ~1 at ``memorize_at``),
  the rest of the mass spread evenly over the other classes; ``num_valid`` held-out samples scattered among
  the training rows in the metadata; no ``train_log.csv``.
"""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd
import torch


def write_folder(folder: Path, td: np.ndarray, labels: np.ndarray, *, train_indices: np.ndarray,
                 valid_indices: np.ndarray, true_targets: np.ndarray, assigned_targets: np.ndarray,
                 label_flipped: np.ndarray, train_log: bool = False) -> Path:
    """Write ``training_dynamics.npz`` (td, labels) and ``metadata.pth`` (over the full training set: row n of
    ``td`` is ``train_indices[n]``), and with ``train_log`` a ``train_log.csv`` of decreasing errors, as STEP 1
    does; return ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(folder / "training_dynamics.npz", td=td, labels=labels)
    meta = OrderedDict(train_indices=train_indices, valid_indices=valid_indices, true_targets=true_targets,
                       assigned_targets=assigned_targets, label_flipped=label_flipped)
    torch.save(OrderedDict((k, torch.from_numpy(np.asarray(v))) for k, v in meta.items()), folder / "metadata.pth")
    if train_log:
        e = np.arange(1, td.shape[1] + 1)
        pd.DataFrame({"epoch": e, "train_error": 80 / e, "train_loss": 2 / e, "valid_error": 60 / e + 5,
                      "valid_top5_error": 20 / e, "valid_loss": 1.5 / e + 0.3}).to_csv(
            folder / "train_log.csv", index=False)
    return folder


# -- full softmax traces ----------------------------------------------------------------------------------------

def make_traces(n: int = 60, epochs: int = 8, classes: int = 4, noise: float = 0.25, seed: int = 0):
    """(td float16 [N,T,C], labels int16 [N,C], true int64 [N], assigned int64 [N], flipped bool [N])."""
    rng = np.random.default_rng(seed)
    true = rng.integers(0, classes, n)
    flipped = rng.random(n) < noise
    flipped[:2] = [True, False]  # both groups always present
    assigned = np.where(flipped, (true + rng.integers(1, classes, n)) % classes, true)
    t = np.linspace(0, 1, epochs)
    logits = rng.normal(0, 0.3, (n, epochs, classes))
    rows = np.arange(n)
    logits[rows, :, true] += np.where(flipped[:, None], 3 * t * (t < 0.6), 4 * t)
    logits[rows, :, assigned] += np.where(flipped[:, None], 8 * (t >= 0.6) * t, 0.0)
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    mean = probs.mean(1)
    labels = np.empty((n, classes), np.int16)
    for i in range(n):
        others = [c for c in np.argsort(-mean[i], kind="stable") if c != assigned[i]]
        labels[i] = [assigned[i], *others]
    td = np.take_along_axis(probs, labels[:, None, :].astype(np.intp), axis=2).astype(np.float16)
    return td, labels, true, assigned, flipped


def make_run(folder: Path, **kwargs) -> Path:
    """:func:`make_traces` (``kwargs``) written into ``folder`` with a ``train_log.csv``; return it. The metadata
    covers 10 validation samples first (index 0-9, label 0, not flipped), then the td rows (10 .. 10+N-1)."""
    td, labels, true, assigned, flipped = make_traces(**kwargs)
    n = len(td)

    def full(values):
        return np.concatenate([np.zeros(10, values.dtype), values])

    return write_folder(folder, td, labels, train_indices=np.arange(10, 10 + n), valid_indices=np.arange(10),
                        true_targets=full(true), assigned_targets=full(assigned), label_flipped=full(flipped),
                        train_log=True)


# -- assigned-label curves of a memorizing run ------------------------------------------------------------------

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
    """:func:`synth_curves` as channel 0 of a run folder (channel k = class (assigned + k) mod C); flipped
    samples are assigned (true + 1) mod C; ``num_valid`` extra held-out samples; return ``run_dir``."""
    rng = np.random.default_rng(seed + 1)
    curves, flipped = synth_curves(n, t, noise_rate=noise_rate, seed=seed, **curve_options)
    td = np.zeros((n, t, num_classes), np.float16)
    td[:, :, 0] = curves
    td[:, :, 1:] = ((1 - curves) / (num_classes - 1))[:, :, None]
    true = rng.integers(0, num_classes, n)
    assigned = np.where(flipped, (true + 1) % num_classes, true)
    labels = np.stack([(assigned + k) % num_classes for k in range(num_classes)], 1).astype(np.int16)
    # Full training set = n train rows scattered among num_valid held-out ones.
    total = n + num_valid
    perm = rng.permutation(total)
    train_idx, valid_idx = np.sort(perm[:n]), np.sort(perm[n:])
    full_true = rng.integers(0, num_classes, total)
    full_assigned, full_flipped = full_true.copy(), np.zeros(total, bool)
    full_true[train_idx], full_assigned[train_idx], full_flipped[train_idx] = true, assigned, flipped
    return write_folder(run_dir, td, labels, train_indices=train_idx, valid_indices=valid_idx,
                        true_targets=full_true, assigned_targets=full_assigned, label_flipped=full_flipped)
