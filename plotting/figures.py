"""Figures of one run, as pure functions from arrays to a matplotlib Figure (Agg backend, no display).

Each takes plain arrays (shapes in the docstrings) and returns the Figure; :func:`save_png` writes it
atomically. Nothing here reads files.
"""
from __future__ import annotations

import os

from labeltrace.errors import require

require("pandas", extra="report", what="plotting.figures")
require("matplotlib", extra="report", what="plotting.figures").use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve  # noqa: E402

from labeltrace.io import atomic_open  # noqa: E402

CLEAN, FLIPPED = "tab:blue", "tab:red"
STYLES = ("-", "--", "-.", ":")  # scores often tie: vary the dash so overlapping curves stay visible


def save_png(fig: Figure, path: str | os.PathLike, *, dpi: int = 120) -> None:
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)


def data_map(confidence: np.ndarray, variability: np.ndarray, flipped: np.ndarray | None = None, *,
             title: str = "Data map") -> Figure:
    """Cartography's data map: variability (x) against confidence (y), one point per sample.

    ``confidence`` and ``variability``: arrays of shape (N,), the mean and std over epochs of the assigned
    label's probability. ``flipped``: bool array of shape (N,), marked in red when given.
    """
    fig, ax = plt.subplots(figsize=(6.5, 5))
    if flipped is None or not flipped.any():
        ax.scatter(variability, confidence, s=6, alpha=0.5, color=CLEAN, label=f"all samples ({len(confidence)})")
    else:
        ax.scatter(variability[~flipped], confidence[~flipped], s=6, alpha=0.4, color=CLEAN,
                   label=f"clean ({(~flipped).sum()})")
        ax.scatter(variability[flipped], confidence[flipped], s=14, alpha=0.7, marker="x", color=FLIPPED,
                   label=f"flipped ({flipped.sum()})")
    ax.set_xlabel("variability (std of assigned-label probability over epochs)")
    ax.set_ylabel("confidence (mean assigned-label probability)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title)
    ax.legend(loc="lower right", markerscale=2)
    return fig


def _ordered(scores: dict[str, np.ndarray], flipped: np.ndarray, metric) -> list[tuple[str, float]]:
    return sorted(((name, metric(flipped, s)) for name, s in scores.items()), key=lambda kv: -kv[1])


def _style(i: int, name: str, highlight) -> dict:
    if name in highlight:
        return {"lw": 2.8, "color": "black", "ls": "-", "zorder": 5}
    return {"lw": 1.5, "ls": STYLES[i % len(STYLES)]}


def roc_curves(scores: dict[str, np.ndarray], flipped: np.ndarray, *, title: str = "ROC",
               highlight: tuple[str, ...] = ()) -> Figure:
    """ROC curve of each ``{name: suspicion of shape (N,)}`` (higher = more suspicious) against
    ``flipped`` (bool, shape (N,)); the legend gives AUROC, best first. Names in ``highlight`` (e.g. the
    detector) are drawn thick and black."""
    fig, ax = plt.subplots(figsize=(6, 5.5))
    for i, (name, auc) in enumerate(_ordered(scores, flipped, roc_auc_score)):
        fpr, tpr, _ = roc_curve(flipped, scores[name])
        ax.plot(fpr, tpr, label=f"{name} ({auc:.3f})", **_style(i, name, highlight))
    ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1, label="chance (0.500)")
    ax.set_xlabel("false positive rate (clean samples flagged)")
    ax.set_ylabel("true positive rate (flipped samples found)")
    ax.set_title(title)
    ax.legend(title="score (AUROC)", loc="lower right", fontsize=8)
    return fig


def pr_curves(scores: dict[str, np.ndarray], flipped: np.ndarray, *, title: str = "Precision-recall",
              highlight: tuple[str, ...] = ()) -> Figure:
    """Precision-recall curve of each score (as :func:`roc_curves`); the legend gives average precision."""
    fig, ax = plt.subplots(figsize=(6, 5.5))
    for i, (name, ap) in enumerate(_ordered(scores, flipped, average_precision_score)):
        precision, recall, _ = precision_recall_curve(flipped, scores[name])
        ax.plot(recall, precision, label=f"{name} ({ap:.3f})", **_style(i, name, highlight))
    rate = float(np.mean(flipped))
    ax.axhline(rate, color="grey", ls=":", lw=1, label=f"noise rate ({rate:.3f})")
    ax.set_xlabel("recall (flipped samples found)")
    ax.set_ylabel("precision (flagged samples that are flipped)")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.legend(title="score (average precision)", loc="best", fontsize=8)
    return fig


def assigned_prob_curve(assigned_prob: np.ndarray, flipped: np.ndarray | None = None, *,
                        title: str = "Assigned-label probability over training") -> Figure:
    """The paper's Figure 1: mean (line) and interquartile range (band) over samples of the assigned
    label's probability at each epoch, clean vs flipped. ``assigned_prob``: array of shape (N, T)."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    epochs = np.arange(1, assigned_prob.shape[1] + 1)
    groups = [("all samples", np.ones(len(assigned_prob), bool), CLEAN)]
    if flipped is not None and flipped.any():
        groups = [("clean", ~flipped, CLEAN), ("flipped", flipped, FLIPPED)]
    for name, mask, color in groups:
        p = assigned_prob[mask].astype(np.float64)
        q1, q3 = np.percentile(p, [25, 75], axis=0)
        ax.plot(epochs, p.mean(0), color=color, lw=2, label=f"{name} ({mask.sum()}): mean")
        ax.fill_between(epochs, q1, q3, color=color, alpha=0.2, label=f"{name}: 25-75%")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("probability of the assigned label")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title)
    ax.legend(loc="best", fontsize=8)
    return fig


def training_curves(log: pd.DataFrame, *, title: str = "Training") -> Figure:
    """Errors (%) and losses per epoch from ``train_log.csv`` (columns epoch, train_error, train_loss,
    valid_error, valid_top5_error, valid_loss; missing columns are skipped). Errors given as fractions
    (every value <= 1, as the original code writes them) are drawn as percentages."""
    fig, (err, loss) = plt.subplots(1, 2, figsize=(11, 4.2))
    err_cols = [c for c in ("train_error", "valid_error", "valid_top5_error") if c in log]
    # The original code logs error rates as fractions; a log with any value above 1 is in percent already.
    scale = 100.0 if err_cols and float(np.nanmax(log[err_cols].to_numpy(dtype=float))) <= 1.0 else 1.0
    for col in err_cols:
        err.plot(log["epoch"], log[col] * scale, ls="--" if "top5" in col else "-", label=col.replace("_", " "))
    for col in ["train_loss", "valid_loss"]:
        if col in log:
            loss.plot(log["epoch"], log[col], label=col.replace("_", " "))
    err.set_ylabel("error (%)")
    loss.set_ylabel("cross-entropy loss")
    for ax in (err, loss):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
