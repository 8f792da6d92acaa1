"""The recorder and the ranking functions refuse bad input in one line instead of recording or returning nonsense."""
import numpy as np
import pytest
import torch

from labeltrace import DynamicsRecorder
from labeltrace.api import find_label_issues, get_label_quality_scores


@pytest.fixture
def recorder(tmp_path):
    return DynamicsRecorder(tmp_path / "r", labels=np.array([0, 1, 2]), num_classes=3)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_update_refuses_non_finite_logits(recorder, tmp_path, bad):
    logits = torch.zeros(3, 3)
    logits[1, 2] = bad
    with pytest.raises(ValueError, match="outputs hold 1 NaN or infinite values"):
        recorder.update([0, 1, 2], logits)
    assert not (tmp_path / "r").exists()  # refused before anything was written


def test_update_refuses_float_indices_instead_of_truncating(recorder):
    for index in (np.array([0.0, 1.0, 2.0]), torch.tensor([0.5, 1.0, 2.0]), [0, 1.9, 2]):
        with pytest.raises(ValueError, match="index must hold integer sample positions, got dtype float"):
            recorder.update(index, torch.zeros(3, 3))


def test_update_refuses_probabilities_outside_0_1(recorder):
    probs = np.full((3, 3), 1 / 3)
    probs[0] = [7.0, 0.0, 0.0]
    with pytest.raises(ValueError, match=r"probabilities=True but outputs run from 0 to 7, outside \[0, 1\]"):
        recorder.update([0, 1, 2], probs, probabilities=True)
    probs[0] = [-0.5, 0.75, 0.75]
    with pytest.raises(ValueError, match="outside"):
        recorder.update([0, 1, 2], probs, probabilities=True)
    recorder.update([0, 1, 2], np.full((3, 3), 1 / 3), probabilities=True)  # valid ones go through
    recorder.end_epoch()
    assert recorder.num_epochs == 1


def test_save_refuses_a_half_recorded_epoch(recorder):
    recorder.update([0, 1, 2], torch.zeros(3, 3))
    recorder.end_epoch()
    recorder.update([0], torch.zeros(1, 3))
    with pytest.raises(ValueError, match="epoch 2 is half recorded: call end_epoch"):
        recorder.save()


def test_quality_scores_refuse_nan_traces():
    td = np.full((4, 5, 3), 1 / 3, dtype=np.float32)
    td[2, 1, 0] = np.nan
    with pytest.raises(ValueError, match="traces hold 1 NaN or infinite values"):
        get_label_quality_scores(td)
    with pytest.raises(ValueError, match="traces hold 1 NaN"):
        find_label_issues(td)


@pytest.mark.parametrize("fraction", [1.5, -0.1])
def test_find_label_issues_names_fraction(fraction):
    td = np.full((4, 5, 3), 1 / 3, dtype=np.float32)
    with pytest.raises(ValueError, match=rf"fraction must be in \[0, 1\], got {fraction}") as info:
        find_label_issues(td, fraction=fraction)
    assert "remove_ratio" not in str(info.value)


def test_update_refuses_probability_rows_that_do_not_sum_to_1(recorder):
    probs = np.full((3, 3), 1 / 3)
    probs[1] = [1.0, 1.0, 1.0]  # each in [0, 1], the row sums to 3
    with pytest.raises(ValueError, match=r"probabilities=True but 1 of 3 rows of outputs do not sum to 1 \(e.g. 3\)"):
        recorder.update([0, 1, 2], probs, probabilities=True)
    # float16 softmax rows round their sum by ~1e-3: they go through
    recorder.update([0, 1, 2], torch.softmax(torch.randn(3, 3), 1).half(), probabilities=True)


def test_update_refuses_features_whose_width_changes(tmp_path):
    recorder = DynamicsRecorder(tmp_path / "r", labels=np.array([0, 1, 2, 0]), num_classes=3, neighbours=1)
    recorder.update([0, 1], torch.zeros(2, 3), features=torch.ones(2, 8))
    with pytest.raises(ValueError, match="same width, got 5 after 8"):
        recorder.update([2, 3], torch.zeros(2, 3), features=torch.ones(2, 5))


def test_traces_of_logits_are_not_scored_as_probabilities():
    td = np.random.default_rng(0).normal(0, 3, (4, 5, 3)).astype(np.float32)  # logits
    with pytest.raises(ValueError, match=r"traces run from .* outside \[0, 1\]: expected each epoch's softmax"):
        get_label_quality_scores(td)
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        find_label_issues(td, num_to_find=2)


@pytest.mark.parametrize("bad", [1.5, -0.1, float("nan")])
def test_neighbours_outside_0_1_with_a_td_array(bad):
    td = np.full((4, 5, 3), 1 / 3, dtype=np.float32)
    neighbours = np.full((4, 5), 0.5, dtype=np.float32)
    neighbours[2, 3] = bad
    with pytest.raises(ValueError, match=r"neighbours must be the recorded neighbour agreement, fractions in \[0, 1\]"):
        get_label_quality_scores(td, labels=np.array([0, 1, 2, 0]), neighbours=neighbours)


@pytest.mark.parametrize("bad", [2.5, "2", True])
def test_num_to_find_must_be_a_whole_number(bad):
    td = np.full((4, 5, 3), 1 / 3, dtype=np.float32)
    with pytest.raises(ValueError, match=f"num_to_find must be a whole number of samples, got {bad!r}"):
        find_label_issues(td, num_to_find=bad)


def test_labels_and_neighbours_with_a_run_folder_are_not_ignored(tmp_path):
    """A run folder holds its own labels and agreement: ones passed beside it were ignored without a word."""
    with pytest.raises(ValueError, match="neighbours: given with a run folder, which holds its own"):
        get_label_quality_scores(tmp_path / "run", neighbours=np.full((4, 5), 0.5))
    with pytest.raises(ValueError, match="labels and neighbours: given with a run folder"):
        find_label_issues(str(tmp_path / "run"), labels=np.zeros(4, int), neighbours=np.full((4, 5), 0.5))
