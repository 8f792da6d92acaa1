"""Detection metrics for a noisiness score: ROC-AUC, mAP, and precision/recall/F1 at the removal cut.

The cut follows the original code: samples ordered by ascending ``p_noisy`` (cleanest first), the first
``int(N * (1 - remove_ratio))`` kept, the rest removed.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

__all__ = ["DetectionMetrics", "detection_metrics", "removal_cut", "order_by_noisiness"]

NO_GROUND_TRUTH = "no ground truth (label_flipped unknown): ROC-AUC/mAP/precision/recall not available"


def num_kept(num_samples: int, remove_ratio: float) -> int:
    """How many samples survive removal: ``int(N * (1 - remove_ratio))``, as in the original."""
    if not 0.0 <= remove_ratio <= 1.0:
        raise ValueError(f"remove_ratio must be in [0, 1], got {remove_ratio}")
    return int(num_samples * (1 - remove_ratio))


def order_by_noisiness(p_noisy: np.ndarray) -> np.ndarray:
    """Indices sorting ``p_noisy`` (shape (N,)) ascending, cleanest first; ties keep their input order."""
    return np.argsort(np.asarray(p_noisy), kind="stable")


def removal_cut(p_noisy: np.ndarray, remove_ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """The paper's removal cut, the one every stage uses: order by ascending ``p_noisy`` (shape (N,), stable),
    keep the first ``int(N * (1 - remove_ratio))``.

    Returns ``(kept, removed)``: index arrays, ``kept`` cleanest first, ``removed`` most suspicious first.
    """
    order = order_by_noisiness(np.asarray(p_noisy).reshape(-1))
    k = num_kept(len(order), remove_ratio)
    return order[:k], order[k:][::-1].copy()


@dataclass(frozen=True)
class DetectionMetrics:
    """Metrics of one score against ground truth; ``nan`` where undefined (e.g. no flipped sample)."""

    roc_auc: float
    average_precision: float
    precision: float
    recall: float
    f1: float
    num_samples: int
    num_flipped: int
    num_removed: int

    @property
    def undefined(self) -> str | None:
        """Why ROC-AUC and mAP are undefined (they need both groups), or None when they are defined."""
        if self.num_flipped == 0:
            return "undefined: no flipped samples"
        if self.num_flipped == self.num_samples:
            return "undefined: no clean samples"
        return None

    def as_dict(self) -> dict:
        """The fields; a ``nan`` is written as ``null`` by ``labeltrace.io.write_json``."""
        return asdict(self)


def detection_metrics(p_noisy: np.ndarray, label_flipped: np.ndarray | None, *,
                      remove_ratio: float) -> DetectionMetrics | None:
    """Score ``p_noisy`` (shape (N,), higher = more likely mislabeled) against ``label_flipped`` (shape (N,)).

    Returns None when ``label_flipped`` is None (real noise: nothing to compare with).
    """
    if label_flipped is None:
        return None
    p_noisy = np.asarray(p_noisy, dtype=np.float64).reshape(-1)
    truth = np.asarray(label_flipped).astype(bool).reshape(-1)
    if truth.shape != p_noisy.shape:
        raise ValueError(f"p_noisy has shape {p_noisy.shape} but label_flipped has {truth.shape}")
    n, n_flipped = len(truth), int(truth.sum())
    both_classes = 0 < n_flipped < n
    auc = float(roc_auc_score(truth, p_noisy)) if both_classes else float("nan")
    ap = float(average_precision_score(truth, p_noisy)) if both_classes else float("nan")
    _, removed = removal_cut(p_noisy, remove_ratio)
    hits = int(truth[removed].sum())
    precision = hits / len(removed) if len(removed) else float("nan")
    recall = hits / n_flipped if n_flipped else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if hits else (0.0 if len(removed) and n_flipped
                                                                        else float("nan"))
    return DetectionMetrics(auc, ap, precision, recall, f1, n, n_flipped, len(removed))


def format_metrics(metrics: DetectionMetrics | None, *, remove_ratio: float, name: str = "detector") -> str:
    """One line for a log or a terminal; says so instead of printing numbers without ground truth."""
    if metrics is None:
        return f"{name}: {NO_GROUND_TRUTH}"
    m = metrics
    ranking = f"ROC-AUC/mAP {m.undefined}" if m.undefined else f"ROC-AUC {m.roc_auc:.4f}  mAP {m.average_precision:.4f}"
    return (f"{name}: {ranking}  | removing {m.num_removed}/"
            f"{m.num_samples} ({remove_ratio:.0%}): precision {m.precision:.4f} recall {m.recall:.4f} "
            f"F1 {m.f1:.4f}  ({m.num_flipped} flipped)")
