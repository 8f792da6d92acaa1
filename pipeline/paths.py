"""Run-folder names of the paper's code, shared by STEP 1 and STEP 3 so each finds the other's files."""
from __future__ import annotations

from pathlib import Path

from datasets.registry import LARGE


def experiment_dir(save: str | Path, dataset: str, net_type: str, depth: int, noise_ratio: float,
                   noise_type: str) -> Path:
    """``<save>/<dataset>_<net><depth>_percmislabeled<r>_<type>``; large real-noise datasets drop the noise part."""
    if dataset in LARGE:
        return Path(save) / f"{dataset}_{net_type}{depth}"
    return Path(save) / f"{dataset}_{net_type}{depth}_percmislabeled{noise_ratio}_{noise_type}"


def td_run_dir(save: str | Path, dataset: str, net_type: str, depth: int, noise_ratio: float, noise_type: str,
               seed: int) -> Path:
    return experiment_dir(save, dataset, net_type, depth, noise_ratio, noise_type) / f"computation4td_seed{seed}"
