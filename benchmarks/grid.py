"""The detector against hand-crafted scores: a grid of datasets x noise settings x seeds -> a Markdown table.

    python benchmarks/grid.py --out docs/benchmark_grid.md            # the README's table (see docs/)
    python benchmarks/grid.py --datasets digits --settings uniform:0.2 --seeds 1 2 --out /tmp/g.md   # a smoke run

For every (dataset, setting, seed) STEP 1 runs once (re-running the command reuses finished runs). Each run is
then scored by every baseline and by detectors that never saw it:
- ``detector (in-dataset)``: trained on the same dataset and setting, the *next* seed's run (other noise draw,
  other network init), so no sample's own trace is in its training data;
- ``detector (transfer)``: trained on the other dataset's run of the same setting and seed;
- ``detector (pooled transfer)``: trained on all settings of the other dataset for that seed;
- ablations (in-dataset): the forward and reversed input variants, and the paper's original recipe (forward, AdamW lr 0.1, 10
  epochs; note: our selection is by validation ROC-AUC, the original's by accuracy);
- with ``--record_ablation``: the default detector and best baselines on traces recorded from the training pass.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from labeltrace.baselines import score_baselines  # noqa: E402
from labeltrace.lstm import LSTMDetector  # noqa: E402
from labeltrace.metrics import detection_metrics  # noqa: E402
from labeltrace.predict import predict_p_noisy  # noqa: E402
from labeltrace.traces import load_run, resample_time  # noqa: E402
from detector_models.train import DetectorRecipe, train_detector  # noqa: E402
from pipeline import generate  # noqa: E402

DATASET_FLAGS = {"digits": ["--num_epochs", "40"],
                 "fashion_mnist": ["--num_epochs", "20", "--max_train", "3000", "--max_test", "1000", "--depth", "2"]}
SETTINGS = ["uniform:0.2", "uniform:0.4", "uniform:0.6", "flip:0.2", "flip:0.4"]
RECIPES = {"detector (in-dataset)": dict(),  # the default recipe: pooled variant
           "ablation: forward": dict(variant="forward"),
           "ablation: reversed": dict(variant="reversed"),
           "ablation: original recipe": dict(variant="forward", lr=0.1, epochs=10)}


def step1(save: Path, dataset: str, setting: str, seed: int, threads: int, extra: list[str]) -> Path:
    kind, ratio = setting.split(":")
    args = generate.get_args_parser().parse_args(
        ["--dataset", dataset, "--noise_type", kind, "--noise_ratio", ratio, "--seed", str(seed), "--save",
         str(save), "--threads", str(threads), "--no_progress", "--record", "eval", *DATASET_FLAGS.get(dataset, []),
         *extra])  # the paper's recording for the main rows; --record_ablation passes --record train
    return generate.main(args)


def fit_detector(curves: list[np.ndarray], flipped: list[np.ndarray], **recipe) -> tuple[LSTMDetector, int]:
    """Train on one or more runs (resampled to the first run's length); returns the model and its length."""
    length = curves[0].shape[1]
    x = np.concatenate([c if c.shape[1] == length else resample_time(c, length) for c in curves])
    strata = np.concatenate([np.full(len(c), i) for i, c in enumerate(curves)])
    result = train_detector(x, np.concatenate(flipped), DetectorRecipe(seed=0, **recipe), strata=strata,
                            log=lambda s: None)
    model = LSTMDetector(result.variant)
    model.load_state_dict(result.state_dict)
    return model, length


def mean_std(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}" if values else "–"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=["digits", "fashion_mnist"])
    p.add_argument("--settings", nargs="+", default=SETTINGS)
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    p.add_argument("--save", default="runs/grid")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no_ablations", action="store_true")
    p.add_argument("--record_ablation", action="store_true", help="also record from the training pass (the scored datasets)")
    p.add_argument("--out", default="docs/benchmark_grid.md")
    p.add_argument("--render_only", nargs="*", default=None, metavar="JSON",
                   help="write the table from saved .json results (default: the one beside --out), merged")
    p.add_argument("--step1_only", action="store_true", help="only make the STEP 1 runs (of --datasets)")
    p.add_argument("--score_datasets", nargs="+", default=None,
                   help="score only these datasets' runs (to split the grid over processes; merge with --render_only)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    start = time.time()
    if a.render_only is not None:
        results, seconds, commands = {}, 0.0, []
        for path in a.render_only or [Path(a.out).with_suffix(".json")]:
            saved = json.loads(Path(path).read_text())
            for k, rows in saved["results"].items():  # rows of the same cell from several files add up
                results.setdefault(tuple(k.split("|")), {}).update(rows)
            seconds, commands = max(seconds, saved["seconds"]), commands + [saved["command"]]
        write_table(Path(a.out), results, a, seconds, " ; ".join(commands))
        return
    save = Path(a.save)
    runs = {(d, s, seed): load_run(step1(save, d, s, seed, a.threads, []))
            for d in a.datasets for s in a.settings for seed in a.seeds}
    if a.step1_only:
        return
    results: dict[tuple, dict[str, list]] = defaultdict(lambda: defaultdict(list))  # (dataset, setting) -> score

    def record(key, name, p_noisy, flipped):
        m = detection_metrics(p_noisy, flipped, remove_ratio=float(flipped.mean()))
        results[key][name].append((m.roc_auc, m.average_precision))

    recipes = {k: v for k, v in RECIPES.items() if not (a.no_ablations and k.startswith("ablation"))}
    pooled_cache: dict[tuple[str, int], tuple[LSTMDetector, int]] = {}
    for (d, s, seed), run in runs.items():
        if a.score_datasets and d not in a.score_datasets:
            continue
        key, flipped, curves = (d, s), run.label_flipped, run.curves
        for name, score in score_baselines(run.td, run.class_ids).items():
            record(key, name, score, flipped)
        nxt = a.seeds[(a.seeds.index(seed) + 1) % len(a.seeds)]
        if nxt != seed:
            src = runs[(d, s, nxt)]
            for name, recipe in recipes.items():
                model, length = fit_detector([src.curves], [src.label_flipped], **recipe)
                record(key, name, predict_p_noisy(model, curves, length=length), flipped)
        others = [o for o in a.datasets if o != d]
        for o in others:
            src = runs[(o, s, seed)]
            model, length = fit_detector([src.curves], [src.label_flipped])
            record(key, f"detector (transfer from {o})", predict_p_noisy(model, curves, length=length), flipped)
            if (o, seed) not in pooled_cache:
                pool = [runs[(o, s2, seed)] for s2 in a.settings]
                pooled_cache[(o, seed)] = fit_detector([r.curves for r in pool], [r.label_flipped for r in pool])
            model, length = pooled_cache[(o, seed)]
            record(key, f"detector (pooled transfer from {o})", predict_p_noisy(model, curves, length=length),
                   flipped)
        print(f"scored {d} {s} seed {seed} ({time.time() - start:.0f}s)", flush=True)
    if a.record_ablation:
        for (d, s, seed), run in list(runs.items()):
            if a.score_datasets and d not in a.score_datasets:
                continue
            tr = load_run(step1(save / "record_train", d, s, seed, a.threads, ["--record", "train"]))
            nxt = a.seeds[(a.seeds.index(seed) + 1) % len(a.seeds)]
            src = load_run(step1(save / "record_train", d, s, nxt, a.threads, ["--record", "train"]))
            model, length = fit_detector([src.curves], [src.label_flipped])
            record((d, s), "record=train: detector (in-dataset)", predict_p_noisy(model, tr.curves, length=length),
                   tr.label_flipped)
            for name, score in score_baselines(tr.td, tr.class_ids, names=["aum", "mean_loss", "variability"]).items():
                record((d, s), f"record=train: {name}", score, tr.label_flipped)
    write_table(Path(a.out), results, a, time.time() - start)


def write_table(out: Path, results, a, seconds: float, command: str | None = None) -> None:
    command = command or " ".join(["python benchmarks/grid.py", *sys.argv[1:]])
    lines = ["# Detector vs hand-crafted scores\n",
             f"Command: `{command}`  ",
             f"Machine: {torch.get_num_threads()} torch thread(s) on a 2-core CPU, no GPU; wall time {seconds / 60:.1f} min.  ",
             f"Seeds: {a.seeds}; STEP 1 flags per dataset: {DATASET_FLAGS}.  ",
             "Cells: mean ± std over seeds of ROC-AUC (first table of each dataset) and mAP (second). "
             "**Bold** = best in its column. No score was tuned to this table.  ",
             "Traces: the paper's eval-mode recording pass (`--record eval`); rows `record=train:` score traces of the "
             "same settings and seeds recorded from the training pass (`--record train`, runner.py's default).\n"]
    for d in a.datasets:
        for metric, idx in (("ROC-AUC", 0), ("mAP", 1)):
            cols = [s for s in a.settings if (d, s) in results]
            if not cols:
                continue
            names = sorted({n for s in cols for n in results[(d, s)]},
                           key=lambda n: (not n.startswith("detector"), n.startswith("ablation"),
                                          n.startswith("record"), n))
            best = {s: max(np.mean([v[idx] for v in results[(d, s)][n]]) for n in results[(d, s)]
                           if not n.startswith(("ablation", "record"))) for s in cols}
            lines += [f"\n## {d}: {metric}\n", "| score | " + " | ".join(cols) + " |",
                      "|---|" + "---|" * len(cols)]
            for n in names:
                cells = []
                for s in cols:
                    vals = [v[idx] for v in results[(d, s)].get(n, [])]  # (ROC-AUC, mAP) per seed
                    cell = mean_std(vals)
                    cells.append(f"**{cell}**" if vals and np.isclose(np.mean(vals), best[s]) else cell)
                lines.append(f"| {n} | " + " | ".join(cells) + " |")
    out.parent.mkdir(parents=True, exist_ok=True)
    from labeltrace.io import write_json, write_text
    write_text(out, "\n".join(lines) + "\n")
    write_json(out.with_suffix(".json"), {"seconds": seconds, "command": command, "results": {
        f"{d}|{s}": {n: v for n, v in r.items()} for (d, s), r in results.items()}})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
