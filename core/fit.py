"""The epoch loop: train, validate, record, checkpoint; resumable after a kill at any point.

Per epoch, in the paper's order: a training pass (``record='train'`` records its softmax), a validation pass,
the recording pass (``record='eval'``, the paper's: eval mode, no_grad, the whole training set), then the
learning-rate step. State is committed at the end of
each epoch by ``resume.pth``; re-running the same command continues from the last committed epoch.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from core.feeds import Feed
from core.cuda_graph import CudaGraphStep
from core.distributed import Dist
from labeltrace.errors import fail
from labeltrace.io import torch_save, write_csv
from labeltrace.neighbours import FeatureStore, FeatureTap, describe_search, head_of
from core.inference import inference_copy
from core.passes import (EpochStats, NonFiniteLoss, assemble_rows, classification_stats, predict_batches, predict_probs,
                         train_epoch)
from core.committed import resume_point
from labeltrace.recorder import TraceRecorder, extend_checksums
from labeltrace.runfiles import BEST_MODEL_FILE, LAST_MODEL_FILE, RAW_NEIGHBOURS_FILE, RAW_TRACES_FILE, RESUME_FILE, \
    TRAIN_LOG_FILE, VALID_RESULTS_FILE
from labeltrace.seed import epoch_generator, epoch_seed

RECORD_MODES = ("eval", "train", "none")
LOG_COLUMNS = ["epoch", "train_error", "train_loss", "valid_error", "valid_top5_error", "valid_loss"]


@dataclass
class Recipe:
    epochs: int = 200
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    milestones: tuple[float, ...] = (0.5, 0.75)  # fractions of training at which the LR is multiplied by gamma
    gamma: float = 0.1


def lr_at(recipe: Recipe, epoch: int) -> float:
    """The learning rate of 0-based ``epoch`` (MultiStepLR at ``int(m * epochs)`` for each milestone m)."""
    drops = sum(epoch >= int(m * recipe.epochs) for m in recipe.milestones)
    return recipe.lr * recipe.gamma ** drops


@dataclass
class FitData:
    """The training feed with its (possibly noisy) labels (N,), and the validation feed with its labels."""

    train: Feed
    train_labels: np.ndarray
    valid: Feed
    valid_labels: np.ndarray
    num_classes: int
    record: Feed | None = None  # the feed of the eval-mode recording pass


@dataclass(frozen=True)
class Runtime:
    """How a fit runs, not what it computes: the files written are the same for every choice.

    ``amp``: bf16 autocast (CUDA or CPU). ``progress``: progress bars. ``dist``: the data-parallel group of a
    ``torchrun`` launch (each feed then yields this rank's share; rank 0 alone writes files).
    ``compile_backend``: run the forward passes through ``torch.compile`` with this backend (``inductor`` is
    the default one). ``cuda_graphs``: on a single CUDA device without ``torch.compile``, replay the training
    step as a CUDA graph (``core/cuda_graph.py``).
    """

    amp: bool = False
    progress: bool = True
    dist: Dist = field(default_factory=Dist)
    compile_backend: str | None = None
    cuda_graphs: bool = False

    @property
    def gather(self) -> Callable | None:
        """How the probabilities of every rank's share become one array (None: this process has them all)."""
        return self.dist.gather_rows if self.dist.active else None


@dataclass
class FitResult:
    """What :func:`fit` leaves besides the run folder.

    ``seconds``: time in the train, valid and record passes of the epochs this call ran. ``recorder``: rank 0's
    trace recorder, still open (the caller writes the traces file from it and closes it), or None when the
    fit records nothing or runs on another rank; ``neighbours``: likewise, the neighbour agreement's (N, T, 1)
    recorder when the fit records it.
    """

    best_valid_error: float
    best_epoch: int
    last_valid_error: float | None
    epochs: int
    seconds: dict[str, float]
    recorder: TraceRecorder | None
    neighbours: TraceRecorder | None = None
    search: dict | None = None  # how the agreement was searched (labeltrace.neighbours.describe_search)

    def summary(self) -> dict[str, Any]:
        """The JSON-ready fields (everything but the recorders; ``asdict`` would deep-copy their open files)."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name not in ("recorder", "neighbours", "search")}


@dataclass
class _Progress:
    """What ``resume.pth`` carries from epoch to epoch (the next epoch, the best so far, the log rows), plus
    the pass timings of this call."""

    epoch: int = 0
    best: dict[str, Any] = field(default_factory=lambda: {"error": float("inf"), "epoch": -1})
    rows: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=lambda: {"train": 0.0, "valid": 0.0, "record": 0.0})
    checksums: dict[str, list[int]] = field(default_factory=dict)  # per raw file, each committed epoch's crc32

    def add(self, epoch: int, stats: EpochStats, valid: dict[str, Any], seconds: tuple[float, float, float]) -> None:
        for key, dt in zip(self.seconds, seconds):
            self.seconds[key] += dt
        self.rows.append({"epoch": epoch + 1, "train_error": stats.error, "train_loss": stats.loss,
                          "valid_error": valid["error"], "valid_top5_error": valid["top5_error"],
                          "valid_loss": valid["loss"]})
        if valid["error"] < self.best["error"]:
            self.best = {"error": valid["error"], "epoch": epoch + 1}

    def result(self, epochs: int, recorders: _Recorders) -> FitResult:
        return FitResult(best_valid_error=self.best["error"], best_epoch=self.best["epoch"],
                         last_valid_error=self.rows[-1]["valid_error"] if self.rows else None, epochs=epochs,
                         seconds=self.seconds, recorder=recorders.probs, neighbours=recorders.neighbours,
                         search=recorders.search)


@dataclass
class _Recorders:
    """Rank 0's per-epoch recorders: the softmax (N, T, C), and the neighbour agreement (N, T, 1) when asked for
    (``neighbours`` = k > 0). Other ranks, and a fit that records nothing, hold none."""

    probs: TraceRecorder | None = None
    neighbours: TraceRecorder | None = None
    k: int = 0
    search: dict | None = None  # describe_search of the fit's features, when k > 0

    @classmethod
    def open(cls, run_dir: Path, shape: tuple[int, int, int], *, record: str, k: int, resume: bool,
             main: bool) -> _Recorders:
        if record == "none" or not main:
            return cls(k=k if record != "none" else 0)
        n, t, _ = shape
        return cls(TraceRecorder(run_dir / RAW_TRACES_FILE, *shape, resume=resume),
                   TraceRecorder(run_dir / RAW_NEIGHBOURS_FILE, n, t, 1, resume=resume) if k else None, k)

    def flush(self) -> None:
        for recorder in (self.probs, self.neighbours):
            if recorder is None:
                continue
            try:
                recorder.flush()
            except OSError as exc:  # written in place, not through atomic_open: name the file here
                if exc.filename is not None:
                    raise
                raise OSError(exc.errno, exc.strerror, str(recorder.path)) from exc


def fit(model: torch.nn.Module, data: FitData, *, recipe: Recipe, run_dir: Path, seed: int, config: dict[str, Any],
        record: str = "train", neighbours: int = 0, neighbour_search: str = "auto", restart: bool = False,
        runtime: Runtime | None = None, log: Callable[[str], None] = print) -> FitResult:
    """Train ``model`` in ``run_dir`` for ``recipe.epochs`` epochs, continuing from its ``resume.pth`` unless
    ``restart``; every epoch is committed to the run folder (rank 0) before the next starts.

    ``record``: which softmax traces go to the recorder (:data:`RECORD_MODES`). ``neighbours``: k > 0 records,
    from the same pass, each sample's neighbour agreement among its k nearest neighbours in the penultimate
    features (:mod:`labeltrace.neighbours`), by ``neighbour_search`` (``auto``, ``exact``, ``ivf``). ``config``: the run's settings, kept in ``resume.pth`` so that a
    resumption with other settings is refused.
    """
    runtime = runtime or Runtime()
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                nesterov=recipe.nesterov, weight_decay=recipe.weight_decay)
    progress = _restore(model, optimizer, run_dir, config, restart=restart, record=record, log=log,
                        raw_shape=(data.train.num_samples, recipe.epochs, data.num_classes))
    recorders = _Recorders.open(run_dir, (data.train.num_samples, recipe.epochs, data.num_classes), record=record,
                                k=neighbours, resume=progress.epoch > 0, main=runtime.dist.is_main)
    if recorders.k:
        device = next(model.parameters()).device
        recorders.search = describe_search(data.train.num_samples, head_of(model).in_features, device,
                                           k=neighbours, search=neighbour_search, warn=True)
    loop = _EpochLoop(model, optimizer, data, recipe=recipe, seed=seed, record=record, runtime=runtime,
                      recorders=recorders, log=log, checkpoint=run_dir / RESUME_FILE)
    for epoch in range(progress.epoch, recipe.epochs):
        loop.run(epoch, progress)
        if runtime.dist.is_main:
            _commit(run_dir, epoch, model, optimizer, recorders, progress.best, progress.rows, config,
                    checksums=progress.checksums)
    runtime.dist.barrier()  # every rank may now read what rank 0 wrote
    return progress.result(recipe.epochs, recorders)


def _restore(model: torch.nn.Module, optimizer: torch.optim.Optimizer, run_dir: Path, config: dict[str, Any], *,
             restart: bool, record: str, raw_shape: tuple[int, int, int], log: Callable[[str], None]) -> _Progress:
    """Load the committed state of ``run_dir`` into ``model`` and ``optimizer`` and return where the run
    stands; a fresh :class:`_Progress` when it starts afresh."""
    state = resume_point(run_dir, config, restart=restart, record=record, raw_shape=raw_shape, mmap=False)
    if state is None:
        return _Progress()
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    log(f"resuming {run_dir} after epoch {state['epoch']}/{raw_shape[1]}")
    return _Progress(epoch=state["epoch"], best=state["best"], rows=state["rows"],
                     checksums=dict(state.get("checksums") or {}))


class _EpochLoop:
    """The parts of a fit that stay fixed from epoch to epoch, and one epoch's passes in the paper's order."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, data: FitData, *,
                 recipe: Recipe, seed: int, record: str, runtime: Runtime, recorders: _Recorders,
                 log: Callable[[str], None], checkpoint: Path) -> None:
        self.model, self.optimizer, self.data, self.recipe, self.seed = model, optimizer, data, recipe, seed
        self.record, self.runtime, self.recorders = record, runtime, recorders
        self.log, self.checkpoint = log, checkpoint
        device = next(model.parameters()).device
        self.labels = torch.as_tensor(data.train_labels, dtype=torch.long, device=device)
        self.train_net, self.eval_net = runtime.dist.wrap(model), model
        if runtime.compile_backend:
            self.train_net = torch.compile(self.train_net, backend=runtime.compile_backend)
            self.eval_net = torch.compile(model, backend=runtime.compile_backend)
        self.step = None
        if runtime.cuda_graphs and device.type == "cuda" and not runtime.dist.active and not runtime.compile_backend:
            self.step = CudaGraphStep(self.train_net, optimizer, amp=runtime.amp)
        self.store = FeatureStore(data.train.num_samples) if recorders.k else None

    def run(self, epoch: int, progress: _Progress) -> None:
        """Epoch ``epoch`` (0-based): the training pass (``record='train'`` records its softmax), the validation
        pass, the recording pass (``record='eval'``); its log row goes to ``progress``."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(self.recipe, epoch)
        t0 = time.perf_counter()
        stats = self._train(epoch)
        t1 = time.perf_counter()
        # Eval passes run on a copy with BatchNorm folded into the convolutions, in channels-last memory:
        # the recording pass then costs about half as much on the CPU (core/inference.py).
        net = self.eval_net if self.runtime.compile_backend else inference_copy(self.model)
        valid = predict_probs(net, self.data.valid, gen=epoch_generator(self.seed, epoch), amp=self.runtime.amp,
                              desc="valid", progress=self.runtime.progress, gather=self.runtime.gather)
        valid = classification_stats(valid, self.data.valid_labels)
        t2 = time.perf_counter()
        if self.record == "eval":
            with self._tap(net) as tap:
                shares = self._predict(net, self.data.record, epoch_generator(self.seed, -1 - epoch), "record")
            self._keep(epoch, shares, tap)
        t3 = time.perf_counter()
        progress.add(epoch, stats, valid, (t1 - t0, t2 - t1, t3 - t2))
        self.log(f"epoch {epoch + 1:3d}/{self.recipe.epochs} lr {lr_at(self.recipe, epoch):.4g} | train loss "
                 f"{stats.loss:.4f} err {stats.error:6.2%} | valid loss {valid['loss']:.4f} err {valid['error']:6.2%}"
                 f" | {t1 - t0:.2f}s train {t2 - t1:.2f}s valid {t3 - t2:.2f}s record")

    def _train(self, epoch: int) -> EpochStats:
        """The training pass; with ``record='train'`` its softmax goes to the recorder."""
        runtime = self.runtime
        torch.manual_seed(epoch_seed(self.seed, epoch))  # per-sample transforms of DataLoader feeds
        shares: list[tuple[np.ndarray, torch.Tensor]] = []  # kept on the device until the epoch ends
        on_probs = (lambda idx, p: shares.append((idx, p))) if self.record == "train" else None  # noqa: E731
        try:
            with self._tap(self.model if self.record == "train" else None) as tap:
                if self.step is not None:  # a replayed graph calls no hook: it hands the features to the tap
                    self.step.tap = tap
                stats = train_epoch(self.train_net, self.data.train, self.labels, self.optimizer,
                                    gen=epoch_generator(self.seed, epoch), amp=runtime.amp,
                                    desc=f"epoch {epoch + 1}/{self.recipe.epochs}", progress=runtime.progress,
                                    on_probs=on_probs, all_sum=runtime.dist.all_sum if runtime.dist.active else None,
                                    step=self.step)
        except NonFiniteLoss as exc:
            kept = f"the last good checkpoint is {self.checkpoint}" if epoch > 0 else "no epoch was committed"
            fail(f"epoch {epoch + 1}: {exc}; stopped, {kept} (lower --lr?)")
        runtime.dist.broadcast_buffers(self.model)
        if shares:
            self._keep(epoch, shares, tap)
        return stats

    def _tap(self, net: torch.nn.Module | None) -> FeatureTap | contextlib.nullcontext:
        """The penultimate features of ``net``'s forward passes, when this fit records neighbour agreement."""
        return FeatureTap(net) if self.recorders.k and net is not None else contextlib.nullcontext()

    def _predict(self, net: torch.nn.Module, feed: Feed, gen: torch.Generator, desc: str
                 ) -> list[tuple[np.ndarray, torch.Tensor]]:
        """Softmax of every sample of ``feed``, per batch: ``(idx (B,), probs (B, C))`` in feed order."""
        return predict_batches(net, feed, gen=gen, amp=self.runtime.amp, desc=desc, progress=self.runtime.progress)

    def _rows(self, shares: list[tuple[np.ndarray, torch.Tensor]]) -> np.ndarray:
        """Per-batch rows -> one array (N, ...) of the whole training set (every rank's share gathered)."""
        return assemble_rows(shares, self.data.train.num_samples, self.runtime.gather)

    def _store_features(self, shares: list[tuple[np.ndarray, torch.Tensor]], batches: list[torch.Tensor]) -> None:
        """The features of the training set into :attr:`store`, one (B, D) per batch of ``shares``: left on their
        device in one process (the neighbour search then runs there), gathered through the host under data
        parallelism."""
        if self.runtime.dist.active:
            rows = self._rows([(idx, f) for (idx, _), f in zip(shares, batches)])
            self.store.add(np.arange(len(rows)), torch.from_numpy(rows))
            return
        for (idx, _), f in zip(shares, batches):
            self.store.add(torch.from_numpy(idx), f)

    def _keep(self, epoch: int, shares: list[tuple[np.ndarray, torch.Tensor]], tap: FeatureTap | None) -> None:
        """Record one epoch's probabilities (N, C) of the whole training set and, with a ``tap``, the neighbour
        agreement of the features it collected, one (B, D) per batch of ``shares`` (rank 0 records)."""
        probs = self._rows(shares)
        recorders = self.recorders
        if tap is not None:
            if len(tap.batches) != len(shares):
                raise RuntimeError(f"the feature tap saw {len(tap.batches)} forward passes for {len(shares)} batches")
            self._store_features(shares, tap.batches)
            tap.batches.clear()
            if recorders.neighbours is not None:
                found = self.store.agreement(self.data.train_labels, k=recorders.k, search=recorders.search["search"])
                recorders.neighbours.record(epoch, np.arange(len(probs)), found[:, None])
        if recorders.probs is not None:
            recorders.probs.record(epoch, np.arange(len(probs)), probs)


