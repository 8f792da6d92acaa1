"""Tables for a plain MLP: scikit-learn's bundled sets and generated ones, with each sample's ambiguity.

:func:`load_table` gives standardized float32 features (N, D), the true labels, each sample's *ambiguity*
(1 minus the probability a cross-validated logistic regression gives its true class: high where the table
itself makes the sample look like another class) and each class's *partner*, the class its samples are most
often mistaken for by that same model (what ``flip`` and ``instance`` noise move labels to,
:mod:`datasets.generated_noise`).

| name | N | D | classes |
|---|---|---|---|
| ``wine`` | 178 | 13 | 3 |
| ``breast_cancer`` | 569 | 30 | 2 |
| ``digits_table`` | 1797 | 64 | 10 |
| ``generated`` | 2000 | 20 | 5 (``make_classification``, 8 informative features, ``random_state=seed``) |
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labeltrace.errors import UsageError

TABLES = ("wine", "breast_cancer", "digits_table", "generated")


@dataclass(frozen=True)
class Table:
    """``features`` float32 (N, D), standardized; ``labels`` int64 (N,); ``ambiguity`` float64 (N,) in [0, 1];
    ``partner`` int64 (num_classes,), never the class itself."""

    features: np.ndarray
    labels: np.ndarray
    ambiguity: np.ndarray
    partner: np.ndarray
    num_classes: int


def _raw(name: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets as sk

    if name == "generated":
        return sk.make_classification(n_samples=2000, n_features=20, n_informative=8, n_redundant=4,
                                      n_classes=5, n_clusters_per_class=2, class_sep=1.2, flip_y=0.0,
                                      random_state=seed)
    loader = {"wine": sk.load_wine, "breast_cancer": sk.load_breast_cancer, "digits_table": sk.load_digits}[name]
    data = loader()
    return data.data, data.target


def load_table(name: str, seed: int = 0) -> Table:
    """Table ``name`` of :data:`TABLES`; ``seed`` only changes ``generated`` (the bundled sets are fixed)."""
    if name not in TABLES:
        raise UsageError(f"table must be one of {', '.join(TABLES)}, got {name!r}")
    x, y = _raw(name, seed)
    x = (x - x.mean(axis=0)) / np.maximum(x.std(axis=0), 1e-8)
    y = np.asarray(y, dtype=np.int64)
    ambiguity, partner = cross_val_ambiguity(x, y)
    return Table(features=x.astype(np.float32), labels=y, ambiguity=ambiguity, partner=partner,
                 num_classes=int(y.max()) + 1)


def cross_val_ambiguity(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each sample's ambiguity, float64 (N,) in [0, 1], and each class's partner, int64 (C,), from a 3-fold
    cross-validated logistic regression on ``x`` (N, D) and the true labels ``y`` (N,) (deterministic)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    c = int(y.max()) + 1
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
    probs = cross_val_predict(LogisticRegression(max_iter=300, C=0.5), x, y, cv=folds, method="predict_proba")
    confusion = np.zeros((c, c))
    np.add.at(confusion, y, probs)
    np.fill_diagonal(confusion, -1.0)  # the partner is another class
    return 1.0 - probs[np.arange(len(y)), y], confusion.argmax(axis=1).astype(np.int64)
