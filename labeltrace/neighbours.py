"""Neighbour agreement: how many of a sample's nearest neighbours, in the network's own feature space, share its
assigned label, at each epoch.

Every other detector input reads one sample's softmax curve. This one reads the labels *around* a sample: early
in training a mislabeled image sits among images of its true class, whose labels are mostly right, so few of its
neighbours carry its (wrong) label; a clean image sits among its own class. The features are the input of the
classifier's last linear layer (the penultimate activations), captured in the same forward pass that gives the
softmax, so recording them costs one (N, D) buffer and one k-nearest-neighbour search per epoch:
:func:`agreement` does it in blocks of rows (256 MB of similarities at a time), O(N^2 D) arithmetic, on whatever
device the features are on.

Stored as ``neighbours`` in ``training_dynamics.npz``: float16 of shape (N, T), row ``n`` the same sample as
``td[n]`` (docs/formats.md).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

DEFAULT_K = 20
_BLOCK_VALUES = 1 << 26  # similarities held at a time: 256 MB of float32 (1,342 rows at N = 50k)


def head_of(model: nn.Module) -> nn.Linear:
    """The classifier's last linear layer: the last ``nn.Linear`` among ``model.modules()`` (the head of every
    network of ``models/``, and of torchvision's and Hugging Face's image classifiers)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layer whose input could serve as features")
    return linears[-1]


class FeatureTap:
    """Collects the input of ``model``'s head (:func:`head_of`) at every forward call, detached, float32: one
    (B, D) tensor per call, in call order, in :attr:`batches`. A context manager: the hook is removed on exit."""

    def __init__(self, model: nn.Module) -> None:
        self.head = head_of(model)
        self.batches: list[torch.Tensor] = []
        self._handle = None

    def _hook(self, _module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        self.batches.append(inputs[0].detach().flatten(1).float())

    def __enter__(self) -> FeatureTap:
        self._handle = self.head.register_forward_pre_hook(self._hook)
        return self

    def __exit__(self, *exc) -> None:
        self._handle.remove()


@torch.no_grad()
def agreement(features: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray, *, k: int = DEFAULT_K
              ) -> np.ndarray:
    """For each row, the fraction of its ``k`` nearest other rows (cosine similarity) whose label equals its own.

    Parameters
    ----------
    features : array of shape (N, D)
    labels : int array of shape (N,), the assigned labels
    k : neighbours per row; fewer when N - 1 < k

    Returns
    -------
    float32 array of shape (N,), values in {0, 1/k, ..., 1}; ties in similarity are broken by ``torch.topk``.
    """
    x = torch.as_tensor(features, dtype=torch.float32)
    y = torch.as_tensor(labels, device=x.device).long()
    n = len(x)
    if y.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {tuple(y.shape)}")
    k = min(k, n - 1)
    if k < 1:
        return np.ones(n, dtype=np.float32)
    x = nn.functional.normalize(x, dim=1)
    out = torch.empty(n, dtype=torch.float32, device=x.device)
    rows = max(1, _BLOCK_VALUES // n)
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        sim = x[start:stop] @ x.T
        sim[torch.arange(stop - start), torch.arange(start, stop)] = -torch.inf  # a row is not its own neighbour
        nearest = sim.topk(k, dim=1).indices
        out[start:stop] = (y[nearest] == y[start:stop, None]).float().mean(1)
    return out.cpu().numpy()


def disagreement(neighbours: np.ndarray) -> np.ndarray:
    """The hand-crafted score of a recorded agreement: ``1 - mean over epochs``, shape (N,) float64 for
    ``neighbours`` (N, T); higher = more suspicious (the Deep k-NN filter's vote, averaged over training)."""
    return 1.0 - np.asarray(neighbours, dtype=np.float64).mean(axis=1)
