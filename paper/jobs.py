"""The runs of a paper table as :class:`Job` s: one command line of an entry point each (a line of a
``multirun.py`` settings file), the file that marks it finished, and its estimated time.

Run folders are named by the entry points' own code (the settings parsed by their own parsers), so a table
reads exactly the folders its runs wrote.
"""
from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from labeltrace.runfiles import SUMMARY_FILE
from paper import timing
from paper.scales import Profile, Scale

DETECTORS_DIR = "detectors"


@dataclass(frozen=True)
class Context:
    """What every table's plan is made from: the command line's choices, resolved.

    ``save`` is the scale's own root (``<result_save_path>[/<scale.subfolder>]``); ``seeds`` are the runs a
    table averages over; ``detector_seed`` the seed of the STEP 1 runs detectors are trained on."""

    datadir: str | None
    save: Path
    scale: Scale
    seeds: tuple[int, ...]
    detector_seed: int
    record: str = "eval"
    train_flags: tuple[str, ...] = ()
    pretrained: str | None = None


@dataclass(frozen=True)
class Job:
    """One process: ``script`` (an entry point ``pipeline.multirun`` runs) with ``flags``; finished when each of
    ``markers`` exists (the last holding ``marker_key`` when given: a summary.json written before that part
    ran). A STEP 3 job may retrain several removals (``--removal none,oracle``): one marker each, in order."""

    stage: str
    script: str
    flags: tuple[str, ...]
    markers: tuple[Path, ...]
    name: str
    seconds: dict[str, float | None] = field(default_factory=dict)
    marker_key: str | None = None

    @property
    def marker(self) -> Path:
        """The first (for most jobs the only) file that marks it finished."""
        return self.markers[0]

    @property
    def line(self) -> str:
        return shlex.join([self.script, *self.flags])

    def done(self) -> bool:
        if not all(marker.is_file() for marker in self.markers):
            return False
        return self.marker_key is None or self.marker_key in json.loads(self.markers[-1].read_text())


def _data_flags(ctx: Context, profile: Profile, seed: int, noise: tuple[str, float] | None) -> list[str]:
    """Flags naming one STEP 1 run's data, identical for every stage that reads it; ``noise`` None for a
    real-noise dataset (its labels are kept)."""
    flags = ["--dataset", profile.dataset, *(["--data", ctx.datadir] if ctx.datadir else []), *profile.flags,
             "--seed", str(seed), "--save", str(ctx.save)]
    if noise is not None:
        flags += ["--noise_type", noise[0], "--noise_ratio", str(noise[1])]
    if ctx.pretrained and profile.family.endswith("224px"):
        flags += ["--pretrained", ctx.pretrained]
    return flags


def _retrain_flags(ctx: Context, profile: Profile) -> list[str]:
    """STEP 3's training flags: the profile's epochs; a stand-in for a real-noise dataset drops the LR where the
    real one does (the paper scale's STEP 3 chooses that itself)."""
    from pipeline.retrain import MILESTONES

    milestones = ["--milestones", MILESTONES["large"]] if profile.noise else []
    return ["--num_epochs", str(profile.retrain_epochs), *milestones, *ctx.train_flags]


def _settings(script_parser, flags: list[str]):
    """The :class:`pipeline.settings.RunSettings` an entry point resolves from ``flags``."""
    from pipeline.settings import resolve_settings

    return resolve_settings(script_parser().parse_args(flags))


def _estimate(ctx: Context, profile: Profile, *, n_train: int, epochs: int, record: bool) -> dict[str, float | None]:
    n_eval = profile.n_test + (n_train if record else 0)
    return {d: timing.training_seconds(d, profile.family, n_train=n_train, n_eval=n_eval, epochs=epochs)
            for d in timing.DEVICES}


def step1(ctx: Context, profile: Profile, seed: int, noise: tuple[str, float] | None) -> Job:
    """STEP 1 (``runner.py``): the traces of one dataset, noise and seed."""
    from pipeline.generate import get_args_parser

    flags = [*_data_flags(ctx, profile, seed, noise), "--num_epochs", str(profile.step1_epochs),
             "--record", ctx.record, *ctx.train_flags]
    run_dir = _settings(get_args_parser, flags).td_run_dir
    return Job("STEP 1", "runner.py", tuple(flags), (run_dir / SUMMARY_FILE,), _log_name(run_dir, ctx.save),
               _estimate(ctx, profile, n_train=profile.n_train, epochs=profile.step1_epochs,
                         record=ctx.record == "eval"))


def td_run_dir(job: Job) -> Path:
    """The STEP 1 run folder of a :func:`step1` job."""
    return job.marker.parent


