"""The tables' cells: values read from the finished runs' summary.json, one dict per seed, reduced to
``mean +- std`` over the seeds, and laid out as Markdown."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

Values = dict[str, Any]  # one run's (seed's) values of a table row, by column key


def summary(path: Path) -> dict[str, Any]:
    """A finished STEP 3 or data-debugging run's summary.json."""
    return json.loads(Path(path).read_text())


def step3_values(path: Path) -> Values:
    """A STEP 3 run's row values (from its summary.json): what was removed, how much of it was noise, the
    retrained test accuracy."""
    s = summary(path)
    detection = s.get("detection") or {}
    return {"removed": s.get("num_removed"), "roc_auc": detection.get("roc_auc"),
            "map": detection.get("average_precision"), "precision": s.get("precision_at_cut"),
            "noise_after": s.get("noise_rate_after"), "best": s.get("best_test_accuracy"),
            "last": s.get("last_test_accuracy")}


def detection_values(td_run: Path, specs: dict[str, str]) -> Values:
    """ROC-AUC and mAP of each scorer of ``specs`` (by key: a detector checkpoint or ``baseline:<name>``) on one
    STEP 1 run's traces, as ``<key>/roc_auc`` and ``<key>/map`` (no retraining: the scores rank, nothing more);
    empty without ground truth."""
    from labeltrace.metrics import detection_metrics
    from labeltrace.traces import load_run
    from labeltrace.scoring import score_run

    traces = load_run(td_run)
    flipped = traces.label_flipped
    if flipped is None or not flipped.any():
        return {}
    values: Values = {}
    for key, spec in specs.items():
        metrics = detection_metrics(score_run(spec, traces).p_noisy, flipped, remove_ratio=float(flipped.mean()))
        values[f"{key}/roc_auc"], values[f"{key}/map"] = metrics.roc_auc, metrics.average_precision
    return values


def baseline_values(td_run: Path, baseline: str) -> Values:
    """ROC-AUC and mAP of a hand-crafted score on a STEP 1 run; empty without ground truth."""
    values = detection_values(td_run, {baseline: f"baseline:{baseline}"})
    return {"roc_auc": values[f"{baseline}/roc_auc"], "map": values[f"{baseline}/map"]} if values else {}


def mean_std(values: list[Any], fmt: str = ".4f") -> str:
    """``"0.9512 ± 0.0031"`` over several seeds, ``"0.9512"`` for one, ``"-"`` for none; integers that agree
    across seeds print once (``"7,500"``)."""
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if all(isinstance(v, (int, np.integer)) for v in values) and len(set(values)) == 1:
        return f"{values[0]:,}"
    if len(values) == 1:
        return format(float(values[0]), fmt)
    return f"{np.mean(values):{fmt}} ± {np.std(values):{fmt}}"


Column = tuple[str, str, str]  # (header, value key, format)


def row_cells(label: list[str], seeds: list[Values], columns: list[Column]) -> list[str]:
    """A table row: the label cells, then each column's mean +- std over the seeds' values."""
    return [*label, *(mean_std([v.get(key) for v in seeds], fmt) for _, key, fmt in columns)]


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in rows])


def per_seed(seeds: tuple[int, ...], make: Callable[[int], Values | None]) -> list[Values]:
    """``make(seed)`` for each seed, dropping the Nones (a run a table does not have at some seed)."""
    return [v for v in (make(seed) for seed in seeds) if v is not None]
