"""STEP 3 and data debugging end to end on digits: a real STEP 1 run (conftest), a detector trained here,
removal + retraining with the references, relabelling; every summary checked against the files it describes.

Floors measured (seed 1, 20 STEP 1 epochs, 2-epoch in-run detector): precision at a 20% cut 0.89 (the best
possible is 279/300 = 0.93), remaining noise 0.186 -> ~0.01.
"""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from labeltrace.errors import UsageError
from labeltrace.predict import make_checkpoint
from labeltrace.traces import load_run
from detector_models.train import DetectorRecipe, train_detector

ROOT = Path(__file__).resolve().parents[1]
EXP = "digits_cnn3_percmislabeled0.2_uniform"
EPOCHS = "3"
PRECISION_FLOOR = 0.80
COMMON = ["--dataset", "digits", "--seed", "1", "--noise_ratio", "0.2", "--noise_type", "uniform",
          "--num_epochs", EPOCHS, "--threads", "1", "--no_progress"]


@pytest.fixture(scope="module")
def save(digits_run, tmp_path_factory) -> Path:
    """A save folder of our own holding a copy of the STEP 1 run."""
    root = tmp_path_factory.mktemp("denoise")
    shutil.copytree(digits_run, root / EXP / "computation4td_seed1")
    return root


@pytest.fixture(scope="module")
def detector(save) -> Path:
    run = load_run(save / EXP / "computation4td_seed1")
    result = train_detector(run.curves, run.label_flipped, DetectorRecipe(epochs=2, seed=0), log=lambda s: None)
    path = save / "digits_0.2_lstm_detector.pth.tar"
    torch.save(make_checkpoint(result.state_dict, epoch=result.best_epoch, best_prec=result.val_accuracy,
                               optimizer_state=result.optimizer_state, variant=result.variant,
                               train_length=result.train_length), path)
    return path


def denoise(save, *flags):
    from denoise import get_args_parser, main

    return main(get_args_parser().parse_args([*COMMON, "--save", str(save), *flags]))


def data_debug(save, *flags):
    from data_debug import get_args_parser, main

    return main(get_args_parser().parse_args([*COMMON, "--save", str(save), *flags]))


@pytest.fixture(scope="module")
def all_runs(save, detector):
    return {s["removal"]: s for s in denoise(save, "--detector", str(detector), "--remove_ratio", "0.2",
                                             "--removal", "all")}


@pytest.fixture(scope="module")
def metadata(save):
    return torch.load(save / EXP / "computation4td_seed1" / "metadata.pth", weights_only=True)


def test_run_folders_and_files(all_runs, save):
    root = save / EXP / "prune4retrain_seed1"
    expected = {"detector": root / "detector_digits_0.2_lstm_detector" / "percremove0.2",
                "random": root / "detector_random" / "percremove0.2",
                "oracle": root / "detector_oracle" / "percremoveflipped", "none": root / "detector_none" / "percremove0.0"}
    for removal, folder in expected.items():
        assert Path(all_runs[removal]["run_dir"]) == folder
        names = {p.name for p in folder.iterdir()}
        assert {"model.pth", "model.pth.last", "train_log.csv", "results_valid.csv", "cmd.txt", "config.json",
                "summary.json", "removed.csv"} <= names
        assert not [n for n in names if n.endswith(".tmp")]
    table = pd.read_csv(root / "comparison_detector_digits_0.2_lstm_detector_percremove0.2.csv")
    assert table["run"].tolist() == ["noisy (no removal)", "pruned (detector)", "random removal",
                                     "oracle (flipped removed)"]


def test_detector_removes_mostly_flipped_samples(all_runs):
    s = all_runs["detector"]
    assert s["num_removed"] == 1497 - int(1497 * 0.8) == s["detection"]["num_removed"]
    assert s["precision_at_cut"] >= PRECISION_FLOOR
    assert s["detection"]["roc_auc"] > 0.95
    assert s["noise_rate_after"] < 0.5 * s["noise_rate_before"]
    assert all_runs["random"]["precision_at_cut"] < 0.35  # the control removes at about the base rate
    assert all_runs["oracle"]["noise_rate_after"] == 0 and all_runs["none"]["num_removed"] == 0


