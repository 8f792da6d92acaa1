"""§4.3, data debugging: the 5% and 10% most suspicious samples of CUB-200-2011 (20% symmetric noise) get their
ground-truth label back, those of mini-WebVision (WebVision50, real noise) the label of a model trained on the
rest; the corrected labels are written as the files DivideMix / AugDesc read (paper/dividemix_files.py).

    bash paper/data_debugging.sh <datadir> <result_save_path> [--dry_run] [--scale proxy]
        [--webvision_filelist <webvision>/info/train_filelist_google.txt]

The runs: STEP 1 on CUB-200 per seed and the detector's CUB run; the ``cifar100_0.3`` detector (shared with
§4.1/§4.2) fine-tuned on that run (``train_detector.py --resume``, the original README's STEP 2 for CUB);
STEP 1 on WebVision50 (shared with §4.2); no-removal STEP 3 on both (the noisy reference); ``data_debug.py
--retrain`` at 5% and 10% on both. The table gives what the relabelling changed and the test accuracy of the
plain recipe retrained on the corrected labels; DivideMix / AugDesc themselves run outside this repository
(README, "Replicating the paper").
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from labeltrace.errors import fail
from paper import dividemix_files, jobs, report
from paper.common import cli_main
from paper.detectors import detector_jobs
from paper.jobs import Context, Job
from paper.scales import describe

NAME = "data_debugging"
TITLE = "Paper §4.3: data debugging and label files for DivideMix / AugDesc"
DATASETS = ["cub_200_2011", "webvision50"]
RELABEL_RATIOS = (0.05, 0.1)
CUB_NOISE = ("uniform", 0.2)  # DivideMix's 0.2 "sym" CUB setting
COLUMNS: list[report.Column] = [("ROC-AUC", "roc_auc", ".4f"), ("relabelled", "relabelled", ",.0f"),
                                ("changed", "changed", ",.0f"),
                                ("fixed", "fixed", ",.0f"), ("broken", "broken", ",.0f"),
                                ("noise after", "noise_after", ".4f"), ("test acc (best)", "best", ".4f"),
                                ("test acc (last)", "last", ".4f")]


@dataclass(frozen=True)
class Case:
    """One dataset of the section: its detector, where new labels come from, and how its files are named."""

    paper_dataset: str
    detector: str
    source: str  # truth | model
    folder: str  # under dividemix/seed<seed>/


CASES = (Case("cub_200_2011", "cub_200_2011_0.2", "truth", "cub_200_2011"),
         Case("webvision50", "cifar100_0.3", "model", "mini_webvision"))


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--webvision_filelist", type=Path, default=None,
                   help="WebVision's info/train_filelist_google.txt: the repair files then follow its order, as "
                        "DivideMix's WebVision loader reads them")


def _noise(ctx: Context, case: Case) -> tuple[str, float] | None:
    return CUB_NOISE if case.source == "truth" else ctx.scale.profile(case.paper_dataset).noise


def _case_jobs(ctx: Context, case: Case) -> tuple[list[Job], dict]:
    """One dataset's runs, and by (row, seed) the jobs the table reads (row None: the STEP 1 run)."""
    planned, detector_file = detector_jobs(ctx, case.detector)
    profile, noise = ctx.scale.profile(case.paper_dataset), _noise(ctx, case)
    by_row = {}
    for seed in ctx.seeds:
        by_row[(None, seed)] = jobs.step1(ctx, profile, seed, noise)
        by_row[(0.0, seed)] = jobs.denoise(ctx, profile, seed, noise, removals=("none",), remove_ratio=0.0,
                                           detector_file=None)
        for ratio in RELABEL_RATIOS:
            by_row[(ratio, seed)] = jobs.relabel(ctx, profile, seed, noise, ratio=ratio, source=case.source,
                                                 detector_file=str(detector_file))
    return planned + list(by_row.values()), by_row


