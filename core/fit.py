"""The epoch loop: train, validate, record, checkpoint; resumable after a kill at any point.

Per epoch, in the paper's order: a training pass (``record='train'`` records its softmax), a validation pass,
the recording pass (``record='eval'``, the paper's: eval mode, no_grad, the whole training set), then the
learning-rate step. The traces go to the library's recorder (:class:`labeltrace.DynamicsRecorder`) batch by
batch, as a user's loop gives them. State is committed at the end of each epoch: the recorder's epoch first,
then the weights and the log, then ``resume.pth``, which names the epoch; re-running the same command continues
from it.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, NoReturn

import numpy as np
import pandas as pd
import torch

from core.committed import resume_point
from core.cuda_graph import CudaGraphStep
from core.distributed import Dist
from core.feeds import Feed
from core.inference import inference_copy
from core.passes import EpochStats, NonFiniteLoss, classification_stats, predict_batches, predict_probs, train_epoch
from labeltrace.recorder import DynamicsRecorder
from labeltrace.errors import Diverged, fail
from labeltrace.io import torch_save, write_csv
from labeltrace.neighbours import FeatureTap
from labeltrace.runfiles import BEST_MODEL_FILE, LAST_MODEL_FILE, RESUME_FILE, TRAIN_LOG_FILE, VALID_RESULTS_FILE
from core.seed import epoch_generator, epoch_seed

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
    """What :func:`fit` leaves besides the run folder. ``seconds``: time in the train, valid and record passes of
    the epochs this call ran."""

    best_valid_error: float
    best_epoch: int
    last_valid_error: float | None
    epochs: int
    seconds: dict[str, float]

    def summary(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Progress:
    """What ``resume.pth`` carries from epoch to epoch (the next epoch, the best so far, the log rows), plus
    the pass timings of this call."""

    epoch: int = 0
    best: dict[str, Any] = field(default_factory=lambda: {"error": float("inf"), "epoch": -1})
    rows: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=lambda: {"train": 0.0, "valid": 0.0, "record": 0.0})

    def add(self, epoch: int, stats: EpochStats, valid: dict[str, Any], seconds: tuple[float, float, float]) -> None:
        for key, dt in zip(self.seconds, seconds):
            self.seconds[key] += dt
        self.rows.append({"epoch": epoch + 1, "train_error": stats.error, "train_loss": stats.loss,
                          "valid_error": valid["error"], "valid_top5_error": valid["top5_error"],
                          "valid_loss": valid["loss"]})
        if valid["error"] < self.best["error"]:
            self.best = {"error": valid["error"], "epoch": epoch + 1}

    def result(self, epochs: int) -> FitResult:
        return FitResult(best_valid_error=self.best["error"], best_epoch=self.best["epoch"],
                         last_valid_error=self.rows[-1]["valid_error"] if self.rows else None, epochs=epochs,
                         seconds=self.seconds)


def fit(model: torch.nn.Module, data: FitData, *, recipe: Recipe, run_dir: Path, seed: int, config: dict[str, Any],
        record: str = "train", recorder: DynamicsRecorder | None = None, restart: bool = False,
        runtime: Runtime | None = None, log: Callable[[str], None] = print) -> FitResult:
    """Train ``model`` in ``run_dir`` for ``recipe.epochs`` epochs, continuing from its ``resume.pth`` unless
    ``restart``; every epoch is committed to the run folder (rank 0) before the next starts.

    ``record``: which softmax traces go to ``recorder`` (:data:`RECORD_MODES`), a recorder of this run folder
    (``shared_folder=True``) whose finished epochs are those ``resume.pth`` commits; it records the neighbour
    agreement of the head's input when its ``neighbours`` is k > 0. ``config``: the run's settings, kept in
    ``resume.pth`` so that a resumption with other settings is refused.
    """
    runtime = runtime or Runtime()
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                nesterov=recipe.nesterov, weight_decay=recipe.weight_decay)
    progress = _restore(model, optimizer, run_dir, config, restart=restart, log=log, epochs=recipe.epochs)
    if recorder is not None and recorder.num_epochs != progress.epoch:
        raise RuntimeError(f"the recorder holds {recorder.num_epochs} epochs, resume.pth commits {progress.epoch}")
    loop = _EpochLoop(model, optimizer, data, recipe=recipe, seed=seed, record=record, runtime=runtime,
                      recorder=recorder, log=log, checkpoint=run_dir / RESUME_FILE)
    for epoch in range(progress.epoch, recipe.epochs):
        loop.run(epoch, progress)
        if recorder is not None:
            recorder.end_epoch()  # every rank: the recorder checks, over the group, that each sample was seen
        if runtime.dist.is_main:
            _commit(run_dir, epoch, model, optimizer, progress.best, progress.rows, config)
    runtime.dist.barrier()  # every rank may now read what rank 0 wrote
    return progress.result(recipe.epochs)


def _restore(model: torch.nn.Module, optimizer: torch.optim.Optimizer, run_dir: Path, config: dict[str, Any], *,
             restart: bool, epochs: int, log: Callable[[str], None]) -> _Progress:
    """Load the committed state of ``run_dir`` into ``model`` and ``optimizer`` and return where the run
    stands; a fresh :class:`_Progress` when it starts afresh."""
    state = resume_point(run_dir, config, restart=restart, epochs=epochs, mmap=False)
    if state is None:
        return _Progress()
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    log(f"resuming {run_dir} after epoch {state['epoch']}/{epochs}")
    return _Progress(epoch=state["epoch"], best=state["best"], rows=state["rows"])


class _EpochLoop:
    """The parts of a fit that stay fixed from epoch to epoch, and one epoch's passes in the paper's order."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, data: FitData, *,
                 recipe: Recipe, seed: int, record: str, runtime: Runtime, recorder: DynamicsRecorder | None,
                 log: Callable[[str], None], checkpoint: Path) -> None:
        self.model, self.optimizer, self.data, self.recipe, self.seed = model, optimizer, data, recipe, seed
        self.record, self.runtime, self.recorder = record, runtime, recorder
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
            try:
                with self._tap(net) as tap:
                    predict_batches(net, self.data.record, gen=epoch_generator(self.seed, -1 - epoch),
                                    amp=self.runtime.amp, desc="record", progress=self.runtime.progress,
                                    on_logits=self._recording(tap, "the recording pass's outputs are not finite"))
            except NonFiniteLoss as exc:
                self._stop(epoch, exc)
        t3 = time.perf_counter()
        progress.add(epoch, stats, valid, (t1 - t0, t2 - t1, t3 - t2))
        self.log(f"epoch {epoch + 1:3d}/{self.recipe.epochs} lr {lr_at(self.recipe, epoch):.4g} | train loss "
                 f"{stats.loss:.4f} err {stats.error:6.2%} | valid loss {valid['loss']:.4f} err {valid['error']:6.2%}"
                 f" | {t1 - t0:.2f}s train {t2 - t1:.2f}s valid {t3 - t2:.2f}s record")

    def _train(self, epoch: int) -> EpochStats:
        """The training pass; with ``record='train'`` its softmax goes to the recorder."""
        runtime = self.runtime
        torch.manual_seed(epoch_seed(self.seed, epoch))  # per-sample transforms of DataLoader feeds
        recording = self.record == "train" and self.recorder is not None
        try:
            with self._tap(self.model if recording else None) as tap:
                if self.step is not None:  # a replayed graph calls no hook: it hands the features to the tap
                    self.step.tap = tap
                stats = train_epoch(self.train_net, self.data.train, self.labels, self.optimizer,
                                    gen=epoch_generator(self.seed, epoch), amp=runtime.amp,
                                    desc=f"epoch {epoch + 1}/{self.recipe.epochs}", progress=runtime.progress,
                                    on_logits=self._recording(tap, "training loss is nan") if recording else None,
                                    all_sum=runtime.dist.all_sum if runtime.dist.active else None,
                                    step=self.step)
        except NonFiniteLoss as exc:
            self._stop(epoch, exc)
        runtime.dist.broadcast_buffers(self.model)
        return stats

    def _stop(self, epoch: int, exc: NonFiniteLoss) -> NoReturn:
        kept = f"the last good checkpoint is {self.checkpoint}" if epoch > 0 else "no epoch was committed"
        fail(f"epoch {epoch + 1}: {exc}; stopped, {kept} (lower --lr?)")

    def _tap(self, net: torch.nn.Module | None) -> FeatureTap | contextlib.nullcontext:
        """The penultimate features of ``net``'s forward passes, when the recorder records neighbour agreement."""
        wanted = net is not None and self.recorder is not None and self.recorder.neighbours
        return FeatureTap(net) if wanted else contextlib.nullcontext()

    def _recording(self, tap: FeatureTap | None, diverged: str) -> Callable[[torch.Tensor, torch.Tensor], None]:
        """``(idx (B,), logits (B, C)) -> None``: the batch to the recorder, with the features ``tap`` took from
        its forward pass (one per batch), as a user's loop passes them. Non-finite outputs or features stop the
        fit (:class:`NonFiniteLoss`, its message ``diverged``), as the loss check would."""
        def update(idx: torch.Tensor, logits: torch.Tensor) -> None:
            features = None
            if tap is not None:
                if len(tap.batches) != 1:
                    raise RuntimeError(f"the feature tap saw {len(tap.batches)} forward passes for one batch")
                features = tap.batches.pop()
            try:
                self.recorder.update(idx, logits, features=features)
            except Diverged as exc:
                raise NonFiniteLoss(f"{diverged} ({exc})") from None

        return update


def _commit(run_dir: Path, epoch: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
            best: dict[str, Any], rows: list[dict], config: dict[str, Any]) -> None:
    """Commit an epoch whose traces the recorder has committed: the weights, the log, then ``resume.pth`` last,
    naming the epoch; a kill in between replays the epoch (the recorder is rewound to ``resume.pth``'s)."""
    weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if best["epoch"] == epoch + 1:
        torch_save(weights, run_dir / BEST_MODEL_FILE)
    torch_save(weights, run_dir / LAST_MODEL_FILE)
    write_csv(run_dir / TRAIN_LOG_FILE, pd.DataFrame(rows, columns=LOG_COLUMNS))
    torch_save({"epoch": epoch + 1, "model": weights, "optimizer": optimizer.state_dict(), "best": best,
                "rows": rows, "config": config}, run_dir / RESUME_FILE)


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
