"""Scoring speed: traces/s of every shipped detector on T=200 traces, the whole path of STEP 3's scoring.

    .venv/bin/python benchmarks/detector_speed.py --n 200000 --threads 2 --out benchmarks/results/detector_speed.json
    .venv/bin/python benchmarks/detector_speed.py --lengths 16 32 64 200      # fresh default-design detectors

Random softmax traces of shape (n, T, 10) float16 (as stored) go through ``predict.score``: the detector's
features per epoch, the time axis resampled to its training length, the LSTM (float32 and bfloat16). A
detector trained at T=32 runs its LSTM over 32 steps whatever T the traces have, so its speed depends on its
training length much more than on T. One timed pass after a warm-up; projects the time for 1M traces.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from labeltrace.io import write_json  # noqa: E402
from labeltrace.lstm import DEFAULT_ANCHOR, DEFAULT_FEATURES, DEFAULT_VARIANT, LSTMDetector  # noqa: E402
from labeltrace.predict import DetectorInfo, load_detector, score  # noqa: E402


def random_traces(n: int, t: int, classes: int = 10) -> np.ndarray:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (n, t, classes)).astype(np.float32)
    probs = np.exp(logits)
    return (probs / probs.sum(axis=2, keepdims=True)).astype(np.float16)


def fresh(length: int) -> tuple[torch.nn.Module, DetectorInfo]:
    model = LSTMDetector(DEFAULT_VARIANT, features=DEFAULT_FEATURES, anchor=DEFAULT_ANCHOR).eval()
    return model, DetectorInfo(path=f"fresh T={length}", variant=DEFAULT_VARIANT, train_length=length,
                               features=DEFAULT_FEATURES, anchor=DEFAULT_ANCHOR, epoch=None, best_prec=None,
                               val_auc=None, val_map=None)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=200_000)
    p.add_argument("--T", type=int, default=200)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--detectors", nargs="*", default=None, help="checkpoints (default: checkpoints/*.pth.tar)")
    p.add_argument("--lengths", type=int, nargs="*", default=[], help="also fresh default-design detectors")
    p.add_argument("--precisions", nargs="+", default=["float32", "bfloat16"])
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    td = random_traces(args.n, args.T)
    labels = np.random.default_rng(1).integers(0, td.shape[2], args.n)  # read only by class-relative features
    neighbours = (np.random.default_rng(2).integers(0, 21, (args.n, args.T)) / 20).astype(np.float16)  # k = 20
    paths = args.detectors if args.detectors is not None else sorted(map(str, (ROOT / "checkpoints").glob("*.pth.tar")))
    detectors = [load_detector(path) for path in paths] + [fresh(length) for length in args.lengths]
    rows = []
    for model, info in detectors:
        for precision in args.precisions:
            bf16 = precision == "bfloat16"
            score(model, info, td[:2048], labels=labels[:2048], neighbours=neighbours[:2048], bfloat16=bf16)  # warm-up
            start = time.perf_counter()
            score(model, info, td, labels=labels, neighbours=neighbours, bfloat16=bf16)
            seconds = time.perf_counter() - start
            rows.append(dict(detector=Path(info.path).name, features=",".join(info.features),
                             train_length=info.train_length, precision=precision, threads=args.threads, n=args.n,
                             T=args.T, seconds=round(seconds, 2), traces_per_s=round(args.n / seconds),
                             projected_1M_s=round(1e6 * seconds / args.n, 1)))
            print(f"{rows[-1]['detector']:45s} {rows[-1]['features']:12s} L={info.train_length:<4d} {precision:9s} "
                  f"{rows[-1]['traces_per_s']:>8,d} traces/s  1M in {rows[-1]['projected_1M_s']:.0f} s", flush=True)
    if args.out:
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
