"""Atomic writes: every output goes to a temporary file in the same folder, is flushed to disk, then renamed.

A crash, a kill or a full disk therefore leaves either the previous file or the new one, never half of one.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import IO, Any, Iterator, Mapping

import numpy as np

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Yield a file handle whose content replaces ``path`` only if the block finishes without error."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; outputs should read like any other file
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w") as handle:
        handle.write(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_csv(path: str | os.PathLike, frame) -> None:
    """Write a pandas DataFrame without its index."""
    with atomic_open(path, "w") as handle:
        frame.to_csv(handle, index=False)


def torch_save(obj: Any, path: str | os.PathLike) -> None:
    import torch

    with atomic_open(path, "wb") as handle:
        torch.save(obj, handle)


def save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """``np.savez_compressed``, atomically."""
    with atomic_open(path, "wb") as handle:
        np.savez_compressed(handle, **arrays)


def save_npz_chunked(path: str | os.PathLike, arrays: Mapping[str, Any], chunk_rows: int = 4096) -> None:
    """Write a compressed ``.npz`` that ``np.load`` reads, streaming each array by chunks of rows.

    ``arrays`` maps a name to an array, or to a tuple ``(shape, dtype, chunks)`` where ``chunks`` yields
    C-ordered arrays whose rows concatenate to ``shape``; so a traces file larger than memory can be written
    from a memory-mapped source without ever holding it whole.
    """
    with atomic_open(path, "wb") as handle:
        with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
            for name, value in arrays.items():
                if isinstance(value, tuple):
                    shape, dtype, chunks = value
                else:
                    value = np.ascontiguousarray(value)
                    shape, dtype = value.shape, value.dtype
                    chunks = (value[i : i + chunk_rows] for i in range(0, max(len(value), 1), chunk_rows))
                with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                              "fortran_order": False, "shape": tuple(int(s) for s in shape)}
                    np.lib.format.write_array_header_1_0(member, header)
                    written = 0
                    for chunk in chunks:
                        chunk = np.ascontiguousarray(chunk, dtype=dtype)
                        member.write(chunk.tobytes())
                        written += len(chunk)
                    if shape and written != shape[0]:
                        raise ValueError(f"{name}: wrote {written} rows, expected {shape[0]}")


def load_npz(path: str | os.PathLike, *, keys: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` (no pickles), read whole; a missing, truncated or corrupt file, or one without
    ``keys``, is a :class:`~core.errors.UsageError` naming the file."""
    from core.errors import UsageError

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = sorted(set(keys) - set(data.files))
            if missing:
                raise UsageError(f"{path}: missing {missing}, found {sorted(data.files)}")
            return {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        raise UsageError(f"{path}: unreadable .npz file (truncated or corrupt?): {exc}") from None
