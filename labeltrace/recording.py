"""The working files and collectives behind :class:`labeltrace.DynamicsRecorder`.

Each finished epoch is on disk before ``DynamicsRecorder.end_epoch`` returns (the working files of
STEP 1's :class:`~labeltrace.epoch_file.EpochFile`, plus ``recorder.json``, which commits it), so memory holds
one epoch's working set at most: (N, C) float16 in the full layout, (N, 3) float32 in the compact one, whose
running sum of probabilities stays on disk. A loop killed after epoch k leaves k committed epochs: constructing
the recorder again on the same folder resumes after them (and its ``save()`` writes what is there).

Under ``torch.distributed`` every rank calls the same methods on its own share of each batch; the recorder
gathers the probabilities by sample index, rank 0 alone writes, and the folder equals a one-process run's.
"""
from __future__ import annotations

import json
import weakref
import zlib
from pathlib import Path

import numpy as np
import torch

from labeltrace.compact import AUTO_COMPACT_ABOVE, COMPACT_WIDTH, top_two, write_compact
from labeltrace.errors import UsageError
from labeltrace.io import write_json
from labeltrace.epoch_file import EpochFile, checksum_problem, committed_rows_problem, extend_checksums, stored_epochs
from labeltrace.runfiles import (BEST_MODEL_FILE, COMMAND_FILE, COMPACT_TRACES_FILE, CONFIG_FILE, LAST_MODEL_FILE,
                                 MEAN_SPILL_FILE, MEAN_SUM_FILE, METADATA_FILE, RAW_COMPACT_FILE,
                                 RAW_NEIGHBOURS_FILE, RAW_TRACES_FILE, RECORDER_STATE_FILE, RESUME_FILE,
                                 SUMMARY_FILE, TRACES_FILE, TRAIN_LOG_FILE, lock_run_dir, read_metadata,
                                 write_metadata)

__all__: list[str] = []  # internal: used by the public modules and the research pipeline

LAYOUTS = ("auto", "full", "compact")
RESTART = "pass restart=True (or delete the folder) to record from scratch"
# Files only a STEP 1 (or STEP 3) run writes: a folder holding one is that run's, never a recorder's.
STEP1_FILES = (RESUME_FILE, CONFIG_FILE, COMMAND_FILE, SUMMARY_FILE, TRAIN_LOG_FILE, BEST_MODEL_FILE, LAST_MODEL_FILE)
# The folders this process's recorders hold, by resolved path: a recorder that is garbage-collected lets its
# folder go (its lock file closes with it).
_HOLDERS: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
SPILL_RANGE = 1 << 14  # samples per range of the compact sums: 64 MiB of float32 sums at 1,000 classes


