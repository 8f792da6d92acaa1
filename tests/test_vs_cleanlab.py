"""benchmarks/vs_cleanlab.py: its ranking columns by hand, and the README table built from its rows."""
import numpy as np
import pytest

from benchmarks.vs_cleanlab import ranking_metrics, short_table


def test_ranking_metrics_by_hand():
    # Scores 0.9 (flipped), 0.8 (clean), 0.7 (flipped), 0.1 (clean).
    m = ranking_metrics(np.array([0.9, 0.8, 0.7, 0.1]), np.array([True, False, True, False]), budget_rate=0.25)
    # ROC-AUC: of the 4 (flipped, clean) pairs only 0.7 < 0.8 is misordered -> 3/4.
    assert m["roc_auc"] == pytest.approx(0.75)
    # AP: flipped samples at ranks 1 and 3, precision 1/1 and 2/3 there -> (1 + 2/3) / 2.
    assert m["map"] == pytest.approx(5 / 6)
    # The 2 highest (as many as are flipped) hold 1 flipped; the budget, 0.25 x 4 = 1 sample, finds 1 of 2.
    assert m["precision_at_noise"] == pytest.approx(0.5) and m["fnr_at_budget"] == pytest.approx(0.5)


def _row(method, seed, auc, passes):
    return {"dataset": "digits", "regime": "from scratch", "noise": "flip", "ratio": 0.2, "seed": seed,
            "method": method, "roc_auc": auc, "map": auc - 0.1, "precision_at_noise": 0.5, "fnr_at_budget": 0.2,
            "passes": passes, "seconds": 1.0}


def test_short_table_means_over_seeds_then_settings():
    methods = (("generalist", 0.9, 40), ("aum", 0.8, 40), ("confidence", 0.7, 40), ("cleanlab self_confidence", 0.6, 160))
    rows = [_row(m, seed, auc + 0.02 * seed, p) for seed in (1, 2) for m, auc, p in methods]
    rows += [{**_row(m, 1, auc - 0.09, p), "noise": "uniform"} for m, auc, p in methods]  # a second setting, 1 seed
    line = short_table(rows).splitlines()[2]
    # flip 0.2: seeds 1 and 2 -> 0.9 + 0.03; uniform 0.2: 0.9 - 0.09; the two settings weigh alike:
    # (0.93 + 0.81) / 2 = 0.87 for the generalist (AUM and cleanlab alike, 0.1 and 0.3 lower); 3 runs each.
    assert line == ("| digits | from scratch | 3 | 0.870 / 0.770 / 0.200 | 0.770 / 0.670 / 0.200 | "
                    "0.570 / 0.470 / 0.200 | 40 : 160 |")
