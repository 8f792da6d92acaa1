"""STEP 1: corrupt a dataset's labels, train a classifier, and record every training sample's softmax per epoch.

    python runner.py --dataset digits --noise_type uniform --noise_ratio 0.2 --num_epochs 40 --save runs
    torchrun --standalone --nproc_per_node 2 runner.py --dataset digits --num_epochs 40 --save runs  # DDP
    bash generate_td.sh <datadir> <dataset> <seed> <noise_ratio> <noise_type> <net_type> <depth> <save> [flags]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core import cli, distributed
from labeltrace.errors import fail
from core.committed import RESTART, completed_summary, finish_run, resume_point
from core.fit import RECORD_MODES, FitData, fit, recipe_dict, write_valid_results
from labeltrace.recorder import DynamicsRecorder
from labeltrace.io import write_json
from labeltrace.neighbours import DEFAULT_K, SEARCHES
from labeltrace.recording import RESTART as RECORDER_RESTART
from labeltrace.runfiles import (RECORDER_STATE_FILE, RESUME_FILE, SPLIT_FILE, SUMMARY_FILE, TRACES_FILE,
                                 write_metadata)
from core.runfolder import locked_run_dir, prepare_run_dir
from core.seed import seed_everything
from datasets.label_files import labels_sha1, read_bundle_labels
from datasets.base import DatasetBundle
from datasets.noise import corrupt_labels, inject_labels, noise_rng
from datasets.registry import load_dataset
from models.registry import build_model
from pipeline.loaders import eval_batch_size, make_feed, place_model, select
from labeltrace.cli import set_threads
from pipeline.runtime import fit_runtime, pick_device, resolve_precision
from pipeline.recipe import add_data_args, add_train_args, make_recipe
from pipeline.settings import RunSettings, check_image_size_applies, resolve_settings



def get_args_parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser("STEP 1: corrupt labels, train, record training dynamics", add_help=True)
    add_data_args(p)
    add_train_args(p, epochs=200, milestones="0.5,0.75", batch_size=128)
    p.add_argument("--num_valid", type=int, default=0, help="hold out N training samples (0: the test set validates)")
    p.add_argument("--record", choices=RECORD_MODES, default="train",
                   help="train: the training forward pass's softmax (free; as good or better in docs/benchmark_grid.md); "
                        "eval: a separate eval-mode pass per epoch (the paper's)")
    p.add_argument("--no_record_augment", action="store_true",
                   help="record without the training augmentation (the paper's code augments)")
    p.add_argument("--neighbours", type=int, default=None, metavar="K",
                   help=f"also record, from the same pass, the fraction of each sample's K nearest neighbours in the "
                        f"penultimate features that share its label, which the generalist detector reads (default "
                        f"{DEFAULT_K}; 0 off, and off by default with --compile or --record none; "
                        f"labeltrace/neighbours.py)")
    p.add_argument("--neighbour_search", choices=SEARCHES, default="auto",
                   help="the nearest-neighbour search of --neighbours: exact, ivf (faiss's inverted-file index, "
                        "approximate; pip install faiss-cpu) or auto (exact up to about 50,000 samples on the CPU "
                        "and on a GPU, ivf beyond; docs/neighbours_scale.md)")
    return p


def split_indices(n: int, num_valid: int, split_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training-set positions for training and for validation (empty when the test set validates)."""
    if not 0 <= num_valid < n:
        fail(f"--num_valid: expected 0..{n - 1}, got {num_valid}")
    if num_valid == 0:
        return np.arange(n), np.arange(0)
    perm = noise_rng(split_seed + 1).permutation(n)
    return np.sort(perm[num_valid:]), np.sort(perm[:num_valid])


def main(args: argparse.Namespace) -> Path:
    """Run STEP 1; under ``torchrun`` every rank runs this and rank 0 alone writes files."""
    threads = set_threads(args.threads)
    dist, device = distributed.init_from_env(pick_device(args.device))
    # Resolved once, before the configuration is made: the run folder records what was used, not "auto".
    args = cli.with_values(args, precision=resolve_precision(args.precision, device, log=_say(dist)))
    try:
        run_dir = _main(args, threads, dist, device)
        dist.barrier()  # no rank tears the group down while rank 0 is still writing the run folder
        return run_dir
    finally:
        distributed.shutdown()


