"""§4.2, real noise: WebVision50 and Clothing100K (no ground truth) scored by the CIFAR-100 detector without
retraining it, the 20% most suspicious samples removed, a ResNet-50 retrained (LR drops at 33% and 67%).

    bash paper/table_large_datasets.sh <datadir> <result_save_path> [--dry_run] [--scale proxy]

The runs (the original README's): STEP 1 on each dataset per seed; the ``cifar100_0.3`` detector (its STEP 1
run and STEP 2, shared with §4.1's table); STEP 3 with it at 0.2, plus no removal and a random 20% removal
as references (``--retrain_baselines``: also AUM's 20%). The real datasets have no ground truth, so the table
has no ROC-AUC there; the proxies' stand-ins carry synthesized instance noise, whose detection figures the
table adds as proxy-only columns.
"""
from __future__ import annotations

import argparse
import sys

from paper import jobs, report
from paper.common import cli_main
from paper.detectors import detector_jobs
from paper.jobs import Context, Job
from paper.scales import describe

NAME = "large_datasets"
TITLE = "Paper §4.2: WebVision50 and Clothing100K (real noise)"
DATASETS = ["webvision50", "clothing100k"]
DETECTOR = "cifar100_0.3"
REMOVE_RATIO = 0.2
BASELINE = "aum"
COLUMNS: list[report.Column] = [("removed", "removed", ",.0f"), ("test acc (best)", "best", ".4f"),
                                ("test acc (last)", "last", ".4f"), ("ROC-AUC (proxy only)", "roc_auc", ".4f"),
                                ("noise after (proxy only)", "noise_after", ".4f")]


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--retrain_baselines", action="store_true",
                   help=f"also remove {REMOVE_RATIO:.0%} by {BASELINE.upper()} and retrain")


def _dataset_jobs(ctx: Context, name: str, detector_file: str, retrain_baselines: bool) -> tuple[list[Job], dict]:
    """One dataset's STEP 1 and STEP 3 runs (its three removals retrain in one process), and by (row label,
    seed) the summary.json each row reads."""
    profile = ctx.scale.profile(name)
    planned, rows = [], {}
    removals = ("none", "detector", "random")
    labels = ("no removal", f"detector {DETECTOR}", f"random {REMOVE_RATIO:.0%}")
    for seed in ctx.seeds:
        planned.append(jobs.step1(ctx, profile, seed, profile.noise))
        job = jobs.denoise(ctx, profile, seed, profile.noise, removals=removals, remove_ratio=REMOVE_RATIO,
                           detector_file=detector_file)
        planned.append(job)
        rows.update({(label, seed): marker for label, marker in zip(labels, job.markers)})
        if retrain_baselines:
            job = jobs.denoise(ctx, profile, seed, profile.noise, removals=("detector",), remove_ratio=REMOVE_RATIO,
                               detector_file=f"baseline:{BASELINE}")
            planned.append(job)
            rows[(f"{BASELINE.upper()} (hand-crafted)", seed)] = job.marker
    return planned, rows


def plan(ctx: Context, args: argparse.Namespace) -> list[Job]:
    planned, detector_file = detector_jobs(ctx, DETECTOR)
    for name in DATASETS:
        planned += _dataset_jobs(ctx, name, str(detector_file), args.retrain_baselines)[0]
    return planned


def table(ctx: Context, args: argparse.Namespace) -> str:
    _, detector_file = detector_jobs(ctx, DETECTOR)
    rows = []
    for name in DATASETS:
        _, step3 = _dataset_jobs(ctx, name, str(detector_file), args.retrain_baselines)
        for label in dict.fromkeys(label for label, _ in step3):
            values = report.per_seed(ctx.seeds, lambda seed: report.step3_values(step3[(label, seed)]))
            rows.append(report.row_cells([name, label], values, COLUMNS))
    seeds = " ".join(map(str, ctx.seeds))
    return "\n".join([
        f"## {TITLE} ({ctx.scale.name} scale)", "",
        f"Seeds {seeds} (mean ± std where more than one); the detector {DETECTOR} trained on CIFAR-100 (at this "
        f"scale its stand-in), seed {ctx.detector_seed}, never on these datasets; remove {REMOVE_RATIO}; test "
        "accuracy after retraining (LR x0.1 at 33% and 67% at the paper scale). Datasets at this scale:",
        describe(ctx.scale, DATASETS), "", report.markdown(["dataset", "method", *(c[0] for c in COLUMNS)], rows),
        ""])


if __name__ == "__main__":
    cli_main(sys.modules[__name__])
