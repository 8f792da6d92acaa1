"""Data debugging (paper §4.3): relabel the most suspicious samples and write the corrected labels.

    python data_debug.py --dataset digits --seed 1 --noise_ratio 0.2 --save runs --detector D.pth.tar \
        --relabel_ratio 0.2 [--label_source auto|truth|model] [--retrain --num_epochs 40]

New labels come from the ground truth where the noise was synthesized (``truth``), else (``model``, the
default for real noise) from the prediction of the model trained on the clean part: the STEP 3 retraining
after removing the same samples, run first if it is missing. Run folder:
``<experiment>/relabel_seed<seed>/detector_<name>/percrelabel<ratio>_<truth|model>`` with

- ``corrected_labels.json``: a JSON list, entry ``i`` = the label of training sample ``i`` (the ``noise_file``
  format of DivideMix-style loaders: ``json.load(open(f))``);
- ``corrected_labels.csv``: ``index[, path], assigned_label, corrected_label, changed, relabelled, p_noisy
  [, true_label]`` for every training sample; folder datasets also get ``corrected_labels_by_path.json``;
- ``summary.json``: noise rate before/after (with ground truth), counts, and test accuracy with ``--retrain``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from core import cli
from labeltrace.errors import fail
from core.committed import completed_summary
from labeltrace.io import write_csv, write_json, write_text
from labeltrace.runfiles import BEST_MODEL_FILE, CORRECTED_LABELS_BY_PATH_FILE, CORRECTED_LABELS_CSV_FILE, \
    CORRECTED_LABELS_FILE
from core.runfolder import prepare_run_dir
from core.inference import inference_copy
from core.passes import predict_probs
from core.seed import epoch_generator
from datasets.base import FolderSplit
from labeltrace.metrics import NO_GROUND_TRUTH, detection_metrics, format_metrics
from pipeline.relabel import noise_rate, relabel, relabel_counts
from models.registry import build_model
from pipeline import denoise
from pipeline.loaders import eval_batch_size, make_feed, place_model, select
from pipeline.retrain import add_args, finish, resolve_recipe, retrain, run_config
from labeltrace.issues import write_issue_files
from pipeline.find_issues import split_pictures
from labeltrace.scoring import score_run
from pipeline.scoring import Step3Inputs, step3_inputs

SOURCES = ("auto", "truth", "model")
STAGE = "relabel"


def get_args_parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser("Data debugging: relabel the most suspicious samples")
    add_args(p)
    p.add_argument("--detector", required=True,
                   help="detector checkpoint (*.pth.tar) or baseline:<score> (e.g. baseline:confidence)")
    p.add_argument("--relabel_ratio", type=cli.ratio, default=0.2, help="fraction of samples to relabel, in [0, 1)")
    p.add_argument("--label_source", choices=SOURCES, default="auto",
                   help="truth: the ground truth (synthesized noise); model: the prediction of the model "
                        "retrained without these samples; auto: truth when there is one")
    p.add_argument("--retrain", action="store_true", help="then retrain on all samples with the corrected labels")
    return p


def relabel_folder(settings, detector: str, relabel_ratio: float, source: str) -> Path:
    """``<experiment>/relabel_seed<seed>/detector_<detector>/percrelabel<ratio>_<truth|model>`` (``settings``:
    :class:`pipeline.settings.RunSettings`; ``detector``: :func:`labeltrace.scoring.detector_name`)."""
    return settings.stage_root(STAGE) / f"detector_{detector}" / f"percrelabel{relabel_ratio}_{source}"


def clean_part_predictions(args: argparse.Namespace, inputs: Step3Inputs, scores) -> tuple[np.ndarray, str]:
    """Predicted labels (N,) of the traces' rows by the model retrained after removing the suspicious part:
    STEP 3's detector removal of the same ``--relabel_ratio`` (the same folder, reused when finished)."""
    device, settings, bundle, step1, _ = inputs
    summary = denoise.denoise_one("detector", args, inputs, scores=scores, remove_ratio=args.relabel_ratio)
    model = build_model(settings.net_type, settings.depth, num_classes=bundle.num_classes,
                        in_channels=bundle.in_channels, image_size=bundle.image_size)
    best = Path(summary["run_dir"]) / BEST_MODEL_FILE
    model.load_state_dict(torch.load(best, map_location=device, weights_only=True))
    model = inference_copy(place_model(model, loader=args.loader, device=device))
    feed = make_feed(select(bundle.train, step1.rows), bundle, train=False, shuffle=False,
                     batch_size=eval_batch_size(device), loader=args.loader, device=device,
                     num_workers=args.num_workers)
    probs = predict_probs(model, feed, gen=epoch_generator(0, 0), progress=False)
    return probs.argmax(1), summary["run_dir"]


