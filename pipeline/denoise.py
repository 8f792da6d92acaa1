"""STEP 3: score a STEP 1 run with a detector, remove the most suspicious samples, retrain, report.

    python denoise.py --dataset digits --seed 1 --noise_ratio 0.2 --save runs --detector D.pth.tar --remove_ratio 0.2
    python denoise.py ... --removal all       # detector, random, oracle and no removal, then one table
    bash small_dataset_sym_denoise.sh <datadir> <dataset> <seed> <noise_ratio> <noise_type> <save> <detector> <ratio>

Run folder: ``<experiment>/prune4retrain_seed<seed>/detector_<name>/percremove<ratio>`` (large datasets:
``<experiment>/<net><depth>_prune4retrain_seed<seed>/...``); the references are ``detector_random``,
``detector_oracle/percremoveflipped`` (exactly the flipped samples) and ``detector_none/percremove0.0``.
"""
from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core import cli
from labeltrace.errors import fail
from core.committed import completed_summary
from labeltrace.io import write_csv, write_text
from labeltrace.runfiles import REMOVED_FILE
from labeltrace.metrics import NO_GROUND_TRUTH, detection_metrics, format_metrics, num_kept, removal_cut
from pipeline.retrain import add_args, finish, resolve_recipe, retrain, run_config
from labeltrace.issues import write_issue_files
from pipeline.find_issues import split_pictures
from labeltrace.scoring import Scores, score_run
from pipeline.scoring import Step3Inputs, step3_inputs

REMOVALS = ("detector", "random", "oracle", "none")
TABLE_ORDER = ("none", "detector", "random", "oracle")  # "all" runs and tabulates them in this order
STAGE = "prune4retrain"
FEW_KEPT_PER_CLASS = 10  # a retraining on fewer samples per class than this measures little


def get_args_parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser("STEP 3: remove the samples a detector finds most suspicious, retrain")
    add_args(p)
    p.add_argument("--detector", default=None,
                   help="detector checkpoint (*.pth.tar) or baseline:<score> (e.g. baseline:confidence)")
    p.add_argument("--remove_ratio", type=cli.ratio, default=0.2, help="fraction of samples to remove, in [0, 1)")
    p.add_argument("--removal", default="detector",
                   help="detector: the top remove_ratio by the detector; random: a random remove_ratio "
                        "(control); oracle: exactly the flipped samples; none: no removal; all: each of them; "
                        "or a comma-separated list (e.g. none,detector,oracle); more than one ends with a table")
    return p


def run_folder(root: Path, removal: str, remove_ratio: float, detector: str | None) -> Path:
    if removal == "detector":
        return root / f"detector_{detector}" / f"percremove{remove_ratio}"
    if removal == "oracle":
        return root / "detector_oracle" / "percremoveflipped"
    if removal == "none":
        return root / "detector_none" / "percremove0.0"
    return root / "detector_random" / f"percremove{remove_ratio}"


def removed_rows(removal: str, *, n: int, remove_ratio: float, p_noisy: np.ndarray | None,
                 flipped: np.ndarray | None, seed: int) -> np.ndarray:
    """Positions (into the traces' N rows) to remove, shape (K,); the detector's most suspicious first."""
    if removal == "detector":
        return removal_cut(p_noisy, remove_ratio)[1]
    k = n - num_kept(n, remove_ratio)
    if removal == "random":
        return np.sort(np.random.default_rng([seed, 7]).permutation(n)[:k])
    if removal == "oracle":
        return np.flatnonzero(flipped)
    return np.arange(0, dtype=np.int64)


def denoise_one(removal: str, args: argparse.Namespace, inputs: Step3Inputs, *, scores: Scores | None,
                remove_ratio: float) -> dict[str, Any]:
    """One removal of ``remove_ratio`` (data debugging passes its ``--relabel_ratio``) + retraining +
    summary.json; a finished run with the same settings is not re-run."""
    device, settings, bundle, step1, _ = inputs
    n = len(step1.rows)
    truth = step1.flipped_rows if step1.has_truth else None
    if removal == "oracle" and truth is None:
        fail(f"--removal oracle: {settings.no_truth_reason}, there is no ground truth to remove")
    p_noisy = scores.p_noisy if scores is not None else None
    removed = removed_rows(removal, n=n, remove_ratio=remove_ratio, p_noisy=p_noisy, flipped=truth,
                           seed=args.seed)
    keep = np.ones(n, bool)
    keep[removed] = False
    kept_fraction = {"oracle": 1 - len(removed) / max(n, 1), "none": 1.0}.get(removal, 1 - remove_ratio)
    recipe, batch = resolve_recipe(args, settings, kept_fraction=kept_fraction)
    run_dir = run_folder(settings.stage_root(STAGE), removal, remove_ratio, scores.name if scores else None)
    digest = hashlib.sha1(np.sort(step1.rows[removed]).tobytes()).hexdigest()
    config = run_config(args, recipe, batch, net_type=settings.net_type, depth=settings.depth,
                        image_size=bundle.image_size, removal=removal,
                        stage=STAGE, td_run=str(step1.run_dir),
                        removed_sha1=digest, detector_name=scores.name if removal == "detector" else None)
    summary = completed_summary(run_dir, config, args.restart)
    if summary is not None:
        print(f"{run_dir}: already complete (add --restart to run it again)")
        return summary
    summary = {"stage": STAGE, "removal": removal, "run_dir": str(run_dir), "td_run": str(step1.run_dir),
               "dataset": args.dataset, "seed": args.seed, "remove_ratio": remove_ratio,
               "num_samples": n, "num_removed": int(len(removed)), "num_kept": int(keep.sum())}
    if removal == "detector":
        metrics = detection_metrics(p_noisy, truth, remove_ratio=remove_ratio)
        print(format_metrics(metrics, remove_ratio=remove_ratio, name=f"detector {scores.name}"))
        if scores.note:
            print(scores.note)
        summary.update(detector=scores.info, detector_note=scores.note,
                       detection=metrics.as_dict() if metrics else None,
                       detection_note=(metrics.undefined if metrics else NO_GROUND_TRUTH))
    if truth is not None:
        hits = int(truth[removed].sum())
        summary.update(removed_flipped=hits, precision_at_cut=hits / len(removed) if len(removed) else None,
                       noise_rate_before=float(truth.mean()), noise_rate_after=float(truth[keep].mean()))
    else:
        summary.update(removed_flipped=None, precision_at_cut=None, noise_rate_before=None, noise_rate_after=None,
                       noise_note=NO_GROUND_TRUTH)
    print(f"{removal}: removing {len(removed)} of {n} samples"
          + (f", {summary['removed_flipped']} of them flipped; noise {summary['noise_rate_before']:.4f} -> "
             f"{summary['noise_rate_after']:.4f}" if truth is not None else "") + f"; retraining in {run_dir}")
    start = time.perf_counter()
    kept_rows = step1.rows[keep]
    result = retrain(bundle, kept_rows, step1.assigned[kept_rows], run_dir=run_dir, config=config, recipe=recipe,
                     batch_size=batch, net_type=settings.net_type, depth=settings.depth, args=args,
                     device=device)
    frame = pd.DataFrame({"index": step1.rows[removed]})
    if p_noisy is not None:
        frame["p_noisy"] = p_noisy[removed]
    if truth is not None:
        frame["label_flipped"] = truth[removed].astype(int)
    write_csv(run_dir / REMOVED_FILE, frame)
    summary.update(result, wall_seconds=time.perf_counter() - start)
    # The last epoch's: the best epoch would be picked on the test set itself (summary.json keeps it, for the
    # paper's tables, which report it beside the last).
    print(f"{removal}: test accuracy (last epoch) {summary['last_test_accuracy']:.4f}")
    return finish(run_dir, summary)


