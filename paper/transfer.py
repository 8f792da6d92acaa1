"""The paper's headline transfer (its abstract, and §4.1 beyond CIFAR): the detectors ``cifar10_0.2`` and
``cifar100_0.3``, trained once on their CIFAR runs, score STEP 1 runs of Tiny ImageNet, CUB-200-2011 and
Caltech-256 with synthesized noise, without retraining; then the most suspicious samples are removed and the
classifier retrained.

    bash paper/table_transfer.sh <datadir> <result_save_path> [--dry_run] [--seeds 1 2 3] [--scale proxy]

The runs: the two detectors (their STEP 1 run and STEP 2, shared with §4.1's table); STEP 1 on each dataset
with uniform and flip noise at 0.2 and 0.4 per seed (Tiny ImageNet: ResNet-32 with an initial stride of 2 at
64 px; CUB-200 and Caltech-256: torchvision ResNet-34 at 224 px, ``--pretrained`` for local ImageNet weights);
the detection table scores every run with both detectors, the shipped generalist, AUM and the confidence on the
same traces. Remove and retrain (the README's pairing of detector and noise): uniform 0.2 with ``cifar10_0.2`` at
0.15 / 0.2 / 0.25, uniform 0.4 with ``cifar100_0.3`` at 0.35 / 0.4 / 0.45, plus no removal and the oracle;
``--detection_only`` leaves STEP 3 out.
"""
from __future__ import annotations

import argparse
import sys

from labeltrace.predict import GENERALIST_NAME
from paper import jobs, report
from paper.common import cli_main
from paper.detectors import detector_jobs
from paper.jobs import Context, Job
from paper.scales import describe
from paper.small_datasets import COLUMNS, Setting, setting_jobs, setting_rows

NAME = "transfer"
TITLE = "Paper §4.1, transfer: the CIFAR detectors on Tiny ImageNet, CUB-200 and Caltech-256"
DATASETS = ["tiny_imagenet", "cub_200_2011", "caltech256"]
DETECTORS = ("cifar10_0.2", "cifar100_0.3")
NOISES = (("uniform", 0.2), ("uniform", 0.4), ("flip", 0.2), ("flip", 0.4))
# The noises that are removed and retrained: the detector the README pairs with that noise level, its ratios.
RETRAINED = {("uniform", 0.2): ("cifar10_0.2", (0.15, 0.2, 0.25)),
             ("uniform", 0.4): ("cifar100_0.3", (0.35, 0.4, 0.45))}
HAND_CRAFTED = ("aum", "confidence")


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--detection_only", action="store_true", help="score the runs only, no removal and retraining")
    p.add_argument("--retrain_baselines", action="store_true",
                   help="also remove by AUM at each ratio and retrain (doubles STEP 3)")


def retrain_settings(dataset: str) -> list[Setting]:
    return [Setting(dataset, noise, detector, ratios) for noise, (detector, ratios) in RETRAINED.items()]


def plan(ctx: Context, args: argparse.Namespace) -> list[Job]:
    planned = [job for name in DETECTORS for job in detector_jobs(ctx, name)[0]]
    for dataset in DATASETS:
        profile = ctx.scale.profile(dataset)
        planned += [jobs.step1(ctx, profile, seed, noise) for noise in NOISES for seed in ctx.seeds]
        if not args.detection_only:
            planned += [job for s in retrain_settings(dataset)
                        for job in setting_jobs(ctx, s, args.retrain_baselines)[0]]
    return planned


def scorers(ctx: Context) -> dict[str, str]:
    """The column label of each score and its spec (a checkpoint or ``baseline:<name>``), in table order."""
    specs = {f"detector {name}": str(detector_jobs(ctx, name)[1]) for name in DETECTORS}
    specs["generalist"] = GENERALIST_NAME  # the shipped one that fits each run
    specs.update({f"{name.upper() if name == 'aum' else name} (hand-crafted)": f"baseline:{name}"
                  for name in HAND_CRAFTED})
    return specs


def detection_tables(ctx: Context) -> list[str]:
    """The ROC-AUC and the mAP table: a row per (dataset, noise), a column per score, mean +- std over seeds."""
    specs = scorers(ctx)
    header = ["dataset", "noise", *specs]
    rows: dict[str, list[list[str]]] = {"roc_auc": [], "map": []}
    for dataset in DATASETS:
        profile = ctx.scale.profile(dataset)
        for noise in NOISES:
            values = report.per_seed(ctx.seeds, lambda seed: report.detection_values(
                jobs.td_run_dir(jobs.step1(ctx, profile, seed, noise)), specs))
            for metric in rows:
                columns = [(label, f"{label}/{metric}", ".4f") for label in specs]
                rows[metric].append(report.row_cells([dataset, f"{noise[0]} {noise[1]}"], values, columns))
    return ["### Detection without retraining: ROC-AUC", "", report.markdown(header, rows["roc_auc"]), "",
            "### Detection without retraining: mAP", "", report.markdown(header, rows["map"]), ""]


def table(ctx: Context, args: argparse.Namespace) -> str:
    seeds = " ".join(map(str, ctx.seeds))
    parts = [f"## {TITLE} ({ctx.scale.name} scale)", "",
             f"Seeds {seeds} (mean ± std over seeds where more than one); the detectors trained once on their CIFAR "
             f"runs (at this scale their stand-ins), seed {ctx.detector_seed}, never on these datasets; the "
             "generalist is the shipped checkpoint (its training pool holds runs of digits, Fashion-MNIST and the "
             "shapes: at the proxy and tiny scales its column is not a transfer). Datasets at this scale:",
             describe(ctx.scale, DATASETS), "", *detection_tables(ctx)]
    if not args.detection_only:
        header = ["setting", "method", "remove ratio", *(c[0] for c in COLUMNS)]
        rows = [row for dataset in DATASETS for s in retrain_settings(dataset)
                for row in setting_rows(ctx, s, args.retrain_baselines)]
        parts += ["### Remove and retrain", "", "Accuracy on the test set, which also validates (best = best "
                  "epoch, last = the last epoch).", "", report.markdown(header, rows), ""]
    return "\n".join(parts)


if __name__ == "__main__":
    cli_main(sys.modules[__name__])
