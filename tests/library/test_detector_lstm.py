"""labeltrace.lstm: the variants, their shapes and their state_dict keys."""
import pytest
import torch

from labeltrace.lstm import DEFAULT_VARIANT, VARIANTS, LSTMDetector

torch.set_num_threads(1)
ORIGINAL_KEYS = {f"lstm.{kind}_{part}_l{layer}" for kind in ("weight", "bias") for part in ("ih", "hh")
                 for layer in (0, 1)} | {"classifier.weight", "classifier.bias"}


@pytest.mark.parametrize("variant", VARIANTS)
def test_logits_shape_for_both_input_layouts(variant):
    model = LSTMDetector(variant).eval()
    x = torch.rand(3, 7)
    with torch.no_grad():
        assert model(x).shape == (3, 2)
        torch.testing.assert_close(model(x), model(x[:, :, None]))


def test_default_is_key_compatible_with_the_original():
    for variant in ("forward", "reversed", "pooled"):
        assert set(LSTMDetector(variant).state_dict()) == ORIGINAL_KEYS
    assert DEFAULT_VARIANT in ("forward", "reversed", "pooled")
    assert "lstm.weight_hh_l0_reverse" in LSTMDetector("bidirectional").state_dict()


def test_reversed_is_forward_on_the_flipped_curve():
    torch.manual_seed(0)
    forward = LSTMDetector("forward").eval()
    reversed_ = LSTMDetector("reversed").eval()
    reversed_.load_state_dict(forward.state_dict())
    x = torch.rand(4, 9)
    with torch.no_grad():
        torch.testing.assert_close(reversed_(x), forward(x.flip(1)))


def test_pooled_classifies_the_time_mean_of_the_outputs():
    model = LSTMDetector("pooled").eval()
    x = torch.rand(2, 5, 1)
    with torch.no_grad():
        out, _ = model.lstm(x)
        torch.testing.assert_close(model(x), model.classifier(out.mean(1)))


def test_unknown_variant_lists_the_valid_ones():
    with pytest.raises(ValueError, match="pooled"):
        LSTMDetector("sideways")
