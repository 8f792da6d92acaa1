"""labeltrace.predict: checkpoint compatibility with the original code, safe loading, scoring."""
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from labeltrace.errors import UsageError
from labeltrace.lstm import VARIANTS, LSTMDetector
from labeltrace.predict import load_detector, make_checkpoint, predict_p_noisy, score
from labeltrace.traces import resample_time

torch.set_num_threads(1)


class OriginalLSTM(nn.Module):
    """A stand-in for the original code's model: attributes `lstm` and `classifier`, last step, forward."""

    def __init__(self):
        super().__init__()
        self.classifier = nn.Linear(64, 2)
        self.lstm = nn.LSTM(1, 64, 2, batch_first=True)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.classifier(out[:, -1, :])


def save_original(path: Path, net: nn.Module) -> Path:
    """As the original code saves: its best_prec is a numpy float64 (accuracy from a numpy confusion matrix)."""
    optimizer = torch.optim.AdamW(net.parameters(), lr=0.1)
    best_prec = np.diag(np.array([[70.0, 5], [14, 11]])).sum() / 100.0
    torch.save({"epoch": 3, "state_dict": net.state_dict(), "best_prec": best_prec, "optimizer": optimizer.state_dict()},
               path)
    return path


def test_original_checkpoint_loads_as_forward_T200_and_scores_identically(tmp_path):
    torch.manual_seed(0)
    net = OriginalLSTM().eval()
    model, info = load_detector(save_original(tmp_path / "cifar10_0.2_lstm_detector.pth.tar", net))
    assert (info.variant, info.train_length, info.epoch, info.best_prec) == ("forward", 200, 3, 0.81)
    curves = np.random.default_rng(0).random((9, 200), dtype=np.float32)
    with torch.no_grad():
        expected = torch.softmax(net(torch.from_numpy(curves)[:, :, None]), 1)[:, 1].numpy()
    p, note = score(model, info, curves)
    assert note is None
    np.testing.assert_allclose(p, expected, atol=1e-6)


@pytest.mark.parametrize("variant", ["forward", "reversed", "pooled"])
def test_our_checkpoint_loads_into_the_original_model(tmp_path, variant):
    model = LSTMDetector(variant)
    ckpt = make_checkpoint(model.state_dict(), epoch=1, best_prec=0.5, optimizer_state={}, variant=variant,
                           train_length=40, val_auc=0.9, val_map=0.5)
    torch.save(ckpt, tmp_path / "ours.pth.tar")
    loaded = torch.load(tmp_path / "ours.pth.tar", weights_only=True)
    assert {"epoch", "state_dict", "best_prec", "optimizer"} <= set(loaded)
    OriginalLSTM().load_state_dict(loaded["state_dict"])  # strict: same keys, same shapes


def test_optimizer_states_are_interchangeable_with_the_original():
    """The original resumes with optimizer.load_state_dict(ckpt['optimizer']): parameter order must match."""
    torch.manual_seed(0)
    ours = LSTMDetector("pooled")
    optimizer = torch.optim.AdamW(ours.parameters(), lr=1e-3)
    nn.functional.cross_entropy(ours(torch.rand(4, 6)), torch.tensor([0, 1, 0, 1])).backward()
    optimizer.step()
    original = OriginalLSTM()
    original.load_state_dict(ours.state_dict())
    theirs = torch.optim.AdamW(original.parameters(), lr=0.1)
    theirs.load_state_dict(optimizer.state_dict())
    for param in original.parameters():
        assert theirs.state[param]["exp_avg"].shape == param.shape
    original(torch.rand(4, 6, 1)).sum().backward()
    theirs.step()  # would raise on a shape mismatch


class Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_a_pickle_carrying_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth.tar"
    torch.save({"epoch": 1, "state_dict": {}, "best_prec": 0, "optimizer": Payload()}, path)
    with pytest.raises(UsageError, match="carries code") as err:
        load_detector(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("content, found", [
    ({"weights": torch.zeros(2)}, "weights"),
    ([1, 2, 3], "list"),
    ({"state_dict": {"lstm.weight_ih_l0": torch.zeros(256, 3)}}, "shape"),
    ({"state_dict": {"fc.weight": torch.zeros(2, 64)}}, "unexpected fc.weight"),
])
def test_not_a_detector_or_wrong_shapes_give_one_line_errors(tmp_path, content, found):
    path = tmp_path / "x.pth.tar"
    torch.save(content, path)
    with pytest.raises(UsageError) as err:
        load_detector(path)
    assert str(path) in str(err.value) and found in str(err.value) and "\n" not in str(err.value)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(UsageError, match="no such"):
        load_detector(tmp_path / "nope.pth.tar")
    (tmp_path / "junk.pth.tar").write_bytes(b"not a checkpoint at all")
    with pytest.raises(UsageError, match="junk.pth.tar"):
        load_detector(tmp_path / "junk.pth.tar")


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_is_applied_when_scoring(tmp_path, variant):
    torch.manual_seed(1)
    model = LSTMDetector(variant)
    torch.save(make_checkpoint(model.state_dict(), epoch=1, best_prec=0, optimizer_state={}, variant=variant,
                               train_length=12), tmp_path / "d.pth.tar")
    loaded, info = load_detector(tmp_path / "d.pth.tar")
    curves = np.random.default_rng(1).random((5, 12), dtype=np.float32)
    assert info.variant == variant
    np.testing.assert_allclose(score(loaded, info, curves)[0], predict_p_noisy(model, curves), atol=1e-6)


def test_scoring_another_length_resamples_and_says_so(tmp_path):
    model = LSTMDetector("reversed")
    torch.save(make_checkpoint(model.state_dict(), epoch=1, best_prec=0, optimizer_state={}, variant="reversed",
                               train_length=20), tmp_path / "d.pth.tar")
    loaded, info = load_detector(tmp_path / "d.pth.tar")
    td = np.random.default_rng(2).random((6, 35, 3)).astype(np.float16)  # full td: channel 0 is used
    p, note = score(loaded, info, td, batch_size=4)
    assert "T=35" in note and "T=20" in note and "resampled" in note
    expected = predict_p_noisy(model, resample_time(td[:, :, 0], 20))
    np.testing.assert_allclose(p, expected, atol=1e-6)
