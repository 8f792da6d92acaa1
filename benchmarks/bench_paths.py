"""Epoch time of the input paths and of data parallelism, measured in one run.

    python benchmarks/bench_paths.py --max_train 10000 --epochs 3 --out benchmarks/results/bench_paths.json

Fashion-MNIST's first 10,000 training images (the README's documented subset) and first 2,000 test images, the
small CNN (``cnn 3``), batch 128, the paper's epoch: training pass + validation pass + the eval-mode recording
pass over the training set.

1. Standard path (per-sample PIL transforms through a DataLoader, ``--loader standard``, 0 workers) against the
   fast path (uint8 tensors in memory, batch augmentation, ``--loader fast``), in this process, epochs
   interleaved so machine noise hits both alike; the median epoch after a warm-up epoch.
2. ``runner.py`` as one process against ``torchrun --nproc_per_node 2``, with the same total thread count; the
   median epoch of each run's log after the first epoch, and the whole command's wall time.
``--device cuda`` measures the GPU targets (fast path >= 3x the standard one) the CPU cannot.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.inference import inference_copy  # noqa: E402
from core.loop import predict_probs, train_epoch  # noqa: E402
from core.seed import epoch_generator, seed_everything  # noqa: E402
from datasets.registry import load_dataset  # noqa: E402
from models.registry import build_model  # noqa: E402
from pipeline.feeds import eval_batch_size, make_feed, place_model  # noqa: E402

EPOCH_LINE = re.compile(r"\| ([\d.]+)s train ([\d.]+)s valid ([\d.]+)s record")


def loader_paths(a: argparse.Namespace) -> dict:
    torch.set_num_threads(a.threads)
    bundle = load_dataset(a.dataset, a.data).subset(a.max_train, a.max_test)
    device = torch.device(a.device)
    labels = torch.as_tensor(bundle.train.targets, device=device)
    eval_batch = eval_batch_size(device)
    setups = {}
    for path in ("standard", "fast"):
        feed = dict(loader=path, device=device)
        seed_everything(0)
        model = build_model(a.net_type, a.depth, num_classes=bundle.num_classes, in_channels=bundle.in_channels,
                            image_size=bundle.image_size)
        model = place_model(model, loader=path, device=device)  # as pipeline/generate.py does
        setups[path] = dict(
            model=model,
            opt=torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4),
            train=make_feed(bundle.train, bundle, train=True, shuffle=True, batch_size=128, **feed),
            valid=make_feed(bundle.test, bundle, train=False, shuffle=False, batch_size=eval_batch, **feed),
            record=make_feed(bundle.train, bundle, train=True, shuffle=False, batch_size=eval_batch, **feed))
    times: dict[str, list[float]] = {p: [] for p in setups}
    for epoch in range(a.epochs + 1):  # epoch 0 warms up
        for path, s in setups.items():
            t0 = time.perf_counter()
            train_epoch(s["model"], s["train"], labels, s["opt"], gen=epoch_generator(0, epoch), progress=False)
            fast = inference_copy(s["model"])  # as core/fit.py does for the eval passes
            predict_probs(fast, s["valid"], gen=epoch_generator(0, epoch), progress=False)
            predict_probs(fast, s["record"], gen=epoch_generator(0, -1 - epoch), progress=False)
            if epoch:
                times[path].append(time.perf_counter() - t0)
    median = {p: float(np.median(t)) for p, t in times.items()}
    return {"threads": a.threads, "train_samples": len(bundle.train), "valid_samples": len(bundle.test),
            "epoch_seconds": median, "epoch_seconds_all": times,
            "fast_speedup_vs_standard": median["standard"] / median["fast"]}


def runner_epochs(a: argparse.Namespace, procs: int, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as save:
        flags = ["runner.py", "--dataset", a.dataset, "--net_type", a.net_type, "--depth", str(a.depth), "--max_train", str(a.max_train), "--max_test",
                 str(a.max_test), "--num_epochs", str(a.epochs + 1), "--threads", str(threads), "--device", a.device,
                 "--save", save, "--no_progress"] + (["--data", a.data] if a.data else [])
        launch = [sys.executable] if procs == 1 else \
            [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs)]
        t0 = time.perf_counter()
        out = subprocess.run(launch + flags, cwd=ROOT, capture_output=True, text=True, check=True,
                             env={**os.environ, "OMP_NUM_THREADS": str(threads)})
        wall = time.perf_counter() - t0
    epochs = [sum(map(float, m)) for m in EPOCH_LINE.findall(out.stdout)][1:]
    return {"processes": procs, "threads_per_process": threads, "epoch_seconds": float(np.median(epochs)),
            "epoch_seconds_all": epochs, "wall_seconds": wall}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default=None, help="data directory holding fashion_mnist/ (default: the system copy)")
    p.add_argument("--dataset", default="fashion_mnist",
                   help="e.g. cifar10 with --data from benchmarks/make_cifar_like.py for the GPU ResNet-32 run")
    p.add_argument("--net_type", default="cnn")
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--max_train", type=int, default=10000)
    p.add_argument("--max_test", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=3, help="timed epochs (after one warm-up epoch)")
    p.add_argument("--threads", type=int, default=2, help="torch threads in total")
    p.add_argument("--device", default="cpu", help="cpu or cuda (torchrun ranks take cuda:LOCAL_RANK)")
    p.add_argument("--skip", choices=("paths", "ddp"), action="append", default=[])
    p.add_argument("--out", default=None, help="write the figures as JSON here")
    a = p.parse_args()
    result: dict = {"dataset": a.dataset, "net": f"{a.net_type}{a.depth}", "cpu_count": os.cpu_count(), "load_average_before": os.getloadavg()}
    if "paths" not in a.skip:
        result["loader_paths"] = loader_paths(a)
        print(json.dumps(result["loader_paths"]["epoch_seconds"]), flush=True)
    if "ddp" not in a.skip:
        runs = [runner_epochs(a, 1, a.threads), runner_epochs(a, 2, max(1, a.threads // 2))]
        result["data_parallel"] = {"runs": runs, "speedup_2_vs_1": runs[0]["epoch_seconds"] / runs[1]["epoch_seconds"]}
        print(json.dumps([(r["processes"], r["epoch_seconds"]) for r in runs]), flush=True)
    result["load_average_after"] = os.getloadavg()
    print(json.dumps(result, indent=2))
    if a.out:
        Path(a.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
