"""§4.1, synthesized noise: detect the mislabeled samples of CIFAR-10 (20% uniform noise) and CIFAR-100 (40%
uniform noise), remove the most suspicious ones at three ratios each, retrain, report.

    bash paper/table_small_datasets.sh <datadir> <result_save_path> [--dry_run] [--seeds 1 2 3] [--scale proxy]

The runs (the original README's loops): STEP 1 on each evaluated setting per seed and on each detector's
training run; STEP 2 ``cifar10_0.2`` and ``cifar100_0.3``; STEP 3 with each detector at its setting's ratios
(CIFAR-10: 0.15, 0.2, 0.25; CIFAR-100: 0.35, 0.4, 0.45), plus no removal and the oracle (exactly the flipped
samples removed) as references; AUM (Pleiss et al. 2020) is scored on the same traces for comparison
(``--retrain_baselines``: also removed and retrained at the same ratios). ``--flip``: CIFAR-100 with 40% flip
noise besides, the same detector and ratios (an extra row; the README's loop is uniform).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from paper import jobs, report
from paper.common import cli_main
from paper.detectors import detector_jobs
from paper.jobs import Context, Job
from paper.scales import describe

NAME = "small_datasets"
TITLE = "Paper §4.1: CIFAR-10/100 with synthesized noise"
DATASETS = ["cifar10", "cifar100"]
BASELINE = "aum"


@dataclass(frozen=True)
class Setting:
    paper_dataset: str
    noise: tuple[str, float]
    detector: str
    remove_ratios: tuple[float, ...]

    @property
    def label(self) -> str:
        return f"{self.paper_dataset} ({self.noise[0]} {self.noise[1]})"


SETTINGS = (Setting("cifar10", ("uniform", 0.2), "cifar10_0.2", (0.15, 0.2, 0.25)),
            Setting("cifar100", ("uniform", 0.4), "cifar100_0.3", (0.35, 0.4, 0.45)))
FLIP_SETTING = Setting("cifar100", ("flip", 0.4), "cifar100_0.3", (0.35, 0.4, 0.45))
COLUMNS: list[report.Column] = [("removed", "removed", ",.0f"), ("ROC-AUC", "roc_auc", ".4f"), ("mAP", "map", ".4f"),
                                ("flipped among removed", "precision", ".4f"), ("noise after", "noise_after", ".4f"),
                                ("test acc (best)", "best", ".4f"), ("test acc (last)", "last", ".4f")]


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--retrain_baselines", action="store_true",
                   help=f"also remove by {BASELINE.upper()} at each ratio and retrain (doubles STEP 3)")
    p.add_argument("--flip", action="store_true", help="also CIFAR-100 with 40%% flip noise (an extra row)")


def settings(args: argparse.Namespace) -> tuple[Setting, ...]:
    return SETTINGS + ((FLIP_SETTING,) if args.flip else ())


def setting_jobs(ctx: Context, setting: Setting, retrain_baselines: bool) -> tuple[list[Job], dict]:
    """The runs of one setting, and by (row label, ratio or None, seed) the summary.json each row reads.

    The references (no removal, the oracle) retrain in the process of the detector's first ratio (fewer
    processes; each retraining keeps its own folder), the other ratios in one process each."""
    planned, detector_file = detector_jobs(ctx, setting.detector)
    profile = ctx.scale.profile(setting.paper_dataset)
    detector = f"detector {setting.detector}"
    rows: dict[tuple[str, float | None, int], Path] = {}
    for seed in ctx.seeds:
        planned.append(jobs.step1(ctx, profile, seed, setting.noise))
        first, *others = setting.remove_ratios
        job = jobs.denoise(ctx, profile, seed, setting.noise, removals=("none", "detector", "oracle"),
                           remove_ratio=first, detector_file=str(detector_file))
        planned.append(job)
        rows[("no removal", None, seed)], rows[(detector, first, seed)], oracle = job.markers
        specs = [(detector, str(detector_file), others)]
        if retrain_baselines:
            specs.append((f"{BASELINE.upper()} (hand-crafted)", f"baseline:{BASELINE}", setting.remove_ratios))
        for label, spec, ratios in specs:
            for ratio in ratios:
                job = jobs.denoise(ctx, profile, seed, setting.noise, removals=("detector",), remove_ratio=ratio,
                                   detector_file=spec)
                rows[(label, ratio, seed)] = job.marker
                planned.append(job)
        rows[("oracle (flipped removed)", None, seed)] = oracle
    return planned, rows


def plan(ctx: Context, args: argparse.Namespace) -> list[Job]:
    return [job for s in settings(args) for job in setting_jobs(ctx, s, args.retrain_baselines)[0]]


def setting_rows(ctx: Context, setting: Setting, retrain_baselines: bool) -> list[list[str]]:
    _, step3 = setting_jobs(ctx, setting, retrain_baselines)
    profile = ctx.scale.profile(setting.paper_dataset)
    td_runs = {seed: jobs.td_run_dir(jobs.step1(ctx, profile, seed, setting.noise)) for seed in ctx.seeds}
    rows = []
    for label, ratio in dict.fromkeys((label, ratio) for label, ratio, _ in step3):
        values = report.per_seed(ctx.seeds, lambda seed: report.step3_values(step3[(label, ratio, seed)]))
        rows.append(report.row_cells([setting.label, label, "-" if ratio is None else str(ratio)], values, COLUMNS))
        if label == "no removal":
            scored = report.per_seed(ctx.seeds, lambda seed: report.baseline_values(td_runs[seed], BASELINE))
            rows.append(report.row_cells([setting.label, f"{BASELINE.upper()} (scores only, no retraining)", "-"],
                                         scored, COLUMNS))
    return rows


def table(ctx: Context, args: argparse.Namespace) -> str:
    header = ["setting", "method", "remove ratio", *(c[0] for c in COLUMNS)]
    rows = [row for s in settings(args) for row in setting_rows(ctx, s, args.retrain_baselines)]
    seeds = " ".join(map(str, ctx.seeds))
    return "\n".join([
        f"## {TITLE} ({ctx.scale.name} scale)", "",
        f"Seeds {seeds} (mean ± std over seeds where more than one); detectors trained on seed "
        f"{ctx.detector_seed}'s runs; accuracy on the test set, which also validates (best = best epoch, last = "
        "the last epoch). Datasets at this scale:", describe(ctx.scale, DATASETS), "",
        report.markdown(header, rows), ""])


if __name__ == "__main__":
    cli_main(sys.modules[__name__])
