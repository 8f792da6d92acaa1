"""Smoke tests of the detector benchmark scripts on tiny synthetic runs (they must keep running)."""
import json
import subprocess
import sys
from pathlib import Path

import torch

from detector_models.lstm import LSTMDetector
from detector_models.predict import make_checkpoint
from tests.detector_synth import write_run

ROOT = Path(__file__).resolve().parents[1]
ENV = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}


def run(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_transfer_benchmark_prints_detector_and_baseline(tmp_path):
    runs = [write_run(tmp_path / f"r{t}", n=120, t=t, seed=t) for t in (10, 14)]
    ckpt = tmp_path / "d.pth.tar"
    torch.save(make_checkpoint(LSTMDetector().state_dict(), epoch=1, best_prec=0, optimizer_state={},
                               variant="pooled", train_length=10), ckpt)
    out = tmp_path / "t.json"
    printed = run("benchmarks/detector_transfer.py", "--detector", str(ckpt), "--runs", *map(str, runs),
                  "--out", str(out))
    rows = json.loads(out.read_text())
    assert len(rows) == 2 and [r["resampled"] for r in rows] == [False, True]
    assert printed.count("| d.pth.tar") == 2 and 0.5 < rows[0]["mean_prob_metrics"]["roc_auc"] <= 1


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
