"""The pool of STEP 1 runs the generalist detector is trained and judged on, built by one resumable command.

    python benchmarks/pool.py                      # every run (~42 min on 2 cores), 2 at a time, 1 thread each
    python benchmarks/pool.py --groups digits_grid --jobs 2 --dry_run

Two kinds of groups, each a list of STEP 1 settings that write under ``<save>/<group>/``:
- ``*_grid``: the leave-one-dataset-out evaluation grid of one dataset: uniform / flip / instance noise at
  0.2 and 0.4, seeds 1-3, in the dataset's standard CPU setting (what ``benchmarks/lodo.py`` scores);
- ``*_extra``: other regimes users produce, for training only: other training-set sizes, networks (cnn and
  resnet), epoch budgets (20 to 100), noise rates (0.1 to 0.5) and both recording modes.
Fine-tuning, the regime of a practitioner who starts from pretrained weights: :data:`BACKBONES` are networks
trained first on another dataset's clean labels (``pretrain/``; their head is left out, the classes differ), and
the ``*_finetune*`` groups start from one and train 3-10 epochs at a low constant rate. ``*_finetune_grid`` is a
held-out setting of its own in ``benchmarks/lodo.py``, the other fine-tuning groups are for training only.

A finished run is not re-run (STEP 1's own resume), and a killed build resumes where it stopped.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from labeltrace.io import torch_save  # noqa: E402
from labeltrace.runfiles import SUMMARY_FILE  # noqa: E402
from models.registry import without_head  # noqa: E402
from pipeline.multirun import run_all  # noqa: E402
from pipeline.paths import td_run_dir  # noqa: E402

DIGITS = ["--dataset", "digits", "--num_epochs", "40"]
FASHION = ["--dataset", "fashion_mnist", "--max_train", "3000", "--max_test", "1000", "--net_type", "cnn",
           "--depth", "2", "--num_epochs", "20"]
# Every run records the neighbour agreement besides the softmax (labeltrace/neighbours.py), as STEP 1 does by
# default, named here so that the pool does not change with that default; designs that do not read it see the
# same traces.
RECORDING = ["--neighbours", "20"]
GRID_SETTINGS = [(kind, ratio) for kind in ("uniform", "flip", "instance") for ratio in (0.2, 0.4)]
GRID_SEEDS = (1, 2, 3)


@dataclass(frozen=True)
class Run:
    """One STEP 1 run of the pool: ``flags`` go to runner.py besides noise, seed and save folder."""

    group: str
    dataset: str
    noise_type: str
    noise_ratio: float
    seed: int
    flags: tuple[str, ...]
    backbone: str | None = None  # a name of BACKBONES: fine-tune from its weights

    def settings_line(self, save: Path, precision: str = "fp32") -> str:
        """runner.py's flags for this run, as one line of a ``multirun.py`` settings file."""
        start = ["--pretrained", str(backbone_file(save, self.backbone))] if self.backbone else []
        return shlex.join([*self.flags, *start, *RECORDING, "--noise_type", self.noise_type, "--noise_ratio",
                           str(self.noise_ratio), "--seed", str(self.seed), "--precision", precision,
                           "--save", str(save / self.group)])

    def run_dir(self, save: Path, calibrate: float = 0.0) -> Path:
        """The run folder STEP 1 writes for this run (with ``--calibrate``: that run's)."""
        net = self.flags[self.flags.index("--net_type") + 1] if "--net_type" in self.flags else "cnn"
        depth = int(self.flags[self.flags.index("--depth") + 1]) if "--depth" in self.flags else 3
        return td_run_dir(save / self.group, self.dataset, net, depth, self.noise_ratio, self.noise_type, self.seed,
                          calibrate=calibrate)


def _grid(group: str, dataset: str, flags: list[str]) -> list[Run]:
    return [Run(group, dataset, kind, ratio, seed, tuple(flags)) for kind, ratio in GRID_SETTINGS
            for seed in GRID_SEEDS]


def _extra(group: str, dataset: str, settings: list[tuple[str, float, int, list[str]]]) -> list[Run]:
    return [Run(group, dataset, kind, ratio, seed, tuple(flags)) for kind, ratio, seed, flags in settings]


