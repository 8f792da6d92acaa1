"""Smoke tests of the detector benchmark scripts on tiny synthetic runs (they must keep running)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from labeltrace.lstm import LSTMDetector
from labeltrace.metrics import detection_metrics
from labeltrace.predict import load_detector, make_checkpoint, score
from labeltrace.traces import load_run
from tests.library.synthetic_run import write_run

ROOT = Path(__file__).resolve().parents[1]
ENV = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}


def run(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_transfer_benchmark_prints_detector_and_baseline(tmp_path):
    # Hard curves (flipped samples learned at 0.2 T, jitter 0.2): no score is perfect, so every number below
    # depends on which rows it was computed from. 38 and 48 of the 120 samples are flipped.
    runs = [write_run(tmp_path / f"r{t}", n=120, t=t, seed=t, noise_rate=rate, memorize_at=0.2, jitter=0.2)
            for t, rate in ((10, 0.3), (14, 0.4))]
    ckpt = tmp_path / "d.pth.tar"
    torch.manual_seed(0)
    torch.save(make_checkpoint(LSTMDetector().state_dict(), epoch=1, best_prec=0, optimizer_state={},
                               variant="pooled", train_length=10), ckpt)
    out = tmp_path / "t.json"
    printed = run("benchmarks/detector_transfer.py", "--detector", str(ckpt), "--runs", *map(str, runs),
                  "--out", str(out))
    rows = json.loads(out.read_text())
    assert len(rows) == 2 and [r["resampled"] for r in rows] == [False, True]
    assert printed.count("| d.pth.tar") == 2
    model, info = load_detector(ckpt)
    for row, run_dir in zip(rows, runs):
        traces = load_run(run_dir)
        # Each row's numbers are its own run's, recomputed here: the baseline 1 - mean_t td[:, t, 0] (its ROC-AUC
        # by Mann-Whitney: 0.6730 and 0.6698) and the detector's p_noisy (0.6605; 0.6681 with T=14 resampled to
        # 10, 0.6683 without), removing the run's realised noise rate (38/120, 48/120). Swapped runs, a baseline
        # on the wrong channel or sign, or traces scored without resampling miss these.
        flipped, ratio = traces.label_flipped, float(traces.label_flipped.mean())
        base_score = 1.0 - traces.curves.mean(axis=1)
        pos, neg = base_score[flipped][:, None], base_score[~flipped][None, :]
        auc = ((pos > neg).sum() + 0.5 * (pos == neg).sum()) / (pos.size * neg.size)
        base = detection_metrics(base_score, flipped, remove_ratio=ratio)
        detector = detection_metrics(score(model, info, traces.curves)[0], flipped, remove_ratio=ratio)
        assert row["run"] == str(run_dir) and row["remove_ratio"] == ratio and row["rows"] == 120
        assert row["mean_prob_metrics"]["roc_auc"] == pytest.approx(auc, abs=1e-12)
        assert row["mean_prob_metrics"] == pytest.approx(base.as_dict(), abs=1e-12)
        assert row["detector_metrics"] == pytest.approx(detector.as_dict(), abs=1e-6)
    assert [r["mean_prob_metrics"]["num_flipped"] for r in rows] == [38, 48]


def test_speed_benchmark_scores_checkpoints_and_fresh_detectors(tmp_path):
    ckpt = tmp_path / "d.pth.tar"
    torch.save(make_checkpoint(LSTMDetector(features=("prob", "margin")).state_dict(), epoch=1, best_prec=0,
                               optimizer_state={}, variant="pooled", train_length=6, features=("prob", "margin")), ckpt)
    out = tmp_path / "s.json"
    printed = run("benchmarks/detector_speed.py", "--n", "64", "--T", "10", "--threads", "1", "--precisions",
                  "float32", "--detectors", str(ckpt), "--lengths", "4", "--out", str(out))
    rows = json.loads(out.read_text())["rows"]
    assert [(r["detector"], r["features"], r["train_length"], r["n"]) for r in rows] == \
        [("d.pth.tar", "prob,margin", 6, 64), ("fresh T=4", rows[1]["features"], 4, 64)]
    assert "traces/s" in printed and all(r["traces_per_s"] > 0 for r in rows)