def _say(dist: distributed.Dist):
    return print if dist.is_main else (lambda *a, **k: None)


def _main(args: argparse.Namespace, threads: int, dist: distributed.Dist, device: torch.device) -> Path:
    say = _say(dist)
    plan = _plan(args, threads, dist, device)
    settings, run_dir, config, bundle = plan["settings"], plan["run_dir"], plan["config"], plan["bundle"]
    seed_everything(args.seed)
    # Built before the run folder is touched: a bad --depth or --pretrained then writes nothing.
    model = build_model(settings.net_type, settings.depth, num_classes=bundle.num_classes,
                        in_channels=bundle.in_channels, image_size=bundle.image_size, pretrained=args.pretrained,
                        log=say)
    with locked_run_dir(run_dir, lock=dist.is_main):
        outputs = (TRACES_FILE,) if args.record != "none" else ()
        if completed_summary(run_dir, config, args.restart, outputs) is not None:
            say(f"{run_dir}: already complete (add --restart to run it again)")
            return run_dir
        # Every rank, before _prepare rewrites config.json and metadata.pth: a run that cannot resume (other
        # settings, lost or damaged traces) is refused with the folder untouched.
        state = resume_point(run_dir, config, restart=args.restart, epochs=config["recipe"]["epochs"], model=model)
        plan["recorder"] = _open_recorder(run_dir, plan, args, committed=state["epoch"] if state else 0)
        if dist.is_main:
            _prepare(run_dir, config, plan)
        dist.barrier()
        if bundle.info.get("image_size_choice"):
            say(f"image size: {bundle.info['image_size_choice']}")
        say(f"{args.dataset}: {config['num_train']} train, {config['num_valid_samples']} valid, "
            f"{bundle.num_classes} classes; {config['noise_type']} noise {settings.noise_ratio} -> realised "
            f"{config['realised_noise_rate']:.4f}; {settings.net_type}{settings.depth} on {device}, {threads} threads, "
            f"{args.precision}"
            + (f" x {dist.world} processes" if dist.active else "") + f" -> {run_dir}")
        return _train(args, plan, model, dist, device)


