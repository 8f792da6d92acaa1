import numpy as np
import pytest

from core.errors import UsageError
from datasets.noise import canonical_noise_type, corrupt_labels

TRUE = np.arange(20000) % 10


@pytest.mark.parametrize("kind", ["uniform", "flip"])
def test_same_seed_same_labels(kind):
    a = corrupt_labels(TRUE, ratio=0.3, noise_type=kind, num_classes=10, split_seed=7)
    b = corrupt_labels(TRUE, ratio=0.3, noise_type=kind, num_classes=10, split_seed=7)
    c = corrupt_labels(TRUE, ratio=0.3, noise_type=kind, num_classes=10, split_seed=8)
    assert np.array_equal(a.assigned, b.assigned)
    assert not np.array_equal(a.assigned, c.assigned)


def test_seeded_labels_are_fixed_across_machines():
    # numpy's PCG64 stream is specified, so these exact values hold everywhere.
    noisy = corrupt_labels(np.arange(10), ratio=0.5, noise_type="uniform", num_classes=10, split_seed=0)
    assert noisy.assigned.tolist() == [0, 9, 9, 4, 4, 5, 6, 7, 8, 9]


def test_flip_maps_to_next_class_exactly():
    noisy = corrupt_labels(TRUE, ratio=0.4, noise_type="flip", num_classes=10, split_seed=1)
    changed = noisy.flipped
    assert np.array_equal(noisy.assigned[changed], (TRUE[changed] + 1) % 10)
    assert np.array_equal(noisy.assigned[~changed], TRUE[~changed])
    assert abs(noisy.realised_rate - 0.4) < 0.015


def test_uniform_never_keeps_label_when_flipping_and_spreads_evenly():
    noisy = corrupt_labels(TRUE, ratio=0.2, noise_type="uniform", num_classes=10, split_seed=3)
    assert abs(noisy.realised_rate - 0.2) < 0.01
    assert np.all(noisy.assigned[noisy.flipped] != TRUE[noisy.flipped])
    offsets = (noisy.assigned[noisy.flipped] - TRUE[noisy.flipped]) % 10
    counts = np.bincount(offsets, minlength=10)
    assert counts[0] == 0 and counts[1:].min() > 0.8 * counts[1:].mean()


def test_zero_ratio_is_clean():
    assert corrupt_labels(TRUE, ratio=0.0, noise_type="uniform", num_classes=10, split_seed=0).realised_rate == 0


@pytest.mark.parametrize("alias,name", [("sym", "uniform"), ("asym", "flip"), ("FLIP", "flip")])
def test_aliases(alias, name):
    assert canonical_noise_type(alias) == name


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.5])
def test_bad_ratio(ratio):
    with pytest.raises(UsageError, match="noise_ratio"):
        corrupt_labels(TRUE, ratio=ratio, noise_type="uniform", num_classes=10, split_seed=0)


def test_bad_type_lists_valid():
    with pytest.raises(UsageError, match="valid: .*flip.*uniform"):
        canonical_noise_type("pairflip")
