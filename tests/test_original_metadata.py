"""Run folders whose metadata.pth has only the four keys of the original README (train_indices, valid_indices,
true_targets, label_flipped): assigned_targets is rebuilt from the traces' labels[:, 0], and every stage loads
them as it loads our five-key folders (docs/formats.md)."""
import shutil
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from labeltrace.errors import UsageError
from labeltrace.runfiles import assigned_from_traces, read_metadata
from labeltrace.traces import load_run

FOUR_KEYS = ("train_indices", "valid_indices", "true_targets", "label_flipped")
EXP = "digits_cnn3_percmislabeled0.2_uniform"


def four_key_copy(run: Path, dest: Path) -> Path:
    """A copy of a STEP 1 run folder whose metadata.pth keeps the original README's four keys only."""
    shutil.copytree(run, dest)
    meta = torch.load(run / "metadata.pth", weights_only=True)
    torch.save(OrderedDict((k, meta[k]) for k in FOUR_KEYS), dest / "metadata.pth")
    return dest


@pytest.fixture(scope="module")
def runs(digits_run, tmp_path_factory):
    """(the five-key run, its four-key copy under a save folder of the same settings)."""
    save = tmp_path_factory.mktemp("four_keys")
    return digits_run, four_key_copy(digits_run, save / EXP / "computation4td_seed1")


def test_assigned_targets_rebuilt_from_the_traces(runs):
    five, four = runs
    assert set(torch.load(four / "metadata.pth", weights_only=True)) == set(FOUR_KEYS)
    rebuilt, original = read_metadata(four / "metadata.pth"), read_metadata(five / "metadata.pth")
    np.testing.assert_array_equal(rebuilt.assigned_targets, original.assigned_targets)
    assert original.label_flipped.any()  # the rebuilt labels differ from true_targets exactly where flipped
    np.testing.assert_array_equal(rebuilt.assigned_targets != rebuilt.true_targets, original.label_flipped)
    a, b = load_run(four), load_run(five)
    np.testing.assert_array_equal(a.assigned_targets, b.assigned_targets)
    np.testing.assert_array_equal(a.label_flipped, b.label_flipped)


def test_rows_outside_the_traces_keep_their_true_label():
    """A held-out validation part (positions 1 and 4) has no trace: it keeps true_targets."""
    labels = np.array([[1, 0], [1, 2], [0, 1], [2, 0]], dtype=np.int16)  # column 0: the trained-with label
    assigned = assigned_from_traces(labels, np.array([0, 2, 3, 5]), np.array([0, 1, 2, 0, 1, 2]), path=Path("m"))
    np.testing.assert_array_equal(assigned, [1, 1, 1, 0, 1, 2])
    assert assigned.dtype == np.int64


def test_four_keys_without_traces_is_a_one_line_error(runs, tmp_path):
    _, four = runs
    shutil.copy(four / "metadata.pth", tmp_path / "metadata.pth")
    with pytest.raises(UsageError, match="has no assigned_targets .* no training_dynamics.npz beside it"):
        read_metadata(tmp_path / "metadata.pth")


def test_scoring_and_step3_load_a_four_key_run(runs):
    """STEP 3 finds, checks and scores the four-key run as the five-key one, and retrains the oracle on it."""
    from denoise import get_args_parser, main
    from labeltrace.scoring import score_run
    from pipeline.scoring import step3_inputs

    five, four = runs
    flags = ["--dataset", "digits", "--seed", "1", "--noise_ratio", "0.2", "--save", str(four.parents[1]),
             "--num_epochs", "1", "--threads", "1", "--no_progress"]
    step1 = step3_inputs(get_args_parser().parse_args(flags)).step1
    original = read_metadata(five / "metadata.pth")
    np.testing.assert_array_equal(step1.assigned, original.assigned_targets)
    np.testing.assert_array_equal(step1.flipped_rows, load_run(five).label_flipped)
    np.testing.assert_allclose(score_run("baseline:aum", step1.traces).p_noisy,
                               score_run("baseline:aum", load_run(five)).p_noisy)
    [summary] = main(get_args_parser().parse_args([*flags, "--removal", "oracle"]))
    assert summary["num_removed"] == summary["removed_flipped"] == int(original.label_flipped.sum())
    assert summary["noise_rate_after"] == 0.0


def test_detector_trains_on_a_four_key_run(runs, tmp_path):
    from train_detector import get_args_parser, main

    _, four = runs
    out = tmp_path / "d.pth.tar"
    result = main(get_args_parser().parse_args(["--files_path", str(four), "--epochs", "1", "--out", str(out),
                                                "--features", "prob", "--no-anchor"]))
    assert out.is_file() and 0.5 < result["val_auc"] <= 1.0
