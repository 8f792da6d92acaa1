"""Label noise synthesis (STEP 1): uniform (symmetric) and flip (asymmetric), drawn from its own seed."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.errors import fail
from core.seed import noise_rng

# The seed README's "asym"/"sym" spellings are accepted as aliases of the original code's names.
NOISE_TYPES = {"uniform": "uniform", "sym": "uniform", "symmetric": "uniform",
               "flip": "flip", "asym": "flip", "asymmetric": "flip"}


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
                   split_seed: int) -> NoisyLabels:
    """Corrupt labels the way the paper's code does.

    uniform: each sample keeps its label with probability ``1 - ratio``, otherwise it takes a class drawn
    uniformly among the *other* classes (so a flipped label never equals the true one).
    flip: class ``c`` becomes ``(c + 1) mod num_classes`` with probability ``ratio``.
    Both are sampled per sample, so the realised rate is only about ``ratio``.

    Parameters
    ----------
    true : int array of shape (N,), the clean labels
    """
    kind = canonical_noise_type(noise_type)
    if not 0.0 <= ratio < 1.0:
        fail(f"--noise_ratio: expected a value in [0, 1), got {ratio}")
    true = np.asarray(true, dtype=np.int64)
    rng = noise_rng(split_seed)
    flip = rng.random(len(true)) < ratio
    if kind == "uniform":
        # An offset in 1..C-1 added mod C picks uniformly among the other classes.
        offset = rng.integers(1, num_classes, size=len(true)) if num_classes > 1 else np.zeros(len(true), np.int64)
        noisy = (true + offset) % num_classes
    else:
        noisy = (true + 1) % num_classes
    assigned = np.where(flip, noisy, true)
    return NoisyLabels(assigned=assigned, flipped=assigned != true)
