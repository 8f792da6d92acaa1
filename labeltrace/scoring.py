"""Score every trace of a run with a detector checkpoint or a hand-crafted score, named as one string.

A "detector" is a checkpoint file (``*.pth.tar``, STEP 2) or ``baseline:<name>``, one of the hand-crafted
scores of :mod:`labeltrace.baselines` (e.g. ``baseline:aum``), so every comparison runs through the same code.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from labeltrace.baselines import get_baseline
from labeltrace.errors import fail
from labeltrace.predict import load_detector, resolve_detector, score
from labeltrace.traces import RunTraces

__all__: list[str] = []  # internal: used by the public modules and the research pipeline

BASELINE_PREFIX = "baseline:"


@dataclass(frozen=True)
class Scores:
    """``p_noisy`` of shape (N,) over the traces' rows (higher = more suspicious) and how it was made."""

    p_noisy: np.ndarray
    name: str
    info: dict[str, Any]
    note: str | None = None


def detector_name(spec: str) -> str:
    """The ``<name>`` of ``detector_<name>``: the checkpoint's file name without its suffixes, or
    ``baseline_<score>``."""
    if spec.startswith(BASELINE_PREFIX):
        return "baseline_" + spec[len(BASELINE_PREFIX):]
    name = Path(spec).name
    for suffix in (".tar", ".pth", ".pt"):
        name = name[: -len(suffix)] if name.endswith(suffix) else name
    return name


def score_run(spec: str, traces: RunTraces) -> Scores:
    """Score every trace with a detector checkpoint or a ``baseline:<name>`` score."""
    if not spec:
        fail("--detector: a detector checkpoint (*.pth.tar) or baseline:<name> is needed for this removal")
    if spec.startswith(BASELINE_PREFIX):
        name = spec[len(BASELINE_PREFIX):]
        p_noisy = np.asarray(get_baseline(name)(traces.td, traces.class_ids), dtype=np.float64)
        return Scores(p_noisy, detector_name(spec), {"kind": "baseline", "baseline": name})
    path = resolve_detector(spec, traces.neighbours)
    if not path.is_file():
        fail(f"--detector: {spec}: no such detector checkpoint (or use baseline:<name>)")
    model, info = load_detector(path)
    p_noisy, note = score(model, info, traces.td, labels=traces.assigned, neighbours=traces.neighbours)
    return Scores(p_noisy.astype(np.float64), detector_name(str(path)),  # the checkpoint "generalist" resolved to
                  {"kind": "lstm", "path": str(path), "variant": info.variant, "train_length": info.train_length,
                   "val_auc": info.val_auc}, note)
