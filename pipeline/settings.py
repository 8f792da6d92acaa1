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

from labeltrace.errors import fail
from datasets.label_files import check_labels_flags
from datasets.noise import canonical_noise_type
from datasets.registry import CLEAN_LABELS, LARGE
from models.registry import MODELS
from pipeline.paths import experiment_dir, labels_tag, td_run_dir

DEFAULT_NET = {"digits": ("cnn", 3), "fashion_mnist": ("cnn", 3), "shapes": ("cnn", 3), "tiny_imagenet": ("resnet", 32),
               "cub_200_2011": ("resnet", 34), "caltech256": ("resnet", 34), "webvision50": ("resnet", 50),
               "clothing100k": ("resnet", 50)}
FALLBACK_NET = ("resnet", 32)  # CIFAR and image folders below 128 px
LABELS_FILE_NOISE = "labels_file"  # the noise type a run records when a labels file gave its labels

NOISE_RATIO_DEFAULT = 0.2  # --noise_ratio left out (None) means this, or 0 with --labels_file


@dataclass(frozen=True)
class RunSettings:
    """``real_noise``: a large real-noise dataset (webvision50, clothing100k): its labels are kept as they are
    (no ground truth), its folders drop the noise part, and STEP 3 drops the LR twice. ``noise_type`` is the
    canonical name (``sym`` -> ``uniform``), ``split_seed`` the seed of the noise and split (``--seed`` unless
    given). ``labels_file`` (and ``labels_key``): the file whose labels replace the dataset's; no noise is then
    drawn (``noise_ratio`` 0, ``noise_type`` ``labels_file``) and the folders are named after the file.
    ``calibrate``: the fraction of training labels flipped on top for self-calibration (0: none), which names
    the folders too."""

    save: str
    dataset: str
    real_noise: bool
    noise_type: str
    noise_ratio: float
    net_type: str
    depth: int
    seed: int
    split_seed: int
    labels_file: str | None = None
    labels_key: str | None = None
    calibrate: float = 0.0

    @property
    def has_ground_truth(self) -> bool:
        """Whether the run knows which labels are wrong (``label_flipped``, STEP 3's ROC-AUC/mAP), decided here
        only: not for real noise, nor for a labels file over a dataset whose own labels are not known to be
        clean (folder datasets); synthetic noise and a labels file over digits, Fashion-MNIST or CIFAR have it."""
        return self.no_truth_reason is None

    @property
    def no_truth_reason(self) -> str | None:
        """Why the run has no ground truth, for messages; None when it has."""
        if self.real_noise:
            return f"{self.dataset} has real noise"
        if self.labels_file is not None and self.dataset not in CLEAN_LABELS:
            return f"the labels of --labels_file {self.labels_file} replace those of {self.dataset}, " \
                   "which are not known to be clean"
        return None

    @property
    def labels_tag(self) -> str | None:
        return labels_tag(self.labels_file, self.labels_key) if self.labels_file else None

    @property
    def experiment_dir(self) -> Path:
        return experiment_dir(self.save, self.dataset, self.net_type, self.depth, self.noise_ratio, self.noise_type,
                              self.labels_tag, self.calibrate)

    @property
    def td_run_dir(self) -> Path:
        """STEP 1's run folder."""
        return td_run_dir(self.save, self.dataset, self.net_type, self.depth, self.noise_ratio, self.noise_type,
                          self.seed, self.labels_tag, self.calibrate)

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
    """The run's settings from the data flags of :func:`pipeline.recipe.add_data_args`; nothing is loaded or
    written, so a bad flag fails first. ``noise_ratio`` is the ratio used (a plain float; 0 with --labels_file)."""
    check_image_size(getattr(args, "image_size", None))
    if args.pretrained and not Path(args.pretrained).is_file():
        fail(f"--pretrained: no such file {args.pretrained}")
    noise_type = canonical_noise_type(args.noise_type)
    net_type, depth = resolve_net(args.dataset, args.net_type, args.depth)
    if net_type not in MODELS:
        fail(f"--net_type: unknown network {net_type!r}; valid: {', '.join(sorted(MODELS))}")
    labels_file, labels_key = getattr(args, "labels_file", None), getattr(args, "labels_key", None)
    check_labels_flags(labels_file, labels_key)
    noise_ratio = NOISE_RATIO_DEFAULT if args.noise_ratio is None else float(args.noise_ratio)
    if labels_file is not None:
        check_no_noise_flags(labels_file, args.noise_ratio, noise_type)
        noise_ratio, noise_type = 0.0, LABELS_FILE_NOISE
    return RunSettings(save=args.save, dataset=args.dataset, real_noise=args.dataset in LARGE,
                       noise_type=noise_type, noise_ratio=noise_ratio, net_type=net_type, depth=depth,
                       seed=args.seed, split_seed=args.seed if args.split_seed is None else args.split_seed,
                       labels_file=labels_file, labels_key=labels_key, calibrate=check_calibrate(args))


# A network's activations for one image take tens of times the image itself (float32, 3 channels).
ACTIVATION_FACTOR = 32


def check_image_size(image_size: int | None) -> None:
    """Refuse an ``--image_size`` at which a single image with its activations would not fit in this machine's
    memory: the run would grow until the out-of-memory killer stops it."""
    if image_size is None:
        return
    import os

    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    need = 3 * image_size ** 2 * 4 * ACTIVATION_FACTOR
    if need > memory:
        largest = int((memory / (3 * 4 * ACTIVATION_FACTOR)) ** 0.5)
        fail(f"--image_size {image_size}: one image and its activations need about {need / 2**30:,.0f} GiB, "
             f"this machine has {memory / 2**30:.0f} GiB (at most {largest} px fits)")


def check_image_size_applies(dataset: str, image_size: int | None, native: int) -> None:
    """Refuse an ``--image_size`` other than the ``native`` size of a ``dataset`` whose images come at one size:
    it would be ignored while the command line says otherwise. (Its own size is accepted: a run's config.json
    records the size it trained at, and replays.)"""
    from datasets.registry import RESIZED

    if image_size is not None and dataset not in RESIZED and image_size != native:
        fail(f"--image_size {image_size}: the images of {dataset} are {native} px, one size; the flag applies to the "
             f"datasets read from image files ({', '.join(RESIZED)}): leave it out")


def check_no_noise_flags(labels_file: str, noise_ratio: float | None, noise_type: str) -> None:
    """A labels file gives the labels, so no synthetic noise is drawn on top: ``--noise_ratio`` must be left out
    or 0 and ``--noise_type`` left out or ``uniform`` (the shell scripts always pass both: ``0 uniform``)."""
    asked = [f"--noise_ratio {noise_ratio}"] if noise_ratio not in (None, 0) else []
    asked += [f"--noise_type {noise_type}"] if noise_type != "uniform" else []
    if asked:
        fail(f"--labels_file {labels_file} gives the labels, no synthetic noise is drawn: leave out --noise_ratio "
             f"and --noise_type (or give 0 and uniform), got {' '.join(asked)}")


def check_calibrate(args: argparse.Namespace) -> float:
    """``--calibrate``'s fraction (0 when left out). Past one half the injected labels would outnumber the clean
    ones in a class on average, and the detector would learn the wrong side."""
    ratio = getattr(args, "calibrate", None) or 0.0
    if not 0.0 <= ratio <= 0.5:
        fail(f"--calibrate: expected a value in (0, 0.5] (a fraction of the training labels), got {ratio}")
    return ratio