def check_kept(args: argparse.Namespace, removals: list[str], *, n: int, num_classes: int) -> None:
    """Refuse a ``--remove_ratio`` that keeps fewer samples than classes (0.999 of digits keeps one), and say
    so when it keeps fewer than :data:`FEW_KEPT_PER_CLASS` per class."""
    kept = num_kept(n, args.remove_ratio)
    if not {"detector", "random"} & set(removals):
        return
    if kept < num_classes:
        fail(f"--remove_ratio {args.remove_ratio}: keeps {kept} of {n} samples, fewer than the {num_classes} "
             "classes: nothing to retrain on")
    if kept < FEW_KEPT_PER_CLASS * num_classes:
        print(f"warning: --remove_ratio {args.remove_ratio} keeps {kept} of {n} samples, fewer than "
              f"{FEW_KEPT_PER_CLASS} per class: the test accuracy after retraining will say little")


def comparison_table(summaries: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per run: what was removed, how much of it was noise, and the test accuracy after retraining, at
    its last epoch (no epoch picked on the test set)."""
    rows = []
    for s in summaries:
        det = s.get("detection") or {}
        name = s.get("name") or {"none": "noisy (no removal)", "detector": "pruned (detector)",
                                 "random": "random removal", "oracle": "oracle (flipped removed)"}[s["removal"]]
        rows.append({"run": name, "removed": s.get("num_removed"), "flipped_removed": s.get("removed_flipped"),
                     "noise_after": s.get("noise_rate_after"), "roc_auc": det.get("roc_auc"),
                     "map": det.get("average_precision"), "last_test_acc": s.get("last_test_accuracy")})
    return pd.DataFrame(rows, dtype=object)  # object: counts stay integers next to the '-' of missing ones


def format_table(frame: pd.DataFrame) -> str:
    """A Markdown table; '-' where a value does not apply (e.g. ROC-AUC of a run without a detector)."""
    def cell(v):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return "-"
        return f"{v:.4f}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def main(args: argparse.Namespace) -> list[dict[str, Any]]:
    inputs = step3_inputs(args)
    _, settings, bundle, step1, args = inputs
    asked = [r.strip() for r in str(args.removal).split(",") if r.strip()]
    unknown = [r for r in asked if r not in (*REMOVALS, "all")]
    if unknown or not asked:
        fail(f"--removal: unknown removal {', '.join(unknown) or repr(args.removal)}; valid: "
             f"{', '.join(REMOVALS)}, all, or a comma-separated list")
    removals = [r for r in TABLE_ORDER if "all" in asked or r in asked]
    if "all" in asked:
        removals = [r for r in removals if (r != "detector" or args.detector) and (r != "oracle" or step1.has_truth)]
    check_kept(args, removals, n=len(step1.rows), num_classes=bundle.num_classes)
    scores = score_run(args.detector, step1.traces) if "detector" in removals or args.detector else None
    root = settings.stage_root(STAGE)
    if scores is not None:  # what was found, listed and shown, beside the retrainings it drives
        write_issue_files(root / f"detector_{scores.name}", step1.traces, scores, **split_pictures(bundle.train),
                          classes=bundle.classes, title=root.name)
    summaries = [denoise_one(r, args, inputs, scores=scores, remove_ratio=args.remove_ratio) for r in removals]
    if len(summaries) > 1:
        table = comparison_table(summaries)
        stem = f"comparison_{'detector_' + scores.name if scores else 'references'}_percremove{args.remove_ratio}"
        write_csv(root / f"{stem}.csv", table)
        write_text(root / f"{stem}.md", format_table(table) + "\n")
        print("\n" + format_table(table) + f"\n(written to {root / stem}.csv/.md)")
    return summaries
