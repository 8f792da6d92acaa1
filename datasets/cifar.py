"""CIFAR-10 / CIFAR-100 from torchvision's pickled batches (``cifar-10-batches-py``, ``cifar-100-python``).

The real files are Python-2 pickles; read with ``encoding='latin1'`` their keys are ``str``.
"""
from __future__ import annotations

import codecs
import pickle
from pathlib import Path

import numpy as np

from labeltrace.errors import UsageError, fail
from datasets.base import ArraySplit, Augment, DatasetBundle, check_labels

CIFAR = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "labels", 10),
    "cifar100": ("cifar-100-python", ["train"], ["test"], "fine_labels", 100),
}
MEAN = {"cifar10": (0.4914, 0.4822, 0.4465), "cifar100": (0.5071, 0.4865, 0.4409)}
STD = {"cifar10": (0.2470, 0.2435, 0.2616), "cifar100": (0.2673, 0.2564, 0.2762)}


def _latin1_encode(text: str, encoding: str) -> bytes:
    """``_codecs.encode`` as Python 3 pickles bytes at protocol 2, for that use only."""
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r}")
    return codecs.encode(text, "latin1")


def _numpy_globals() -> dict[tuple[str, str], object]:
    """What rebuilding a numpy array needs, under numpy 1's and numpy 2's module names."""
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    return {("numpy.core.multiarray", "_reconstruct"): _reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
            ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype, ("_codecs", "encode"): _latin1_encode}


class RefusedPickle(pickle.UnpicklingError):
    """A global outside :attr:`BatchUnpickler.allowed`; its message is the global's name."""


class BatchUnpickler(pickle.Unpickler):
    """Reads what a CIFAR batch holds (dicts, lists, numbers, strings, bytes, numpy arrays) and refuses any
    other global: a plain ``pickle.load`` would run whatever code a doctored ``data_batch_1`` names."""

    allowed = _numpy_globals()

    def find_class(self, module: str, name: str) -> object:
        found = self.allowed.get((module, name))
        if found is None:
            raise RefusedPickle(f"{module}.{name}")
        return found


def _read_batches(folder: Path, names: list[str], label_key: str, num_classes: int) -> ArraySplit:
    images, targets = [], []
    for name in names:
        path = folder / name
        if not path.is_file():
            fail(f"CIFAR file missing: expected {path}")
        try:
            with open(path, "rb") as handle:
                entry = BatchUnpickler(handle, encoding="latin1").load()
            images.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            targets.append(check_labels(entry[label_key], num_classes, path))
        except RefusedPickle as exc:
            fail(f"{path}: refused to load: the pickle asks for {exc}, which a CIFAR batch never holds (code?)")
        except UsageError:
            raise
        except Exception as exc:  # a damaged pickle raises almost anything
            fail(f"{path} is not a CIFAR batch in torchvision's layout ({type(exc).__name__}: {exc})")
        if len(images[-1]) != len(targets[-1]):
            fail(f"{path}: {len(images[-1])} images but {len(targets[-1])} labels")
    return ArraySplit(np.concatenate(images), np.concatenate(targets))


def load_cifar(root: Path, name: str) -> DatasetBundle:
    """Load ``<root>/<name>/<cifar folder>`` (also accepted: the cifar folder directly under ``root``)."""
    sub, train_names, test_names, label_key, num_classes = CIFAR[name]
    candidates = [root / name / sub, root / sub]
    folder = next((c for c in candidates if c.is_dir()), None)
    if folder is None:
        fail(f"{name}: expected the folder {candidates[0]} (torchvision's pickled batches)")
    return DatasetBundle(
        name=name, train=_read_batches(folder, train_names, label_key, num_classes),
        test=_read_batches(folder, test_names, label_key, num_classes), num_classes=num_classes, in_channels=3,
        image_size=32, mean=MEAN[name], std=STD[name], augment=Augment(pad=4, flip=True),
        info={"path": str(folder)})
