"""Baselines against hand-computed values on a 3-sample, 2-epoch, 3-class trace (dyadic values: exact in
float16), and cleanlab on a case whose answer is known."""
import sys

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from labeltrace.errors import UsageError
from labeltrace import baselines as bl

# Channel 0 = assigned label. Sample 0: learned both epochs; 1: never learned; 2: learned, then forgotten.
TD = np.array([
    [[0.75, 0.125, 0.125], [0.875, 0.0625, 0.0625]],
    [[0.25, 0.625, 0.125], [0.375, 0.5, 0.125]],
    [[0.5, 0.25, 0.25], [0.25, 0.5, 0.25]],
], dtype=np.float16)
LABELS = np.array([[2, 0, 1], [0, 1, 2], [1, 2, 0]], dtype=np.int16)

EXPECTED = {
    "aum": [-(0.625 + 0.8125) / 2, (0.375 + 0.125) / 2, 0.0],
    "confidence": [-0.8125, -0.3125, -0.375],
    "variability": [0.0625, 0.0625, 0.125],
    "forgetting": [0.0, 2.0, 1.0],
    "mean_loss": [-(np.log(0.75) + np.log(0.875)) / 2, -(np.log(0.25) + np.log(0.375)) / 2,
                  -(np.log(0.5) + np.log(0.25)) / 2],
    "last_self_confidence": [0.125, 0.625, 0.75],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hand_computed(name):
    score = bl.get_baseline(name)(TD, LABELS)
    assert score.shape == (3,) and score.dtype == np.float64
    np.testing.assert_allclose(score, EXPECTED[name], atol=1e-6)


def test_forgetting_never_learned_outranks_every_count():
    # 5 epochs: at most 2 forgetting events; never learned must score above that.
    on, off = [0.6, 0.3, 0.1], [0.2, 0.7, 0.1]
    td = np.array([[on, off, on, off, on], [off] * 5, [on] * 5], dtype=np.float16)
    np.testing.assert_array_equal(bl.forgetting(td), [2.0, 5.0, 0.0])


def test_to_class_order_round_trip():
    probs = bl.to_class_order(TD, LABELS)
    # Sample 0's assigned label is class 2: its class-2 column is channel 0.
    np.testing.assert_array_equal(probs[0, :, 2], TD[0, :, 0])
    np.testing.assert_array_equal(probs[1, :, 1], TD[1, :, 1])
    np.testing.assert_array_equal(bl.to_class_order(TD[:, 0], LABELS), probs[:, 0])


FLIPPED = [0, 20, 40]


def _known_case(seed=0, n_per_class=20, classes=3):
    """Confident probabilities for the true class; one sample per class (0, n, 2n) carries the next
    class's label. (With two flips in one class pair, cleanlab's calibrated joint flags only one.)"""
    rng = np.random.default_rng(seed)
    true = np.repeat(np.arange(classes), n_per_class)
    probs = np.full((len(true), classes), 0.05)
    probs[np.arange(len(true)), true] = 0.9
    probs += rng.uniform(0, 0.01, probs.shape)
    probs /= probs.sum(1, keepdims=True)
    given = true.copy()
    given[FLIPPED] = (true[FLIPPED] + 1) % classes
    return probs, given


def _as_traces(probs, given, epochs=2):
    """Channel-order traces whose every epoch is ``probs``."""
    others = np.argsort(-probs, axis=1, kind="stable")
    labels = np.array([[g] + [c for c in row if c != g] for g, row in zip(given, others)], dtype=np.int16)
    td = np.take_along_axis(probs, labels.astype(np.intp), axis=1)
    return np.repeat(td[:, None, :], epochs, axis=1).astype(np.float16), labels


def test_cleanlab_finds_the_known_issues():
    probs, given = _known_case()
    td, labels = _as_traces(probs, given)
    for kwargs in ({}, {"pred_probs": probs}):  # in-sample from td, then explicit out-of-sample
        score = bl.cl_label_issues(td, labels, **kwargs)
        np.testing.assert_array_equal(np.flatnonzero(score >= 1), FLIPPED)
        quality = bl.cl_label_quality(td, labels, **kwargs)
        assert set(np.argsort(-quality)[:3]) == set(FLIPPED)


def test_cleanlab_prefers_given_pred_probs():
    probs, given = _known_case()
    td, labels = _as_traces(probs, given)
    clean_probs = np.eye(3)[given] * 0.9 + 0.1 / 3  # agrees with every given label
    assert not (bl.cl_label_issues(td, labels, pred_probs=clean_probs) >= 1).any()


@pytest.mark.parametrize("name", ["aum", "confidence", "mean_loss", "last_self_confidence", "forgetting",
                                  "cl_label_quality"])
def test_higher_means_more_suspicious(name):
    probs, given = _known_case(seed=1)
    td, labels = _as_traces(probs, given)
    flipped = np.zeros(len(given), bool)
    flipped[FLIPPED] = True
    assert roc_auc_score(flipped, bl.get_baseline(name)(td, labels)) > 0.9


def test_unknown_name_lists_valid_ones():
    with pytest.raises(UsageError, match="aum.*forgetting"):
        bl.get_baseline("nope")


def test_score_baselines_all():
    scores = bl.score_baselines(TD, LABELS, names=["aum", "forgetting"])
    assert list(scores) == ["aum", "forgetting"]
    assert set(bl.score_baselines(*_as_traces(*_known_case()))) == set(bl.BASELINES)


def test_bad_shape():
    with pytest.raises(UsageError):
        bl.aum(TD[:, :, :1])


def test_cleanlab_epoch_window():
    probs, given = _known_case()
    td, labels = _as_traces(probs, given, epochs=4)
    td[:, 2:] = [1.0, 0.0, 0.0]  # late epochs: every given label memorized
    assert not (bl.cl_label_issues(td[:, 2:], labels) >= 1).any()
    assert (bl.cl_label_issues(td, labels, epochs=slice(0, 2)) >= 1).sum() == len(FLIPPED)
    with pytest.raises(UsageError, match="select none"):
        bl.cl_label_issues(td, labels, epochs=slice(5, 6))


def test_without_cleanlab_the_default_scores_are_the_installed_ones(monkeypatch):
    # sys.modules[name] = None makes `import name` raise ImportError: cleanlab as if the extra were not installed.
    for name in ("cleanlab", "cleanlab.rank", "cleanlab.filter"):
        monkeypatch.setitem(sys.modules, name, None)
    td, labels = _as_traces(*_known_case())
    scores = bl.score_baselines(td, labels)
    assert sorted(scores) == sorted(set(bl.BASELINES) - {"cl_label_quality", "cl_label_issues"})
    np.testing.assert_array_equal(scores["aum"], bl.aum(td, labels))
    with pytest.raises(UsageError, match=r"^cleanlab's scores need cleanlab: pip install 'labeltrace\[cleanlab\]'$"):
        bl.score_baselines(td, labels, names=["cl_label_quality"])
