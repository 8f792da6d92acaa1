"""labeltrace.features: per-epoch inputs, hand-computed; checkpoints that record them."""
import math

import numpy as np
import pytest
import torch

from labeltrace.errors import UsageError
from labeltrace.features import FEATURES, check_features, detector_inputs, feature_stack, run_context
from labeltrace.lstm import LSTMDetector
from labeltrace.predict import load_detector, make_checkpoint, predict_p_noisy, score

torch.set_num_threads(1)

# One sample, three epochs, three classes (channel 0 = assigned label).
TD = np.array([[[0.50, 0.30, 0.20],    # assigned leads by 0.20
                [0.40, 0.25, 0.35],    # channel 2 is this epoch's strongest other class, not channel 1
                [0.10, 0.60, 0.30]]],  # both others beat the assigned label
              dtype=np.float32)


def test_margin_uses_the_strongest_other_class_of_each_epoch():
    # 0.50 - max(0.30, 0.20) = 0.20; 0.40 - max(0.25, 0.35) = 0.05 (channel 1 would give 0.15); 0.10 - 0.60 = -0.50
    np.testing.assert_allclose(feature_stack(TD, ["margin"])[0, :, 0], [0.20, 0.05, -0.50], atol=1e-7)


def test_prob_loss_entropy_rank_by_hand():
    x = feature_stack(TD, ["prob", "loss", "entropy", "rank"])[0]
    np.testing.assert_allclose(x[:, 0], [0.5, 0.4, 0.1], atol=1e-7)
    # loss = -ln p / ln 1e4: 0.693147 / 9.210340 = 0.075257; 0.916291 / 9.210340 = 0.099485; 2.302585 / 9.210340 = 0.25
    np.testing.assert_allclose(x[:, 1], [0.075257, 0.099485, 0.25], atol=1e-6)
    # entropy / ln 3: (0.5*0.693147 + 0.3*1.203973 + 0.2*1.609438) / 1.098612 = 1.029653 / 1.098612 = 0.937231
    assert x[0, 2] == pytest.approx(0.937231, abs=1e-6)
    # rank = classes above the assigned one / (C - 1): none, none, both
    np.testing.assert_allclose(x[:, 3], [0.0, 0.0, 1.0])


def test_loss_is_capped_at_one_for_probabilities_below_1e4():
    td = np.array([[[0.0, 1.0], [1e-5, 1.0 - 1e-5]]], dtype=np.float32)
    np.testing.assert_allclose(feature_stack(td, ["loss"])[0, :, 0], [1.0, 1.0])


def test_float16_traces_are_read_in_chunks_like_float32(monkeypatch):
    import labeltrace.features as features

    rng = np.random.default_rng(0)
    td = rng.dirichlet(np.ones(5), size=(37, 6)).astype(np.float16)
    labels = rng.integers(0, 5, size=37)
    neighbours = rng.integers(0, 11, size=(37, 6)).astype(np.float16) / 10
    whole = feature_stack(td, list(FEATURES), labels=labels, neighbours=neighbours)
    monkeypatch.setattr(features, "_CHUNK_ROWS", 8)
    # Per-sample features are the same bits; the run statistics differ only by float64 summation order.
    np.testing.assert_allclose(feature_stack(td, list(FEATURES), labels=labels, neighbours=neighbours), whole,
                               rtol=0, atol=1e-6)
    assert whole.dtype == np.float32 and whole.shape == (37, 6, len(FEATURES))


def test_detector_inputs_resample_each_feature_in_time():
    x = detector_inputs(TD, ["prob", "margin"], length=5)  # epochs 0, 0.5, 1, 1.5, 2
    np.testing.assert_allclose(x[0, :, 0], [0.5, 0.45, 0.4, 0.25, 0.1], atol=1e-6)
    np.testing.assert_allclose(x[0, :, 1], [0.2, 0.125, 0.05, -0.225, -0.5], atol=1e-6)


@pytest.mark.parametrize("bad", ["", "prob,prob", "margin,curvature", ["prob", "nope"]])
def test_bad_feature_lists_are_refused_with_the_valid_names(bad):
    with pytest.raises(ValueError, match="prob, margin, loss, entropy, rank"):
        check_features(bad)


def _save(path, model, **kwargs):
    torch.save(make_checkpoint(model.state_dict(), epoch=1, best_prec=0.5, optimizer_state={}, variant="pooled",
                               train_length=3, **kwargs), path)
    return path


