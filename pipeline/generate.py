"""STEP 1: corrupt a dataset's labels, train a classifier, and record every training sample's softmax per epoch.

    python runner.py --dataset digits --noise_type uniform --noise_ratio 0.2 --num_epochs 40 --save runs
    torchrun --standalone --nproc_per_node 2 runner.py --dataset digits --num_epochs 40 --save runs  # DDP
    bash generate_td.sh <datadir> <dataset> <seed> <noise_ratio> <noise_type> <net_type> <depth> <save> [flags]
"""
from __future__ import annotations

import argparse
import collections
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core import distributed
from core.errors import fail
from core.fit import RECORD_MODES, FitData, Recipe, completed_summary, fit, recipe_dict, write_valid_results
from core.io import torch_save, write_json
from core.runfolder import check_resumable, prepare_run_dir
from core.seed import noise_rng, seed_everything
from datasets.noise import canonical_noise_type, corrupt_labels
from datasets.registry import DATASETS, LARGE, load_dataset
from models.registry import MODELS, build_model
from pipeline.feeds import LOADERS, eval_batch_size, make_feed, place_model, select
from pipeline.paths import td_run_dir
from pipeline.runtime import add_runtime_args, pick_device, set_threads

DEFAULT_NET = {"digits": ("cnn", 3), "fashion_mnist": ("cnn", 3), "tiny_imagenet": ("resnet", 32),
               "cub_200_2011": ("resnet", 34), "caltech256": ("resnet", 34), "webvision50": ("resnet", 50),
               "clothing100k": ("resnet", 50)}


def add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=None, help="data directory holding <dataset>/ (imagefolder: the tree itself)")
    p.add_argument("--dataset", default="digits", help=f"one of {', '.join(sorted(DATASETS))}")
    p.add_argument("--seed", type=int, default=0, help="seed of weights, batch order and augmentation")
    p.add_argument("--split_seed", type=int, default=None, help="seed of the noise and split (default: --seed)")
    p.add_argument("--noise_ratio", type=float, default=0.2, help="fraction of labels to corrupt, in [0, 1)")
    p.add_argument("--noise_type", default="uniform", help="uniform (=sym), flip (=asym) or instance (image-dependent)")
    p.add_argument("--net_type", default=None, help=f"one of {', '.join(sorted(MODELS))} (default: per dataset)")
    p.add_argument("--depth", type=int, default=None, help="network depth (default: per dataset)")
    p.add_argument("--save", default="runs", help="folder under which run folders are made")
    p.add_argument("--max_train", type=int, default=None, help="use the first N training samples only")
    p.add_argument("--max_test", type=int, default=None, help="use the first N test samples only")
    p.add_argument("--image_size", type=int, default=None, help="folder datasets: training resolution")
    p.add_argument("--pretrained", default=None, help="local state_dict file to initialise the network from")


def add_train_args(p: argparse.ArgumentParser, *, epochs: int, milestones: str, batch_size: int) -> None:
    p.add_argument("--num_epochs", type=int, default=epochs)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--wd", type=float, default=1e-4, help="weight decay")
    p.add_argument("--batch_size", type=int, default=batch_size)
    p.add_argument("--milestones", default=milestones, help="comma-separated fractions of training where LR x0.1")
    p.add_argument("--loader", choices=LOADERS, default="fast",
                   help="fast: in-memory tensors, batch augmentation on the device; standard: DataLoader")
    add_runtime_args(p)


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser("STEP 1: corrupt labels, train, record training dynamics", add_help=True)
    add_data_args(p)
    add_train_args(p, epochs=200, milestones="0.5,0.75", batch_size=128)
    p.add_argument("--num_valid", type=int, default=0, help="hold out N training samples (0: the test set validates)")
    p.add_argument("--record", choices=RECORD_MODES, default="train",
                   help="train: the training forward pass's softmax (free; as good or better in docs/benchmark_grid.md); "
                        "eval: a separate eval-mode pass per epoch (the paper's)")
    p.add_argument("--no_record_augment", action="store_true",
                   help="record without the training augmentation (the paper's code augments)")
    return p


def resolve_net(args: argparse.Namespace) -> tuple[str, int]:
    net, depth = DEFAULT_NET.get(args.dataset, ("resnet", 32))
    return args.net_type or net, args.depth or (depth if (args.net_type or net) == net else 32)


