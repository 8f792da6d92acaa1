"""The label-issue table: every sample ranked by suspicion, with the label the dynamics suggest instead.

Pure functions over the traces file's arrays (``td`` (N, T, C), ``class_ids`` (N, C): the class id of each channel, 0 = the assigned label).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from labeltrace.baselines import score_baselines
from labeltrace.compact import compact_suggested, is_compact
from labeltrace.errors import require
from labeltrace.io import atomic_open, write_csv
from labeltrace.metrics import order_by_noisiness
from labeltrace.runfiles import ISSUES_CSV, ISSUES_PNG

__all__ = ["suggested_labels", "label_issue_table", "write_issue_files"]

TABLE_BASELINES = ("aum", "confidence", "last_self_confidence", "forgetting")  # beside the detector, cheap


def suggested_labels(td: np.ndarray, class_ids: np.ndarray) -> np.ndarray:
    """The class the network itself points to, int array of shape (N,): the last epoch's argmax when it is not
    the assigned label, else (a run that fitted the assigned label in the end) the other class with the highest
    mean probability over the epochs, which is channel 1 by the traces' channel order. Compact traces give the
    same from their ``other_class``."""
    if is_compact(td):
        return compact_suggested(td, class_ids)
    last = np.asarray(td[:, -1, :], dtype=np.float32).argmax(axis=1)
    rows = np.arange(len(class_ids))
    return np.where(last != 0, class_ids[rows, last], class_ids[:, 1]).astype(np.int64)


def label_issue_table(td: np.ndarray, class_ids: np.ndarray, p_noisy: np.ndarray, *,
                      indices: np.ndarray | None = None, class_names: Sequence[str] | None = None,
                      paths: Sequence[str] | None = None, suggested: np.ndarray | None = None):
    """Every sample, most suspicious first: ``rank, index, [path,] assigned_label, [assigned_name,]
    suggested_label, [suggested_name,] p_noisy`` and the hand-crafted scores of :data:`TABLE_BASELINES` (higher = more suspect).

    ``indices`` (N,): the training-set position of each row (default ``arange(N)``); ``paths`` are indexed by it.
    ``suggested`` (N,): labels to suggest instead of :func:`suggested_labels` (e.g. a model trained on the
    clean part's predictions).
    """
    n = len(p_noisy)
    indices = np.arange(n) if indices is None else np.asarray(indices)
    given = class_ids[:, 0].astype(np.int64)
    suggested = suggested_labels(td, class_ids) if suggested is None else np.asarray(suggested, dtype=np.int64)
    order = order_by_noisiness(p_noisy)[::-1]
    table = {"rank": np.arange(1, n + 1), "index": indices[order]}
    if paths is not None:
        table["path"] = [paths[i] for i in indices[order]]
    table["assigned_label"] = given[order]
    if class_names is not None:
        table["assigned_name"] = [class_names[c] for c in given[order]]
    table["suggested_label"] = suggested[order]
    if class_names is not None:
        table["suggested_name"] = [class_names[c] for c in suggested[order]]
    table["p_noisy"] = np.round(np.asarray(p_noisy, dtype=np.float64)[order], 6)
    for name, values in score_baselines(td, class_ids, names=list(TABLE_BASELINES)).items():
        table[name] = np.round(values[order], 6)
    return require("pandas", extra="report", what="the label-issue table").DataFrame(table)


def write_issue_files(out: Path, traces, scores, *, pictures=None, paths=None, classes=None, top: int = 48,
                      suggested: np.ndarray | None = None, title: str = "") -> Path:
    """Write ``label_issues.csv`` (every row of ``traces``, most suspicious by ``scores`` first) and, when
    ``pictures`` is given, ``label_issues.png`` (the ``top`` most suspicious images) into ``out``; return the
    CSV's path.

    ``traces``: a :class:`labeltrace.traces.RunTraces`; ``scores``: a :class:`labeltrace.scoring.Scores`.
    ``pictures(rows)`` returns the images at training-set positions ``rows`` (int array of shape (K,)), each
    (H, W) or (H, W, 3) uint8; ``paths`` (indexed by training-set position) adds a ``path`` column.
    """
    indices = traces.train_indices if traces.train_indices is not None else np.arange(len(traces.td))
    table = label_issue_table(traces.td, traces.class_ids, scores.p_noisy, indices=indices, class_names=classes,
                              paths=paths, suggested=suggested)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / ISSUES_CSV, table)
    print(f"{len(table)} samples ranked by {scores.name} -> {out / ISSUES_CSV}")
    if pictures is None:
        print("note: label_issues.png not drawn: no images (find_issues.py reads them from the dataset a run's "
              "config.json names; labeltrace issues from --images)")
        return out / ISSUES_CSV
    shown = table.head(top)
    captions = [f"#{r} {table_name(classes, g)} -> {table_name(classes, s)}\np_noisy {p:.2f}" for r, g, s, p in
                zip(shown["rank"], shown["assigned_label"], shown["suggested_label"], shown["p_noisy"])]
    _contact_sheet(pictures(shown["index"].to_numpy()), captions, out / ISSUES_PNG,
                   title=f"{title}: the {len(shown)} most suspicious labels (assigned -> suggested), {scores.name}")
    print(f"top {len(shown)} drawn in {out / ISSUES_PNG}")
    return out / ISSUES_CSV


def table_name(classes, c: int) -> str:
    return str(classes[c]) if classes is not None else str(c)


def _contact_sheet(images: list[np.ndarray], captions: list[str], path: Path, *, title: str, columns: int = 8) -> None:
    """A grid of images (each (H, W) or (H, W, 3), uint8) with a caption under each, read row by row, written
    atomically to the PNG ``path``."""
    require("matplotlib", extra="report", what="the label-issue contact sheet").use("Agg")
    from matplotlib.figure import Figure

    rows = max(1, -(-len(images) // columns))
    fig = Figure(figsize=(columns * 1.45, rows * 1.75 + 0.4))
    for i, (image, caption) in enumerate(zip(images, captions)):
        ax = fig.add_subplot(rows, columns, i + 1)
        ax.imshow(image, cmap="gray" if image.ndim == 2 else None, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(caption, fontsize=7, linespacing=1.1)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=120, bbox_inches="tight")
