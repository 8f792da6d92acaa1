"""The recorder of a training loop's dynamics, :class:`DynamicsRecorder`: your loop, the Hugging Face and Lightning
callbacks and STEP 1 feed it alike, and it writes the run folder every later stage reads (docs/formats.md).

    recorder = DynamicsRecorder("runs/mine", labels=train_labels, num_classes=10)
    for epoch in range(num_epochs):
        for images, targets, index in loader:          # index: each sample's position in the training set
            logits = model(images)
            ...                                        # loss, backward, step: your loop as it is
            recorder.update(index, logits)             # the softmax of this forward pass
        recorder.end_epoch()
    recorder.save()                                    # training_dynamics.npz + metadata.pth, as STEP 1 writes
                                                       # (training_dynamics_compact.npz above 300 classes)

Each epoch is on disk once ``end_epoch()`` returns, so a killed loop loses at most the epoch it was in: a
recorder constructed again on the same folder resumes after the last finished one (docs/recorder_scale.md).
"""
from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from labeltrace.epoch_file import ROW_SUM_TOLERANCE
from labeltrace.errors import DISK_FULL, NOT_WRITABLE, Diverged, os_error_in_chain
from labeltrace.neighbours import DEFAULT_K, SEARCHES, FeatureStore, free_memory, stored_dim
from labeltrace.recording import RESTART, WorkingFiles, _Group, choose_layout, write_run_metadata

__all__ = ["DynamicsRecorder"]