@pytest.mark.parametrize("removal", ["detector", "random", "oracle", "none"])
def test_summary_agrees_with_files(all_runs, metadata, removal):
    s = all_runs[removal]
    folder = Path(s["run_dir"])
    on_disk = json.loads((folder / "summary.json").read_text())
    assert on_disk["removed_flipped"] == s["removed_flipped"]
    removed = pd.read_csv(folder / "removed.csv")
    flipped = metadata["label_flipped"].numpy()
    assert len(removed) == s["num_removed"] and s["num_kept"] == 1497 - s["num_removed"]
    assert removed["index"].is_unique
    assert int(flipped[removed["index"]].sum()) == s["removed_flipped"] == int(removed["label_flipped"].sum())
    keep = np.setdiff1d(np.arange(1497), removed["index"])
    assert s["noise_rate_after"] == pytest.approx(flipped[keep].mean())
    if removal == "detector":  # the removed ones are the highest p_noisy, most suspicious first
        assert removed["p_noisy"].is_monotonic_decreasing
    log = pd.read_csv(folder / "train_log.csv")
    assert list(log.columns) == ["epoch", "train_error", "train_loss", "valid_error", "valid_top5_error", "valid_loss"]
    assert len(log) == int(EPOCHS)
    assert s["best_test_accuracy"] == pytest.approx(1 - log["valid_error"].min())
    assert s["last_test_accuracy"] == pytest.approx(1 - log["valid_error"].iloc[-1])
    results = pd.read_csv(folder / "results_valid.csv")
    assert (results["Prediction"] == results["Label"]).mean() == pytest.approx(s["best_test_accuracy"])
    config = json.loads((folder / "config.json").read_text())
    assert config["batch_size"] == s["batch_size"]
    assert config["recipe"]["milestones"] == [0.5] and config["recipe"]["lr"] == 0.1
    assert config["recipe"]["weight_decay"] == 1e-4
    if removal in ("detector", "random"):
        assert s["batch_size"] == int(256 * (1 - 0.2))


def test_finished_run_is_not_rerun(save, detector, all_runs):
    again = denoise(save, "--detector", str(detector), "--remove_ratio", "0.2")
    assert again[0] == json.loads((Path(all_runs["detector"]["run_dir"]) / "summary.json").read_text())


def test_relabel_with_ground_truth(save, detector, metadata):
    s = data_debug(save, "--detector", str(detector), "--relabel_ratio", "0.2")
    folder = Path(s["run_dir"])
    assert folder == save / EXP / "relabel_seed1" / "detector_digits_0.2_lstm_detector" / "percrelabel0.2_truth"
    labels = json.loads((folder / "corrected_labels.json").read_text())
    table = pd.read_csv(folder / "corrected_labels.csv")
    true, assigned = metadata["true_targets"].numpy(), metadata["assigned_targets"].numpy()
    assert len(labels) == len(table) == 1497 and table["index"].tolist() == list(range(1497))
    assert table["corrected_label"].tolist() == labels
    top = table.sort_values("p_noisy", kind="stable").index[1497 - s["num_relabelled"]:]
    assert set(table.index[table["relabelled"] == 1]) == set(top) and s["num_relabelled"] == 300
    assert np.array_equal(np.asarray(labels)[top], true[top])
    rest = np.setdiff1d(np.arange(1497), top)
    assert np.array_equal(np.asarray(labels)[rest], assigned[rest])
    assert s["noise_rate_before"] == pytest.approx(np.mean(assigned != true))
    assert s["noise_rate_after"] == pytest.approx(np.mean(np.asarray(labels) != true))
    assert s["noise_rate_after"] < 0.5 * s["noise_rate_before"] and s["broken"] == 0
    assert json.loads((folder / "summary.json").read_text())["num_changed"] == int(table["changed"].sum())


def test_relabel_with_the_clean_part_model_and_retrain(save, detector, all_runs):
    s = data_debug(save, "--detector", str(detector), "--relabel_ratio", "0.2", "--label_source", "model",
                   "--retrain")
    folder = Path(s["run_dir"])
    assert s["label_model"] == all_runs["detector"]["run_dir"]  # reuses the finished pruned retraining
    table = pd.read_csv(folder / "corrected_labels.csv")
    assert s["noise_rate_after"] < s["noise_rate_before"]
    assert s["fixed"] > 0.5 * s["num_relabelled"]
    log = pd.read_csv(folder / "train_log.csv")
    assert s["best_test_accuracy"] == pytest.approx(1 - log["valid_error"].min())
    assert json.loads((folder / "config.json").read_text())["batch_size"] == 256
    assert s["num_changed"] == int(table["changed"].sum())


def test_baseline_score_as_detector(save):
    out = denoise(save, "--detector", "baseline:confidence", "--remove_ratio", "0.1", "--num_epochs", "1")
    assert "detector_baseline_confidence/percremove0.1" in out[0]["run_dir"]
    assert out[0]["precision_at_cut"] > PRECISION_FLOOR


