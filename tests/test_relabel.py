"""The pure relabelling step (pipeline/relabel.py), checked with hand-computed values."""
import numpy as np
import pytest

from labeltrace.predict import get_order
from pipeline.relabel import noise_rate, relabel, relabel_counts, suspicious_rows

P_NOISY = np.array([0.1, 0.9, 0.3, 0.8, 0.2, 0.7, 0.05, 0.6, 0.4, 0.5])
ASSIGNED = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
TRUE = np.array([0, 2, 2, 4, 4, 5, 6, 8, 8, 9])  # rows 1, 3 and 7 are mislabeled


def test_suspicious_rows_most_suspicious_first():
    assert suspicious_rows(P_NOISY, 0.3).tolist() == [1, 3, 5]
    assert suspicious_rows(P_NOISY, 0.0).tolist() == []


@pytest.mark.parametrize("ratio", [0.0, 0.15, 0.2, 0.35, 0.5, 0.99])
def test_suspicious_rows_are_the_complement_of_get_order(ratio):
    order, keep = get_order(P_NOISY, ratio)
    assert sorted(suspicious_rows(P_NOISY, ratio).tolist()) == sorted(set(order.tolist()) - set(keep.tolist()))


def test_relabel_replaces_only_the_top_k():
    out = relabel(P_NOISY, ASSIGNED, TRUE, ratio=0.3)
    assert out.labels.tolist() == [0, 2, 2, 4, 4, 5, 6, 7, 8, 9]
    assert out.suspicious.tolist() == [1, 3, 5]
    assert out.changed.tolist() == [False, True, False, True] + [False] * 6


def test_noise_rate_and_counts():
    out = relabel(P_NOISY, ASSIGNED, TRUE, ratio=0.3)
    assert noise_rate(ASSIGNED, TRUE) == pytest.approx(0.3)
    assert noise_rate(out.labels, TRUE) == pytest.approx(0.1)  # row 7 was not reached
    assert relabel_counts(ASSIGNED, out.labels, TRUE) == {"fixed": 2, "broken": 0, "still_wrong": 1, "changed": 2}


def test_a_wrong_replacement_counts_as_broken():
    model_pred = ASSIGNED.copy()
    model_pred[5] = 0  # the model "corrects" a clean sample into a wrong one
    out = relabel(P_NOISY, ASSIGNED, model_pred, ratio=0.3)
    assert relabel_counts(ASSIGNED, out.labels, TRUE)["broken"] == 1


def test_lengths_must_match():
    with pytest.raises(ValueError, match="one entry per sample"):
        relabel(P_NOISY, ASSIGNED[:5], TRUE, ratio=0.2)
