"""Choose the detector's default input variant and recipe by measurement: val ROC-AUC over seeds.

    .venv/bin/python benchmarks/detector_variants.py RUN [RUN ...] --seeds 0 1 2 --out results/detector_variants.json

For each run folder, trains every variant at the default recipe (AdamW lr 1e-3, 20 epochs, batch 64) and
the original recipe (forward, AdamW lr 0.1, 10 epochs) for each seed, and reports the best-epoch validation
ROC-AUC of each (stratified 10% split, seeded). Result (2-core CPU, digits/fashion_mnist runs): docs/detector.md.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from labeltrace.io import write_json  # noqa: E402
from labeltrace.lstm import VARIANTS  # noqa: E402
from labeltrace.traces import load_run  # noqa: E402
from detector_models.train import DetectorRecipe, train_detector  # noqa: E402

RECIPES = {f"{v} lr1e-3 x20": dict(variant=v, lr=1e-3, epochs=20) for v in VARIANTS}
RECIPES["original: forward lr0.1 x10"] = dict(variant="forward", lr=0.1, epochs=10)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--recipes", nargs="+", default=list(RECIPES), help="subset of: " + ", ".join(RECIPES))
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    rows = []
    for run_dir in args.runs:
        run = load_run(run_dir)
        for name in args.recipes:
            for seed in args.seeds:
                start = time.perf_counter()
                res = train_detector(run.curves, run.label_flipped, DetectorRecipe(seed=seed, **RECIPES[name]),
                                     log=lambda s: None)
                losses = [h["train_loss"] for h in res.history]
                rows.append(dict(run=run_dir, recipe=name, seed=seed, val_auc=res.val_auc, val_map=res.val_map,
                                 best_epoch=res.best_epoch, final_loss=losses[-1],
                                 seconds=round(time.perf_counter() - start, 1)))
                print(json.dumps(rows[-1]), flush=True)
    print("\nrecipe                          mean AUC   min AUC   mean mAP  final loss (per run, over seeds)")
    for run_dir in args.runs:
        print(run_dir)
        for name in args.recipes:
            sel = [r for r in rows if r["run"] == run_dir and r["recipe"] == name]
            auc, ap = np.array([r["val_auc"] for r in sel]), np.array([r["val_map"] for r in sel])
            loss = np.array([r["final_loss"] for r in sel])
            print(f"  {name:30s} {auc.mean():.4f}    {auc.min():.4f}    {ap.mean():.4f}    "
                  f"{loss.mean():.3f}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        write_json(args.out, rows)


if __name__ == "__main__":
    main()