@pytest.mark.parametrize("flags,message", [
    (["--detector", "/nonexistent/d.pth.tar"], "no such detector checkpoint"),
    (["--detector", "BAD_CKPT"], "weights do not fit"),
    (["--detector", "baseline:nope"], "unknown baseline 'nope'; valid:"),
    (["--detector", "baseline:confidence", "--remove_ratio", "1.0"], "--remove_ratio: expected a value in [0, 1)"),
    (["--detector", "baseline:confidence", "--remove_ratio", "-0.1"], "--remove_ratio: expected a value in [0, 1)"),
    (["--detector", "baseline:confidence", "--noise_ratio", "0.4"],
     "no finished STEP 1 run for these settings: expected "),
    (["--detector", "baseline:confidence", "--max_train", "1000"], "pass the STEP 1 run's --data/--max_train"),
    (["--detector", "baseline:confidence", "--removal", "bogus"], "--removal: unknown removal bogus; valid:"),
])
def test_bad_input(save, flags, message, tmp_path):
    bad = tmp_path / "bad.pth.tar"
    torch.save({"epoch": 1, "state_dict": {"lstm.weight_ih_l0": torch.zeros(3, 3)}}, bad)
    flags = [str(bad) if f == "BAD_CKPT" else f for f in flags]
    with pytest.raises(UsageError, match=re.escape(message)):
        denoise(save, *flags)


def test_missing_run_names_the_folder(save):
    with pytest.raises(UsageError) as exc:
        denoise(save, "--detector", "baseline:confidence", "--seed", "5")
    assert str(save / EXP / "computation4td_seed5" / "training_dynamics.npz") in str(exc.value)