class DynamicsRecorder:
    """Collects each training sample's softmax at every epoch of a loop you write, streamed to ``run_dir``.

    Parameters
    ----------
    run_dir : path
        Where each finished epoch is kept and :meth:`save` writes the traces file and ``metadata.pth``.
    labels : int array of shape (N,)
        The labels the model is trained on (possibly noisy), indexed by sample position.
    num_classes : int
    true_labels : int array of shape (N,), optional
        The clean labels when known (synthesized noise): the metadata then marks ``label_flipped``; otherwise
        they are taken to be ``labels`` (no ground truth, as for real noise).
    layout : ``"auto"``, ``"full"`` or ``"compact"``
        ``full``: the paper's ``training_dynamics.npz``, td (N, T, C); ``compact``:
        ``training_dynamics_compact.npz``, per epoch the assigned label's and the strongest other class's
        probability, plus the mean probability vector (docs/formats.md); ``auto``: compact above 300 classes.
    neighbours : int, optional
        Also record, each epoch, the fraction of each sample's k nearest neighbours in the features you pass to
        :meth:`update` (the input of the classifier's last linear layer, :class:`~labeltrace.FeatureTap`) that
        share its label (:mod:`labeltrace.neighbours`), the input the default detector reads. By default k = 20
        when the first :meth:`update` brings ``features=`` (a resumed folder: as it was recorded); without
        them the recorder says once that it records the softmax alone. ``0`` turns it off; an explicit k > 0
        makes ``features=`` required. Memory: one epoch's features, float16 and at most
        :data:`~labeltrace.neighbours.FEATURE_BUDGET` bytes (512 MiB; wider features are projected), on the
        features' device; when that device has less than twice this free, the recorder turns the agreement off
        and says so.
    neighbour_search : ``"auto"``, ``"exact"`` or ``"ivf"``
        The k-nearest-neighbour search (:func:`labeltrace.neighbours.choose_search`): ``auto`` is exact up to
        about 50,000 samples on the CPU and on a GPU, faiss's inverted-file index beyond (the ``faiss`` extra).
        The search used is written with the traces (``neighbour_search``).
    restart : bool
        Discard the working files of an unfinished recording in ``run_dir`` and record from scratch (a folder
        holding a STEP 1 run, or a saved run of other labels, is refused all the same).
    shared_folder : bool
        ``run_dir`` belongs to the training loop, which keeps its own files there (checkpoints, a log, its own
        ``metadata.pth``: STEP 1 does): the recorder then takes no lock on the folder (the loop holds it), does
        not refuse it for holding a run, and :meth:`save` writes the traces file alone.

    Memory holds one epoch at most; a finished epoch is on disk when :meth:`end_epoch` returns. If the loop is
    killed, construct the recorder again on the same ``run_dir`` (same labels): it resumes after the last
    finished epoch (``num_epochs``), so continue the loop from there, or call :meth:`save` to write what is
    there. Under ``torch.distributed`` call every method on every rank with that rank's batches: the recorder
    gathers them by sample index and rank 0 writes one folder, the same as a one-process run's.

    One recorder writes a folder at a time: it holds the folder's lock (as STEP 1 does) until :meth:`save` or
    :meth:`close`. It never writes into a folder holding a STEP 1 run or a saved run of other labels, and it
    resumes only from working files whose committed epochs are whole (their checksums in ``recorder.json``).
    """

    def __init__(self, run_dir: str | Path, *, labels, num_classes: int, true_labels=None,
                 layout: str = "auto", neighbours: int | None = None, neighbour_search: str = "auto",
                 restart: bool = False, shared_folder: bool = False) -> None:
        self.run_dir = Path(run_dir)
        if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
            raise ValueError(f"num_classes must be a whole number of classes >= 2, got {num_classes!r}")
        num_classes = int(num_classes)
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise ValueError(f"run_dir: {self.run_dir} is a file, not a folder")
        self.labels = _int_labels(labels, num_classes, "labels")
        if not len(self.labels):
            raise ValueError("labels is empty: a recorder needs one label per training sample (N >= 1)")
        self.true_labels = self.labels if true_labels is None else _int_labels(true_labels, num_classes, "true_labels")
        if self.true_labels.shape != self.labels.shape:
            raise ValueError(f"true_labels has {len(self.true_labels)} entries, labels {len(self.labels)}")
        self.num_classes = num_classes
        self.layout = choose_layout(layout, num_classes)
        if neighbours is not None and (isinstance(neighbours, bool) or not isinstance(neighbours, int)
                                       or neighbours < 0):
            raise ValueError(f"neighbours must be an integer k >= 0 (or None: the default), got {neighbours!r}")
        if neighbour_search not in SEARCHES:
            raise ValueError(f"neighbour_search must be one of {', '.join(SEARCHES)}, got {neighbour_search!r}")
        self.neighbour_search = neighbour_search
        self._asked_none = neighbours == 0  # features passed then are a mistake in the loop
        self._store: FeatureStore | None = None  # this epoch's features, when the agreement is recorded
        self._saved = False  # save() wrote the files and removed the working files: nothing more to record
        self._written = 0  # the epochs the traces file holds, when this recorder wrote it
        self._shared = shared_folder
        self._group = _Group()
        self._files = (WorkingFiles(self.run_dir, self.layout, self.labels, num_classes, neighbours, shared=shared_folder)
                       if self._group.rank == 0 else None)
        with _writing(self.run_dir, "DynamicsRecorder()"):
            committed = self._files.claim(restart) if self._files is not None else 0
        self._epochs = self._group.broadcast_int(committed)
        if neighbours is None and self._epochs:
            neighbours = self._group.broadcast_int(self._files.k if self._files is not None else 0)
        self._explicit = neighbours is not None  # None: decided by the first update()
        self.neighbours = DEFAULT_K if neighbours is None else neighbours
        if self._epochs and self._group.rank == 0 and not shared_folder:  # a loop sharing its folder says so itself
            warnings.warn(f"{self.run_dir}: resuming after its {self._epochs} finished epochs ({RESTART})",
                          stacklevel=2)
        self._seen = np.zeros(len(self.labels), dtype=bool)
        self._open = False  # an epoch has updates not yet committed

    @property
    def num_epochs(self) -> int:
        """The finished (committed) epochs."""
        return self._epochs

    def update(self, index, outputs, *, probabilities: bool = False, features=None) -> None:
        """Record one batch: ``index`` (B,) integer sample positions, ``outputs`` (B, C) logits (softmax taken
        here) or, with ``probabilities=True``, probabilities in [0, 1]. Tensors may live on any device. The
        first value of a sample in an epoch counts (a repeat, e.g. the padding of a distributed sampler, is
        ignored). ``features`` (B, D): the batch's penultimate features, needed when ``neighbours`` > 0
        (:class:`labeltrace.neighbours.FeatureTap` collects them from a model's forward pass)."""
        self._check_not_saved("update()")
        idx = _index_array(index, len(self.labels))
        feats = self._check_features(features, len(idx))
        out = outputs.detach().float() if torch.is_tensor(outputs) else torch.as_tensor(np.asarray(outputs, np.float32))
        if out.ndim != 2 or out.shape != (len(idx), self.num_classes):
            raise ValueError(f"outputs must have shape ({len(idx)}, {self.num_classes}) for {len(idx)} indices, "
                             f"got {tuple(out.shape)}")
        if not bool(torch.isfinite(out).all()):
            raise Diverged(f"outputs hold {int((~torch.isfinite(out)).sum())} NaN or infinite values: the model "
                           "diverged (nothing recorded)")
        if probabilities and len(idx) and not (0.0 <= float(out.min()) and float(out.max()) <= 1.0):
            raise ValueError(f"probabilities=True but outputs run from {float(out.min()):g} to {float(out.max()):g}, "
                             "outside [0, 1]: pass logits with probabilities=False")
        if probabilities and len(idx):
            off = (out.sum(dim=1) - 1).abs() > ROW_SUM_TOLERANCE
            if bool(off.any()):
                raise ValueError(f"probabilities=True but {int(off.sum())} of {len(idx)} rows of outputs do not sum "
                                 f"to 1 (e.g. {float(out[off][0].sum()):g}): pass softmax outputs, or logits with "
                                 "probabilities=False")
        probs = (out if probabilities else torch.softmax(out, dim=1)).to(torch.float16)  # the stored precision
        index_t = torch.from_numpy(idx)
        if self._group.active:
            gathered, probs = self._group.gather(index_t, probs)
            if feats is not None:
                feats = self._group.gather(index_t, feats)[1]
            index_t = gathered
        self._open = True
        if self._files is None:
            return
        idx, first = np.unique(index_t.numpy(), return_index=True)
        fresh = ~self._seen[idx]
        idx, rows = idx[fresh], probs.cpu().numpy()[first[fresh]]
        if len(idx):
            with _writing(self.run_dir, "update()"):
                self._files.record(self._epochs, idx, rows)
            self._seen[idx] = True
            if feats is not None:
                self._keep_features(idx, feats[torch.from_numpy(first[fresh]).to(feats.device)])

    def _check_features(self, features, batch: int) -> torch.Tensor | None:
        """``features`` as a tensor (B, D) when the recorder records neighbour agreement, else None."""
        if not self._epochs and not self._open and not self._explicit:
            self._decide(features)
        if not self.neighbours:
            if features is not None and self._asked_none:
                raise ValueError("features were passed but this recorder records no neighbour agreement "
                                 "(neighbours=0): construct it with neighbours=k, or pass no features")
            return None
        if features is None:
            raise ValueError(f"this recorder records neighbour agreement (neighbours={self.neighbours}): pass "
                             "features= (the batch's penultimate features, FeatureTap) to update()")
        feats = features.detach() if torch.is_tensor(features) else torch.as_tensor(np.asarray(features))
        feats = feats.flatten(1) if feats.ndim > 2 else feats
        if feats.ndim != 2 or len(feats) != batch or not feats.is_floating_point():
            raise ValueError(f"features must be floats of shape ({batch}, D) for {batch} indices, got "
                             f"{feats.dtype} {tuple(feats.shape)}")
        if not bool(torch.isfinite(feats).all()):
            raise Diverged("features hold NaN or infinite values: the model diverged (nothing recorded)")
        return feats.float()

    def _decide(self, features) -> None:
        """The default ``neighbours``, at the run's first update: k = 20 with features and room for them."""
        why = None
        if features is None:
            why = "update() got no features="
        else:
            device = features.device if torch.is_tensor(features) else torch.device("cpu")
            width = int(np.prod(np.shape(features)[1:]))
            need = 2 * len(self.labels) * stored_dim(len(self.labels), width) * 2
            free = free_memory(device)
            if free is not None and free < need:
                why = f"its features need {need / 2**20:.0f} MiB free on {device}, {free / 2**20:.0f} MiB are"
        # Rank 0 decides for every rank: one rank recording the agreement while another does not would hang the
        # gather of the features.
        if not self._group.broadcast_int(int(why is None)):
            if self._group.rank == 0:
                warnings.warn(f"{self.run_dir}: recording the softmax alone ({why}); the neighbour agreement, "
                              "which the default detector reads, needs features=FeatureTap batches and room for "
                              "them (neighbours=0 says so and silences this)", stacklevel=4)
            self.neighbours = 0
        if self._files is not None:
            self._files.k = self.neighbours
        self._explicit = True

    def _keep_features(self, idx: np.ndarray, feats: torch.Tensor) -> None:
        if self._store is None:
            self._store = FeatureStore(len(self.labels))
        self._store.add(torch.from_numpy(idx), feats)

    def end_epoch(self) -> None:
        """Commit the epoch to disk; every sample must have been recorded in it."""
        self._check_not_saved("end_epoch()")
        missing = self._group.broadcast_int(int((~self._seen).sum()) if self._files is not None else 0)
        if missing:
            raise ValueError(f"epoch {self.num_epochs + 1}: {missing} of {len(self.labels)} samples were not "
                             "recorded (pass every batch of the epoch to update())")
        if self._files is not None:
            search = None
            if self.neighbours:
                search = self._store.describe(k=self.neighbours, search=self.neighbour_search)
                self._files.record_neighbours(self._epochs, self._store.agreement(
                    self.labels, k=self.neighbours, search=self.neighbour_search))
            with _writing(self.run_dir, "end_epoch()"):
                self._files.commit(self._epochs + 1, search)
        self._epochs += 1
        self._seen[:] = False
        self._open = False

    def save(self, *, keep_working_files: bool = False) -> Path:
        """Write the traces file of the layout and ``metadata.pth`` from the finished epochs, each atomically,
        and return the run folder. The working files (``td_raw*.npy``, ``td_mean_sum.npy``, ``recorder.json``)
        are removed once both are written, unless ``keep_working_files=True``: a save in the middle of
        training, after which recording goes on and saves again (with no epoch finished in between, that save
        writes nothing again and only removes the working files). Once the working files are removed, saving
        again returns the folder as it is, and the recorder records no more."""
        if self._saved:
            return self.run_dir
        if not self.num_epochs:
            raise ValueError("no finished epoch to save: call end_epoch() after each epoch")
        if self._open:
            raise ValueError(f"epoch {self.num_epochs + 1} is half recorded: call end_epoch() before save()")
        if self._files is not None:
            if self._written != self.num_epochs:  # saved already with these epochs: no need to write again
                with _writing(self.run_dir, "save()"):
                    self._files.write(self.num_epochs)
                    if not self._shared:
                        write_run_metadata(self.run_dir, self.labels, self.true_labels)
                self._written = self.num_epochs
            if not keep_working_files:
                self._files.remove()
                self._files.release()
        self._saved = not keep_working_files
        self._group.barrier()  # every rank returns once the files are there
        return self.run_dir

    def rewind(self, epochs: int) -> None:
        """Forget the finished epochs after the first ``epochs``: a loop that resumes from a checkpoint older
        than the recorder's last finished epoch replays them (full layout; under ``torch.distributed`` on every
        rank)."""
        self._check_not_saved("rewind()")
        if self._open:
            raise ValueError(f"epoch {self.num_epochs + 1} is half recorded: rewind() before its first update()")
        if isinstance(epochs, bool) or not isinstance(epochs, int) or not 0 <= epochs <= self.num_epochs:
            raise ValueError(f"rewind(): epochs must be a whole number in [0, {self.num_epochs}], got {epochs!r}")
        if epochs < self.num_epochs and self._files is not None:
            with _writing(self.run_dir, "rewind()"):
                self._files.rewind(epochs)
        self._epochs = epochs
        self._written = 0

    def close(self) -> None:
        """Release the folder (its lock) without saving: the committed epochs stay, and a recorder constructed
        on the folder later resumes after them."""
        if self._files is not None:
            self._files.release()

    def _check_not_saved(self, call: str) -> None:
        if self._saved:
            raise ValueError(f"{call} after save(): the recording of {self.run_dir} is finished; record another run "
                             "with a new DynamicsRecorder (another run_dir), or save(keep_working_files=True) to "
                             "go on recording")


