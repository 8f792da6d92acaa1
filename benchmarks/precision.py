"""bf16 against float32 STEP 1 runs: does bf16 autocast change what the traces tell the detector and the
hand-crafted scores, or what the classifier learns?

    python benchmarks/pool.py --groups digits_grid fashion_grid                          # float32 (the pool)
    python benchmarks/pool.py --groups digits_grid fashion_grid --precision bf16 --save runs/pool_bf16
    python benchmarks/precision.py                       # writes docs/precision.md (+ .json)

The same grid (uniform / flip / instance x 0.2 / 0.4 x seeds 1-3, digits and Fashion-MNIST, the settings of
``benchmarks/pool.py``) is run twice, once per precision, and every run is scored by the detector that never saw
its dataset (the leave-one-dataset-out detector of ``benchmarks/lodo.py``, shipped design, trained on float32
traces, as the shipped detector is) and by every hand-crafted score. Reported: ROC-AUC per setting (mean +- std
over seeds) per precision, and the mean bf16 - float32 difference beside the seeds' own spread.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.lodo import BASELINES, lodo_detector, training_runs  # noqa: E402
from benchmarks.pool import POOL, is_done  # noqa: E402
from labeltrace.io import write_json, write_text  # noqa: E402
from labeltrace.baselines import score_baselines  # noqa: E402
from labeltrace.metrics import detection_metrics  # noqa: E402
from labeltrace.predict import load_detector, score  # noqa: E402
from labeltrace.traces import load_run  # noqa: E402

DETECTOR = "prob+margin, anchored"  # the shipped design
PRECISIONS = ("fp32", "bf16")


def score_grid(heldout: str, pools: dict[str, Path], a: argparse.Namespace) -> dict:
    """{setting: {score name: {precision: [ROC-AUC per seed]}}} plus the runs' best validation error."""
    model, info = load_detector(lodo_detector(heldout, DETECTOR, a, training_runs(heldout, Path(a.pool))))
    grid = [run for run in POOL if run.dataset == heldout and run.group.endswith("_grid")]
    out: dict = {}
    for run in grid:
        if not all(is_done(run, pool) for pool in pools.values()):
            continue
        for precision, pool in pools.items():
            run_dir = run.run_dir(pool)
            traces = load_run(run_dir)
            scores = {"detector": score(model, info, traces.td, labels=traces.assigned)[0],
                      **score_baselines(traces.td, traces.class_ids, names=BASELINES)}
            cell = out.setdefault(f"{run.noise_type} {run.noise_ratio}", {})
            for name, values in scores.items():
                m = detection_metrics(values, traces.label_flipped, remove_ratio=float(traces.label_flipped.mean()))
                cell.setdefault(name, {}).setdefault(precision, []).append(m.roc_auc)
            error = json.loads((run_dir / "summary.json").read_text())["best_valid_error"]
            cell.setdefault("best valid error", {}).setdefault(precision, []).append(error)
    return out


def render(results: dict, command: str) -> str:
    lines = ["# bf16 against float32 STEP 1 runs (`benchmarks/precision.py`)", "", f"Command: `{command}`", "",
             __doc__.split("\n\n")[2].replace("\n", " "), ""]
    for dataset, grid in results.items():
        names = list(next(iter(grid.values())))
        lines += [f"## Held out {dataset}: ROC-AUC, float32 / bf16 (mean +- std over seeds)", "",
                  "| score | " + " | ".join(grid) + " | mean bf16 - fp32 | seeds' spread |",
                  "|---|" + "---|" * (len(grid) + 2)]
        for name in names:
            cells, diffs, spread = [], [], []
            for setting in grid.values():
                f, b = np.array(setting[name]["fp32"]), np.array(setting[name]["bf16"])
                cells.append(f"{f.mean():.3f}±{f.std():.3f} / {b.mean():.3f}±{b.std():.3f}")
                diffs.append(b.mean() - f.mean())
                spread.append((f.std() + b.std()) / 2)
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {np.mean(diffs):+.4f} | {np.mean(spread):.4f} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pool", default="runs/pool", help="the float32 pool (and its lodo/ detectors)")
    p.add_argument("--bf16_pool", default="runs/pool_bf16")
    p.add_argument("--heldout", nargs="+", default=["digits", "fashion_mnist"])
    p.add_argument("--length", type=int, default=32)
    p.add_argument("--max_per_run", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--out", default="docs/precision.md")
    a = p.parse_args()
    pools = {"fp32": Path(a.pool), "bf16": Path(a.bf16_pool)}
    results = {heldout: score_grid(heldout, pools, a) for heldout in a.heldout}
    out = Path(a.out)
    write_json(out.with_suffix(".json"), results)
    write_text(out, render(results, "python " + " ".join(sys.argv)) + "\n")
    print(out.read_text())


if __name__ == "__main__":
    main()
