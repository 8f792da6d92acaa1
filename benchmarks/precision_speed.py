"""STEP 1's epoch in float32 against bf16 autocast on the CPU, whole runner.py processes, interleaved.

    python benchmarks/precision_speed.py            # ~8 min on 2 cores; writes benchmarks/results/precision_speed.json

The speed benchmark's data: 10,000 CIFAR-format images (Fashion-MNIST padded to 32x32x3,
``benchmarks/make_cifar_like.py``; 2,000 test images validate), ResNet-32, batch 128, 3 epochs, both recording
modes. Rounds run the four (mode, precision) processes one after another, so a change of machine load hits both
precisions alike; the ratio is taken round by round. The epoch is train + valid + record seconds from
``summary.json`` over the epochs; the wall time is the whole process's (data loading and start-up included).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import make_cifar_like  # noqa: E402
from labeltrace.io import write_json  # noqa: E402


def one_run(data: Path, save: Path, *, mode: str, precision: str, a: argparse.Namespace) -> dict:
    cmd = [sys.executable, str(ROOT / "runner.py"), "--dataset", "cifar10", "--data", str(data),
           "--max_train", str(a.max_train), "--max_test", str(a.max_test), "--net_type", "resnet", "--depth", "32",
           "--batch_size", "128", "--num_epochs", str(a.epochs), "--threads", str(a.threads), "--record", mode,
           "--precision", precision, "--save", str(save), "--no_progress", "--restart"]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    summary = next(save.glob("*/computation4td_seed*/summary.json"))
    seconds = json.loads(summary.read_text())["seconds"]
    return {"epoch_s": sum(seconds.values()) / a.epochs, "wall_s": wall, **{f"{k}_s": v for k, v in seconds.items()}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="/tmp/cifar_like", help="CIFAR-like folder (made if missing)")
    p.add_argument("--max_train", type=int, default=10000)
    p.add_argument("--max_test", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", default="benchmarks/results/precision_speed.json",
                   help="under the repository root unless absolute")
    a = p.parse_args()
    data = make_cifar_like.ensure(a.data)
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            row = {"load_avg": os.getloadavg()[0]}
            for mode in ("train", "eval"):
                for precision in ("fp32", "bf16"):
                    row[f"{mode}/{precision}"] = one_run(data, Path(tmp) / f"{mode}_{precision}", mode=mode,
                                                         precision=precision, a=a)
                ratio = row[f"{mode}/fp32"]["epoch_s"] / row[f"{mode}/bf16"]["epoch_s"]
                row[f"{mode} speed-up"] = ratio
                print(f"round {r + 1} --record {mode}: epoch fp32 {row[f'{mode}/fp32']['epoch_s']:.1f} s, bf16 "
                      f"{row[f'{mode}/bf16']['epoch_s']:.1f} s -> {ratio:.2f}x (wall {row[f'{mode}/fp32']['wall_s']:.0f}"
                      f" / {row[f'{mode}/bf16']['wall_s']:.0f} s)", flush=True)
            rounds.append(row)
    write_json(ROOT / a.out, {"command": "python " + " ".join(sys.argv), "settings": vars(a), "rounds": rounds})


if __name__ == "__main__":
    main()
