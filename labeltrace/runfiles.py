"""The run-folder contract: the name of every file a STEP 1 or STEP 3 run folder holds, and the one reader of
the traces file and the one reader and writer of ``metadata.pth`` (formats: docs/formats.md).

Writers and readers both name files through these constants, so a file cannot be renamed on one side only.
"""
from __future__ import annotations

import collections
import fcntl
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from labeltrace.errors import UsageError
from labeltrace.io import load_npz, load_torch, torch_save

__all__: list[str] = []  # internal: used by the public modules and the research pipeline

TRACES_FILE = "training_dynamics.npz"  # td [N, T, C] float16, labels [N, C] int16
METADATA_FILE = "metadata.pth"  # the noisy labels and ground truth over the full training set
RAW_TRACES_FILE = "td_raw.npy"  # (T, N, C) float16 while a run is unfinished (labeltrace/epoch_file.py)
RAW_NEIGHBOURS_FILE = "td_neighbours_raw.npy"  # (T, N, 1) float16, likewise: the neighbour agreement
# The compact layout for many classes (labeltrace/compact.py): td [N, T, 2], other_class [N, T], labels [N, 2],
# mean_probs [N, C]; and the working files of labeltrace.DynamicsRecorder while it records.
COMPACT_TRACES_FILE = "training_dynamics_compact.npz"
RAW_COMPACT_FILE = "td_raw_compact.npy"  # (T, N, 3) float32: given prob, strongest other prob, its class
MEAN_SUM_FILE = "td_mean_sum.npy"  # (2, N, C) float32: the probability sums, two slots (the last commit's survives)
MEAN_SPILL_FILE = "td_mean_spill.npy"  # (1, N, C) float16: the epoch's probabilities in arrival order
RECORDER_STATE_FILE = "recorder.json"  # the recorder's committed epochs, layout and sizes
RESUME_FILE = "resume.pth"  # the last committed epoch's state, while a run is unfinished
BEST_MODEL_FILE = "model.pth"
LAST_MODEL_FILE = "model.pth.last"
TRAIN_LOG_FILE = "train_log.csv"
VALID_RESULTS_FILE = "results_valid.csv"
COMMAND_FILE = "cmd.txt"
CONFIG_FILE = "config.json"
SUMMARY_FILE = "summary.json"  # written last: marks the run complete
SPLIT_FILE = "dataset_split.json"  # a train/test split made by this code (Caltech-256 has no official one)
LOCK_FILE = ".lock"
# STEP 3 and data debugging
REMOVED_FILE = "removed.csv"
CORRECTED_LABELS_FILE = "corrected_labels.json"
CORRECTED_LABELS_CSV_FILE = "corrected_labels.csv"
CORRECTED_LABELS_BY_PATH_FILE = "corrected_labels_by_path.json"
ISSUES_CSV = "label_issues.csv"  # every sample, most suspicious first (pipeline/find_issues.py)
ISSUES_PNG = "label_issues.png"  # the contact sheet of the top ones
# Every file above that the project writes atomically into a run folder: only their temporary files
# (``.<name>.<random>.tmp``) are swept when a killed run is resumed.
RUN_FILES = (TRACES_FILE, METADATA_FILE, RESUME_FILE, BEST_MODEL_FILE, LAST_MODEL_FILE, TRAIN_LOG_FILE,
             VALID_RESULTS_FILE, COMMAND_FILE, CONFIG_FILE, SUMMARY_FILE, REMOVED_FILE, CORRECTED_LABELS_FILE,
             CORRECTED_LABELS_CSV_FILE, CORRECTED_LABELS_BY_PATH_FILE, ISSUES_CSV, ISSUES_PNG)

# One entry per training-set position. ``label_injected`` (ours, self-calibration runs only) marks the labels
# flipped on top by ``--calibrate``; the original code ignores it.
PER_SAMPLE_KEYS = ("true_targets", "assigned_targets", "label_flipped", "label_injected")
BOOL_KEYS = ("label_flipped", "label_injected")
METADATA_KEYS = ("train_indices", "valid_indices", *PER_SAMPLE_KEYS)