@contextlib.contextmanager
def _writing(run_dir: Path, call: str) -> Iterator[None]:
    """A folder that cannot be written, or a full disk, as one line naming the file (a full disk keeps the
    committed epochs: ``call`` again once there is space)."""
    try:
        yield
    except Exception as exc:
        denied, full = os_error_in_chain(exc, NOT_WRITABLE), os_error_in_chain(exc, DISK_FULL)
        if denied is not None:
            raise ValueError(f"run_dir: cannot write {denied.filename or run_dir} ({denied.strerror})") from None
        if full is not None:
            raise OSError(full.errno, f"no space left on device writing {full.filename or run_dir}: free some space "
                          f"and call {call} again (the committed epochs are intact)") from None
        raise


def _index_array(index, num_samples: int) -> np.ndarray:
    """``index`` as int64 (B,); floats are refused, not truncated (a float index is a bug in the loop)."""
    values = np.asarray(index.detach().cpu() if torch.is_tensor(index) else index)
    if values.size and not np.issubdtype(values.dtype, np.integer):
        raise ValueError(f"index must hold integer sample positions, got dtype {values.dtype}")
    idx = values.astype(np.int64).reshape(-1)
    if len(idx) and (idx.min() < 0 or idx.max() >= num_samples):
        raise ValueError(f"index must be sample positions in [0, {num_samples}), got {idx.min()}..{idx.max()}")
    return idx


def _int_labels(values, num_classes: int, name: str) -> np.ndarray:
    values = np.asarray(values.cpu() if torch.is_tensor(values) else values)
    if values.ndim != 1 or not np.issubdtype(values.dtype, np.integer):
        raise ValueError(f"{name} must be a 1-D integer array, got {values.dtype} of shape {values.shape}")
    if len(values) and (values.min() < 0 or values.max() >= num_classes):
        raise ValueError(f"{name} must lie in [0, {num_classes}), found {values.min()}..{values.max()}")
    return values.astype(np.int64)
