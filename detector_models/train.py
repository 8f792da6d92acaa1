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

from labeltrace.errors import UsageError
from core.seed import epoch_generator
from labeltrace.features import (PAPER_FEATURES, detector_inputs, needs_context, needs_labels, needs_neighbours,
                                 run_context)
from labeltrace.lstm import DEFAULT_VARIANT, LSTMDetector
from labeltrace.metrics import detection_metrics
from labeltrace.predict import make_checkpoint, non_finite_weights, predict_p_noisy

DEFAULT_LR = 1e-3  # AdamW; 0.1 (original) diverges or collapses to a constant for some seeds
DEFAULT_EPOCHS = 20
DEFAULT_BATCH_SIZE = 64
DEFAULT_VAL_FRACTION = 0.1
RESIDUAL_INIT_STD = 0.05  # anchored models: the LSTM classifier's initial weights
GRAD_CLIP = 1.0  # max global grad norm: an LSTM over 100s of steps occasionally spikes


@dataclass
class TrainResult:
    """What a training run produced; ``state_dict``/``optimizer_state`` are from the best epoch."""

    state_dict: dict
    optimizer_state: dict
    variant: str
    train_length: int
    features: tuple[str, ...]
    anchor: bool
    best_epoch: int  # 0 = the initial weights (fine-tuning that never beat its starting point)
    val_auc: float
    val_map: float
    val_accuracy: float
    val_indices: np.ndarray
    history: list[dict] = field(default_factory=list)

    def checkpoint(self, **extra) -> dict:
        """The checkpoint dict of the best epoch (:func:`~labeltrace.predict.make_checkpoint`), the original's
        ``best_prec`` holding its validation accuracy; ``extra`` keys are stored beside."""
        return make_checkpoint(self.state_dict, epoch=self.best_epoch, best_prec=self.val_accuracy,
                               optimizer_state=self.optimizer_state, variant=self.variant,
                               train_length=self.train_length, features=self.features, anchor=self.anchor,
                               val_auc=self.val_auc, val_map=self.val_map, history=self.history, **extra)


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
    if not np.isfinite(p).all():
        raise UsageError(f"the detector outputs NaN for {int(np.sum(~np.isfinite(p)))} validation traces: "
                         "training diverged, nothing saved (lower --lr?)")
    m = detection_metrics(p, flipped, remove_ratio=float(flipped.mean()))
    accuracy = float(np.mean((p >= 0.5) == flipped))
    return m.roc_auc, m.average_precision, accuracy


def _stratum_weights(strata: np.ndarray | None, n: int) -> np.ndarray:
    """Per-sample loss weights, mean 1, that give every stratum (run) the same total weight: a pool of runs of
    1,500 and 10,000 samples then teaches both regimes, not mostly the larger run's."""
    if strata is None:
        return np.ones(n, dtype=np.float32)
    _, inverse, counts = np.unique(strata, return_inverse=True, return_counts=True)
    weights = 1.0 / counts[inverse]
    return (weights * n / weights.sum()).astype(np.float32)


def _init_anchor(model: LSTMDetector, inputs: np.ndarray, flipped: np.ndarray, weights: np.ndarray) -> None:
    """Start as the logistic regression of ``flipped`` on each feature's time-mean, the LSTM's share at zero."""
    from sklearn.linear_model import LogisticRegression

    means = inputs.mean(axis=1, dtype=np.float64)
    fit = LogisticRegression(C=100.0, max_iter=1000).fit(means, flipped, sample_weight=weights)
    with torch.no_grad():
        model.anchor.weight.zero_()
        model.anchor.bias.zero_()
        model.anchor.weight[1] = torch.as_tensor(fit.coef_[0], dtype=torch.float32)
        model.anchor.bias[1] = float(fit.intercept_[0])
        model.classifier.weight.zero_()
        model.classifier.bias.zero_()


def warp_time(x: torch.Tensor, gamma: float) -> torch.Tensor:
    """Resample the time axis of ``x`` (B, T, F) at positions ``(t / (T-1)) ** gamma``: gamma < 1 moves
    what happened late earlier, gamma > 1 the reverse; first and last epochs stay in place."""
    t = x.shape[1]
    pos = torch.linspace(0.0, 1.0, t, dtype=torch.float64) ** gamma * (t - 1)
    left = pos.floor().long().clamp(max=t - 2)
    frac = (pos - left).to(x.dtype)[None, :, None]
    return x[:, left] * (1 - frac) + x[:, left + 1] * frac