def main(args: argparse.Namespace) -> dict[str, Any]:
    inputs = step3_inputs(args)
    _, settings, bundle, step1, args = inputs
    source = ("truth" if step1.has_truth else "model") if args.label_source == "auto" else args.label_source
    if source == "truth" and not step1.has_truth:
        fail(f"--label_source truth: {settings.no_truth_reason}, there is no ground truth (use model)")
    scores = score_run(args.detector, step1.traces)
    truth = step1.flipped_rows if step1.has_truth else None
    assigned = step1.assigned[step1.rows]
    model_dir = None
    if source == "truth":
        replacement = step1.true[step1.rows]
    else:
        replacement, model_dir = clean_part_predictions(args, inputs, scores)
    result = relabel(scores.p_noisy, assigned, replacement, ratio=args.relabel_ratio)
    corrected = step1.assigned.copy()  # held-out (valid) samples, if any, keep their labels
    corrected[step1.rows] = result.labels
    run_dir = relabel_folder(settings, scores.name, args.relabel_ratio, source)
    prepare_run_dir(run_dir, {**vars(args), "net_type": settings.net_type, "depth": settings.depth,
                              "stage": STAGE, "label_source": source, "td_run": str(step1.run_dir)})
    write_labels(run_dir, bundle, step1, corrected, result, scores.p_noisy)
    # The suggestion shown is the model's (never the ground truth, which a user would not have).
    write_issue_files(run_dir, step1.traces, scores, **split_pictures(bundle.train), classes=bundle.classes,
                      suggested=replacement if source == "model" else None, title=run_dir.parent.parent.name)
    metrics = detection_metrics(scores.p_noisy, truth, remove_ratio=args.relabel_ratio)
    print(format_metrics(metrics, remove_ratio=args.relabel_ratio, name=f"detector {scores.name}"))
    summary: dict[str, Any] = {
        "stage": "relabel", "run_dir": str(run_dir), "td_run": str(step1.run_dir), "dataset": args.dataset,
        "seed": args.seed, "relabel_ratio": args.relabel_ratio, "label_source": source, "label_model": model_dir,
        "detector": scores.info, "detector_note": scores.note, "num_samples": int(len(step1.rows)),
        "num_relabelled": int(len(result.suspicious)), "num_changed": int(result.changed.sum()),
        "detection": metrics.as_dict() if metrics else None, "detection_note": None if metrics else NO_GROUND_TRUTH,
        "labels_json": str(run_dir / CORRECTED_LABELS_FILE), "labels_csv": str(run_dir / CORRECTED_LABELS_CSV_FILE)}
    if truth is not None:
        true_rows = step1.true[step1.rows]
        summary.update(noise_rate_before=noise_rate(assigned, true_rows),
                       noise_rate_after=noise_rate(result.labels, true_rows),
                       **relabel_counts(assigned, result.labels, true_rows))
        print(f"relabelled {len(result.suspicious)} samples ({source}): {summary['fixed']} fixed, "
              f"{summary['broken']} broken; noise {summary['noise_rate_before']:.4f} -> "
              f"{summary['noise_rate_after']:.4f}")
    else:
        summary.update(noise_rate_before=None, noise_rate_after=None, noise_note=NO_GROUND_TRUTH)
        print(f"relabelled {len(result.suspicious)} samples ({source}), {summary['num_changed']} changed; "
              f"noise rate before/after unknown: {NO_GROUND_TRUTH}")
    if args.retrain:
        summary.update(retrain_corrected(args, inputs, result.labels, run_dir, source, scores.name))
    print(f"corrected labels: {run_dir / CORRECTED_LABELS_FILE} (+ .csv)")
    return finish(run_dir, summary)


def retrain_corrected(args: argparse.Namespace, inputs: Step3Inputs, labels: np.ndarray, run_dir: Path, source: str,
                      name: str) -> dict[str, Any]:
    device, settings, bundle, step1, _ = inputs
    recipe, batch = resolve_recipe(args, settings, kept_fraction=1.0)
    config = run_config(args, recipe, batch, net_type=settings.net_type, depth=settings.depth,
                        image_size=bundle.image_size, stage=STAGE,
                        td_run=str(step1.run_dir), label_source=source,
                        detector_name=name, labels_sha1=hashlib.sha1(labels.tobytes()).hexdigest())
    done = completed_summary(run_dir, config, args.restart)
    if done is not None and "best_test_accuracy" in done:
        print(f"{run_dir}: retraining already complete")
        return {k: done[k] for k in ("best_test_accuracy", "last_test_accuracy", "best_epoch", "epochs",
                                     "batch_size", "num_train", "seconds")}
    start = time.perf_counter()
    out = retrain(bundle, step1.rows, labels, run_dir=run_dir, config=config, recipe=recipe, batch_size=batch,
                  net_type=settings.net_type, depth=settings.depth, args=args, device=device)
    print(f"relabelled: test accuracy (last epoch) {out['last_test_accuracy']:.4f}")
    return {**out, "wall_seconds": time.perf_counter() - start}


def write_labels(run_dir: Path, bundle, step1, corrected: np.ndarray, result, p_noisy: np.ndarray) -> None:
    """corrected_labels.json (list by index), .csv (one row per sample) and, for folders, by path."""
    n_full = len(corrected)
    relabelled = np.zeros(n_full, bool)
    relabelled[step1.rows[result.suspicious]] = True
    scores = np.full(n_full, np.nan)
    scores[step1.rows] = p_noisy
    frame = pd.DataFrame({"index": np.arange(n_full)})
    if isinstance(bundle.train, FolderSplit):
        frame["path"] = bundle.train.paths
        write_json(run_dir / CORRECTED_LABELS_BY_PATH_FILE,
                   {p: int(c) for p, c in zip(bundle.train.paths, corrected)})
    frame["assigned_label"] = step1.assigned
    frame["corrected_label"] = corrected
    frame["changed"] = (corrected != step1.assigned).astype(int)
    frame["relabelled"] = relabelled.astype(int)
    frame["p_noisy"] = scores
    if step1.has_truth:
        frame["true_label"] = step1.true
    write_text(run_dir / CORRECTED_LABELS_FILE, json.dumps([int(c) for c in corrected]) + "\n")
    write_csv(run_dir / CORRECTED_LABELS_CSV_FILE, frame)
