"""A small synthetic run folder in the traces-file format of docs/formats.md, for tests that read run folders.

Clean samples climb to their label; flipped ones stay low, then are memorized after the "LR drop".
"""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd
import torch


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
    """Write training_dynamics.npz, metadata.pth and train_log.csv into ``folder``; return it."""
    folder.mkdir(parents=True, exist_ok=True)
    td, labels, true, assigned, flipped = make_traces(**kwargs)
    n, epochs = td.shape[:2]
    np.savez_compressed(folder / "training_dynamics.npz", td=td, labels=labels)
    # Metadata covers the whole training set: 10 validation samples first, then the td rows.
    def full(values):
        return torch.from_numpy(np.concatenate([np.zeros(10, values.dtype), values]))

    meta = OrderedDict(train_indices=torch.arange(10, 10 + n), valid_indices=torch.arange(10),
                       true_targets=full(true), assigned_targets=full(assigned), label_flipped=full(flipped))
    torch.save(meta, folder / "metadata.pth")
    e = np.arange(1, epochs + 1)
    pd.DataFrame({"epoch": e, "train_error": 80 / e, "train_loss": 2 / e, "valid_error": 60 / e + 5,
                  "valid_top5_error": 20 / e, "valid_loss": 1.5 / e + 0.3}).to_csv(
        folder / "train_log.csv", index=False)
    return folder
