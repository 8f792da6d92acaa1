"""Leave-one-dataset-out: detectors trained on the pool without dataset X, scored on X's grid, beside every
hand-crafted score on the same traces.

    python benchmarks/pool.py                                  # the STEP 1 runs (once; resumable)
    python benchmarks/lodo.py --heldout digits fashion_mnist   # train, score, write docs/lodo.md (+ .json)
    python benchmarks/lodo.py --heldout digits --out /tmp/d.md & python benchmarks/lodo.py --heldout fashion_mnist --out /tmp/f.md
    python benchmarks/lodo.py --render /tmp/d.json /tmp/f.json --out docs/lodo.md   # merge the two halves

For each held-out dataset X and each candidate design, one detector is trained on every finished pool run of
the *other* datasets (grid and extra groups; at most ``--max_per_run`` traces per run, every run weighted
equally, resampled to ``--length`` epochs) and scores each run of X's grid group (``benchmarks/pool.py``:
uniform / flip / instance x 0.2 / 0.4 x 3 seeds). Trained detectors are kept under ``<pool>/lodo/`` and
reused. No number here was used to tune anything but the choice among the candidates, which is the point.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.pool import POOL, is_done  # noqa: E402
from labeltrace.io import torch_save, write_json, write_text  # noqa: E402
from labeltrace.baselines import score_baselines  # noqa: E402
from labeltrace.metrics import detection_metrics  # noqa: E402
from labeltrace.neighbours import disagreement  # noqa: E402
from labeltrace.predict import load_detector, score  # noqa: E402
from labeltrace.traces import load_run  # noqa: E402
from detector_models.train import DetectorRecipe, pool_runs, train_detector  # noqa: E402

CANDIDATES = {  # name -> train_detector options; the paper's input first
    "paper input (prob)": dict(features=("prob",), anchor=False),
    "prob+margin": dict(features=("prob", "margin"), anchor=False),
    "prob+margin, anchored": dict(features=("prob", "margin"), anchor=True),
    "all 5 features, anchored": dict(features=("prob", "margin", "loss", "entropy", "rank"), anchor=True),
    "margin, anchored": dict(features=("margin",), anchor=True),
    "prob+margin, anchored, time warp": dict(features=("prob", "margin"), anchor=True, time_warp=0.5),
    "prob+margin + run context, anchored": dict(features=("prob", "margin", "run_learned", "run_spread"),
                                                anchor=True),
    "all 5 + run context, anchored": dict(features=("prob", "margin", "loss", "entropy", "rank", "run_learned",
                                                    "run_spread"), anchor=True),
    "prob+margin+margin quantile, anchored": dict(features=("prob", "margin", "margin_quantile"), anchor=True),
    "prob+margin+class quantile, anchored": dict(features=("prob", "margin", "margin_class_quantile"), anchor=True),
    "prob+margin+neighbours, anchored": dict(features=("prob", "margin", "neighbours"), anchor=True),
    "prob+margin+neighbours+class gap, anchored": dict(features=("prob", "margin", "neighbours", "neighbours_class"),
                                                       anchor=True),
    "prob+margin+neighbours+class rank, anchored": dict(
        features=("prob", "margin", "neighbours", "neighbours_class_quantile"), anchor=True),
    "prob+margin+neighbours+class rank+margin quantile, anchored": dict(
        features=("prob", "margin", "neighbours", "neighbours_class_quantile", "margin_quantile"), anchor=True),
}
# The candidates of docs/lodo.md; the others were measured on the smaller first pool (docs/detector.md).
DEFAULT_CANDIDATES = ["paper input (prob)", "prob+margin", "prob+margin, anchored", "all 5 features, anchored",
                      "all 5 + run context, anchored"]
BASELINES = ["aum", "confidence", "mean_loss", "variability", "forgetting", "last_self_confidence",
             "cl_label_quality"]
# The hand-crafted score of the recorded neighbour agreement, where the run has it (labeltrace.neighbours.
# disagreement). It competes among the hand-crafted scores, so a detector that reads the agreement is judged
# against the plain use of the same signal.
NEIGHBOUR_SCORE = "neighbour_disagreement"


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


def train_candidate(runs: list, options: dict, *, length: int, max_per_run: int, epochs: int, seed: int,
                    out: Path) -> None:
    inputs, flipped, strata = pool_runs(runs, features=options["features"], length=length,
                                        max_per_run=max_per_run, seed=seed)
    result = train_detector(inputs, flipped, DetectorRecipe(epochs=epochs, batch_size=256, seed=seed, **options),
                            strata=strata, log=lambda line: None)
    torch_save(result.checkpoint(trained_on=[r.source for r in runs]), out)


def lodo_detector(heldout: str, name: str, a: argparse.Namespace, train_runs: list) -> Path:
    """The checkpoint of candidate ``name`` trained on ``train_runs`` (the pool without ``heldout``), trained
    now unless a detector of the same recipe is already under ``<pool>/lodo/``. ``a``: length, max_per_run,
    epochs. The name says what it was trained on: a grown pool or other options train a new detector."""
    options = CANDIDATES[name]
    recipe = json.dumps([sorted(r.source for r in train_runs), options, a.length, a.max_per_run, a.epochs],
                        sort_keys=True, default=list)
    path = Path(a.pool) / "lodo" / f"without_{heldout}__{slug(name)}__{hashlib.sha1(recipe.encode()).hexdigest()[:8]}.pth.tar"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file():
        start = time.time()
        train_candidate(train_runs, options, length=a.length, max_per_run=a.max_per_run, epochs=a.epochs,
                        seed=0, out=path)
        print(f"  trained {name} ({time.time() - start:.0f}s) -> {path}", flush=True)
    return path


def training_runs(heldout: str, save: Path, leave_out: tuple[str, ...] = ()) -> list:
    """Every finished pool run of the datasets other than ``heldout``, outside the groups ``leave_out``, loaded."""
    return [load_run(run.run_dir(save)) for run in POOL
            if is_done(run, save) and run.dataset != heldout and run.group not in leave_out]


def setting_key(run) -> str:
    """``"<dataset>|<noise> <ratio>"``; a fine-tuning grid is a held-out setting of its own, ``"<dataset> fine-tuned"``."""
    regime = " fine-tuned" if "finetune" in run.group else ""
    return f"{run.dataset}{regime}|{run.noise_type} {run.noise_ratio}"


def evaluate(heldout: str, a: argparse.Namespace, results: dict) -> None:
    save = Path(a.pool)
    train_runs = training_runs(heldout, save, tuple(a.leave_out))
    test = [run for run in POOL if is_done(run, save) and run.dataset == heldout and run.group.endswith("_grid")]
    print(f"held out {heldout}: training on {len(train_runs)} runs of the other datasets, scoring {len(test)} runs",
          flush=True)
    detectors = {name: load_detector(lodo_detector(heldout, name, a, train_runs))
                 for name in CANDIDATES if name in a.candidates}
    for run in test:
        traces = load_run(run.run_dir(save))
        key = setting_key(run)
        scores = {f"detector: {n}{a.label}": score(m, info, traces.td, labels=traces.assigned,
                                                  neighbours=traces.neighbours)[0]
                  for n, (m, info) in detectors.items()}
        scores.update(score_baselines(traces.td, traces.class_ids, names=BASELINES))
        if traces.neighbours is not None:
            scores[NEIGHBOUR_SCORE] = disagreement(traces.neighbours)
        for name, values in scores.items():
            m = detection_metrics(values, traces.label_flipped, remove_ratio=float(traces.label_flipped.mean()))
            results.setdefault(key, {}).setdefault(name, []).append((m.roc_auc, m.average_precision))


def _every_score(results: dict, keys: list[str], idx: int, dataset: str, metric: str) -> list[str]:
    """Every hand-crafted score on the same traces, setting by setting (mean over seeds)."""
    scores = [n for n in results[keys[0]] if not n.startswith("detector")]
    lines = [f"\nEvery hand-crafted score, held out {dataset}, {metric} (mean over seeds):\n",
             "| score | " + " | ".join(k.split("|")[1] for k in keys) + " | mean |", "|---|" + "---|" * (len(keys) + 1)]
    for n in scores:
        cells = [np.mean([v[idx] for v in results[k][n]]) for k in keys]
        lines.append(f"| {n} | " + " | ".join(f"{c:.3f}" for c in cells) + f" | {np.mean(cells):.3f} |")
    return lines


def render(results: dict, out: Path, command: str) -> None:
    lines = ["# Leave-one-dataset-out: detectors vs hand-crafted scores\n", f"Command: `{command}`  ",
             "Each detector design is trained on every pool run of the *other* dataset (`benchmarks/pool.py`; at most "
             "2,000 traces a run, each run weighted equally, resampled to T=32 unless the command says otherwise) "
             "and scores the grid runs of the held-out one; the hand-crafted scores are computed on the same "
             "traces. Discussion: `docs/detector.md`.  ",
             "Cells: mean ± std over the 3 seeds of the held-out grid (`benchmarks/pool.py`). "
             "*best hand-crafted* = the best of the hand-crafted scores **per setting, chosen in hindsight** "
             f"(among {', '.join(BASELINES)}, and {NEIGHBOUR_SCORE} where the runs recorded it).\n"]
    by_dataset = defaultdict(list)
    for key in results:
        by_dataset[key.split("|")[0]].append(key)
    for dataset, keys in by_dataset.items():
        names = [n for n in results[keys[0]] if n.startswith("detector")]
        for metric, idx in (("ROC-AUC", 0), ("mAP", 1)):
            lines += [f"\n## held out: {dataset}, {metric}\n",
                      "| setting | " + " | ".join(n.removeprefix("detector: ") for n in names)
                      + " | best hand-crafted | AUM |", "|---|" + "---|" * (len(names) + 2)]
            sums = defaultdict(list)
            for key in keys:
                cell = {n: [v[idx] for v in vals] for n, vals in results[key].items()}
                best_name = max((n for n in cell if not n.startswith("detector")), key=lambda n: np.mean(cell[n]))
                row = [f"{np.mean(cell[n]):.3f} ± {np.std(cell[n]):.3f}" for n in names]
                for n in names:
                    sums[n].append(np.mean(cell[n]))
                sums["best"].append(np.mean(cell[best_name]))
                sums["aum"].append(np.mean(cell["aum"]))
                lines.append(f"| {key.split('|')[1]} | " + " | ".join(row)
                             + f" | {np.mean(cell[best_name]):.3f} ({best_name}) | {np.mean(cell['aum']):.3f} |")
            lines.append("| **mean** | " + " | ".join(f"**{np.mean(sums[n]):.3f}**" for n in names)
                         + f" | **{np.mean(sums['best']):.3f}** | **{np.mean(sums['aum']):.3f}** |")
            worst = {n: min(np.array(sums[n]) - np.array(sums["best"])) for n in names}
            lines.append("| worst gap to best | " + " | ".join(f"{worst[n]:+.3f}" for n in names) + " | | |")
            lines += _every_score(results, keys, idx, dataset, metric)
    write_text(out, "\n".join(lines) + "\n")
    write_json(out.with_suffix(".json"), {"command": command, "results": results})
    print(f"wrote {out}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pool", default="runs/pool")
    p.add_argument("--heldout", nargs="+", default=["digits", "fashion_mnist"])
    p.add_argument("--candidates", nargs="+", default=DEFAULT_CANDIDATES, help=f"from: {' | '.join(CANDIDATES)}")
    p.add_argument("--length", type=int, default=32, help="detector length (epochs after resampling)")
    p.add_argument("--max_per_run", type=int, default=2000)
    p.add_argument("--leave_out", nargs="+", default=[], metavar="GROUP",
                   help="pool groups no detector trains on (e.g. the fine-tuning ones, to measure what they add)")
    p.add_argument("--label", default="", help="text after each detector's name in the table, e.g. ' (no fine-tuning)'")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="docs/lodo.md")
    p.add_argument("--render", nargs="+", default=None, metavar="JSON", help="merge saved results, write --out")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    command = "python benchmarks/lodo.py " + " ".join(sys.argv[1:])
    results: dict = {}
    if a.render:
        commands = []
        for path in a.render:
            saved = json.loads(Path(path).read_text())
            for key, cells in saved["results"].items():  # the same setting from two commands: both columns
                results.setdefault(key, {}).update(cells)
            commands.append(saved["command"])
        command = " ; ".join([*commands, command])
    else:
        for heldout in a.heldout:
            evaluate(heldout, a, results)
    render(results, Path(a.out), command)


if __name__ == "__main__":
    main()
