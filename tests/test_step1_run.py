"""Formats of a real STEP 1 run (digits, 20 epochs), and the signal its traces carry."""
import json
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from labeltrace.epoch_file import order_channels
from tests.conftest import DIGITS_EPOCHS

N_TRAIN, C = 1497, 10


@pytest.fixture(scope="module")
def traces(digits_run):
    with np.load(digits_run / "training_dynamics.npz") as z:
        return z["td"], z["labels"]


@pytest.fixture(scope="module")
def meta(digits_run):
    return torch.load(digits_run / "metadata.pth", weights_only=True)


def test_files_present(digits_run):
    names = {"training_dynamics.npz", "metadata.pth", "model.pth", "model.pth.last", "train_log.csv",
             "results_valid.csv", "cmd.txt", "config.json"}
    assert names <= {p.name for p in digits_run.iterdir()}
    assert not (digits_run / "td_raw.npy").exists()
    assert not [p for p in digits_run.iterdir() if p.name.endswith(".tmp")]


def test_td_shapes_and_dtypes(traces):
    td, labels = traces
    assert td.shape == (N_TRAIN, DIGITS_EPOCHS, C) and td.dtype == np.float16
    assert labels.shape == (N_TRAIN, C) and labels.dtype == np.int16
    np.testing.assert_allclose(td.astype(np.float32).sum(2), 1.0, atol=1e-2)


def test_labels_rows_are_permutations_led_by_assigned(traces, meta):
    _, labels = traces
    assert np.array_equal(np.sort(labels, 1), np.tile(np.arange(C), (N_TRAIN, 1)))
    assert np.array_equal(labels[:, 0], meta["assigned_targets"].numpy()[meta["train_indices"].numpy()])


def test_other_channels_sorted_by_mean(traces):
    td, _ = traces
    mean = td[:, :, 1:].astype(np.float32).mean(1)
    # Sorted on float16-rounded raw values; allow float16 rounding of the recomputed means.
    assert np.all(np.diff(mean, axis=1) <= 2e-3)


def test_channel0_is_assigned_label_probability(digits_run, traces, meta):
    """Recompute the last epoch's eval pass from model.pth.last: channel 0 at T-1 is p(assigned)."""
    from datasets.registry import load_dataset
    from models.registry import build_model
    from pipeline.loaders import make_feed
    from core.inference import inference_copy
    from core.passes import predict_probs
    from core.seed import epoch_generator

    td, _ = traces
    b = load_dataset("digits", None)
    model = build_model("cnn", 3, num_classes=10, in_channels=1, image_size=8)
    model.load_state_dict(torch.load(digits_run / "model.pth.last", weights_only=True))
    feed = make_feed(b.train, b, train=True, shuffle=False, batch_size=512, loader="fast", device=torch.device("cpu"))
    bf16 = json.loads((digits_run / "config.json").read_text())["precision"] == "bf16"  # as the run computed
    # The recording pass's own fused copy: under bf16, an unfused model rounds its logits differently (~1e-2).
    probs = predict_probs(inference_copy(model), feed, gen=epoch_generator(1, -DIGITS_EPOCHS), amp=bf16,
                          progress=False)
    assigned = meta["assigned_targets"].numpy()
    np.testing.assert_allclose(td[:, -1, 0], probs[np.arange(N_TRAIN), assigned], atol=2e-3)


def test_metadata_consistent(meta, digits_run):
    assert set(meta) == {"train_indices", "valid_indices", "true_targets", "assigned_targets", "label_flipped"}
    assert meta["label_flipped"].dtype == torch.bool
    assert torch.equal(meta["label_flipped"], meta["true_targets"] != meta["assigned_targets"])
    assert torch.equal(meta["train_indices"], torch.arange(N_TRAIN)) and len(meta["valid_indices"]) == 0
    config = json.loads((digits_run / "config.json").read_text())
    assert config["realised_noise_rate"] == pytest.approx(meta["label_flipped"].float().mean().item())
    assert 0.17 < config["realised_noise_rate"] < 0.23


def test_logs(digits_run):
    log = pd.read_csv(digits_run / "train_log.csv")
    assert list(log.columns) == ["epoch", "train_error", "train_loss", "valid_error", "valid_top5_error", "valid_loss"]
    assert log["epoch"].tolist() == list(range(1, DIGITS_EPOCHS + 1))
    valid = pd.read_csv(digits_run / "results_valid.csv")
    assert list(valid.columns) == ["index", "Loss", "Prediction", "Confidence", "Label"] and len(valid) == 300
    assert (valid["Prediction"] != valid["Label"]).mean() == pytest.approx(log["valid_error"].min())
    assert (digits_run / "cmd.txt").read_text().startswith(sys.executable)


def test_mean_assigned_probability_separates_flipped(traces, meta):
    """The sanity figure: measured 0.985 at seed 1 (0.99 at seed 0, 40 epochs)."""
    td, _ = traces
    auc = roc_auc_score(meta["label_flipped"].numpy(), -td[:, :, 0].astype(np.float32).mean(1))
    assert auc > 0.95


def test_default_records_the_training_pass(tmp_path, meta):
    """``--record train`` (the default): same layout and noisy labels as the eval-pass run, and traces that
    separate the flipped samples at least as well (the grid: equal or better in all 10 settings)."""
    from runner import get_args_parser, main

    main(get_args_parser().parse_args([
        "--dataset", "digits", "--seed", "1", "--noise_ratio", "0.2", "--noise_type", "uniform",
        "--num_epochs", str(DIGITS_EPOCHS), "--save", str(tmp_path), "--threads", "1", "--no_progress"]))
    run_dir = tmp_path / "digits_cnn3_percmislabeled0.2_uniform" / "computation4td_seed1"
    assert json.loads((run_dir / "config.json").read_text())["record"] == "train"
    with np.load(run_dir / "training_dynamics.npz") as z:
        td, labels = z["td"].astype(np.float32), z["labels"]
    assert td.shape == (N_TRAIN, DIGITS_EPOCHS, 10) and labels.shape == (N_TRAIN, 10)
    np.testing.assert_array_equal(labels[:, 0], meta["assigned_targets"].numpy())
    np.testing.assert_allclose(td.sum(2), 1.0, atol=1e-2)
    auc = roc_auc_score(meta["label_flipped"].numpy(), -td[:, :, 0].mean(1))
    assert auc > 0.97  # measured 0.998 at seed 1 (the eval pass: 0.995)


def test_rerun_is_a_noop(digits_run, capsys):
    from runner import get_args_parser, main
    save = digits_run.parents[1]
    before = (digits_run / "training_dynamics.npz").stat().st_mtime_ns
    main(get_args_parser().parse_args(["--dataset", "digits", "--seed", "1", "--num_epochs", str(DIGITS_EPOCHS),
                                       "--save", str(save), "--threads", "1", "--no_progress", "--record", "eval"]))
    assert "already complete" in capsys.readouterr().out
    assert (digits_run / "training_dynamics.npz").stat().st_mtime_ns == before


def test_order_channels_hand_computed():
    raw = np.array([[[0.1, 0.2, 0.7], [0.3, 0.4, 0.3]]], dtype=np.float32)  # N=1, T=2, C=3; means .2 .3 .5
    td, labels = order_channels(raw, np.array([1]))
    assert labels.tolist() == [[1, 2, 0]]
    np.testing.assert_allclose(td[0].astype(np.float32), [[0.2, 0.7, 0.1], [0.4, 0.3, 0.3]], atol=1e-3)
