"""STEP 3's retraining: a fresh classifier on a subset of the training set, with given labels.

The paper's recipe: 300 epochs, SGD lr 0.1 (momentum 0.9, Nesterov), weight decay 1e-4, one LR drop x0.1 at
50% (large datasets: at 33% and 67%), batch ``int(256 * (1 - remove_ratio))``; the test set validates.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.committed import finish_run, resume_point
from core.fit import FitData, Recipe, fit, recipe_dict, write_valid_results
from labeltrace.io import write_json
from labeltrace.runfiles import SUMMARY_FILE
from core.runfolder import locked_run_dir, prepare_run_dir
from core.seed import seed_everything
from datasets.base import DatasetBundle
from models.registry import build_model
from pipeline.loaders import eval_batch_size, make_feed, place_model, select
from pipeline.recipe import add_data_args, add_train_args, make_recipe
from pipeline.runtime import fit_runtime
from pipeline.settings import RunSettings

EPOCHS = 300
BATCH = 256  # before scaling by the kept fraction
MILESTONES = {"small": "0.5", "large": "0.33,0.67"}  # fractions of training at which the LR is x0.1
# The flags a retraining's result depends on: its run folder is keyed on these (plus the recipe and the extras).
CONFIG_KEYS = ("data", "dataset", "seed", "split_seed", "noise_ratio", "noise_type", "max_train", "max_test",
               "image_size", "pretrained", "num_epochs", "lr", "momentum", "wd", "milestones", "loader", "precision")


def add_args(p: argparse.ArgumentParser) -> None:
    """Data flags as STEP 1's, training flags with STEP 3's defaults (``auto`` = the paper's)."""
    add_data_args(p)
    add_train_args(p, epochs=EPOCHS, milestones="auto", batch_size=None)
    p.add_argument("--td_run", default=None, help="the STEP 1 run folder (default: found from the settings)")


def resolve_recipe(args: argparse.Namespace, settings: RunSettings, *, kept_fraction: float) -> tuple[Recipe, int]:
    """The recipe and batch size of one retraining: ``--milestones auto`` is the paper's for the dataset, a
    ``--batch_size`` left out scales with the kept fraction (an explicit 0 was refused while parsing)."""
    milestones = MILESTONES["large" if settings.real_noise else "small"] if args.milestones == "auto" \
        else args.milestones
    batch_size = max(1, int(BATCH * kept_fraction)) if args.batch_size is None else args.batch_size
    return make_recipe(args, milestones), batch_size


def run_config(args: argparse.Namespace, recipe: Recipe, batch_size: int, **extra: Any) -> dict[str, Any]:
    """What a retraining folder is keyed on: the flags that matter, the resolved recipe, and ``extra``."""
    config = {k: getattr(args, k, None) for k in CONFIG_KEYS}
    if args.dataset == "digits":  # embedded: --data means nothing
        config["data"] = None
    return {**config, "recipe": recipe_dict(recipe), "batch_size": batch_size, **extra}


def retrain(bundle: DatasetBundle, rows: np.ndarray, labels: np.ndarray, *, run_dir: Path, config: dict[str, Any],
            recipe: Recipe, batch_size: int, net_type: str, depth: int, args: argparse.Namespace,
            device: torch.device) -> dict[str, Any]:
    """Train ``net_type``/``depth`` from scratch on ``bundle.train[rows]`` labelled ``labels`` (both (M,)).

    Writes model.pth, model.pth.last, train_log.csv, results_valid.csv, cmd.txt, config.json in ``run_dir``
    (resumable like STEP 1; ``config`` from :func:`run_config`) and returns best/last test accuracy, best
    epoch and timings.
    """
    seed_everything(args.seed)
    # Built, and a resume checked, before the run folder is touched: a refused re-run writes nothing.
    model = build_model(net_type, depth, num_classes=bundle.num_classes, in_channels=bundle.in_channels,
                        image_size=bundle.image_size, pretrained=args.pretrained)
    with locked_run_dir(run_dir):
        resume_point(run_dir, config, restart=args.restart, epochs=recipe.epochs, model=model)
        prepare_run_dir(run_dir, config)
        return _retrain(bundle, rows, labels, model, run_dir=run_dir, config=config, recipe=recipe,
                        batch_size=batch_size, args=args, device=device)


def _retrain(bundle: DatasetBundle, rows: np.ndarray, labels: np.ndarray, model: torch.nn.Module, *,
             run_dir: Path, config: dict[str, Any], recipe: Recipe, batch_size: int, args: argparse.Namespace,
             device: torch.device) -> dict[str, Any]:
    model = place_model(model, loader=args.loader, device=device)
    feed = dict(loader=args.loader, device=device, num_workers=args.num_workers)
    test_labels = np.asarray(bundle.test.targets)
    data = FitData(train=make_feed(select(bundle.train, rows), bundle, train=True, shuffle=True,
                                   batch_size=batch_size, **feed),
                   train_labels=np.asarray(labels, dtype=np.int64),
                   valid=make_feed(bundle.test, bundle, train=False, shuffle=False, batch_size=eval_batch_size(device), **feed),
                   valid_labels=test_labels, num_classes=bundle.num_classes)
    runtime = fit_runtime(args, device)
    result = fit(model, data, recipe=recipe, run_dir=run_dir, seed=args.seed, config=config, record="none",
                 restart=args.restart, runtime=runtime)
    best_error = write_valid_results(model, run_dir, data.valid, test_labels, np.arange(len(test_labels)),
                                     runtime=runtime)
    return {"best_test_accuracy": 1.0 - best_error, "last_test_accuracy": 1.0 - result.last_valid_error,
            "best_epoch": result.best_epoch, "epochs": recipe.epochs, "batch_size": batch_size,
            "num_train": int(len(rows)), "seconds": result.seconds}


def finish(run_dir: Path, summary: dict[str, Any]) -> dict[str, Any]:
    write_json(run_dir / SUMMARY_FILE, summary)
    finish_run(run_dir)
    return summary
