"""labeltrace.api refuses bad input in one line instead of recording or returning nonsense."""
import numpy as np
import pytest
import torch

from labeltrace.api import DynamicsRecorder, find_label_issues, get_label_quality_scores


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
