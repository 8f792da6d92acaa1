"""Load a detector checkpoint safely, score traces of any length, order and cut them.

A checkpoint is ``torch.save({'epoch', 'state_dict', 'best_prec', 'optimizer', ...})``, the original's four
keys plus ours (``variant``, ``train_length``, ``features``, ``anchor``, ``val_auc``, ``val_map``, ``args``,
``history``); a checkpoint without ``features`` reads the paper's one channel (``prob``), without ``anchor`` none. It is always
read with ``weights_only=True``: a checkpoint is code from a stranger until proven otherwise.
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from labeltrace.errors import UsageError
from labeltrace.io import check_torch_file
from labeltrace.features import (PAPER_FEATURES, check_features, feature_stack, needs_context, needs_labels,
                                 needs_neighbours, run_context)
from labeltrace.lstm import ORIGINAL_VARIANT, VARIANTS, LSTMDetector
from labeltrace.metrics import DetectionMetrics, detection_metrics, format_metrics, removal_cut
from labeltrace.traces import resample_time

__all__ = ["GENERALIST", "GENERALIST_SOFTMAX", "DetectorInfo", "load_detector", "score", "predict_p_noisy",
           "generalist_for", "get_order"]

# The shipped default detectors (benchmarks/make_generalist.sh), installed as package data: the quick start,
# find_issues.py, the `labeltrace` command and the API use them. checkpoints/ in a clone links to the same files.
# GENERALIST reads the neighbour agreement a run records besides the softmax; a run without it (an older run, the
# original code's, the compact layout, a loop that passes no features) is scored by GENERALIST_SOFTMAX.
GENERALIST = Path(__file__).resolve().parent / "data" / "generalist_lstm_detector.pth.tar"
GENERALIST_SOFTMAX = GENERALIST.with_name("generalist_softmax_lstm_detector.pth.tar")
GENERALIST_NAME = "generalist"  # the name that resolves to the one of the two that fits a run
ORIGINAL_TRAIN_LENGTH = 200  # the paper's 200 epochs: the length of a checkpoint without 'train_length'
SCORE_BATCH = 4096  # rows per forward pass: fastest of 1k-16k at T=200 (benchmarks/detector_speed.py)


def generalist_for(neighbours: np.ndarray | None) -> Path:
    """The shipped generalist that fits a run: :data:`GENERALIST` when it recorded the neighbour agreement
    (``neighbours`` (N, T)), else :data:`GENERALIST_SOFTMAX`."""
    return GENERALIST if neighbours is not None else GENERALIST_SOFTMAX


def resolve_detector(spec: str | Path | None, neighbours: np.ndarray | None) -> Path:
    """The checkpoint to score a run with: for ``None`` or :data:`GENERALIST_NAME`, :func:`generalist_for` the
    run (so that a run without the agreement is scored by the softmax generalist rather than refused); any path,
    the shipped generalist's included, is used as given (an explicit choice is honoured, or refused by
    :func:`score` when the run lacks what it reads, never swapped)."""
    if spec is None or str(spec) == GENERALIST_NAME:
        return generalist_for(neighbours)
    return Path(spec)


@dataclass(frozen=True)
class DetectorInfo:
    """What a checkpoint says about itself (besides its weights)."""

    path: str
    variant: str
    train_length: int
    features: tuple[str, ...]
    anchor: bool
    epoch: int | None
    best_prec: float | None
    val_auc: float | None
    val_map: float | None


def make_checkpoint(state_dict: dict, *, epoch: int, best_prec: float, optimizer_state: dict, variant: str,
                    train_length: int, features: tuple[str, ...] = PAPER_FEATURES, anchor: bool = False,
                    **extra) -> dict:
    """The checkpoint dict: the original's four keys (so its code loads ours) plus ours in ``extra``."""
    return dict(epoch=int(epoch), state_dict=state_dict, best_prec=float(best_prec), optimizer=optimizer_state,
                variant=variant, train_length=int(train_length), features=list(features), anchor=bool(anchor),
                **extra)


def _shape_problems(expected: dict, found: dict) -> list[str]:
    """What differs between two state_dicts, most telling first (wrong shapes, foreign keys, then missing)."""
    problems = [f"{k} has shape {tuple(found[k].shape)}, expected {tuple(v.shape)}"
                for k, v in expected.items() if k in found and tuple(found[k].shape) != tuple(v.shape)]
    problems += [f"unexpected {k}" for k in found if k not in expected]
    missing = [k for k in expected if k not in found]
    if missing:
        problems.append(f"missing {len(missing)} of {len(expected)} keys ({', '.join(missing[:2])}, ...)")
    return problems


