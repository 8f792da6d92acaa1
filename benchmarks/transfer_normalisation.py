"""Two ideas for cross-dataset transfer of the detector, measured (both negative: docs/detector.md).

    .venv/bin/python benchmarks/transfer_normalisation.py runs/*/computation4td_seed1

For every run: train a detector (the default recipe, seed 0) on its curves as they are ("raw") and on their
per-epoch ranks among the run's samples ("rank": each value replaced by its quantile at that epoch, which
removes how fast a dataset is learned); score every run of the *other* datasets with it. Printed per pair:
ROC-AUC of raw, rank, the rank-average of raw and the mean assigned-label probability ("blend"), and the mean
probability alone.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from scipy.stats import rankdata

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from labeltrace.lstm import LSTMDetector  # noqa: E402
from labeltrace.metrics import detection_metrics  # noqa: E402
from labeltrace.predict import predict_p_noisy  # noqa: E402
from labeltrace.traces import RunTraces, load_run, resample_time  # noqa: E402
from detector_models.train import DetectorRecipe, train_detector  # noqa: E402


def epoch_ranks(curves: np.ndarray) -> np.ndarray:
    """(N, T) -> (N, T): each value's quantile in (0, 1] among the N samples at its epoch."""
    return (rankdata(curves, axis=0) / len(curves)).astype(np.float32)


def auc(score: np.ndarray, run: RunTraces) -> float:
    return detection_metrics(score, run.label_flipped, remove_ratio=float(run.label_flipped.mean())).roc_auc


def main(paths: list[str]) -> None:
    torch.set_num_threads(1)
    runs = {Path(p).parent.name: load_run(p) for p in paths}
    dataset = {name: name.split("_cnn")[0] for name in runs}
    print("| trained on | scored on | raw | rank | blend | mean prob |\n|---|---|---|---|---|---|")
    for src, run in runs.items():
        models = {}
        for feature, f in (("raw", lambda c: c), ("rank", epoch_ranks)):
            trained = train_detector(f(run.curves), run.label_flipped, DetectorRecipe(seed=0), log=lambda _: None)
            model = LSTMDetector(trained.variant)
            model.load_state_dict(trained.state_dict)
            models[feature] = (model.eval(), f, trained.train_length)
        for dst, target in runs.items():
            if dataset[dst] == dataset[src]:
                continue
            scores = {}
            for feature, (model, f, length) in models.items():
                curves = target.curves if target.curves.shape[1] == length else resample_time(target.curves, length)
                scores[feature] = predict_p_noisy(model, f(curves))
            mean_prob = 1.0 - target.curves.mean(axis=1)
            blend = rankdata(scores["raw"]) + rankdata(mean_prob)
            print(f"| {src} | {dst} | {auc(scores['raw'], target):.3f} | {auc(scores['rank'], target):.3f} | "
                  f"{auc(blend, target):.3f} | {auc(mean_prob, target):.3f} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
