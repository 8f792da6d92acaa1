"""Training labels read from a file (``--labels_file``), replacing a dataset's own before STEP 1.

Formats (docs/formats.md, "Labels files"), each covering the dataset's *full* training set, one label per sample:

- ``.csv`` with the header ``index,label`` (training-set position) or ``path,label`` (folder datasets: the image's
  path relative to the dataset folder, or as the dataset lists it); every sample exactly once, in any order.
  ``label`` is a class id or a class name the dataset knows (a name wins over an id when both read the same).
- ``.npy``: a 1-D integer array; ``.json``: a list of integers, or ``{"labels": [...]}``.
- ``.pt``: a CIFAR-10N / CIFAR-100N file, a dict of arrays saved with ``torch.save``; ``--labels_key`` picks
  one (``worse_label``, ``aggre_label``, ``noisy_label``, ...). Read with ``weights_only=True``: only numpy
  arrays and tensors, never code.

Every problem is a one-line :class:`~labeltrace.errors.UsageError` naming the file or flag; nothing here writes.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path, PurePosixPath
from typing import Any, Sequence

import numpy as np

from labeltrace.errors import UsageError, fail
from datasets.base import DatasetBundle, check_labels

EXTENSIONS = (".csv", ".npy", ".json", ".pt")
CSV_KEYS = ("index", "path")  # the column that says which sample a row labels


def check_labels_flags(labels_file: str | None, labels_key: str | None) -> None:
    """The checks that need no dataset (run while the flags are resolved, before anything is loaded): the
    file exists, its extension is known, and ``--labels_key`` comes only with a ``.pt`` file."""
    if labels_file is None:
        if labels_key is not None:
            fail(f"--labels_key {labels_key}: needs --labels_file (a CIFAR-N style .pt file)")
        return
    path = Path(labels_file)
    if path.is_dir():
        fail(f"--labels_file: {labels_file} is a folder: give the labels file itself")
    if not path.is_file():
        fail(f"--labels_file: no such file {labels_file}")
    ext = path.suffix.lower()
    if ext not in EXTENSIONS:
        fail(f"--labels_file {labels_file}: unknown extension {ext or '(none)'!r}; expected one of "
             f"{', '.join(EXTENSIONS)}")
    if labels_key is not None and ext != ".pt":
        fail(f"--labels_key {labels_key}: only a .pt labels file has keys, --labels_file {labels_file} is {ext}")


def read_labels_file(path: str | Path, *, num_samples: int, num_classes: int,
                     class_names: Sequence[str] | None = None, paths: Sequence[str] | None = None,
                     root: str | Path | None = None, key: str | None = None) -> np.ndarray:
    """The labels of ``path``, int64 of shape (num_samples,), row ``i`` the label of training-set position ``i``.

    ``class_names`` (length num_classes): names a CSV may use for classes. ``paths`` (length num_samples): the
    training images as the folder dataset lists them, for a ``path,label`` CSV; ``root``: the dataset folder
    they may be given relative to. ``key``: the array of a ``.pt`` dict."""
    check_labels_flags(str(path), key)
    source = f"--labels_file {path}"
    ext = Path(path).suffix.lower()
    if ext == ".csv":
        return _read_csv(Path(path), num_samples=num_samples, num_classes=num_classes, class_names=class_names,
                         paths=paths, root=root)
    if ext == ".npy":
        values = _read_npy(Path(path))
    elif ext == ".json":
        values = _read_json(Path(path))
    else:
        values = _read_pt(Path(path), key)
        source = f"{source} (--labels_key {key})"
    return _label_array(values, source, num_samples=num_samples, num_classes=num_classes)


def read_bundle_labels(bundle: DatasetBundle, path: str | Path, key: str | None = None) -> np.ndarray:
    """:func:`read_labels_file` for the training set of ``bundle`` (the full one, before ``--max_train``):
    shape (len(bundle.train),)."""
    paths = None if bundle.in_memory else bundle.train.paths
    return read_labels_file(path, num_samples=len(bundle.train), num_classes=bundle.num_classes,
                            class_names=bundle.classes, paths=paths, root=bundle.info.get("path"), key=key)


def labels_sha1(labels: np.ndarray) -> str:
    """A digest of the labels as int64: a run records it, so an edited file is not taken for the one it ran on."""
    return hashlib.sha1(np.ascontiguousarray(labels, dtype=np.int64).tobytes()).hexdigest()


def _label_array(values: Any, source: str, *, num_samples: int, num_classes: int) -> np.ndarray:
    """``values`` as int64 labels of shape (num_samples,), every one in 0..num_classes-1."""
    try:
        array = np.asarray(values)
    except (ValueError, TypeError):  # ragged nested lists
        fail(f"{source}: expected a flat list of integer labels")
    if array.ndim != 1:
        fail(f"{source}: expected a 1-D array of labels, got shape {tuple(array.shape)}")
    if len(array) != num_samples:
        fail(f"{source}: expected {num_samples} labels (one per sample of the full training set), got {len(array)}")
    integral = array.dtype.kind in "iu" or (array.dtype.kind == "f" and np.all(np.mod(array, 1) == 0))
    if array.dtype.kind == "b" or not integral:
        fail(f"{source}: expected integer class ids, got {array.dtype} values")
    return check_labels(array.astype(np.int64), num_classes, source)


def _read_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)  # an object array would run code when unpickled
    except (ValueError, OSError, EOFError) as exc:
        raise UsageError(f"--labels_file {path}: not a readable .npy array of labels ({exc})") from None


def _read_json(path: Path) -> Any:
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"--labels_file {path}: not valid JSON ({exc})") from None
    if isinstance(data, dict) and set(data) == {"labels"}:
        data = data["labels"]
    if not isinstance(data, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in data):
        fail(f"--labels_file {path}: expected a JSON list of integer labels (or {{\"labels\": [...]}})")
    return data


def _numpy_globals() -> list[Any]:
    """What a dict of numpy arrays pickles into, allowlisted for ``weights_only=True``: the array, its dtype and
    their reconstructor, also under numpy 1's module name (``numpy.core``, how the CIFAR-N files were saved)."""
    from numpy._core.multiarray import _reconstruct

    dtypes = [type(np.dtype(code)) for code in np.typecodes["AllInteger"] + "?efd"]
    return [np.ndarray, np.dtype, _reconstruct, (_reconstruct, "numpy.core.multiarray._reconstruct"), *dtypes]