def _numpy_scalar_globals() -> list:
    """What unpickling a numpy scalar needs, and nothing more: the original code stores ``best_prec`` as a
    numpy float64 (an accuracy from numpy sums), which plain ``weights_only=True`` refuses. ``scalar`` only
    rebuilds a number from a dtype and its bytes; it runs no code. Both numpy 1 and numpy 2 names."""
    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar
    dtype_classes = [type(np.dtype(code)) for code in "?bhilqBHILQefdg"]
    return [scalar, (scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar"),
            np.dtype, *dtype_classes]


def read_checkpoint(path: str | Path, *, what: str = "detector checkpoint") -> dict:
    """``torch.load(path, weights_only=True)`` (plus numpy scalars) with one-line errors naming the file and
    ``what`` it should be (e.g. ``"detector checkpoint (--resume)"``)."""
    path = Path(path)
    check_torch_file(path, what=what)  # random bytes are named as such, not as code
    try:
        with torch.serialization.safe_globals(_numpy_scalar_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = [line for line in str(exc).strip().splitlines() if "weights_only" not in line]
        hint = next((line for line in first if "GLOBAL" in line or "Unsupported" in line), first[0] if first else "")
        raise UsageError(f"{path}: refused to load: the file carries code or objects beyond weights "
                         f"(weights_only=True): {hint.strip()}") from None
    except Exception as exc:
        raise UsageError(f"{path}: not a readable torch checkpoint ({type(exc).__name__}: "
                         f"{str(exc).strip().splitlines()[0] if str(exc).strip() else 'truncated?'})") from None


def load_detector(path: str | Path, *, what: str = "detector checkpoint") -> tuple[LSTMDetector, DetectorInfo]:
    """Build the detector a checkpoint describes, in eval mode, with its :class:`DetectorInfo`.

    Checkpoints without ``variant`` are the original's (forward); without ``train_length``, 200 epochs.
    """
    ckpt = read_checkpoint(path, what=what)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        found = sorted(map(str, ckpt))[:8] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise UsageError(f"{path}: not a detector checkpoint: expected a dict with 'state_dict', found {found}")
    variant = ckpt.get("variant", ORIGINAL_VARIANT)
    if variant not in VARIANTS:
        raise UsageError(f"{path}: unknown detector variant {variant!r}; valid: {', '.join(VARIANTS)}")
    try:
        features = check_features(ckpt.get("features", PAPER_FEATURES))
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{path}: {exc}") from None
    anchor = bool(ckpt.get("anchor", False))
    # DataParallel-wrapped models save 'module.'-prefixed keys; the weights are the same.
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in ckpt["state_dict"].items()}
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UsageError(f"{path}: not a detector checkpoint: 'state_dict' holds non-tensors")
    model = LSTMDetector(variant, features=features, anchor=anchor)
    problems = _shape_problems(model.state_dict(), state)
    if problems:
        raise UsageError(f"{path}: weights do not fit the {variant} LSTM detector (2 layers, hidden 64, "
                         f"features {','.join(features)}{', anchored' if anchor else ''}): "
                         + "; ".join(problems[:4]) + (f"; ... {len(problems) - 4} more" if len(problems) > 4 else ""))
    bad = non_finite_weights(state)
    if bad:  # it would score every sample NaN: the ranking would be the row order
        raise UsageError(f"{path}: {bad} of the detector's weights are NaN or infinite (its training diverged): "
                         "refused")
    model.load_state_dict(state)
    model.eval()

    def num(key):
        value = ckpt.get(key)
        ok = isinstance(value, (int, float, np.generic)) or (torch.is_tensor(value) and value.numel() == 1)
        return float(value) if ok else None

    epoch, train_length = ckpt.get("epoch"), ckpt.get("train_length", ORIGINAL_TRAIN_LENGTH)
    if isinstance(train_length, bool) or not isinstance(train_length, (int, np.integer)) or train_length < 1:
        raise UsageError(f"{path}: train_length {train_length!r}: expected a positive number of epochs")
    info = DetectorInfo(path=str(path), variant=variant, train_length=int(train_length),
                        features=features, anchor=anchor,
                        epoch=int(epoch) if isinstance(epoch, (int, np.integer)) else None, best_prec=num("best_prec"),
                        val_auc=num("val_auc"), val_map=num("val_map"))
    return model, info


def non_finite_weights(state: dict) -> int:
    """How many values of a state_dict's floating tensors are NaN or infinite."""
    return sum(int((~torch.isfinite(v)).sum()) for v in state.values()
               if isinstance(v, torch.Tensor) and v.is_floating_point())


def predict_p_noisy(model: torch.nn.Module, curves: np.ndarray, *, length: int | None = None,
                    batch_size: int = SCORE_BATCH, bfloat16: bool = False) -> np.ndarray:
    """``softmax(model(curves))[:, 1]`` in batches, shape (N,) float32.

    ``curves`` (N, T) or (N, T, F), the model's input, may be float16 (as stored); each batch is converted
    (and resampled to ``length`` steps if given) on its own, so a million traces never exist as one float32
    copy. ``bfloat16`` runs the LSTM in bfloat16 (~2.5x faster on CPUs with AVX512-BF16, scores differ by ~1e-3).
    """
    reads = len(getattr(model, "features", ())) or None  # an LSTMDetector says how many features it reads
    given = 1 if curves.ndim == 2 else curves.shape[2]
    if reads is not None and given != reads:
        raise ValueError(f"the detector reads {reads} features per epoch ({', '.join(model.features)}), got inputs "
                         f"of shape {curves.shape}: compute them with labeltrace.features.feature_stack, "
                         "or score the traces with predict.score")
    model.eval()
    out = np.empty(len(curves), dtype=np.float32)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16):
        for i in range(0, len(curves), batch_size):
            batch = np.asarray(curves[i:i + batch_size], dtype=np.float32)
            if length is not None and batch.shape[1] != length:
                batch = resample_time(batch, length)
            try:
                logits = model(torch.from_numpy(batch)).float()
            except RuntimeError as err:  # oneDNN on a CPU without bfloat16 support has no bfloat16 LSTM kernel
                if not bfloat16:
                    raise
                raise UsageError(f"bfloat16 scoring: this CPU has no bfloat16 LSTM kernel ({str(err)[:60]}...); "
                                 "score in float32") from None
            out[i:i + len(batch)] = F.softmax(logits, dim=1)[:, 1].numpy()
    return out


