"""Hand-crafted mislabel scores computed from recorded traces, the baselines the detector is compared with.

Every score is a pure function ``score(td, class_ids, **options) -> suspicion`` over the traces file's arrays:

- ``td``: array of shape (N, T, C), the softmax recorded after each epoch. Channel 0 is the probability of
  the *assigned* (possibly noisy) label, channels 1..C-1 the other classes sorted per sample by mean
  probability (see docs/formats.md).
- ``class_ids``: int array of shape (N, C), the class id of each channel (``class_ids[:, 0]`` = assigned label),
  stored as ``labels`` in the traces file.

Each returns a float64 array of shape (N,) where HIGHER means MORE LIKELY MISLABELED, so
``roc_auc_score(label_flipped, score)`` is the score's AUROC. Scores that are naturally "cleanliness"
measures (confidence, margin) are negated. ``float16`` traces are reduced in float32 without copying the
whole (N, T, C) array, so CIFAR-100-sized traces fit in memory. The compact layout's traces (N, T, 2) give
the same numbers for every score of one or two channels; the cleanlab scores read its stored mean probabilities.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from labeltrace.compact import is_compact, require_full
from labeltrace.errors import UsageError

__all__ = ["aum", "confidence", "variability", "forgetting", "mean_loss", "last_self_confidence", "learned",
           "cl_label_quality", "cl_label_issues", "installed_baselines", "get_baseline", "score_baselines"]

Score = Callable[..., np.ndarray]

# Probabilities are stored as float16, where 0 is reachable: clip before log.
_LOG_FLOOR = 1e-8


def _check(td: np.ndarray) -> np.ndarray:
    if td.ndim != 3 or td.shape[2] < 2:
        raise UsageError(f"td must have shape (N, T, C) with C >= 2, got {td.shape}")
    return np.asarray(td)


def assigned_prob(td: np.ndarray) -> np.ndarray:
    """Probability of the assigned label per epoch: array of shape (N, T), float32."""
    return _check(td)[:, :, 0].astype(np.float32)


def max_other_prob(td: np.ndarray) -> np.ndarray:
    """Largest probability among the other classes per epoch: array of shape (N, T), float32.

    The channel order is by mean over epochs, not per epoch, so the per-epoch maximum needs a reduction.
    """
    return _check(td)[:, :, 1:].max(axis=2).astype(np.float32)


def to_class_order(probs: np.ndarray, class_ids: np.ndarray) -> np.ndarray:
    """Scatter channel-ordered probabilities back to class order.

    Parameters
    ----------
    probs : array of shape (N, C) or (N, T, C), in channel order.
    class_ids : int array of shape (N, C), the class id of each channel.

    Returns
    -------
    array of the same shape as ``probs`` whose last axis is indexed by class id.
    """
    require_full(probs, "each epoch's probabilities in class order (e.g. the data-maps export)")
    class_ids = np.asarray(class_ids, dtype=np.intp)
    if class_ids.shape != (probs.shape[0], probs.shape[-1]):
        raise UsageError(f"class_ids shape {class_ids.shape} does not match probabilities {probs.shape}")
    out = np.empty_like(probs)
    rows = np.arange(len(class_ids))[:, None]
    if probs.ndim == 2:
        out[rows, class_ids] = probs
    else:
        out[rows[:, :, None], np.arange(probs.shape[1])[None, :, None], class_ids[:, None, :]] = probs
    return out


def aum(td: np.ndarray, class_ids: np.ndarray | None = None) -> np.ndarray:
    """Area under the margin (Pleiss et al., 2020, "Identifying Mislabeled Data using the Area Under the
    Margin Ranking"), from probabilities instead of logits: mean over epochs of
    ``p_assigned - max_other p``. Returns ``-AUM``, shape (N,)."""
    return -(assigned_prob(td) - max_other_prob(td)).mean(axis=1, dtype=np.float64)


def confidence(td: np.ndarray, class_ids: np.ndarray | None = None) -> np.ndarray:
    """Data-map confidence (Swayamdipta et al., 2020, "Dataset Cartography"): mean over epochs of the
    assigned label's probability. Returns ``-confidence``, shape (N,); mislabeled data is "hard to learn"."""
    return -assigned_prob(td).mean(axis=1, dtype=np.float64)


def variability(td: np.ndarray, class_ids: np.ndarray | None = None) -> np.ndarray:
    """Data-map variability (Swayamdipta et al., 2020): population std (ddof 0, as cartography's
    ``np.std``) over epochs of the assigned label's probability, returned as is, shape (N,).

    Not a monotone mislabel signal: mislabeled samples are low-variability while never learned and
    high-variability once a run memorizes them. Reported because the paper's data maps use it.
    """
    return assigned_prob(td).astype(np.float64).std(axis=1)


def learned(td: np.ndarray) -> np.ndarray:
    """Whether the assigned label is the strict argmax at each epoch: bool array of shape (N, T)."""
    return assigned_prob(td) > max_other_prob(td)


def forgetting(td: np.ndarray, class_ids: np.ndarray | None = None) -> np.ndarray:
    """Forgetting events (Toneva et al., 2019, "An Empirical Study of Example Forgetting during Deep
    Neural Network Learning"): the number of epochs ``t`` where the sample was learned at ``t-1`` and not
    at ``t`` ("learned" = the assigned label is the strict argmax).

    A sample never learned counts as the most forgotten, ``T`` (more than the at most ``T // 2`` events
    possible), as in Toneva et al. and cartography: the raw count ranks noisy samples that are never
    learned as the cleanest. Returns float64 array of shape (N,).
    """
    ok = learned(td)
    events = (ok[:, :-1] & ~ok[:, 1:]).sum(axis=1).astype(np.float64)
    events[~ok.any(axis=1)] = ok.shape[1]
    return events


def mean_loss(td: np.ndarray, class_ids: np.ndarray | None = None) -> np.ndarray:
    """Small-loss criterion (as in Co-teaching, Han et al., 2018; Arazo et al., 2019): mean over epochs of
    the cross-entropy ``-log p_assigned`` (probabilities clipped at 1e-8). Shape (N,)."""
    return -np.log(np.maximum(assigned_prob(td), _LOG_FLOOR)).mean(axis=1, dtype=np.float64)


def last_self_confidence(td: np.ndarray, class_ids: np.ndarray | None = None) -> np.ndarray:
    """Self-confidence at the last epoch (the per-sample score of Northcutt et al., 2021, "Confident
    Learning", on the final model): returns ``1 - p_assigned[T-1]``, shape (N,)."""
    return 1.0 - assigned_prob(td)[:, -1].astype(np.float64)


def class_probs(td: np.ndarray, class_ids: np.ndarray, *, pred_probs: np.ndarray | None = None,
                epochs: slice | None = None) -> np.ndarray:
    """Probabilities for cleanlab, shape (N, C) in class order, rows summing to 1.

    ``pred_probs`` (out-of-sample, e.g. cross-validated, already in class order) is used when given;
    otherwise the IN-SAMPLE mean of ``td`` over ``epochs`` (all by default). On a run that memorized its
    labels the in-sample probabilities agree with the noisy labels and cleanlab finds (almost) nothing;
    averaging only the epochs before memorization (e.g. ``slice(0, T // 2)``) is a cheap stand-in.
    """
    if pred_probs is None and is_compact(td):
        if epochs is not None or td.mean_probs is None:
            raise UsageError("the compact layout holds the mean probabilities over all epochs of the traces as read, "
                             "not of an epoch window or a slice of rows: record with layout='full' for that")
        pred_probs = td.mean_probs
    if pred_probs is None:
        window = _check(td)[:, epochs if epochs is not None else slice(None)]
        if window.shape[1] == 0:
            raise UsageError(f"epochs {epochs} select none of the {td.shape[1]} recorded epochs")
        pred_probs = to_class_order(window.mean(axis=1, dtype=np.float32), class_ids)
    pred_probs = np.asarray(pred_probs, dtype=np.float64)
    return pred_probs / pred_probs.sum(axis=1, keepdims=True)


def cl_label_quality(td: np.ndarray, class_ids: np.ndarray, *, pred_probs: np.ndarray | None = None,
                     epochs: slice | None = None, method: str = "self_confidence") -> np.ndarray:
    """Confident learning's label-quality ranking (Northcutt et al., 2021), by cleanlab itself:
    ``1 - cleanlab.rank.get_label_quality_scores(...)``, shape (N,). See :func:`class_probs` for which
    probabilities are used."""
    get_label_quality_scores = _cleanlab().rank.get_label_quality_scores
    probs = class_probs(td, class_ids, pred_probs=pred_probs, epochs=epochs)
    return 1.0 - get_label_quality_scores(np.asarray(class_ids)[:, 0].astype(np.int64), probs, method=method)


def cl_label_issues(td: np.ndarray, class_ids: np.ndarray, *, pred_probs: np.ndarray | None = None,
                    epochs: slice | None = None, filter_by: str = "prune_by_noise_rate") -> np.ndarray:
    """Confident learning's filter (Northcutt et al., 2021), by ``cleanlab.filter.find_label_issues``.

    Returns ``flag + (1 - quality) / 2``, shape (N,): the samples cleanlab flags first, each group ordered
    by self-confidence, which is cleanlab's own ``return_indices_ranked_by`` order extended to the
    unflagged samples. ``score >= 1`` recovers the flag. See :func:`class_probs` for the probabilities.
    """
    cleanlab = _cleanlab()
    find_label_issues, get_label_quality_scores = cleanlab.filter.find_label_issues, cleanlab.rank.get_label_quality_scores
    probs = class_probs(td, class_ids, pred_probs=pred_probs, epochs=epochs)
    given = np.asarray(class_ids)[:, 0].astype(np.int64)
    flag = find_label_issues(given, probs, filter_by=filter_by, n_jobs=1)
    quality = get_label_quality_scores(given, probs, method="self_confidence")
    return flag.astype(np.float64) + (1.0 - quality) / 2.0


BASELINES: dict[str, Score] = {
    "aum": aum,
    "confidence": confidence,
    "variability": variability,
    "forgetting": forgetting,
    "mean_loss": mean_loss,
    "last_self_confidence": last_self_confidence,
    "cl_label_quality": cl_label_quality,
    "cl_label_issues": cl_label_issues,
}
# Scores that accept out-of-sample probabilities through ``pred_probs``; they are cleanlab's.
USES_PRED_PROBS = frozenset({"cl_label_quality", "cl_label_issues"})


def _cleanlab():
    """The ``cleanlab`` package with its ``rank`` and ``filter`` modules; missing: a one-line UsageError."""
    try:
        import cleanlab.filter
        import cleanlab.rank
    except ImportError:
        raise UsageError("cleanlab's scores need cleanlab: pip install 'labeltrace[cleanlab]'") from None
    return cleanlab


def installed_baselines() -> list[str]:
    """The names of :data:`BASELINES` whose packages are installed (cleanlab's two need the extra)."""
    try:
        _cleanlab()
    except UsageError:
        return [name for name in BASELINES if name not in USES_PRED_PROBS]
    return list(BASELINES)


def get_baseline(name: str) -> Score:
    """The score function called ``name``; a :class:`UsageError` lists the valid names otherwise."""
    try:
        return BASELINES[name]
    except KeyError:
        raise UsageError(f"unknown baseline {name!r}; valid: {', '.join(BASELINES)}") from None


def score_baselines(td: np.ndarray, class_ids: np.ndarray, *, names: list[str] | None = None,
                    pred_probs: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Every requested score as ``{name: array of shape (N,)}``; by default every installed one
    (:func:`installed_baselines`). A score whose package is missing, asked for by name, is a one-line error
    naming the extra to install."""
    out = {}
    for name in names or installed_baselines():
        fn = get_baseline(name)
        kwargs = {"pred_probs": pred_probs} if name in USES_PRED_PROBS else {}
        out[name] = fn(td, class_ids, **kwargs)
    return out
