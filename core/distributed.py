"""Data parallelism over processes started by ``torchrun`` (DistributedDataParallel), kept out of the epoch loop.

    torchrun --standalone --nproc_per_node 2 runner.py --dataset digits --num_epochs 40 --threads 1

Every rank draws the same permutation of an epoch from the same epoch generator and takes a disjoint share of
each global batch (``batch[rank::world]``), so the recipe's batch size is the global one. Probabilities of the
validation and recording passes are gathered by sample index (``all_gather``), so rank 0 alone writes files
that have the layout of a single-process run. A single process gets ``Dist()``, whose operations do nothing.
The backend is NCCL on CUDA, gloo on the CPU; the run folder must be visible to every rank (one machine, or a
shared filesystem), since every rank reads ``resume.pth`` to resume.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import NoReturn

import numpy as np
import torch
import torch.distributed as dist

from labeltrace.recording import gather_by_index


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def _comm_device(self) -> torch.device:
        if dist.get_backend() == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def all_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum of ``tensor`` over ranks (a new tensor on ``tensor``'s device)."""
        if not self.active:
            return tensor
        out = tensor.detach().to(self._comm_device()).clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out.to(tensor.device)

    def gather_rows(self, idx: np.ndarray, rows: np.ndarray, num_rows: int) -> np.ndarray:
        """Assemble the full array (num_rows, ...) from every rank's ``rows`` at sample positions ``idx``.

        idx : int array of shape (B,); rows : array of shape (B, ...). A sample seen by several ranks (the
        padding of a last batch smaller than the world) takes the value of the highest rank.
        """
        if not self.active:
            out = np.empty((num_rows, *rows.shape[1:]), dtype=rows.dtype)
            out[idx] = rows
            return out
        positions, gathered = gather_by_index(torch.from_numpy(np.asarray(idx, dtype=np.int64)),
                                              torch.from_numpy(np.asarray(rows, dtype=np.float32)),
                                              self._comm_device(), self.world)
        out = np.zeros((num_rows, *rows.shape[1:]), dtype=rows.dtype)
        out[positions.numpy()] = gathered.numpy()  # in rank order: the highest rank's row of a repeated sample
        seen = np.zeros(num_rows, dtype=bool)
        seen[positions.numpy()] = True
        if not seen.all():
            raise RuntimeError(f"gather_rows: {int((~seen).sum())} of {num_rows} rows came from no rank")
        return out

    def broadcast_buffers(self, module: torch.nn.Module) -> None:
        """Rank 0's buffers (BatchNorm running statistics) to every rank, so evaluation agrees across ranks."""
        if not self.active:
            return
        device = self._comm_device()
        for buffer in module.buffers():
            data = buffer.detach().to(device)
            dist.broadcast(data, 0)
            buffer.copy_(data.to(buffer.device))

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` under DistributedDataParallel (gradients averaged over ranks), or itself alone."""
        if not self.active:
            return model
        import warnings

        from torch.nn.parallel import DistributedDataParallel

        # A conv weight with one input channel has two equally valid stride layouts; DDP warns about the copy.
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
        device = next(model.parameters()).device
        return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: torch.device) -> tuple[Dist, torch.device]:
    """Join the process group ``torchrun`` describes in the environment; returns it and this rank's device."""
    if not launched_by_torchrun():
        return Dist(), device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        # A long timeout: the other ranks wait at the final barrier while rank 0 streams the traces file out
        # (minutes for a Clothing1M-sized run; NCCL's default would give up after 10).
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo", timeout=timedelta(hours=2))
    return Dist(rank=dist.get_rank(), world=dist.get_world_size()), device


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def end_worker(status: int = 0) -> NoReturn:
    """End a ``torchrun`` worker whose work is done (files written, group destroyed) without the interpreter's
    teardown. Under load, a gloo worker sometimes aborted *after* Python had finished ("terminate called without
    an active exception", faulthandler: no Python frame; about 1 launch in 15 with the 2 cores busy), and
    torchrun then reported a complete run as failed. ``os._exit`` skips the C++ static destructors where that
    happens; nothing of ours is left to flush but the standard streams."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def shard(batch: torch.Tensor, order: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """This rank's share of a global ``batch`` of sample positions; a batch smaller than the world is padded
    from the start of the epoch's ``order`` so every rank runs the same number of steps."""
    if world == 1:
        return batch
    if len(batch) < world:
        batch = torch.cat([batch, order[: world - len(batch)]])
    return batch[rank::world]