def run_script(*args):
    return subprocess.run(["bash", *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={"PYTHON": sys.executable, "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})


def test_shell_script_one_line_error_and_usage(save):
    r = run_script("small_dataset_sym_denoise.sh", "none", "digits", "1", "0.2", "uniform", str(save),
                   "/nonexistent/d.pth.tar", "0.2", "--threads", "1")
    assert r.returncode == 2 and r.stderr.startswith("error: ") and r.stderr.strip().count("\n") == 0
    assert "/nonexistent/d.pth.tar" in r.stderr
    for script in ("small_dataset_sym_denoise.sh", "large_dataset_denoise.sh"):
        r = run_script(script, "none", "digits")
        assert r.returncode == 2 and "usage" in r.stderr


def test_large_dataset_real_noise_no_ground_truth(tmp_path):
    """A webvision50-layout folder (real noise): no ground truth said plainly, the large-dataset folder names,
    relabelling by the clean-part model, labels keyed by path."""
    from runner import get_args_parser, main
    from tests.conftest import write_image_folder

    write_image_folder(tmp_path / "data" / "webvision50")
    net = ["--net_type", "cnn", "--depth", "1", "--image_size", "12", "--threads", "1", "--no_progress"]
    main(get_args_parser().parse_args(["--data", str(tmp_path / "data"), "--dataset", "webvision50", "--seed", "1",
                                       "--num_epochs", "2", "--save", str(tmp_path / "runs"), *net]))
    r = run_script("large_dataset_denoise.sh", str(tmp_path / "data"), "webvision50", "1", str(tmp_path / "runs"),
                   "baseline:confidence", "0.25", "--num_epochs", "1", *net)
    assert r.returncode == 0, r.stderr
    assert "no ground truth" in r.stdout
    folder = tmp_path / "runs" / "webvision50_cnn1" / "cnn1_prune4retrain_seed1" / "detector_baseline_confidence" / \
        "percremove0.25"
    s = json.loads((folder / "summary.json").read_text())
    assert s["detection"] is None and "no ground truth" in s["detection_note"] and s["noise_rate_after"] is None
    assert s["num_removed"] == 3 and json.loads((folder / "config.json").read_text())["recipe"]["milestones"] == [0.33, 0.67]
    from data_debug import get_args_parser as dd_parser, main as dd_main

    d = dd_main(dd_parser().parse_args(["--data", str(tmp_path / "data"), "--dataset", "webvision50", "--seed", "1",
                                        "--save", str(tmp_path / "runs"), "--detector", "baseline:confidence",
                                        "--relabel_ratio", "0.25", "--num_epochs", "1", *net]))
    assert d["label_source"] == "model" and d["label_model"] == str(folder) and d["noise_rate_after"] is None
    by_path = json.loads((Path(d["run_dir"]) / "corrected_labels_by_path.json").read_text())
    table = pd.read_csv(Path(d["run_dir"]) / "corrected_labels.csv")
    assert list(by_path) == table["path"].tolist() and list(by_path.values()) == table["corrected_label"].tolist()
    with pytest.raises(UsageError, match="no ground truth"):
        dd_main(dd_parser().parse_args(["--data", str(tmp_path / "data"), "--dataset", "webvision50", "--seed", "1",
                                        "--save", str(tmp_path / "runs"), "--detector", "baseline:confidence",
                                        "--label_source", "truth", *net]))


def test_quickstart_demo_chain(tmp_path):
    """The README's main command, shortened: STEP 1, a detector, STEP 3 with the references, relabelling."""
    from pipeline.demo import get_args_parser, main

    main(get_args_parser().parse_args(["--save", str(tmp_path), "--num_epochs", "3", "--retrain_epochs", "1",
                                       "--detector", "baseline:confidence", "--threads", "1"]))
    # STEP 3 and data debugging list and show what they found, ranked as the cut that removed/relabelled it.
    exp = tmp_path / "digits_cnn3_percmislabeled0.2_uniform"
    for folder in (exp / "prune4retrain_seed11" / "detector_baseline_confidence",
                   exp / "relabel_seed11" / "detector_baseline_confidence" / "percrelabel0.2_truth"):
        issues = pd.read_csv(folder / "label_issues.csv")
        assert len(issues) == 1497 and (folder / "label_issues.png").stat().st_size > 20_000
        assert issues["p_noisy"].is_monotonic_decreasing and issues["p_noisy"].equals(issues["confidence"])
    removed = pd.read_csv(exp / "prune4retrain_seed11" / "detector_baseline_confidence" / "percremove0.2" /
                          "removed.csv")
    assert set(removed["index"]) == set(issues["index"][:300])  # the 300 removed are the 300 listed first
    table = pd.read_csv(tmp_path / "quickstart_table.csv")
    assert table["run"].tolist() == ["noisy (no removal)", "pruned (detector)",
                                     "relabelled (top 20%, ground truth)", "random removal",
                                     "oracle (flipped removed)"]
    # Test accuracy at the last epoch only: a best epoch would be chosen on the test set itself.
    assert table["last_test_acc"].between(0, 1).all() and "best_test_acc" not in table
    # Every number of the table from the STEP 1 run folder, by hand: the detector is -confidence (mean assigned
    # probability); ROC-AUC by Mann-Whitney; the cut removes 1497 - int(1497 * 0.8) = 300, the stable order's
    # last 300. A detector scoring other rows, another cut, or a noise rate over the wrong set misses these.
    run = load_run(tmp_path / "digits_cnn3_percmislabeled0.2_uniform" / "computation4td_seed11")
    flipped, p_noisy = run.label_flipped, -run.td[:, :, 0].astype(np.float64).mean(1)
    n, f = len(flipped), int(flipped.sum())  # 1497, 303 (seed 11)
    pos, neg = p_noisy[flipped][:, None], p_noisy[~flipped][None, :]
    auc = ((pos > neg).sum() + 0.5 * (pos == neg).sum()) / (pos.size * neg.size)  # 0.9990 at 3 epochs
    hit = int(flipped[np.argsort(p_noisy, kind="stable")[int(n * 0.8):]].sum())  # 293 of the 300 removed
    rows = table.set_index("run")
    assert rows["roc_auc"].iloc[1] == rows["roc_auc"].iloc[2] == pytest.approx(auc, abs=1e-12)
    assert rows.loc["noisy (no removal)", "noise_after"] == pytest.approx(f / n)  # 303 / 1497 = 0.2024
    assert rows.loc["pruned (detector)", ["removed", "flipped_removed"]].tolist() == [300, hit]
    assert rows.loc["pruned (detector)", "noise_after"] == pytest.approx((f - hit) / (n - 300))  # 10/1197
    # Relabelling the same 300 with the truth fixes the flipped among them and breaks nothing: 10 / 1497.
    assert rows.loc["relabelled (top 20%, ground truth)", "noise_after"] == pytest.approx((f - hit) / n)
    random_hit = rows.loc["random removal", "flipped_removed"]
    assert rows.loc["random removal", "removed"] == 300 and 0 < random_hit < hit
    assert rows.loc["random removal", "noise_after"] == pytest.approx((f - random_hit) / (n - 300))
    assert rows.loc["oracle (flipped removed)", ["removed", "flipped_removed", "noise_after"]].tolist() == [f, f, 0]
