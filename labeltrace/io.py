"""Atomic writes: every output goes to a temporary file in the same folder, is flushed to disk, then renamed.

A crash, a kill or a full disk therefore leaves either the previous file or the new one, never half of one.
"""
from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import tempfile
import zipfile
from pathlib import Path
from typing import IO, Any, Iterator, Mapping

import numpy as np

from labeltrace.errors import DISK_FULL, UsageError, fail, os_error_in_chain

__all__: list[str] = []  # internal: used by the public modules and the research pipeline

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
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        full = os_error_in_chain(exc, DISK_FULL)
        if full is not None:  # torch.save hides it in a RuntimeError, and no writer names the file
            raise OSError(full.errno, full.strerror, str(path)) from None
        raise


def remove_stale_temps(folder: str | os.PathLike, names: tuple[str, ...]) -> list[str]:
    """Delete the temporary files :func:`atomic_open` leaves when killed mid-write into ``folder``: regular
    files named ``.<name>.<random>.tmp`` for one of the ``names`` the project writes there. Anything else (a
    user's ``.notes.tmp``, a folder called ``.cache.tmp``) stays. Call it only while no other process writes
    into ``folder`` (the run folder's lock). Returns the names removed."""
    stale = []
    for path in sorted(Path(folder).glob(".*.tmp")):
        match = _TEMP_NAME.fullmatch(path.name)
        if match and match.group(1) in names and path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)
            stale.append(path.name)
    return stale


# atomic_open's temporary names: mkstemp's random part is lower-case letters, digits and underscores.
_TEMP_NAME = re.compile(r"\.(.+)\.([a-z0-9_]+)\.tmp")


def check_writable(path: str | os.PathLike, *, flag: str, folder: bool) -> None:
    """Fail with one line, before anything is written, unless ``path`` (a folder when ``folder``, else a file)
    can be written: not a folder where a file goes (or the reverse), and its nearest existing folder writable."""
    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        fail(f"{flag}: {path} is a file, not a folder")
    if not folder and path.is_dir():
        fail(f"{flag}: {path} is a folder: give a file name")
    start = path if folder else path.parent
    existing = next(p for p in (start, *start.parents) if p.exists())
    if not existing.is_dir():
        fail(f"{flag}: cannot create {path}: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        fail(f"{flag}: cannot write into {existing} (read-only or not yours)")


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w") as handle:
        handle.write(text)


def json_ready(obj: Any) -> Any:
    """``obj`` as :func:`write_json` stores it and ``json.load`` reads it back: NaN and infinities become None
    (JSON has no token for them: ``NaN`` makes the file invalid JSON), tuples lists, anything else ``str``."""
    return json.loads(json.dumps(_finite(obj), default=str))


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) or isinstance(obj, np.floating):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON; a NaN or infinite number is written as ``null`` (:func:`json_ready`)."""
    write_text(path, json.dumps(json_ready(obj), indent=2, sort_keys=True, allow_nan=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """The content of a JSON file; a missing or unreadable one is a :class:`UsageError` naming it."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"{path}: not a readable JSON file ({exc})") from None


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


TORCH_MAGIC = (b"PK\x03\x04", b"\x80")  # a zip archive (torch >= 1.6), or a pickle (the legacy format)
# The legacy format's first pickle: torch's magic number as a 10-byte LONG1 (pickle opcode 0x8a, length 10).
LEGACY_MAGIC = b"\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")


def _reason(exc: BaseException) -> str:
    """The line of an exception worth printing; torch's advice to retry with ``weights_only=False`` (which
    would run the file's code) is never passed on."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    lines = [line for line in lines if "weights_only" not in line] or ["truncated?"]
    return f"{type(exc).__name__}: {lines[0]}"


def check_torch_file(path: str | os.PathLike, *, what: str) -> None:
    """Fail with one line naming ``path`` unless it exists and starts as a file ``torch.save`` writes: random
    bytes are then called what they are, not a pickle that "carries code"."""
    path = Path(path)
    if not path.is_file():
        fail(f"{path}: no such {what}")
    with open(path, "rb") as handle:
        head = handle.read(16)
    # A pickle is torch's only if it is the legacy format, which begins with torch's magic number (any other
    # pickle would reach torch.load's UserWarning and "truncated or corrupt?").
    legacy = head.startswith(b"\x80") and head[2:14] == LEGACY_MAGIC
    if not (head.startswith(TORCH_MAGIC[0]) or legacy):
        fail(f"{path}: not a {what}: {'an empty file' if not head else 'not a file torch.save writes'}; refused")


def load_torch(path: str | os.PathLike, *, what: str, **kwargs: Any) -> Any:
    """``torch.load(path, weights_only=True)`` to the CPU; a missing file, one that is not a torch file, one
    that carries code and one that is truncated are each a :class:`~labeltrace.errors.UsageError` naming the file
    and ``what`` it should have been."""
    import torch

    check_torch_file(path, what=what)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, **kwargs)
    except pickle.UnpicklingError as exc:
        code = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if code:
            fail(f"{path}: refused to load: the {what} carries code or objects beyond tensors ({code.group(1)})")
        raise UsageError(f"{path}: unreadable {what} (truncated or corrupt?): {_reason(exc)}") from None
    except Exception as exc:  # zip, pickle and torch errors all mean the file is damaged
        raise UsageError(f"{path}: unreadable {what} (truncated or corrupt?): {_reason(exc)}") from None


def load_npz(path: str | os.PathLike, *, keys: tuple[str, ...] = (),
             only: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` (no pickles), or those named in ``only``, read whole; a missing, truncated or
    corrupt file, or one without ``keys``, is a :class:`~labeltrace.errors.UsageError` naming the file."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{path}: a folder, not an .npz file")
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head not in NPZ_MAGIC:  # np.load would try it as a pickle and relay its allow_pickle advice
        raise UsageError(f"{path}: not an .npz file ({'empty' if not head else 'no zip archive'}): "
                         "truncated or corrupt?")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = sorted(set(keys) - set(data.files))
            if missing:
                raise UsageError(f"{path}: missing {missing}, found {sorted(data.files)}")
            return {name: data[name] for name in data.files if only is None or name in only}
    except UsageError:  # a ValueError too, but already names the file and the problem
        raise
    except Exception as exc:  # noqa: BLE001 - zip, zlib, and numpy's header parser (SyntaxError, TokenError)
        reason = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"{path}: unreadable .npz file (truncated or corrupt?): {type(exc).__name__}: "
                         f"{reason}") from None


NPZ_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip archive, or an empty one
