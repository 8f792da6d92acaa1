"""Device and thread choices, set deliberately in one place."""
from __future__ import annotations

import argparse
from typing import Callable

import torch

from core import cli
from core.distributed import Dist
from labeltrace.errors import UsageError, fail
from core.fit import Runtime

PRECISIONS = ("auto", "fp32", "bf16")


def add_runtime_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    p.add_argument("--threads", type=cli.non_negative_int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--num_workers", type=cli.non_negative_int, default=0, help="DataLoader workers (standard path)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="training and recording arithmetic: bf16 autocast or float32; auto = bf16 on a CPU with "
                        "native bf16 (AVX512-BF16 or AMX), float32 elsewhere (files are float16 either way)")
    p.add_argument("--amp", dest="precision", action="store_const", const="bf16", help="the same as --precision bf16")
    p.add_argument("--compile", nargs="?", const="inductor", default=None, metavar="BACKEND", type=compile_backend,
                   help="run the model through torch.compile (default backend: inductor); same output files")
    p.add_argument("--no_cuda_graphs", action="store_true",
                   help="on CUDA, launch the training step's kernels one by one instead of replaying a CUDA graph")
    p.add_argument("--restart", action="store_true", help="start over instead of resuming the run folder")
    p.add_argument("--no_progress", action="store_true", help="no progress bars (the per-epoch line stays)")


def compile_backend(name: str) -> str:
    """A ``type=`` for ``--compile``: one of torch.compile's backends, checked while parsing (before the run
    folder is touched; torch would only refuse it at the first forward pass)."""
    import torch._dynamo

    known = torch._dynamo.list_backends(exclude_tags=())
    if name not in known:
        raise argparse.ArgumentTypeError(f"expected a torch.compile backend ({', '.join(torch._dynamo.list_backends())}"
                                         f", or one of {len(known)} listed by torch._dynamo.list_backends(exclude_tags="
                                         f"())), got {name!r}")
    return name


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


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes in bf16 natively: a CUDA GPU that supports it, or a CPU with AVX512-BF16 or
    AMX (elsewhere torch emulates bf16 on the CPU, slower than float32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return False


def resolve_precision(requested: str, device: torch.device, *, log: Callable[[str], None] = print) -> str:
    """``fp32`` or ``bf16``: what ``--precision`` means on ``device``. ``auto`` is bf16 on a CPU with native bf16
    only (measured there: same detection quality, 1.7-2x faster steps; on a GPU float32 stays the default until
    measured); an explicit ``bf16`` the device cannot run natively falls back to float32, and says so."""
    if requested not in PRECISIONS:
        raise UsageError(f"--precision: expected one of {', '.join(PRECISIONS)}, got {requested!r}")
    native = native_bf16(device)
    if requested == "bf16" and not native:
        log(f"--precision bf16: {device} has no native bf16 (AVX512-BF16, AMX or a bf16 GPU); running in float32")
    if requested == "auto":
        return "bf16" if native and device.type == "cpu" else "fp32"
    return "bf16" if requested == "bf16" and native else "fp32"


def fit_runtime(args: argparse.Namespace, device: torch.device, dist: Dist | None = None) -> Runtime:
    """The runtime options of :func:`core.fit.fit` from the flags of :func:`add_runtime_args` (``args.precision``
    already resolved by :func:`resolve_precision`): progress bars on rank 0 only."""
    dist = dist or Dist()
    return Runtime(amp=args.precision == "bf16", progress=not args.no_progress and dist.is_main, dist=dist,
                   compile_backend=args.compile, cuda_graphs=not args.no_cuda_graphs)
