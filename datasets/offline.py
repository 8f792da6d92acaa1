"""Real data that needs no download: scikit-learn's bundled digits, and Fashion-MNIST's idx files."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from labeltrace.errors import fail
from datasets.base import ArraySplit, Augment, DatasetBundle, channel_stats, check_labels

DIGITS_TEST = 300  # the last 300 of scikit-learn's 1,797 digits are the test set; 1,497 train
FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist
FASHION_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                 "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                   "Bag", "Ankle boot"]


def load_digits_bundle(root: Path | None = None) -> DatasetBundle:
    """8x8 grey digits, 10 classes, scaled from 0..16 to 0..255. Embedded in scikit-learn: no files."""
    from sklearn.datasets import load_digits

    data = load_digits()
    images = np.clip(data.images * 16, 0, 255).astype(np.uint8)[:, None]  # (1797, 1, 8, 8)
    targets = data.target.astype(np.int64)
    cut = len(targets) - DIGITS_TEST
    mean, std = channel_stats(images[:cut])
    return DatasetBundle(name="digits", train=ArraySplit(images[:cut], targets[:cut]),
                         test=ArraySplit(images[cut:], targets[cut:]), num_classes=10, in_channels=1,
                         image_size=8, mean=mean, std=std, augment=Augment(), info={"path": "sklearn"})


def read_idx(path: Path) -> np.ndarray:
    """Read an idx file (optionally gzipped): uint8 images (N, H, W) or labels (N,)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as exc:
        fail(f"{path}: unreadable idx file ({exc})")
    if len(raw) < 8 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        fail(f"{path}: not an unsigned-byte idx file")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        fail(f"{path}: header says {dims}, found {body.size} bytes of data")
    return body.reshape(dims)


def _find(folder: Path, stem: str) -> Path | None:
    return next((p for p in (folder / f"{stem}.gz", folder / stem) if p.is_file()), None)


def load_fashion_mnist(root: Path | None) -> DatasetBundle:
    """Fashion-MNIST from ``<root>/fashion_mnist`` or, failing that, Debian's ``/usr/share/datasets/fashion-mnist``."""
    folders = [root / "fashion_mnist", root] if root else []
    folders.append(FASHION_SYSTEM_DIR)
    for folder in folders:
        if _find(folder, FASHION_FILES["train"][0]):
            break
    else:
        fail(f"fashion_mnist: expected train-images-idx3-ubyte.gz in {folders[0]} or {FASHION_SYSTEM_DIR} "
             "(apt-get install dataset-fashion-mnist)")
    splits = {}
    for split, (img_stem, lbl_stem) in FASHION_FILES.items():
        img_path, lbl_path = _find(folder, img_stem), _find(folder, lbl_stem)
        if img_path is None or lbl_path is None:
            fail(f"fashion_mnist: expected {folder / (img_stem + '.gz')} and {folder / (lbl_stem + '.gz')}")
        images, labels = read_idx(img_path), read_idx(lbl_path)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            fail(f"fashion_mnist: {img_path} and {lbl_path} do not match ({images.shape} vs {labels.shape})")
        splits[split] = ArraySplit(images[:, None].copy(), check_labels(labels, len(FASHION_CLASSES), lbl_path))
    return DatasetBundle(name="fashion_mnist", train=splits["train"], test=splits["test"], num_classes=10,
                         in_channels=1, image_size=28, mean=(0.2860,), std=(0.3530,),
                         augment=Augment(pad=2, flip=True), classes=FASHION_CLASSES, info={"path": str(folder)})
