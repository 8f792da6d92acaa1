"""Two folder datasets as their official archives unpack, besides the ``train/`` + ``val/`` trees of
:mod:`datasets.folders`: Tiny ImageNet, whose ``val/images/`` is one flat folder labelled by
``val/val_annotations.txt``, and Caltech-256, one folder per class with no official split (split here, seeded:
the split is recorded in every run folder as ``dataset_split.json``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from datasets.base import DatasetBundle, FolderSplit
from datasets.folders import IMAGE_EXTENSIONS, folder_bundle, load_image_folder, scan_split
from labeltrace.errors import fail

TINY_ANNOTATIONS = "val_annotations.txt"
CALTECH_DIR = "256_ObjectCategories"
CALTECH_CLUTTER = "257.clutter"  # background images, not an object class: left out
CALTECH_TEST_FRACTION = 0.2
# One fixed seed, not the run's: every run (every --seed) trains and tests on the same split.
CALTECH_SPLIT_SEED = 0


def load_tiny_imagenet(root: Path, image_size: int | None) -> DatasetBundle:
    """``train/<wnid>/images/<image>`` with ``val/images/`` + ``val/val_annotations.txt`` (the official
    archive), or ``val/<wnid>/<image>``."""
    annotations = root / "val" / TINY_ANNOTATIONS
    if not annotations.is_file():
        return load_image_folder(root, "tiny_imagenet", image_size, 64)
    if not (root / "train").is_dir():
        fail(f"tiny_imagenet: expected {root / 'train'}/<wnid>/images/<image> beside {annotations}")
    train, classes = scan_split(root / "train")
    index = {c: i for i, c in enumerate(classes)}
    paths, targets = [], []
    for number, line in enumerate(annotations.read_text().splitlines(), 1):
        fields = line.split("\t")
        if not line.strip():
            continue
        if len(fields) < 2 or fields[1] not in index:
            fail(f"{annotations}:{number}: expected '<image>\\t<wnid of train/>...', got {line[:80]!r}")
        paths.append(str(root / "val" / "images" / fields[0]))
        targets.append(index[fields[1]])
    order = np.argsort(paths, kind="stable")  # sorted like every other split
    test = FolderSplit([paths[i] for i in order], np.asarray(targets, dtype=np.int64)[order])
    return folder_bundle(root, "tiny_imagenet", train, test, classes, image_size, 64)


def caltech_split(folder: Path) -> tuple[FolderSplit, FolderSplit, list[str], dict]:
    """Split ``folder/<class>/<image>`` per class: ``round(n x 0.2)`` images (at least one) of each class, drawn
    by :data:`CALTECH_SPLIT_SEED`, test; the rest train. Returns both splits, the classes and the record of the
    split (the test images, relative to ``folder``) that run folders keep."""
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir() and d.name != CALTECH_CLUTTER)
    if not classes:
        fail(f"caltech256: no class folders in {folder}")
    rng = np.random.default_rng(CALTECH_SPLIT_SEED)
    parts: dict[str, tuple[list[str], list[int]]] = {"train": ([], []), "test": ([], [])}
    for label, name in enumerate(classes):
        images = [p for p in sorted((folder / name).rglob("*")) if p.suffix.lower() in IMAGE_EXTENSIONS]
        if len(images) < 2:
            fail(f"{folder / name}: {len(images)} images; a class needs two (one to train, one to test)")
        test = set(rng.permutation(len(images))[:max(1, round(len(images) * CALTECH_TEST_FRACTION))].tolist())
        for i, path in enumerate(images):
            paths, targets = parts["test" if i in test else "train"]
            paths.append(str(path))
            targets.append(label)
    train, test = (FolderSplit(parts[k][0], np.asarray(parts[k][1], dtype=np.int64)) for k in ("train", "test"))
    record = {"dataset": "caltech256", "folder": str(folder), "seed": CALTECH_SPLIT_SEED,
              "test_fraction": CALTECH_TEST_FRACTION, "left_out": [CALTECH_CLUTTER], "num_train": len(train),
              "num_test": len(test), "test": [str(Path(p).relative_to(folder)) for p in test.paths]}
    return train, test, classes, record


def load_caltech256(root: Path, image_size: int | None) -> DatasetBundle:
    """``256_ObjectCategories/<NNN.class>/<image>`` (the official archive, split by :func:`caltech_split`), or
    a ready ``train/`` + ``val/`` tree used as it is."""
    if (root / "train").is_dir():
        return load_image_folder(root, "caltech256", image_size, 224)
    if not (root / CALTECH_DIR).is_dir():
        fail(f"caltech256: expected {root / CALTECH_DIR}/<NNN.class>/<image> (the official archive) or "
             f"{root / 'train'}/<class>/<image> and {root / 'val'}/<class>/<image>")
    train, test, classes, record = caltech_split(root / CALTECH_DIR)
    bundle = folder_bundle(root, "caltech256", train, test, classes, image_size, 224)
    bundle.info["split"] = record
    return bundle
