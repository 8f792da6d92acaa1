"""The recorder's working file, :class:`EpochFile`: per-sample rows of every epoch, on disk, epoch-major.

The raw probabilities go to ``td_raw.npy`` beside the run, float16, laid out epoch-major as (T, N, C): an epoch
is one contiguous block, written once when the epoch is flushed. Nothing is memory-mapped, so the resident
memory of a run holds one epoch (N x C) at most, however many epochs and samples, and a killed run keeps the
epochs it finished. ``write_traces`` streams it, by chunks of samples, into the paper's
``training_dynamics.npz`` ([N, T, C], channels reordered per sample).

:class:`labeltrace.DynamicsRecorder` does not know its number of epochs: the file's header keeps room for any epoch count, so :meth:`EpochFile.resize` appends an epoch in place, and any
per-sample width and dtype (the compact layout's rows, :mod:`labeltrace.compact`).
"""
from __future__ import annotations

import json
import os
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np

from labeltrace.io import save_npz_chunked

__all__: list[str] = []  # internal: used by the public modules and the research pipeline

DTYPE = np.dtype(np.float16)
# A softmax row stored as float16: each value rounds by at most 2**-11 relative (bf16 arithmetic upstream by
# 2**-8), so its sum is within a few 1e-3 of 1 for any number of classes. A row that sums to 0 is an epoch
# never written (the file is sparse), one far from 1 was overwritten or is not a softmax.
ROW_SUM_TOLERANCE = 0.05
CHUNK_VALUES = 1 << 22  # values per chunk when streaming the traces out


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


_HEADER_BYTES = 128  # magic + a shape of up to 15-digit sizes, padded: the same length whatever the epoch count


def _header(shape: tuple[int, ...], dtype: np.dtype = DTYPE) -> bytes:
    """A ``.npy`` version 1.0 header of :data:`_HEADER_BYTES` bytes, so that it can be rewritten in place when
    the epoch count grows (numpy pads its own to the next 64 bytes, which moves the data at some sizes)."""
    text = repr({"descr": np.dtype(dtype).str, "fortran_order": False, "shape": tuple(int(s) for s in shape)})
    prefix = np.lib.format.magic(1, 0) + (_HEADER_BYTES - 10).to_bytes(2, "little")
    body = text.ljust(_HEADER_BYTES - len(prefix) - 1) + "\n"
    if len(prefix) + len(body) != _HEADER_BYTES:
        raise ValueError(f"shape {shape} too large for a raw traces header")
    return prefix + body.encode("latin1")


def _stored_shape(path: Path, dtype: np.dtype = DTYPE) -> tuple[tuple[int, ...], int]:
    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, stored = read(handle)
        if np.dtype(stored) != np.dtype(dtype):
            raise ValueError(f"{path}: holds {stored} traces, expected {np.dtype(dtype)}")
        return tuple(shape), handle.tell()


def raw_file_problem(path: Path, shape: tuple[int, int, int], dtype: np.dtype = DTYPE) -> str | None:
    """Why the raw traces file of a run of ``shape`` (N, T, C) cannot be resumed from, or None if it can.

    The file is made at its full size, so one that is shorter lost epochs (a copy cut short, a disk that
    filled up): read on, the lost part would silently become zeros in ``training_dynamics.npz``."""
    n, t, c = shape
    try:
        stored, offset = _stored_shape(path, dtype)
    except (OSError, ValueError, EOFError) as exc:
        return f"{path}: unreadable raw traces ({exc})"
    if stored != (t, n, c):
        return f"{path}: holds traces of shape {stored}, expected {(t, n, c)} (T, N, C)"
    size, expected = path.stat().st_size, offset + t * n * c * np.dtype(dtype).itemsize
    if size != expected:
        return f"{path}: truncated ({size} of {expected} bytes)"
    return None


