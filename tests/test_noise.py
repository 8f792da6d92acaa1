import numpy as np
import pytest

from labeltrace.errors import UsageError
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


# Instance-dependent noise on real images (scikit-learn's digits: 1,797 8x8 images, no files needed).
def _digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    images = (d.images * 255 / 16).astype(np.uint8)[:, None]  # (N, 1, 8, 8) uint8, as the loaders give
    return images, d.target.astype(np.int64)


def test_instance_noise_is_seeded_exact_in_rate_and_only_real_wrong_classes():
    images, true = _digits()
    a = corrupt_labels(true, ratio=0.3, noise_type="instance", num_classes=10, split_seed=4, images=images)
    b = corrupt_labels(true, ratio=0.3, noise_type="instance", num_classes=10, split_seed=4, images=images)
    c = corrupt_labels(true, ratio=0.3, noise_type="instance", num_classes=10, split_seed=5, images=images)
    assert np.array_equal(a.assigned, b.assigned) and not np.array_equal(a.assigned, c.assigned)
    assert a.flipped.sum() == round(0.3 * 1797) == 539  # exactly, not about
    assert set(np.unique(a.assigned)) <= set(range(10)) and np.all(a.assigned[a.flipped] != true[a.flipped])


def test_instance_noise_hits_ambiguous_images_and_their_look_alike_classes():
    from datasets.noise import quick_model_probs

    images, true = _digits()
    noisy = corrupt_labels(true, ratio=0.2, noise_type="instance", num_classes=10, split_seed=1, images=images)
    probs = quick_model_probs(images, true, num_classes=10)
    p_true = probs[np.arange(len(true)), true]
    # Flipped images are the ones a quick model is unsure of (uniform noise would give equal means).
    assert p_true[noisy.flipped].mean() < p_true[~noisy.flipped].mean() - 0.05
    # Their new class is one the quick model finds likely: its rank among the 9 wrong classes is far below
    # the 4.0 (0-based mean of 0..8) that a uniformly drawn wrong class would have.
    flipped = np.flatnonzero(noisy.flipped)
    wrong = probs[flipped].copy()
    wrong[np.arange(len(flipped)), true[flipped]] = -1
    order = np.argsort(-wrong, axis=1)
    rank = np.argmax(order == noisy.assigned[flipped][:, None], axis=1)
    assert rank.mean() < 2.0


def test_instance_noise_needs_images():
    with pytest.raises(UsageError, match="instance: needs a dataset held in memory"):
        corrupt_labels(TRUE, ratio=0.2, noise_type="instance", num_classes=10, split_seed=0)
