"""Read a STEP 1 run folder (``training_dynamics.npz`` + ``metadata.pth``) and resample traces in time.

Formats (docs/formats.md): ``td`` float16 of shape (N, T, C), channel 0 = probability of the
assigned label; ``labels`` int16 of shape (N, C), column 0 = the assigned label. ``metadata.pth`` holds
``train_indices``, ``true_targets``, ``assigned_targets``, ``label_flipped`` over the *full* training set;
row ``n`` of ``td`` is training-set position ``train_indices[n]``. A run recorded in the compact layout
(``training_dynamics_compact.npz``, :mod:`labeltrace.compact`) loads alike, ``td`` (N, T, 2) and ``labels`` (N, 2).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labeltrace.compact import is_compact, read_compact
from labeltrace.errors import UsageError
from labeltrace.runfiles import (COMPACT_TRACES_FILE, METADATA_FILE, TRACES_FILE, RunMetadata, read_metadata,
                                 read_neighbours, read_traces)

__all__ = ["RunTraces", "load_run", "resample_time"]


@dataclass(frozen=True)
class RunTraces:
    """The traces of one run.

    Attributes
    ----------
    source : str
        The traces file the arrays came from.
    td : ndarray of shape (N, T, C), float16 as stored; compact layout: a
        :class:`~labeltrace.compact.CompactTD` of shape (N, T, 2).
    class_ids : ndarray of shape (N, C), int16, the class id of each channel of ``td`` (the traces file's
        ``labels``); compact layout (N, 2).
    label_flipped : ndarray of shape (N,), bool, or None when the run has no ground truth.
    assigned_targets, true_targets : ndarray of shape (N,), or None without metadata.
    train_indices : ndarray of shape (N,), int64: the training-set position of each row, or None.
    label_injected : ndarray of shape (N,), bool: the labels a ``--calibrate`` run flipped on top, else None.
    metadata : the run's ``metadata.pth`` over the full training set, or None without one.
    neighbours : ndarray of shape (N, T), float16: the neighbour agreement the run recorded
        (:mod:`labeltrace.neighbours`), or None when it recorded none.
    """

    source: str
    td: np.ndarray
    class_ids: np.ndarray
    label_flipped: np.ndarray | None = None
    assigned_targets: np.ndarray | None = None
    true_targets: np.ndarray | None = None
    train_indices: np.ndarray | None = None
    metadata: RunMetadata | None = None
    label_injected: np.ndarray | None = None
    neighbours: np.ndarray | None = None

    def require_neighbours(self) -> np.ndarray:
        """:attr:`neighbours`, or a ``UsageError`` naming the file when the run recorded none."""
        if self.neighbours is None:
            raise UsageError(f"{self.source}: no neighbour agreement in the traces: record it with runner.py "
                             "--neighbours K to score or train with the 'neighbours' feature")
        return self.neighbours

    @property
    def curves(self) -> np.ndarray:
        """The detector's input, ``td[:, :, 0]`` as float32, shape (N, T)."""
        return np.ascontiguousarray(self.td[:, :, 0], dtype=np.float32)

    @property
    def assigned(self) -> np.ndarray:
        """Each trace's assigned label, ``class_ids[:, 0]`` as int64, shape (N,)."""
        return self.class_ids[:, 0].astype(np.int64)

    @property
    def num_epochs(self) -> int:
        return int(self.td.shape[1])

    @property
    def num_classes(self) -> int:
        return self.td.num_classes if is_compact(self.td) else int(self.class_ids.shape[1])

    def injected_as_truth(self) -> RunTraces:
        """The run with its injected labels (``--calibrate``) as the ground truth a detector is trained on: the
        self-calibration target, known even where the data's own noise is not."""
        if self.label_injected is None or not self.label_injected.any():
            raise UsageError(f"{self.source}: no injected labels (label_injected in metadata.pth): make the run "
                             "with runner.py --calibrate RATIO to train on them")
        return dataclasses.replace(self, label_flipped=self.label_injected)

    def without_injected(self) -> RunTraces:
        """The rows whose labels are the data's own (every row of a run without ``--calibrate``)."""
        if self.label_injected is None:
            return self
        keep = ~self.label_injected
        pick = (lambda a: None if a is None else a[keep])  # noqa: E731
        td = self.td.rows(keep) if is_compact(self.td) else self.td[keep]
        return dataclasses.replace(self, td=td, class_ids=self.class_ids[keep], neighbours=pick(self.neighbours),
                                   label_flipped=pick(self.label_flipped), assigned_targets=pick(self.assigned_targets),
                                   true_targets=pick(self.true_targets), train_indices=pick(self.train_indices),
                                   label_injected=np.zeros(int(keep.sum()), bool))