def stored_epochs(path: Path, num_samples: int, width: int, dtype: np.dtype = DTYPE) -> int:
    """The epoch count of an epoch-major working file (T, N, width) this module wrote, checked whole: a
    :class:`ValueError` naming the file when it is unreadable, of another shape, or shorter than its header says."""
    try:
        stored, offset = _stored_shape(path, dtype)
    except (OSError, ValueError, EOFError) as exc:
        raise ValueError(f"{path}: unreadable working file ({exc})") from None
    if len(stored) != 3 or stored[1:] != (num_samples, width) or offset != _HEADER_BYTES:
        raise ValueError(f"{path}: holds rows of shape {stored}, expected (T, {num_samples}, {width})")
    size, expected = path.stat().st_size, offset + stored[0] * num_samples * width * np.dtype(dtype).itemsize
    if size != expected:
        raise ValueError(f"{path}: truncated ({size} of {expected} bytes)")
    return stored[0]


def epoch_crc32(path: Path, epoch: int, dtype: np.dtype = DTYPE, piece: int = 1 << 23) -> int:
    """crc32 of epoch ``epoch``'s block of an epoch-major file (T, N, C), read in 8 MiB pieces. Kept with the
    commit of each epoch and compared on resume, it sees damage no range check can (an agreement of 0, or a
    probability rewritten within [0, 1], is a legal value)."""
    shape, offset = _stored_shape(path, dtype)
    left = int(np.prod(shape[1:])) * np.dtype(dtype).itemsize
    crc = 0
    with open(path, "rb") as handle:
        handle.seek(offset + epoch * left)
        while left:
            data = handle.read(min(piece, left))
            if not data:
                break
            crc, left = zlib.crc32(data, crc), left - len(data)
    return crc


def checksum_problem(path: Path, checksums: dict[int, int], dtype: np.dtype = DTYPE, unit: str = "epoch"
                     ) -> str | None:
    """Why the blocks of ``path`` (epochs, or the ``unit`` its blocks are) do not match the crc32 ``checksums``
    ({block: crc}) stored when they were committed, or None."""
    for block, expected in checksums.items():
        if epoch_crc32(path, block, dtype) != expected:
            return f"{path}: {unit} {block + 1} changed after it was committed (its checksum differs: damaged)"
    return None


def committed_rows_problem(raw: Path, raw_shape: tuple[int, int, int], epochs: int) -> str | None:
    """Why the first ``epochs`` epochs of the raw traces file (stored (T, N, C) float16) are not committed
    softmax rows (finite, in [0, 1], summing to 1), or None. Reads one epoch (N x C) at a time."""
    n = raw_shape[0]
    data = np.load(raw, mmap_mode="r")
    for e in range(epochs):
        block = np.asarray(data[e], dtype=np.float32)  # (N, C)
        bad = ~np.isfinite(block) | (block < 0) | (block > 1)
        if bad.any():
            return f"{raw}: epoch {e + 1} holds {int(bad.sum())} values that are not probabilities (damaged)"
        off = np.abs(block.sum(axis=1) - 1) > ROW_SUM_TOLERANCE
        if off.any():
            never = bool((block[off] == 0).all())
            return (f"{raw}: epoch {e + 1} has {int(off.sum())} of {n} rows that do not sum to 1 "
                    + ("(never written: zeros)" if never else "(damaged)"))
    return None


def extend_checksums(kept: list[int] | None, path: Path, epoch: int, dtype: np.dtype = DTYPE) -> list[int] | None:
    """``kept``, the checksums of epochs 0..epoch-1 of the epoch-major file ``path``, with epoch ``epoch``'s
    (:func:`epoch_crc32`) in place of a replayed epoch's; None where ``kept`` is None or short of ``epoch``: a
    file begun without checksums keeps none."""
    if kept is None or len(kept) < epoch:
        return None
    return kept[:epoch] + [epoch_crc32(path, epoch, dtype)]


