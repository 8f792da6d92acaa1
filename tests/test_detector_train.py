"""detector_models.train and the train_detector.py entry point, on tiny synthetic runs."""
import numpy as np
import pytest
import torch

import train_detector
from labeltrace.errors import UsageError
from labeltrace.predict import load_detector
from labeltrace.metrics import detection_metrics
from detector_models.train import DetectorRecipe, stratified_split, train_detector as fit
from tests.library.synthetic_run import synth_curves, write_run

torch.set_num_threads(1)
QUIET = dict(log=lambda line: None)


def test_stratified_split_is_seeded_and_stratified():
    strata = np.array([0] * 80 + [1] * 20)
    train, val = stratified_split(strata, val_fraction=0.1, seed=5)
    assert len(val) == 10 and strata[val].sum() == 2 and len(np.intersect1d(train, val)) == 0
    np.testing.assert_array_equal(val, stratified_split(strata, val_fraction=0.1, seed=5)[1])
    assert not np.array_equal(val, stratified_split(strata, val_fraction=0.1, seed=6)[1])


def test_training_learns_and_picks_best_by_auc():
    curves, flipped = synth_curves(300, 16, noise_rate=0.3, seed=0)
    result = fit(curves, flipped, DetectorRecipe(epochs=3, seed=0), **QUIET)
    assert result.val_auc > 0.9 and result.train_length == 16 and result.variant == "pooled"
    best = max(h["val_auc"] for h in result.history)
    assert result.val_auc == best and result.history[result.best_epoch - 1]["val_auc"] == best


def test_training_without_both_classes_is_a_usage_error():
    curves, _ = synth_curves(50, 8, seed=0)
    with pytest.raises(UsageError, match="both clean and mislabeled"):
        fit(curves, np.zeros(50, bool), DetectorRecipe(epochs=1), **QUIET)


def test_cli_trains_on_several_runs_of_different_lengths(tmp_path, capsys):
    a = write_run(tmp_path / "a", n=200, t=16, seed=1)
    b = write_run(tmp_path / "b", n=200, t=24, seed=2, num_valid=30)
    out = tmp_path / "pooled_0.3_lstm_detector.pth.tar"
    args = train_detector.get_args_parser().parse_args(
        ["--dataset", "pooled", "--r", "0.3", "--files_path", str(a), "--files_path", str(b),
         "--epochs", "2", "--out", str(out)])
    summary = train_detector.main(args)
    printed = capsys.readouterr().out
    assert "resampled to T=16" in printed and "val ROC-AUC" in printed
    ckpt = torch.load(out, weights_only=True)
    assert {"epoch", "state_dict", "best_prec", "optimizer", "variant", "train_length", "val_auc", "val_map",
            "args"} <= set(ckpt)
    assert ckpt["train_length"] == 16 and ckpt["val_auc"] == pytest.approx(summary["val_auc"])
    assert ckpt["args"]["files_path"] == [str(a), str(b)]


def test_default_output_name_matches_the_original():
    assert train_detector.default_name("cifar10", 0.2) == "cifar10_0.2_lstm_detector.pth.tar"
    assert train_detector.default_name("digits", 0.25) == "digits_0.25_lstm_detector.pth.tar"


def test_resume_fine_tunes_and_keeps_or_improves_target_auc(tmp_path):
    source = write_run(tmp_path / "source", n=300, t=20, seed=1)
    # The target memorizes later and noisier: the source detector transfers imperfectly.
    target = write_run(tmp_path / "target", n=300, t=30, seed=2, memorize_at=0.25, jitter=0.15)
    base = tmp_path / "base.pth.tar"
    train_detector.main(train_detector.get_args_parser().parse_args(
        ["--files_path", str(source), "--epochs", "2", "--out", str(base)]))
    tuned = tmp_path / "tuned.pth.tar"
    summary = train_detector.main(train_detector.get_args_parser().parse_args(
        ["--files_path", str(target), "--resume", str(base), "--epochs", "2", "--out", str(tuned), "--seed", "3"]))
    ckpt = torch.load(tuned, weights_only=True)
    assert ckpt["train_length"] == 20 and ckpt["variant"] == "pooled"
    # Both detectors on the same held-out target rows (the fine-tune's validation split).
    from labeltrace.predict import score
    from labeltrace.traces import load_run
    run = load_run(target)
    flipped = run.label_flipped
    _, val = stratified_split(flipped.astype(int), val_fraction=0.1, seed=3)
    aucs = [detection_metrics(score(*load_detector(p), run.td[val])[0], flipped[val], remove_ratio=0.3).roc_auc
            for p in (base, tuned)]
    assert aucs[1] >= aucs[0] - 1e-9
    assert summary["val_auc"] == pytest.approx(aucs[1])
    assert ckpt["history"][0]["epoch"] == 0 and ckpt["history"][0]["val_auc"] == pytest.approx(aucs[0])


def test_resume_with_a_conflicting_variant_is_refused(tmp_path):
    run = write_run(tmp_path / "run", n=100, t=10, seed=1)
    base = tmp_path / "base.pth.tar"
    train_detector.main(train_detector.get_args_parser().parse_args(
        ["--files_path", str(run), "--epochs", "1", "--out", str(base)]))
    with pytest.raises(UsageError, match="conflicts"):
        train_detector.main(train_detector.get_args_parser().parse_args(
            ["--files_path", str(run), "--resume", str(base), "--variant", "forward", "--out", str(base)]))


def test_time_warp_moves_the_middle_and_keeps_the_ends():
    from detector_models.train import warp_time

    x = torch.linspace(0, 1, 5)[None, :, None]  # values equal positions t / (T-1)
    out = warp_time(x, 2.0)[0, :, 0]  # positions (t/4)^2 * 4 = 0, 0.25, 1, 2.25, 4 -> values / 4
    np.testing.assert_allclose(out.numpy(), [0, 0.0625, 0.25, 0.5625, 1.0], atol=1e-6)


def test_anchored_detector_never_ends_below_its_starting_linear_score():
    curves, flipped = synth_curves(400, 12, noise_rate=0.3, seed=3)
    result = fit(curves[:, :, None], flipped, DetectorRecipe(features=("prob",), anchor=True, epochs=2, seed=0),
                 **QUIET)
    start = result.history[0]
    assert start["epoch"] == 0 and result.val_auc >= start["val_auc"] > 0.9
    assert result.anchor and set(result.state_dict) >= {"anchor.weight", "anchor.bias"}