@dataclass(frozen=True)
class DetectorRecipe:
    """How a detector is trained: its design (``variant``, ``features``, ``anchor``) and the optimisation. The
    defaults are the measured recipe of the module docstring with the paper's one input."""

    variant: str = DEFAULT_VARIANT
    features: tuple[str, ...] = PAPER_FEATURES  # what the F input channels are (labeltrace/features.py)
    anchor: bool = False  # the linear term on feature means (LSTMDetector); a fresh model starts as its logistic fit
    lr: float = DEFAULT_LR  # AdamW
    epochs: int = DEFAULT_EPOCHS
    batch_size: int = DEFAULT_BATCH_SIZE
    val_fraction: float = DEFAULT_VAL_FRACTION
    seed: int = 0  # weights init, batch order and the validation split
    # Augmentation measured by benchmarks/lodo.py (not adopted): each training batch warped in time by
    # :func:`warp_time` with gamma = exp(u), u ~ U(-time_warp, time_warp); 0 = off.
    time_warp: float = 0.0


def train_detector(curves: np.ndarray, flipped: np.ndarray, recipe: DetectorRecipe = DetectorRecipe(), *,
                   strata: np.ndarray | None = None, init_state: dict | None = None,
                   log: Callable[[str], None] = print) -> TrainResult:
    """Train an :class:`LSTMDetector` to predict ``flipped`` from per-epoch inputs, as ``recipe`` says.

    Parameters
    ----------
    curves : ndarray of shape (N, T) or (N, T, F)
        The detector's input, all of one length T: ``td[:, :, 0]`` for the paper's detector, else
        ``feature_stack(td, recipe.features)`` (F = ``len(recipe.features)``).
    flipped : ndarray of shape (N,), bool
        Ground truth: True = mislabeled.
    strata : ndarray of shape (N,), optional
        Which run each row came from: the split is stratified by it and every run weighs the same in the loss.
    init_state : dict, optional
        A state_dict to fine-tune from; its validation AUC is measured first and kept if never beaten.

    Returns
    -------
    TrainResult
    """
    variant, features, anchor, seed = recipe.variant, tuple(recipe.features), recipe.anchor, recipe.seed
    curves, flipped = _check_inputs(curves, flipped, features)
    groups = flipped.astype(np.int64) + (2 * np.asarray(strata, dtype=np.int64) if strata is not None else 0)
    train_idx, val_idx = stratified_split(groups, val_fraction=recipe.val_fraction, seed=seed)
    weights = _stratum_weights(strata, len(flipped))[train_idx]
    torch.manual_seed(seed)
    model = LSTMDetector(variant, features=features, anchor=anchor)
    if init_state is not None:
        model.load_state_dict(init_state)
    elif anchor:
        _init_anchor(model, curves[train_idx], flipped[train_idx], weights)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr)
    best = _BestEpoch(model, optimizer, curves[val_idx], flipped[val_idx], epochs=recipe.epochs, log=log)
    if init_state is not None or anchor:  # the starting point competes: fine-tuning or the anchor never loses
        best.consider(0, float("nan"), 0.0)
    if init_state is None and anchor:
        # A zero classifier over a near-constant LSTM summary is a saddle point (no gradient reaches the LSTM):
        # the residual starts small instead, the anchor-only model having been scored above.
        with torch.no_grad():
            model.classifier.weight.normal_(0.0, RESIDUAL_INIT_STD, generator=epoch_generator(seed, 0))
    batches = _Batches(torch.from_numpy(curves[train_idx]), torch.from_numpy(flipped[train_idx].astype(np.int64)),
                       torch.from_numpy(weights), batch_size=recipe.batch_size, seed=seed,
                       time_warp=recipe.time_warp)
    for epoch in range(1, recipe.epochs + 1):
        start = time.perf_counter()
        loss = _train_epoch(model, optimizer, batches, epoch)
        best.consider(epoch, loss, time.perf_counter() - start)
    return TrainResult(state_dict=best.state, optimizer_state=best.optimizer_state, variant=variant,
                       train_length=int(curves.shape[1]), features=features, anchor=anchor,
                       best_epoch=best.epoch, val_auc=best.auc, val_map=best.ap, val_accuracy=best.accuracy,
                       val_indices=val_idx, history=best.history)


def _check_inputs(curves: np.ndarray, flipped: np.ndarray, features: tuple[str, ...]):
    """``curves`` as float32 (N, T, F) and ``flipped`` as bool (N,), or ``ValueError`` / ``UsageError``."""
    curves = np.ascontiguousarray(curves, dtype=np.float32)
    if curves.ndim == 2:
        curves = curves[:, :, None]
    flipped = np.asarray(flipped).astype(bool)
    if curves.ndim != 3 or len(curves) != len(flipped) or curves.shape[2] != len(features):
        raise ValueError(f"curves must be (N, T, {len(features)}) matching flipped (N,), "
                         f"got {curves.shape}, {flipped.shape}")
    if not flipped.any() or flipped.all():
        raise UsageError(f"the training traces have {int(flipped.sum())} mislabeled samples of {len(flipped)}: "
                         "a detector needs both clean and mislabeled samples")
    return curves, flipped