def _plan(args: argparse.Namespace, threads: int, dist: distributed.Dist, device: torch.device) -> dict[str, Any]:
    """Every flag checked, the dataset loaded and its labels corrupted, the run folder and configuration named;
    nothing written."""
    settings = resolve_settings(args)
    neighbours, k_given = args.neighbours, args.neighbours is not None
    if neighbours is None:  # resolved here, so config.json records what was used
        neighbours = 0 if args.compile or args.record == "none" else DEFAULT_K
    if neighbours < 0:
        fail(f"--neighbours: expected K >= 0, got {neighbours}")
    if neighbours and args.record == "none":
        fail(f"--neighbours {neighbours}: the agreement reads the features of a recorded pass, and --record none "
             "records none: give --neighbours 0, or --record train or eval")
    if neighbours and args.compile:
        fail("--neighbours: reads the features through a hook that a torch.compile'd model does not call; "
             "drop --compile or give --neighbours 0")
    args = cli.with_values(args, noise_ratio=settings.noise_ratio, neighbours=neighbours)  # what config.json records
    recipe = make_recipe(args, args.milestones)
    full = load_dataset(args.dataset, args.data, image_size=args.image_size)
    check_image_size_applies(args.dataset, args.image_size, full.image_size)
    bundle = full.subset(args.max_train, args.max_test)
    true = bundle.train.targets
    assigned, flipped = _draw_labels(settings, full, bundle)
    train_idx, valid_idx = split_indices(len(true), args.num_valid, settings.split_seed)
    if len(train_idx) < bundle.num_classes:
        if not args.num_valid:  # --max_train (or a tiny dataset) left too few, not the validation split
            fail(f"--max_train {args.max_train}: keeps {len(train_idx)} samples to train on, fewer than the "
                 f"{bundle.num_classes} classes")
        fail(f"--num_valid {args.num_valid}: leaves {len(train_idx)} of {len(true)} samples to train on, fewer than "
             f"the {bundle.num_classes} classes")
    if neighbours > len(train_idx) - 1:
        neighbours = _too_many_neighbours(neighbours, len(train_idx), given=k_given, say=_say(dist))
        args = cli.with_values(args, neighbours=neighbours)
    config: dict[str, Any] = {
        **{k: v for k, v in vars(args).items() if k not in ("noise_type", "net_type", "depth", "split_seed")},
        "noise_type": settings.noise_type, "net_type": settings.net_type, "depth": settings.depth,
        "split_seed": settings.split_seed,
        # The resolution it trains at, not the flag (None = chosen from the images): config.json alone repeats it.
        "image_size": bundle.image_size,
        "num_classes": bundle.num_classes, "num_train": int(len(train_idx)), "num_valid_samples":
        int(len(valid_idx)) or len(bundle.test), "realised_noise_rate": float(flipped[train_idx].mean()),
        "recipe": recipe_dict(recipe), "device_used": str(device), "threads_used": threads, "world_size": dist.world,
        "dataset_path": bundle.info.get("path"), "stage": "computation4td"}
    if settings.labels_file:  # the digest makes an edited labels file another run, refused in this folder
        config.update(labels_sha1=labels_sha1(assigned),
                      labels_changed_rate=float((assigned != true)[train_idx].mean()))
    injected = None
    if settings.calibrate:  # on top of the labels above, whose own noise rate config.json keeps
        assigned, injected = inject_labels(assigned, true, ratio=settings.calibrate, rows=train_idx,
                                           num_classes=bundle.num_classes, split_seed=settings.split_seed)
        flipped = flipped | injected
        config["injected"] = int(injected.sum())
    return dict(settings=settings, run_dir=settings.td_run_dir, config=config, bundle=bundle, recipe=recipe,
                train_idx=train_idx, valid_idx=valid_idx, true=true, assigned=assigned, flipped=flipped,
                injected=injected)


def _open_recorder(run_dir: Path, plan: dict[str, Any], args: argparse.Namespace, *,
                   committed: int) -> DynamicsRecorder | None:
    """The recorder of the run's traces (none with ``--record none``), at the ``committed`` epochs of
    ``resume.pth``: its working files are checked (a one-line error names what is damaged or lost), and an epoch
    it finished after the last ``resume.pth`` (a kill between the two) is forgotten, to be replayed."""
    if args.record == "none":
        return None
    rows = plan["train_idx"]
    try:
        recorder = DynamicsRecorder(run_dir, labels=plan["assigned"][rows], true_labels=plan["true"][rows],
                                    num_classes=plan["bundle"].num_classes, layout="full",
                                    neighbours=plan["config"]["neighbours"], neighbour_search=args.neighbour_search,
                                    restart=not committed, shared_folder=True)
    except ValueError as exc:  # the recorder's advice names its keyword; this command's user has the flag
        fail(str(exc).replace(RECORDER_RESTART, RESTART))
    if recorder.num_epochs not in (committed, committed + 1):
        fail(f"{run_dir / RECORDER_STATE_FILE}: commits {recorder.num_epochs} epochs of traces but {RESUME_FILE} "
             f"commits {committed}: the traces of the {committed} committed epochs are lost; {RESTART}")
    recorder.rewind(committed)
    return recorder


def _too_many_neighbours(k: int, num_train: int, *, given: bool, say) -> int:
    """K nearest neighbours among only ``num_train - 1`` other training samples: cut to them, the agreement
    would be the class frequency while config.json records K. A K given is refused; the default records
    none, and says so (config.json then records 0)."""
    if given:
        fail(f"--neighbours {k}: more neighbours than the {num_train - 1} other training samples: give "
             f"--neighbours {num_train - 1} or less (0: none)")
    say(f"note: --neighbours (default {k}) needs more than the {num_train} training samples: no neighbour "
        f"agreement recorded (give --neighbours {num_train - 1} or less to record it)")
    return 0


