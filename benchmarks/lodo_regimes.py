"""Leave-one-group-out over every regime: image CNNs with SGD (``benchmarks/pool.py``) and transformers with
AdamW, fine-tuned transformers and tabular MLPs (``benchmarks/regimes.py``).

    python benchmarks/lodo_regimes.py --held_out digits bert_text_scratch --out /tmp/a.md   # one half
    python benchmarks/lodo_regimes.py --render /tmp/a.json /tmp/b.json --out docs/lodo_regimes.md

Held-out units: each group of the regimes pool (the detector trains on every other run of both pools), and each
image dataset of the image pool, ``digits`` and ``fashion_mnist``, as ``benchmarks/lodo.py`` holds them out
(its grid and fine-tuning grid are scored; the detector trains on neither, nor on any regimes run of the same
images: ``vit_digits_scratch`` and the digits table, or ``vit_fashion_finetune``). Every candidate design is
trained by :func:`benchmarks.lodo.lodo_detector` (kept under ``<regimes pool>/lodo/``). The shipped generalist
is scored as it is: it was trained on the image pool, so on the image units it has seen the held-out data.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import lodo, pool, regimes  # noqa: E402
from labeltrace.baselines import score_baselines  # noqa: E402
from labeltrace.io import write_json, write_text  # noqa: E402
from labeltrace.metrics import detection_metrics  # noqa: E402
from labeltrace.neighbours import disagreement  # noqa: E402
from labeltrace.predict import GENERALIST, load_detector, score  # noqa: E402
from labeltrace.traces import load_run  # noqa: E402

IMAGE_UNITS = {"digits": ("digits", "digits_table"), "fashion_mnist": ("fashion",)}  # regimes data of the same images
SHIPPED = "shipped generalist"


def units(image_save: Path, regimes_save: Path) -> dict[str, tuple[list, list]]:
    """``{unit: (test [(setting key, run folder)], train [run folder])}`` over the finished runs of both pools."""
    images = [r for r in pool.POOL if pool.is_done(r, image_save)]
    others = [r for r in regimes.all_runs() if regimes.is_done(r, regimes_save)]
    out = {}
    for unit, same in IMAGE_UNITS.items():
        test = [(f"{unit}{' fine-tuned' if 'finetune' in r.group else ''}|{r.noise_type} {r.noise_ratio}",
                 r.run_dir(image_save)) for r in images if r.dataset == unit and r.group.endswith("_grid")]
        train = ([r.run_dir(image_save) for r in images if r.dataset != unit]
                 + [r.run_dir(regimes_save) for r in others if r.data not in same])
        out[unit] = (test, train)
    for group in regimes.GROUPS:
        test = [(f"{group}|{r.setting}", r.run_dir(regimes_save)) for r in others if r.group == group]
        train = ([r.run_dir(image_save) for r in images]
                 + [r.run_dir(regimes_save) for r in others if r.group != group])
        out[group] = (test, train)
    return out


def scores_of(traces, detectors: dict) -> dict[str, np.ndarray]:
    """Every detector's and every hand-crafted score of one run, higher = more suspicious."""
    out = {name: score(m, info, traces.td, labels=traces.assigned, neighbours=traces.neighbours)[0]
           for name, (m, info) in detectors.items()}
    out.update(score_baselines(traces.td, traces.class_ids, names=lodo.BASELINES))
    out[lodo.NEIGHBOUR_SCORE] = disagreement(traces.neighbours)
    return out


def evaluate(unit: str, test: list, train: list, a: argparse.Namespace, results: dict) -> None:
    train_runs = [load_run(d) for d in train]
    print(f"held out {unit}: training on {len(train_runs)} runs, scoring {len(test)}", flush=True)
    detectors = {f"detector: {n}": load_detector(lodo.lodo_detector(unit, n, a, train_runs)) for n in a.candidates}
    detectors[f"detector: {SHIPPED}"] = load_detector(GENERALIST)
    for key, run_dir in test:
        traces = load_run(run_dir)
        for name, values in scores_of(traces, detectors).items():
            m = detection_metrics(values, traces.label_flipped, remove_ratio=float(traces.label_flipped.mean()))
            results.setdefault(key, {}).setdefault(name, []).append((m.roc_auc, m.average_precision))


def _cells(results: dict, key: str, idx: int) -> dict[str, float]:
    return {n: float(np.mean([v[idx] for v in vals])) for n, vals in results[key].items()}


def _unit_table(results: dict, unit: str, keys: list[str], idx: int, metric: str) -> list[str]:
    """One unit's rows: each setting (mean over its runs), the mean, the worst gap of each detector to the best
    hand-crafted score of each setting (chosen in hindsight)."""
    names = [n for n in results[keys[0]] if n.startswith("detector")]
    lines = [f"\n### {unit}, {metric}\n", "| setting | " + " | ".join(n.removeprefix("detector: ") for n in names)
             + " | best hand-crafted | AUM | mean loss |", "|---|" + "---|" * (len(names) + 3)]
    sums = defaultdict(list)
    for key in keys:
        cell = _cells(results, key, idx)
        best = max((n for n in cell if not n.startswith("detector")), key=cell.get)
        for n in [*names, "aum", "mean_loss"]:
            sums[n].append(cell[n])
        sums["best"].append(cell[best])
        lines.append(f"| {key.split('|')[1]} ({len(results[key]['aum'])} runs) | "
                     + " | ".join(f"{cell[n]:.3f}" for n in names)
                     + f" | {cell[best]:.3f} ({best}) | {cell['aum']:.3f} | {cell['mean_loss']:.3f} |")
    lines.append("| **mean** | " + " | ".join(f"**{np.mean(sums[n]):.3f}**" for n in names)
                 + f" | **{np.mean(sums['best']):.3f}** | **{np.mean(sums['aum']):.3f}** |"
                 f" **{np.mean(sums['mean_loss']):.3f}** |")
    lines.append("| worst setting - best hand-crafted | " + " | ".join(
        f"{min(np.array(sums[n]) - np.array(sums['best'])):+.3f}" for n in names) + " | | | |")
    return lines


