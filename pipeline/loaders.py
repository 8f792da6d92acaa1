"""``--loader fast|standard``: which feed (core/feeds.py) a dataset split gets: the fast tensor path or the
DataLoader path."""
from __future__ import annotations

import numpy as np
import torch

from core.feeds import Feed, LoaderFeed, TensorFeed
from datasets.arrays import ArrayImages
from datasets.base import ArraySplit, DatasetBundle, FolderSplit
from datasets.folders import FolderImages

LOADERS = ("fast", "standard")


def eval_batch_size(device: torch.device) -> int:
    """Batch of the eval passes (validation, recording). Small on the CPU, where a batch that stays in cache
    wins (small CNN, one thread: 0.56 ms per sample at 64 vs 0.86 at 512); large on a GPU, which wants work."""
    return 512 if device.type == "cuda" else 64


def select(split: ArraySplit | FolderSplit, rows: np.ndarray) -> ArraySplit | FolderSplit:
    """The samples at positions ``rows`` of ``split``, in that order."""
    if isinstance(split, ArraySplit):
        return ArraySplit(split.images[rows], split.targets[rows])
    return FolderSplit([split.paths[i] for i in rows], split.targets[rows])


def make_feed(split: ArraySplit | FolderSplit, bundle: DatasetBundle, *, train: bool, shuffle: bool,
              batch_size: int, loader: str, device: torch.device, num_workers: int = 0, rank: int = 0,
              world: int = 1) -> Feed:
    """``train`` turns on the dataset's augmentation; the fast path needs the split in memory. With ``world``
    > 1 the feed yields rank ``rank``'s share of every batch of ``batch_size`` (see core/distributed.py)."""
    if isinstance(split, ArraySplit) and loader == "fast":
        aug = bundle.augment
        return TensorFeed(split.images, mean=bundle.mean, std=bundle.std, batch_size=batch_size, shuffle=shuffle,
                          pad=aug.pad if train else 0, flip=aug.flip and train, device=device,
                          channels_last=True, rank=rank, world=world)
    dataset = ArrayImages(split, bundle, train) if isinstance(split, ArraySplit) else FolderImages(split, bundle, train)
    return LoaderFeed(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers, device=device,
                      rank=rank, world=world)


def place_model(model: torch.nn.Module, *, loader: str, device: torch.device) -> torch.nn.Module:
    """Move ``model`` to ``device``; on the fast path also to channels-last memory, the layout its batches have
    (oneDNN's fastest on the CPU as well as cuDNN's)."""
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if loader == "fast" else model