POOL: list[Run] = [
    *_grid("digits_grid", "digits", DIGITS),
    *_grid("fashion_grid", "fashion_mnist", FASHION),
    *_extra("digits_extra", "digits", [
        ("uniform", 0.1, 4, ["--dataset", "digits", "--num_epochs", "20", "--net_type", "cnn", "--depth", "2"]),
        ("uniform", 0.5, 4, ["--dataset", "digits", "--num_epochs", "100", "--record", "eval"]),
        ("flip", 0.3, 4, ["--dataset", "digits", "--num_epochs", "60", "--net_type", "resnet", "--depth", "8"]),
        ("instance", 0.3, 4, ["--dataset", "digits", "--num_epochs", "40", "--record", "eval"]),
        ("flip", 0.1, 5, ["--dataset", "digits", "--num_epochs", "30", "--net_type", "cnn", "--depth", "1"]),
        ("instance", 0.1, 5, ["--dataset", "digits", "--num_epochs", "80", "--net_type", "resnet", "--depth", "8"]),
        # Runs that stop before memorizing their noise, as the Fashion-MNIST grid does (small net, few epochs).
        ("uniform", 0.3, 6, ["--dataset", "digits", "--num_epochs", "20", "--net_type", "cnn", "--depth", "1"]),
        ("instance", 0.2, 6, ["--dataset", "digits", "--num_epochs", "25", "--net_type", "cnn", "--depth", "1"]),
        ("flip", 0.3, 6, ["--dataset", "digits", "--num_epochs", "15", "--net_type", "cnn", "--depth", "2"]),
        ("uniform", 0.5, 6, ["--dataset", "digits", "--num_epochs", "30", "--net_type", "cnn", "--depth", "1",
                             "--record", "eval"]),
    ]),
    *_extra("fashion_extra", "fashion_mnist", [
        ("uniform", 0.3, 4, ["--dataset", "fashion_mnist", "--max_train", "10000", "--max_test", "1000",
                             "--net_type", "cnn", "--depth", "2", "--num_epochs", "20"]),
        ("instance", 0.3, 4, ["--dataset", "fashion_mnist", "--max_train", "6000", "--max_test", "1000",
                              "--net_type", "cnn", "--depth", "3", "--num_epochs", "20", "--record", "eval"]),
        ("flip", 0.3, 4, ["--dataset", "fashion_mnist", "--max_train", "3000", "--max_test", "1000",
                          "--net_type", "resnet", "--depth", "8", "--num_epochs", "30"]),
        ("uniform", 0.5, 4, ["--dataset", "fashion_mnist", "--max_train", "2000", "--max_test", "1000",
                             "--net_type", "cnn", "--depth", "2", "--num_epochs", "60"]),
        ("flip", 0.1, 5, ["--dataset", "fashion_mnist", "--max_train", "3000", "--max_test", "1000",
                          "--net_type", "cnn", "--depth", "3", "--num_epochs", "40", "--record", "eval"]),
        ("instance", 0.1, 5, ["--dataset", "fashion_mnist", "--max_train", "3000", "--max_test", "1000",
                              "--net_type", "cnn", "--depth", "2", "--num_epochs", "20"]),
        # Runs that memorize their noise, as digits does (few samples, many epochs).
        ("uniform", 0.3, 6, ["--dataset", "fashion_mnist", "--max_train", "1000", "--max_test", "1000",
                             "--net_type", "cnn", "--depth", "3", "--num_epochs", "100"]),
        ("flip", 0.2, 6, ["--dataset", "fashion_mnist", "--max_train", "1000", "--max_test", "1000",
                          "--net_type", "cnn", "--depth", "3", "--num_epochs", "100"]),
        ("instance", 0.2, 6, ["--dataset", "fashion_mnist", "--max_train", "1500", "--max_test", "1000",
                              "--net_type", "resnet", "--depth", "8", "--num_epochs", "80"]),
        ("uniform", 0.4, 6, ["--dataset", "fashion_mnist", "--max_train", "1000", "--max_test", "1000",
                             "--net_type", "cnn", "--depth", "3", "--num_epochs", "60", "--record", "eval"]),
    ]),
]
# The generated third dataset (datasets/shapes.py), for training only: a detector judged on digits or Fashion-MNIST
# then has trained on two other datasets. Memorizing (cnn 3, long) and not (cnn 1-2, short) runs, both recordings.
SHAPES = ["--dataset", "shapes"]
POOL += _extra("shapes_extra", "shapes", [
    ("uniform", 0.2, 7, [*SHAPES, "--num_epochs", "40"]),
    ("uniform", 0.4, 7, [*SHAPES, "--num_epochs", "20", "--net_type", "cnn", "--depth", "2"]),
    ("flip", 0.2, 7, [*SHAPES, "--num_epochs", "30", "--record", "eval"]),
    ("flip", 0.4, 7, [*SHAPES, "--num_epochs", "20", "--net_type", "cnn", "--depth", "1"]),
    ("instance", 0.2, 7, [*SHAPES, "--num_epochs", "40"]),
    ("instance", 0.4, 7, [*SHAPES, "--num_epochs", "15", "--net_type", "cnn", "--depth", "2"]),
    ("uniform", 0.1, 8, [*SHAPES, "--num_epochs", "30", "--net_type", "resnet", "--depth", "8"]),
    ("flip", 0.3, 8, [*SHAPES, "--num_epochs", "60", "--net_type", "cnn", "--depth", "2"]),
    ("instance", 0.3, 8, [*SHAPES, "--num_epochs", "40", "--net_type", "resnet", "--depth", "8", "--record", "eval"]),
    ("uniform", 0.3, 8, [*SHAPES, "--num_epochs", "15", "--net_type", "cnn", "--depth", "1"]),
    ("instance", 0.1, 8, [*SHAPES, "--num_epochs", "25", "--net_type", "cnn", "--depth", "2"]),
    ("flip", 0.1, 8, [*SHAPES, "--num_epochs", "20", "--max_train", "2000"]),
])