class _BestEpoch:
    """Scores the model on the validation rows after each epoch, logs it, and keeps the best state by ROC-AUC."""

    def __init__(self, model: nn.Module, optimizer, x_val: np.ndarray, y_val: np.ndarray, *, epochs: int,
                 log: Callable[[str], None]) -> None:
        self.model, self.optimizer, self.x_val, self.y_val = model, optimizer, x_val, y_val
        self.epochs, self.log = epochs, log
        self.epoch, self.auc, self.ap, self.accuracy = -1, -math.inf, float("nan"), float("nan")
        self.state: dict = {}
        self.optimizer_state: dict = {}
        self.history: list[dict] = []

    def consider(self, epoch: int, train_loss: float, seconds: float) -> None:
        bad = non_finite_weights(self.model.state_dict())
        if bad or (epoch > 0 and not math.isfinite(train_loss)):  # epoch 0 (the starting point) has no loss
            raise UsageError(f"detector epoch {epoch}: training loss {train_loss:.4g}, {bad} NaN or infinite "
                             "weights: training diverged, nothing saved (lower --lr?)")
        auc, ap, acc = _evaluate(self.model, self.x_val, self.y_val)
        self.history.append(dict(epoch=epoch, train_loss=train_loss, val_auc=auc, val_map=ap, val_accuracy=acc,
                                 seconds=round(seconds, 2)))
        self.log(f"epoch {epoch:3d}/{self.epochs}  train loss {train_loss:.4f}  val ROC-AUC {auc:.4f}  "
                 f"mAP {ap:.4f}  acc {acc:.4f}  ({seconds:.1f}s)")
        if auc > self.auc:
            self.epoch, self.auc, self.ap, self.accuracy = epoch, auc, ap, acc
            self.state = copy.deepcopy(self.model.state_dict())
            self.optimizer_state = copy.deepcopy(self.optimizer.state_dict())


@dataclass
class _Batches:
    """The training rows (inputs (N, T, F), labels (N,), loss weights (N,)) and how an epoch draws them."""

    x: torch.Tensor
    y: torch.Tensor
    weights: torch.Tensor
    batch_size: int
    seed: int
    time_warp: float

    def __post_init__(self) -> None:
        self.warp_rng = epoch_generator(self.seed, -1)  # one stream over all epochs, as the batches come

    def epoch(self, epoch: int):
        """Yield (x, y, weights) batches of one epoch in its seeded order, time-warped if asked."""
        order = torch.randperm(len(self.x), generator=epoch_generator(self.seed, epoch))
        for i in range(0, len(order), self.batch_size):
            batch = order[i:i + self.batch_size]
            x = self.x[batch]
            if self.time_warp > 0 and x.shape[1] > 2:
                u = torch.rand(1, generator=self.warp_rng).item() * 2 - 1
                x = warp_time(x, math.exp(u * self.time_warp))
            yield x, self.y[batch], self.weights[batch]


def _train_epoch(model: nn.Module, optimizer, batches: _Batches, epoch: int) -> float:
    """One pass of weighted cross-entropy steps; returns the mean training loss."""
    model.train()
    loss_fn = nn.CrossEntropyLoss(reduction="none")
    total, count = 0.0, 0
    for x, y, w in batches.epoch(epoch):
        loss = (loss_fn(model(x), y) * w).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        optimizer.step()
        total += loss.item() * len(y)
        count += len(y)
    return total / count


def pool_runs(runs: list, *, features: tuple[str, ...], length: int, max_per_run: int | None = None,
              seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The training set of a pool of runs: inputs (N, length, F), flipped (N,) and run index (N,).

    ``runs`` are :class:`~labeltrace.traces.RunTraces` with ground truth, each resampled to ``length``
    epochs. ``max_per_run`` keeps at most that many rows of a run (a seeded draw, stratified by
    clean/mislabeled), so a pool's cost is bounded while its regimes stay; the loss weighs every run the same.
    """
    inputs, flipped, strata = [], [], []
    for i, run in enumerate(runs):
        if run.label_flipped is None:
            raise UsageError(f"{run.source}: no label_flipped in metadata.pth: cannot train a detector on it")
        rows = np.arange(len(run.td))
        if max_per_run is not None and len(rows) > max_per_run:
            rows, _ = train_test_split(rows, train_size=max_per_run, random_state=seed + i,
                                       stratify=run.label_flipped)
            rows = np.sort(rows)
        assigned = run.assigned if needs_labels(features) else None
        neighbours = run.require_neighbours() if needs_neighbours(features) else None
        context = (run_context(run.td, assigned, names=features, neighbours=neighbours)  # of the whole run
                   if needs_context(features) else None)
        inputs.append(detector_inputs(run.td[rows], features, length, context,
                                      labels=None if assigned is None else assigned[rows],
                                      neighbours=None if neighbours is None else neighbours[rows]))
        flipped.append(run.label_flipped[rows])
        strata.append(np.full(len(rows), i))
    return np.concatenate(inputs), np.concatenate(flipped), np.concatenate(strata)
