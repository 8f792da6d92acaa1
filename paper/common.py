"""What every paper script shares: its command line, the plan printed by ``--dry_run`` with time estimates,
the runs executed stage by stage through ``pipeline.multirun`` (concurrently, resumably), and the table.

A table module provides ``NAME`` (its table's file name), ``TITLE``, ``plan(ctx, args) -> list[Job]`` and
``table(ctx, args) -> str`` (the Markdown table, from the finished runs; ``args`` the parsed command line), plus
optional ``add_args(parser)``.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

from core import cli
from labeltrace.errors import fail, run_cli
from labeltrace.io import check_writable, write_text
from paper import timing
from paper.jobs import Context, Job, unique
from paper.scales import SCALES, get_scale

TABLES_DIR = "tables"
LOGS_DIR = "logs"


def get_args_parser(module: ModuleType) -> argparse.ArgumentParser:
    p = cli.ArgumentParser(f"{module.TITLE}: every run of the table, then the table")
    p.add_argument("datadir", help="folder holding <dataset>/ for each dataset (none: the proxy and tiny scales "
                                   "need no files)")
    p.add_argument("result_save_path", help="folder of the run folders, detectors, logs and tables")
    p.add_argument("--scale", default="paper", choices=list(SCALES),
                   help="paper: the paper's datasets and recipe; proxy: the CPU stand-ins (docs/paper_proxy.md); "
                        "tiny: a seconds-long smoke test")
    p.add_argument("--seeds", type=cli.seed, nargs="+", default=None,
                   help="seeds of the evaluated runs, the table's mean +- std (default: 1; proxy: 1 2)")
    p.add_argument("--detector_seed", type=cli.seed, default=0,
                   help="seed of the STEP 1 runs the detectors train on (the original used 1, the scored run itself)")
    p.add_argument("--record", choices=("eval", "train"), default="eval",
                   help="STEP 1's recording: eval (the paper's separate pass) or train (free)")
    p.add_argument("--train_flags", default="", help="extra flags for every STEP 1/STEP 3 run, e.g. '--amp'")
    p.add_argument("--jobs", type=cli.positive_int, default=2, help="runs at once (processes)")
    p.add_argument("--threads", type=cli.positive_int, default=1, help="torch CPU threads per run")
    p.add_argument("--pretrained", default=None,
                   help="a local ImageNet state_dict for the 224-px ResNets (CUB-200, Caltech-256, WebVision50, "
                        "Clothing100K)")
    p.add_argument("--dry_run", action="store_true", help="list the runs with time estimates, run nothing")
    if hasattr(module, "add_args"):
        module.add_args(p)
    return p


def make_context(args: argparse.Namespace) -> Context:
    """The choices of the command line, checked before anything is written."""
    scale = get_scale(args.scale)
    datadir = None if args.datadir == "none" else args.datadir
    if datadir is None and scale.needs_data:
        fail(f"<datadir> none: the {scale.name} scale reads its datasets from <datadir>/<dataset>")
    # A dry run plans the downloads: a <datadir> not made yet is reported with the rest (print_plan).
    if datadir is not None and not Path(datadir).is_dir() and not args.dry_run:
        fail(f"<datadir> {datadir}: no such folder")
    if Path(args.result_save_path).exists() and not Path(args.result_save_path).is_dir():  # --dry_run too
        fail(f"<result_save_path> {args.result_save_path} is a file, not a folder")
    seeds = tuple(args.seeds or scale.seeds)
    if len(set(seeds)) != len(seeds):
        fail(f"--seeds: each seed once, got {' '.join(map(str, seeds))}")
    try:
        train_flags = tuple(shlex.split(args.train_flags))
    except ValueError as exc:  # an unbalanced quote
        fail(f"--train_flags {args.train_flags!r}: {exc}")
    save = Path(args.result_save_path) / scale.subfolder
    return Context(datadir=datadir, save=save, scale=scale, seeds=seeds, detector_seed=args.detector_seed,
                   record=args.record, train_flags=train_flags, pretrained=args.pretrained)


def missing_data(ctx: Context, jobs: list[Job]) -> list[str]:
    """The datasets the runs read that are not under ``<datadir>`` (only the paper scale reads files)."""
    if not ctx.scale.needs_data:
        return []
    names = sorted({job.flags[job.flags.index("--dataset") + 1] for job in jobs if "--dataset" in job.flags
                    and job.script != "train_detector.py"})
    return [name for name in names if not (Path(ctx.datadir) / name).exists()]


def missing_note(ctx: Context, name: str) -> str:
    """Where a missing dataset goes and what its folder holds."""
    from datasets.registry import LAYOUTS

    return f"{ctx.datadir}/{name}/ holding {LAYOUTS.get(name, 'train/<class>/<image> and val/<class>/<image>')}"


def print_plan(module: ModuleType, ctx: Context, jobs: list[Job], say=print) -> None:
    """Every run, whether it is done, and its estimated time on a GPU and on the CPU; then the totals."""
    todo = [job for job in jobs if not job.done()]
    counts = ", ".join(f"{n} {stage}" for stage, n in Counter(j.stage for j in jobs).items())
    retrainings = sum(len(j.markers) for j in jobs if j.stage == "STEP 3")
    counts += f"; {retrainings} STEP 3 retrainings" if retrainings else ""
    say(f"{module.TITLE}, {ctx.scale.name} scale: {len(jobs)} runs ({counts}), "
        f"{len(jobs) - len(todo)} done, {len(todo)} to run; seeds {' '.join(map(str, ctx.seeds))}")
    for stage in stages(jobs):
        say(f"{stage}:")
        for job in (j for j in jobs if j.stage == stage):
            say(f"  [{'done' if job.done() else 'to run'}] GPU {timing.format_seconds(job.seconds.get('gpu')):>8}  "
                f"CPU {timing.format_seconds(job.seconds.get('cpu')):>8}  {job.line}")
    here = timing.current_device()
    for device in timing.DEVICES:
        known = [job.seconds.get(device) for job in todo]
        total = sum(s for s in known if s is not None)
        unknown = sum(s is None for s in known)
        say(f"estimated time to run, one after another, on {timing.DEVICE_NAMES[device]}: "
            f"{timing.format_seconds(total)}" + (f" ({unknown} runs not estimated: speed unknown)" if unknown else "")
            + (" <- the kind of device here" if device == here else ""))
    say("(estimates: paper/timing.py; STEP 2 trains on the CPU; --jobs runs shorten the wall time on several "
        "CPU cores, less on one GPU; the CPU's ResNet figures are float32: a CPU with native bf16, where "
        f"--precision auto uses it, trains them about {timing.CPU_BF16_SPEEDUP}x faster)")
    missing = missing_data(ctx, jobs)
    if missing and not Path(ctx.datadir).is_dir():
        say(f"note: <datadir> {ctx.datadir} does not exist yet; the runs need {len(missing)} datasets in it:")
    elif missing:
        say(f"note: {len(missing)} of the datasets the runs need are not in <datadir> {ctx.datadir} yet:")
    for name in missing:
        say(f"  {missing_note(ctx, name)}")


STAGE_ORDER = ("STEP 1", "STEP 2", "STEP 2 (fine-tune)", "STEP 3", "data debugging")  # each needs the ones before


def stages(jobs: list[Job]) -> list[str]:
    return [stage for stage in STAGE_ORDER if any(job.stage == stage for job in jobs)]


def execute(ctx: Context, jobs: list[Job], *, jobs_at_once: int, threads: int, say=print) -> None:
    """Run the unfinished jobs stage by stage (a stage needs the previous one's files), each stage's runs
    ``jobs_at_once`` at a time through :func:`pipeline.multirun.run_all`."""
    from pipeline.multirun import run_all

    logs = ctx.save / LOGS_DIR
    for stage in stages(jobs):
        todo = [job for job in jobs if job.stage == stage and not job.done()]
        say(f"{stage}: {len(todo)} to run" + (f", {jobs_at_once} at a time (logs: {logs})" if todo else ", all done"))
        if not todo:
            continue
        outcomes = run_all([job.line for job in todo], jobs=jobs_at_once, threads=threads, logs=logs,
                           names=[job.name for job in todo], say=say)
        failed = [job for job, outcome in zip(todo, outcomes) if outcome.code != 0 or not job.done()]
        if failed:
            fail(f"{len(failed)} of {len(todo)} {stage} runs failed (first: {logs / failed[0].name}.log); "
                 "fix the cause and run the same command again to resume")


def main(module: ModuleType, argv: list[str] | None = None) -> str | None:
    """Plan, then (unless ``--dry_run``) run and tabulate; returns the table's Markdown."""
    args = get_args_parser(module).parse_args(argv)
    ctx = make_context(args)
    jobs = unique(module.plan(ctx, args))
    if args.dry_run:
        print_plan(module, ctx, jobs)
        return None
    missing = missing_data(ctx, jobs)
    if missing:
        fail(f"not found: {'; '.join(missing_note(ctx, name) for name in missing)} (--dry_run lists the runs)")
    check_writable(ctx.save, flag="<result_save_path>", folder=True)
    print_plan(module, ctx, jobs)
    execute(ctx, jobs, jobs_at_once=args.jobs, threads=args.threads)
    text = module.table(ctx, args)
    out = ctx.save / TABLES_DIR / f"{module.NAME}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, text)
    print("\n" + text + f"\n(written to {out})")
    return text


def cli_main(module: ModuleType) -> None:
    run_cli(lambda: main(module, sys.argv[1:]))
