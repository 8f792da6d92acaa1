"""Scoring in bfloat16 ranks as float32 does, with a shipped detector of the repository (``checkpoints/``)."""
from pathlib import Path

import numpy as np
import pytest

from labeltrace.errors import UsageError
from labeltrace.predict import load_detector, score


def test_bfloat16_scores_rank_like_float32():
    """The shipped digits detector on memorizing-run curves: its p_noisy spans 0.003-0.971 (an untrained LSTM's
    spans 2e-4, where a constant or shuffled output would pass any tolerance that bfloat16 needs)."""
    from scipy.stats import spearmanr

    from labeltrace.metrics import removal_cut
    from tests.library.synthetic_run import synth_curves

    checkpoints = Path(__file__).resolve().parents[1] / "checkpoints"
    model, info = load_detector(checkpoints / "digits_0.2_lstm_detector.pth.tar")
    curves, _ = synth_curves(256, info.train_length, seed=4, jitter=0.2)
    try:
        fast = score(model, info, curves, bfloat16=True)[0]
    except UsageError as err:  # a CPU without bfloat16 support: the one-line refusal, nothing to compare
        assert "bfloat16 scoring: this CPU has no bfloat16 LSTM kernel" in str(err)
        pytest.skip("this CPU has no bfloat16 LSTM kernel")
    exact = score(model, info, curves)[0]
    assert exact.max() - exact.min() > 0.9
    # Measured over curve seeds 0-4: max |difference| 0.0007-0.057 (0.0024 here), Spearman 0.9996-0.9997, and
    # 50-52 of the 52 samples the 20% cut removes (256 - int(256 * 0.8) = 52) are the same. A constant output is
    # off by > 0.6; rows in another order have Spearman ~0 (-0.005 reversed) and about 52 * 52 / 256 = 10.6
    # removed samples in common.
    assert np.abs(exact - fast).max() < 6e-2
    assert spearmanr(exact, fast)[0] > 0.999
    removed_exact, removed_fast = removal_cut(exact, 0.2)[1], removal_cut(fast, 0.2)[1]
    assert len(removed_exact) == 52 and len(set(removed_exact) & set(removed_fast)) >= 48
