"""CIFAR-10 / CIFAR-100 from torchvision's pickled batches (``cifar-10-batches-py``, ``cifar-100-python``).

The real files are Python-2 pickles; read with ``encoding='latin1'`` their keys are ``str``.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from core.errors import fail
from datasets.base import ArraySplit, Augment, DatasetBundle

CIFAR = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "labels", 10),
    "cifar100": ("cifar-100-python", ["train"], ["test"], "fine_labels", 100),
}
MEAN = {"cifar10": (0.4914, 0.4822, 0.4465), "cifar100": (0.5071, 0.4865, 0.4409)}
STD = {"cifar10": (0.2470, 0.2435, 0.2616), "cifar100": (0.2673, 0.2564, 0.2762)}


def _read_batches(folder: Path, names: list[str], label_key: str) -> ArraySplit:
    images, targets = [], []
    for name in names:
        path = folder / name
        if not path.is_file():
            fail(f"CIFAR file missing: expected {path}")
        try:
            with open(path, "rb") as handle:
                entry = pickle.load(handle, encoding="latin1")
            images.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            targets.append(np.asarray(entry[label_key], dtype=np.int64))
        except (pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError) as exc:
            fail(f"{path} is not a CIFAR batch in torchvision's layout ({type(exc).__name__}: {exc})")
    return ArraySplit(np.concatenate(images), np.concatenate(targets))


def load_cifar(root: Path, name: str) -> DatasetBundle:
    """Load ``<root>/<name>/<cifar folder>`` (also accepted: the cifar folder directly under ``root``)."""
    sub, train_names, test_names, label_key, num_classes = CIFAR[name]
    candidates = [root / name / sub, root / sub]
    folder = next((c for c in candidates if c.is_dir()), None)
    if folder is None:
        fail(f"{name}: expected the folder {candidates[0]} (torchvision's pickled batches)")
    return DatasetBundle(
        name=name, train=_read_batches(folder, train_names, label_key),
        test=_read_batches(folder, test_names, label_key), num_classes=num_classes, in_channels=3,
        image_size=32, mean=MEAN[name], std=STD[name], augment=Augment(pad=4, flip=True),
        info={"path": str(folder)})
