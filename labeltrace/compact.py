"""The compact traces layout, for runs with many classes (``training_dynamics_compact.npz``, docs/formats.md).

The detector and the hand-crafted scores read, per epoch, only the assigned label's probability and the strongest
other class's; cleanlab and the suggested label read the mean probability vector once. So the compact file holds

- ``td``: float16 (N, T, 2): channel 0 the assigned label's probability (as in the full layout), channel 1 the
  largest other probability *at that epoch*; so ``td[:, :, 1:].max(axis=2)`` equals the full layout's and every
  score built from those two numbers (AUM, confidence, variability, forgetting, mean loss, the detector's
  ``prob`` and ``margin``) is the same number on both layouts;
- ``other_class``: int (N, T), the class of channel 1 at each epoch;
- ``labels``: int (N, 2): the assigned label and the other class of highest mean probability (the full layout's
  ``labels[:, :2]``);
- ``mean_probs``: float16 (N, C) in class order, the mean over epochs of the probability vector;
- ``neighbours`` and ``neighbour_search``, when the run recorded the neighbour agreement: as in the full layout.

In memory, ``td`` is a :class:`CompactTD`, a plain array that knows it is compact, so a reader that needs the
full vector per epoch (entropy, rank, the data-maps export) refuses it in one line instead of miscomputing.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from labeltrace.errors import UsageError
from labeltrace.io import load_npz, save_npz_chunked
from labeltrace.epoch_file import agreement_arrays

__all__: list[str] = []  # internal: used by the public modules and the research pipeline

AUTO_COMPACT_ABOVE = 300  # classes; the paper's datasets have at most 257 (Caltech-256): they keep its layout
COMPACT_WIDTH = 3  # raw row per sample and epoch: assigned prob, strongest other prob, its class (float32)
_CHUNK_VALUES = 1 << 22


class CompactTD(np.ndarray):
    """``td`` of the compact layout, shape (N, T, 2). ``num_classes`` survives slicing; ``other_class`` (N, T)
    and ``mean_probs`` (N, C) belong to the array as read (a slice has None: use :meth:`rows`)."""

    num_classes: int
    other_class: np.ndarray | None
    mean_probs: np.ndarray | None

    def __array_finalize__(self, obj) -> None:
        self.num_classes = getattr(obj, "num_classes", 0)
        self.other_class = None
        self.mean_probs = None

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        # Arithmetic gives plain arrays: a score computed from the traces is not itself "compact traces".
        plain = tuple(np.asarray(x) if isinstance(x, CompactTD) else x for x in inputs)
        if "out" in kwargs:
            kwargs["out"] = tuple(np.asarray(x) if isinstance(x, CompactTD) else x for x in kwargs["out"])
        return getattr(ufunc, method)(*plain, **kwargs)

    def rows(self, keep) -> CompactTD:
        """The traces of rows ``keep`` (a mask or indices), with their ``other_class`` and ``mean_probs``."""
        pick = (lambda a: None if a is None else a[keep])  # noqa: E731
        return compact_td(np.asarray(self)[keep], pick(self.other_class), pick(self.mean_probs), self.num_classes)


def compact_td(td: np.ndarray, other_class: np.ndarray | None, mean_probs: np.ndarray | None,
               num_classes: int) -> CompactTD:
    out = np.asarray(td).view(CompactTD)
    out.num_classes, out.other_class, out.mean_probs = int(num_classes), other_class, mean_probs
    return out


def is_compact(td) -> bool:
    return isinstance(td, CompactTD)


def require_full(td, what: str) -> None:
    """A one-line :class:`UsageError` when ``td`` is compact: ``what`` needs every class's probability per epoch."""
    if is_compact(td):
        raise UsageError(f"{what} needs every class's probability at every epoch, which the compact layout "
                         f"({td.num_classes} classes) does not hold: record with layout='full'")


def top_two(probs: np.ndarray, given: np.ndarray) -> np.ndarray:
    """The compact row of each sample: float32 (B, 3) = assigned label's probability, the largest other probability,
    that class (ties: the lowest class id). ``probs`` (B, C) already rounded to float16, so the two values are
    those the full layout stores; ``given`` (B,)."""
    p = np.array(probs, dtype=np.float32)
    rows = np.arange(len(p))
    out = np.empty((len(p), COMPACT_WIDTH), dtype=np.float32)
    out[:, 0] = p[rows, given]
    p[rows, given] = -1.0
    other = p.argmax(axis=1)
    out[:, 1] = p[rows, other]
    out[:, 2] = other
    return out


def class_dtype(num_classes: int) -> np.dtype:
    return np.dtype(np.int16 if num_classes <= np.iinfo(np.int16).max else np.int32)