def _resolve(path: str | Path) -> tuple[Path, Path]:
    """Accept a run folder or the traces file itself; return (traces file, metadata file). A folder holding
    only the compact layout's file gives that one."""
    path = Path(path)
    if path.suffix == ".npz" and not path.is_dir():
        return path, path.parent / METADATA_FILE
    if not (path / TRACES_FILE).is_file() and (path / COMPACT_TRACES_FILE).is_file():
        return path / COMPACT_TRACES_FILE, path / METADATA_FILE
    return path / TRACES_FILE, path / METADATA_FILE


def load_run(run_dir: str | Path) -> RunTraces:
    """Load and validate one run's traces and (if present) its ground truth.

    Parameters
    ----------
    run_dir : path
        A STEP 1 run folder, or its ``training_dynamics.npz`` (or ``training_dynamics_compact.npz``).

    Raises
    ------
    UsageError
        Missing, truncated or corrupt files, shapes that do not fit, or metadata that disagrees with the
        traces' assigned labels; the message names the file.
    """
    npz_path, meta_path = _resolve(run_dir)
    compact = npz_path.name == COMPACT_TRACES_FILE
    td, class_ids = read_compact(npz_path) if compact else read_traces(npz_path)
    neighbours = read_neighbours(npz_path, td.shape)
    metadata = read_metadata(meta_path, labels=class_ids) if meta_path.is_file() else None
    rows = metadata.per_row(len(td)) if metadata is not None else {}
    assigned = rows.get("assigned_targets")
    if assigned is not None and not np.array_equal(assigned, class_ids[:, 0].astype(np.int64)):
        bad = int(np.sum(assigned != class_ids[:, 0]))
        raise UsageError(f"{meta_path}: assigned_targets disagree with labels[:, 0] of {npz_path} on {bad} "
                         f"rows: the metadata belongs to another run")
    if metadata is not None:
        _check_truth(metadata, td.num_classes if compact else class_ids.shape[1])
    return RunTraces(source=str(npz_path), td=td, class_ids=class_ids, label_flipped=rows.get("label_flipped"),
                     assigned_targets=assigned, true_targets=rows.get("true_targets"),
                     train_indices=rows.get("train_indices"), metadata=metadata,
                     label_injected=rows.get("label_injected"), neighbours=neighbours)


def _check_truth(metadata: RunMetadata, num_classes: int) -> None:
    """The ground truth fits the traces: class ids below their ``num_classes``, and no sample marked flipped
    whose true and assigned labels agree (an inverted or another run's ``label_flipped`` would train and
    score a detector on wrong truth). A label kept without ground truth (a labels file) may differ unmarked."""
    for key in ("true_targets", "assigned_targets"):
        values = getattr(metadata, key)
        if values is not None and len(values) and values.max() >= num_classes:
            raise UsageError(f"{metadata.path}: {key} holds class {values.max()}, outside the traces' {num_classes} "
                             f"classes 0..{num_classes - 1}: the metadata is damaged or another run's")
    flipped, true, assigned = metadata.label_flipped, metadata.true_targets, metadata.assigned_targets
    if flipped is not None and true is not None and assigned is not None:
        wrong = int(np.count_nonzero(flipped & (true == assigned)))
        if wrong:
            raise UsageError(f"{metadata.path}: label_flipped marks {wrong} samples whose true_targets equal their "
                             "assigned_targets (flipped means true != assigned): the metadata contradicts itself")


def resample_time(x: np.ndarray, length: int) -> np.ndarray:
    """Linearly interpolate the time axis (axis 1) of ``x``, shape (N, T) or (N, T, F), to ``length`` steps.

    The first and last epochs map onto each other, so a curve keeps its start and end values.
    Returns float32 of shape (N, length[, F]); ``x`` itself (as float32) when T already equals ``length``.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim not in (2, 3):
        raise ValueError(f"resample_time expects shape (N, T) or (N, T, F), got {x.shape}")
    t = x.shape[1]
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    if t == length:
        return x
    if t == 1:
        return np.repeat(x, length, axis=1)
    pos = np.linspace(0.0, t - 1, length) if length > 1 else np.zeros(1)
    left = np.minimum(np.floor(pos).astype(np.int64), t - 2)
    frac = (pos - left).astype(np.float32)
    if x.ndim == 3:
        frac = frac[:, None]
    return x[:, left] * (1.0 - frac) + x[:, left + 1] * frac
