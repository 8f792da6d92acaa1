"""Many STEP 1 runs sharing one machine: aggregate training throughput of ``--jobs`` 1, 2, 4 ... concurrent
runner.py processes (``pipeline/multirun.py``), and what it makes of a paper table.

    python benchmarks/multirun_throughput.py --device cuda --jobs 1 2 3 4     # a GPU: several runs share it
    python benchmarks/multirun_throughput.py --device cpu --jobs 1 2 --threads 1 --max_train 5000 --epochs 2

Each setting trains ``--runs`` ResNet-32 runs (CIFAR-like data: Fashion-MNIST padded to 32x32x3,
``benchmarks/make_cifar_like.py``; seeds 1..runs, ``--epochs`` each, float32 unless ``--precision``) from scratch
in a fresh folder. Reported per setting: wall seconds, images/s trained in all, the speed-up over one job, and
the time the paper's CIFAR table would take at that throughput: 12 runs x 200 epochs x 50,000 images (CIFAR-10
and CIFAR-100, two noise settings, three seeds; STEP 1 only). On one GPU the small ResNet-32 leaves the device
idle between kernel launches even with CUDA graphs, which concurrent processes fill.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import make_cifar_like  # noqa: E402
from labeltrace.io import write_json  # noqa: E402
from pipeline.multirun import run_all  # noqa: E402

TABLE_IMAGES = 12 * 200 * 50_000  # the paper's CIFAR table, STEP 1


def throughput(data: Path, jobs: int, a: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        lines = [" ".join(["--dataset cifar10 --data", str(data), "--net_type resnet --depth 32 --noise_ratio 0.2",
                           f"--seed {seed} --num_epochs {a.epochs} --max_train {a.max_train} --max_test {a.max_test}",
                           f"--device {a.device} --precision {a.precision} --save {tmp}/runs"])
                 for seed in range(1, a.runs + 1)]
        start = time.perf_counter()
        outcomes = run_all(lines, jobs=jobs, threads=a.threads, logs=Path(tmp) / "logs", say=lambda line: None)
        wall = time.perf_counter() - start
    if any(o.code for o in outcomes):
        raise SystemExit(f"error: a run failed with --jobs {jobs}")
    images = sum(o.images for o in outcomes)
    return {"jobs": jobs, "wall_s": wall, "images": images, "images_per_s": images / wall,
            "paper_table_hours": TABLE_IMAGES / (images / wall) / 3600}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--jobs", type=int, nargs="+", default=[1, 2, 3, 4])
    p.add_argument("--threads", type=int, default=4, help="torch CPU threads per process")
    p.add_argument("--runs", type=int, default=4, help="runs per setting")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--max_train", type=int, default=50000)
    p.add_argument("--max_test", type=int, default=10000)
    p.add_argument("--precision", default="fp32", choices=("auto", "fp32", "bf16"))
    p.add_argument("--data", default="/tmp/cifar_like", help="CIFAR-like folder (made if missing)")
    p.add_argument("--out", default="benchmarks/results/multirun_throughput.json",
                   help="under the repository root unless absolute")
    a = p.parse_args()
    data = make_cifar_like.ensure(a.data)
    rows = []
    for jobs in a.jobs:
        row = throughput(data, jobs, a)
        row["speed_up"] = row["images_per_s"] / rows[0]["images_per_s"] if rows else 1.0
        rows.append(row)
        print(f"--jobs {jobs}: {row['wall_s']:.0f} s, {row['images_per_s']:,.0f} images/s, {row['speed_up']:.2f}x; "
              f"the paper's CIFAR table (12 x 200 epochs) in {row['paper_table_hours']:.2f} h", flush=True)
    write_json(ROOT / a.out, {"command": "python " + " ".join(sys.argv), "settings": vars(a), "rows": rows})


if __name__ == "__main__":
    main()
