"""Label issues, listed and shown: ``label_issues.csv`` (every sample, most suspicious first) and
``label_issues.png`` (a contact sheet of the top ones, assigned -> suggested label).

    python find_issues.py RUN_DIR (or --td_run RUN_DIR) [--detector CHECKPOINT | baseline:aum] [--top 48]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from labeltrace import cli
from labeltrace.errors import fail, run_cli
from labeltrace.io import check_writable, read_json
from labeltrace.runfiles import CONFIG_FILE
from datasets.base import ArraySplit
from datasets.registry import load_dataset
from labeltrace.issues import write_issue_files
from labeltrace.predict import GENERALIST_NAME
from labeltrace.scoring import score_run
from labeltrace.traces import load_run


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser("rank a run's samples by how likely their label is wrong; list and show them")
    cli.add_run_dir(p, help="a STEP 1 run folder (or one written by labeltrace.DynamicsRecorder)")
    p.add_argument("--detector", default=GENERALIST_NAME,
                   help="a checkpoint, baseline:<score>, or 'generalist' (default: the shipped one that fits the run)")
    p.add_argument("--top", type=int, default=48, help="images on the contact sheet")
    p.add_argument("--data", default=None, help="data directory (default: the one in the run's config.json)")
    p.add_argument("--out", default=None, help="output folder (default: the run folder)")
    return p


def _dataset(config: dict, data: str | None):
    """The training split and class names of the dataset the run was made from, or (None, None) for a run with
    no config.json (one written from a user's own loop)."""
    if not config:
        return None, None
    bundle = load_dataset(config["dataset"], data or config.get("data"), image_size=config.get("image_size"))
    return bundle.subset(config.get("max_train"), config.get("max_test")).train, bundle.classes


def _check_dataset(config_file: Path, name: str, split, classes, traces) -> None:
    """The dataset ``config.json`` names must be the run's: its class count, every traced position, and the run's
    true labels (a digits run whose config.json names fashion_mnist would show Fashion-MNIST images and names)."""
    where = f"{config_file} names {name}"
    if classes is not None and len(classes) != traces.num_classes:
        fail(f"{where} ({len(classes)} classes) but the run has {traces.num_classes}: not the run's dataset "
             "(fix config.json, or --data)")
    rows = traces.train_indices if traces.train_indices is not None else np.arange(len(traces.td))
    if len(rows) and rows.max() >= len(split):
        fail(f"{where} ({len(split)} training samples) but the run traces position {rows.max()}: not the run's "
             "dataset (fix config.json, or --data)")
    true = traces.true_targets
    if true is not None and len(rows):
        differ = int(np.count_nonzero(np.asarray(split.targets)[rows] != true))
        if differ:
            fail(f"{where}, whose labels differ from the run's true_targets on {differ} of {len(rows)} samples: "
                 "not the run's dataset (fix config.json, or --data)")


def _pictures(split, rows: np.ndarray) -> list[np.ndarray]:
    """The images at training-set positions ``rows``, each (H, W) or (H, W, 3) uint8."""
    if isinstance(split, ArraySplit):
        return [im[0] if im.shape[0] == 1 else im.transpose(1, 2, 0) for im in split.images[rows]]
    from PIL import Image

    from datasets.folders import to_rgb

    pictures = []
    for i in rows:
        with Image.open(split.paths[i]) as image:
            pictures.append(np.asarray(to_rgb(image).resize((64, 64))))  # 16-bit images scaled, not white
    return pictures


def write_label_issues(run_dir: Path, detector: str, *, top: int = 48, data: str | None = None,
                       out: Path | None = None) -> Path:
    """``find_issues.py``: score ``run_dir`` with ``detector`` and write the two files into ``out`` (default the
    run folder); return the CSV's path."""
    run_dir, out = Path(run_dir), Path(out or run_dir)
    check_writable(out, flag="--out", folder=True)
    if top < 1:
        fail(f"--top: expected a positive number of images, got {top}")
    traces = load_run(run_dir).without_injected()  # a self-calibration run's own flips are no issues to list
    scores = score_run(detector, traces)
    if scores.note:  # e.g. the traces were resampled in time to the detector's length
        print(scores.note)
    config_file = run_dir / CONFIG_FILE
    config = read_json(config_file) if config_file.is_file() else {}
    split, classes = _dataset(config, data)
    if split is not None:
        _check_dataset(config_file, config["dataset"], split, classes, traces)
    return write_issue_files(out, traces, scores, **split_pictures(split), classes=classes, top=top,
                             title=f"{run_dir.parent.name}/{run_dir.name}")


def split_pictures(split) -> dict:
    """The ``pictures`` and ``paths`` arguments of :func:`labeltrace.issues.write_issue_files` for a training
    split (none for a run with no dataset)."""
    if split is None:
        return {}
    paths = None if isinstance(split, ArraySplit) else split.paths
    return {"pictures": lambda rows: _pictures(split, rows), "paths": paths}


def main(args: argparse.Namespace) -> Path:
    return write_label_issues(Path(cli.run_dir(args)), args.detector, top=args.top, data=args.data,
                              out=Path(args.out) if args.out else None)


if __name__ == "__main__":
    run_cli(lambda: main(get_args_parser().parse_args()))