def _targets(results: dict, by_unit: dict) -> list[str]:
    """Per detector and unit: the mean gain over the best hand-crafted score (chosen per setting in hindsight),
    the worst setting's gap to it, and the worst setting's gap to the better of AUM and mean loss."""
    names = [n for n in next(iter(results.values())) if n.startswith("detector")]
    lines = ["\n## Targets, per held-out unit\n",
             "Gain = detector minus best hand-crafted, mean over the unit's settings (target: +0.010 ROC-AUC, "
             "+0.020 mAP); worst = the lowest setting's gap (target: >= -0.005); vs AUM/loss = the lowest "
             "setting's gap to the better of AUM and mean loss (target on text/transformer units: >= 0).\n",
             "| detector | unit | ROC gain | mAP gain | worst ROC | worst mAP | vs AUM/loss ROC | vs AUM/loss mAP |",
             "|---|---|---|---|---|---|---|---|"]
    for n in names:
        for unit, keys in by_unit.items():
            row = []
            for idx in (0, 1):
                cells = [_cells(results, k, idx) for k in keys]
                best = np.array([max(v for m, v in c.items() if not m.startswith("detector")) for c in cells])
                ours = np.array([c[n] for c in cells])
                plain = np.array([max(c["aum"], c["mean_loss"]) for c in cells])
                row.append((np.mean(ours - best), np.min(ours - best), np.min(ours - plain)))
            lines.append(f"| {n.removeprefix('detector: ')} | {unit} | {row[0][0]:+.3f} | {row[1][0]:+.3f} | "
                         f"{row[0][1]:+.3f} | {row[1][1]:+.3f} | {row[0][2]:+.3f} | {row[1][2]:+.3f} |")
    return lines


def render(results: dict, out: Path, command: str) -> None:
    lines = ["# Leave-one-group-out over every regime: detectors vs hand-crafted scores\n", f"Command: `{command}`  ",
             "Held-out units and what each detector trains on: `benchmarks/lodo_regimes.py`. Cells: ROC-AUC or mAP, "
             "mean over the setting's runs (seeds; for `mlp_tabular` also the four tables). *best hand-crafted* = "
             f"the best of {', '.join(lodo.BASELINES)} and {lodo.NEIGHBOUR_SCORE} **per setting, chosen in "
             f"hindsight**. *{SHIPPED}*: the shipped checkpoint, scored as it is (trained on the "
             "image pool, so not held out on `digits` and `fashion_mnist`).\n"]
    by_unit = defaultdict(list)
    for key in sorted(results):
        by_unit[key.split("|")[0]].append(key)
    for unit, keys in by_unit.items():
        for metric, idx in (("ROC-AUC", 0), ("mAP", 1)):
            lines += _unit_table(results, unit, keys, idx, metric)
    lines += _targets(results, by_unit)
    write_text(out, "\n".join(lines) + "\n")
    write_json(out.with_suffix(".json"), {"command": command, "results": results})
    print(f"wrote {out}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image_pool", default="runs/pool", help="benchmarks/pool.py's folder")
    p.add_argument("--pool", default="runs/pool_regimes", help="benchmarks/regimes.py's folder (detectors kept here)")
    every = [*IMAGE_UNITS, *regimes.GROUPS]
    p.add_argument("--held_out", nargs="+", default=every, choices=every, metavar="UNIT", help=", ".join(every))
    p.add_argument("--candidates", nargs="+", default=["prob+margin+neighbours, anchored"], choices=list(lodo.CANDIDATES),
                   metavar="DESIGN", help=" | ".join(lodo.CANDIDATES))
    p.add_argument("--length", type=int, default=32)
    p.add_argument("--max_per_run", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="docs/lodo_regimes.md")
    p.add_argument("--render", nargs="+", default=None, metavar="JSON", help="merge saved results, write --out")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    command = "python benchmarks/lodo_regimes.py " + " ".join(sys.argv[1:])
    results: dict = {}
    if a.render:
        saved = [json.loads(Path(path).read_text()) for path in a.render]
        for part in saved:
            for key, cells in part["results"].items():
                results.setdefault(key, {}).update(cells)
        command = " ; ".join([*(part["command"] for part in saved), command])
    else:
        every_unit = units(Path(a.image_pool), Path(a.pool))
        for unit in a.held_out:
            evaluate(unit, *every_unit[unit], a, results)
    render(results, Path(a.out), command)


if __name__ == "__main__":
    main()
