"""Recording training dynamics: each training sample's softmax vector at every epoch.

The raw probabilities go into a float16 memory-mapped ``.npy`` beside the run, so RAM stays flat however large
the dataset, and a killed run keeps the epochs it finished. ``write_traces`` turns it into the paper's
``training_dynamics.npz``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from core.io import save_npz_chunked


def order_channels(raw: np.ndarray, assigned: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reorder per sample: the assigned label first, then the other classes by mean probability, highest first.

    Parameters
    ----------
    raw : array of shape (N, T, C), probabilities in class-id order
    assigned : int array of shape (N,)

    Returns
    -------
    td : float16 array of shape (N, T, C)
    labels : int16 array of shape (N, C), the class id of each channel of ``td``
    """
    n, _, c = raw.shape
    mean = raw.astype(np.float32).mean(axis=1)
    mean[np.arange(n), assigned] = np.inf  # the assigned label always comes first
    # Stable sort: ties keep class-id order, so the file is the same on every machine.
    labels = np.argsort(-mean, axis=1, kind="stable").astype(np.int16)
    td = np.take_along_axis(raw, labels[:, None, :].astype(np.int64), axis=2).astype(np.float16)
    return td, labels


class TraceRecorder:
    """Holds ``raw`` probabilities of shape (N, T, C) in class-id order, on disk."""

    def __init__(self, path: Path, num_samples: int, epochs: int, num_classes: int, *, resume: bool) -> None:
        shape = (num_samples, epochs, num_classes)
        self.path = Path(path)
        if resume and self.path.is_file():
            self.raw = np.load(self.path, mmap_mode="r+")
            if self.raw.shape != shape:
                raise ValueError(f"{self.path}: holds traces of shape {self.raw.shape}, expected {shape}")
        else:
            self.raw = np.lib.format.open_memmap(self.path, mode="w+", dtype=np.float16, shape=shape)

    def record(self, epoch: int, idx: np.ndarray, probs: np.ndarray) -> None:
        """Store ``probs`` (B, C) of the samples at positions ``idx`` (B,) for ``epoch`` (0-based)."""
        self.raw[idx, epoch, :] = probs

    def flush(self) -> None:
        self.raw.flush()

    def write_traces(self, out_path: Path, assigned: np.ndarray, chunk: int = 8192) -> None:
        """Write ``training_dynamics.npz`` (``td`` [N, T, C] float16, ``labels`` [N, C] int16) chunk by chunk."""
        n, t, c = self.raw.shape

        def pieces(which: int) -> Iterator[np.ndarray]:
            for start in range(0, n, chunk):
                yield order_channels(np.asarray(self.raw[start: start + chunk]), assigned[start: start + chunk])[which]

        # Two streaming passes (td then labels) keep memory at one chunk; ordering a chunk is cheap.
        save_npz_chunked(out_path, {"td": ((n, t, c), np.float16, pieces(0)),
                                    "labels": ((n, c), np.int16, pieces(1))})
