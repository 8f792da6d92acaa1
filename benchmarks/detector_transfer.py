"""Score runs with trained detectors (no retraining) beside the mean assigned-label probability score.

    .venv/bin/python benchmarks/detector_transfer.py --detector checkpoints/digits_0.2_lstm_detector.pth.tar \
        --runs runs/fashion_mnist_*/computation4td_seed1 --out results/detector_transfer.json

For every (detector, run) pair prints ROC-AUC and mAP of the detector's p_noisy and of the hand-crafted
score 1 - mean_t td[:, t, 0], plus precision/recall/F1 when removing the run's realised noise rate (or
--remove_ratio). ``--val_split_seed S`` scores only the rows train_detector.py --seed S would hold out for
validation when trained on that run alone (to compare with a detector trained on the run itself).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from labeltrace.io import write_json  # noqa: E402
from labeltrace.metrics import detection_metrics  # noqa: E402
from labeltrace.predict import load_detector, score  # noqa: E402
from labeltrace.traces import load_run  # noqa: E402
from detector_models.train import DEFAULT_VAL_FRACTION, stratified_split  # noqa: E402


def short(path: str) -> str:
    """runs/digits_cnn3_percmislabeled0.2_uniform/computation4td_seed1 -> digits_cnn3_..._uniform/seed1"""
    p = Path(path)
    return f"{p.parent.name}/{p.name.replace('computation4td_', '')}" if p.name.startswith("computation") else p.name


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--detector", nargs="+", required=True)
    p.add_argument("--runs", nargs="+", required=True)
    p.add_argument("--remove_ratio", type=float, default=None, help="default: each run's realised noise rate")
    p.add_argument("--val_split_seed", type=int, default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    detectors = [(path, *load_detector(path)) for path in args.detector]
    rows = []
    print("| detector | traces | T | detector ROC-AUC | detector mAP | mean-prob ROC-AUC | mean-prob mAP | "
          "detector P/R/F1 at cut |")
    print("|---|---|---|---|---|---|---|---|")
    for run_dir in args.runs:
        run = load_run(run_dir)
        curves, flipped = run.curves, run.label_flipped
        if args.val_split_seed is not None:
            _, val = stratified_split(flipped.astype(int), val_fraction=DEFAULT_VAL_FRACTION,
                                      seed=args.val_split_seed)
            curves, flipped = curves[val], flipped[val]
        ratio = args.remove_ratio if args.remove_ratio is not None else float(flipped.mean())
        base = detection_metrics(1.0 - curves.mean(axis=1), flipped, remove_ratio=ratio)
        for det_path, model, info in detectors:
            p_noisy, note = score(model, info, curves)
            m = detection_metrics(p_noisy, flipped, remove_ratio=ratio)
            rows.append(dict(detector=det_path, run=run_dir, T=int(curves.shape[1]), detector_T=info.train_length,
                             resampled=note is not None, remove_ratio=ratio, detector_metrics=m.as_dict(),
                             mean_prob_metrics=base.as_dict(), rows=int(len(flipped))))
            print(f"| {Path(det_path).name} (T={info.train_length}) | {short(run_dir)} | {curves.shape[1]} | "
                  f"{m.roc_auc:.4f} | {m.average_precision:.4f} | {base.roc_auc:.4f} | "
                  f"{base.average_precision:.4f} | {m.precision:.3f}/{m.recall:.3f}/{m.f1:.3f} |", flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        write_json(args.out, rows)


if __name__ == "__main__":
    main()