def test_checkpoint_records_its_features_and_scoring_computes_them(tmp_path):
    torch.manual_seed(0)
    model = LSTMDetector("pooled", features=("prob", "margin"), anchor=True)
    loaded, info = load_detector(_save(tmp_path / "d.pth.tar", model, features=("prob", "margin"), anchor=True))
    assert info.features == ("prob", "margin") and info.anchor
    td = np.random.default_rng(1).dirichlet(np.ones(4), size=(20, 3)).astype(np.float16)
    expected = predict_p_noisy(model, feature_stack(td, ("prob", "margin")))
    np.testing.assert_allclose(score(loaded, info, td)[0], expected, atol=1e-6)
    with pytest.raises(UsageError, match="needs the full traces"):
        score(loaded, info, td[:, :, 0])


def test_a_features_mismatch_fails_clearly(tmp_path):
    one = LSTMDetector("pooled")  # the paper's one-channel weights, stored as if they read two features
    with pytest.raises(UsageError, match=r"features prob,margin.*weight_ih_l0 has shape \(256, 1\)"):
        load_detector(_save(tmp_path / "a.pth.tar", one, features=("prob", "margin")))
    with pytest.raises(UsageError, match="b.pth.tar: features must be distinct names"):
        load_detector(_save(tmp_path / "b.pth.tar", one, features=("prob", "curvature")))


def test_untrained_anchor_is_the_linear_score_of_feature_means():
    model = LSTMDetector("pooled", features=("margin",), anchor=True)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.zero_()
        model.anchor.weight.copy_(torch.tensor([[0.0], [-3.0]]))
        model.anchor.bias.zero_()
    x = feature_stack(TD, ["margin"])  # mean margin (0.20 + 0.05 - 0.50) / 3 = -0.083333 (AUM from probabilities)
    p = predict_p_noisy(model, x)[0]
    assert p == pytest.approx(1 / (1 + math.exp(-3.0 * 0.083333)), abs=1e-5)  # softmax([0, 0.25])[1] = 0.562177


def test_run_context_is_a_statistic_of_the_whole_run_at_each_epoch():
    # Two samples, two epochs. Margins: sample A 0.20, -0.50; sample B 0.6 - 0.3 = 0.30, 0.8 - 0.1 = 0.70.
    td = np.array([[[0.50, 0.30, 0.20], [0.10, 0.60, 0.30]],
                   [[0.60, 0.30, 0.10], [0.80, 0.10, 0.10]]], dtype=np.float32)
    x = feature_stack(td, ["run_learned", "run_spread"])
    # learned: epoch 0 both (margin > 0) -> 1.0; epoch 1 only B -> 0.5
    np.testing.assert_allclose(x[:, :, 0], [[1.0, 0.5], [1.0, 0.5]])
    # spread = population std of the margins: |0.20 - 0.30| / 2 = 0.05; |-0.50 - 0.70| / 2 = 0.60
    np.testing.assert_allclose(x[:, :, 1], [[0.05, 0.60], [0.05, 0.60]], atol=1e-6)
    # Rows scored alone still get the whole run's context when it is passed in.
    from labeltrace.features import run_context
    np.testing.assert_allclose(feature_stack(td[:1], ["run_learned"], run_context(td))[0, :, 0], [1.0, 0.5])


def test_margin_quantile_places_a_sample_among_the_run_s_margins_at_each_epoch():
    # 101 samples, two classes, so margin = p - (1 - p) = 2p - 1. With p = 0, 0.01, ..., 1 at epoch 0 the
    # margins are -1, -0.98, ..., 1: percentile k is exactly sample k's margin, so sample i reads i / 100.
    # Epoch 1 reverses the order: sample i reads 1 - i / 100.
    p = np.linspace(0, 1, 101)
    td = np.stack([np.stack([p, 1 - p], 1), np.stack([1 - p, p], 1)], 1).astype(np.float32)
    x = feature_stack(td, ["margin_quantile"])[:, :, 0]
    np.testing.assert_allclose(x[:, 0], np.arange(101) / 100, atol=1e-6)
    np.testing.assert_allclose(x[:, 1], 1 - np.arange(101) / 100, atol=1e-6)
    # Sharpening the softmax keeps every sample's order, so the feature does not move (the margin does).
    sharp = np.stack([np.stack([p ** 3, 1 - p ** 3], 1), np.stack([(1 - p) ** 3, 1 - (1 - p) ** 3], 1)], 1)
    np.testing.assert_allclose(feature_stack(sharp.astype(np.float32), ["margin_quantile"])[:, :, 0], x, atol=1e-6)


