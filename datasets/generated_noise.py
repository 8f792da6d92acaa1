"""Label noise for the generated tasks (:mod:`datasets.text`, :mod:`datasets.tabular`), with an exact rate.

Exactly ``round(ratio * N)`` labels change, so a test can check the rate and a run's noise is the one its name
says. Three kinds:

- ``uniform``: the changed samples are drawn uniformly; each takes a class drawn uniformly among the others;
- ``flip``: the changed samples are drawn uniformly; each takes its class's *partner* (``partner[c]``, the class
  the task makes confusable with ``c``), the noise of an annotator who mixes up two similar classes;
- ``instance``: the changed samples are drawn with probability proportional to their ``ambiguity`` (how much of
  the sample looks like the partner class), and each takes the partner: the noise lands on the samples an
  annotator would get wrong, not on clear ones.
"""
from __future__ import annotations

import numpy as np

from labeltrace.errors import UsageError

NOISE_KINDS = ("uniform", "flip", "instance")


def generated_noise(true: np.ndarray, *, ratio: float, kind: str, num_classes: int, partner: np.ndarray,
                    ambiguity: np.ndarray, seed: int) -> np.ndarray:
    """The assigned labels, int64 (N,): ``true`` (N,) with exactly ``round(ratio * N)`` entries changed.

    ``partner`` (num_classes,): each class's confusable class (never itself); ``ambiguity`` (N,) in [0, 1]:
    each sample's weight for ``instance`` noise. Seeded by ``seed`` alone: the same call gives the same labels.
    """
    if kind not in NOISE_KINDS:
        raise UsageError(f"noise kind must be one of {', '.join(NOISE_KINDS)}, got {kind!r}")
    if not 0.0 <= ratio < 1.0:
        raise UsageError(f"noise ratio must be in [0, 1), got {ratio}")
    true = np.asarray(true, dtype=np.int64)
    rng = np.random.default_rng([seed, 7919])  # a stream of its own: the data's seed draws the samples
    count = int(round(ratio * len(true)))
    if kind == "instance":
        weight = np.asarray(ambiguity, dtype=np.float64) + 1e-6  # a sample of ambiguity 0 is still possible
        rows = rng.choice(len(true), size=count, replace=False, p=weight / weight.sum())
    else:
        rows = rng.choice(len(true), size=count, replace=False)
    assigned = true.copy()
    if kind == "uniform":
        assigned[rows] = (true[rows] + rng.integers(1, num_classes, size=count)) % num_classes
    else:
        assigned[rows] = np.asarray(partner)[true[rows]]
    return assigned