def check_output_file(path: str | Path, *, flag: str, inputs: tuple[str | Path, ...] = ()) -> None:
    """Fail with one line, before anything runs, when the output file ``path`` is one of ``inputs`` or one of
    the files a run folder holds (``--out RUN/training_dynamics.npz`` would replace the traces)."""
    path = Path(path)
    target = path.resolve()
    for source in inputs:
        source = Path(source)
        if target in (source.resolve(), (source / TRACES_FILE).resolve(), (source / METADATA_FILE).resolve()):
            raise UsageError(f"{flag}: {path} is an input of this command: give another file name")
    folder = target.parent
    if path.name in (*RUN_FILES, RAW_TRACES_FILE, LOCK_FILE) and any(
            (folder / name).exists() for name in (TRACES_FILE, METADATA_FILE, RAW_TRACES_FILE, RESUME_FILE)):
        raise UsageError(f"{flag}: {path} is the {path.name} of the run folder {path.parent}: give another file name")


def lock_run_dir(run_dir: Path) -> IO:
    """Hold an advisory lock on ``run_dir/.lock`` (the folder must exist) until the returned handle is closed:
    one writer per run folder, STEP 1's and the library recorder's alike. A folder another process or another
    recorder holds is a one-line :class:`UsageError`. The lock file stays: deleting it would let a process
    that opened it just before lock a file no one else sees."""
    handle = open(Path(run_dir) / LOCK_FILE, "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise UsageError(f"{run_dir} is in use by another process (it holds {Path(run_dir) / LOCK_FILE}): "
                         "wait for it to end") from None
    return handle


def write_metadata(run_dir: Path, *, train_indices: np.ndarray, valid_indices: np.ndarray,
                   true_targets: np.ndarray, assigned_targets: np.ndarray, label_flipped: np.ndarray,
                   label_injected: np.ndarray | None = None) -> None:
    """Write ``run_dir/metadata.pth``: an OrderedDict of tensors, in the original code's key order.

    Parameters
    ----------
    train_indices : int array of shape (N,), the training-set position of each row of the traces.
    valid_indices : int array of shape (V,), the positions held out for validation (empty: the test set).
    true_targets, assigned_targets : int arrays of shape (N_full,), the clean and the (noisy) training labels.
    label_flipped : bool array of shape (N_full,).
    label_injected : bool array of shape (N_full,), only in a ``--calibrate`` run (else no key: the file stays
        the original's).
    """
    import torch

    meta = collections.OrderedDict(
        train_indices=torch.as_tensor(train_indices), valid_indices=torch.as_tensor(valid_indices),
        true_targets=torch.as_tensor(true_targets), assigned_targets=torch.as_tensor(assigned_targets),
        label_flipped=torch.as_tensor(label_flipped))
    if label_injected is not None:
        meta["label_injected"] = torch.as_tensor(label_injected)
    torch_save(meta, Path(run_dir) / METADATA_FILE)


@dataclass(frozen=True)
class RunMetadata:
    """``metadata.pth`` as read and validated by :func:`read_metadata`; an absent key is None.

    Attributes
    ----------
    path : Path of the file, for messages.
    train_indices : int64 array of shape (N,), each in 0..N_full-1: row ``n`` of the traces is position
        ``train_indices[n]``.
    valid_indices : int64 array of shape (V,).
    true_targets, assigned_targets : int64 arrays of shape (N_full,).
    label_flipped : bool array of shape (N_full,).
    label_injected : bool array of shape (N_full,): the labels ``--calibrate`` flipped on top (None elsewhere).
    """

    path: Path
    train_indices: np.ndarray | None = None
    valid_indices: np.ndarray | None = None
    true_targets: np.ndarray | None = None
    assigned_targets: np.ndarray | None = None
    label_flipped: np.ndarray | None = None
    label_injected: np.ndarray | None = None

    def require(self, *keys: str) -> RunMetadata:
        """``self``, or a one-line :class:`UsageError` naming the file and the keys it lacks."""
        missing = [key for key in keys if getattr(self, key) is None]
        if missing:
            found = [key for key in METADATA_KEYS if getattr(self, key) is not None]
            raise UsageError(f"{self.path}: missing {', '.join(missing)} (found {', '.join(found)}): "
                             f"not the {METADATA_FILE} of a STEP 1 run")
        return self

    def per_row(self, n_rows: int) -> dict[str, np.ndarray]:
        """The per-sample keys present, for the traces' ``n_rows`` rows (mapped through ``train_indices``; each of
        shape (n_rows,)), plus ``train_indices`` itself when present."""
        rows = self.train_indices
        if rows is not None and len(rows) != n_rows:
            raise UsageError(f"{self.path}: train_indices has {len(rows)} entries but the traces have {n_rows} rows")
        out = {}
        for key in PER_SAMPLE_KEYS:
            values = getattr(self, key)
            if values is None:
                continue
            if rows is None and len(values) != n_rows:
                raise UsageError(f"{self.path}: {key} has {len(values)} entries, traces have {n_rows} rows "
                                 f"(and there are no train_indices to map them)")
            out[key] = values if rows is None else values[rows]
        if rows is not None:
            out["train_indices"] = rows
        return out


