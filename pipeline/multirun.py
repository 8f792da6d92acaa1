"""Many runs at once: a list of runner.py settings (or of the other stages' commands), run concurrently and
resumably.

    python multirun.py SETTINGS.txt [--jobs 2] [--threads 1] [--logs runs/multirun_logs] [--dry_run]

``SETTINGS.txt`` holds one run per line, runner.py's flags as on its command line (``#`` starts a comment):

    --dataset digits --noise_type uniform --noise_ratio 0.2 --seed 1 --num_epochs 40 --save runs
    --dataset digits --noise_type flip --noise_ratio 0.4 --seed 1 --num_epochs 40 --save runs

A line may start with the entry point it runs, one of :data:`SCRIPTS` (``runner.py`` when it names none), so
a list can also hold the later stages (``paper/`` builds such lists):

    train_detector.py --dataset digits --r 0.2 --files_path runs/digits_.../computation4td_seed1 --out d.pth.tar
    denoise.py --dataset digits --seed 1 --save runs --detector d.pth.tar --remove_ratio 0.2

Each run is its own ``runner.py`` process with ``--threads`` torch threads, ``--jobs`` at a time (on a CPU,
jobs x threads = the cores: single-thread processes scale better than one process's threads); each writes its
usual run folder, a finished run is not redone and a killed one resumes (STEP 1's own resume), so re-running
the command after a kill finishes the list. The end reports the aggregate training throughput (images per
second over the runs trained) and each run's time.
"""
from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from labeltrace.errors import fail, run_cli
from labeltrace.runfiles import CONFIG_FILE

ROOT = Path(__file__).resolve().parents[1]
# What runner.py prints: "... -> <run_dir>" when it trains, "<run_dir>: already complete ..." when it skips.
_TRAINS = re.compile(r" -> (\S+)$")
_SKIPS = re.compile(r"^(\S+): already complete")
# The entry points a line may name, each with the flags multirun sets on every run of it (its own, not the line's).
SCRIPTS = {"runner.py": ("--threads", "--no_progress"), "denoise.py": ("--threads", "--no_progress"),
           "data_debug.py": ("--threads", "--no_progress"), "train_detector.py": ("--threads",)}
DEFAULT_SCRIPT = "runner.py"
IN_USE = "is in use by another process"  # core/runfolder.locked_run_dir's refusal
LOCK_RETRY_SECONDS = 2.0


@dataclass
class Outcome:
    """What one run did: its exit status, run folder (None if it failed before naming one), seconds, and the
    images it trained on in this invocation (samples x epochs; 0 when it was already complete)."""

    line: str
    code: int
    run_dir: str | None
    seconds: float
    images: int


def split_line(line: str) -> tuple[str, list[str]]:
    """``(script, flags)`` of one settings line: its first word when that is one of :data:`SCRIPTS`, else
    ``runner.py`` and the whole line; a line naming another ``.py`` file is refused."""
    words = shlex.split(line)
    if words and words[0] in SCRIPTS:
        return words[0], words[1:]
    if words and words[0].endswith(".py"):
        fail(f"{words[0]}: multirun runs only {', '.join(SCRIPTS)}")
    return DEFAULT_SCRIPT, words


def command(line: str, threads: int) -> list[str]:
    """The entry point's arguments for one settings line, multirun's own flags added."""
    script, flags = split_line(line)
    own = ["--threads", str(threads)] + (["--no_progress"] if "--no_progress" in SCRIPTS[script] else [])
    return [script, *flags, *own]


def read_settings(path: str | Path) -> list[str]:
    """The flag lines of a settings file (runner.py's, or naming another of :data:`SCRIPTS`), comments and
    blank lines dropped."""
    path = Path(path)
    if not path.is_file():
        fail(f"{path}: no such settings file (one line of runner.py flags per run)")
    lines = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        fail(f"{path}: no runs in it (one line of runner.py flags per run)")
    unique = list(dict.fromkeys(lines))
    if len(unique) < len(lines):  # run twice at once, the second would only wait for the first
        print(f"note: {path}: {len(lines) - len(unique)} repeated line(s) run once")
        lines = unique
    for number, line in enumerate(lines, 1):
        try:
            script, flags = split_line(line)
        except ValueError as exc:  # shlex: an unbalanced quote, a trailing backslash
            fail(f"{path}: run {number} cannot be split into flags ({exc}): {line}")
        own = [flag for flag in SCRIPTS[script] if flag in flags]
        if own:
            fail(f"{path}: run {number} sets {', '.join(own)}: multirun sets them for every run (--threads)")
    return lines


