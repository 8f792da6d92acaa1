"""The flags every training stage shares and the recipe they make: STEP 1 (``runner.py``), STEP 3's retraining
and data debugging's all parse the data flags and the training recipe here, so that none imports another's
entry point.
"""
from __future__ import annotations

import argparse

from core import cli
from core.fit import Recipe, lr_at
from datasets.registry import DATASETS
from models.registry import MODELS
from pipeline.loaders import LOADERS
from pipeline.runtime import add_runtime_args
from pipeline.settings import NOISE_RATIO_DEFAULT


def add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=None, help="data directory holding <dataset>/ (imagefolder: the tree itself)")
    p.add_argument("--dataset", default="digits", help=f"one of {', '.join(sorted(DATASETS))}")
    p.add_argument("--seed", type=cli.seed, default=0, help="seed of weights, batch order and augmentation")
    p.add_argument("--split_seed", type=cli.seed, default=None, help="seed of the noise and split (default: --seed)")
    p.add_argument("--noise_ratio", type=cli.ratio, default=None,
                   help=f"fraction of labels to corrupt, in [0, 1) (default {NOISE_RATIO_DEFAULT})")
    p.add_argument("--noise_type", default="uniform", help="uniform (=sym), flip (=asym) or instance (image-dependent)")
    p.add_argument("--net_type", default=None, help=f"one of {', '.join(sorted(MODELS))} (default: per dataset)")
    p.add_argument("--depth", type=cli.positive_int_or_default, default=None,
                   help="network depth (default: per dataset)")
    p.add_argument("--save", default="runs", help="folder under which run folders are made")
    p.add_argument("--max_train", type=cli.positive_int_or_default, default=None,
                   help="use the first N training samples only")
    p.add_argument("--max_test", type=cli.positive_int_or_default, default=None,
                   help="use the first N test samples only")
    p.add_argument("--image_size", type=cli.positive_int_or_default, default=None,
                   help="folder datasets: training resolution")
    p.add_argument("--pretrained", default=None, help="local state_dict file to initialise the network from")
    p.add_argument("--labels_file", default=None,
                   help="training labels replacing the dataset's, no noise drawn: index,label or path,label .csv, "
                        ".npy, .json, or a CIFAR-N .pt with --labels_key (docs/formats.md)")
    p.add_argument("--calibrate", type=cli.calibrate, default=None, metavar="RATIO",
                   help="self-calibration: flip this fraction of the training labels on top (seeded), recorded as "
                        "label_injected, for train_detector.py --target injected; STEP 3 leaves them out")
    p.add_argument("--labels_key", default=None,
                   help="the array of a .pt --labels_file: worse_label, aggre_label, random_label1, noisy_label, ...")


def add_train_args(p: argparse.ArgumentParser, *, epochs: int, milestones: str, batch_size: int | None) -> None:
    """``batch_size=None``: the command resolves it (STEP 3: 256 x the kept fraction); ``milestones="auto"``
    likewise (STEP 3: the paper's per dataset), and only then is ``auto`` a valid value."""
    p.add_argument("--num_epochs", type=cli.positive_int, default=epochs)
    p.add_argument("--lr", type=cli.learning_rate, default=0.1)
    p.add_argument("--momentum", type=cli.momentum, default=0.9)
    p.add_argument("--wd", type=cli.weight_decay, default=1e-4, help="weight decay")
    p.add_argument("--batch_size", type=cli.positive_int, default=batch_size,
                   help="training batch" + (" (default: 256 x the fraction of samples kept)" if batch_size is None else ""))
    p.add_argument("--milestones", type=milestones_flag(auto=milestones == "auto"), default=milestones,
                   help="comma-separated fractions of training where LR x0.1")
    p.add_argument("--loader", choices=LOADERS, default="fast",
                   help="fast: in-memory tensors, batch augmentation on the device; standard: DataLoader")
    add_runtime_args(p)


def milestone_fractions(text: str) -> tuple[float, ...]:
    """``"0.5,0.75"`` -> ``(0.5, 0.75)``; a ``ValueError`` for anything else."""
    return tuple(float(m) for m in str(text).split(",") if m.strip())


def milestones_flag(*, auto: bool):
    """The ``type=`` of ``--milestones``: the text, kept as given (config.json records it), once it reads as
    fractions (or is ``auto``, where the command resolves that)."""
    def milestones(text: str) -> str:
        if not (auto and text == "auto"):
            try:
                milestone_fractions(text)
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"expected comma-separated fractions like 0.5,0.75, got {text!r}") from None
            for part in str(text).split(","):
                if part.strip():
                    cli.milestone(part)  # NaN, inf, 1.5 or -0.5: "expected a value in (0, 1), got 1.5"
        return text
    return milestones


def make_recipe(args: argparse.Namespace, milestones: str) -> Recipe:
    """The training recipe of the flags of :func:`add_train_args` (checked while parsing), with ``milestones``
    for ``--milestones`` (STEP 3 resolves ``auto``)."""
    recipe = Recipe(epochs=args.num_epochs, lr=args.lr, momentum=args.momentum, weight_decay=args.wd,
                    milestones=milestone_fractions(milestones))
    early = [m for m in recipe.milestones if int(m * recipe.epochs) == 0]
    if early:  # legal, but the run then never trains at --lr
        print(f"warning: --milestones {milestones} with --num_epochs {recipe.epochs}: "
              f"{', '.join(f'{m:g}' for m in early)} lands on epoch 0, so the learning rate is "
              f"{lr_at(recipe, 0):g} from the first epoch, not --lr {recipe.lr:g}")
    return recipe
