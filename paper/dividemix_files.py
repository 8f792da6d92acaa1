"""The label files the paper hands to DivideMix and AugDesc (§4.3), under the original's names.

- CUB-200-2011, 20% symmetric noise: ``0.2_sym.json`` (the noisy labels) and ``0.2_sym_0.05gt.json`` /
  ``0.2_sym_0.10gt.json`` (the 5% / 10% most suspicious restored to the ground truth): the ``noise_file`` of
  DivideMix's CUB loader, a JSON list indexed like ``ImageFolder(<root>/train)``.
- mini-WebVision: ``repair0.05.json`` / ``repair0.10.json`` (the 5% / 10% most suspicious relabelled by the
  model trained on the rest): a JSON list read by DivideMix's WebVision loader line by line alongside
  ``info/train_filelist_google.txt``. Without that file list our order is the training set's (ImageFolder's),
  and ``repair<k>_by_path.json`` keys the labels by image path; with it (:func:`filelist_labels`) the list
  follows the file list.
"""
from __future__ import annotations

import json
from pathlib import Path

from labeltrace.errors import fail
from labeltrace.io import write_text
from labeltrace.runfiles import CORRECTED_LABELS_BY_PATH_FILE, CORRECTED_LABELS_FILE, METADATA_FILE, read_metadata

OUT_DIR = "dividemix"


def noisy_name(noise_ratio: float) -> str:
    return f"{noise_ratio:g}_sym.json"


def restored_name(noise_ratio: float, relabel_ratio: float) -> str:
    return f"{noise_ratio:g}_sym_{relabel_ratio:.2f}gt.json"


def repair_name(relabel_ratio: float) -> str:
    return f"repair{relabel_ratio:.2f}.json"


def _write_list(path: Path, labels: list[int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps([int(v) for v in labels]) + "\n")


def write_noisy(td_run: Path, out: Path) -> None:
    """The labels a STEP 1 run trained with (``assigned_targets``, every training sample) as a JSON list."""
    meta = read_metadata(td_run / METADATA_FILE).require("assigned_targets")
    _write_list(out, meta.assigned_targets.tolist())


def write_corrected(relabel_dir: Path, out: Path, *, filelist: Path | None = None) -> None:
    """A data-debugging folder's corrected labels at ``out``: as written (a list by training-set position), or in
    ``filelist`` order (WebVision's ``train_filelist_google.txt``); folder datasets also get ``*_by_path.json``."""
    labels = json.loads((relabel_dir / CORRECTED_LABELS_FILE).read_text())
    by_path_file = relabel_dir / CORRECTED_LABELS_BY_PATH_FILE
    if by_path_file.is_file():
        by_path = json.loads(by_path_file.read_text())
        out.parent.mkdir(parents=True, exist_ok=True)
        write_text(out.with_name(out.stem + "_by_path.json"), json.dumps(by_path) + "\n")
        if filelist is not None:
            labels = filelist_labels(by_path, filelist)
    elif filelist is not None:
        fail(f"--webvision_filelist: {relabel_dir} holds no {CORRECTED_LABELS_BY_PATH_FILE} (not a folder dataset)")
    _write_list(out, labels)


def filelist_labels(by_path: dict[str, int], filelist: Path) -> list[int]:
    """One label per line of a WebVision file list (``<image path> <label>`` a line): ours where the image's file
    name is among ``by_path``'s, the list's own label elsewhere (the classes beyond the 50 DivideMix reads).

    Raises
    ------
    UsageError
        The file is missing or malformed, a file name is ambiguous, or some of our images are not in it.
    """
    by_name: dict[str, int] = {}
    for path, label in by_path.items():
        name = Path(path).name
        if name in by_name:
            fail(f"--webvision_filelist: two images named {name} in the training set: cannot match by file name")
        by_name[name] = int(label)
    if not filelist.is_file():
        fail(f"--webvision_filelist: {filelist}: no such file (WebVision's info/train_filelist_google.txt)")
    labels, matched = [], set()
    for number, line in enumerate(filelist.read_text().splitlines(), 1):
        parts = line.split()
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            fail(f"{filelist}:{number}: expected '<image path> <label>', got {line!r}")
        name = Path(parts[0]).name
        if name in by_name:
            matched.add(name)
        labels.append(by_name.get(name, int(parts[1])))
    if len(matched) != len(by_name):
        fail(f"{filelist}: {len(by_name) - len(matched)} of the {len(by_name)} training images are not in it "
             "(another WebVision version?)")
    return labels
