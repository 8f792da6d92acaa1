"""A Python API for your own training loop: record its training dynamics, then rank its label issues.

    from labeltrace.api import DynamicsRecorder, find_label_issues
    recorder = DynamicsRecorder("runs/mine", labels=train_labels, num_classes=10)
    for epoch in range(num_epochs):
        for images, targets, index in loader:          # index: each sample's position in the training set
            logits = model(images)
            ...                                        # loss, backward, step: your loop as it is
            recorder.update(index, logits)             # the softmax of this forward pass
        recorder.end_epoch()
    recorder.save()                                    # training_dynamics.npz + metadata.pth, as STEP 1 writes
    issues = find_label_issues("runs/mine", return_indices_ranked_by="p_noisy")

The folder is laid out like a STEP 1 run (docs/formats.md), so every later stage (``train_detector.py``, the
denoise scripts with ``--td_run``, ``plots.py``, the data-maps export) reads it. The names follow cleanlab's
``find_label_issues`` / ``get_label_quality_scores``: ``labels`` are the given labels, a boolean mask is returned
unless ``return_indices_ranked_by`` asks for indices, and quality scores are low for likely issues.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from labeltrace.io import save_npz
from labeltrace.recorder import order_channels
from labeltrace.runfiles import TRACES_FILE, write_metadata
from labeltrace.metrics import removal_cut
from labeltrace.predict import GENERALIST, load_detector, score
from labeltrace.traces import load_run

class DynamicsRecorder:
    """Collects each training sample's softmax at every epoch of a loop you write.

    Parameters
    ----------
    run_dir : path
        Where :meth:`save` writes ``training_dynamics.npz`` and ``metadata.pth``.
    labels : int array of shape (N,)
        The labels the model is trained on (possibly noisy), indexed by sample position.
    num_classes : int
    true_labels : int array of shape (N,), optional
        The clean labels when known (synthesized noise): the metadata then marks ``label_flipped``; otherwise
        they are taken to be ``labels`` (no ground truth, as for real noise).
    """

    def __init__(self, run_dir: str | Path, *, labels, num_classes: int, true_labels=None) -> None:
        self.run_dir = Path(run_dir)
        self.labels = _int_labels(labels, num_classes, "labels")
        self.true_labels = self.labels if true_labels is None else _int_labels(true_labels, num_classes, "true_labels")
        if self.true_labels.shape != self.labels.shape:
            raise ValueError(f"true_labels has {len(self.true_labels)} entries, labels {len(self.labels)}")
        self.num_classes = num_classes
        self._epochs: list[np.ndarray] = []  # float16 (N, C) per finished epoch, in class order
        self._current = np.zeros((len(self.labels), num_classes), dtype=np.float32)
        self._seen = np.zeros(len(self.labels), dtype=bool)

    @property
    def num_epochs(self) -> int:
        return len(self._epochs)

    def update(self, index, outputs, *, probabilities: bool = False) -> None:
        """Record one batch: ``index`` (B,) sample positions, ``outputs`` (B, C) logits (softmax taken here) or,
        with ``probabilities=True``, probabilities. Tensors may live on any device; nothing is kept on it."""
        idx = np.asarray(index.detach().cpu() if torch.is_tensor(index) else index, dtype=np.int64).reshape(-1)
        out = outputs.detach().float() if torch.is_tensor(outputs) else torch.as_tensor(np.asarray(outputs, np.float32))
        if out.ndim != 2 or out.shape != (len(idx), self.num_classes):
            raise ValueError(f"outputs must have shape ({len(idx)}, {self.num_classes}) for {len(idx)} indices, "
                             f"got {tuple(out.shape)}")
        if len(idx) and (idx.min() < 0 or idx.max() >= len(self.labels)):
            raise ValueError(f"index must be sample positions in [0, {len(self.labels)}), got {idx.min()}..{idx.max()}")
        probs = out if probabilities else torch.softmax(out, dim=1)
        self._current[idx] = probs.cpu().numpy()
        self._seen[idx] = True

    def end_epoch(self) -> None:
        """Close the epoch; every sample must have been recorded in it (once or more: the last value counts)."""
        missing = int((~self._seen).sum())
        if missing:
            raise ValueError(f"epoch {self.num_epochs + 1}: {missing} of {len(self.labels)} samples were not "
                             "recorded (pass every batch of the epoch to update())")
        self._epochs.append(self._current.astype(np.float16))
        self._seen[:] = False

    def save(self) -> Path:
        """Write the traces (``td`` [N, T, C] float16, channel 0 = the given label) and the metadata, each
        atomically, and return the run folder."""
        if not self._epochs:
            raise ValueError("no finished epoch to save: call end_epoch() after each epoch")
        raw = np.stack(self._epochs, axis=1)  # (N, T, C) in class order
        td, channel_labels = order_channels(raw, self.labels)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        save_npz(self.run_dir / TRACES_FILE, td=td, labels=channel_labels)
        write_metadata(self.run_dir, train_indices=np.arange(len(self.labels)), valid_indices=np.arange(0),
                       true_targets=self.true_labels, assigned_targets=self.labels,
                       label_flipped=self.labels != self.true_labels)
        return self.run_dir


def _int_labels(values, num_classes: int, name: str) -> np.ndarray:
    values = np.asarray(values.cpu() if torch.is_tensor(values) else values)
    if values.ndim != 1 or not np.issubdtype(values.dtype, np.integer):
        raise ValueError(f"{name} must be a 1-D integer array, got {values.dtype} of shape {values.shape}")
    if len(values) and (values.min() < 0 or values.max() >= num_classes):
        raise ValueError(f"{name} must lie in [0, {num_classes}), found {values.min()}..{values.max()}")
    return values.astype(np.int64)


def _p_noisy(traces, detector) -> np.ndarray:
    td = load_run(traces).td if isinstance(traces, (str, Path)) else np.asarray(traces)
    model, info = load_detector(detector or GENERALIST)
    return score(model, info, td)[0]


def get_label_quality_scores(traces, *, detector: str | Path | None = None) -> np.ndarray:
    """Label quality per sample, ``1 - p_noisy``, float array of shape (N,): low = likely mislabeled.

    ``traces``: a run folder (or its ``training_dynamics.npz``), or a ``td`` array of shape (N, T, C).
    ``detector``: a checkpoint (default: the shipped generalist).
    """
    return 1.0 - _p_noisy(traces, detector).astype(np.float64)


def find_label_issues(traces, *, detector: str | Path | None = None, num_to_find: int | None = None,
                      fraction: float | None = None, return_indices_ranked_by: str | None = None) -> np.ndarray:
    """The samples whose label is likely wrong.

    Which: the ``num_to_find`` most suspicious, or the most suspicious ``fraction`` (the paper's removal cut),
    or by default those the detector calls more likely mislabeled than not (``p_noisy > 0.5``).

    Returns a boolean mask of shape (N,), or with ``return_indices_ranked_by="p_noisy"`` (or
    ``"label_quality"``, the same order) the issues' indices, most suspicious first.
    """
    if num_to_find is not None and fraction is not None:
        raise ValueError("give num_to_find or fraction, not both")
    if return_indices_ranked_by not in (None, "p_noisy", "label_quality"):
        raise ValueError(f"return_indices_ranked_by must be None, 'p_noisy' or 'label_quality', "
                         f"got {return_indices_ranked_by!r}")
    p_noisy = _p_noisy(traces, detector)
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
