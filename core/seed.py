"""The one place where a run's seed becomes the random states of its training (weights, batch order, augmentation)."""
from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (weights init). Batch order and augmentation use :func:`epoch_generator`."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's shuffling and augmentation: a resumed run replays the same epochs."""
    return seed * 1_000_003 + epoch


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A generator seeded with :func:`epoch_seed`."""
    return torch.Generator().manual_seed(epoch_seed(seed, epoch))
