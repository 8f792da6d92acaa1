"""Run folders: create and lock one, record its command and resolved configuration, check a resume fits it."""
from __future__ import annotations

import contextlib
import os
import shlex
import sys
from pathlib import Path
from typing import Any, Iterator

from labeltrace.errors import UsageError, fail
from labeltrace.io import load_torch, remove_stale_temps, write_json, write_text
from labeltrace.runfiles import COMMAND_FILE, CONFIG_FILE, RESUME_FILE, RUN_FILES, lock_run_dir

# Settings that may change between a run and its resumption (compute placement and where the run folder is
# reached from, not the experiment). Resuming with another world size or --compile continues correctly but is
# no longer bit-identical to an unbroken run. ``save`` and ``td_run`` are paths: ``runs/./x``, an absolute
# spelling or a moved folder name the same run.
RESUME_IGNORES = ("threads", "device", "progress", "no_progress", "restart", "num_workers", "device_used",
                  "threads_used", "world_size", "compile", "no_cuda_graphs", "save", "td_run",
                  # The arithmetic is a runtime choice like the device: a run may go on (or count as done) in
                  # another one; config.json says which the last command used. ``amp``: its older flag.
                  "precision", "amp")
RESUME_KEYS = ("epoch", "model", "optimizer", "best", "rows", "config")


def make_run_dir(run_dir: Path, *, flag: str = "--save") -> None:
    """Create ``run_dir``, with one line naming ``flag`` when it cannot be created or written."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"{flag}: cannot create the run folder {run_dir} ({exc.strerror})")
    if not os.access(run_dir, os.W_OK):
        fail(f"{flag}: the run folder {run_dir} is not writable")


@contextlib.contextmanager
def locked_run_dir(run_dir: Path, *, flag: str = "--save", lock: bool = True) -> Iterator[None]:
    """Create ``run_dir`` and hold an advisory lock on ``run_dir/.lock`` until the block ends: a second process
    on the same folder fails at once with one line instead of interleaving its files with ours. Holding the
    lock, the temporary files of a killed writer are removed. ``lock=False``: no lock, nothing created (the
    other ranks of a torchrun launch, which write nothing). The lock file stays: deleting it would let a process
    that opened it just before lock a file no one else sees."""
    if not lock:
        yield
        return
    make_run_dir(run_dir, flag=flag)
    handle = lock_run_dir(run_dir)
    try:
        remove_stale_temps(run_dir, RUN_FILES)
        yield
    finally:
        handle.close()  # releases the lock


def prepare_run_dir(run_dir: Path, config: dict[str, Any], *, flag: str = "--save") -> None:
    """Create ``run_dir`` (a clear error when it cannot be written) and write ``cmd.txt`` and ``config.json``.
    A command that trains calls :func:`check_resumable` first, so a refused re-run overwrites nothing."""
    make_run_dir(run_dir, flag=flag)
    launcher = [sys.executable]
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # started by torchrun: say so, or the command would mislead
        launcher += ["-m", "torch.distributed.run"]
        if os.environ.get("GROUP_WORLD_SIZE") == "1":  # one node
            launcher.append("--standalone")
        launcher += ["--nproc_per_node", os.environ.get("LOCAL_WORLD_SIZE", "1")]
    command = " ".join(shlex.quote(a) for a in [*launcher, *sys.argv])
    write_text(run_dir / COMMAND_FILE, command + "\n")
    write_json(run_dir / CONFIG_FILE, config)


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


def read_resume_state(run_dir: Path, *, mmap: bool = True) -> dict[str, Any] | None:
    """``run_dir/resume.pth``, memory-mapped by default (its tensors are read only if used: checking the
    configuration or the epoch of a large model's checkpoint costs next to nothing), or None when there is
    none. One that is empty, damaged, carries code or lacks a key is a one-line error naming it."""
    path = run_dir / RESUME_FILE
    if not path.is_file():
        return None
    try:
        state = load_torch(path, what="resume state", mmap=mmap)
    except UsageError as exc:
        fail(f"{exc}; add --restart to start over")
    missing = [k for k in RESUME_KEYS if k not in state] if isinstance(state, dict) else list(RESUME_KEYS)
    if missing or not isinstance(state["config"], dict):
        fail(f"{path}: not a resume state (missing {', '.join(missing) or 'config'}): add --restart to start over")
    return state
