"""Datasets by name. ``<datadir>/<dataset>`` holds each one in the layout of docs/formats.md and the README."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from labeltrace.errors import fail
from datasets.base import DatasetBundle
from datasets.cifar import load_cifar
from datasets.folders import load_image_folder
from datasets.offline import load_digits_bundle, load_fashion_mnist
from datasets.shapes import load_shapes_bundle

# Folder datasets and the image size their recipe trains at.
FOLDER_SIZES = {"tiny_imagenet": 64, "cub_200_2011": 224, "caltech256": 224, "webvision50": 224,
                "clothing100k": 224}
LARGE = ("webvision50", "clothing100k")  # real noise: no synthesized labels, their own run-folder layout
# Labels known to be clean: a --labels_file over them has ground truth (label_flipped = file != dataset).
CLEAN_LABELS = ("digits", "fashion_mnist", "shapes", "cifar10", "cifar100")
EMBEDDED = ("digits", "fashion_mnist", "shapes")  # need no --data (Fashion-MNIST: Debian's files)


def _folder(name: str) -> Callable[[Path, int | None], DatasetBundle]:
    return lambda root, size: load_image_folder(root / name, name, size, FOLDER_SIZES[name])


DATASETS: dict[str, Callable[[Path, int | None], DatasetBundle]] = {
    "digits": lambda root, size: load_digits_bundle(),
    "fashion_mnist": lambda root, size: load_fashion_mnist(root),
    "shapes": lambda root, size: load_shapes_bundle(),  # generated: datasets/shapes.py
    "cifar10": lambda root, size: load_cifar(root, "cifar10"),
    "cifar100": lambda root, size: load_cifar(root, "cifar100"),
    **{name: _folder(name) for name in FOLDER_SIZES},
    # Any tree with train/<class>/ and val/<class>/: --data is the tree itself.
    "imagefolder": lambda root, size: load_image_folder(root, "imagefolder", size, 224),
}


def load_dataset(name: str, datadir: str | None, *, image_size: int | None = None) -> DatasetBundle:
    if name not in DATASETS:
        fail(f"--dataset: unknown dataset {name!r}; valid: {', '.join(sorted(DATASETS))}")
    root = Path(datadir) if datadir else None
    if name not in EMBEDDED:
        if root is None:
            fail(f"--data: {name} needs a data directory")
        if root.exists() and not root.is_dir():
            fail(f"--data: {root} is a file, not a data directory")
        if not root.is_dir():
            fail(f"--data: data directory {root} does not exist")
    return DATASETS[name](root, image_size)
