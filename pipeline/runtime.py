"""Device and thread choices, set deliberately in one place."""
from __future__ import annotations

import argparse

import torch

from core import cli
from core.distributed import Dist
from core.errors import fail
from core.fit import Runtime


def add_runtime_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    p.add_argument("--threads", type=cli.non_negative_int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--num_workers", type=cli.non_negative_int, default=0, help="DataLoader workers (standard path)")
    p.add_argument("--amp", action="store_true", help="bf16 autocast on CUDA")
    p.add_argument("--compile", nargs="?", const="inductor", default=None, metavar="BACKEND",
                   help="run the model through torch.compile (default backend: inductor); same output files")
    p.add_argument("--no_cuda_graphs", action="store_true",
                   help="on CUDA, launch the training step's kernels one by one instead of replaying a CUDA graph")
    p.add_argument("--restart", action="store_true", help="start over instead of resuming the run folder")
    p.add_argument("--no_progress", action="store_true", help="no progress bars (the per-epoch line stays)")


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        fail(f"--device: expected auto, cpu, cuda or cuda:N, got {name!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        fail("--device: CUDA was asked for but no GPU is available (use --device cpu)")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed batch shapes: let cuDNN time its algorithms once
    return device


def set_threads(threads: int) -> int:
    """Use ``threads`` CPU threads (0: torch's default); returns the number in use."""
    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def fit_runtime(args: argparse.Namespace, device: torch.device, dist: Dist | None = None) -> Runtime:
    """The runtime options of :func:`core.fit.fit` from the flags of :func:`add_runtime_args`: autocast on CUDA
    only, progress bars on rank 0 only."""
    dist = dist or Dist()
    return Runtime(amp=args.amp and device.type == "cuda", progress=not args.no_progress and dist.is_main, dist=dist,
                   compile_backend=args.compile, cuda_graphs=not args.no_cuda_graphs)