def parse_recipe(args: argparse.Namespace) -> Recipe:
    try:
        milestones = tuple(float(m) for m in str(args.milestones).split(",") if m.strip())
    except ValueError:
        fail(f"--milestones: expected comma-separated fractions like 0.5,0.75, got {args.milestones!r}")
    if args.num_epochs < 1:
        fail(f"--num_epochs: expected a positive number, got {args.num_epochs}")
    if args.batch_size < 1:
        fail(f"--batch_size: expected a positive number, got {args.batch_size}")
    return Recipe(epochs=args.num_epochs, lr=args.lr, momentum=args.momentum, weight_decay=args.wd,
                  milestones=milestones)


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
    noise_type = canonical_noise_type(args.noise_type)
    if not 0.0 <= args.noise_ratio < 1.0:
        fail(f"--noise_ratio: expected a value in [0, 1), got {args.noise_ratio}")
    net_type, depth = resolve_net(args)
    if net_type not in MODELS:
        fail(f"--net_type: unknown network {net_type!r}; valid: {', '.join(sorted(MODELS))}")
    recipe = parse_recipe(args)
    bundle = load_dataset(args.dataset, args.data, image_size=args.image_size).subset(args.max_train, args.max_test)
    split_seed = args.seed if args.split_seed is None else args.split_seed
    true = bundle.train.targets
    if args.dataset in LARGE:  # real noise: the labels are what they are
        assigned, flipped = true.copy(), np.zeros(len(true), bool)
    else:
        images = bundle.train.images if bundle.in_memory else None  # instance noise reads the images
        noisy = corrupt_labels(true, ratio=args.noise_ratio, noise_type=noise_type,
                               num_classes=bundle.num_classes, split_seed=split_seed, images=images)
        assigned, flipped = noisy.assigned, noisy.flipped
    train_idx, valid_idx = split_indices(len(true), args.num_valid, split_seed)
    run_dir = td_run_dir(args.save, args.dataset, net_type, depth, args.noise_ratio, noise_type, args.seed)
    config: dict[str, Any] = {
        **{k: v for k, v in vars(args).items() if k not in ("noise_type", "net_type", "depth", "split_seed")},
        "noise_type": noise_type, "net_type": net_type, "depth": depth, "split_seed": split_seed,
        "num_classes": bundle.num_classes, "num_train": int(len(train_idx)), "num_valid_samples":
        int(len(valid_idx)) or len(bundle.test), "realised_noise_rate": float(flipped[train_idx].mean()),
        "recipe": recipe_dict(recipe), "device_used": str(device), "threads_used": threads, "world_size": dist.world,
        "dataset_path": bundle.info.get("path"), "stage": "computation4td"}
    if completed_summary(run_dir, config, args.restart) is not None:
        say(f"{run_dir}: already complete (add --restart to run it again)")
        return run_dir
    if not args.restart:
        check_resumable(run_dir, config)  # every rank, before _prepare rewrites config.json and metadata.pth
    if dist.is_main:
        _prepare(run_dir, config, train_idx, valid_idx, true, assigned, flipped)
    dist.barrier()
    say(f"{args.dataset}: {len(train_idx)} train, {config['num_valid_samples']} valid, {bundle.num_classes} classes;"
          f" {noise_type} noise {args.noise_ratio} -> realised {config['realised_noise_rate']:.4f}; "
          f"{net_type}{depth} on {device}, {threads} threads" + (f" x {dist.world} processes" if dist.active else "")
        + f" -> {run_dir}")

    seed_everything(args.seed)
    model = build_model(net_type, depth, num_classes=bundle.num_classes, in_channels=bundle.in_channels,
                        image_size=bundle.image_size, pretrained=args.pretrained)
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
    amp = args.amp and device.type == "cuda"
    start = time.perf_counter()
    summary = fit(model, data, recipe=recipe, run_dir=run_dir, seed=args.seed, config=config, record=args.record,
                  amp=amp, restart=args.restart, progress=not args.no_progress and dist.is_main, log=say, dist=dist,
                  compile_backend=args.compile,
                  cuda_graphs=not args.no_cuda_graphs)
    best_error = write_valid_results(model, run_dir, data.valid, valid_labels, valid_ids, amp=amp, dist=dist)
    recorder = summary.pop("recorder")
    if not dist.is_main:
        return run_dir
    if recorder is not None:
        recorder.write_traces(run_dir / "training_dynamics.npz", assigned[train_idx])
        recorder.close()
    summary.update(best_valid_error=best_error, wall_seconds=time.perf_counter() - start)
    # summary.json marks the run complete; only then may the raw traces go (a kill before keeps them).
    write_json(run_dir / "summary.json", summary)
    (run_dir / "td_raw.npy").unlink(missing_ok=True)
    print(f"done: best valid error {best_error:.2%} (epoch {summary['best_epoch']}); traces in "
          f"{run_dir / 'training_dynamics.npz'}")
    return run_dir


def _prepare(run_dir: Path, config: dict[str, Any], train_idx: np.ndarray, valid_idx: np.ndarray, true: np.ndarray,
             assigned: np.ndarray, flipped: np.ndarray) -> None:
    prepare_run_dir(run_dir, config)
    torch_save(collections.OrderedDict(
        train_indices=torch.as_tensor(train_idx), valid_indices=torch.as_tensor(valid_idx),
        true_targets=torch.as_tensor(true), assigned_targets=torch.as_tensor(assigned),
        label_flipped=torch.as_tensor(flipped)), run_dir / "metadata.pth")