def run_one(line: str, *, threads: int, log: Path) -> Outcome:
    """One process of the line's entry point (``runner.py`` unless it names another), its output into ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    script, *flags = command(line, threads)
    while True:
        with open(log, "w") as handle:  # paths as the user wrote them: the caller's working folder is kept
            code = subprocess.call([sys.executable, str(ROOT / script), *flags], stdout=handle,
                                   stderr=subprocess.STDOUT)
        # Another process (a second multirun on the same list) holds the run folder: not a failure; once it
        # ends, the run is complete (or resumes here).
        if code != 2 or IN_USE not in log.read_text():
            break
        time.sleep(LOCK_RETRY_SECONDS)
    seconds = time.perf_counter() - start
    run_dir, trained = None, False
    names_output = script in ("runner.py", "train_detector.py")  # the others print " -> " beside other files too
    for text in log.read_text().splitlines():
        if (names_output and (match := _TRAINS.search(text))) or (match := _SKIPS.match(text)):
            run_dir, trained = match.group(1), match.re is _TRAINS
            break
    images = 0  # only STEP 1's config.json says how many images it trained on
    if code == 0 and trained and script == DEFAULT_SCRIPT and run_dir and (Path(run_dir) / CONFIG_FILE).is_file():
        config = json.loads((Path(run_dir) / CONFIG_FILE).read_text())
        images = int(config["num_train"]) * int(config["recipe"]["epochs"])
    return Outcome(line, code, run_dir, seconds, images)


def run_all(lines: list[str], *, jobs: int, threads: int, logs: Path, names: list[str] | None = None,
            say=print) -> list[Outcome]:
    """Every line, ``jobs`` at a time; ``names`` (default run-1, run-2, ...) name the log files."""
    names = names or [f"run-{i + 1}" for i in range(len(lines))]
    start = time.perf_counter()

    def one(item: tuple[str, str]) -> Outcome:
        outcome = run_one(item[0], threads=threads, log=logs / f"{item[1]}.log")
        say(f"[{time.perf_counter() - start:6.0f}s] {'ok  ' if outcome.code == 0 else 'FAIL'} "
            f"{outcome.run_dir or item[0]}" + ("" if outcome.code == 0 else f" (log: {logs / item[1]}.log)"))
        return outcome

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        outcomes = list(pool.map(one, zip(lines, names)))
    wall = time.perf_counter() - start
    trained = sum(o.images for o in outcomes)
    say(f"{len(outcomes)} runs in {wall:.0f} s, {jobs} at a time x {threads} threads: "
        f"{trained / wall:,.0f} images/s trained in all; one after another their times add up to "
        f"{sum(o.seconds for o in outcomes):.0f} s")
    return outcomes


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser("run a list of STEP 1 settings (or other stages' commands) concurrently and resumably")
    p.add_argument("settings", help="a text file: one line of runner.py flags per run (or a line naming "
                                    f"one of {', '.join(SCRIPTS)}, then its flags)")
    p.add_argument("--jobs", type=int, default=2, help="runs at once (processes)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (0: torch's default)")
    p.add_argument("--logs", default="runs/multirun_logs", help="folder of the per-run logs")
    p.add_argument("--dry_run", action="store_true", help="print the commands and stop")
    return p


def main(args: argparse.Namespace) -> list[Outcome]:
    if args.jobs < 1:
        fail(f"--jobs: expected at least 1 run at a time, got {args.jobs}")
    if args.threads < 0:
        fail(f"--threads: expected 0 or more (0: torch's default), got {args.threads}")
    if Path(args.logs).exists() and not Path(args.logs).is_dir():
        fail(f"--logs: {args.logs} is a file, not a folder")
    lines = read_settings(args.settings)
    if args.dry_run:
        for line in lines:
            print(shlex.join(command(line, args.threads)))
        return []
    outcomes = run_all(lines, jobs=args.jobs, threads=args.threads, logs=Path(args.logs))
    failed = [o for o in outcomes if o.code != 0]
    if failed:
        fail(f"{len(failed)} of {len(outcomes)} runs failed; their logs are in {args.logs}")
    return outcomes


if __name__ == "__main__":
    run_cli(lambda: main(get_args_parser().parse_args()))