def _commit(run_dir: Path, epoch: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
            recorders: _Recorders, best: dict[str, Any], rows: list[dict], config: dict[str, Any], *,
            checksums: dict[str, list[int]] | None = None) -> None:
    """Commit an epoch. Order: traces, then outputs, then resume.pth last; a kill in between replays the epoch.
    ``checksums``: the crc32 of each committed epoch of each raw file, to which this epoch's are added (kept in
    ``resume.pth`` and compared on resume: core/committed.py)."""
    recorders.flush()
    checksums = {} if checksums is None else checksums
    for recorder in (r for r in (recorders.probs, recorders.neighbours) if r is not None):
        kept = extend_checksums(checksums.get(recorder.path.name, []), recorder.path, epoch)
        if kept is not None:  # a run begun without checksums keeps none
            checksums[recorder.path.name] = kept
    weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if best["epoch"] == epoch + 1:
        torch_save(weights, run_dir / BEST_MODEL_FILE)
    torch_save(weights, run_dir / LAST_MODEL_FILE)
    write_csv(run_dir / TRAIN_LOG_FILE, pd.DataFrame(rows, columns=LOG_COLUMNS))
    torch_save({"epoch": epoch + 1, "model": weights, "optimizer": optimizer.state_dict(), "best": best,
                "rows": rows, "config": config, "checksums": checksums}, run_dir / RESUME_FILE)


