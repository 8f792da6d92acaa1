"""Label noise synthesis (STEP 1), drawn from its own seed: uniform (symmetric), flip (asymmetric) and
instance-dependent (which samples flip, and to what, depends on the image)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labeltrace.errors import fail

# The seed README's "asym"/"sym" spellings are accepted as aliases of the original code's names.
NOISE_TYPES = {"uniform": "uniform", "sym": "uniform", "symmetric": "uniform",
               "flip": "flip", "asym": "flip", "asymmetric": "flip", "instance": "instance"}
# The quick model behind instance noise: softmax regression on average-pooled pixels (at most 8x8 per channel),
# fixed-step full-batch gradient descent in float64 so the same seed gives the same labels everywhere.
_QUICK_POOL_TO = 8
_QUICK_STEPS = 150
_QUICK_LR = 0.5
_QUICK_L2 = 1e-3


def noise_rng(split_seed: int) -> np.random.Generator:
    """The label noise and the train/valid split draw from their own seed, identical on every machine."""
    return np.random.default_rng(split_seed)


def calibration_rng(split_seed: int) -> np.random.Generator:
    """Self-calibration's injected labels (``--calibrate``): a stream of its own, so the data's noise and split,
    drawn from :func:`noise_rng`, are the same with and without it."""
    return np.random.default_rng([split_seed, 0xCA11B])


@dataclass(frozen=True)
class NoisyLabels:
    """Assigned labels of the training set and which of them were changed.

    assigned : int64 array of shape (N,)
    flipped : bool array of shape (N,), ``assigned != true``
    """

    assigned: np.ndarray
    flipped: np.ndarray

    @property
    def realised_rate(self) -> float:
        return float(self.flipped.mean()) if len(self.flipped) else 0.0


def canonical_noise_type(name: str) -> str:
    try:
        return NOISE_TYPES[name.lower()]
    except KeyError:
        fail(f"--noise_type: unknown noise type {name!r}; valid: {', '.join(sorted(NOISE_TYPES))}")


def corrupt_labels(true: np.ndarray, *, ratio: float, noise_type: str, num_classes: int,
                   split_seed: int, images: np.ndarray | None = None) -> NoisyLabels:
    """Corrupt labels the way the paper's code does.

    uniform: each sample keeps its label with probability ``1 - ratio``, otherwise it takes a class drawn
    uniformly among the *other* classes (so a flipped label never equals the true one).
    flip: class ``c`` becomes ``(c + 1) mod num_classes`` with probability ``ratio``.
    Both are sampled per sample, so the realised rate is only about ``ratio``.
    instance: see :func:`instance_noise` (needs ``images``); exactly ``round(ratio * N)`` labels change.

    Parameters
    ----------
    true : int array of shape (N,), the clean labels
    images : uint8 array of shape (N, C, H, W), only for ``instance`` noise
    """
    kind = canonical_noise_type(noise_type)
    if not 0.0 <= ratio < 1.0:
        fail(f"--noise_ratio: expected a value in [0, 1), got {ratio}")
    true = np.asarray(true, dtype=np.int64)
    rng = noise_rng(split_seed)
    if kind == "instance":
        if images is None:
            fail("--noise_type instance: needs a dataset held in memory (digits, fashion_mnist, cifar10/100)")
        assigned = instance_noise(images, true, ratio=ratio, num_classes=num_classes, rng=rng)
        return NoisyLabels(assigned=assigned, flipped=assigned != true)
    flip = rng.random(len(true)) < ratio
    if kind == "uniform":
        # An offset in 1..C-1 added mod C picks uniformly among the other classes.
        offset = rng.integers(1, num_classes, size=len(true)) if num_classes > 1 else np.zeros(len(true), np.int64)
        noisy = (true + offset) % num_classes
    else:
        noisy = (true + 1) % num_classes
    assigned = np.where(flip, noisy, true)
    return NoisyLabels(assigned=assigned, flipped=assigned != true)


def quick_model_probs(images: np.ndarray, true: np.ndarray, *, num_classes: int) -> np.ndarray:
    """Class probabilities of a quickly trained linear model, shape (N, num_classes), float64.

    Softmax regression on the images average-pooled to at most 8x8 per channel and standardized, fitted to
    the clean labels by a fixed number of full-batch gradient steps: its confusions are what a weak classifier
    finds ambiguous in *this* image (a 4 that looks like a 9), which is what instance noise imitates.
    """
    x = np.asarray(images, dtype=np.float64)
    if x.ndim != 4 or len(x) != len(true):
        raise ValueError(f"images must have shape (N, C, H, W) with N={len(true)}, got {x.shape}")
    n, c, h, w = x.shape
    fh, fw = max(1, h // _QUICK_POOL_TO), max(1, w // _QUICK_POOL_TO)
    x = x[:, :, :h - h % fh, :w - w % fw].reshape(n, c, h // fh, fh, w // fw, fw).mean(axis=(3, 5))
    x = x.reshape(n, -1)
    x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-6)
    x = np.hstack([x, np.ones((n, 1))])
    onehot = np.eye(num_classes)[true]
    weights = np.zeros((x.shape[1], num_classes))
    for _ in range(_QUICK_STEPS):
        probs = _softmax(x @ weights)
        weights -= _QUICK_LR * (x.T @ (probs - onehot) / n + _QUICK_L2 * weights)
    return _softmax(x @ weights)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def instance_noise(images: np.ndarray, true: np.ndarray, *, ratio: float, num_classes: int,
                   rng: np.random.Generator) -> np.ndarray:
    """Instance-dependent noise: assigned labels, int64 array of shape (N,).

    Exactly ``round(ratio * N)`` samples change, drawn without replacement with probability proportional to
    how unsure a quick model is of their true class (``1 - p(true | image)``, :func:`quick_model_probs`); each
    takes a wrong class drawn from that model's probabilities over the other classes. So hard, ambiguous
    images are mislabeled more often, and into the classes they resemble, as human annotators do (the idea of
    instance-dependent noise benchmarks such as Xia et al. 2020 and CIFAR-N, with a linear model as annotator).
    """
    true = np.asarray(true, dtype=np.int64)
    n = len(true)
    count = int(round(ratio * n))
    assigned = true.copy()
    if count == 0 or num_classes < 2:
        return assigned
    probs = quick_model_probs(images, true, num_classes=num_classes)
    unsure = np.clip(1.0 - probs[np.arange(n), true], 1e-12, None)
    chosen = np.sort(rng.choice(n, size=count, replace=False, p=unsure / unsure.sum()))
    wrong = probs[chosen].copy()
    wrong[np.arange(count), true[chosen]] = 0.0
    wrong /= wrong.sum(axis=1, keepdims=True)
    # One uniform draw per chosen sample against its cumulative wrong-class distribution.
    u = rng.random(count)[:, None]
    drawn = np.minimum((u > np.cumsum(wrong, axis=1)).sum(axis=1), num_classes - 1)
    # Rounding in the cumulative sum (u at an edge) could land on the true class: take the likeliest wrong one.
    drawn = np.where(drawn == true[chosen], wrong.argmax(axis=1), drawn)
    assigned[chosen] = drawn
    return assigned


def inject_labels(assigned: np.ndarray, true: np.ndarray, *, ratio: float, rows: np.ndarray, num_classes: int,
                  split_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Self-calibration: flip exactly ``round(ratio * len(rows))`` of the training positions ``rows`` on top of
    ``assigned``, each to a class drawn uniformly among those that are neither its assigned nor its true label
    (an injected flip never repairs a label, so every injected label is wrong).

    Drawn from its own stream of ``split_seed`` (:func:`calibration_rng`): the data's own noise is the
    same with and without ``--calibrate``.

    Parameters
    ----------
    assigned, true : int arrays of shape (N_full,), the labels so far and the clean ones
    rows : int array of shape (N,), the training positions eligible (validation samples keep their labels)

    Returns
    -------
    assigned : int64 array of shape (N_full,), with the injected labels
    injected : bool array of shape (N_full,)
    """
    if num_classes < 3:
        fail(f"--calibrate: needs at least 3 classes (a flip must differ from the given and the true label), "
             f"the dataset has {num_classes}")
    rng = calibration_rng(split_seed)
    chosen = np.sort(rng.choice(np.asarray(rows), size=int(round(ratio * len(rows))), replace=False))
    allowed = np.ones((len(chosen), num_classes), bool)
    allowed[np.arange(len(chosen)), assigned[chosen]] = False
    allowed[np.arange(len(chosen)), true[chosen]] = False
    # The k-th allowed class, k uniform in 0..(number allowed - 1), found through the running count of allowed.
    k = np.floor(rng.random(len(chosen)) * allowed.sum(1)).astype(np.int64)
    pick = np.argmax(allowed.cumsum(1) > k[:, None], axis=1)
    out = np.asarray(assigned, dtype=np.int64).copy()
    out[chosen] = pick
    injected = np.zeros(len(out), bool)
    injected[chosen] = True
    return out, injected
