"""Where a run stands: the training state a resume continues from, checked against the log rows it commits, and
whether a finished run is complete.

``resume.pth`` is written last in an epoch's commit (``core/fit._commit``), after the recorder's epoch, the
weights and ``train_log.csv``; it names the epoch. A state whose epoch disagrees with its log rows would
otherwise resume "successfully"; the traces of the committed epochs are the recorder's to check
(``recorder.json``, :class:`labeltrace.DynamicsRecorder`), and STEP 1 compares its epoch count with this one.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from core.runfolder import check_resumable, read_resume_state
from labeltrace.errors import fail
from labeltrace.io import json_ready, read_json
from labeltrace.runfiles import CONFIG_FILE, RESUME_FILE, SUMMARY_FILE, TRAIN_LOG_FILE

RESTART = "add --restart to start over"


def check_committed(run_dir: Path, state: dict[str, Any], epochs: int) -> None:
    """Fail with one line, before anything is written, unless ``state`` (``resume.pth``) commits a number of
    epochs of this ``epochs``-epoch run that its log rows and ``train_log.csv`` both hold."""
    path, epoch = run_dir / RESUME_FILE, state["epoch"]
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 1 <= epoch <= epochs:
        fail(f"{path}: epoch {epoch!r} is not a committed epoch of this {epochs}-epoch run: {RESTART}")
    rows = state["rows"]
    if not isinstance(rows, list) or len(rows) != epoch:
        fail(f"{path}: says epoch {epoch} but holds {len(rows) if isinstance(rows, list) else 'no'} log rows: "
             f"{RESTART}")
    _check_log(run_dir / TRAIN_LOG_FILE, epoch)


def _check_log(log: Path, epoch: int) -> None:
    """``train_log.csv`` is written just before ``resume.pth``: it holds ``epoch`` rows, or one more when a kill
    fell between the two (that epoch is replayed)."""
    if not log.is_file():
        fail(f"{log} is missing although {RESUME_FILE} commits {epoch} epochs: {RESTART}")
    lines = [line for line in log.read_text(errors="replace").splitlines()[1:] if line.strip()]
    if len(lines) not in (epoch, epoch + 1):
        fail(f"{log}: holds {len(lines)} epochs but {RESUME_FILE} commits {epoch}: {RESTART}")


def resume_point(run_dir: Path, config: dict[str, Any], *, restart: bool, epochs: int, mmap: bool = True,
                 model=None) -> dict[str, Any] | None:
    """The state a run of ``epochs`` epochs continues from (None: it starts afresh), checked so that a command
    which cannot resume fails before it writes anything: same settings, and a committed epoch its log holds.
    ``mmap=False`` when the state is to be trained from: the optimizer would otherwise keep file-backed momentum
    buffers. ``model``: the network the state's weights must fit, finite (checked here, before the caller
    writes anything)."""
    state = None if restart else read_resume_state(run_dir, mmap=mmap)
    if state is None:
        return None
    check_resumable(run_dir, config, saved=state["config"])
    check_committed(run_dir, state, epochs)
    if model is not None:
        _check_weights(run_dir / RESUME_FILE, state["model"], model)
    return state


def _check_weights(path: Path, weights: Any, model) -> None:
    """``resume.pth``'s weights are ``model``'s tensors (names and shapes), every one finite: loading another
    network's would fail in torch after the run folder was rewritten, and NaN weights would train to a NaN loss
    (whose advice, a lower --lr, does not apply to a damaged state)."""
    import torch

    expected = model.state_dict()
    if not isinstance(weights, dict):
        fail(f"{path}: its model is not a state_dict: {RESTART}")
    other = sorted(set(expected) ^ set(weights)) + [k for k in expected if k in weights and
                                                     tuple(weights[k].shape) != tuple(expected[k].shape)]
    if other:
        fail(f"{path}: holds the weights of another network ({len(other)} tensors differ from this "
             f"{type(model).__name__}'s, e.g. {other[0]}): {RESTART}")
    bad = [k for k, v in weights.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        fail(f"{path}: {len(bad)} of the model's tensors hold NaN or infinite weights (e.g. {bad[0]}): the state "
             f"is damaged; {RESTART}")


def completed_summary(run_dir: Path, config: dict[str, Any], restart: bool,
                      outputs: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """The ``summary.json`` of a finished run in ``run_dir`` (re-running it is a no-op), else None; a finished
    run with other settings is refused (``--restart`` starts over). A finished run keeps its configuration in
    ``config.json`` (``resume.pth`` is removed once it completes; a kill just before that leaves it).
    ``outputs``: files a finished run holds beside ``summary.json``; one that is gone is a one-line error (its
    raw data went when the run completed: only a new run makes it again)."""
    summary = run_dir / SUMMARY_FILE
    if restart or not summary.is_file():
        return None
    state = read_resume_state(run_dir)
    if state is not None and state["epoch"] < config["recipe"]["epochs"]:
        return None
    if state is None and not (run_dir / CONFIG_FILE).is_file():
        return None
    saved = state["config"] if state is not None else read_json(run_dir / CONFIG_FILE)
    # config.json went through JSON: compare this command's configuration as JSON reads it back.
    check_resumable(run_dir, json_ready(config) if state is None else config, saved=saved)
    lost = [name for name in outputs if not (run_dir / name).is_file()]
    if lost:
        fail(f"{run_dir}: complete ({SUMMARY_FILE}) but {', '.join(lost)} is missing: add --restart to run it again")
    return read_json(summary)


def finish_run(run_dir: Path) -> None:
    """Called once ``summary.json`` is written: a complete run has no resume state (docs/formats.md)."""
    (run_dir / RESUME_FILE).unlink(missing_ok=True)
