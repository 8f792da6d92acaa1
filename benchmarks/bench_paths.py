"""Epoch time of the input paths and of data parallelism, measured in one run.

    python benchmarks/bench_paths.py --max_train 10000 --epochs 3 --out benchmarks/results/bench_paths.json

Fashion-MNIST's first 10,000 training images (the README's documented subset) and first 2,000 test images, the
small CNN (``cnn 3``), batch 128, the paper's epoch: training pass + validation pass + the eval-mode recording
pass over the training set.

1. Setups of ``--paths`` (``SETUPS``: the standard path = per-sample PIL transforms through a DataLoader with
   ``--num_workers``; the fast path = uint8 tensors in memory, batch augmentation; each with or without bf16
   and the CUDA-graph step), in this process, epochs interleaved so machine noise hits all alike; each phase
   (train / valid / record) timed, the median epoch after a warm-up epoch.
2. ``runner.py`` as one process against ``torchrun --nproc_per_node 2``, with the same total thread count; the
   median epoch of each run's log after the first epoch, and the whole command's wall time.
3. ``--records none,eval,train``: ``runner.py`` once per recording mode, the real entry point's overhead.
``--device cuda`` measures the GPU targets (``benchmarks/gpu_check.sh`` runs them all).
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

from core.cuda_graph import CudaGraphStep  # noqa: E402
from core.inference import inference_copy  # noqa: E402
from core.passes import predict_probs, train_epoch  # noqa: E402
from core.seed import epoch_generator, seed_everything  # noqa: E402
from datasets.registry import load_dataset  # noqa: E402
from models.registry import build_model  # noqa: E402
from pipeline.loaders import eval_batch_size, make_feed, place_model  # noqa: E402
from pipeline.runtime import pick_device  # noqa: E402

EPOCH_LINE = re.compile(r"\| ([\d.]+)s train ([\d.]+)s valid ([\d.]+)s record")


SETUPS = {"standard": dict(loader="standard", amp=False, graphs=False),
          "standard_graphs": dict(loader="standard", amp=False, graphs=True),
          "fast": dict(loader="fast", amp=False, graphs=False),
          "fast_amp": dict(loader="fast", amp=True, graphs=False),
          "fast_graphs": dict(loader="fast", amp=False, graphs=True),
          "fast_amp_graphs": dict(loader="fast", amp=True, graphs=True)}


def _now(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def loader_paths(a: argparse.Namespace) -> dict:
    torch.set_num_threads(a.threads)
    bundle = load_dataset(a.dataset, a.data).subset(a.max_train, a.max_test)
    device = pick_device(a.device)  # as runner.py does (cuDNN's autotuner on CUDA)
    labels = torch.as_tensor(bundle.train.targets, device=device)
    eval_batch = a.eval_batch or eval_batch_size(device)
    setups = {}
    for name in a.paths.split(","):
        path, amp = SETUPS[name]["loader"], SETUPS[name]["amp"]
        feed = dict(loader=path, device=device, num_workers=a.num_workers if path == "standard" else 0)
        seed_everything(0)
        model = build_model(a.net_type, a.depth, num_classes=bundle.num_classes, in_channels=bundle.in_channels,
                            image_size=bundle.image_size)
        model = place_model(model, loader=path, device=device)  # as pipeline/generate.py does
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4)
        setups[name] = dict(
            model=model, amp=amp, opt=opt,
            step=CudaGraphStep(model, opt, amp=amp) if SETUPS[name]["graphs"] and device.type == "cuda" else None,
            train=make_feed(bundle.train, bundle, train=True, shuffle=True, batch_size=128, **feed),
            valid=make_feed(bundle.test, bundle, train=False, shuffle=False, batch_size=eval_batch, **feed),
            record=make_feed(bundle.train, bundle, train=True, shuffle=False, batch_size=eval_batch, **feed))
    phases: dict[str, dict[str, list[float]]] = {n: {"train": [], "valid": [], "record": []} for n in setups}
    for epoch in range(a.epochs + 1):  # epoch 0 warms up
        for name, s in setups.items():
            t0 = _now(device)
            train_epoch(s["model"], s["train"], labels, s["opt"], gen=epoch_generator(0, epoch), amp=s["amp"],
                        progress=False, step=s["step"])
            t1 = _now(device)
            fast = inference_copy(s["model"])  # as core/fit.py does for the eval passes
            predict_probs(fast, s["valid"], gen=epoch_generator(0, epoch), amp=s["amp"], progress=False)
            t2 = _now(device)
            predict_probs(fast, s["record"], gen=epoch_generator(0, -1 - epoch), amp=s["amp"], progress=False)
            t3 = _now(device)
            if epoch:
                for key, dt in zip(("train", "valid", "record"), (t1 - t0, t2 - t1, t3 - t2)):
                    phases[name][key].append(dt)
    median = {n: {k: float(np.median(v)) for k, v in ph.items()} for n, ph in phases.items()}
    epoch_s = {n: sum(m.values()) for n, m in median.items()}
    result = {"threads": a.threads, "eval_batch": eval_batch, "num_workers_standard": a.num_workers, "train_samples": len(bundle.train),
              "valid_samples": len(bundle.test), "epoch_seconds": epoch_s, "phase_seconds": median,
              "phase_seconds_all": phases,
              "recording_overhead": {n: m["record"] / (m["train"] + m["valid"]) for n, m in median.items()}}
    if "standard" in epoch_s:
        result["speedup_vs_standard"] = {n: epoch_s["standard"] / t for n, t in epoch_s.items() if n != "standard"}
    return result


def runner_epochs(a: argparse.Namespace, procs: int, threads: int, extra: tuple[str, ...] = ()) -> dict:
    with tempfile.TemporaryDirectory() as save:
        flags = ["runner.py", "--dataset", a.dataset, "--net_type", a.net_type, "--depth", str(a.depth), "--max_train", str(a.max_train), "--max_test",
                 str(a.max_test), "--num_epochs", str(a.epochs + 1), "--threads", str(threads), "--device", a.device,
                 "--save", save, "--no_progress", "--record", "eval", *extra] + (["--data", a.data] if a.data else [])
        launch = [sys.executable] if procs == 1 else \
            [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs)]
        t0 = time.perf_counter()
        out = subprocess.run(launch + flags, cwd=ROOT, capture_output=True, text=True, check=True,
                             env={**os.environ, "OMP_NUM_THREADS": str(threads)})
        wall = time.perf_counter() - t0
    phases = [tuple(map(float, m)) for m in EPOCH_LINE.findall(out.stdout)][1:]
    epochs = [sum(ph) for ph in phases]
    return {"processes": procs, "threads_per_process": threads, "flags": list(extra),
            "epoch_seconds": float(np.median(epochs)), "epoch_seconds_all": epochs,
            "phase_seconds_all": phases, "wall_seconds": wall}


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
    p.add_argument("--paths", default="standard,fast", help=f"setups to compare, of {','.join(SETUPS)}")
    p.add_argument("--eval_batch", type=int, default=0, help="batch of the eval passes (0: pipeline's choice)")
    p.add_argument("--num_workers", type=int, default=0, help="DataLoader workers of the standard path")
    p.add_argument("--records", default="", help="also time runner.py with each of these --record modes "
                   "(e.g. none,eval,train): the real entry point's recording overhead")
    p.add_argument("--runner_flags", default="", help="extra runner.py flags for --records (e.g. '--amp')")
    p.add_argument("--skip", choices=("paths", "ddp"), action="append", default=[])
    p.add_argument("--out", default=None, help="write the figures as JSON here")
    a = p.parse_args()
    result: dict = {"dataset": a.dataset, "net": f"{a.net_type}{a.depth}", "cpu_count": os.cpu_count(), "load_average_before": os.getloadavg()}
    if "paths" not in a.skip:
        result["loader_paths"] = loader_paths(a)
        print(json.dumps(result["loader_paths"]["phase_seconds"]), flush=True)
    if "ddp" not in a.skip:
        runs = [runner_epochs(a, 1, a.threads), runner_epochs(a, 2, max(1, a.threads // 2))]
        result["data_parallel"] = {"runs": runs, "speedup_2_vs_1": runs[0]["epoch_seconds"] / runs[1]["epoch_seconds"]}
        print(json.dumps([(r["processes"], r["epoch_seconds"]) for r in runs]), flush=True)
    if a.records:
        runs = {m: runner_epochs(a, 1, a.threads, ("--record", m, *a.runner_flags.split())) for m in a.records.split(",")}
        result["runner_records"] = runs
        if "none" in runs:
            base = runs["none"]["epoch_seconds"]
            result["runner_recording_overhead"] = {m: r["epoch_seconds"] / base - 1 for m, r in runs.items() if m != "none"}
        print(json.dumps({m: r["epoch_seconds"] for m, r in runs.items()}), flush=True)
    result["load_average_after"] = os.getloadavg()
    print(json.dumps(result, indent=2))
    if a.out:
        Path(a.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
