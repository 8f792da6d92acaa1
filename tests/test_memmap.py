"""The on-disk trace recorder: the same ``training_dynamics.npz`` as ordering the whole array in memory, resumable,
and resident memory that does not follow the size of the traces."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from labeltrace.epoch_file import EpochFile, order_channels

ROOT = Path(__file__).resolve().parents[1]


def synthetic(n=1000, t=7, c=5, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((n, t, c)) * 3
    probs = np.exp(logits) / np.exp(logits).sum(2, keepdims=True)
    return probs.astype(np.float32), rng.integers(0, c, n)


@pytest.mark.parametrize("chunk", [64, 1000, 8192])
def test_streamed_file_equals_in_memory_ordering(tmp_path, chunk):
    raw, assigned = synthetic()
    n, t, c = raw.shape
    rec = EpochFile(tmp_path / "td_raw.npy", n, t, c, resume=False)
    rng = np.random.default_rng(1)
    for epoch in range(t):
        order = rng.permutation(n)  # batches in shuffled order, as --record train sees them
        for start in range(0, n, 128):
            idx = order[start:start + 128]
            rec.record(epoch, idx, raw[idx, epoch])
        rec.flush()
    rec.write_traces(tmp_path / "training_dynamics.npz", assigned, chunk=chunk)
    td, labels = order_channels(raw.astype(np.float16), assigned)
    with np.load(tmp_path / "training_dynamics.npz") as z:
        assert z["td"].dtype == np.float16 and z["labels"].dtype == np.int16
        assert np.array_equal(z["td"], td) and np.array_equal(z["labels"], labels)
    assert np.load(tmp_path / "td_raw.npy").shape == (t, n, c)  # epoch-major on disk


def test_resume_keeps_committed_epochs_and_unflushed_epoch_is_replayable(tmp_path):
    raw, assigned = synthetic(n=50, t=4, c=3)
    path = tmp_path / "td_raw.npy"
    rec = EpochFile(path, 50, 4, 3, resume=False)
    for epoch in range(2):
        rec.record(epoch, np.arange(50), raw[:, epoch])
    rec.flush()
    rec.record(2, np.arange(25), raw[:25, 2])  # killed before this epoch was flushed
    del rec
    rec = EpochFile(path, 50, 4, 3, resume=True)
    np.testing.assert_array_equal(rec.read(0, 50)[:, :2], raw[:, :2].astype(np.float16))
    for epoch in (2, 3):
        rec.record(epoch, np.arange(50), raw[:, epoch])
    np.testing.assert_array_equal(rec.read(0, 50), raw.astype(np.float16))
    with pytest.raises(ValueError, match="shape"):
        EpochFile(path, 51, 4, 3, resume=True)


def test_partial_record_keeps_rows_already_on_disk(tmp_path):
    raw, _ = synthetic(n=20, t=2, c=3)
    rec = EpochFile(tmp_path / "r.npy", 20, 2, 3, resume=False)
    rec.record(0, np.arange(20), raw[:, 0])
    rec.flush()
    rec.record(0, np.arange(5), raw[:5, 1])  # rewrite 5 rows only
    out = rec.read(0, 20)[:, 0]
    np.testing.assert_array_equal(out[:5], raw[:5, 1].astype(np.float16))
    np.testing.assert_array_equal(out[5:], raw[5:, 0].astype(np.float16))


def test_resume_refuses_a_raw_file_of_another_shape(tmp_path):
    path = tmp_path / "td_raw.npy"
    np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(30, 5, 4)).flush()
    with pytest.raises(ValueError, match=r"expected \(5, 30, 4\) \(T, N, C\)"):
        EpochFile(path, 30, 5, 4, resume=True)


def test_peak_memory_does_not_follow_the_traces_size():
    """200,000 samples x 30 epochs x 10 classes = 114 MiB of raw float16 traces: recording and writing them
    grows the peak RSS by well under that (measured: ~4 MiB recording, ~40 MiB writing; a memory-mapped
    recorder grew by the whole file)."""
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_memory.py"), "--n", "200000",
                          "--epochs", "30", "--classes", "10"], capture_output=True, text=True, timeout=180,
                         check=True)
    row = json.loads(out.stdout.strip().splitlines()[-1])
    assert row["raw_mib"] > 100
    assert row["record_peak_rss_mib"] - row["baseline_peak_rss_mib"] < 0.1 * row["raw_mib"]
    assert row["growth_mib"] < 0.5 * row["raw_mib"]
