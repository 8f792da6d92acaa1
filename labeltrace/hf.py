"""Record training dynamics inside a Hugging Face ``Trainer`` (``pip install labeltrace[hf]``).

    from labeltrace import with_index
    from labeltrace.hf import DynamicsCallback
    trainer = Trainer(model=model, args=args, train_dataset=with_index(train_set),
                      callbacks=[DynamicsCallback("runs/mine", labels=train_labels, num_classes=10)])
    trainer.train()                     # runs/mine: training_dynamics.npz + metadata.pth, as the recorder writes

Each training forward pass's logits are recorded for the samples of its batch (the training-pass recording
of STEP 1's ``--record train``: no extra pass). ``with_index`` adds a ``sample_index`` entry to every item;
the callback keeps the ``Trainer`` from dropping it as an unused column and takes it out of the inputs before
the model sees them, so neither the model nor the dataset changes. An epoch is closed at each ``on_epoch_end``
and the run folder written at ``on_train_end``; every sample must be seen once per epoch (no
``dataloader_drop_last``, no ``max_steps`` cut inside an epoch).
"""
from __future__ import annotations

from pathlib import Path

from labeltrace.errors import require
from labeltrace.indexed import INDEX_KEY, RecorderHolder, logits_of

__all__ = ["DynamicsCallback"]

TrainerCallback = require("transformers", extra="hf", what="labeltrace.hf").TrainerCallback


class DynamicsCallback(RecorderHolder, TrainerCallback):
    """A ``TrainerCallback`` that feeds a :class:`labeltrace.DynamicsRecorder` (the parameters are its own)."""

    def __init__(self, run_dir: str | Path, *, labels, num_classes: int, true_labels=None,
                 neighbours: int | None = None) -> None:
        super().__init__(run_dir, labels=labels, num_classes=num_classes, true_labels=true_labels,
                         neighbours=neighbours)
        self._index = None
        self._hooks: list = []

    def on_train_begin(self, args, state, control, model=None, train_dataloader=None, **kwargs):
        self.start_recording(model)
        _keep_index_column(train_dataloader)
        self._hooks = [model.register_forward_pre_hook(self._take_index, with_kwargs=True),
                       model.register_forward_hook(self._record)]

    def _take_index(self, module, args, kwargs):
        if INDEX_KEY not in kwargs:
            return None
        self._index = kwargs.pop(INDEX_KEY)
        return args, kwargs

    def _record(self, module, args, output) -> None:
        index, self._index = self._index, None
        features = self.take_features()
        if not module.training:  # an evaluation pass inside training: not a training trace
            return
        if index is None:
            raise ValueError("a training batch reached the model without 'sample_index': pass "
                             "train_dataset=labeltrace.with_index(train_set) to the Trainer")
        self.recorder.update(index, logits_of(output), features=features)

    def on_epoch_end(self, args, state, control, **kwargs):
        self.recorder.end_epoch()

    def on_train_end(self, args, state, control, **kwargs):
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        self.stop_recording()


def _keep_index_column(loader) -> None:
    """With ``remove_unused_columns`` (the default) the ``Trainer`` wraps the collator in one that keeps only
    the model's ``forward`` arguments; add ``sample_index`` to what it keeps. The loader is built before
    ``on_train_begin`` and its workers start after it, so the change reaches every batch."""
    collator = getattr(loader, "collate_fn", None)
    columns = getattr(collator, "signature_columns", None)
    if isinstance(columns, list) and INDEX_KEY not in columns:
        columns.append(INDEX_KEY)