def _read_pt(path: Path, key: str | None) -> Any:
    import torch

    from labeltrace.io import load_torch

    with torch.serialization.safe_globals(_numpy_globals()):
        data = load_torch(path, what="labels file (a dict of label arrays)")
    if not isinstance(data, dict):
        fail(f"--labels_file {path}: expected a dict of label arrays (CIFAR-N style), got {type(data).__name__}")
    keys = ", ".join(str(k) for k in data)
    if key is None:
        fail(f"--labels_file {path}: choose the labels with --labels_key; its keys: {keys}")
    if key not in data:
        fail(f"--labels_key {key}: not in --labels_file {path}; its keys: {keys}")
    values = data[key]
    return values.numpy() if isinstance(values, torch.Tensor) else values


def _read_csv(path: Path, *, num_samples: int, num_classes: int, class_names: Sequence[str] | None,
              paths: Sequence[str] | None, root: str | Path | None) -> np.ndarray:
    """A ``index,label`` or ``path,label`` CSV covering every training sample once; errors name the line."""
    import pandas as pd

    try:  # as text: ids, names and paths are compared as written
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise UsageError(f"--labels_file {path}: not a readable CSV ({exc})") from None
    columns = [str(c).strip() for c in frame.columns]
    if len(columns) != 2 or columns[1] != "label" or columns[0] not in CSV_KEYS:
        fail(f"--labels_file {path}: expected the header index,label or path,label, got {','.join(columns)}")
    if len(frame) != num_samples:
        fail(f"--labels_file {path}: expected {num_samples} rows (one per sample of the full training set), "
             f"got {len(frame)}")
    where = [str(v).strip() for v in frame.iloc[:, 0]]
    if columns[0] == "index":
        rows = _csv_indices(path, where, num_samples)
    else:
        rows = _csv_paths(path, where, paths, root)
    seen = np.full(num_samples, -1, dtype=np.int64)
    labels = np.empty(num_samples, dtype=np.int64)
    names = {name: i for i, name in enumerate(class_names or [])}
    for line, (row, value) in enumerate(zip(rows, frame.iloc[:, 1]), start=2):
        if seen[row] >= 0:
            fail(f"--labels_file {path}: line {line}: {where[line - 2]!r} is labelled twice (also line {seen[row]})")
        seen[row] = line
        labels[row] = _csv_label(path, line, str(value).strip(), names, num_classes)
    return labels


