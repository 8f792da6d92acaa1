"""Read a STEP 1 run folder (``training_dynamics.npz`` + ``metadata.pth``) and resample traces in time.

Formats (docs/formats.md): ``td`` float16 of shape (N, T, C), channel 0 = probability of the
assigned label; ``labels`` int16 of shape (N, C), column 0 = the assigned label. ``metadata.pth`` holds
``train_indices``, ``true_targets``, ``assigned_targets``, ``label_flipped`` over the *full* training set;
row ``n`` of ``td`` is training-set position ``train_indices[n]``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import UsageError
from core.io import load_npz, load_torch

TRACES_FILE = "training_dynamics.npz"
METADATA_FILE = "metadata.pth"


@dataclass(frozen=True)
class RunTraces:
    """The traces of one run.

    Attributes
    ----------
    source : str
        The traces file the arrays came from.
    td : ndarray of shape (N, T, C), float16 as stored.
    labels : ndarray of shape (N, C), int16.
    label_flipped : ndarray of shape (N,), bool, or None when the run has no ground truth.
    assigned_targets, true_targets : ndarray of shape (N,), or None without metadata.
    train_indices : ndarray of shape (N,), int64: the training-set position of each row, or None.
    """

    source: str
    td: np.ndarray
    labels: np.ndarray
    label_flipped: np.ndarray | None = None
    assigned_targets: np.ndarray | None = None
    true_targets: np.ndarray | None = None
    train_indices: np.ndarray | None = None

    @property
    def curves(self) -> np.ndarray:
        """The detector's input, ``td[:, :, 0]`` as float32, shape (N, T)."""
        return np.ascontiguousarray(self.td[:, :, 0], dtype=np.float32)

    @property
    def num_epochs(self) -> int:
        return int(self.td.shape[1])


def _resolve(path: str | Path) -> tuple[Path, Path]:
    """Accept a run folder or the traces file itself; return (traces file, metadata file)."""
    path = Path(path)
    if path.suffix == ".npz" and not path.is_dir():
        return path, path.parent / METADATA_FILE
    return path / TRACES_FILE, path / METADATA_FILE


def _load_td(npz_path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not npz_path.is_file():
        raise UsageError(f"{npz_path}: no traces file (expected a STEP 1 run folder holding {TRACES_FILE})")
    arrays = load_npz(npz_path, keys=("td", "labels"))  # truncated/corrupt -> UsageError naming the file
    td, labels = arrays["td"], arrays["labels"]
    if td.ndim != 3 or td.shape[1] < 1 or td.shape[2] < 1:
        raise UsageError(f"{npz_path}: 'td' must have shape [N, T, C], found {td.shape}")
    if not np.issubdtype(td.dtype, np.floating):
        raise UsageError(f"{npz_path}: 'td' must hold probabilities (float16), found dtype {td.dtype}")
    if labels.shape != (td.shape[0], td.shape[2]) or not np.issubdtype(labels.dtype, np.integer):
        raise UsageError(f"{npz_path}: 'labels' must be integers of shape {(td.shape[0], td.shape[2])} "
                         f"to match td {td.shape}, found {labels.dtype} {labels.shape}")
    bad = _count_non_finite(td)
    if bad:  # every reader (detector, baselines, plots, export) would turn them into NaN scores or NaN tokens
        raise UsageError(f"{npz_path}: 'td' holds {bad} NaN or infinite probabilities: the run that wrote it "
                         "diverged or the file is damaged")
    return td, labels


def _count_non_finite(td: np.ndarray, chunk: int = 1 << 16) -> int:
    """Non-finite values of ``td``, counted by chunks of rows (no float32 copy of the whole array)."""
    return sum(int(np.count_nonzero(~np.isfinite(td[i:i + chunk]))) for i in range(0, len(td), chunk))


def read_metadata(meta_path: Path, *, required: tuple[str, ...] = ()) -> dict:
    """``metadata.pth`` loaded safely (``weights_only``): a dict holding ``required``, else a one-line
    :class:`UsageError` naming the file."""
    meta = load_torch(meta_path, what="metadata file (metadata.pth)")
    if not isinstance(meta, dict):
        raise UsageError(f"{meta_path}: metadata must be a dict of tensors, found {type(meta).__name__}")
    missing = [key for key in required if meta.get(key) is None]
    if missing:
        raise UsageError(f"{meta_path}: missing {', '.join(missing)} (found {', '.join(map(str, meta))}): "
                         "not the metadata.pth of a STEP 1 run")
    return meta


def _load_metadata(meta_path: Path, n_rows: int) -> dict[str, np.ndarray]:
    """Per-row ground truth, mapped through ``train_indices``; ``{}`` when there is no metadata file."""
    if not meta_path.is_file():
        return {}
    meta = read_metadata(meta_path)
    rows = None
    if "train_indices" in meta:
        rows = np.asarray(meta["train_indices"], dtype=np.int64).reshape(-1)
        if len(rows) != n_rows:
            raise UsageError(f"{meta_path}: train_indices has {len(rows)} entries but the traces have "
                             f"{n_rows} rows")
    out = {}
    for key in ("label_flipped", "assigned_targets", "true_targets"):
        if key not in meta or meta[key] is None:
            continue
        values = np.asarray(meta[key]).reshape(-1)
        if rows is not None:
            if len(rows) and rows.max() >= len(values):
                raise UsageError(f"{meta_path}: train_indices reach {rows.max()} but {key} has "
                                 f"{len(values)} entries")
            values = values[rows]
        elif len(values) != n_rows:
            raise UsageError(f"{meta_path}: {key} has {len(values)} entries, traces have {n_rows} rows "
                             f"(and there are no train_indices to map them)")
        out[key] = values
    if "label_flipped" in out:
        out["label_flipped"] = out["label_flipped"].astype(bool)
    if rows is not None:
        out["train_indices"] = rows
    return out


def load_run(run_dir: str | Path) -> RunTraces:
    """Load and validate one run's traces and (if present) its ground truth.

    Parameters
    ----------
    run_dir : path
        A STEP 1 run folder, or its ``training_dynamics.npz``.

    Raises
    ------
    UsageError
        Missing, truncated or corrupt files, shapes that do not fit, or metadata that disagrees with the
        traces' assigned labels; the message names the file.
    """
    npz_path, meta_path = _resolve(run_dir)
    td, labels = _load_td(npz_path)
    meta = _load_metadata(meta_path, td.shape[0])
    assigned = meta.get("assigned_targets")
    if assigned is not None and not np.array_equal(assigned.astype(np.int64), labels[:, 0].astype(np.int64)):
        bad = int(np.sum(assigned.astype(np.int64) != labels[:, 0]))
        raise UsageError(f"{meta_path}: assigned_targets disagree with labels[:, 0] of {npz_path} on {bad} "
                         f"rows: the metadata belongs to another run")
    return RunTraces(source=str(npz_path), td=td, labels=labels, label_flipped=meta.get("label_flipped"),
                     assigned_targets=assigned, true_targets=meta.get("true_targets"),
                     train_indices=meta.get("train_indices"))


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