def _draw_labels(settings: RunSettings, full: DatasetBundle, bundle: DatasetBundle) -> tuple[np.ndarray, np.ndarray]:
    """The training labels (N,) and which differ from the true ones (N,), bool: a labels file's, the data's own
    (real noise), or synthetic noise drawn from ``--split_seed``."""
    true = bundle.train.targets
    if settings.labels_file:  # the file covers the full training set; --max_train keeps its first rows
        assigned = read_bundle_labels(full, settings.labels_file, settings.labels_key)[:len(true)]
        return assigned, (assigned != true if settings.has_ground_truth else np.zeros(len(true), bool))
    if settings.real_noise:  # the labels are what they are
        return true.copy(), np.zeros(len(true), bool)
    images = bundle.train.images if bundle.in_memory else None  # instance noise reads the images
    noisy = corrupt_labels(true, ratio=settings.noise_ratio, noise_type=settings.noise_type,
                           num_classes=bundle.num_classes, split_seed=settings.split_seed, images=images)
    return noisy.assigned, noisy.flipped


def _train(args: argparse.Namespace, plan: dict[str, Any], model: torch.nn.Module, dist: distributed.Dist,
           device: torch.device) -> Path:
    """Train in the prepared run folder, then write results_valid.csv, the traces and summary.json."""
    say, run_dir, bundle = _say(dist), plan["run_dir"], plan["bundle"]
    train_idx, valid_idx, assigned = plan["train_idx"], plan["valid_idx"], plan["assigned"]
    model = place_model(model, loader=args.loader, device=device)
    train_split = select(bundle.train, train_idx)
    if len(valid_idx):
        valid_split, valid_labels, valid_ids = select(bundle.train, valid_idx), assigned[valid_idx], valid_idx
    else:
        valid_split, valid_labels, valid_ids = bundle.test, bundle.test.targets, np.arange(len(bundle.test))
    feed = dict(batch_size=args.batch_size, loader=args.loader, device=device, num_workers=args.num_workers,
                rank=dist.rank, world=dist.world)
    data = FitData(
        train=make_feed(train_split, bundle, train=True, shuffle=True, **feed), train_labels=assigned[train_idx],
        valid=make_feed(valid_split, bundle, train=False, shuffle=False, **{**feed, "batch_size": eval_batch_size(device)}),
        valid_labels=valid_labels, num_classes=bundle.num_classes,
        record=make_feed(train_split, bundle, train=not args.no_record_augment, shuffle=False,
                         **{**feed, "batch_size": eval_batch_size(device)}))
    runtime = fit_runtime(args, device, dist)
    start = time.perf_counter()
    recorder = plan["recorder"]
    result = fit(model, data, recipe=plan["recipe"], run_dir=run_dir, seed=args.seed, config=plan["config"],
                 record=args.record, recorder=recorder, restart=args.restart, runtime=runtime, log=say)
    best_error = write_valid_results(model, run_dir, data.valid, valid_labels, valid_ids, runtime=runtime)
    if recorder is not None:  # every rank: the save ends at a barrier of the group
        recorder.save(keep_working_files=True)
    if dist.is_main:
        summary = {**result.summary(), "best_valid_error": best_error, "wall_seconds": time.perf_counter() - start}
        # summary.json marks the run complete; only then may the working files go (a kill before keeps them).
        write_json(run_dir / SUMMARY_FILE, summary)
    if recorder is not None:
        recorder.save()  # no epoch since the last save: it removes the working files alone
    if not dist.is_main:
        return run_dir
    finish_run(run_dir)
    print(f"done: best valid error {best_error:.2%} (epoch {summary['best_epoch']}); traces in "
          f"{run_dir / TRACES_FILE}")
    return run_dir


def _prepare(run_dir: Path, config: dict[str, Any], plan: dict[str, Any]) -> None:
    prepare_run_dir(run_dir, config)
    if "split" in plan["bundle"].info:  # a split made here (Caltech-256 has none of its own): which images tested
        write_json(run_dir / SPLIT_FILE, plan["bundle"].info["split"])
    write_metadata(run_dir, train_indices=plan["train_idx"], valid_indices=plan["valid_idx"], true_targets=plan["true"],
                   assigned_targets=plan["assigned"], label_flipped=plan["flipped"], label_injected=plan["injected"])
