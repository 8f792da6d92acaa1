"""Record training dynamics inside a Lightning ``Trainer`` (``pip install labeltrace[lightning]``).

    from labeltrace import with_index
    from labeltrace.lightning import DynamicsCallback
    loader = DataLoader(with_index(train_set), batch_size=64, shuffle=True)
    trainer = L.Trainer(max_epochs=10, callbacks=[DynamicsCallback("runs/mine", labels=train_labels,
                                                                    num_classes=10)])
    trainer.fit(module, loader)         # runs/mine: training_dynamics.npz + metadata.pth, as the recorder writes

``with_index`` adds each sample's index to its item; the callback takes it back out of the batch before
``training_step`` sees it, so the module's code does not change. The logits recorded are those of the
module's own forward call (``self(x)``) in the training step, or, where ``training_step`` returns a dict
with ``"logits"``, those. An epoch is closed at ``on_train_epoch_end``, the run folder written at
``on_train_end``; every sample must be seen once per epoch (no ``drop_last``, no ``limit_train_batches``).
"""
from __future__ import annotations

from pathlib import Path

from labeltrace.errors import require
from labeltrace.indexed import RecorderHolder, logits_of, pop_index

__all__ = ["DynamicsCallback"]

try:
    from lightning.pytorch import Callback
except ImportError:  # the older package name, else a line naming the extra
    Callback = require("pytorch_lightning", extra="lightning", what="labeltrace.lightning").Callback


class DynamicsCallback(RecorderHolder, Callback):
    """A Lightning ``Callback`` that feeds a :class:`labeltrace.DynamicsRecorder` (the parameters are its own)."""

    def __init__(self, run_dir: str | Path, *, labels, num_classes: int, true_labels=None,
                 neighbours: int | None = None) -> None:
        super().__init__(run_dir, labels=labels, num_classes=num_classes, true_labels=true_labels,
                         neighbours=neighbours)
        self._index = None
        self._forward_output = None
        self._features = None
        self._hook = None

    def on_train_start(self, trainer, pl_module) -> None:
        self.start_recording(pl_module)
        self._hook = pl_module.register_forward_hook(self._keep_output)

    def _keep_output(self, module, args, output) -> None:
        # Under DDP, Lightning routes training_step itself through the module's __call__, so the hook also sees
        # the step's loss: keep only what holds (B, C) logits.
        if not module.training:
            return
        try:
            found = logits_of(output)
        except ValueError:
            return
        if found.ndim == 2:
            self._forward_output = found
            features = self.take_features()  # under DDP the step's own call comes after the forward's: keep that
            self._features = self._features if features is None else features

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        # The same batch object goes to training_step next: taking the index out here hides it from the module.
        self._index = pop_index(batch)
        self._forward_output = self._features = None
        self.take_features()  # drop what a validation pass left

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        found = outputs.get("logits") if isinstance(outputs, dict) else None
        found = self._forward_output if found is None else found
        if found is None:
            raise ValueError("the training step made no forward call of the module (self(x)) and returned no "
                             "'logits': return {'loss': loss, 'logits': logits} from training_step")
        features = self._features if self._features is not None else self.take_features()
        self.recorder.update(self._index, logits_of(found), features=features)
        self._index = self._forward_output = self._features = None

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.recorder.end_epoch()

    def on_train_end(self, trainer, pl_module) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        self.stop_recording()