# Fine-tuning. A backbone is a clean run (noise 0) of another dataset; ``backbone_file`` is its last weights
# without the head. Each held-out grid fine-tunes from a dataset other than itself (a backbone that had seen
# the grid's clean labels would know the answer): digits and shapes from Fashion-MNIST, Fashion-MNIST from shapes.
BACKBONES = {
    "fashion_mnist_cnn3": Run("pretrain", "fashion_mnist", "uniform", 0.0, 0, (
        "--dataset", "fashion_mnist", "--max_train", "6000", "--max_test", "1000", "--net_type", "cnn", "--depth",
        "3", "--num_epochs", "15")),
    "shapes_cnn2": Run("pretrain", "shapes", "uniform", 0.0, 0, (*SHAPES, "--net_type", "cnn", "--depth", "2",
                                                               "--num_epochs", "20")),
}


def finetune(epochs: int, lr: float) -> list[str]:
    """A few epochs at a low constant rate: clean samples are fitted at once, there is no time to memorize."""
    return ["--num_epochs", str(epochs), "--lr", str(lr), "--milestones", ""]


def _finetune_grid(group: str, dataset: str, flags: list[str], backbone: str) -> list[Run]:
    return [Run(group, dataset, kind, ratio, seed, tuple(flags), backbone) for kind, ratio in GRID_SETTINGS
            for seed in GRID_SEEDS]


DIGITS_FT = ["--dataset", "digits", "--net_type", "cnn", "--depth", "3"]
FASHION_FT = ["--dataset", "fashion_mnist", "--max_train", "3000", "--max_test", "1000", "--net_type", "cnn",
              "--depth", "2"]
SHAPES_FT = [*SHAPES, "--net_type", "cnn", "--depth", "3"]
POOL += [
    *_finetune_grid("digits_finetune_grid", "digits", [*DIGITS_FT, *finetune(8, 0.01)], "fashion_mnist_cnn3"),
    *_finetune_grid("fashion_finetune_grid", "fashion_mnist", [*FASHION_FT, *finetune(8, 0.01)], "shapes_cnn2"),
    *[Run("digits_finetune_extra", "digits", kind, ratio, seed, (*DIGITS_FT, *finetune(epochs, lr)),
          "fashion_mnist_cnn3")
      for kind, ratio, seed, epochs, lr in [("uniform", 0.3, 4, 3, 0.01), ("flip", 0.3, 4, 5, 0.02),
                                            ("instance", 0.3, 4, 10, 0.005), ("uniform", 0.1, 5, 10, 0.01)]],
    *[Run("fashion_finetune_extra", "fashion_mnist", kind, ratio, seed, (*FASHION_FT, *finetune(epochs, lr)),
          "shapes_cnn2")
      for kind, ratio, seed, epochs, lr in [("uniform", 0.3, 4, 3, 0.01), ("flip", 0.3, 4, 5, 0.02),
                                            ("instance", 0.3, 4, 10, 0.005), ("flip", 0.1, 5, 10, 0.01)]],
    *[Run("shapes_finetune_extra", "shapes", kind, ratio, seed, (*SHAPES_FT, *finetune(epochs, lr)),
          "fashion_mnist_cnn3")
      for kind, ratio, seed, epochs, lr in [("uniform", 0.2, 7, 8, 0.01), ("flip", 0.3, 7, 5, 0.01),
                                            ("instance", 0.4, 7, 10, 0.01), ("uniform", 0.4, 8, 3, 0.02),
                                            ("flip", 0.2, 8, 10, 0.005), ("instance", 0.2, 8, 8, 0.02)]],
]
GROUPS = sorted({run.group for run in POOL})


