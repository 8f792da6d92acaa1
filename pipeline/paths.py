"""Run-folder names of the paper's code, shared by STEP 1 and STEP 3 so each finds the other's files."""
from __future__ import annotations

import re
from pathlib import Path

from datasets.registry import LARGE


def labels_tag(labels_file: str | Path, labels_key: str | None = None) -> str:
    """``labels-<file stem>[-<key>]``: the noise part of a ``--labels_file`` run's folder, which therefore never
    meets a synthetic-noise folder (``percmislabeled...``); characters a folder name should not hold become ``_``."""
    parts = [Path(labels_file).stem] + ([labels_key] if labels_key else [])
    return "labels-" + "-".join(re.sub(r"[^A-Za-z0-9._-]", "_", part) for part in parts)


def experiment_dir(save: str | Path, dataset: str, net_type: str, depth: int, noise_ratio: float,
                   noise_type: str, labels: str | None = None, calibrate: float = 0.0) -> Path:
    """``<save>/<dataset>_<net><depth>_percmislabeled<r>_<type>``; large real-noise datasets drop the noise part;
    ``labels`` (a :func:`labels_tag`) replaces it: ``<save>/<dataset>_<net><depth>_labels-<stem>[-<key>]``.
    A self-calibration run (``calibrate`` > 0) adds ``_calib<calibrate>``: its labels differ from the plain run's."""
    suffix = f"_calib{calibrate}" if calibrate else ""
    if labels:
        return Path(save) / f"{dataset}_{net_type}{depth}_{labels}{suffix}"
    if dataset in LARGE:
        return Path(save) / f"{dataset}_{net_type}{depth}{suffix}"
    return Path(save) / f"{dataset}_{net_type}{depth}_percmislabeled{noise_ratio}_{noise_type}{suffix}"


def td_run_dir(save: str | Path, dataset: str, net_type: str, depth: int, noise_ratio: float, noise_type: str,
               seed: int, labels: str | None = None, calibrate: float = 0.0) -> Path:
    experiment = experiment_dir(save, dataset, net_type, depth, noise_ratio, noise_type, labels, calibrate)
    return experiment / f"computation4td_seed{seed}"
