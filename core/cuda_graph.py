"""The training step as a CUDA graph: forward, loss, backward and the SGD update replayed as one launch.

A CIFAR ResNet-32 step at batch 128 is a few hundred small kernels, and eager PyTorch spends longer launching
them than the GPU spends running them; replaying a captured graph removes that cost. Same arithmetic as the
eager step (``core.passes.eager_step``), which it captures:

- the first ``warmup`` steps run eagerly on a side stream (real training steps on real batches: lazy
  initialisation such as the momentum buffers and cuDNN's algorithm search must not happen inside a capture);
- the next full batch is copied into static input tensors, captured, then replayed; later batches of that
  shape are copied in and replayed;
- a batch of another shape (an epoch's last, partial batch) runs eagerly;
- the learning rate is baked into the captured update, so a new learning rate is captured anew;
- if capturing fails, a one-line warning is printed and every later step runs eagerly;
- with a :class:`~labeltrace.neighbours.FeatureTap` in :attr:`CudaGraphStep.tap`, the head's input becomes a
  static output of the graph: its hook runs once, during the capture, and what it appended there is the tensor
  every replay overwrites; after a replay a copy of it goes to the tap, as an eager step's hook would append.
"""
from __future__ import annotations

import sys

import torch

from core.passes import StepFn, eager_step


class CudaGraphStep:
    """Callable like ``eager_step``: ``(x (B, ...), y (B,)) -> (loss (), logits (B, C))``. The tensors returned
    by a replay are overwritten by the next one: use them before the next call (``train_epoch`` does)."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, *, amp: bool = False,
                 warmup: int = 3) -> None:
        self.eager: StepFn = eager_step(model, optimizer, amp)
        self.optimizer, self.warmup = optimizer, warmup
        self.steps = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.shape: tuple[int, ...] | None = None  # the full batch's shape, captured
        self.lrs: tuple[float, ...] = ()
        self.static: tuple[torch.Tensor, ...] = ()  # x, y, loss, logits
        self.tap = None  # a FeatureTap on the model's head, or None
        self.static_features: torch.Tensor | None = None  # the head's input (B, D), rewritten by each replay
        self.failed = False
        self.captures = 0

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.steps += 1
        if self.shape is None:
            self.shape = tuple(x.shape)
        if self.failed or tuple(x.shape) != self.shape:
            return self.eager(x, y)
        if self.steps <= self.warmup:
            return self._side_stream(x, y)
        lrs = tuple(float(g["lr"]) for g in self.optimizer.param_groups)
        if self.graph is None or lrs != self.lrs:
            return self._capture(x, y, lrs)
        sx, sy, loss, logits = self.static
        sx.copy_(x, non_blocking=True)
        sy.copy_(y, non_blocking=True)
        self.graph.replay()
        self._hand_features()
        return loss, logits

    def _hand_features(self) -> None:
        """Give the tap this replay's features, a copy (the next replay overwrites the static tensor)."""
        if self.tap is not None:
            if self.static_features is None:
                raise RuntimeError("the CUDA graph was captured without the feature tap: no features to record")
            self.tap.batches.append(self.static_features.clone())

    def _side_stream(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        side = torch.cuda.Stream(x.device)
        side.wait_stream(torch.cuda.current_stream(x.device))
        with torch.cuda.stream(side):
            out = self.eager(x, y)
        torch.cuda.current_stream(x.device).wait_stream(side)
        return out

    def _capture(self, x: torch.Tensor, y: torch.Tensor, lrs: tuple[float, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        self.graph, self.static = None, ()  # free the previous graph's memory first
        sx, sy = x.clone(), y.clone()
        graph = torch.cuda.CUDAGraph()
        taken = len(self.tap.batches) if self.tap is not None else 0
        try:
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):  # loader threads may touch CUDA
                loss, logits = self.eager(sx, sy)
        except RuntimeError as exc:
            if self.tap is not None:
                del self.tap.batches[taken:]
            self.failed = True
            print(f"warning: CUDA graph capture failed, training eagerly from here ({exc})".splitlines()[0],
                  file=sys.stderr)
            return self.eager(x, y)
        self.graph, self.static, self.lrs = graph, (sx, sy, loss, logits), lrs
        self.static_features = None
        if self.tap is not None:  # the hook ran once, inside the capture: its tensor is the graph's output
            self.static_features = self.tap.batches.pop()
            del self.tap.batches[taken:]
        self.captures += 1
        graph.replay()  # capturing only recorded the work: run it for this batch
        self._hand_features()
        return loss, logits