def _is_number(text: str) -> bool:
    """Whether ``text`` is a whole number in ASCII digits: ``str.isdigit`` admits '²' (which ``int`` then
    refuses) and other scripts' digits, which no label file means as class ids."""
    return re.fullmatch(r"-?[0-9]+", text) is not None


def _csv_indices(path: Path, values: list[str], num_samples: int) -> list[int]:
    rows = []
    for line, text in enumerate(values, start=2):
        if not _is_number(text) or not 0 <= int(text) < num_samples:
            fail(f"--labels_file {path}: line {line}: index {text!r} is not a training-set position "
                 f"0..{num_samples - 1}")
        rows.append(int(text))
    return rows


def _csv_paths(path: Path, values: list[str], paths: Sequence[str] | None, root: str | Path | None) -> list[int]:
    """Positions of the CSV's paths among ``paths``, each given as listed or relative to ``root``."""
    if paths is None:
        fail(f"--labels_file {path}: a path,label CSV needs a folder dataset (imagefolder, ...); "
             "in-memory datasets take index,label")
    lookup: dict[str, int] = {}
    for i, listed in enumerate(paths):
        lookup[_normal(listed)] = i
        relative = _relative(listed, root)
        if relative is not None:
            lookup.setdefault(relative, i)
    rows = []
    for line, text in enumerate(values, start=2):
        row = lookup.get(_normal(text))
        if row is None:
            example = _relative(paths[0], root) or paths[0]
            fail(f"--labels_file {path}: line {line}: unknown path {text!r}: not a training image of the dataset "
                 f"(give paths relative to the dataset folder, e.g. {example})")
        rows.append(row)
    return rows


def _relative(listed: str, root: str | Path | None) -> str | None:
    """``listed`` relative to the dataset folder ``root`` in POSIX form, or None when it lies elsewhere."""
    if root is None:
        return None
    try:
        return Path(listed).relative_to(root).as_posix()
    except ValueError:
        return None


def _normal(text: str) -> str:
    """A path as written in a CSV, compared in POSIX form without a leading ``./``."""
    return str(PurePosixPath(text.replace("\\", "/")))


def _csv_label(path: Path, line: int, text: str, names: dict[str, int], num_classes: int) -> int:
    if text in names:  # a class name wins: folder classes named "1", "2", ... mean their folder
        return names[text]
    if _is_number(text):
        if 0 <= int(text) < num_classes:
            return int(text)
        fail(f"--labels_file {path}: line {line}: label {text} is outside the {num_classes} classes "
             f"0..{num_classes - 1}")
    known = f"; its classes: {', '.join(list(names)[:10])}{', ...' if len(names) > 10 else ''}" if names else \
        " (this dataset has no class names: use class ids)"
    fail(f"--labels_file {path}: line {line}: unknown class name {text!r}{known}")
