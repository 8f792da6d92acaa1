"""One epoch of training, and prediction over a feed. Knows no dataset or model by name."""
from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from core.feeds import Feed


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class EpochStats:
    loss: float
    error: float  # fraction of samples whose argmax differs from their (assigned) label


StepFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def _autocast(device: torch.device, amp: bool, cache: bool = True):
    if amp and device.type in ("cuda", "cpu"):
        return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=cache)
    return contextlib.nullcontext()


def eager_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, amp: bool = False) -> StepFn:
    """One SGD step as a function ``(x (B, ...), y (B,)) -> (loss (), logits (B, C) float32)``, detached.

    The same function is what ``core/cuda_graph.py`` captures, so it must not wait on the GPU (no ``.item()``).
    """
    def step(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with _autocast(x.device, amp, cache=False):  # autocast's weight cache is unsafe inside a CUDA graph
            logits = model(x)
        logits = logits.float()
        loss = F.cross_entropy(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach(), logits.detach()

    return step


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, leave=False, file=sys.stderr, disable=not enabled or None,
                dynamic_ncols=True)


def train_epoch(model: torch.nn.Module, feed: Feed, labels: torch.Tensor, optimizer: torch.optim.Optimizer, *,
                gen: torch.Generator, amp: bool = False, desc: str = "train", progress: bool = True,
                on_logits: Callable[[torch.Tensor, torch.Tensor], None] | None = None,
                all_sum: Callable[[torch.Tensor], torch.Tensor] | None = None,
                step: StepFn | None = None) -> EpochStats:
    """Train one pass over ``feed``; ``labels`` (N,) are indexed by the feed's sample positions.

    ``on_logits(idx, logits)`` receives the sample positions (B,) and the float32 logits (B, C) of the
    training forward pass itself, detached, which is how the zero-cost recording mode sees the data. ``all_sum`` sums the epoch's loss and error counts over the
    ranks of a data-parallel run (each rank sees a share of the feed). ``step`` replaces the eager SGD step
    (``eager_step``), e.g. with its CUDA-graph replay (``core.cuda_graph.CudaGraphStep``).
    """
    model.train()
    step = step or eager_step(model, optimizer, amp)
    device = labels.device
    total_loss = torch.zeros((), device=device)
    wrong = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    with _progress(len(feed), desc, progress) as bar:
        for x, idx in feed.batches(gen):
            y = labels[idx.to(device, non_blocking=True)]
            loss, logits = step(x, y)
            with torch.no_grad():
                total_loss += loss * len(y)
                wrong += (logits.argmax(1) != y).sum()
                if on_logits is not None:
                    on_logits(idx, logits)
            seen += len(y)
            bar.update(1)
    n = feed.num_samples
    if all_sum is not None:
        total_loss, wrong = all_sum(total_loss), all_sum(wrong)
        n = int(all_sum(torch.tensor(seen, device=device)))
    loss = float(total_loss) / n
    if not np.isfinite(loss):
        raise NonFiniteLoss(f"training loss is {loss}")
    return EpochStats(loss=loss, error=int(wrong) / n)


@torch.no_grad()
def predict_probs(model: torch.nn.Module, feed: Feed, *, gen: torch.Generator, amp: bool = False,
                  desc: str = "predict", progress: bool = True,
                  gather: Callable[[np.ndarray, np.ndarray, int], np.ndarray] | None = None) -> np.ndarray:
    """Softmax probabilities of shape (N, C), float32, row ``i`` = the feed's sample ``i``; model in eval mode.

    ``gather(idx, probs, N)`` assembles the rows of a feed that each rank of a data-parallel run sees a share
    of (``Dist.gather_rows``); every rank gets the whole array.
    """
    shares = predict_batches(model, feed, gen=gen, amp=amp, desc=desc, progress=progress)
    return assemble_rows(shares, feed.num_samples, gather)


@torch.no_grad()
def predict_batches(model: torch.nn.Module, feed: Feed, *, gen: torch.Generator, amp: bool = False,
                    desc: str = "predict", progress: bool = True,
                    on_logits: Callable[[torch.Tensor, torch.Tensor], None] | None = None
                    ) -> list[tuple[np.ndarray, torch.Tensor]]:
    """:func:`predict_probs` before assembly: ``(idx (B,), probs (B, C))`` per batch, in feed order, the
    probabilities still on their device (one forward call per batch, so a hook sees the batches in this order).
    With ``on_logits``, each batch's ``(idx (B,), logits (B, C) float32)`` goes there instead, and none is kept."""
    model.eval()
    shares: list[tuple[np.ndarray, torch.Tensor]] = []
    with _progress(len(feed), desc, progress) as bar:
        for x, idx in feed.batches(gen):
            with _autocast(x.device, amp):
                logits = model(x).float()
            if on_logits is not None:
                on_logits(idx, logits)
            else:
                shares.append((idx.numpy(), logits.softmax(1)))
            bar.update(1)
    return shares


def assemble_rows(shares: list[tuple[np.ndarray, torch.Tensor]], num_rows: int,
                  gather: Callable[[np.ndarray, np.ndarray, int], np.ndarray] | None = None) -> np.ndarray:
    """Per-batch ``(idx (B,), probs (B, C))`` -> one float32 array (num_rows, C), row ``i`` = sample ``i``.

    The probabilities stay on their device until here: one copy to the host per pass, no wait per batch.
    ``gather`` (``Dist.gather_rows``) assembles the rows every rank of a data-parallel run holds a share of.
    """
    assert shares, "empty feed"
    idx, probs = np.concatenate([i for i, _ in shares]), torch.cat([p for _, p in shares]).cpu().numpy()
    if gather is not None:
        return gather(idx, probs, num_rows)
    out = np.empty((num_rows, probs.shape[1]), dtype=np.float32)
    out[idx] = probs
    return out


def classification_stats(probs: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray | float]:
    """Loss, top-1 and top-5 error of probabilities (N, C) against labels (N,); per-sample loss (N,)."""
    n = len(labels)
    p_label = np.clip(probs[np.arange(n), labels], 1e-12, 1.0)
    per_loss = -np.log(p_label)
    k = min(5, probs.shape[1])
    top5 = np.argpartition(-probs, k - 1, axis=1)[:, :k]
    return {"loss": float(per_loss.mean()), "error": float((probs.argmax(1) != labels).mean()),
            "top5_error": float(1.0 - (top5 == labels[:, None]).any(1).mean()), "per_sample_loss": per_loss}