def backbone_file(save: Path, name: str) -> Path:
    return save / "pretrain" / f"{name}.pt"


def make_backbones(names: set[str], save: Path, *, jobs: int, threads: int) -> int:
    """Train the clean runs of ``names`` not yet trained and write each one's ``backbone_file``: the run's last
    weights (``model.pth.last``) without the classifier head. Returns how many runs failed."""
    runs = {name: BACKBONES[name] for name in sorted(names)}
    failed = build(list(runs.values()), save, jobs=jobs, threads=threads)
    for name, run in runs.items():
        weights = run.run_dir(save) / "model.pth.last"
        if weights.is_file() and not backbone_file(save, name).is_file():
            state = torch.load(weights, map_location="cpu", weights_only=True)
            torch_save(without_head(state), backbone_file(save, name))
    return failed


def select(groups: list[str] | None, seeds: list[int] | None = None) -> list[Run]:
    unknown = set(groups or []) - set(GROUPS)
    if unknown:
        raise SystemExit(f"error: --groups: unknown {sorted(unknown)}; valid: {', '.join(GROUPS)}")
    return [run for run in POOL if (not groups or run.group in groups) and (not seeds or run.seed in seeds)]


def is_done(run: Run, save: Path) -> bool:
    return (run.run_dir(save) / SUMMARY_FILE).is_file()


def build(runs: list[Run], save: Path, *, jobs: int, threads: int, precision: str = "fp32") -> int:
    """Run every unfinished run, ``jobs`` at a time (``pipeline/multirun.py``); returns how many failed."""
    todo = [run for run in runs if not is_done(run, save)]
    print(f"{len(runs) - len(todo)} of {len(runs)} runs already done; {len(todo)} to run, {jobs} at a time")
    names = [run.run_dir(save).relative_to(save).as_posix().replace("/", "__") for run in todo]
    outcomes = run_all([run.settings_line(save, precision) for run in todo], jobs=jobs, threads=threads,
                       logs=save / "logs", names=names)
    return sum(o.code != 0 for o in outcomes)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--save", default="runs/pool", help="folder of the pool (one sub-folder per group)")
    p.add_argument("--groups", nargs="+", default=None, help=f"only these groups ({', '.join(GROUPS)})")
    p.add_argument("--seeds", nargs="+", type=int, default=None,
                   help="only the runs of these seeds (grids: 1-3; extras: 4-8), e.g. a first pass over seed 1")
    p.add_argument("--jobs", type=int, default=2, help="runs at once (processes)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"),
                   help="STEP 1 arithmetic (the pool of docs/lodo.md is float32; benchmarks/precision.py compares "
                        "a bf16 copy of the grids, --save runs/pool_bf16)")
    p.add_argument("--dry_run", action="store_true", help="list the runs and whether each is done")
    p.add_argument("--list", action="store_true", help="print the run folders of the finished runs, one a line")
    a = p.parse_args()
    runs, save = select(a.groups, a.seeds), Path(a.save)
    if a.list:
        print("\n".join(str(run.run_dir(save)) for run in runs if is_done(run, save)))
        return
    if a.dry_run:
        for run in runs:
            print(("done  " if is_done(run, save) else "to do ") + run.settings_line(save, a.precision))
        return
    jobs = max(1, a.jobs)
    failed = make_backbones({run.backbone for run in runs if run.backbone}, save, jobs=jobs, threads=a.threads)
    failed += build(runs, save, jobs=jobs, threads=a.threads, precision=a.precision)
    if failed:
        raise SystemExit(f"error: {failed} runs failed; see {save / 'logs'}")


if __name__ == "__main__":
    main()