def write_compact(path: Path, rows, sums, slot: int, assigned: np.ndarray, num_epochs: int, *,
                  neighbours=None, search: dict | None = None) -> None:
    """Write ``training_dynamics_compact.npz`` chunk by chunk from the recorder's working files.

    ``rows``: a :class:`~labeltrace.epoch_file.EpochFile` of shape (N, T, 3); ``sums``: one of shape (N, 2, C)
    whose epoch ``slot`` holds each sample's probability sums over the ``num_epochs`` epochs; ``assigned`` (N,);
    ``neighbours``: the (N, T, 1) recorder of the neighbour agreement, with the ``search`` that made it.
    """
    n, c = len(assigned), sums.shape[2]
    chunk = max(1, min(8192, _CHUNK_VALUES // max(c, num_epochs * COMPACT_WIDTH)))
    cls = class_dtype(c)

    def mean(start: int, stop: int) -> np.ndarray:
        return sums.read_rows(slot, np.arange(start, stop)) / np.float32(num_epochs)

    def pieces(which: str) -> Iterator[np.ndarray]:
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            if which == "td":
                yield rows.read(start, stop)[:, :, :2].astype(np.float16)
            elif which == "other_class":
                yield rows.read(start, stop)[:, :, 2].astype(cls)
            elif which == "labels":
                m = mean(start, stop)
                m[np.arange(stop - start), assigned[start:stop]] = -np.inf  # the strongest *other* class
                yield np.stack([assigned[start:stop], m.argmax(axis=1)], axis=1).astype(cls)
            else:
                yield mean(start, stop).astype(np.float16)

    t = num_epochs
    arrays = {"td": ((n, t, 2), np.float16, pieces("td")), "other_class": ((n, t), cls, pieces("other_class")),
              "labels": ((n, 2), cls, pieces("labels")), "mean_probs": ((n, c), np.float16, pieces("mean_probs"))}
    arrays.update(agreement_arrays(neighbours, chunk, search))
    save_npz_chunked(path, arrays)


def read_compact(path: Path) -> tuple[CompactTD, np.ndarray]:
    """``training_dynamics_compact.npz`` read whole and validated: (``td`` as a :class:`CompactTD` carrying
    ``other_class`` and ``mean_probs``, ``labels`` (N, 2)). Raises a one-line :class:`UsageError` naming the file."""
    path = Path(path)
    arrays = load_npz(path, keys=("td", "other_class", "labels", "mean_probs"))
    td, other, labels, mean = (arrays[k] for k in ("td", "other_class", "labels", "mean_probs"))
    n = len(td)
    if td.ndim != 3 or td.shape[2] != 2 or td.shape[1] < 1 or not np.issubdtype(td.dtype, np.floating):
        raise UsageError(f"{path}: 'td' must be float16 of shape [N, T, 2] (compact layout), found {td.dtype} {td.shape}")
    if other.shape != td.shape[:2] or labels.shape != (n, 2) or mean.ndim != 2 or len(mean) != n:
        raise UsageError(f"{path}: other_class {other.shape}, labels {labels.shape} and mean_probs {mean.shape} must "
                         f"be (N, T), (N, 2) and (N, C) for td {td.shape}")
    if n < 1:
        raise UsageError(f"{path}: 'td' holds no samples (N = 0, shape {td.shape}): not the traces of a run")
    c = mean.shape[1]
    if c < 2 or (n and (other.min() < 0 or other.max() >= c or labels.min() < 0 or labels.max() >= c)):
        raise UsageError(f"{path}: class ids outside 0..{c - 1} (mean_probs has {c} classes)")
    bad = int(np.count_nonzero(~np.isfinite(td))) + int(np.count_nonzero(~np.isfinite(mean)))
    if bad:
        raise UsageError(f"{path}: holds {bad} NaN or infinite probabilities: the run that wrote it diverged or "
                         "the file is damaged")
    return compact_td(td, other.astype(np.int64), mean, c), labels


def compact_suggested(td: CompactTD, class_ids: np.ndarray) -> np.ndarray:
    """:func:`labeltrace.issues.suggested_labels` from compact traces: the last epoch's strongest other class
    where it beats the assigned label, else the other class of highest mean probability. Shape (N,)."""
    if td.other_class is None:
        raise UsageError("the suggested label of compact traces needs their other_class: pass the traces as read "
                         "(load_run), or rows of them through CompactTD.rows")
    last = np.asarray(td[:, -1, :], dtype=np.float32)
    return np.where(last[:, 1] > last[:, 0], td.other_class[:, -1], class_ids[:, 1]).astype(np.int64)
