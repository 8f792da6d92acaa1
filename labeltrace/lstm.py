"""The STEP 2 noise detector: a 2-layer LSTM over the assigned-label probability curve.

The paper's model reads the curve forward in time and classifies from the last step. On runs that memorize
their noisy labels, the last steps of clean and noisy samples look alike (both near probability 1), so a
forward LSTM must carry the early epochs through ~T steps and in practice learns nothing (digits: val AUC
0.94, loss stuck at the base rate). Reading the curve time-reversed puts the early epochs last and trains
stably there, but then loses the late epochs, where runs that do *not* memorize carry their signal
(fashion_mnist flip 0.4: 0.70 vs 0.80 forward). Averaging the outputs over all steps ("pooled") sees both
and is the default: best mean val ROC-AUC of the key-compatible variants over 5 runs x 3 seeds
(docs/detector.md; bidirectional is ~0.01 better but 2x the cost and not loadable by the original code).

Variants (stored in every checkpoint as ``'variant'``; a checkpoint without the key is the original, forward):

- ``forward``: the paper's model, unchanged.
- ``reversed``: the same weights, fed ``curve[:, ::-1]``.
- ``pooled``: forward, with the LSTM outputs averaged over time instead of taking the last step.
- ``bidirectional``: a bidirectional LSTM, last forward step and first backward step concatenated.

The first three share the original state_dict (``lstm.*`` + ``classifier.*``, same shapes), so their weights
load into the original code (which then reads the curve forward: only ``forward`` means the same thing there).

Beyond the paper (both stored in the checkpoint, ``features`` and ``anchor``):

- ``features``: the per-epoch inputs (``labeltrace/features.py``); the paper's is ``("prob",)``, one
  channel. More features widen ``lstm.weight_ih_l0`` to (256, F), so only one-feature detectors load into the
  original code.
- ``anchor``: a linear term on each feature's mean over time, added to the LSTM's logits. Initialised by
  logistic regression and with the LSTM's classifier at zero, the untrained model already *is* the best
  linear score of the feature means (mean ``margin`` = AUM, mean ``prob`` = data-map confidence); training
  fits the LSTM as a residual on top, and the selection by validation ROC-AUC includes the starting point,
  so the detector is never below that linear score on its own validation split.
"""
from __future__ import annotations

import torch
from torch import nn

from labeltrace.features import PAPER_FEATURES, check_features

__all__: list[str] = []  # internal: used by the public modules and the research pipeline

VARIANTS = ("forward", "reversed", "pooled", "bidirectional")
DEFAULT_VARIANT = "pooled"  # chosen by measurement: docs/detector.md, benchmarks/detector_variants.py
# Chosen by leave-one-dataset-out (docs/lodo.md): prob + margin, anchored, tied the best mean ROC-AUC and mAP of
# the candidates over both held-out datasets, with fewer inputs than the others and the anchor's guarantee.
DEFAULT_FEATURES = ("prob", "margin")
DEFAULT_ANCHOR = True
ORIGINAL_VARIANT = "forward"  # what a checkpoint without a 'variant' key was trained as
HIDDEN_SIZE = 64
NUM_LAYERS = 2


def check_variant(variant: str) -> str:
    """Return ``variant`` if known, else raise ``ValueError`` listing the valid ones."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown detector variant {variant!r}; valid: {', '.join(VARIANTS)}")
    return variant


class LSTMDetector(nn.Module):
    """Binary classifier (class 1 = mislabeled) of one probability curve per sample.

    Parameters
    ----------
    variant : str
        One of :data:`VARIANTS`.
    hidden_size, num_layers : int
        The paper's 64 and 2; other values break checkpoint compatibility with the original code.
    features : sequence of str
        Names of the per-epoch input features (one LSTM input channel each).
    anchor : bool
        Add a linear term on the time-mean of each feature to the logits.
    """

    def __init__(self, variant: str = DEFAULT_VARIANT, hidden_size: int = HIDDEN_SIZE,
                 num_layers: int = NUM_LAYERS, *, features=PAPER_FEATURES, anchor: bool = False) -> None:
        super().__init__()
        self.variant = check_variant(variant)
        self.features = check_features(features)
        bidirectional = variant == "bidirectional"
        lstm = nn.LSTM(len(self.features), hidden_size, num_layers, batch_first=True, bidirectional=bidirectional)
        classifier = nn.Linear(hidden_size * (2 if bidirectional else 1), 2)
        # The original's init (orthogonal weights, biases 0.01): keeps our fresh models comparable to its own.
        for name, param in lstm.named_parameters():
            if name.startswith("weight"):
                nn.init.orthogonal_(param)
            else:
                nn.init.constant_(param, 0.01)
        # Registered in the original's order (classifier, then lstm): an optimizer state_dict indexes parameters
        # by position, so only this order lets the original code resume from our 'optimizer' and we from its.
        self.classifier = classifier
        self.lstm = lstm
        self.anchor = nn.Linear(len(self.features), 2) if anchor else None

    def forward(self, curves: torch.Tensor) -> torch.Tensor:
        """Logits of shape (B, 2) from ``curves`` of shape (B, T) (one feature) or (B, T, F)."""
        x = curves.unsqueeze(-1) if curves.dim() == 2 else curves
        base = self.anchor(x.mean(dim=1)) if self.anchor is not None else 0.0
        if self.variant == "reversed":
            x = x.flip(1)
        out, _ = self.lstm(x)
        if self.variant == "pooled":
            summary = out.mean(dim=1)
        elif self.variant == "bidirectional":
            half = out.shape[-1] // 2
            # The backward direction has read the whole sequence at step 0, the forward one at step T-1.
            summary = torch.cat([out[:, -1, :half], out[:, 0, half:]], dim=1)
        else:
            summary = out[:, -1]
        return self.classifier(summary) + base
