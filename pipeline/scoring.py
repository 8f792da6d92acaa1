"""STEP 3's inputs: find the STEP 1 run of the same settings, check it fits the dataset, score its traces.

A "detector" is a checkpoint file (``*.pth.tar``, STEP 2) or ``baseline:<name>``, one of the hand-crafted
scores of :mod:`labeltrace.baselines` (e.g. ``baseline:confidence`` = minus the mean assigned-label
probability), so every comparison in STEP 3 runs through the same code.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch

from core import cli
from labeltrace.errors import fail
from labeltrace.io import read_json
from labeltrace.runfiles import COMPACT_TRACES_FILE, CONFIG_FILE, METADATA_FILE, TRACES_FILE
from datasets.base import DatasetBundle
from labeltrace.traces import RunTraces, load_run

if TYPE_CHECKING:  # the settings pull in the dataset and model registries, which scoring alone does not need
    from pipeline.settings import RunSettings

@dataclass
class Step1Run:
    """A finished STEP 1 run, mapped onto the training set of the dataset as loaded now.

    ``rows`` (shape (N,)) are the training-set positions of the traces' rows; ``true``, ``assigned`` and
    ``flipped`` (shape (N_full,)) cover the whole training set. ``has_truth``: :attr:`RunSettings.has_ground_truth`.
    """

    run_dir: Path
    traces: RunTraces
    rows: np.ndarray
    true: np.ndarray
    assigned: np.ndarray
    flipped: np.ndarray
    has_truth: bool
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def flipped_rows(self) -> np.ndarray:
        """``label_flipped`` of the traces' rows, shape (N,)."""
        return self.flipped[self.rows]


def find_step1_run(settings: RunSettings, bundle: DatasetBundle, td_run: str | None = None) -> Step1Run:
    """The STEP 1 run folder of these settings (or ``td_run``), loaded and checked against ``bundle``."""
    run_dir = Path(td_run) if td_run else settings.td_run_dir
    traces_there = (run_dir / TRACES_FILE).is_file() or (run_dir / COMPACT_TRACES_FILE).is_file()
    if not traces_there or not (run_dir / METADATA_FILE).is_file():
        fail(f"no finished STEP 1 run for these settings: expected {run_dir}/{TRACES_FILE} and {METADATA_FILE} "
             f"(make it with generate_td.sh / runner.py and the same --dataset --seed --noise_ratio --noise_type "
             f"--net_type --depth --save [--labels_file --labels_key], or point --td_run at it)")
    config_path = run_dir / CONFIG_FILE
    config = read_json(config_path) if config_path.is_file() else {}
    check_run_settings(run_dir, config, settings)  # first: "a digits run" says more than "labels differ"
    loaded = load_run(run_dir)
    meta = loaded.metadata.require("train_indices", "true_targets", "assigned_targets", "label_flipped")
    # A self-calibration run's injected labels served to train its detector; STEP 3 ranks, measures and
    # retrains on the data's own labels only.
    traces = loaded.without_injected()
    if len(traces.td) < len(loaded.td):
        print(f"{run_dir}: leaving out the {len(loaded.td) - len(traces.td)} labels --calibrate injected")
    rows, true, assigned, flipped = traces.train_indices, meta.true_targets, meta.assigned_targets, meta.label_flipped
    n_now = len(bundle.train)
    if len(true) != n_now:
        fail(f"{run_dir} was made on a training set of {len(true)} samples whose labels differ from the "
             f"{n_now} loaded now: pass the STEP 1 run's --data/--max_train/--image_size")
    differ = int(np.count_nonzero(true != np.asarray(bundle.train.targets, dtype=np.int64)))
    if differ:  # as many samples: the same data read otherwise, or a damaged file
        fail(f"{meta.path}: true_targets differ from the labels of the {n_now} training samples loaded now on "
             f"{differ}: the metadata is damaged, or the run was made on other data (pass its --data/--image_size)")
    return Step1Run(run_dir=run_dir, traces=traces, rows=rows, true=true, assigned=assigned, flipped=flipped,
                    has_truth=settings.has_ground_truth, config=config)


# What a STEP 1 run folder's name is made of: STEP 3 files its results under the folder these name.
NAMING_KEYS = ("dataset", "net_type", "depth", "noise_type", "noise_ratio", "calibrate")


def check_run_settings(run_dir: Path, config: dict[str, Any], settings: RunSettings) -> None:
    """Fail, before anything is written, when the STEP 1 run's ``config.json`` contradicts the flags (``--td_run``
    of a 0.2 run with ``--noise_ratio 0.4`` would file its results under the 0.4 experiment's folder)."""
    ours = {key: getattr(settings, key) for key in NAMING_KEYS}
    theirs = {key: config.get(key) for key in NAMING_KEYS if key in config}
    if "calibrate" in theirs:
        theirs["calibrate"] = theirs["calibrate"] or 0.0  # left out (None) is 0
    diffs = [f"--{k} {ours[k]} (the run has {v})" for k, v in theirs.items() if v != ours[k]
             and not (isinstance(v, (int, float)) and isinstance(ours[k], (int, float)) and float(v) == float(ours[k]))]
    if diffs:
        fail(f"{run_dir / CONFIG_FILE} contradicts the flags: {'; '.join(diffs)}: give the run's values")


class Step3Inputs(NamedTuple):
    device: torch.device
    settings: RunSettings
    bundle: DatasetBundle
    step1: Step1Run
    args: Any  # the flags with the precision and noise ratio resolved (what the retraining folders record)


def step3_inputs(args) -> Step3Inputs:
    """What every STEP 3 stage starts from: threads and device set, the settings resolved as STEP 1 resolves
    them, the dataset loaded as STEP 1 loaded it, and the STEP 1 run of the same settings found and checked."""
    from datasets.registry import load_dataset
    from labeltrace.cli import set_threads
    from pipeline.runtime import pick_device, resolve_precision
    from pipeline.settings import check_image_size_applies, resolve_settings

    set_threads(args.threads)
    device = pick_device(args.device)
    settings = resolve_settings(args)
    args = cli.with_values(args, precision=resolve_precision(args.precision, device), noise_ratio=settings.noise_ratio)
    bundle = load_dataset(args.dataset, args.data, image_size=args.image_size)
    check_image_size_applies(args.dataset, args.image_size, bundle.image_size)
    bundle = bundle.subset(args.max_train, args.max_test)
    return Step3Inputs(device, settings, bundle, find_step1_run(settings, bundle, args.td_run), args)
