"""Per-epoch input features of the detector, computed from the traces ``td``.

The paper's detector reads one curve per sample, the assigned label's probability (``prob``). A detector may
read several, each a function of one epoch's softmax, so that it can be applied to any run's traces:

- ``prob``: ``td[:, t, 0]``, the probability of the assigned label (the paper's input);
- ``margin``: ``prob`` minus the largest *other* probability at that epoch, in [-1, 1] (the per-epoch term of
  AUM). It says whether another class beats the assigned one: with flip noise the true class stays visible
  there, and it reads alike on runs that memorize their noisy labels and runs that do not;
- ``loss``: cross-entropy ``-log prob``, divided by ``log(1e4)`` and capped at 1 so it stays in [0, 1];
- ``entropy``: entropy of the softmax divided by ``log(C)``, in [0, 1];
- ``rank``: how many classes beat the assigned one at that epoch, divided by ``C - 1``, in [0, 1].

Run-context features are the same for every sample of a run: a statistic of the whole run at each epoch,
which tells the detector what regime the run is in (whether, and when, it memorizes its noisy labels):

- ``run_learned``: the fraction of the run's samples whose assigned label is the argmax at that epoch (the
  training accuracy on the assigned labels; 1 once a run has memorized its noise);
- ``run_spread``: the standard deviation of ``margin`` across the run's samples at that epoch, in [0, 1]
  (near 0 once every sample is fitted: those epochs carry no signal).

A run-relative feature places one sample among the run's others at each epoch:

- ``margin_quantile``: the fraction of the run's samples whose ``margin`` is below this sample's at that epoch,
  in [0, 1] (read from the run's margin percentiles, :data:`QUANTILES` + 1 per epoch, estimated on at most
  :data:`QUANTILE_ROWS` evenly spaced rows). Any change of scale that keeps the order of the samples at an
  epoch (a sharper softmax, a run that fits everything in one epoch, as fine-tuning does) leaves it unchanged.
- ``margin_class_quantile``: the same among the samples that share this sample's assigned label only, so a
  sample of a class that is hard for the network (every margin of that class low) is not read as suspicious
  for the class's sake; it needs the assigned labels (``labels=``).

A neighbour feature reads what the run recorded besides the softmax (``neighbours`` in the traces file,
:mod:`labeltrace.neighbours`):

- ``neighbours``: the fraction of the sample's k nearest neighbours in the network's penultimate features that
  share its assigned label at that epoch, in [0, 1]; it needs the run's recording (``neighbours=``);
- ``neighbours_class``: ``neighbours`` minus the mean agreement of the samples of the same assigned label at that
  epoch, in [-1, 1], so that a class whose samples all have few neighbours of their own label (a class the
  network confuses with another) is not read as suspicious for the class's sake; it needs ``labels=`` too.
- ``neighbours_class_quantile``: the sample's place among the agreements of the samples of its assigned class at
  that epoch, in [0, 1] (the fraction below it plus half the fraction equal to it, read from a histogram of
  :data:`AGREEMENT_BINS` levels per class and epoch). A clean sample of a class the network mixes up with
  another has few same-label neighbours, as a mislabeled one does, but it is not low *among its class*; unlike
  ``neighbours_class`` it does not depend on how spread the class's agreements are.

Every value is bounded, so an LSTM trained on one run's scale reads another's alike. A checkpoint stores the
names it reads (``features``); scoring computes the same ones, in the same order.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from labeltrace.compact import require_full
from labeltrace.traces import resample_time

__all__: list[str] = []  # internal: used by the public modules and the research pipeline

PAPER_FEATURES = ("prob",)
_LOSS_CAP = np.log(1e4)  # -log p beyond p = 1e-4 carries no more information at float16 precision
_CHUNK_ROWS = 16384  # rows per float32 conversion: bounds the memory of a million-trace run


def _prob(td: np.ndarray) -> np.ndarray:
    return td[:, :, 0]


def _margin(td: np.ndarray) -> np.ndarray:
    return td[:, :, 0] - td[:, :, 1:].max(axis=2)


def _loss(td: np.ndarray) -> np.ndarray:
    return np.minimum(-np.log(np.maximum(td[:, :, 0], 1e-30)) / _LOSS_CAP, 1.0)


def _entropy(td: np.ndarray) -> np.ndarray:
    p = np.maximum(td, 1e-30)
    return -(td * np.log(p)).sum(axis=2) / np.log(td.shape[2])


def _rank(td: np.ndarray) -> np.ndarray:
    return (td[:, :, 1:] > td[:, :, :1]).sum(axis=2) / (td.shape[2] - 1)


SAMPLE_FEATURES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "prob": _prob, "margin": _margin, "loss": _loss, "entropy": _entropy, "rank": _rank,
}
RUN_FEATURES = ("run_learned", "run_spread")
RELATIVE_FEATURES = ("margin_quantile", "margin_class_quantile")
LABEL_FEATURES = ("margin_class_quantile", "neighbours_class", "neighbours_class_quantile")  # need each row's assigned label
FULL_VECTOR_FEATURES = ("entropy", "rank")  # need every class's probability: not in the compact layout
NEIGHBOUR_FEATURES = ("neighbours", "neighbours_class", "neighbours_class_quantile")  # need the run's recorded neighbour agreement (N, T)
FEATURES = (*SAMPLE_FEATURES, *RUN_FEATURES, *RELATIVE_FEATURES, *NEIGHBOUR_FEATURES)
_WHOLE_RUN = (*RUN_FEATURES, *RELATIVE_FEATURES, "neighbours_class", "neighbours_class_quantile")  # need statistics of the whole run
QUANTILES = 100  # percentiles 0, 1, ..., 100 of the margin per epoch
AGREEMENT_BINS = 101  # agreement levels 0, 0.01, ..., 1: exact for k dividing 100 (k = 20 by default)
QUANTILE_ROWS = 65536  # an empirical CDF from 65k rows is within ~0.005 of the whole run's


def needs_labels(names: Sequence[str]) -> bool:
    """Whether features ``names`` need each trace's assigned label (``labels=`` of :func:`feature_stack`)."""
    return any(n in LABEL_FEATURES for n in names)


