"""Recording at ImageNet scale: DynamicsRecorder's memory, disk and time per epoch, full and compact layouts.

    .venv/bin/python benchmarks/bench_recorder_scale.py --n 1281167 --layouts compact \
        --out benchmarks/results/recorder_scale_compact.json
    .venv/bin/python benchmarks/bench_recorder_scale.py --n 128000 --layouts full --out ..._full.json
    .venv/bin/python benchmarks/bench_recorder_scale.py --forward_only --out benchmarks/results/resnet18_forward.json

Generated logits (C classes, N samples, T epochs) go to the recorder in shuffled batches of 256, as a training
loop would feed it; the clock runs only inside ``update``/``end_epoch`` (and ``save``), not while logits are
made. Each layout runs in its own process, so its peak RSS (``ru_maxrss``) growth over the moment before the
recorder is built is its own. ``--forward_only`` times a ResNet-18 forward pass (224 px, eval, no_grad) on a
sample of images and extrapolates it to N; ``--score`` times the generalist over the compact run's traces.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from labeltrace.io import write_json  # noqa: E402


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def folder_mib(path: Path) -> dict[str, float]:
    """Allocated size of each file (the working files start sparse), MiB."""
    return {p.name: round(p.stat().st_blocks * 512 / 2**20, 1) for p in sorted(path.iterdir()) if p.is_file()}


def record(args) -> dict:
    """One layout: T epochs of N generated samples; returns the measured figures."""
    from labeltrace.recorder import DynamicsRecorder

    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, args.classes, (args.n,), generator=gen)
    run_dir = Path(args.run_dir)
    shutil.rmtree(run_dir, ignore_errors=True)
    base = rss_mib()
    recorder = DynamicsRecorder(run_dir, labels=labels.numpy(), num_classes=args.classes, layout=args.layout)
    seconds, cpu, load = [], [], [os.getloadavg()[0]]
    for epoch in range(args.epochs):
        spent = spent_cpu = 0.0
        for index in torch.randperm(args.n, generator=gen).split(args.batch):
            logits = torch.randn(len(index), args.classes, generator=gen) * 2.0
            logits[torch.arange(len(index)), labels[index]] += 2.0 + 0.6 * epoch  # the given label learned over time
            start, start_cpu = time.perf_counter(), time.process_time()
            recorder.update(index, logits)
            spent += time.perf_counter() - start
            spent_cpu += time.process_time() - start_cpu
        start, start_cpu = time.perf_counter(), time.process_time()
        recorder.end_epoch()
        seconds.append(round(spent + time.perf_counter() - start, 2))
        cpu.append(round(spent_cpu + time.process_time() - start_cpu, 2))
        load.append(os.getloadavg()[0])
        print(f"{args.layout} epoch {epoch + 1}/{args.epochs}: {seconds[-1]:.1f} s recording ({cpu[-1]:.1f} s CPU), "
              f"peak RSS +{rss_mib() - base:.0f} MiB", file=sys.stderr, flush=True)
    peak_working = folder_mib(run_dir)
    start, start_cpu = time.perf_counter(), time.process_time()
    recorder.save()
    save_s, save_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    return {"layout": recorder.layout, "n": args.n, "classes": args.classes, "epochs": args.epochs,
            "batch": args.batch, "threads": args.threads, "record_seconds_per_epoch": seconds,
            "record_cpu_seconds_per_epoch": cpu, "mean_record_seconds_per_epoch": round(float(np.mean(seconds)), 2),
            "mean_record_cpu_seconds_per_epoch": round(float(np.mean(cpu)), 2), "save_seconds": round(save_s, 1),
            "save_cpu_seconds": round(save_cpu, 1), "load_average_1min": [round(x, 1) for x in load],
            "peak_rss_growth_mib": round(rss_mib() - base, 1), "working_files_mib": peak_working,
            "final_files_mib": folder_mib(run_dir)}


def resnet18_forward(args) -> dict:
    """Images per second of a ResNet-18 forward pass on this CPU (a sample), extrapolated to N images."""
    import torchvision

    torch.set_num_threads(args.threads)
    model = torchvision.models.resnet18(num_classes=1000).eval()
    x = torch.randn(args.forward_batch, 3, 224, 224)
    with torch.inference_mode():
        model(x)  # warm-up
        start, start_cpu = time.perf_counter(), time.process_time()
        for _ in range(args.forward_reps):
            model(x)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    images = args.forward_batch * args.forward_reps
    return {"images_timed": images, "threads": args.threads, "images_per_second": round(images / elapsed, 1),
            "images_per_cpu_second": round(images / cpu, 2), "n": args.n,
            "extrapolated_seconds_for_n": round(args.n * elapsed / images),
            "extrapolated_cpu_seconds_for_n": round(args.n * cpu / images), "load_average_1min": round(os.getloadavg()[0], 1)}


def score_speed(args) -> dict:
    """The generalist over a run's traces: load seconds and traces per minute of scoring."""
    from labeltrace.api import get_label_quality_scores
    from labeltrace.traces import load_run

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    run = load_run(args.run_dir)
    load_s = time.perf_counter() - start
    load_avg = os.getloadavg()[0]
    start, start_cpu = time.perf_counter(), time.process_time()
    get_label_quality_scores(np.asarray(run.td))
    score_s, score_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    return {"traces": len(run.td), "epochs": run.num_epochs, "threads": args.threads, "load_seconds": round(load_s, 1),
            "score_seconds": round(score_s, 1), "score_cpu_seconds": round(score_cpu, 1),
            "traces_per_minute": round(len(run.td) / score_s * 60),
            "traces_per_cpu_minute": round(len(run.td) / score_cpu * 60), "load_average_1min": round(load_avg, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1_281_167, help="samples (ImageNet-1k's training set)")
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--layouts", nargs="+", default=["compact", "full"])
    p.add_argument("--layout", help=argparse.SUPPRESS)  # one layout, in the child process
    p.add_argument("--run_dir", default="/tmp/bench_recorder_scale")
    p.add_argument("--forward_only", action="store_true")
    p.add_argument("--forward_batch", type=int, default=16)
    p.add_argument("--forward_reps", type=int, default=4)
    p.add_argument("--score", action="store_true", help="also time the generalist on the compact run")
    p.add_argument("--out", default=None, help="JSON file for the figures")
    args = p.parse_args()
    if args.forward_only:
        result = resnet18_forward(args)
    elif args.layout:  # the child: print its figures as the last line
        result = record(args)
        if args.score and result["layout"] == "compact":
            result["scoring"] = score_speed(args)
        print(json.dumps(result))
        return
    else:
        result = {}
        for layout in args.layouts:
            cmd = [sys.executable, __file__, *sys.argv[1:], "--layout", layout, "--run_dir", f"{args.run_dir}_{layout}"]
            out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True)
            result[layout] = json.loads(out.stdout.strip().splitlines()[-1])
            shutil.rmtree(f"{args.run_dir}_{layout}", ignore_errors=True)
    print(json.dumps(result, indent=2))
    if args.out:
        write_json(args.out, result)


if __name__ == "__main__":
    main()
