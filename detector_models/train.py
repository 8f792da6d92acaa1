"""Supervised training of the noise detector on (curve, label_flipped) pairs.

Recipe (defaults; docs/detector.md has the measurements behind them): the pooled variant, AdamW lr 1e-3,
20 epochs, batch 64, cross-entropy, a stratified seeded 90/10 split, the best epoch chosen by validation
ROC-AUC. The original's AdamW lr 0.1 / 10 epochs / best-by-accuracy was unstable across seeds.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch import nn

from core.errors import UsageError
from core.seed import epoch_generator
from detector_models.lstm import DEFAULT_VARIANT, LSTMDetector
from detector_models.metrics import detection_metrics
from detector_models.predict import predict_p_noisy

DEFAULT_LR = 1e-3  # AdamW; 0.1 (original) diverges or collapses to a constant for some seeds
DEFAULT_EPOCHS = 20
DEFAULT_BATCH_SIZE = 64
DEFAULT_VAL_FRACTION = 0.1
GRAD_CLIP = 1.0  # max global grad norm: an LSTM over 100s of steps occasionally spikes


@dataclass
class TrainResult:
    """What a training run produced; ``state_dict``/``optimizer_state`` are from the best epoch."""

    state_dict: dict
    optimizer_state: dict
    variant: str
    train_length: int
    best_epoch: int  # 0 = the initial weights (fine-tuning that never beat its starting point)
    val_auc: float
    val_map: float
    val_accuracy: float
    val_indices: np.ndarray
    history: list[dict] = field(default_factory=list)


def stratified_split(strata: np.ndarray, *, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of ``arange(N)`` into (train, val) index arrays, stratified by ``strata`` (shape (N,))."""
    strata = np.asarray(strata)
    idx = np.arange(len(strata))
    _, counts = np.unique(strata, return_counts=True)
    n_val = math.ceil(len(idx) * val_fraction)
    if counts.min() < 2 or n_val < len(counts):
        raise UsageError(f"cannot make a stratified {val_fraction:.0%} validation split: "
                         f"{len(idx)} samples, smallest group has {counts.min()}")
    train, val = train_test_split(idx, test_size=val_fraction, random_state=seed, stratify=strata)
    return np.sort(train), np.sort(val)


def _evaluate(model: nn.Module, curves: np.ndarray, flipped: np.ndarray) -> tuple[float, float, float]:
    p = predict_p_noisy(model, curves)
    m = detection_metrics(p, flipped, remove_ratio=float(flipped.mean()))
    accuracy = float(np.mean((p >= 0.5) == flipped))
    return m.roc_auc, m.average_precision, accuracy


def train_detector(curves: np.ndarray, flipped: np.ndarray, *, variant: str = DEFAULT_VARIANT,
                   lr: float = DEFAULT_LR, epochs: int = DEFAULT_EPOCHS, batch_size: int = DEFAULT_BATCH_SIZE,
                   seed: int = 0, val_fraction: float = DEFAULT_VAL_FRACTION, strata: np.ndarray | None = None,
                   init_state: dict | None = None,
                   log: Callable[[str], None] = print) -> TrainResult:
    """Train an :class:`LSTMDetector` to predict ``flipped`` from ``curves``.

    Parameters
    ----------
    curves : ndarray of shape (N, T)
        Assigned-label probability per epoch (``td[:, :, 0]``), all of one length T.
    flipped : ndarray of shape (N,), bool
        Ground truth: True = mislabeled.
    strata : ndarray of shape (N,), optional
        Groups to stratify the split by besides ``flipped`` (e.g. which run a row came from).
    init_state : dict, optional
        A state_dict to fine-tune from; its validation AUC is measured first and kept if never beaten.

    Returns
    -------
    TrainResult
    """
    curves = np.ascontiguousarray(curves, dtype=np.float32)
    flipped = np.asarray(flipped).astype(bool)
    if curves.ndim != 2 or len(curves) != len(flipped):
        raise ValueError(f"curves must be (N, T) matching flipped (N,), got {curves.shape}, {flipped.shape}")
    if not flipped.any() or flipped.all():
        raise UsageError(f"the training traces have {int(flipped.sum())} mislabeled samples of {len(flipped)}: "
                         "a detector needs both clean and mislabeled samples")
    groups = flipped.astype(np.int64) + (2 * np.asarray(strata, dtype=np.int64) if strata is not None else 0)
    train_idx, val_idx = stratified_split(groups, val_fraction=val_fraction, seed=seed)
    torch.manual_seed(seed)
    model = LSTMDetector(variant)
    if init_state is not None:
        model.load_state_dict(init_state)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    x_train, y_train = torch.from_numpy(curves[train_idx]), torch.from_numpy(flipped[train_idx].astype(np.int64))
    x_val, y_val = curves[val_idx], flipped[val_idx]

    best = dict(epoch=-1, auc=-math.inf)
    history: list[dict] = []

    def consider(epoch: int, train_loss: float, seconds: float) -> None:
        auc, ap, acc = _evaluate(model, x_val, y_val)
        history.append(dict(epoch=epoch, train_loss=train_loss, val_auc=auc, val_map=ap, val_accuracy=acc,
                            seconds=round(seconds, 2)))
        log(f"epoch {epoch:3d}/{epochs}  train loss {train_loss:.4f}  val ROC-AUC {auc:.4f}  mAP {ap:.4f}  "
            f"acc {acc:.4f}  ({seconds:.1f}s)")
        if auc > best["auc"]:
            best.update(epoch=epoch, auc=auc, ap=ap, acc=acc, state=copy.deepcopy(model.state_dict()),
                        optimizer=copy.deepcopy(optimizer.state_dict()))

    if init_state is not None:
        consider(0, float("nan"), 0.0)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        model.train()
        order = torch.randperm(len(x_train), generator=epoch_generator(seed, epoch))
        total, count = 0.0, 0
        for i in range(0, len(order), batch_size):
            batch = order[i:i + batch_size]
            loss = loss_fn(model(x_train[batch]), y_train[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
            optimizer.step()
            total += loss.item() * len(batch)
            count += len(batch)
        consider(epoch, total / count, time.perf_counter() - start)
    return TrainResult(state_dict=best["state"], optimizer_state=best["optimizer"], variant=variant,
                       train_length=int(curves.shape[1]), best_epoch=best["epoch"], val_auc=best["auc"],
                       val_map=best["ap"], val_accuracy=best["acc"], val_indices=val_idx, history=history)