def needs_neighbours(names: Sequence[str]) -> bool:
    """Whether features ``names`` read the run's recorded neighbour agreement (``neighbours=``)."""
    return any(n in NEIGHBOUR_FEATURES for n in names)


def check_neighbours(neighbours, td_shape: tuple[int, ...]) -> np.ndarray:
    """``neighbours`` as an array, once it has shape (N, T) of ``td`` (N, T, C); else ``ValueError``."""
    neighbours = np.asarray(neighbours)
    if neighbours.shape != tuple(td_shape[:2]):
        raise ValueError(f"neighbours must be the recorded neighbour agreement of shape {tuple(td_shape[:2])} "
                         f"(N, T), got {neighbours.shape}")
    if not np.issubdtype(neighbours.dtype, np.number) or not np.all((neighbours >= 0) & (neighbours <= 1)):
        raise ValueError("neighbours must be the recorded neighbour agreement, fractions in [0, 1] (NaN and values "
                         "outside are not)")
    return neighbours


def needs_context(names: Sequence[str]) -> bool:
    """Whether features ``names`` need :func:`run_context` of the whole run (not only of a chunk's rows)."""
    return any(n in _WHOLE_RUN for n in names)


def margin_quantiles(td: np.ndarray) -> np.ndarray:
    """The margin's percentiles 0..100 at each epoch, shape (T, :data:`QUANTILES` + 1), over at most
    :data:`QUANTILE_ROWS` evenly spaced rows of ``td`` (N, T, C)."""
    step = max(1, -(-len(td) // QUANTILE_ROWS))
    margin = np.sort(np.ascontiguousarray(_margin(np.asarray(td[::step], dtype=np.float32)).T), axis=1)  # (T, n)
    # numpy's default ("linear") percentile, from one sort: percentile k sits at position k / 100 x (n - 1).
    position = np.linspace(0, margin.shape[1] - 1, QUANTILES + 1)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, margin.shape[1] - 1)
    weight = position - low
    return (margin[:, low] * (1 - weight) + margin[:, high] * weight).astype(np.float32)


def class_margin_quantiles(td: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """:func:`margin_quantiles` of each assigned class's rows: shape (num_classes, T, :data:`QUANTILES` + 1);
    a class without rows gets zeros (no row reads them)."""
    labels = np.asarray(labels)
    out = np.zeros((num_classes, td.shape[1], QUANTILES + 1), dtype=np.float32)
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        out[c] = margin_quantiles(td[rows[::max(1, -(-len(rows) // QUANTILE_ROWS))]])
    return out


def _margin_class_quantile(td: np.ndarray, labels: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """:func:`_margin_quantile` within each row's assigned class, (N, T), one ``np.interp`` per epoch: class c's
    margins and percentiles are moved to [4c - 1, 4c + 1] (margins lie in [-1, 1]) and each class's block is
    fenced by level 0 at 4c - 1.5 and level 1 at 4c + 1.5, so no row interpolates into another class's block."""
    margin, shift = _margin(td), 4 * np.asarray(labels, dtype=np.float64)
    classes = np.arange(quantiles.shape[0], dtype=np.float64)[:, None]
    levels = np.concatenate([[0.0], np.linspace(0, 1, quantiles.shape[2]), [1.0]])
    levels = np.tile(levels, quantiles.shape[0])
    out = np.empty_like(margin)
    for t in range(margin.shape[1]):
        points = np.concatenate([4 * classes - 1.5, quantiles[:, t] + 4 * classes, 4 * classes + 1.5], axis=1)
        out[:, t] = np.interp(margin[:, t] + shift, points.ravel(), levels)
    return out


def _margin_quantile(td: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Each sample's place among the run's margins at each epoch, (N, T) in [0, 1]: the margin's position in
    that epoch's percentiles, interpolated linearly (a margin between percentiles k and k+1 reads between
    k/100 and (k+1)/100; below the smallest 0, above the largest 1; a margin that several percentiles equal,
    a tie, reads as the highest of their levels, so a run of equal margins reads 1)."""
    margin = _margin(td)
    levels = np.linspace(0, 1, quantiles.shape[1])
    out = np.empty_like(margin)
    for t in range(margin.shape[1]):
        out[:, t] = np.interp(margin[:, t], quantiles[t], levels)
    return out


def class_neighbours(neighbours: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """The mean neighbour agreement of each assigned class at each epoch, shape (num_classes, T), float32, from
    ``neighbours`` (N, T) and ``labels`` (N,); a class without rows gets zeros (no row reads them)."""
    sums = np.zeros((num_classes, neighbours.shape[1]), dtype=np.float64)
    np.add.at(sums, labels, np.asarray(neighbours, dtype=np.float64))
    counts = np.bincount(labels, minlength=num_classes)[:, None]
    return (sums / np.maximum(counts, 1)).astype(np.float32)


def agreement_bins(neighbours: np.ndarray) -> np.ndarray:
    """Each agreement's level among :data:`AGREEMENT_BINS`, int64 of the shape of ``neighbours``."""
    return np.rint(np.asarray(neighbours, dtype=np.float32) * (AGREEMENT_BINS - 1)).astype(np.int64)


def class_agreement_cdf(neighbours: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """For each assigned class, epoch and agreement level b, the fraction of the class's rows whose agreement is
    below level b plus half the fraction at b: shape (num_classes, T, :data:`AGREEMENT_BINS`), float32, from
    ``neighbours`` (N, T) and ``labels`` (N,); a class without rows gets zeros (no row reads them)."""
    t = neighbours.shape[1]
    size = num_classes * t * AGREEMENT_BINS
    counts = np.zeros(size, dtype=np.float64)
    for start in range(0, len(labels), _CHUNK_ROWS):
        bins = agreement_bins(neighbours[start:start + _CHUNK_ROWS])
        # One flat index per (class, epoch, level): bincount counts them far faster than np.add.at.
        flat = (labels[start:start + _CHUNK_ROWS, None] * t + np.arange(t)) * AGREEMENT_BINS + bins
        counts += np.bincount(flat.ravel(), minlength=size)
    counts = counts.reshape(num_classes, t, AGREEMENT_BINS)
    total = np.maximum(counts.sum(axis=2, keepdims=True), 1.0)
    below = np.cumsum(counts, axis=2) - counts
    return ((below + 0.5 * counts) / total).astype(np.float32)


def run_context(td: np.ndarray, labels: np.ndarray | None = None, *,
                names: Sequence[str] = FEATURES, neighbours: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """What features ``names`` need of the whole run (all of them by default): the run-context features,
    ``{name: array of shape (T,)}`` (chunked over rows); ``"margin_quantiles"``, :func:`margin_quantiles`
    (T, 101), which ``margin_quantile`` reads; and, given the assigned ``labels`` (N,),
    ``"class_margin_quantiles"`` (C, T, 101) for ``margin_class_quantile``."""
    if td.ndim != 3 or td.shape[2] < 2 or len(td) == 0:
        raise ValueError(f"td must have shape (N, T, C) with N >= 1 and C >= 2, got {td.shape}")
    context = _run_statistics(td) if any(n in RUN_FEATURES for n in names) else {}
    if "margin_quantile" in names:
        context["margin_quantiles"] = margin_quantiles(td)
    if labels is not None and "margin_class_quantile" in names:
        labels = check_labels(labels, len(td))
        context["class_margin_quantiles"] = class_margin_quantiles(td, labels, int(labels.max()) + 1)
    if labels is not None and neighbours is not None and "neighbours_class" in names:
        labels = check_labels(labels, len(td))
        context["class_neighbours"] = class_neighbours(check_neighbours(neighbours, td.shape), labels,
                                                       int(labels.max()) + 1)
    if labels is not None and neighbours is not None and "neighbours_class_quantile" in names:
        labels = check_labels(labels, len(td))
        context["class_agreement_cdf"] = class_agreement_cdf(check_neighbours(neighbours, td.shape), labels,
                                                             int(labels.max()) + 1)
    return context


def _run_statistics(td: np.ndarray) -> dict[str, np.ndarray]:
    """``run_learned`` and ``run_spread`` of :data:`RUN_FEATURES`, each of shape (T,), one chunked pass."""
    learned = np.zeros(td.shape[1])
    total = np.zeros(td.shape[1])
    squares = np.zeros(td.shape[1])
    for start in range(0, td.shape[0], _CHUNK_ROWS):
        chunk = np.asarray(td[start:start + _CHUNK_ROWS], dtype=np.float32)
        margin = _margin(chunk).astype(np.float64)
        learned += (margin > 0).sum(axis=0)
        total += margin.sum(axis=0)
        squares += (margin ** 2).sum(axis=0)
    n = td.shape[0]
    spread = np.sqrt(np.maximum(squares / n - (total / n) ** 2, 0.0))
    return {"run_learned": (learned / n).astype(np.float32), "run_spread": spread.astype(np.float32)}


def check_labels(labels, n: int) -> np.ndarray:
    """``labels`` as an array, once it holds ``n`` non-negative integers; else ``ValueError``."""
    labels = np.asarray(labels)
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer) or (n and labels.min() < 0):
        raise ValueError(f"labels must be the {n} assigned labels (non-negative integers), got {labels.dtype} of "
                         f"shape {labels.shape}")
    return labels


def check_features(names: Sequence[str] | str) -> tuple[str, ...]:
    """The names as a tuple (a comma-separated string is split); ``ValueError`` for unknown or repeated ones."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    names = tuple(names)
    unknown = [n for n in names if n not in FEATURES]
    if not names or unknown or len(set(names)) != len(names):
        raise ValueError(f"features must be distinct names from {', '.join(FEATURES)}; got {', '.join(names) or 'none'}")
    return names


def feature_stack(td: np.ndarray, names: Sequence[str], context: dict[str, np.ndarray] | None = None, *,
                  labels: np.ndarray | None = None, neighbours: np.ndarray | None = None) -> np.ndarray:
    """The detector's input: features per epoch, float32 array of shape (N, T, F), F = ``len(names)``.

    Parameters
    ----------
    td : array of shape (N, T, C), C >= 2 (float16 as stored is fine: converted a chunk of rows at a time)
    names : feature names from :data:`FEATURES`
    context : :func:`run_context` of the *whole* run, needed when ``td`` is only some of its rows and a
        run-context or run-relative feature is asked for (else computed from ``td``)
    labels : the assigned label of each row of ``td``, shape (N,), for ``margin_class_quantile``
    neighbours : the recorded neighbour agreement of each row of ``td``, shape (N, T), for ``neighbours``
    """
    names = check_features(names)
    for name in FULL_VECTOR_FEATURES:
        if name in names:
            require_full(td, f"the detector feature {name!r}")
    if td.ndim != 3 or td.shape[2] < 2:
        raise ValueError(f"td must have shape (N, T, C) with C >= 2, got {td.shape}")
    if needs_labels(names):
        if labels is None:
            raise ValueError(f"the features {', '.join(names)} need each trace's assigned label: pass labels=")
        labels = check_labels(labels, len(td))
    if needs_neighbours(names):
        if neighbours is None:
            raise ValueError(f"the features {', '.join(names)} need the run's neighbour agreement: record it "
                             "(runner.py --neighbours K) and pass neighbours=")
        neighbours = check_neighbours(neighbours, td.shape)
    if context is None and needs_context(names):
        context = run_context(td, labels, names=names, neighbours=neighbours)
    out = np.empty((td.shape[0], td.shape[1], len(names)), dtype=np.float32)
    for start in range(0, td.shape[0], _CHUNK_ROWS):
        chunk = np.asarray(td[start:start + _CHUNK_ROWS], dtype=np.float32)
        for j, name in enumerate(names):
            if name in RUN_FEATURES:
                value = context[name]
            elif name == "margin_quantile":
                value = _margin_quantile(chunk, context["margin_quantiles"])
            elif name == "neighbours":
                value = neighbours[start:start + len(chunk)]
            elif name == "neighbours_class":
                rows = labels[start:start + len(chunk)]
                value = neighbours[start:start + len(chunk)].astype(np.float32) - context["class_neighbours"][rows]
            elif name == "neighbours_class_quantile":
                rows = labels[start:start + len(chunk)]
                bins = agreement_bins(neighbours[start:start + len(chunk)])
                value = context["class_agreement_cdf"][rows[:, None], np.arange(bins.shape[1]), bins]
            elif name == "margin_class_quantile":
                value = _margin_class_quantile(chunk, labels[start:start + len(chunk)],
                                               context["class_margin_quantiles"])
            else:
                value = SAMPLE_FEATURES[name](chunk)
            out[start:start + len(chunk), :, j] = value
    return out


def detector_inputs(td: np.ndarray, names: Sequence[str], length: int | None = None,
                    context: dict[str, np.ndarray] | None = None, *, labels: np.ndarray | None = None,
                    neighbours: np.ndarray | None = None) -> np.ndarray:
    """:func:`feature_stack` of ``td`` (N, T, C), resampled in time to ``length`` steps when given:
    float32 array of shape (N, length or T, F)."""
    x = feature_stack(td, names, context, labels=labels, neighbours=neighbours)
    return x if length is None or length == x.shape[1] else resample_time(x, length)
