"""The neighbour agreement against a ResNet-50 epoch at ImageNet size, on one GPU (a step of
benchmarks/gpu_check.sh).

    python benchmarks/bench_neighbours_gpu.py --out gpu_neighbours.json
    python benchmarks/bench_neighbours_gpu.py --device cpu --n 5000 --steps 1 --batch 2 --out x.json   # smoke test

A ResNet-50 training step (batch 256, 224 x 224, bf16 autocast, channels-last, SGD) is timed over 20 steps
after 5 of warm-up; an epoch of 1.28M images is extrapolated from it (no data loading: a lower bound of the
epoch, so the ratio below is an upper bound). The agreement runs as a recorder runs it: 1.28M rows of 2,048
generated clustered features into a FeatureStore on the GPU, batch by batch, then its exact search there.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_neighbours_scale import BATCH, Clusters  # noqa: E402
from labeltrace.neighbours import DEFAULT_K, FeatureStore  # noqa: E402

IMAGENET = 1_281_167


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def resnet50_step_seconds(device: torch.device, batch: int = 256, steps: int = 20) -> float:
    import torchvision

    model = torchvision.models.resnet50(num_classes=1000).to(device, memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(batch, 3, 224, 224, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (batch,), device=device)
    for i in range(steps + 5):
        if i == 5:
            _sync(device)
            start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(device)
    return (time.perf_counter() - start) / steps


def agreement_seconds(n: int, d: int, device: torch.device) -> dict:
    data = Clusters(n, d)
    store = FeatureStore(n)
    _sync(device)
    start = time.perf_counter()
    for s in range(0, n, BATCH):
        store.add(torch.arange(s, min(s + BATCH, n), device=device), data.batch(s, min(s + BATCH, n)).to(device))
    _sync(device)
    added = time.perf_counter() - start
    found = store.agreement(data.labels, k=DEFAULT_K)
    _sync(device)
    total = time.perf_counter() - start
    return {"n": n, "d": d, **store.describe(k=DEFAULT_K), "add_seconds": added, "agreement_seconds": total,
            "mean_agreement": float(np.mean(found))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=IMAGENET)
    p.add_argument("--device", default="cuda", help="cuda (the measurement); cpu runs it as a smoke test")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    device = torch.device(a.device)
    step = resnet50_step_seconds(device, batch=a.batch, steps=a.steps)
    epoch = step * IMAGENET / a.batch
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    result = {"device": name, "resnet50_step_seconds": step, "resnet50_epoch_seconds_extrapolated": epoch,
              "agreement": agreement_seconds(a.n, 2048, device)}
    result["agreement_fraction_of_epoch"] = result["agreement"]["agreement_seconds"] * (IMAGENET / a.n) ** 2 / epoch
    a.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