def read_metadata(path: Path, *, labels: np.ndarray | None = None) -> RunMetadata:
    """``metadata.pth`` loaded safely (``weights_only``) and validated: a dict of arrays whose per-sample
    entries agree in length and whose ``train_indices``/``valid_indices`` are positions among them.

    The original README documents four keys (no ``assigned_targets``), and run folders in that layout exist:
    there ``assigned_targets`` is rebuilt from the traces (:func:`assigned_from_traces`), from ``labels``
    (int array of shape (N, C), the traces' ``labels``) when the caller has read them, else from the
    ``training_dynamics.npz`` beside ``path``.

    Raises
    ------
    UsageError
        One line naming the file: missing, damaged, carrying code, not a dict, or inconsistent.
    """
    path = Path(path)
    meta = load_torch(path, what=f"metadata file ({METADATA_FILE})")
    if not isinstance(meta, dict):
        raise UsageError(f"{path}: metadata must be a dict of tensors, found {type(meta).__name__}")
    arrays = {key: np.asarray(meta[key]).reshape(-1) for key in METADATA_KEYS if meta.get(key) is not None}
    lengths = {key: len(arrays[key]) for key in PER_SAMPLE_KEYS if key in arrays}
    if len(set(lengths.values())) > 1:
        raise UsageError(f"{path}: the per-sample entries disagree in length "
                         f"({', '.join(f'{k} {n}' for k, n in lengths.items())})")
    n_full = next(iter(lengths.values()), None)
    _check_targets(path, arrays)
    for key in METADATA_KEYS:
        if key in arrays:  # one dtype per key, whatever the writer stored
            arrays[key] = arrays[key].astype(bool if key in BOOL_KEYS else np.int64)
    for key in ("train_indices", "valid_indices"):
        positions = arrays.get(key)
        if n_full is not None and positions is not None and len(positions) \
                and not 0 <= positions.min() <= positions.max() < n_full:
            raise UsageError(f"{path}: {key} run from {positions.min()} to {positions.max()}, outside the "
                             f"{n_full} training-set positions of {', '.join(lengths)}")
    if "assigned_targets" not in arrays and {"train_indices", "true_targets"} <= set(arrays):
        if labels is None:
            labels = _traces_labels(path.parent / TRACES_FILE, path)
        arrays["assigned_targets"] = assigned_from_traces(labels, arrays["train_indices"], arrays["true_targets"],
                                                          path=path)
    return RunMetadata(path=path, **arrays)


def _check_targets(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Class ids are whole numbers >= 0: the cast to int64 would truncate 2.7 to 2 and keep -1 (a row
    of the class table counted from the end). Ids beyond the classes are checked against the traces
    (:func:`labeltrace.traces.load_run`)."""
    for key in ("true_targets", "assigned_targets"):
        values = arrays.get(key)
        if values is None or not len(values):
            continue
        if values.dtype == bool or not np.issubdtype(values.dtype, np.number):
            raise UsageError(f"{path}: {key} must be integer class ids, found {values.dtype}")
        if not np.issubdtype(values.dtype, np.integer) and not np.all(np.isfinite(values) & (values == np.round(values))):
            raise UsageError(f"{path}: {key} holds values that are not whole class ids ({values.dtype}): "
                             "the metadata is damaged")
        if values.min() < 0:
            raise UsageError(f"{path}: {key} holds negative class ids (from {values.min():g}): the metadata is damaged")


def assigned_from_traces(labels: np.ndarray, train_indices: np.ndarray, true_targets: np.ndarray, *,
                         path: Path) -> np.ndarray:
    """``assigned_targets`` of a four-key ``metadata.pth``: column 0 of the traces' ``labels`` (shape (N, C),
    the label each traced sample trained with) placed at its position ``train_indices`` (shape (N,)); positions
    no trace covers (a held-out validation part) keep ``true_targets`` (shape (N_full,)), the label they were
    loaded with. Returns int64 of shape (N_full,)."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or len(labels) != len(train_indices):
        raise UsageError(f"{path}: has no assigned_targets, and the traces' labels {labels.shape} do not give one "
                         f"per train_indices entry ({len(train_indices)}) to rebuild them from")
    assigned = true_targets.astype(np.int64).copy()
    assigned[train_indices] = labels[:, 0]
    return assigned


