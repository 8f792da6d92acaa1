"""Does the approximate neighbour search change what the detector finds? Real STEP 1 runs recorded twice, once
with ``--neighbour_search exact`` and once with ``ivf`` (the same training: the agreement does not feed back into
it), each scored by the shipped generalist: ROC-AUC / mAP on both, and the mean |difference| of the agreement.

    python benchmarks/neighbours_search_quality.py --jobs 2      # ~25 min on 2 cores; benchmarks/results/neighbours_search_quality.json

Settings: digits and Fashion-MNIST (3,000 images) from scratch, as the pool's grids, and fine-tuned (8 epochs at
lr 0.01) from the pool's backbones (Fashion-MNIST's for digits, shapes' for Fashion-MNIST), seed 1.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.pool import DIGITS, DIGITS_FT, FASHION, FASHION_FT, Run, build, finetune, make_backbones  # noqa: E402
from labeltrace.api import get_label_quality_scores  # noqa: E402
from labeltrace.io import write_json  # noqa: E402
from labeltrace.metrics import detection_metrics  # noqa: E402
from labeltrace.traces import load_run  # noqa: E402

SETTINGS = [
    *[Run("scratch", "digits", kind, 0.2, 1, tuple(DIGITS)) for kind in ("uniform", "flip", "instance")],
    *[Run("scratch", "fashion_mnist", kind, 0.2, 1, tuple(FASHION)) for kind in ("uniform", "flip")],
    *[Run("finetune", "digits", kind, 0.2, 1, (*DIGITS_FT, *finetune(8, 0.01)), "fashion_mnist_cnn3")
      for kind in ("uniform", "flip")],
    *[Run("finetune", "fashion_mnist", kind, 0.2, 1, (*FASHION_FT, *finetune(8, 0.01)), "shapes_cnn2")
      for kind in ("uniform", "flip")],
]
SEARCHES = ("exact", "ivf")


def with_search(run: Run, search: str) -> Run:
    return replace(run, group=f"{run.group}_{search}", flags=(*run.flags, "--neighbour_search", search))


def measure(run: Run, save: Path) -> dict:
    out = {"setting": f"{run.dataset} {run.group} {run.noise_type} {run.noise_ratio}"}
    agreements = []
    for search in SEARCHES:
        folder = with_search(run, search).run_dir(save)
        traces = load_run(folder)
        m = detection_metrics(1.0 - get_label_quality_scores(folder), traces.label_flipped, remove_ratio=0.2)
        out[search] = {"roc_auc": m.roc_auc, "map": m.average_precision}
        agreements.append(traces.neighbours.astype(np.float32))
    out["mean_abs_agreement_difference"] = float(np.abs(agreements[0] - agreements[1]).mean())
    out["roc_auc_difference"] = out["ivf"]["roc_auc"] - out["exact"]["roc_auc"]
    out["map_difference"] = out["ivf"]["map"] - out["exact"]["map"]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--save", type=Path, default=ROOT / "runs" / "search_quality")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "neighbours_search_quality.json")
    a = p.parse_args()
    failed = make_backbones({r.backbone for r in SETTINGS if r.backbone}, a.save, jobs=a.jobs, threads=a.threads)
    failed += build([with_search(r, s) for r in SETTINGS for s in SEARCHES], a.save, jobs=a.jobs, threads=a.threads)
    if failed:
        raise SystemExit(f"{failed} runs failed: see {a.save / 'logs'}")
    rows = [measure(r, a.save) for r in SETTINGS]
    for row in rows:
        print(f"{row['setting']:40s} exact {row['exact']['roc_auc']:.4f} / {row['exact']['map']:.4f}  ivf "
              f"{row['ivf']['roc_auc']:.4f} / {row['ivf']['map']:.4f}  |agreement diff| "
              f"{row['mean_abs_agreement_difference']:.4f}")
    write_json(a.out, {"rows": rows, "max_abs_roc_auc_difference": max(abs(r["roc_auc_difference"]) for r in rows)})


if __name__ == "__main__":
    main()
