"""Batch feeds for the training loop. Each yields ``(x, idx)``: a float batch on the device and the positions
of its samples in the feed (labels are looked up by ``idx``, so noisy labels never touch the data)."""
from __future__ import annotations

import math
from typing import Iterator, Protocol, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from core.distributed import shard
from labeltrace.errors import UsageError


class Feed(Protocol):
    """``num_samples`` is the whole feed's; under data parallelism (``world`` > 1) each rank's batches hold only
    its share of every global batch."""

    num_samples: int

    def __len__(self) -> int: ...

    def batches(self, gen: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...


def random_crop_flip(x: torch.Tensor, pad: int, flip: bool, gen: torch.Generator) -> torch.Tensor:
    """Per-sample random crop after zero padding, and random horizontal flip, on a batch (B, C, H, W).

    The random numbers come from the CPU generator ``gen`` (the same draws on every device); their copies to a
    GPU are non-blocking, so no batch waits for the GPU to drain its queue.
    """
    b, _, h, w = x.shape
    if pad:
        padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (b,), generator=gen).to(x.device, non_blocking=True)
        dx = torch.randint(0, 2 * pad + 1, (b,), generator=gen).to(x.device, non_blocking=True)
        rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
        x = padded[torch.arange(b, device=x.device)[:, None, None, None],
                   torch.arange(x.shape[1], device=x.device)[None, :, None, None], rows, cols]
    if flip:
        mask = (torch.rand(b, generator=gen) < 0.5).to(x.device, non_blocking=True)[:, None, None, None]
        x = torch.where(mask, x.flip(3), x)
    return x


class TensorFeed:
    """The fast path: uint8 images held as one tensor on the device, normalised and augmented per batch.

    images : uint8 array of shape (N, C, H, W)
    """

    def __init__(self, images: np.ndarray, *, mean: Sequence[float], std: Sequence[float], batch_size: int,
                 shuffle: bool, pad: int = 0, flip: bool = False, device: str | torch.device = "cpu",
                 channels_last: bool = False, rank: int = 0, world: int = 1) -> None:
        self.device = torch.device(device)
        self.rank, self.world = rank, world
        self.images = torch.from_numpy(np.ascontiguousarray(images)).to(self.device)
        self.mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, -1, 1, 1) * 255
        self.std = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, -1, 1, 1) * 255
        self.batch_size, self.shuffle, self.pad, self.flip = batch_size, shuffle, pad, flip
        self.channels_last = channels_last
        self.num_samples = len(images)

    def __len__(self) -> int:
        return math.ceil(self.num_samples / self.batch_size)

    def batches(self, gen: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(self.num_samples, generator=gen) if self.shuffle else torch.arange(self.num_samples)
        for start in range(0, self.num_samples, self.batch_size):
            idx = shard(order[start: start + self.batch_size], order, self.rank, self.world)
            x = (self.images[idx.to(self.device, non_blocking=True)].float() - self.mean) / self.std
            if self.pad or self.flip:
                # Padding after normalisation with 0 would be grey; pad the raw pixel value 0 (black) instead.
                x = random_crop_flip(x + self.mean / self.std, self.pad, self.flip, gen) - self.mean / self.std
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, idx


class LoaderFeed:
    """The standard path: a ``Dataset`` returning ``(x, index)`` read through a DataLoader (folder datasets)."""

    def __init__(self, dataset: Dataset, *, batch_size: int, shuffle: bool, num_workers: int = 0,
                 device: str | torch.device = "cpu", rank: int = 0, world: int = 1) -> None:
        self.dataset, self.batch_size, self.shuffle = dataset, batch_size, shuffle
        self.rank, self.world = rank, world
        self.num_workers, self.device = num_workers, torch.device(device)
        self.num_samples = len(dataset)

    def __len__(self) -> int:
        return math.ceil(self.num_samples / self.batch_size)

    def batches(self, gen: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        common = dict(num_workers=self.num_workers, pin_memory=self.device.type == "cuda", persistent_workers=False)
        if self.world == 1:
            loader = DataLoader(self.dataset, batch_size=self.batch_size, shuffle=self.shuffle, generator=gen,
                                **common)
        else:  # the permutation TensorFeed draws, sharded the same way
            order = torch.randperm(self.num_samples, generator=gen) if self.shuffle else torch.arange(self.num_samples)
            batches = [shard(order[i: i + self.batch_size], order, self.rank, self.world).tolist()
                       for i in range(0, self.num_samples, self.batch_size)]
            loader = DataLoader(self.dataset, batch_sampler=batches, generator=gen, **common)
        try:
            for x, idx in loader:
                yield x.to(self.device, non_blocking=True), idx
        except UsageError as exc:  # from a worker process, wrapped in its traceback: keep the one line
            raise UsageError(str(exc).strip().splitlines()[-1].split("UsageError: ", 1)[-1]) from None
