"""Run folders: create one, record its command and resolved configuration, and check a resume fits it."""
from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Any

import torch

from core.errors import fail
from core.io import write_json, write_text

# Settings that may change between a run and its resumption (compute placement, not the experiment). Resuming
# with another world size or --compile continues correctly but is no longer bit-identical to an unbroken run.
RESUME_IGNORES = ("threads", "device", "progress", "no_progress", "restart", "num_workers", "device_used",
                  "threads_used", "world_size", "compile", "no_cuda_graphs")


def prepare_run_dir(run_dir: Path, config: dict[str, Any], *, flag: str = "--save") -> None:
    """Create ``run_dir`` (a clear error when it cannot be written) and write ``cmd.txt`` and ``config.json``.
    A command that trains calls :func:`check_resumable` first, so a refused re-run overwrites nothing."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"{flag}: cannot create the run folder {run_dir} ({exc.strerror})")
    if not os.access(run_dir, os.W_OK):
        fail(f"{flag}: the run folder {run_dir} is not writable")
    launcher = [sys.executable]
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # started by torchrun: say so, or the command would mislead
        launcher += ["-m", "torch.distributed.run"]
        if os.environ.get("GROUP_WORLD_SIZE") == "1":  # one node
            launcher.append("--standalone")
        launcher += ["--nproc_per_node", os.environ.get("LOCAL_WORLD_SIZE", "1")]
    command = " ".join(shlex.quote(a) for a in [*launcher, *sys.argv])
    write_text(run_dir / "cmd.txt", command + "\n")
    write_json(run_dir / "config.json", config)


def config_differences(saved: dict[str, Any], current: dict[str, Any], ignore: tuple[str, ...]) -> list[str]:
    """The settings (other than ``ignore``) that differ between a saved run and this command."""
    keys = (set(saved) | set(current)) - set(ignore)
    return sorted(f"--{k} {saved.get(k)!r} -> {current.get(k)!r}" for k in keys if saved.get(k) != current.get(k))


def check_resumable(run_dir: Path, config: dict[str, Any], saved: dict[str, Any] | None = None) -> None:
    """Fail with one line when ``run_dir/resume.pth`` (or ``saved``, its config) holds a run whose settings,
    other than :data:`RESUME_IGNORES`, differ from ``config``."""
    if saved is None:
        state = read_resume_state(run_dir)
        if state is None:
            return
        saved = state["config"]
    diffs = config_differences(saved, config, RESUME_IGNORES)
    if diffs:
        fail(f"{run_dir} holds a run with other settings ({'; '.join(diffs)}): give the run's values to "
             "continue it, or add --restart to start over")


def read_resume_state(run_dir: Path) -> dict[str, Any] | None:
    """``run_dir/resume.pth`` memory-mapped (its tensors are read only if used: checking the configuration or
    the epoch of a large model's checkpoint costs next to nothing), or None when there is none."""
    path = run_dir / "resume.pth"
    return torch.load(path, map_location="cpu", weights_only=True, mmap=True) if path.is_file() else None