def detector(ctx: Context, name: str, profile: Profile, runs: list[Job], *, resume: Path | None = None) -> Job:
    """STEP 2 (``train_detector.py``): the detector ``<name>_lstm_detector.pth.tar`` (the paper's name, e.g.
    ``cifar10_0.2``, at every scale) on the STEP 1 ``runs`` (made with ``profile``): the paper's input
    (``prob``, no anchor), or fine-tuned from ``resume`` (its input kept)."""
    dataset, ratio = name.rsplit("_", 1)
    out = ctx.save / DETECTORS_DIR / f"{name}_lstm_detector.pth.tar"
    flags = ["--dataset", dataset, "--r", ratio, *[f for job in runs for f in ("--files_path", str(td_run_dir(job)))],
             "--epochs", str(ctx.scale.detector_epochs), "--out", str(out)]
    flags += ["--resume", str(resume)] if resume else ["--features", "prob", "--no-anchor"]
    seconds = timing.detector_seconds(traces=profile.n_train * len(runs), length=profile.step1_epochs,
                                      epochs=ctx.scale.detector_epochs)
    return Job("STEP 2 (fine-tune)" if resume else "STEP 2", "train_detector.py", tuple(flags), (out,),
               f"detector_{name}", {d: seconds for d in timing.DEVICES})


def denoise(ctx: Context, profile: Profile, seed: int, noise: tuple[str, float] | None, *,
            removals: tuple[str, ...], remove_ratio: float, detector_file: str | None) -> Job:
    """STEP 3 (``denoise.py``): the ``removals`` (``detector``, ``random``, ``oracle``, ``none``) of one run,
    each retrained, in one process; ``markers[i]`` is the summary.json of ``removals[i]``."""
    from pipeline.denoise import STAGE, get_args_parser, run_folder
    from labeltrace.scoring import detector_name

    flags = [*_data_flags(ctx, profile, seed, noise), *_retrain_flags(ctx, profile), "--removal", ",".join(removals),
             "--remove_ratio", str(remove_ratio), *(["--detector", detector_file] if detector_file else [])]
    root = _settings(get_args_parser, flags).stage_root(STAGE)
    name = detector_name(detector_file) if detector_file else None
    folders = [run_folder(root, removal, remove_ratio, name) for removal in removals]
    removed = int(profile.n_train * remove_ratio)  # the oracle's too, for the estimate
    each = [_estimate(ctx, profile, n_train=profile.n_train - (0 if r == "none" else removed),
                      epochs=profile.retrain_epochs, record=False) for r in removals]
    seconds = {d: None if any(e[d] is None for e in each) else sum(e[d] for e in each) for d in timing.DEVICES}
    log = f"{_log_name(root, ctx.save)}__{name or 'references'}__{'+'.join(removals)}{remove_ratio}"
    return Job("STEP 3", "denoise.py", tuple(flags), tuple(f / SUMMARY_FILE for f in folders), log, seconds)


def relabel(ctx: Context, profile: Profile, seed: int, noise: tuple[str, float] | None, *, ratio: float,
            source: str, detector_file: str) -> Job:
    """Data debugging (``data_debug.py --retrain``): relabel the top ``ratio`` (``truth`` or ``model`` labels),
    write the corrected labels, retrain on them; ``model`` first retrains without those samples (STEP 3)."""
    from pipeline.data_debug import get_args_parser, relabel_folder
    from labeltrace.scoring import detector_name

    flags = [*_data_flags(ctx, profile, seed, noise), *_retrain_flags(ctx, profile), "--detector", detector_file,
             "--relabel_ratio", str(ratio), "--label_source", source, "--retrain"]
    folder = relabel_folder(_settings(get_args_parser, flags), detector_name(detector_file), ratio, source)
    one = _estimate(ctx, profile, n_train=profile.n_train, epochs=profile.retrain_epochs, record=False)
    seconds = {d: (None if s is None else s * (2 if source == "model" else 1)) for d, s in one.items()}
    return Job("data debugging", "data_debug.py", tuple(flags), (folder / SUMMARY_FILE,), _log_name(folder, ctx.save),
               seconds, marker_key="best_test_accuracy")


def _log_name(folder: Path, save: Path) -> str:
    return folder.relative_to(save).as_posix().replace("/", "__")


def unique(jobs: list[Job]) -> list[Job]:
    """``jobs`` without repeats (tables share runs: the same markers are the same run), first order kept."""
    seen: dict[tuple[Path, ...], Job] = {}
    for job in jobs:
        seen.setdefault(job.markers, job)
    return list(seen.values())