def plan(ctx: Context, args: argparse.Namespace) -> list[Job]:
    if args.webvision_filelist is not None:  # checked before any run, not after hours of them
        if ctx.scale.name != "paper":
            fail(f"--webvision_filelist: only at the paper scale (the {ctx.scale.name} scale has no WebVision)")
        if not args.webvision_filelist.is_file():
            fail(f"--webvision_filelist: {args.webvision_filelist}: no such file")
    return [job for case in CASES for job in _case_jobs(ctx, case)[0]]


def _file_name(case: Case, ratio: float, noise: tuple[str, float] | None) -> str:
    if case.source == "truth":
        return dividemix_files.noisy_name(noise[1]) if ratio == 0.0 else dividemix_files.restored_name(noise[1], ratio)
    return "(the dataset's own labels)" if ratio == 0.0 else dividemix_files.repair_name(ratio)


def _write_files(ctx: Context, case: Case, by_row: dict, filelist: Path | None) -> None:
    """Each seed's label files under ``dividemix/seed<seed>/<case.folder>/``."""
    noise = _noise(ctx, case)
    for seed in ctx.seeds:
        folder = ctx.save / dividemix_files.OUT_DIR / f"seed{seed}" / case.folder
        if case.source == "truth":
            dividemix_files.write_noisy(jobs.td_run_dir(by_row[(None, seed)]), folder / _file_name(case, 0.0, noise))
        for ratio in RELABEL_RATIOS:
            dividemix_files.write_corrected(by_row[(ratio, seed)].marker.parent,
                                            folder / _file_name(case, ratio, noise),
                                            filelist=filelist if case.source == "model" else None)


def _values(summary_file: Path, ratio: float) -> report.Values:
    s = report.summary(summary_file)
    if ratio == 0.0:  # the STEP 3 run without removal: the noisy labels as they are
        return {"relabelled": 0, "changed": 0, "noise_after": s.get("noise_rate_after"),
                "best": s.get("best_test_accuracy"), "last": s.get("last_test_accuracy")}
    return {"roc_auc": (s.get("detection") or {}).get("roc_auc"), "relabelled": s.get("num_relabelled"),
            "changed": s.get("num_changed"), "fixed": s.get("fixed"),
            "broken": s.get("broken"), "noise_after": s.get("noise_rate_after"),
            "best": s.get("best_test_accuracy"), "last": s.get("last_test_accuracy")}


def table(ctx: Context, args: argparse.Namespace) -> str:
    """Writes the label files, then returns the table."""
    rows = []
    for case in CASES:
        _, by_row = _case_jobs(ctx, case)
        _write_files(ctx, case, by_row, args.webvision_filelist)
        for ratio in (0.0, *RELABEL_RATIOS):
            values = report.per_seed(ctx.seeds, lambda seed: _values(by_row[(ratio, seed)].marker, ratio))
            label = [case.paper_dataset, _file_name(case, ratio, _noise(ctx, case)),
                     "-" if ratio == 0.0 else f"{ratio:.0%} ({case.source})"]
            rows.append(report.row_cells(label, values, COLUMNS))
    header = ["dataset", "label file", "top relabelled (labels from)", *(c[0] for c in COLUMNS)]
    return "\n".join([
        f"## {TITLE} ({ctx.scale.name} scale)", "",
        f"Seeds {' '.join(map(str, ctx.seeds))} (mean ± std where more than one). ROC-AUC: the detector's, where "
        "there is ground truth (CUB's synthesized noise, the proxies). Fixed/broken: wrong labels "
        "made right / right ones made wrong (ground truth needed). Test accuracy: the plain STEP 3 recipe "
        "retrained on those labels (no removal); DivideMix / AugDesc on the label files are run outside this "
        f"repository. Label files: {ctx.save / dividemix_files.OUT_DIR}/seed<seed>/. Datasets at this scale:",
        describe(ctx.scale, DATASETS), "", report.markdown(header, rows), ""])


if __name__ == "__main__":
    cli_main(sys.modules[__name__])