def test_margin_quantile_of_ties_and_of_rows_scored_alone():
    from labeltrace.features import run_context
    # Margins 0.8, -0.6, 0.2, 0.2; sorted -0.6, 0.2, 0.2, 0.8. numpy's linear percentile k sits at position
    # 0.03 k: k = 25 -> -0.6 + 0.75 x 0.8 = 0.0, k = 50 -> 0.2, k = 75 -> 0.2 + 0.25 x 0.6 = 0.35.
    td = np.array([[[0.9, 0.1]], [[0.2, 0.8]], [[0.6, 0.4]], [[0.6, 0.4]]], dtype=np.float32)
    context = run_context(td)
    np.testing.assert_allclose(context["margin_quantiles"][0, [0, 25, 50, 75, 100]], [-0.6, 0.0, 0.2, 0.35, 0.8],
                               atol=1e-6)
    # 0.2 fills positions 1..2, percentiles 34..66: a tie reads as its highest level, 0.66; the extremes 0, 1.
    np.testing.assert_allclose(feature_stack(td, ["margin_quantile"])[:, 0, 0], [1.0, 0.0, 0.66, 0.66], atol=1e-6)
    # Scored alone with the whole run's context, a row reads as it does in the run; without it, a run of one
    # row whose margins are all equal reads 1.
    np.testing.assert_allclose(feature_stack(td[1:3], ["margin_quantile"], context)[:, 0, 0], [0.0, 0.66], atol=1e-6)
    np.testing.assert_allclose(feature_stack(td[:1], ["margin_quantile"])[:, 0, 0], [1.0])


def test_margin_class_quantile_ranks_within_the_assigned_class():
    from labeltrace.features import run_context
    # Six samples, one epoch, two classes; margin = 2p - 1 with p the assigned label's probability.
    # Class 0 (an easy class): margins 0.8, 0.6, 0.4. Class 1 (a hard one): margins 0.0, -0.2, -0.4.
    p = np.array([0.9, 0.8, 0.7, 0.5, 0.4, 0.3])
    td = np.stack([p, 1 - p], 1)[:, None, :].astype(np.float32)
    labels = np.array([0, 0, 0, 1, 1, 1])
    # Within a class of three sorted margins a < b < c, numpy's percentile k sits at position 0.02 k:
    # the middle one is percentile 50, the highest 100, the lowest 0.
    x = feature_stack(td, ["margin_class_quantile"], labels=labels)[:, 0, 0]
    np.testing.assert_allclose(x, [1.0, 0.5, 0.0, 1.0, 0.5, 0.0], atol=1e-6)
    # Run-wide, the hard class's best sample (margin 0.0) sits at 2/5 of the way: percentile 40.
    run_wide = feature_stack(td, ["margin_quantile"])[:, 0, 0]
    np.testing.assert_allclose(run_wide[3], 0.4, atol=1e-6)
    # A row scored alone reads as in the run, given the run's context and its label (margin -0.2: 0.5).
    context = run_context(td, labels)
    np.testing.assert_allclose(feature_stack(td[4:5], ["margin_class_quantile"], context, labels=labels[4:5])[0, 0, 0],
                               0.5, atol=1e-6)
    with pytest.raises(ValueError, match="assigned label"):
        feature_stack(td, ["margin_class_quantile"])


def test_neighbours_class_quantile_places_a_sample_within_its_class():
    # Class 0's agreements at epoch 0 are 0, 0.5, 0.5: the first has none below and itself (half of 1/3), the
    # others one below and two equal (1/3 + half of 2/3). Class 1's are 1 and 0.2. Epoch 1 likewise.
    neighbours = np.array([[0.0, 1.0], [0.5, 0.5], [0.5, 0.25], [1.0, 0.0], [0.2, 0.2]], dtype=np.float32)
    labels = np.array([0, 0, 0, 1, 1])
    td = np.full((5, 2, 3), 1 / 3, dtype=np.float32)
    x = feature_stack(td, ["neighbours_class_quantile"], labels=labels, neighbours=neighbours)[..., 0]
    assert np.allclose(x, [[1 / 6, 5 / 6], [2 / 3, 1 / 2], [2 / 3, 1 / 6], [3 / 4, 1 / 4], [1 / 4, 3 / 4]])
    # The same rows scored a chunk at a time with the whole run's context read alike.
    context = run_context(td, labels, names=["neighbours_class_quantile"], neighbours=neighbours)
    part = feature_stack(td[3:], ["neighbours_class_quantile"], context, labels=labels[3:], neighbours=neighbours[3:])
    assert np.allclose(part[..., 0], x[3:])
    # Two channels per epoch (what the compact layout holds) are enough: it reads no full probability vector.
    assert np.allclose(feature_stack(td[:, :, :2], ["neighbours_class_quantile"], labels=labels,
                                     neighbours=neighbours)[..., 0], x)
