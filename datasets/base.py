"""What a dataset loader returns: arrays held in memory, or a folder read image by image."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from labeltrace.errors import fail


@dataclass
class Augment:
    """Training augmentation: random crop after zero padding, and random horizontal flip."""

    pad: int = 0
    flip: bool = False


@dataclass
class ArraySplit:
    """An in-memory split.

    images : uint8 array of shape (N, C, H, W)
    targets : int64 array of shape (N,)
    """

    images: np.ndarray
    targets: np.ndarray

    def __len__(self) -> int:
        return len(self.targets)


@dataclass
class FolderSplit:
    """A split read from files: ``paths[i]`` has label ``targets[i]``."""

    paths: list[str]
    targets: np.ndarray

    def __len__(self) -> int:
        return len(self.targets)


@dataclass
class DatasetBundle:
    """A dataset ready for training: train and test splits plus how to normalize and augment them."""

    name: str
    train: ArraySplit | FolderSplit
    test: ArraySplit | FolderSplit
    num_classes: int
    in_channels: int
    image_size: int
    mean: Sequence[float]
    std: Sequence[float]
    augment: Augment = field(default_factory=Augment)
    classes: list[str] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def in_memory(self) -> bool:
        return isinstance(self.train, ArraySplit)

    def subset(self, max_train: int | None, max_test: int | None) -> "DatasetBundle":
        """The first ``max_train`` / ``max_test`` samples (a deterministic, documented subset)."""
        def cut(split, n):
            if not n or n >= len(split):
                return split
            if isinstance(split, ArraySplit):
                return ArraySplit(split.images[:n], split.targets[:n])
            return FolderSplit(split.paths[:n], split.targets[:n])
        out = DatasetBundle(**{**self.__dict__})
        out.train, out.test = cut(self.train, max_train), cut(self.test, max_test)
        return out


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std in [0, 1] units of uint8 images of shape (N, C, H, W)."""
    x = images.astype(np.float64) / 255.0
    return x.mean(axis=(0, 2, 3)).tolist(), (x.std(axis=(0, 2, 3)) + 1e-8).tolist()


def check_labels(targets: np.ndarray, num_classes: int, source: object) -> np.ndarray:
    """``targets`` as int64, or a one-line error naming ``source`` when one lies outside 0..num_classes-1
    (noise would otherwise be drawn around a class that does not exist)."""
    raw = np.asarray(targets)
    if raw.size and not np.issubdtype(raw.dtype, np.integer):
        whole = np.issubdtype(raw.dtype, np.number) and not np.issubdtype(raw.dtype, np.complexfloating) \
            and bool(np.all(np.isfinite(raw))) and bool(np.all(raw == np.round(raw)))
        if not whole:  # int64 would truncate 0.5 to class 0 without a word
            at = int(np.flatnonzero(~(np.isfinite(raw) & (raw == np.round(raw))))[0]) \
                if np.issubdtype(raw.dtype, np.floating) else 0
            fail(f"{source}: label {raw.reshape(-1)[at].item()!r} at position {at} is not a whole class number")
    targets = raw.astype(np.int64)
    bad = (targets < 0) | (targets >= num_classes)
    if bad.any():
        fail(f"{source}: label {int(targets[bad][0])} at position {int(np.flatnonzero(bad)[0])} is outside the "
             f"{num_classes} classes 0..{num_classes - 1}")
    return targets
