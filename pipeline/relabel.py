"""Data debugging (paper §4.3), the pure part: give the most suspicious samples a new label.

The top ``int(N * ratio)`` samples by ``p_noisy`` (the complement of :func:`predict.get_order`'s kept part)
take their label from ``replacement``: the ground truth where the noise was synthesized, else the
prediction of a model trained on the clean part. Everything else keeps its assigned label.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labeltrace.metrics import removal_cut


@dataclass(frozen=True)
class Relabelled:
    """The outcome of :func:`relabel`.

    Attributes
    ----------
    labels : ndarray of shape (N,), int64
        The corrected labels: ``replacement`` at ``suspicious``, ``assigned`` elsewhere.
    suspicious : ndarray of shape (K,), int64
        Positions that were relabelled, most suspicious first; K = N - int(N * (1 - ratio)).
    changed : ndarray of shape (N,), bool
        True where the new label differs from the assigned one.
    """

    labels: np.ndarray
    suspicious: np.ndarray
    changed: np.ndarray


def suspicious_rows(p_noisy: np.ndarray, ratio: float) -> np.ndarray:
    """Positions of the ``ratio`` most suspicious samples, most suspicious first, shape (K,).

    K matches the removal cut of the original code: ``N - int(N * (1 - ratio))``.
    """
    return removal_cut(p_noisy, ratio)[1]


def relabel(p_noisy: np.ndarray, assigned: np.ndarray, replacement: np.ndarray, *, ratio: float) -> Relabelled:
    """Replace the labels of the ``ratio`` most suspicious samples.

    Parameters
    ----------
    p_noisy : ndarray of shape (N,)
        Suspicion, higher = more likely mislabeled.
    assigned : ndarray of shape (N,), int
        The (possibly noisy) labels as given.
    replacement : ndarray of shape (N,), int
        The label to use where a sample is relabelled (ground truth, or a model's prediction).
    ratio : float in [0, 1]
        Fraction of samples to relabel.

    Returns
    -------
    Relabelled
    """
    assigned = np.asarray(assigned, dtype=np.int64).reshape(-1)
    replacement = np.asarray(replacement, dtype=np.int64).reshape(-1)
    if not (len(assigned) == len(replacement) == np.size(p_noisy)):
        raise ValueError(f"p_noisy, assigned and replacement must have one entry per sample, got "
                         f"{np.size(p_noisy)}, {len(assigned)}, {len(replacement)}")
    rows = suspicious_rows(p_noisy, ratio)
    labels = assigned.copy()
    labels[rows] = replacement[rows]
    return Relabelled(labels=labels, suspicious=rows, changed=labels != assigned)


def noise_rate(labels: np.ndarray, true: np.ndarray) -> float:
    """Fraction of ``labels`` (shape (N,)) that differ from ``true`` (shape (N,)); nan when N = 0."""
    labels, true = np.asarray(labels).reshape(-1), np.asarray(true).reshape(-1)
    return float(np.mean(labels != true)) if len(labels) else float("nan")


def relabel_counts(assigned: np.ndarray, corrected: np.ndarray, true: np.ndarray) -> dict[str, int]:
    """How relabelling changed correctness, against ground truth (all arrays of shape (N,)).

    ``fixed``: wrong before, right after; ``broken``: right before, wrong after; ``still_wrong``: wrong
    before and after though changed or not; ``changed``: labels that differ from the assigned ones.
    """
    assigned, corrected, true = (np.asarray(a, dtype=np.int64).reshape(-1) for a in (assigned, corrected, true))
    wrong_before, wrong_after = assigned != true, corrected != true
    return {"fixed": int(np.sum(wrong_before & ~wrong_after)), "broken": int(np.sum(~wrong_before & wrong_after)),
            "still_wrong": int(np.sum(wrong_before & wrong_after)), "changed": int(np.sum(assigned != corrected))}
