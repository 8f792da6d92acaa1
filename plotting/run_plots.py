"""All figures of one run folder, and the baselines' detection metrics next to them.

Reads ``training_dynamics.npz`` + ``metadata.pth`` (through :func:`labeltrace.traces.load_run`) and
``train_log.csv``; writes into ``out_dir``:

- ``data_map.png``: confidence vs variability, flipped samples marked;
- ``roc.png``, ``precision_recall.png``: the baselines (and any ``extra_scores``, e.g. the detector);
  skipped without ground truth;
- ``assigned_prob_curve.png``: mean assigned-label probability per epoch, clean vs flipped (Figure 1);
- ``training_curves.png``: errors and losses from ``train_log.csv`` (skipped when absent);
- ``detection_metrics.json``: per score ROC-AUC, mAP and precision/recall/F1 when removing the flipped
  fraction, plus which probabilities cleanlab was given.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from labeltrace.errors import UsageError
from labeltrace.io import write_json
from labeltrace.runfiles import TRAIN_LOG_FILE
from labeltrace.baselines import assigned_prob, confidence, score_baselines, variability
from labeltrace.metrics import NO_GROUND_TRUTH, detection_metrics, format_metrics
from labeltrace.traces import load_run
from plotting import figures

PLOT_NAMES = ("data_map.png", "roc.png", "precision_recall.png", "assigned_prob_curve.png",
              "training_curves.png")
IN_SAMPLE = "in-sample: mean over epochs of the recorded training probabilities"


def _finite(x: float) -> float | None:
    return None if math.isnan(x) else round(float(x), 6)


def make_plots(run_dir: str | os.PathLike, out_dir: str | os.PathLike, *,
               extra_scores: dict[str, np.ndarray] | None = None,
               pred_probs: np.ndarray | None = None, log=print) -> list[Path]:
    """Write the figures of ``run_dir`` into ``out_dir``; return the paths written.

    Parameters
    ----------
    extra_scores : ``{name: p_noisy of shape (N,)}``, higher = more likely mislabeled (e.g. the detector's
        ``p_noisy``), drawn with the baselines in the ROC and precision-recall plots.
    pred_probs : array of shape (N, C) in class order, out-of-sample probabilities for the cleanlab scores;
        the in-sample mean of the traces when None.
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    run = load_run(run_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    title = run_dir.parent.name or run_dir.name
    flipped = run.label_flipped
    if flipped is not None and (not flipped.any() or flipped.all()):
        # One group only: its curves have nothing to be compared with, ROC and precision-recall are undefined.
        log(f"note: {'no' if not flipped.any() else 'every'} sample is flipped: clean and flipped curves, ROC and "
            "precision-recall need both")
        flipped = None
    written = []

    def save(fig, name):
        figures.save_png(fig, out_dir / name)
        written.append(out_dir / name)

    save(figures.data_map(-confidence(run.td), variability(run.td), flipped,
                          title=f"Data map: {title}"), "data_map.png")
    save(figures.assigned_prob_curve(assigned_prob(run.td), flipped, title=f"Assigned-label probability: {title}"),
         "assigned_prob_curve.png")
    log_path = run_dir / TRAIN_LOG_FILE
    if log_path.is_file():
        save(figures.training_curves(pd.read_csv(log_path), title=f"Training: {title}"), "training_curves.png")
    else:
        log(f"note: {log_path} not found: no training curves")

    scores = score_baselines(run.td, run.class_ids, pred_probs=pred_probs)
    for name, p in (extra_scores or {}).items():
        p = np.asarray(p, dtype=np.float64).reshape(-1)
        if p.shape != (len(run.td),):
            raise UsageError(f"extra score {name!r} has {p.size} values for {len(run.td)} samples")
        scores[name] = p
    report = {"run_dir": str(run_dir), "num_samples": len(run.td), "num_epochs": run.num_epochs,
              "cleanlab_pred_probs": "out-of-sample (given)" if pred_probs is not None else IN_SAMPLE,
              "scores": {}}
    if flipped is None:
        log(f"note: {NO_GROUND_TRUTH}: no ROC or precision-recall plot")
        report["note"] = NO_GROUND_TRUTH
    else:
        extra = tuple(extra_scores or ())
        save(figures.roc_curves(scores, flipped, title=f"ROC: {title}", highlight=extra), "roc.png")
        save(figures.pr_curves(scores, flipped, title=f"Precision-recall: {title}", highlight=extra),
             "precision_recall.png")
        rate = float(flipped.mean())
        report["remove_ratio"] = rate
        for name, score in scores.items():
            m = detection_metrics(score, flipped, remove_ratio=rate)
            report["scores"][name] = {k: _finite(v) if isinstance(v, float) else v for k, v in m.as_dict().items()}
            log(format_metrics(m, remove_ratio=rate, name=name))
    write_json(out_dir / "detection_metrics.json", report)
    return written
