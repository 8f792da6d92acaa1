"""labeltrace.metrics and get_order, against values computed by hand."""
import math

import numpy as np
import pytest

from labeltrace.metrics import NO_GROUND_TRUTH, detection_metrics, format_metrics, num_kept
from labeltrace.predict import detection_report, get_order

P_NOISY = np.array([0.9, 0.1, 0.8, 0.3, 0.6, 0.2])
FLIPPED = np.array([1, 0, 0, 1, 0, 0], bool)


def test_metrics_hand_computed():
    m = detection_metrics(P_NOISY, FLIPPED, remove_ratio=0.5)
    # Pairs (flipped, clean) ranked right: 0.9 beats all 4 clean; 0.3 beats 0.1 and 0.2 -> 6 of 8.
    assert m.roc_auc == pytest.approx(6 / 8)
    # Ranked by score: 0.9 (hit, P=1), 0.8, 0.6, 0.3 (hit, P=2/4) -> AP = (1 + 0.5) / 2.
    assert m.average_precision == pytest.approx(0.75)
    # Keep int(6 * 0.5) = 3 cleanest; removed = {0.9, 0.8, 0.6}: 1 hit of 3, of 2 flipped.
    assert (m.num_removed, m.num_flipped, m.num_samples) == (3, 2, 6)
    assert m.precision == pytest.approx(1 / 3) and m.recall == pytest.approx(1 / 2)
    assert m.f1 == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))


def test_get_order_cleanest_first_and_keep():
    order, keep = get_order(P_NOISY, 0.5)
    np.testing.assert_array_equal(order, [1, 5, 3, 4, 2, 0])
    np.testing.assert_array_equal(keep, [1, 5, 3])
    assert len(get_order(P_NOISY, 0.0)[1]) == 6 and len(get_order(P_NOISY, 1.0)[1]) == 0


def test_num_kept_follows_the_original_int_cut():
    assert num_kept(10, 0.2) == 8 and num_kept(7, 0.5) == 3
    with pytest.raises(ValueError):
        num_kept(10, 1.5)


def test_no_ground_truth_says_so():
    assert detection_metrics(P_NOISY, None, remove_ratio=0.2) is None
    metrics, line = detection_report(P_NOISY, None, remove_ratio=0.2)
    assert metrics is None and NO_GROUND_TRUTH in line and "nan" not in line


def test_single_class_ground_truth_is_nan_not_a_crash():
    m = detection_metrics(P_NOISY, np.zeros(6, bool), remove_ratio=0.5)
    assert math.isnan(m.roc_auc) and math.isnan(m.recall) and m.precision == 0
    assert "ROC-AUC/mAP undefined: no flipped samples" in format_metrics(m, remove_ratio=0.5)


def test_one_removal_cut_serves_metrics_relabelling_and_denoise():
    from labeltrace.metrics import removal_cut
    from pipeline.relabel import suspicious_rows
    from pipeline.denoise import removed_rows

    # int(6 * (1 - 0.34)) = int(3.96) = 3 kept: 0.1 (row 1), 0.2 (row 5), 0.3 (row 3); removed, most suspicious
    # first: 0.9 (row 0), 0.8 (row 2), 0.6 (row 4).
    kept, removed = removal_cut(P_NOISY, 0.34)
    np.testing.assert_array_equal(kept, [1, 5, 3])
    np.testing.assert_array_equal(removed, [0, 2, 4])
    np.testing.assert_array_equal(suspicious_rows(P_NOISY, 0.34), removed)
    np.testing.assert_array_equal(removed_rows("detector", n=6, remove_ratio=0.34, p_noisy=P_NOISY, flipped=None,
                                               seed=0), removed)
    assert detection_metrics(P_NOISY, FLIPPED, remove_ratio=0.34).num_removed == 3
    np.testing.assert_array_equal(get_order(P_NOISY, 0.34)[1], kept)