class _Group:
    """This process's place in ``torch.distributed`` (rank 0 of 1 without it) and the three collectives used."""

    def __init__(self) -> None:
        import torch.distributed as dist

        self.active = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        self.rank = dist.get_rank() if self.active else 0
        self.world = dist.get_world_size() if self.active else 1
        self.nccl = self.active and dist.get_backend() == "nccl"

    def _device(self, tensor: torch.Tensor | None = None) -> torch.device:
        if not self.nccl:
            return torch.device("cpu")
        return tensor.device if tensor is not None and tensor.is_cuda else torch.device("cuda", torch.cuda.current_device())

    def broadcast_int(self, value: int) -> int:
        """Rank 0's ``value`` on every rank."""
        if not self.active:
            return value
        import torch.distributed as dist

        out = torch.tensor([value], dtype=torch.long, device=self._device())
        dist.broadcast(out, 0)
        return int(out.item())

    def gather(self, idx: torch.Tensor, probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every rank's (B_r,) indices and (B_r, C) rows, concatenated in rank order, on the CPU."""
        return gather_by_index(idx, probs, self._device(probs), self.world)

    def barrier(self) -> None:
        if self.active:
            import torch.distributed as dist

            dist.barrier()


def gather_by_index(idx: torch.Tensor, rows: torch.Tensor, device: torch.device, world: int
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """``all_gather`` of every rank's sample positions ``idx`` (B_r,) and ``rows`` (B_r, ...), whose B_r may
    differ: (sum B_r,) and (sum B_r, ...) on the CPU, in rank order (so a position several ranks sent takes the
    highest rank's row when scattered in order). ``device``: where the backend communicates (CUDA for NCCL)."""
    import torch.distributed as dist

    idx, rows = idx.to(device, torch.long), rows.to(device)
    counts = [torch.zeros(1, dtype=torch.long, device=device) for _ in range(world)]
    dist.all_gather(counts, torch.tensor([len(idx)], dtype=torch.long, device=device))
    sizes = [int(c.item()) for c in counts]
    longest = max(sizes)
    pad_idx = torch.zeros(longest, dtype=torch.long, device=device)
    pad_idx[: len(idx)] = idx
    pad = torch.zeros((longest, *rows.shape[1:]), dtype=rows.dtype, device=device)
    pad[: len(idx)] = rows
    all_idx = [torch.empty_like(pad_idx) for _ in range(world)]
    all_rows = [torch.empty_like(pad) for _ in range(world)]
    dist.all_gather(all_idx, pad_idx)
    dist.all_gather(all_rows, pad)
    return (torch.cat([i[:k] for i, k in zip(all_idx, sizes)]).cpu(),
            torch.cat([r[:k] for r, k in zip(all_rows, sizes)]).cpu())


def choose_layout(layout: str, num_classes: int) -> str:
    """``full`` or ``compact``; ``auto`` is compact above :data:`AUTO_COMPACT_ABOVE` classes (docs/formats.md)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if layout == "auto":
        return "compact" if num_classes > AUTO_COMPACT_ABOVE else "full"
    return layout


class WorkingFiles:
    """Rank 0's working files of one run folder: the per-epoch rows and, compact, the sums of probabilities.

    ``rows``: (N, T, C) float16 (full) or (N, T, 3) float32 (compact: :func:`labeltrace.compact.top_two`);
    ``sums``: (N, 2, C) float32, slot ``t % 2`` the sums over epochs 0..t, so that a kill during epoch t+1 (which
    writes the other slot) leaves the last committed sums intact; ``spill``: (N, 1, C) float16, epoch t's
    probability vectors, appended batch by batch to the region of their range of :data:`SPILL_RANGE` samples,
    and added to the sums at the end of the epoch one range at a time (sequential reads and writes). Adding
    each batch to its rows of the sums instead writes 4 KiB at random places of a 10 GB file at ImageNet scale,
    which the page cache cannot absorb (measured: 13 min an epoch).
    """

    def __init__(self, run_dir: Path, layout: str, labels: np.ndarray, num_classes: int, neighbours: int = 0, *,
                 shared: bool = False) -> None:
        self.run_dir, self.layout, self.labels, self.num_classes = run_dir, layout, labels, num_classes
        self.shared = shared  # the folder belongs to the training loop, which locks it and writes its metadata
        self.k = neighbours  # > 0: the neighbour agreement (N, T, 1) float16 is recorded too; None: as committed
        self.search: dict | None = None  # how the agreement was searched (FeatureStore.describe)
        self.state = run_dir / RECORDER_STATE_FILE
        self.rows: EpochFile | None = None
        self.neighbours: EpochFile | None = None
        self.sums: EpochFile | None = None
        self.spill: EpochFile | None = None
        self._filled = np.zeros(-(-len(labels) // SPILL_RANGE), dtype=np.int64)  # spilled so far, per range
        self._arrival = np.zeros(len(labels), dtype=np.int64)  # the sample at each spill position
        # crc32 of each committed epoch's rows and agreement, and of the compact sums' last slot (recorder.json)
        self.checksums: dict[str, list[int] | None] = {"rows_crc32": [], "neighbours_crc32": [], "sums_crc32": []}
        self._lock = None  # the folder's advisory lock, held from the first look at the folder until release()

    def identity(self) -> dict:
        return {"layout": self.layout, "num_samples": len(self.labels), "num_classes": self.num_classes,
                "labels_crc32": zlib.crc32(self.labels.astype("<i8").tobytes()), "neighbours": self.k}

    def claim(self, restart: bool = False) -> int:
        """Lock the folder (when it exists) and return the epochs a previous recorder committed to it (0
        without one, or with ``restart``), its files checked and reopened. Refuses, changing nothing, a folder
        of another run and working files that are damaged or disagree with ``recorder.json``."""
        if not self.run_dir.exists():
            return 0
        try:
            if not self.shared:
                self._take_lock()
                self._check_not_foreign()
            return 0 if restart else self._committed()
        except BaseException:
            self.release()
            raise

    def _take_lock(self) -> None:
        key = str(self.run_dir.resolve())
        other = _HOLDERS.get(key)
        if other is not None and other is not self:  # the lock would say "another process": name the fix
            raise UsageError(f"{self.run_dir} is in use by another DynamicsRecorder of this process: call its "
                             "close() (or save()) first")
        self._lock = lock_run_dir(self.run_dir)
        _HOLDERS[key] = self

    def release(self) -> None:
        """Let another recorder (or a STEP 1 run) write the folder."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None
            _HOLDERS.pop(str(self.run_dir.resolve()), None)

    def _check_not_foreign(self) -> None:
        """Refuse a folder holding a STEP 1 run, or a saved run of other labels (their files would be replaced)."""
        step1 = [name for name in STEP1_FILES if (self.run_dir / name).exists()]
        if step1:
            raise ValueError(f"run_dir: {self.run_dir} holds a STEP 1 run ({', '.join(step1)}): give another run_dir")
        if self.state.exists():
            return  # this recorder's working files: _committed checks they are this run's
        saved = [name for name in (TRACES_FILE, COMPACT_TRACES_FILE, METADATA_FILE) if (self.run_dir / name).exists()]
        if not saved:
            return
        meta = self.run_dir / METADATA_FILE
        assigned = read_metadata(meta).assigned_targets if meta.is_file() else None
        if assigned is None or not np.array_equal(assigned, self.labels):
            raise ValueError(f"run_dir: {self.run_dir} holds a saved run of other labels ({', '.join(saved)}): give "
                             "another run_dir, or delete that run to record this one there")

    def _read_state(self) -> dict:
        """``recorder.json``, checked: an object with a whole number of ``epochs`` >= 0."""
        try:
            state = json.loads(self.state.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            reason = "a folder" if self.state.is_dir() else f"not JSON: {exc}"
            raise ValueError(f"{self.state}: not a recorder state ({reason}): {RESTART}") from None
        if not isinstance(state, dict) or "epochs" not in state:
            found = "no 'epochs'" if isinstance(state, dict) else f"a JSON {type(state).__name__}"
            raise ValueError(f"{self.state}: not a recorder state ({found}): {RESTART}")
        epochs = state["epochs"]
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
            raise ValueError(f"{self.state}: epochs {epochs!r} is not a whole number of epochs >= 0: {RESTART}")
        return state

    def _committed(self) -> int:
        if not self.state.exists():
            return 0
        state = self._read_state()
        state.setdefault("neighbours", 0)  # a folder recorded before the agreement existed recorded none
        if self.k is None:  # the recorder's default: go on as the folder was recorded
            k = state["neighbours"]
            if isinstance(k, bool) or not isinstance(k, int) or k < 0:
                raise ValueError(f"{self.state}: neighbours {k!r} is not a whole number k >= 0: {RESTART}")
            self.k = k
        self.search = state.get("neighbour_search")
        mine = self.identity()
        differ = [f"{k} {state.get(k)} (now {v})" for k, v in mine.items() if state.get(k) != v]
        if differ:
            raise ValueError(f"{self.state}: this folder records another run ({', '.join(differ)}): give another "
                             f"run_dir, or {RESTART}")
        epochs = state["epochs"]
        self._check_files(state, epochs)
        self.open(resume=True, epochs=epochs)
        self.checksums = {key: state.get(key) for key in self.checksums}
        return epochs

    def _files(self) -> list[tuple[str, int, type, str]]:
        """(file, width, dtype, checksum key) of each working file a commit covers."""
        full = self.layout == "full"
        files = [(RAW_TRACES_FILE, self.num_classes, np.float16, "rows_crc32") if full
                 else (RAW_COMPACT_FILE, COMPACT_WIDTH, np.float32, "rows_crc32")]
        if self.k:
            files.append((RAW_NEIGHBOURS_FILE, 1, np.float16, "neighbours_crc32"))
        if not full:
            files.append((MEAN_SUM_FILE, self.num_classes, np.float32, "sums_crc32"))
        return files

    def _check_files(self, state: dict, epochs: int) -> None:
        """Every working file whole, holding the ``epochs`` committed epochs whose checksums ``state`` keeps (a
        state written before checksums were kept has none to compare: the values are range-checked). Reads only."""
        lost = f"the {epochs} committed epochs are lost; {RESTART}"
        for name, width, dtype, key in self._files():
            path = self.run_dir / name
            if not path.is_file():
                raise ValueError(f"{path} is missing: {lost}")
            try:
                stored = stored_epochs(path, len(self.labels), width, dtype)
            except ValueError as exc:
                raise ValueError(f"{exc}: {lost}") from None
            sums = name == MEAN_SUM_FILE
            if stored < (2 if sums else epochs):
                raise ValueError(f"{path}: holds {stored} epochs but {self.state.name} commits {epochs}: {RESTART}")
            checksums = state.get(key)
            if checksums is None:
                problem = _range_problem(path, (len(self.labels), epochs, width), epochs)
                if problem:
                    raise ValueError(f"{problem}: {lost}")
                continue
            if not isinstance(checksums, list) or len(checksums) != (min(epochs, 1) if sums else epochs):
                raise ValueError(f"{self.state}: {key} does not hold one checksum per committed epoch: {RESTART}")
            # the sums keep one checksum: that of the slot the last commit wrote
            blocks = {(epochs - 1) % 2: checksums[0]} if sums and epochs else dict(enumerate(checksums))
            problem = checksum_problem(path, blocks, dtype, "slot" if sums else "epoch")
            if problem:
                raise ValueError(f"{problem}: {lost}")

    def open(self, *, resume: bool, epochs: int = 0) -> None:
        n, c = len(self.labels), self.num_classes
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self._lock is None and not self.shared:
            self._take_lock()
        if not resume:
            self.state.unlink(missing_ok=True)  # the state of files about to be replaced
        full = self.layout == "full"
        self.rows = self._epoch_file(RAW_TRACES_FILE if full else RAW_COMPACT_FILE, c if full else COMPACT_WIDTH,
                                     np.float16 if full else np.float32, resume=resume, epochs=epochs)
        if self.k:
            self.neighbours = self._epoch_file(RAW_NEIGHBOURS_FILE, 1, np.float16, resume=resume, epochs=epochs)
        if not full:
            self.sums = EpochFile(self.run_dir / MEAN_SUM_FILE, n, 2, c, resume=resume, dtype=np.float32)
            self.spill = EpochFile(self.run_dir / MEAN_SPILL_FILE, n, 1, c, resume=False)

    def _epoch_file(self, name: str, width: int, dtype, *, resume: bool, epochs: int) -> EpochFile:
        """An epoch-major working file (T, N, width) holding ``epochs`` epochs; resumed, its stored block count
        can exceed them (a killed epoch's block), which the next write cuts off (opening writes nothing: a
        resumption refused after it leaves the folder as it was)."""
        raw = self.run_dir / name
        stored = stored_epochs(raw, len(self.labels), width, dtype) if resume else epochs
        return EpochFile(raw, len(self.labels), stored, width, resume=resume, dtype=dtype)

    def record(self, epoch: int, idx: np.ndarray, probs: np.ndarray) -> None:
        """``probs`` (B, C) float16 of the samples ``idx`` (B,), sorted and each new in this epoch."""
        if self.rows is None:
            self.open(resume=False)
        self.rows.resize(epoch + 1)
        if self.layout == "full":
            self.rows.record(epoch, idx, probs)
            return
        self.rows.record(epoch, idx, top_two(probs, self.labels[idx]))
        ranges = idx // SPILL_RANGE  # idx is sorted, so each range's rows are one slice
        cuts = np.flatnonzero(np.diff(ranges)) + 1
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(idx)]):
            r = ranges[lo]
            at = r * SPILL_RANGE + self._filled[r]
            self.spill.write_rows(0, np.arange(at, at + hi - lo), probs[lo:hi])
            self._arrival[at:at + hi - lo] = idx[lo:hi]
            self._filled[r] += hi - lo

    def record_neighbours(self, epoch: int, agreement: np.ndarray) -> None:
        """The neighbour agreement (N,) of every sample at ``epoch``."""
        self.neighbours.resize(epoch + 1)
        self.neighbours.record(epoch, np.arange(len(agreement)), agreement[:, None])

    def _add_spill(self, epoch: int) -> None:
        """sums[epoch % 2] = sums[(epoch - 1) % 2] + the spilled epoch, one range of samples at a time: a
        range's region of the spill holds each of its samples once (end_epoch checked), in arrival order."""
        n, crc = len(self.labels), 0
        for start in range(0, n, SPILL_RANGE):
            rows = np.arange(start, min(start + SPILL_RANGE, n))
            probs = np.empty((len(rows), self.num_classes), dtype=np.float32)
            probs[self._arrival[rows] - start] = self.spill.read_rows(0, rows)
            if epoch:
                probs += self.sums.read_rows((epoch - 1) % 2, rows)
            self.sums.write_rows(epoch % 2, rows, probs)
            crc = zlib.crc32(probs.tobytes(), crc)  # the ranges in order: the crc32 of the whole slot
        self._filled[:] = 0
        self.checksums["sums_crc32"] = [crc]

    def commit(self, epochs: int, search: dict | None = None) -> None:
        """Make epoch ``epochs - 1`` durable, then mark it committed (``recorder.json``, atomically), with the
        ``search`` that made its neighbour agreement."""
        self.rows.flush()
        self._keep_checksum("rows_crc32", self.rows, epochs)
        if self.neighbours is not None:
            self.neighbours.flush()
            self._keep_checksum("neighbours_crc32", self.neighbours, epochs)
        if self.sums is not None:
            self._add_spill(epochs - 1)
            self.sums.sync()
        self.search = search or self.search
        self._write_state(epochs)

    def _write_state(self, epochs: int) -> None:
        """``recorder.json``, atomically: it commits ``epochs`` epochs of the working files."""
        extra = {"neighbour_search": self.search} if self.search else {}
        kept = {key: self.checksums[key] for *_, key in self._files() if self.checksums[key] is not None}
        write_json(self.state, {**self.identity(), "epochs": epochs, **extra, **kept})

    def _keep_checksum(self, key: str, recorder: EpochFile, epochs: int) -> None:
        """Add the checksum of epoch ``epochs - 1`` (replacing a replayed epoch's); none are kept for files a
        recorder without checksums began."""
        self.checksums[key] = extend_checksums(self.checksums[key], recorder.path, epochs - 1, recorder.dtype)

    def write(self, epochs: int) -> None:
        """The traces file of the layout, from the committed ``epochs``."""
        for recorder in (self.rows, self.neighbours):
            if recorder is not None:
                recorder.resize(epochs)  # without the block of an epoch a kill left uncommitted
        if self.layout == "full":
            self.rows.write_traces(self.run_dir / TRACES_FILE, self.labels, neighbours=self.neighbours,
                                   search=self.search)
        else:
            write_compact(self.run_dir / COMPACT_TRACES_FILE, self.rows, self.sums, (epochs - 1) % 2, self.labels,
                          epochs, neighbours=self.neighbours, search=self.search)

    def rewind(self, epochs: int) -> None:
        """Keep the first ``epochs`` committed epochs (full layout): the later ones are cut from the working
        files and ``recorder.json`` commits ``epochs``."""
        if self.layout != "full":
            raise ValueError(f"{self.state}: a compact recording keeps only its last sums and cannot be rewound")
        for key, recorder in (("rows_crc32", self.rows), ("neighbours_crc32", self.neighbours)):
            if recorder is not None:
                recorder.resize(epochs)  # nothing is buffered: rewind() refuses an open epoch
                if self.checksums[key] is not None:
                    self.checksums[key] = self.checksums[key][:epochs]
        self._write_state(epochs)

    def remove(self) -> None:
        for recorder in (self.rows, self.sums, self.spill, self.neighbours):
            if recorder is not None:
                recorder.close()
                recorder.path.unlink(missing_ok=True)
        self.state.unlink(missing_ok=True)
        self.rows = self.sums = self.spill = self.neighbours = None


def _range_problem(path: Path, shape: tuple[int, int, int], epochs: int) -> str | None:
    """Why the first ``epochs`` committed epochs of a working file hold values its rows cannot (softmax rows
    that are not probabilities, agreements outside [0, 1]), or None; other files have no range to check."""
    if path.name == RAW_TRACES_FILE:
        return committed_rows_problem(path, shape, epochs)
    if path.name == RAW_NEIGHBOURS_FILE:
        data = np.load(path, mmap_mode="r")
        for e in range(epochs):  # one epoch (N, 1) in memory at a time, as for the softmax rows
            block = np.asarray(data[e], dtype=np.float32)
            if not np.all((block >= 0) & (block <= 1)):  # NaN fails too
                return f"{path}: holds values that are not fractions of neighbours (damaged)"
    return None


def write_run_metadata(run_dir: Path, labels: np.ndarray, true_labels: np.ndarray) -> None:
    write_metadata(run_dir, train_indices=np.arange(len(labels)), valid_indices=np.arange(0),
                   true_targets=true_labels, assigned_targets=labels, label_flipped=labels != true_labels)
