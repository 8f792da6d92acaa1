"""Inference speed of the LSTM detector: traces/s at T=200 by threads, precision and batch size.

    .venv/bin/python benchmarks/detector_speed.py --n 50000 --threads 1 2 --out results/detector_speed.json

Random traces of shape (n, 200) float16 (as stored) through ``predict_p_noisy`` of the default (pooled)
detector, one timed pass after a warm-up. Projects the time for 1M traces. Result: docs/detector.md.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from core.io import write_json  # noqa: E402
from detector_models.lstm import DEFAULT_VARIANT, LSTMDetector  # noqa: E402
from detector_models.predict import predict_p_noisy  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=50_000)
    p.add_argument("--T", type=int, default=200)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--batch_sizes", type=int, nargs="+", default=[4096])
    p.add_argument("--precisions", nargs="+", default=["float32", "bfloat16"])
    p.add_argument("--out", default=None)
    args = p.parse_args()
    curves = np.random.default_rng(0).random((args.n, args.T), dtype=np.float32).astype(np.float16)
    model = LSTMDetector(DEFAULT_VARIANT).eval()
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for batch in args.batch_sizes:
            for precision in args.precisions:
                bf16 = precision == "bfloat16"
                predict_p_noisy(model, curves[:512], batch_size=batch, bfloat16=bf16)  # warm-up
                start = time.perf_counter()
                predict_p_noisy(model, curves, batch_size=batch, bfloat16=bf16)
                seconds = time.perf_counter() - start
                rows.append(dict(threads=threads, batch_size=batch, precision=precision, n=args.n, T=args.T,
                                 seconds=round(seconds, 2), traces_per_s=round(args.n / seconds),
                                 projected_1M_s=round(1e6 / (args.n / seconds), 1)))
                print(rows[-1], flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        write_json(args.out, dict(cpu=_cpu(), torch=torch.__version__, rows=rows))


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    main()
