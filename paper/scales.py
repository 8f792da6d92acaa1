"""The paper's datasets at three scales: the paper's own, a CPU proxy, and a tiny one for CI.

A :class:`Profile` says how one of the paper's datasets is run at a scale: which dataset stands for it, with
which data flags (subset, network), how many epochs, and how large it is (for the time estimates). The tables
and their runs are the same at every scale; only the profiles differ.
"""
from __future__ import annotations

from dataclasses import dataclass

from labeltrace.errors import fail


@dataclass(frozen=True)
class Profile:
    """One of the paper's datasets at one scale.

    Attributes
    ----------
    dataset : the registry name that is run (``cifar10``, or its stand-in ``digits``).
    flags : data flags every stage gets (``--max_train``, ``--net_type``, ...), so STEP 3 finds STEP 1's run.
    n_train, n_test : training and test images, for the time estimates.
    family : the key of :data:`paper.timing.STEP_SECONDS` (network and input size).
    step1_epochs, retrain_epochs : STEP 1's and STEP 3's epochs (the paper's: 200 and 300).
    noise : ``(noise_type, ratio)`` of a stand-in for a real-noise dataset (synthesized noise, instance noise
        in the proxies, whose ground truth the table shows as proxy-only columns); None for the real dataset.
    """

    dataset: str
    flags: tuple[str, ...]
    n_train: int
    n_test: int
    family: str
    step1_epochs: int
    retrain_epochs: int
    noise: tuple[str, float] | None = None


@dataclass(frozen=True)
class Scale:
    """A scale: a profile per paper dataset, the detector's epochs, the default seeds, a sub-folder."""

    name: str
    profiles: dict[str, Profile]
    detector_epochs: int
    seeds: tuple[int, ...]
    subfolder: str  # under <result_save_path>: scales never share a run folder (their epochs differ)
    needs_data: bool  # the datasets are read from <datadir>

    def profile(self, paper_dataset: str) -> Profile:
        return self.profiles[paper_dataset]


_FASHION = ("--max_train", "3000", "--max_test", "1000", "--net_type", "cnn", "--depth", "2")
_SHAPES = ("--max_train", "2000", "--max_test", "500")  # the first of datasets/shapes.py's 4,000 / 1,000
_TINY = ("--max_train", "300", "--max_test", "100")

PAPER = Scale("paper", {
    "cifar10": Profile("cifar10", (), 50_000, 10_000, "resnet32_32px", 200, 300),
    "cifar100": Profile("cifar100", (), 50_000, 10_000, "resnet32_32px", 200, 300),
    "tiny_imagenet": Profile("tiny_imagenet", (), 100_000, 10_000, "resnet32_64px", 200, 300),
    "cub_200_2011": Profile("cub_200_2011", (), 5_994, 5_794, "resnet34_224px", 200, 300),
    # The official 256_ObjectCategories/ less its clutter class, split 80/20 per class (datasets/caltech.py).
    "caltech256": Profile("caltech256", (), 23_824, 5_956, "resnet34_224px", 200, 300),
    # mini-WebVision as DivideMix defines it (the first 50 classes of the Google images), and AUM's Clothing100K
    # scored on Clothing1M's clean test set: the sizes the estimates assume.
    "webvision50": Profile("webvision50", (), 65_944, 2_500, "resnet50_224px", 200, 300),
    "clothing100k": Profile("clothing100k", (), 100_000, 10_526, "resnet50_224px", 200, 300),
}, detector_epochs=20, seeds=(1,), subfolder="", needs_data=True)

# The datasets the CIFAR detectors are scored on without retraining (Tiny ImageNet, CUB-200, Caltech-256) stand
# on the generated shapes, which neither detector's stand-in (digits, Fashion-MNIST) is: the proxy stays a
# transfer. The three differ by network (the CIFAR ResNet family for Tiny ImageNet's ResNet-32, the small CNN
# with 3 and 2 blocks for the two 224-px ResNet-34s), not by images.
PROXY = Scale("proxy", {
    "cifar10": Profile("digits", (), 1_497, 300, "cnn3_8px", 40, 20),
    "cifar100": Profile("fashion_mnist", _FASHION, 3_000, 1_000, "cnn2_28px", 20, 10),
    "tiny_imagenet": Profile("shapes", (*_SHAPES, "--net_type", "resnet", "--depth", "8"), 2_000, 500,
                             "resnet8_16px", 30, 15),
    "cub_200_2011": Profile("shapes", (*_SHAPES, "--net_type", "cnn", "--depth", "3"), 2_000, 500, "cnn3_16px",
                            30, 15),
    "caltech256": Profile("shapes", (*_SHAPES, "--net_type", "cnn", "--depth", "2"), 2_000, 500, "cnn2_16px",
                          30, 15),
    "webvision50": Profile("fashion_mnist", _FASHION, 3_000, 1_000, "cnn2_28px", 20, 10, ("instance", 0.2)),
    "clothing100k": Profile("digits", (), 1_497, 300, "cnn3_8px", 40, 20, ("instance", 0.4)),
}, detector_epochs=20, seeds=(1, 2), subfolder="proxy", needs_data=False)

# CI: 300 images, a few epochs, and as few processes as the tables allow: digits for the CIFAR detectors' runs,
# one run of the shapes for every dataset a CIFAR detector is scored on without retraining (a transfer even
# here), and both real-noise stand-ins share one run, the CIFAR-100 detector's own when --detector_seed is the
# scored seed (their STEP 3 folders stay apart: LR drops at 33% and 67%).
_TINY_CIFAR10 = Profile("digits", _TINY, 300, 100, "cnn3_8px", 4, 2)
_TINY_SHAPES = Profile("shapes", _TINY, 300, 100, "cnn3_16px", 4, 2)
_TINY_CNN2 = (*_TINY, "--net_type", "cnn", "--depth", "2")
_TINY_REAL = Profile("digits", _TINY_CNN2, 300, 100, "cnn3_8px", 4, 2, ("uniform", 0.3))
TINY = Scale("tiny", {
    "cifar10": _TINY_CIFAR10,
    "cifar100": Profile("digits", _TINY_CNN2, 300, 100, "cnn3_8px", 4, 2),
    "tiny_imagenet": _TINY_SHAPES,
    "cub_200_2011": _TINY_SHAPES,
    "caltech256": _TINY_SHAPES,
    "webvision50": _TINY_REAL,
    "clothing100k": _TINY_REAL,
}, detector_epochs=2, seeds=(1,), subfolder="tiny", needs_data=False)

SCALES = {scale.name: scale for scale in (PAPER, PROXY, TINY)}


def get_scale(name: str) -> Scale:
    if name not in SCALES:
        fail(f"--scale: unknown scale {name!r}; valid: {', '.join(SCALES)}")
    return SCALES[name]


def describe(scale: Scale, paper_datasets: list[str]) -> str:
    """One line per paper dataset: what stands for it at this scale (for the table's header)."""
    lines = []
    for name in paper_datasets:
        p = scale.profile(name)
        noise = f", {p.noise[0]} noise {p.noise[1]} for its real noise" if p.noise else ""
        flags = f" {' '.join(p.flags)}" if p.flags else ""
        lines.append(f"- {name}: {p.dataset}{flags} ({p.n_train:,} train / {p.n_test:,} test; STEP 1 "
                     f"{p.step1_epochs} epochs, STEP 3 {p.retrain_epochs}{noise})")
    return "\n".join(lines)
