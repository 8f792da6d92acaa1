"""Peak resident memory of recording traces and writing ``training_dynamics.npz``, against N.

    python benchmarks/bench_memory.py --n 100000 400000 1000000 --epochs 200 --classes 14 --out bench_memory.json

Each size runs in a fresh subprocess that records synthetic softmax vectors for N samples x T epochs x C classes
through ``EpochFile`` (batches of 1,024 in shuffled order, as the zero-cost ``--record train`` mode does),
then ``write_traces``; it reports ``ru_maxrss`` after the imports (baseline), after recording, and after the
write, beside the size of the raw float16 traces (N*T*C*2 bytes). Flat memory means the growth does not follow
the raw size.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def measure_here(n: int, epochs: int, classes: int, folder: Path, batch: int = 1024) -> dict:
    import numpy as np

    from labeltrace.epoch_file import EpochFile
    from labeltrace.runfiles import RAW_TRACES_FILE, TRACES_FILE

    rng = np.random.default_rng(0)
    assigned = rng.integers(0, classes, n)
    base = peak_mib()
    t0 = time.perf_counter()
    recorder = EpochFile(folder / RAW_TRACES_FILE, n, epochs, classes, resume=False)
    logits = rng.standard_normal((batch, classes)).astype(np.float32)
    for epoch in range(epochs):
        order = rng.permutation(n)
        for start in range(0, n, batch):
            idx = order[start:start + batch]
            probs = np.exp(logits[: len(idx)] + epoch * 0.01)
            recorder.record(epoch, idx, probs / probs.sum(1, keepdims=True))
        recorder.flush()
    t1 = time.perf_counter()
    after_record = peak_mib()
    recorder.write_traces(folder / TRACES_FILE, assigned)
    t2 = time.perf_counter()
    return {"n": n, "epochs": epochs, "classes": classes, "raw_mib": n * epochs * classes * 2 / 2**20,
            "npz_mib": (folder / TRACES_FILE).stat().st_size / 2**20,
            "baseline_peak_rss_mib": base, "record_peak_rss_mib": after_record, "write_peak_rss_mib": peak_mib(),
            "growth_mib": peak_mib() - base, "record_seconds": t1 - t0, "write_seconds": t2 - t1}


def measure(n: int, epochs: int, classes: int) -> dict:
    """One size in a fresh process (``ru_maxrss`` is a high-water mark, so sizes must not share a process)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run([sys.executable, __file__, "--one", str(n), str(epochs), str(classes), tmp],
                             capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, nargs="+", default=[100_000, 400_000, 1_000_000])
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--classes", type=int, default=14)
    p.add_argument("--one", nargs=4, default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help="write the figures as JSON here")
    a = p.parse_args()
    if a.one:
        n, t, c, folder = a.one
        print(json.dumps(measure_here(int(n), int(t), int(c), Path(folder))))
        return
    rows = []
    for n in a.n:
        rows.append(measure(n, a.epochs, a.classes))
        print(json.dumps(rows[-1]), flush=True)
    if a.out:
        Path(a.out).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