def agreement_arrays(neighbours: EpochFile | None, chunk: int, search: dict | None) -> dict:
    """A traces file's entries of the neighbour agreement (either layout): ``neighbours`` [N, T] float16, streamed
    ``chunk`` samples at a time from its (N, T, 1) working file, and ``neighbour_search``, the search that made it
    (:meth:`labeltrace.neighbours.FeatureStore.describe`) as one JSON string of shape (1,); none without one."""
    if neighbours is None:
        return {}
    n, t, _ = neighbours.shape
    rows = (neighbours.read(start, min(start + chunk, n))[:, :, 0] for start in range(0, n, chunk))
    out = {"neighbours": ((n, t), np.float16, rows)}
    if search:
        out["neighbour_search"] = np.array([json.dumps(search, sort_keys=True)])
    return out


class EpochFile:
    """Raw probabilities of shape (N, T, C) in class-id order, kept on disk epoch-major.

    ``record`` fills the current epoch's buffer (N, C); ``flush`` writes it (and makes it durable) before the
    epoch is committed. Recording another epoch first flushes the one in the buffer. ``dtype`` and the width C
    may be anything fixed-size (the compact layout keeps (N, 3) float32 rows per epoch).
    """

    def __init__(self, path: Path, num_samples: int, epochs: int, num_classes: int, *, resume: bool,
                 dtype: np.dtype = DTYPE) -> None:
        self.path = Path(path)
        self.shape = (num_samples, epochs, num_classes)
        self.dtype = np.dtype(dtype)
        n, t, c = self.shape
        if resume and self.path.is_file():
            problem = raw_file_problem(self.path, self.shape, self.dtype)
            if problem:
                raise ValueError(problem)
        else:
            header = _header((t, n, c), self.dtype)
            with open(self.path, "wb") as handle:
                handle.write(header)
                handle.truncate(len(header) + t * n * c * self.dtype.itemsize)  # sparse: unrecorded epochs read as 0
        _, self._offset = _stored_shape(self.path, self.dtype)
        self._file = open(self.path, "r+b")
        self._epoch: int | None = None
        self._buffer = np.zeros((n, c), dtype=self.dtype)

    def resize(self, epochs: int) -> None:
        """Hold ``epochs`` epochs: added ones read as zeros until recorded, dropped ones (an epoch a killed loop
        never committed) are cut off. Only a file this module's header wrote can change its epoch count: the
        header is rewritten in place, the data do not move."""
        n, t, c = self.shape
        if epochs == t:
            return
        header = _header((epochs, n, c), self.dtype)
        if len(header) != self._offset:
            raise ValueError(f"{self.path}: its header ({self._offset} bytes) leaves no room to add epochs")
        self.flush()
        self._file.truncate(self._offset + epochs * n * c * self.dtype.itemsize)
        self._file.seek(0)
        self._file.write(header)
        self._file.flush()
        self.shape = (n, epochs, c)

    def _position(self, epoch: int, row: int = 0) -> int:
        n, _, c = self.shape
        return self._offset + (epoch * n + row) * c * self.dtype.itemsize

    def _read_block(self, epoch: int, start: int, out: np.ndarray) -> None:
        self._file.seek(self._position(epoch, start))
        self._file.readinto(memoryview(out).cast("B"))

    def record(self, epoch: int, idx: np.ndarray, probs: np.ndarray) -> None:
        """Store ``probs`` (B, C) of the samples at positions ``idx`` (B,) for ``epoch`` (0-based)."""
        if not 0 <= epoch < self.shape[1]:
            raise IndexError(f"epoch {epoch} outside 0..{self.shape[1] - 1}")
        if epoch != self._epoch:
            self.flush()
            self._read_block(epoch, 0, self._buffer)  # rows not recorded this time keep what the file holds
            self._epoch = epoch
        self._buffer[idx] = probs

    def _runs(self, idx: np.ndarray) -> Iterator[tuple[int, int, int]]:
        """(first row, count, offset into ``idx``) of each run of consecutive positions in sorted ``idx``."""
        breaks = np.flatnonzero(np.diff(idx) != 1) + 1
        for lo, hi in zip(np.r_[0, breaks], np.r_[breaks, len(idx)]):
            yield int(idx[lo]), int(hi - lo), int(lo)

    def read_rows(self, epoch: int, idx: np.ndarray) -> np.ndarray:
        """Rows ``idx`` (sorted, distinct; shape (B,)) of ``epoch`` straight from the file, bypassing the epoch
        buffer: array of shape (B, C). With :meth:`write_rows`, a per-sample accumulator that stays on disk."""
        out = np.empty((len(idx), self.shape[2]), dtype=self.dtype)
        row_bytes = self.shape[2] * self.dtype.itemsize
        for row, count, at in self._runs(idx):
            data = os.pread(self._file.fileno(), count * row_bytes, self._position(epoch, row))
            out[at:at + count] = np.frombuffer(data, dtype=self.dtype).reshape(count, -1)
        return out

    def write_rows(self, epoch: int, idx: np.ndarray, values: np.ndarray) -> None:
        """Write ``values`` (B, C) to rows ``idx`` (sorted, distinct) of ``epoch``; durable at :meth:`sync`."""
        values = np.ascontiguousarray(values, dtype=self.dtype)
        for row, count, at in self._runs(idx):
            os.pwrite(self._file.fileno(), memoryview(values[at:at + count]).cast("B"), self._position(epoch, row))

    def sync(self) -> None:
        """Make what :meth:`write_rows` wrote durable."""
        os.fsync(self._file.fileno())

    def flush(self) -> None:
        """Write the buffered epoch and make it durable (before ``resume.pth`` commits that epoch)."""
        if self._epoch is None:
            return
        try:
            self._file.seek(self._position(self._epoch))
            self._file.write(memoryview(self._buffer).cast("B"))
            self._file.flush()
            os.fsync(self._file.fileno())  # the header too, when resize() rewrote it
        except OSError as exc:  # os.write names no file (a full disk): name it here
            if exc.filename is not None:
                raise
            raise OSError(exc.errno, exc.strerror, str(self.path)) from exc
        self._epoch = None

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples ``start:stop`` of every epoch: float16 array of shape (stop - start, T, C)."""
        self.flush()
        _, t, c = self.shape
        out = np.empty((stop - start, t, c), dtype=self.dtype)
        block = np.empty((stop - start, c), dtype=self.dtype)
        for epoch in range(t):
            self._read_block(epoch, start, block)
            out[:, epoch] = block
        return out

    def write_traces(self, out_path: Path, assigned: np.ndarray, chunk: int = 8192, *,
                     neighbours: EpochFile | None = None, search: dict | None = None) -> None:
        """Write ``training_dynamics.npz`` (``td`` [N, T, C] float16, ``labels`` [N, C] int16) chunk by chunk;
        with the (N, T, 1) recorder of the neighbour agreement, also ``neighbours`` [N, T] float16, and
        ``neighbour_search``, the search that made it (``search``, :func:`agreement_arrays`).

        A chunk holds at most ``chunk`` samples and about 4M values (8 MiB of float16), so memory stays flat in
        N and T alike.
        """
        n, t, c = self.shape
        chunk = max(1, min(chunk, CHUNK_VALUES // (t * c)))

        def pieces(which: int) -> Iterator[np.ndarray]:
            for start in range(0, n, chunk):
                stop = min(start + chunk, n)
                yield order_channels(self.read(start, stop), assigned[start:stop])[which]

        # Two streaming passes (td then labels) keep memory at one chunk; ordering a chunk is cheap.
        arrays = {"td": ((n, t, c), np.float16, pieces(0)), "labels": ((n, c), np.int16, pieces(1))}
        arrays.update(agreement_arrays(neighbours, chunk, search))
        save_npz_chunked(out_path, arrays)

    def close(self) -> None:
        """Close the file; an epoch recorded but not flushed is dropped (it was never committed)."""
        if not self._file.closed:
            self._file.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
