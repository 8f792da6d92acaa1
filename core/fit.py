"""The epoch loop: train, validate, record, checkpoint; resumable after a kill at any point.

Per epoch, in the paper's order: a training pass (``record='train'`` records its softmax), a validation pass,
the recording pass (``record='eval'``, the paper's: eval mode, no_grad, the whole training set), then the
learning-rate step. State is committed at the end of
each epoch by ``resume.pth``; re-running the same command continues from the last committed epoch.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from core.batches import Feed
from core.cuda_graph import CudaGraphStep
from core.distributed import Dist
from core.errors import fail
from core.io import torch_save, write_csv
from core.inference import inference_copy
from core.loop import NonFiniteLoss, assemble_rows, classification_stats, predict_probs, train_epoch
from core.recorder import TraceRecorder, raw_file_problem
from core.runfolder import RESUME_IGNORES, check_resumable, config_differences, read_resume_state
from core.seed import epoch_generator

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


def fit(model: torch.nn.Module, data: FitData, *, recipe: Recipe, run_dir: Path, seed: int, config: dict[str, Any],
        record: str = "train", amp: bool = False, restart: bool = False, progress: bool = True,
        log: Callable[[str], None] = print, dist: Dist | None = None,
        compile_backend: str | None = None, cuda_graphs: bool = False) -> dict[str, Any]:
    """Train ``model`` in ``run_dir``; returns a summary (best/last validation error, timings).

    ``dist``: the data-parallel group of a ``torchrun`` launch (each feed then yields this rank's share; rank 0
    alone writes files). ``compile_backend``: run the forward passes through ``torch.compile`` with this
    backend (``inductor`` is the default one); the files written are the same. ``cuda_graphs``: on a single
    CUDA device without ``torch.compile``, replay the training step as a CUDA graph (``core/cuda_graph.py``).
    """
    dist = dist or Dist()
    device = next(model.parameters()).device
    train_labels = torch.as_tensor(data.train_labels, dtype=torch.long, device=device)
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                nesterov=recipe.nesterov, weight_decay=recipe.weight_decay)
    state_path = run_dir / "resume.pth"
    start, best, rows = 0, {"error": float("inf"), "epoch": -1}, []
    state = resume_point(run_dir, config, restart=restart, record=record, mmap=False,
                         raw_shape=(data.train.num_samples, recipe.epochs, data.num_classes))
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start, best, rows = state["epoch"], state["best"], state["rows"]
        log(f"resuming {run_dir} after epoch {start}/{recipe.epochs}")
    train_net, eval_net = dist.wrap(model), model
    if compile_backend:
        train_net = torch.compile(train_net, backend=compile_backend)
        eval_net = torch.compile(model, backend=compile_backend)
    step = None
    if cuda_graphs and device.type == "cuda" and not dist.active and not compile_backend:
        step = CudaGraphStep(train_net, optimizer, amp=amp)
    gather = dist.gather_rows if dist.active else None
    recorder = None
    if record != "none":
        if dist.is_main:
            recorder = TraceRecorder(run_dir / "td_raw.npy", data.train.num_samples, recipe.epochs,
                                     data.num_classes, resume=start > 0)
    timing = {"train": 0.0, "valid": 0.0, "record": 0.0}
    for epoch in range(start, recipe.epochs):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(recipe, epoch)
        torch.manual_seed(seed * 1_000_003 + epoch)  # per-sample transforms of DataLoader feeds
        shares: list[tuple[np.ndarray, torch.Tensor]] = []  # kept on the device until the epoch ends
        on_probs = (lambda idx, p: shares.append((idx, p))) if record == "train" else None  # noqa: E731
        t0 = time.perf_counter()
        try:
            stats = train_epoch(train_net, data.train, train_labels, optimizer, gen=epoch_generator(seed, epoch),
                                amp=amp, desc=f"epoch {epoch + 1}/{recipe.epochs}", progress=progress,
                                on_probs=on_probs, all_sum=dist.all_sum if dist.active else None, step=step)
        except NonFiniteLoss as exc:
            kept = f"the last good checkpoint is {state_path}" if epoch > 0 else "no epoch was committed"
            fail(f"epoch {epoch + 1}: {exc}; stopped, {kept} (lower --lr?)")
        dist.broadcast_buffers(model)
        if shares:
            probs = assemble_rows(shares, data.train.num_samples, gather)
            if recorder is not None:
                recorder.record(epoch, np.arange(len(probs)), probs)
        t1 = time.perf_counter()
        # Eval passes run on a copy with BatchNorm folded into the convolutions, in channels-last memory:
        # the recording pass then costs about half as much on the CPU (core/inference.py).
        fast_net = eval_net if compile_backend else inference_copy(model)
        valid = classification_stats(predict_probs(fast_net, data.valid, gen=epoch_generator(seed, epoch), amp=amp,
                                                   desc="valid", progress=progress, gather=gather),
                                     data.valid_labels)
        t2 = time.perf_counter()
        if record == "eval":
            probs = predict_probs(fast_net, data.record, gen=epoch_generator(seed, -1 - epoch), amp=amp,
                                  desc="record", progress=progress, gather=gather)
            if recorder is not None:
                recorder.record(epoch, np.arange(len(probs)), probs)
        t3 = time.perf_counter()
        for key, dt in zip(timing, (t1 - t0, t2 - t1, t3 - t2)):
            timing[key] += dt
        rows.append({"epoch": epoch + 1, "train_error": stats.error, "train_loss": stats.loss,
                     "valid_error": valid["error"], "valid_top5_error": valid["top5_error"],
                     "valid_loss": valid["loss"]})
        log(f"epoch {epoch + 1:3d}/{recipe.epochs} lr {lr_at(recipe, epoch):.4g} | train loss {stats.loss:.4f} "
            f"err {stats.error:6.2%} | valid loss {valid['loss']:.4f} err {valid['error']:6.2%} | "
            f"{t1 - t0:.2f}s train {t2 - t1:.2f}s valid {t3 - t2:.2f}s record")
        if valid["error"] < best["error"]:
            best = {"error": valid["error"], "epoch": epoch + 1}
        if dist.is_main:
            _commit(run_dir, epoch, model, optimizer, recorder, best, rows, config)
    dist.barrier()  # every rank may now read what rank 0 wrote
    return {"best_valid_error": best["error"], "best_epoch": best["epoch"],
            "last_valid_error": rows[-1]["valid_error"] if rows else None, "epochs": recipe.epochs,
            "seconds": timing, "recorder": recorder}


def resume_point(run_dir: Path, config: dict[str, Any], *, restart: bool, record: str,
                 raw_shape: tuple[int, int, int], mmap: bool = True) -> dict[str, Any] | None:
    """The state a run continues from (None: it starts afresh), checked so that a command which cannot resume
    fails before it writes anything: same settings, and the raw traces (N, T, C) of every committed epoch whole
    (a file that is gone or cut short would turn those epochs into zeros). ``mmap=False`` when the state is
    to be trained from: the optimizer would otherwise keep file-backed momentum buffers."""
    state = None if restart else read_resume_state(run_dir, mmap=mmap)
    if state is None:
        return None
    check_resumable(run_dir, config, saved=state["config"])
    if record != "none":
        raw = run_dir / "td_raw.npy"
        lost = f"the traces of the {state['epoch']} committed epochs are lost; add --restart to start over"
        if not raw.is_file():
            fail(f"{raw} is missing: {lost}")
        problem = raw_file_problem(raw, raw_shape)
        if problem:
            fail(f"{problem}: {lost}")
    return state


def _commit(run_dir: Path, epoch: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
            recorder: TraceRecorder | None, best: dict[str, Any], rows: list[dict], config: dict[str, Any]) -> None:
    """Commit an epoch. Order: traces, then outputs, then resume.pth last; a kill in between replays the epoch."""
    if recorder is not None:
        recorder.flush()
    weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if best["epoch"] == epoch + 1:
        torch_save(weights, run_dir / "model.pth")
    torch_save(weights, run_dir / "model.pth.last")
    write_csv(run_dir / "train_log.csv", pd.DataFrame(rows, columns=LOG_COLUMNS))
    torch_save({"epoch": epoch + 1, "model": weights, "optimizer": optimizer.state_dict(), "best": best,
                "rows": rows, "config": config}, run_dir / "resume.pth")


def completed_summary(run_dir: Path, config: dict[str, Any], restart: bool) -> dict[str, Any] | None:
    """The ``summary.json`` of a finished run with the same settings in ``run_dir`` (re-running it is a no-op),
    else None."""
    summary = run_dir / "summary.json"
    saved = None if restart or not summary.is_file() else read_resume_state(run_dir)
    if saved is None:
        return None
    if saved["epoch"] < config["recipe"]["epochs"] or config_differences(saved["config"], config, RESUME_IGNORES):
        return None
    return json.loads(summary.read_text())


def write_valid_results(model: torch.nn.Module, run_dir: Path, valid: Feed, labels: np.ndarray,
                        indices: np.ndarray, *, amp: bool = False, dist: Dist | None = None) -> float:
    """``results_valid.csv`` of the best model: index, Loss, Prediction, Confidence, Label. Returns its error.

    Under data parallelism every rank predicts its share and rank 0 writes the file."""
    dist = dist or Dist()
    state = torch.load(run_dir / "model.pth", map_location=next(model.parameters()).device, weights_only=True)
    model.load_state_dict(state)
    probs = predict_probs(model, valid, gen=epoch_generator(0, 0), amp=amp, desc="best model", progress=False,
                          gather=dist.gather_rows if dist.active else None)
    stats = classification_stats(probs, labels)
    frame = pd.DataFrame({"index": indices, "Loss": stats["per_sample_loss"], "Prediction": probs.argmax(1),
                          "Confidence": probs.max(1), "Label": labels})
    if dist.is_main:
        write_csv(run_dir / "results_valid.csv", frame)
    return float(stats["error"])


def recipe_dict(recipe: Recipe) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(recipe).items()}
