"""plots.py on a synthetic run folder: the expected PNGs, non-empty, plus detection_metrics.json."""
import json
from collections import OrderedDict

import numpy as np
import pytest
import torch

import plots
from plotting.run_plots import PLOT_NAMES, make_plots
from tests.library.synthetic_run import make_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    torch.set_num_threads(1)
    return make_run(tmp_path_factory.mktemp("runs") / "toy_cnn3_percmislabeled0.25_uniform" /
                    "computation4td_seed1", n=80, epochs=10)


def _check_pngs(folder, names=PLOT_NAMES):
    for name in names:
        path = folder / name
        assert path.is_file(), name
        assert path.stat().st_size > 5000, name  # a real figure, not an empty canvas
        assert path.read_bytes()[:8] == PNG_MAGIC


def _flipped(run_dir):
    return torch.load(run_dir / "metadata.pth", weights_only=True)["label_flipped"].numpy()[10:]  # 10 valid first


def _mann_whitney_auc(score, positive):
    """P(score of a positive > score of a negative), ties counting half: the ROC-AUC without sklearn."""
    pos, neg = score[positive][:, None], score[~positive][None, :]
    return ((pos > neg).sum() + 0.5 * (pos == neg).sum()) / (pos.size * neg.size)


def test_cli_writes_every_figure(run_dir, tmp_path, capsys):
    out = tmp_path / "figs"
    plots.main(plots.get_args_parser().parse_args([str(run_dir), "--out", str(out)]))
    _check_pngs(out)
    report = json.loads((out / "detection_metrics.json").read_text())
    assert set(report["scores"]) >= {"aum", "forgetting", "cl_label_issues"}
    assert report["cleanlab_pred_probs"].startswith("in-sample")
    scores, flipped = report["scores"], _flipped(run_dir)
    td = np.load(run_dir / "training_dynamics.npz")["td"].astype(np.float32)
    margin = (td[:, :, 0] - td[:, :, 1:].max(2)).mean(1)
    # Every flipped sample's mean margin (largest 0.300) is below every clean one's (smallest 0.442): -AUM
    # ranks all 21 flipped first, so ROC-AUC = mAP = 1 and removing 21/80 = 0.2625 removes exactly the flipped
    # (a sign error gives 0.0, rows out of step with label_flipped ~0.5).
    assert margin[flipped].max() < margin[~flipped].min() and report["remove_ratio"] == 21 / 80
    assert scores["aum"]["roc_auc"] == scores["aum"]["average_precision"] == scores["aum"]["precision"] == 1.0
    # Flipped samples are memorized hardest (+8 logits at the end vs +4): the lowest 1 - p_assigned[T-1].
    assert td[flipped, -1, 0].min() > td[~flipped, -1, 0].max() and scores["last_self_confidence"]["roc_auc"] == 0.0
    # Forgetting events counted here by hand (learned at t-1, not at t; every sample is learned at some epoch,
    # so the never-learned rule does not enter); 0.730024 with ties counted half (counting the epochs where a
    # sample becomes learned instead gives 0.658596).
    learned = td[:, :, 0] > td[:, :, 1:].max(2)
    events = (learned[:, :-1] & ~learned[:, 1:]).sum(1)
    assert learned.any(1).all()
    assert scores["forgetting"]["roc_auc"] == round(_mann_whitney_auc(events, flipped), 6) == 0.730024
    assert "wrote 5 figures" in capsys.readouterr().out


def test_default_out_is_inside_the_run(run_dir):
    plots.main(plots.get_args_parser().parse_args([str(run_dir)]))
    _check_pngs(run_dir / "plots")


def test_extra_scores_join_the_curves(run_dir, tmp_path):
    perfect = _flipped(run_dir).astype(float)
    make_plots(run_dir, tmp_path, extra_scores={"oracle": perfect}, log=lambda _: None)
    report = json.loads((tmp_path / "detection_metrics.json").read_text())
    assert report["scores"]["oracle"]["roc_auc"] == 1.0


def test_detector_checkpoint(run_dir, tmp_path):
    from labeltrace.lstm import LSTMDetector
    from labeltrace.predict import make_checkpoint

    torch.manual_seed(0)
    model = LSTMDetector()
    ckpt = make_checkpoint(model.state_dict(), epoch=1, best_prec=0.5, optimizer_state={},
                           variant=model.variant,
                           train_length=10)
    torch.save(ckpt, tmp_path / "toy_0.25_lstm_detector.pth.tar")
    out = tmp_path / "figs"
    plots.main(plots.get_args_parser().parse_args(
        [str(run_dir), "--detector", str(tmp_path / "toy_0.25_lstm_detector.pth.tar"), "--out", str(out)]))
    _check_pngs(out)
    scores = json.loads((out / "detection_metrics.json").read_text())["scores"]
    # The checkpoint's own p_noisy on the run's rows, recomputed here: even untrained (p_noisy 0.53786-0.53812)
    # it ranks the 21 flipped first, ROC-AUC 1.0; the wrong sign gives 0.0, rows out of step with the ground
    # truth ~0.5.
    from labeltrace.predict import load_detector, score

    p_noisy = score(*load_detector(tmp_path / "toy_0.25_lstm_detector.pth.tar"),
                    np.load(run_dir / "training_dynamics.npz")["td"])[0]
    assert scores["detector (pooled)"]["roc_auc"] == round(_mann_whitney_auc(p_noisy, _flipped(run_dir)), 6)


def test_without_ground_truth_no_roc(tmp_path):
    run = make_run(tmp_path / "real_noise" / "computation4td_seed1", n=40, epochs=6)
    meta = torch.load(run / "metadata.pth", weights_only=True)
    torch.save(OrderedDict((k, v) for k, v in meta.items() if k != "label_flipped"), run / "metadata.pth")
    (run / "train_log.csv").unlink()
    notes = []
    written = make_plots(run, tmp_path / "out", log=notes.append)
    assert sorted(p.name for p in written) == ["assigned_prob_curve.png", "data_map.png"]
    assert any("no ground truth" in n for n in notes) and any("train_log.csv" in n for n in notes)
    assert "note" in json.loads((tmp_path / "out" / "detection_metrics.json").read_text())


def test_extra_score_of_wrong_length(run_dir, tmp_path):
    from labeltrace.errors import UsageError

    with pytest.raises(UsageError, match="extra score"):
        make_plots(run_dir, tmp_path, extra_scores={"bad": np.zeros(3)}, log=lambda _: None)


@pytest.mark.parametrize("train_error, drawn", [([0.5, 0.2], [50.0, 20.0]), ([50.0, 20.0], [50.0, 20.0])])
def test_training_curves_draw_percent(train_error, drawn):
    import pandas as pd

    from plotting.figures import training_curves

    fig = training_curves(pd.DataFrame({"epoch": [1, 2], "train_error": train_error, "train_loss": [1.0, 0.5]}))
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), drawn)