def score(model: torch.nn.Module, info: DetectorInfo, td: np.ndarray, *, labels: np.ndarray | None = None,
          neighbours: np.ndarray | None = None, batch_size: int = SCORE_BATCH, bfloat16: bool = False
          ) -> tuple[np.ndarray, str | None]:
    """Score traces with a loaded detector: its features per epoch, resampled in time to its length.

    Parameters
    ----------
    td : ndarray of shape (N, T, C), the traces file's ``td``; (N, T) curves (``td[:, :, 0]``) are accepted
        by detectors that read only ``prob``, the paper's input.
    labels : ndarray of shape (N,), each trace's assigned label (the traces file's ``labels[:, 0]``); needed
        only by detectors that read a class-relative feature (``margin_class_quantile``).
    neighbours : ndarray of shape (N, T), the traces file's ``neighbours`` (the recorded neighbour agreement);
        needed only by detectors that read the ``neighbours`` feature.

    Returns
    -------
    p_noisy : ndarray of shape (N,)
    note : str or None
        Says what was done when T differs from the detector's training length, else None.
    """
    if td.ndim == 2:
        if info.features != PAPER_FEATURES:
            raise UsageError(f"{info.path} reads features {','.join(info.features)}: it needs the full traces "
                             f"(N, T, C), not one curve per sample")
        td = td[:, :, None]
    if td.ndim != 3 or (td.shape[2] < 2 and info.features != PAPER_FEATURES):
        raise UsageError(f"traces must have shape (N, T, C) with C >= 2, got {td.shape}")
    t = td.shape[1]
    note = None
    if t != info.train_length:
        note = (f"note: traces have T={t} epochs, the detector was trained on T={info.train_length}: "
                f"resampled the time axis linearly to {info.train_length} steps")
    p_noisy = np.empty(len(td), dtype=np.float32)
    by_class = needs_labels(info.features)
    if by_class and labels is None:
        raise UsageError(f"{info.path} reads {','.join(info.features)}: it needs each trace's assigned label")
    if needs_neighbours(info.features) and neighbours is None:
        raise UsageError(f"{info.path} reads {','.join(info.features)}: it needs the neighbour agreement recorded "
                         f"with the traces (runner.py --neighbours K); score this run with {GENERALIST_SOFTMAX.name}")
    context = (run_context(td, labels, names=info.features, neighbours=neighbours)  # of the whole run
               if needs_context(info.features) else None)
    for i in range(0, len(td), batch_size):  # features one batch at a time: memory stays that of one batch
        chunk = td[i:i + batch_size]
        rows = labels[i:i + batch_size] if by_class else None
        inputs = (chunk[:, :, 0] if info.features == PAPER_FEATURES
                  else feature_stack(chunk, info.features, context, labels=rows,
                                     neighbours=None if neighbours is None else neighbours[i:i + batch_size]))
        p_noisy[i:i + len(chunk)] = predict_p_noisy(model, inputs, length=info.train_length,
                                                    batch_size=batch_size, bfloat16=bfloat16)
    bad = int(np.count_nonzero(~np.isfinite(p_noisy)))
    if bad:  # a NaN score ranks nothing: the order would be the row order
        raise UsageError(f"{info.path}: the detector outputs NaN for {bad} of {len(p_noisy)} traces: refused")
    return p_noisy, note


def get_order(p_noisy: np.ndarray, remove_ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Order by ascending ``p_noisy`` (cleanest first) and the kept part: the first int(N*(1-remove_ratio)).

    Returns ``(order, keep)``, index arrays of shapes (N,) and (int(N*(1-remove_ratio)),).
    """
    kept, removed = removal_cut(p_noisy, remove_ratio)
    return np.concatenate([kept, removed[::-1]]), kept


def detection_report(p_noisy: np.ndarray, label_flipped: np.ndarray | None, *, remove_ratio: float,
                     name: str = "detector") -> tuple[DetectionMetrics | None, str]:
    """Metrics (None without ground truth) and the line that reports them."""
    metrics = detection_metrics(p_noisy, label_flipped, remove_ratio=remove_ratio)
    return metrics, format_metrics(metrics, remove_ratio=remove_ratio, name=name)