def write_valid_results(model: torch.nn.Module, run_dir: Path, valid: Feed, labels: np.ndarray,
                        indices: np.ndarray, *, runtime: Runtime | None = None) -> float:
    """``results_valid.csv`` of the best model: index, Loss, Prediction, Confidence, Label. Returns its error.

    ``labels``, ``indices``: shape (M,), the validation samples' labels and the ids written for them. Under data
    parallelism every rank predicts its share and rank 0 writes the file."""
    runtime = runtime or Runtime()
    state = torch.load(run_dir / BEST_MODEL_FILE, map_location=next(model.parameters()).device, weights_only=True)
    model.load_state_dict(state)
    # The same fused copy as the epochs' validation passes: under bf16 an unfused model rounds differently, and
    # results_valid.csv would disagree with train_log.csv about a sample or two.
    probs = predict_probs(inference_copy(model), valid, gen=epoch_generator(0, 0), amp=runtime.amp, desc="best model",
                          progress=False, gather=runtime.gather)
    stats = classification_stats(probs, labels)
    frame = pd.DataFrame({"index": indices, "Loss": stats["per_sample_loss"], "Prediction": probs.argmax(1),
                          "Confidence": probs.max(1), "Label": labels})
    if runtime.dist.is_main:
        write_csv(run_dir / VALID_RESULTS_FILE, frame)
    return float(stats["error"])


def recipe_dict(recipe: Recipe) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(recipe).items()}
