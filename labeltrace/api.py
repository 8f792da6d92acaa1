"""Rank the label issues of a recorded run: :func:`find_label_issues` and :func:`get_label_quality_scores`.

    from labeltrace import DynamicsRecorder, find_label_issues
    recorder = DynamicsRecorder("runs/mine", labels=train_labels, num_classes=10)   # labeltrace/recorder.py
    ...                                                # update() per batch, end_epoch() per epoch, save()
    issues = find_label_issues("runs/mine", return_indices_ranked_by="p_noisy")

The names follow cleanlab's ``find_label_issues`` / ``get_label_quality_scores``: ``labels`` are the given
(assigned) labels, a boolean mask is returned unless ``return_indices_ranked_by`` asks for indices, and quality
scores are low for likely issues.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from labeltrace.features import check_labels, check_neighbours
from labeltrace.metrics import removal_cut
from labeltrace.predict import load_detector, resolve_detector, score
from labeltrace.runfiles import PROBABILITY_SLACK
from labeltrace.traces import load_run

__all__ = ["find_label_issues", "get_label_quality_scores"]


def _p_noisy(traces, detector, labels=None, neighbours=None) -> np.ndarray:
    if isinstance(traces, (str, Path)):
        given = [name for name, value in (("labels", labels), ("neighbours", neighbours)) if value is not None]
        if given:  # they would be ignored: the folder's own are read
            raise ValueError(f"{' and '.join(given)}: given with a run folder, which holds its own; pass them with "
                             "a td array only")
        run = load_run(traces)  # a file with NaN is refused there, naming it
        td, labels, neighbours = run.td, run.assigned, run.neighbours
    else:
        td = np.asarray(traces)
        if not np.issubdtype(td.dtype, np.floating):
            raise ValueError(f"traces must hold probabilities (floats), got dtype {td.dtype}")
        bad = int(np.count_nonzero(~np.isfinite(td)))
        if bad:  # the detector would return NaN scores for them, which rank nowhere
            raise ValueError(f"traces hold {bad} NaN or infinite values: expected probabilities (did the run diverge?)")
        low, high = (float(td.min()), float(td.max())) if td.size else (0.0, 1.0)
        if low < -PROBABILITY_SLACK or high > 1 + PROBABILITY_SLACK:  # logits would be scored as probabilities
            raise ValueError(f"traces run from {low:g} to {high:g}, outside [0, 1]: expected each epoch's softmax "
                             "probabilities, not logits (apply a softmax over the classes first)")
        if labels is not None:
            labels = check_labels(labels.cpu() if torch.is_tensor(labels) else labels, len(td))
        if neighbours is not None:
            neighbours = check_neighbours(neighbours.cpu() if torch.is_tensor(neighbours) else neighbours, td.shape)
    model, info = load_detector(resolve_detector(detector, neighbours))
    return score(model, info, td, labels=labels, neighbours=neighbours)[0]  # needs labels and has none: ValueError


def get_label_quality_scores(traces, *, detector: str | Path | None = None, labels=None,
                             neighbours=None) -> np.ndarray:
    """Label quality per sample, ``1 - p_noisy``, float array of shape (N,): low = likely mislabeled.

    ``traces``: a run folder (or its ``training_dynamics.npz``), or a ``td`` array of shape (N, T, C).
    ``detector``: a checkpoint (default: the shipped generalist that fits the run, the one that reads the
    neighbour agreement where it was recorded).
    ``labels``: with a ``td`` array, each trace's assigned label (N,) (a run folder holds them), for
    detectors that read a class-relative feature.
    ``neighbours``: with a ``td`` array, the recorded neighbour agreement (N, T) (a run folder holds it).
    """
    return 1.0 - _p_noisy(traces, detector, labels, neighbours).astype(np.float64)


def find_label_issues(traces, *, detector: str | Path | None = None, labels=None, neighbours=None,
                      num_to_find: int | None = None, fraction: float | None = None,
                      return_indices_ranked_by: str | None = None) -> np.ndarray:
    """The samples whose label is likely wrong (``traces``, ``detector``, ``labels``, ``neighbours``: as
    :func:`get_label_quality_scores`).

    Which: the ``num_to_find`` most suspicious, or the most suspicious ``fraction`` (the paper's removal cut),
    or by default those the detector calls more likely mislabeled than not (``p_noisy > 0.5``).

    Returns a boolean mask of shape (N,), or with ``return_indices_ranked_by="p_noisy"`` (or
    ``"label_quality"``, the same order) the issues' indices, most suspicious first.
    """
    if num_to_find is not None and fraction is not None:
        raise ValueError("give num_to_find or fraction, not both")
    if num_to_find is not None and (isinstance(num_to_find, bool) or not isinstance(num_to_find, (int, np.integer))):
        raise ValueError(f"num_to_find must be a whole number of samples, got {num_to_find!r}")
    if fraction is not None and not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    if return_indices_ranked_by not in (None, "p_noisy", "label_quality"):
        raise ValueError(f"return_indices_ranked_by must be None, 'p_noisy' or 'label_quality', "
                         f"got {return_indices_ranked_by!r}")
    p_noisy = _p_noisy(traces, detector, labels, neighbours)
    n = len(p_noisy)
    if num_to_find is not None:
        if not 0 <= num_to_find <= n:
            raise ValueError(f"num_to_find must be in [0, {n}], got {num_to_find}")
        fraction = num_to_find / n
    if fraction is not None:
        ranked = removal_cut(p_noisy, fraction)[1]
        ranked = ranked[:num_to_find] if num_to_find is not None else ranked
    else:
        ranked = np.flatnonzero(p_noisy > 0.5)
        ranked = ranked[np.argsort(-p_noisy[ranked], kind="stable")]
    if return_indices_ranked_by is not None:
        return ranked
    mask = np.zeros(n, dtype=bool)
    mask[ranked] = True
    return mask