def _traces_labels(traces: Path, metadata: Path) -> np.ndarray:
    """The ``labels`` array alone of a traces file (``td`` stays on disk)."""
    if not traces.is_file():
        raise UsageError(f"{metadata}: has no assigned_targets (the original README's four keys) and there is no "
                         f"{TRACES_FILE} beside it to rebuild them from")
    return load_npz(traces, keys=("labels",), only=("labels",))["labels"]


def read_traces(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``training_dynamics.npz`` read whole and validated.

    Returns
    -------
    td : float array of shape (N, T, C) as stored (float16), every value finite.
    labels : int array of shape (N, C).

    Raises
    ------
    UsageError
        One line naming the file: missing, truncated or corrupt, wrong shapes or dtypes, non-finite values.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no traces file (expected a STEP 1 run folder holding {TRACES_FILE})")
    arrays = load_npz(path, keys=("td", "labels"))  # truncated/corrupt -> UsageError naming the file
    td, labels = arrays["td"], arrays["labels"]
    if td.ndim != 3 or td.shape[1] < 1 or td.shape[2] < 1:
        raise UsageError(f"{path}: 'td' must have shape [N, T, C], found {td.shape}")
    if td.shape[0] < 1:  # else blamed on the metadata, whose entries then cover no row
        raise UsageError(f"{path}: 'td' holds no samples (N = 0, shape {td.shape}): not the traces of a run")
    if not np.issubdtype(td.dtype, np.floating):
        raise UsageError(f"{path}: 'td' must hold probabilities (float16), found dtype {td.dtype}")
    if labels.shape != (td.shape[0], td.shape[2]) or not np.issubdtype(labels.dtype, np.integer):
        raise UsageError(f"{path}: 'labels' must be integers of shape {(td.shape[0], td.shape[2])} "
                         f"to match td {td.shape}, found {labels.dtype} {labels.shape}")
    c = td.shape[2]
    if c < 2:  # every score compares the assigned label's channel with the others
        raise UsageError(f"{path}: 'td' has {c} class channel: the traces of a classifier have 2 or more")
    if len(labels) and not 0 <= labels.min() <= labels.max() < c:
        raise UsageError(f"{path}: 'labels' run from {labels.min()} to {labels.max()}, outside the {c} classes "
                         f"0..{c - 1} of 'td'")
    bad, outside = _count_bad(td)
    if bad:  # every reader (detector, baselines, plots, export) would turn them into NaN scores or NaN tokens
        raise UsageError(f"{path}: 'td' holds {bad} NaN or infinite probabilities: the run that wrote it "
                         "diverged or the file is damaged")
    if outside:
        raise UsageError(f"{path}: 'td' holds {outside} values outside [0, 1]: not probabilities (softmax outputs)")
    return td, labels


def read_neighbours(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """The ``neighbours`` array of a traces file (the neighbour agreement, float16 of shape (N, T) for ``td`` of
    ``shape`` (N, T, C)), or None when the run did not record it; ``UsageError`` naming the file when it does not
    fit ``td`` or is not a fraction."""
    neighbours = load_npz(path, only=("neighbours",)).get("neighbours")
    if neighbours is None:
        return None
    if neighbours.shape != tuple(shape[:2]) or not np.issubdtype(neighbours.dtype, np.floating):
        raise UsageError(f"{path}: 'neighbours' must be floats of shape {tuple(shape[:2])} (N, T) to match td "
                         f"{tuple(shape)}, found {neighbours.dtype} {neighbours.shape}")
    if not np.all((neighbours >= 0) & (neighbours <= 1)):  # NaN fails too
        raise UsageError(f"{path}: 'neighbours' holds values outside [0, 1]: not fractions of neighbours")
    return neighbours


# float16 rounds a softmax output to at most 1 + 2**-11; anything beyond this is not a probability.
PROBABILITY_SLACK = 1e-3


def _count_bad(td: np.ndarray, chunk: int = 1 << 16) -> tuple[int, int]:
    """(non-finite values, finite values outside [0, 1]) of ``td``, counted by chunks of rows (no float32 copy
    of the whole array)."""
    bad = outside = 0
    for i in range(0, len(td), chunk):
        block = td[i:i + chunk]
        finite = np.isfinite(block)
        bad += int(np.count_nonzero(~finite))
        outside += int(np.count_nonzero(finite & ((block < -PROBABILITY_SLACK) | (block > 1 + PROBABILITY_SLACK))))
    return bad, outside
