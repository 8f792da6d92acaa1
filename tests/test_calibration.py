"""Self-calibration (``--calibrate``): labels flipped on top in STEP 1, a detector trained on them alone, STEP 3
ranking and retraining on the data's own labels only."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from datasets.noise import corrupt_labels, inject_labels
from labeltrace.metrics import num_kept
from labeltrace.traces import load_run

ROOT = Path(__file__).resolve().parents[1]
RUN = "digits_cnn3_percmislabeled0.2_uniform_calib0.1/computation4td_seed1"
STEP1 = ["--dataset", "digits", "--seed", "1", "--noise_ratio", "0.2", "--noise_type", "uniform", "--threads", "1",
         "--no_progress"]


def test_inject_labels_exact_count_always_wrong_and_seeded():
    true = np.arange(1000) % 10
    noisy = corrupt_labels(true, ratio=0.2, noise_type="uniform", num_classes=10, split_seed=3)
    rows = np.arange(100, 1000)  # positions 0-99 play the validation samples
    assigned, injected = inject_labels(noisy.assigned, true, ratio=0.1, rows=rows, num_classes=10, split_seed=3)
    assert injected.sum() == 90  # round(0.1 * 900), exactly
    assert not injected[:100].any()  # validation labels untouched
    assert np.all(assigned[injected] != noisy.assigned[injected])  # every injected label changed ...
    assert np.all(assigned[injected] != true[injected])  # ... and is wrong, never a repaired one
    assert np.array_equal(assigned[~injected], noisy.assigned[~injected])  # the rest as they were
    again = inject_labels(noisy.assigned, true, ratio=0.1, rows=rows, num_classes=10, split_seed=3)
    assert np.array_equal(again[0], assigned) and np.array_equal(again[1], injected)
    # Every allowed class is drawn: with 10 classes, 8 or 9 targets per sample; 90 draws reach all 10 classes.
    assert set(assigned[injected]) == set(range(10))


def test_inject_labels_needs_three_classes():
    with pytest.raises(ValueError, match="--calibrate: needs at least 3 classes"):
        inject_labels(np.zeros(10, int), np.zeros(10, int), ratio=0.1, rows=np.arange(10), num_classes=2,
                      split_seed=0)


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory) -> Path:
    """A 20-epoch digits run with 20% uniform noise and 10% injected on top."""
    from runner import get_args_parser, main

    save = tmp_path_factory.mktemp("calibrate")
    main(get_args_parser().parse_args([*STEP1, "--num_epochs", "20", "--calibrate", "0.1", "--save", str(save)]))
    return save


def test_step1_records_the_injected_labels_and_keeps_its_own_noise(calibrated):
    meta = torch.load(calibrated / RUN / "metadata.pth", weights_only=True)
    rows = meta["train_indices"].numpy()
    injected = meta["label_injected"].numpy()
    assert injected.dtype == bool and injected.sum() == round(0.1 * len(rows)) == 150
    assert set(np.flatnonzero(injected)) <= set(rows)
    true, assigned = meta["true_targets"].numpy(), meta["assigned_targets"].numpy()
    own = corrupt_labels(true, ratio=0.2, noise_type="uniform", num_classes=10, split_seed=1)
    assert np.array_equal(assigned[~injected], own.assigned[~injected])  # the data's noise, as without --calibrate
    assert np.array_equal(meta["label_flipped"].numpy(), assigned != true)
    config = json.loads((calibrated / RUN / "config.json").read_text())
    assert config["injected"] == 150 and config["calibrate"] == 0.1
    assert config["realised_noise_rate"] == pytest.approx(own.flipped[rows].mean())  # the data's own rate


def test_detector_trained_on_injected_labels_finds_the_data_noise(calibrated, tmp_path):
    """Self-calibration's floor on seeded digits noise: a fresh detector sees only the 150 injected labels, never
    the 279 flipped by the noise, and ranks those (measured: ROC-AUC 0.99+ on this run)."""
    out = tmp_path / "calib.pth.tar"
    done = subprocess.run([sys.executable, str(ROOT / "train_detector.py"), "--files_path", str(calibrated / RUN),
                           "--target", "injected", "--epochs", "5", "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "10.0% injected" in done.stdout
    from labeltrace.predict import load_detector, score

    own = load_run(calibrated / RUN).without_injected()
    assert len(own.td) == 1497 - 150 and not own.label_injected.any()
    p_noisy, _ = score(*load_detector(out), own.td)
    assert roc_auc_score(own.label_flipped, p_noisy) > 0.97


def test_step3_leaves_the_injected_labels_out(calibrated):
    from denoise import get_args_parser, main

    args = get_args_parser().parse_args([*STEP1, "--num_epochs", "2", "--calibrate", "0.1", "--save",
                                         str(calibrated), "--detector", "baseline:aum", "--remove_ratio", "0.2"])
    summary = main(args)
    row = summary[0] if isinstance(summary, list) else summary
    meta = torch.load(calibrated / RUN / "metadata.pth", weights_only=True)
    injected = set(np.flatnonzero(meta["label_injected"].numpy()))
    assert row["num_samples"] == 1497 - 150 and row["num_removed"] == 1347 - num_kept(1347, 0.2)
    removed = set(np.loadtxt(Path(row["run_dir"]) / "removed.csv", delimiter=",", skiprows=1, usecols=0, dtype=int))
    assert not removed & injected
    assert row["detection"]["roc_auc"] > 0.95  # AUM on the data's own noise, injected rows not counted


def test_target_injected_on_a_plain_run_is_a_one_line_error(digits_run, tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "train_detector.py"), "--files_path", str(digits_run),
                           "--target", "injected", "--out", str(tmp_path / "d.pth.tar")],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2 and "no injected labels" in done.stderr and "--calibrate" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "d.pth.tar").exists()


def test_calibrate_out_of_range_writes_nothing(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "runner.py"), *STEP1, "--calibrate", "0.7", "--save",
                           str(tmp_path / "runs")], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2 and "--calibrate" in done.stderr and not (tmp_path / "runs").exists()
