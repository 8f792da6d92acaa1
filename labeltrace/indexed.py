"""What the framework adapters share: a dataset wrapper that carries each sample's index through the batch,
the readers that take it back out and find the logits in a model's output, and the recorder they hold.

The index is the only thing a recorder needs that a framework does not pass along: every training forward
pass gives logits, but which samples they belong to is lost in shuffling. Wrapping the training set once
(``with_index(train_set)``) puts it in every batch; the adapter removes it before the user's code sees it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from labeltrace.recorder import DynamicsRecorder
from labeltrace.neighbours import FeatureTap

__all__ = ["INDEX_KEY", "IndexedDataset", "with_index"]

INDEX_KEY = "sample_index"  # the batch entry (dict items) that carries the sample positions


class RecorderHolder:
    """The recorder an adapter feeds, made by :meth:`start_recording` when training starts: only then has the
    framework set up torch.distributed, which the recorder joins when it is made (each rank records its
    shard, rank 0 writes the folder).

    Parameters are the recorder's: ``run_dir``, ``labels`` (int array of shape (N,), the labels trained on),
    ``num_classes``, optionally ``true_labels`` (N,) where the noise was synthesized, and ``neighbours`` (the
    neighbour agreement, from the input of the model's last linear layer, :class:`FeatureTap`: on by default,
    k = 20; 0 turns it off).
    """

    def __init__(self, run_dir: str | Path, *, labels, num_classes: int, true_labels=None,
                 neighbours: int | None = None) -> None:
        self._recorder_args = dict(run_dir=run_dir, labels=labels, num_classes=num_classes, true_labels=true_labels,
                                   neighbours=neighbours)
        self.recorder: DynamicsRecorder | None = None
        self._tap: FeatureTap | None = None

    def start_recording(self, model: torch.nn.Module) -> None:
        """Make the recorder and, when it records neighbour agreement, tap ``model``'s head for its features."""
        self.recorder = DynamicsRecorder(**self._recorder_args)
        if self.recorder.neighbours:
            try:
                self._tap = FeatureTap(model).__enter__()
            except ValueError:  # no linear head: by default the recorder then records the softmax alone
                if self._recorder_args["neighbours"] is not None:
                    raise

    def take_features(self) -> torch.Tensor | None:
        """The features of the last forward call since the previous take (None without a tap)."""
        if self._tap is None:
            return None
        features = self._tap.batches[-1] if self._tap.batches else None
        self._tap.batches.clear()
        return features

    def stop_recording(self) -> None:
        """Remove the tap and write the run folder."""
        if self._tap is not None:
            self._tap.__exit__(None, None, None)
            self._tap = None
        self.recorder.save()


class IndexedDataset(Dataset):
    """``dataset`` with each item's position added: a dict item gains ``sample_index``, a tuple item
    ``(x, y)`` becomes ``(x, y, {"sample_index": index})``, any other item ``x`` becomes
    ``(x, {"sample_index": index})``. In a tuple the index rides in a dict of its own, so that it cannot be
    mistaken for a label (both collate to 1-D integer tensors)."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        item = self.dataset[index]
        if isinstance(item, dict):
            return {**item, INDEX_KEY: index}
        if isinstance(item, (tuple, list)):
            return (*item, {INDEX_KEY: index})
        return item, {INDEX_KEY: index}


def with_index(dataset) -> IndexedDataset:
    """Wrap a map-style training set so that its batches carry each sample's index (see :class:`IndexedDataset`)."""
    return IndexedDataset(dataset)


def pop_index(batch: Any) -> torch.Tensor:
    """Take the sample indices, shape (B,), out of a collated batch of :class:`IndexedDataset` items, in place:
    the ``sample_index`` entry of a dict batch, or the last entry of a list batch (default collation turns
    the items' tuples into a list), a dict holding only ``sample_index``."""
    if isinstance(batch, dict) and INDEX_KEY in batch:
        return batch.pop(INDEX_KEY)
    if isinstance(batch, list) and batch and isinstance(batch[-1], dict) and set(batch[-1]) == {INDEX_KEY}:
        return batch.pop()[INDEX_KEY]
    raise ValueError("the training batch carries no sample index: wrap the training set with "
                     "labeltrace.with_index(train_set)")


def logits_of(output: Any) -> torch.Tensor:
    """The (B, C) logits in a model's output: a tensor, an object or dict with ``logits`` (Hugging Face's
    ``ModelOutput``), or the first 2-D floating tensor of a tuple (``(loss, logits)``)."""
    if torch.is_tensor(output):
        return output
    found = getattr(output, "logits", None)
    if found is None and isinstance(output, dict):
        found = output.get("logits")
    if found is None and isinstance(output, (tuple, list)):
        found = next((o for o in output if torch.is_tensor(o) and o.ndim == 2 and o.is_floating_point()), None)
    if found is None:
        raise ValueError(f"no logits in the model's output ({type(output).__name__}): return a (B, C) tensor, "
                         "a dict or object with 'logits', or a tuple holding them")
    return found
