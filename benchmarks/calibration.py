"""Self-calibration measured: does a detector trained on labels we flipped ourselves find the data's own noise
better than the transferred detector or the hand-crafted scores?

    python benchmarks/pool.py                  # the float32 pool, whose leave-one-dataset-out detectors start here
    python benchmarks/calibration.py           # ~15 min on 2 cores: 18 STEP 1 runs, then scoring; docs/calibration.md

For digits and Fashion-MNIST (the grid settings of ``benchmarks/pool.py``: uniform / flip / instance noise at 0.2,
seeds 1-3), each STEP 1 run is made again with ``--calibrate R`` (R of the training labels flipped on top,
uniformly). The data's own noise plays the user's unknown noise: no method below sees it. On the samples whose
labels are the data's own (the injected ones left out, as STEP 3 does), ROC-AUC and mAP of:
- ``transferred``: the leave-one-dataset-out detector (shipped design; never saw the dataset);
- ``calibrated, fine-tuned``: that detector fine-tuned on this run's injected labels (``train_detector.py
  --target injected --resume``);
- ``calibrated, from scratch``: a fresh detector (same design) trained on the injected labels only;
- every hand-crafted score;
and, for the cost of injecting, ``transferred, plain run``: the transferred detector on the same setting's run
without ``--calibrate`` (the pool's).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.lodo import BASELINES, lodo_detector, training_runs  # noqa: E402
from benchmarks.pool import POOL, Run, is_done  # noqa: E402
from labeltrace.io import write_json, write_text  # noqa: E402
from labeltrace.baselines import score_baselines  # noqa: E402
from labeltrace.lstm import LSTMDetector  # noqa: E402
from labeltrace.metrics import detection_metrics  # noqa: E402
from labeltrace.predict import load_detector, score  # noqa: E402
from labeltrace.traces import load_run  # noqa: E402
from detector_models.train import DetectorRecipe, pool_runs, train_detector  # noqa: E402
from pipeline.multirun import run_all  # noqa: E402

DETECTOR = "prob+margin, anchored"
SETTINGS = [("uniform", 0.2), ("flip", 0.2), ("instance", 0.2)]


def calibration_runs() -> list[Run]:
    """The grid runs of these settings (their flags, seeds 1-3), each to be made again with --calibrate."""
    return [run for run in POOL if run.group.endswith("_grid") and (run.noise_type, run.noise_ratio) in SETTINGS]


def make_runs(runs: list[Run], save: Path, ratio: float, jobs: int) -> None:
    todo = [run for run in runs if not (run.run_dir(save, ratio) / "summary.json").is_file()]
    lines = [run.settings_line(save) + f" --calibrate {ratio}" for run in todo]
    names = [run.run_dir(save, ratio).relative_to(save).as_posix().replace("/", "__") for run in todo]
    outcomes = run_all(lines, jobs=jobs, threads=1, logs=save / "logs", names=names)
    if any(o.code for o in outcomes):
        raise SystemExit(f"error: some STEP 1 runs failed; see {save / 'logs'}")


def calibrated(run, transferred: tuple, *, init: bool, epochs: int) -> tuple:
    """A detector of the transferred one's design trained on ``run``'s injected labels: fine-tuned from it
    (``init``), or fresh. Returns (model, info) as :func:`load_detector` does."""
    model, info = transferred
    inputs, target, strata = pool_runs([run.injected_as_truth()], features=info.features, length=info.train_length)
    recipe = DetectorRecipe(variant=info.variant, features=info.features, anchor=info.anchor, epochs=epochs, seed=0)
    result = train_detector(inputs, target, recipe, strata=strata, log=lambda line: None,
                            init_state=model.state_dict() if init else None)
    trained = LSTMDetector(info.variant, features=info.features, anchor=info.anchor)
    trained.load_state_dict(result.state_dict)
    return trained.eval(), info


def score_one(run: Run, a: argparse.Namespace, transferred: tuple) -> dict[str, tuple[float, float]]:
    """{method: (ROC-AUC, mAP)} on the data's own labels of one calibrated run."""
    traces = load_run(run.run_dir(Path(a.save), a.ratio))
    own = traces.without_injected()
    plain = load_run(run.run_dir(Path(a.pool)))
    scores = {"transferred": score(*transferred, own.td, labels=own.assigned)[0],
              "calibrated, fine-tuned": score(*calibrated(traces, transferred, init=True, epochs=a.epochs), own.td,
                                               labels=own.assigned)[0],
              "calibrated, from scratch": score(*calibrated(traces, transferred, init=False, epochs=a.epochs),
                                                own.td, labels=own.assigned)[0],
              **score_baselines(own.td, own.class_ids, names=BASELINES)}
    out = {name: _metrics(values, own.label_flipped) for name, values in scores.items()}
    out["transferred, plain run"] = _metrics(score(*transferred, plain.td, labels=plain.assigned)[0], plain.label_flipped)
    return out


def _metrics(values: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    m = detection_metrics(values, truth, remove_ratio=float(truth.mean()))
    return m.roc_auc, m.average_precision


def render(results: dict, command: str, ratio: float) -> str:
    lines = [f"# Self-calibration (`benchmarks/calibration.py`, --calibrate {ratio})", "", f"Command: `{command}`", "",
             " ".join(__doc__.split("\n\n")[2].split()), ""]
    for dataset, grid in results.items():
        for idx, metric in ((0, "ROC-AUC"), (1, "mAP")):
            lines += [f"## {dataset}: {metric} on the data's own noise (mean +- std over seeds)", "",
                      "| method | " + " | ".join(grid) + " | mean |", "|---|" + "---|" * (len(grid) + 1)]
            for name in next(iter(grid.values())):
                cells = [np.array([v[idx] for v in grid[s][name]]) for s in grid]
                lines.append(f"| {name} | " + " | ".join(f"{c.mean():.3f}±{c.std():.3f}" for c in cells)
                             + f" | {np.mean([c.mean() for c in cells]):.3f} |")
            lines.append("")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pool", default="runs/pool", help="the float32 pool (plain runs and lodo/ detectors)")
    p.add_argument("--save", default="runs/calibration", help="where the --calibrate runs go")
    p.add_argument("--ratio", type=float, default=0.1, help="--calibrate of the runs")
    p.add_argument("--epochs", type=int, default=10, help="detector epochs on the injected labels")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--length", type=int, default=32)
    p.add_argument("--max_per_run", type=int, default=2000)
    p.add_argument("--out", default="docs/calibration.md")
    a = p.parse_args()
    runs = [run for run in calibration_runs() if is_done(run, Path(a.pool))]
    make_runs(runs, Path(a.save), a.ratio, a.jobs)
    results: dict = {}
    for dataset in sorted({run.dataset for run in runs}):
        transferred = load_detector(lodo_detector(dataset, DETECTOR, argparse.Namespace(
            pool=a.pool, length=a.length, max_per_run=a.max_per_run, epochs=15), training_runs(dataset, Path(a.pool))))
        for run in (r for r in runs if r.dataset == dataset):
            for name, value in score_one(run, a, transferred).items():
                results.setdefault(dataset, {}).setdefault(f"{run.noise_type} {run.noise_ratio}", {}) \
                    .setdefault(name, []).append(value)
    out = Path(a.out)
    write_json(out.with_suffix(".json"), results)
    write_text(out, render(results, "python " + " ".join(sys.argv), a.ratio) + "\n")
    print(out.read_text())


if __name__ == "__main__":
    main()
