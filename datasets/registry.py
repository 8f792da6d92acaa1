"""Datasets by name. ``<datadir>/<dataset>`` holds each one in the layout of docs/formats.md and the README."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from labeltrace.errors import fail
from datasets.base import DatasetBundle
from datasets.cifar import load_cifar
from datasets.folders import load_image_folder
from datasets.offline import load_digits_bundle, load_fashion_mnist
from datasets.official import load_caltech256, load_tiny_imagenet
from datasets.shapes import load_shapes_bundle

# Folder datasets and the image size their recipe trains at.
FOLDER_SIZES = {"tiny_imagenet": 64, "cub_200_2011": 224, "caltech256": 224, "webvision50": 224,
                "clothing100k": 224}
LARGE = ("webvision50", "clothing100k")  # real noise: no synthesized labels, their own run-folder layout
# Labels known to be clean: a --labels_file over them has ground truth (label_flipped = file != dataset).
CLEAN_LABELS = ("digits", "fashion_mnist", "shapes", "cifar10", "cifar100")
EMBEDDED = ("digits", "fashion_mnist", "shapes")  # need no --data (Fashion-MNIST: Debian's files)
RESIZED = (*FOLDER_SIZES, "imagefolder")  # read from image files at a chosen size: --image_size applies


def _folder(name: str) -> Callable[[Path, int | None], DatasetBundle]:
    return lambda root, size: load_image_folder(root / name, name, size, FOLDER_SIZES[name])


DATASETS: dict[str, Callable[[Path, int | None], DatasetBundle]] = {
    "digits": lambda root, size: load_digits_bundle(),
    "fashion_mnist": lambda root, size: load_fashion_mnist(root),
    "shapes": lambda root, size: load_shapes_bundle(),  # generated: datasets/shapes.py
    "cifar10": lambda root, size: load_cifar(root, "cifar10"),
    "cifar100": lambda root, size: load_cifar(root, "cifar100"),
    **{name: _folder(name) for name in FOLDER_SIZES},
    "tiny_imagenet": lambda root, size: load_tiny_imagenet(root / "tiny_imagenet", size),
    "caltech256": lambda root, size: load_caltech256(root / "caltech256", size),
    # Any tree with train/<class>/ and val/<class>/: --data is the tree itself.
    "imagefolder": lambda root, size: load_image_folder(root, "imagefolder", size, 224),
}


_TREE = "train/<class>/<image> and val/<class>/<image> (or test/)"
# What <datadir>/<dataset> holds, for the messages that name a missing dataset (docs/formats.md has the same).
LAYOUTS = {
    "cifar10": "cifar-10-batches-py/ (torchvision's CIFAR-10 pickles)",
    "cifar100": "cifar-100-python/ (torchvision's CIFAR-100 pickles)",
    "tiny_imagenet": "the official archive as unpacked: train/<wnid>/images/<image>, val/images/<image> and "
                     f"val/val_annotations.txt; or {_TREE}",
    "cub_200_2011": f"{_TREE} (the paper's download of CUB-200-2011, its official train/test split)",
    "caltech256": "the official archive as unpacked: 256_ObjectCategories/<NNN.class>/<image> (split here 80/20 "
                  f"per class, seed 0, recorded in each run folder); or {_TREE}",
    "webvision50": f"{_TREE} (the first 50 classes of WebVision's Google images, val: WebVision's)",
    "clothing100k": f"{_TREE} (AUM's 100K subset of Clothing1M, val: its clean test set)",
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
