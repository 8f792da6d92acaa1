"""The settings of one run, resolved once from the parsed flags and shared by STEP 1, STEP 3 and data debugging,
so each stage names the same run folders and treats real noise the same way.

The numeric ranges are checked by the flags' ``type=`` validators (:mod:`core.cli`) while parsing; what is
resolved here needs more than one flag or a lookup: the noise type's aliases, the per-dataset network, and
whether the dataset's noise is real.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from core.errors import fail
from datasets.noise import canonical_noise_type
from datasets.registry import LARGE
from models.registry import MODELS
from pipeline.paths import experiment_dir, td_run_dir

DEFAULT_NET = {"digits": ("cnn", 3), "fashion_mnist": ("cnn", 3), "tiny_imagenet": ("resnet", 32),
               "cub_200_2011": ("resnet", 34), "caltech256": ("resnet", 34), "webvision50": ("resnet", 50),
               "clothing100k": ("resnet", 50)}
FALLBACK_NET = ("resnet", 32)  # CIFAR and image folders below 128 px


@dataclass(frozen=True)
class RunSettings:
    """``real_noise``: a large real-noise dataset (webvision50, clothing100k): its labels are kept as they are
    (no ground truth), its folders drop the noise part, and STEP 3 drops the LR twice. ``noise_type`` is the
    canonical name (``sym`` -> ``uniform``), ``split_seed`` the seed of the noise and split (``--seed`` unless
    given)."""

    save: str
    dataset: str
    real_noise: bool
    noise_type: str
    noise_ratio: float
    net_type: str
    depth: int
    seed: int
    split_seed: int

    @property
    def experiment_dir(self) -> Path:
        return experiment_dir(self.save, self.dataset, self.net_type, self.depth, self.noise_ratio, self.noise_type)

    @property
    def td_run_dir(self) -> Path:
        """STEP 1's run folder."""
        return td_run_dir(self.save, self.dataset, self.net_type, self.depth, self.noise_ratio, self.noise_type,
                          self.seed)

    def stage_root(self, stage: str) -> Path:
        """The folder of a STEP 3 stage (``prune4retrain``, ``relabel``); a real-noise experiment folder holds
        no noise part, so the network names the stage's folder, as in the paper's code."""
        prefix = f"{self.net_type}{self.depth}_" if self.real_noise else ""
        return self.experiment_dir / f"{prefix}{stage}_seed{self.seed}"


def resolve_net(dataset: str, net_type: str | None, depth: int | None) -> tuple[str, int]:
    """The dataset's default network for what the flags leave out; another network than the default gets
    depth 32 unless given."""
    default_net, default_depth = DEFAULT_NET.get(dataset, FALLBACK_NET)
    net_type = net_type or default_net
    if depth is not None:
        return net_type, depth
    return net_type, default_depth if net_type == default_net else 32


def resolve_settings(args: argparse.Namespace) -> RunSettings:
    """The run's settings from the data flags of :func:`pipeline.generate.add_data_args`; nothing is loaded or
    written, so a bad flag fails first."""
    if args.pretrained and not Path(args.pretrained).is_file():
        fail(f"--pretrained: no such file {args.pretrained}")
    noise_type = canonical_noise_type(args.noise_type)
    net_type, depth = resolve_net(args.dataset, args.net_type, args.depth)
    if net_type not in MODELS:
        fail(f"--net_type: unknown network {net_type!r}; valid: {', '.join(sorted(MODELS))}")
    return RunSettings(save=args.save, dataset=args.dataset, real_noise=args.dataset in LARGE,
                       noise_type=noise_type, noise_ratio=args.noise_ratio, net_type=net_type, depth=depth,
                       seed=args.seed, split_seed=args.seed if args.split_seed is None else args.split_seed)
