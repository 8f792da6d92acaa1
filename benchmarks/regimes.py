"""The regimes pool: runs outside the image-CNN/SGD pool of ``benchmarks/pool.py``, built by one resumable command.

    python benchmarks/regimes.py --jobs 2                          # every run (~15 min on 2 cores, 78 runs)
    python benchmarks/regimes.py --dry_run                         # what is done, what is to do
    python benchmarks/regimes.py --list                            # finished run folders, one a line

Each group is a leave-one-group-out unit of ``benchmarks/lodo_regimes.py`` (``uniform`` / ``flip`` /
``instance`` noise at 0.2 and 0.4, seeds 1-2 (tabular: seed 1 of each bundled table, 1-2 of the generated one), exactly ``round(ratio * N)`` labels changed,
:mod:`datasets.generated_noise`):

| group | model, optimizer | data | epochs |
|---|---|---|---|
| ``bert_text_scratch`` | BERT (hidden 64, 2 layers) from a config, AdamW, warmup + linear (seed 1) / cosine (seed 2) decay, HF ``Trainer`` | generated text, 4 classes, 1,500 sentences (:mod:`datasets.text`, vocabulary seeded by the run's seed) | 12 |
| ``bert_text_finetune`` | the same BERT pretrained on a text task of other word meanings (clean labels), new head, AdamW + linear decay | as above | 3 (seed 1), 5 (seed 2) |
| ``vit_digits_scratch`` | ViT (hidden 64, 2 layers, patch 2), AdamW, warmup + linear / cosine | scikit-learn digits 8x8, 1,497 train | 12 |
| ``vit_fashion_finetune`` | the same ViT (patch 7) pretrained on Fashion-MNIST classes 5-9, new head | Fashion-MNIST classes 0-4, 1,500 images | 3 (seed 1), 5 (seed 2) |
| ``mlp_tabular`` | MLP 128-64, Adam 1e-3, plain loop + ``DynamicsRecorder`` + ``FeatureTap`` | wine, breast_cancer, digits as a table, generated 5-class table (:mod:`datasets.tabular`) | 30 |

Every run records the softmax and the neighbour agreement (k = 20) every epoch, with its true labels
(``metadata.pth``). ``flip`` and ``instance`` noise move a label to its class's confusable partner; instance
noise picks the samples in proportion to their ambiguity. A finished run (its traces file written) is
skipped; an unfinished one is recorded again from scratch. Pretrained backbones go to ``<save>/pretrain/``.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import regime_recipes as recipes  # noqa: E402
from datasets.generated_noise import generated_noise  # noqa: E402
from datasets.tabular import TABLES, cross_val_ambiguity, load_table  # noqa: E402
from datasets.text import SEQ_LEN, make_text_task  # noqa: E402

SETTINGS = [(kind, ratio) for kind in ("uniform", "flip", "instance") for ratio in (0.2, 0.4)]
SEEDS = (1, 2)
TEXT_N = 1500
FASHION_N = 1500
PRETRAIN_VOCAB_SEED = 100  # the pretraining text task's word meanings: no run's vocabulary seed
GROUPS = ("bert_text_scratch", "bert_text_finetune", "vit_digits_scratch", "vit_fashion_finetune", "mlp_tabular")


@dataclass(frozen=True)
class RegimeRun:
    group: str
    data: str
    noise_type: str
    noise_ratio: float
    seed: int

    @property
    def name(self) -> str:
        return f"{self.group}/{self.data}_{self.noise_type}{self.noise_ratio}_seed{self.seed}"

    def run_dir(self, save: Path) -> Path:
        return save / self.name

    @property
    def setting(self) -> str:
        """The setting a leave-one-group-out table row averages over seeds (and tables)."""
        return f"{self.noise_type} {self.noise_ratio}"


def all_runs() -> list[RegimeRun]:
    runs = []
    for group in GROUPS:
        datas = TABLES if group == "mlp_tabular" else (group.split("_")[1],)
        for data in datas:
            # A bundled table is fixed: its four tables (and the generated one's second seed) are the replicates.
            seeds = SEEDS[:1] if group == "mlp_tabular" and data != "generated" else SEEDS
            runs += [RegimeRun(group, data, kind, ratio, seed) for kind, ratio in SETTINGS for seed in seeds]
    return runs


def is_done(run: RegimeRun, save: Path) -> bool:
    return (run.run_dir(save) / "training_dynamics.npz").is_file() and (run.run_dir(save) / "metadata.pth").is_file()


def _images(name: str, classes: range, n: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """Normalized float images (n, 1, H, W) of ``classes`` (relabelled 0..) and their labels (n,), seeded."""
    from datasets.offline import load_digits_bundle, load_fashion_mnist

    split = (load_digits_bundle() if name == "digits" else load_fashion_mnist(None)).train
    rows = np.flatnonzero(np.isin(split.targets, list(classes)))
    rows = np.sort(np.random.default_rng([seed, 3]).permutation(rows)[:n])
    x = torch.from_numpy(split.images[rows].astype(np.float32) / 255.0 - 0.5) / 0.5
    return x, (split.targets[rows] - classes.start).astype(np.int64)


def pretrained_file(save: Path, kind: str) -> Path:
    return save / "pretrain" / f"{kind}.pt"


def pretrain(save: Path) -> None:
    """The two backbones the fine-tuning groups start from, trained on clean labels of other data."""
    for kind in ("bert", "vit"):
        out = pretrained_file(save, kind)
        if out.is_file():
            continue
        torch.manual_seed(0)
        if kind == "bert":
            task = make_text_task(2000, seed=0, vocab_seed=PRETRAIN_VOCAB_SEED)
            model = recipes.bert(task.vocab_size, SEQ_LEN, task.num_classes)
            items = recipes.hf_items(torch.from_numpy(task.tokens), task.labels, "bert")
        else:
            x, y = _images("fashion_mnist", range(5, 10), 2000, seed=0)
            model, items = recipes.vit(28, 7, 5), recipes.hf_items(x, y, "vit")
        recipes.train_hf(model, items, epochs=8, lr=1e-3, scheduler="linear", seed=0)
        out.parent.mkdir(parents=True, exist_ok=True)
        torch.save(recipes.backbone(model).state_dict(), out)
        print(f"pretrained {out}", flush=True)


def _noisy(run: RegimeRun, true: np.ndarray, num_classes: int, partner, ambiguity) -> np.ndarray:
    return generated_noise(true, ratio=run.noise_ratio, kind=run.noise_type, num_classes=num_classes,
                           partner=partner, ambiguity=ambiguity, seed=run.seed)


def train_run(run: RegimeRun, save: Path) -> None:
    """Record ``run`` into its folder (an unfinished folder is discarded first)."""
    out = run.run_dir(save)
    if out.exists():
        shutil.rmtree(out)
    torch.manual_seed(run.seed)
    if run.group == "mlp_tabular":
        table = load_table(run.data, seed=run.seed)
        assigned = _noisy(run, table.labels, table.num_classes, table.partner, table.ambiguity)
        recipes.train_mlp(table.features, assigned, table.labels, run_dir=out, num_classes=table.num_classes,
                          epochs=30, lr=1e-3, seed=run.seed)
        return
    finetune = run.group.endswith("finetune")
    epochs = (3 if run.seed == 1 else 5) if finetune else 12
    scheduler = "linear" if finetune or run.seed == 1 else "cosine"
    if run.data == "text":
        task = make_text_task(TEXT_N, seed=run.seed, vocab_seed=run.seed)
        true, c, kind = task.labels, task.num_classes, "bert"
        assigned = _noisy(run, true, c, task.partner, task.ambiguity)
        model, inputs = recipes.bert(task.vocab_size, SEQ_LEN, c), torch.from_numpy(task.tokens)
    else:
        inputs, true = (_images("digits", range(10), 10**6, run.seed) if run.data == "digits"
                        else _images("fashion_mnist", range(5), FASHION_N, run.seed))
        c, kind = int(true.max()) + 1, "vit"
        ambiguity, partner = cross_val_ambiguity(inputs.flatten(1).numpy(), true)
        assigned = _noisy(run, true, c, partner, ambiguity)
        model = recipes.vit(inputs.shape[-1], 2 if run.data == "digits" else 7, c)
    if finetune:
        recipes.backbone(model).load_state_dict(torch.load(pretrained_file(save, kind), weights_only=True))
    lr = 5e-4 if finetune else 1e-3
    recipes.train_hf(model, recipes.hf_items(inputs, assigned, kind), epochs=epochs, lr=lr, scheduler=scheduler,
                     seed=run.seed, run_dir=out, labels=assigned, true_labels=true, num_classes=c)


def build(runs: list[RegimeRun], save: Path, *, jobs: int, threads: int) -> int:
    """Every unfinished run, ``jobs`` processes at a time of ``threads`` torch threads; returns the failures."""
    pretrain(save)
    todo = [run for run in runs if not is_done(run, save)]
    print(f"{len(runs) - len(todo)} of {len(runs)} runs already done; {len(todo)} to run, {jobs} at a time",
          flush=True)
    running: list[tuple[RegimeRun, subprocess.Popen, float]] = []
    failed = 0
    while todo or running:
        while todo and len(running) < jobs:
            run = todo.pop(0)
            command = [sys.executable, __file__, "--save", str(save), "--threads", str(threads), "--only", run.name]
            running.append((run, subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE),
                            time.time()))
        time.sleep(0.5)
        for entry in [e for e in running if e[1].poll() is not None]:
            run, process, start = entry
            running.remove(entry)
            ok = process.returncode == 0
            failed += not ok
            error = "" if ok else " " + process.stderr.read().decode().strip().splitlines()[-1]
            print(f"[{time.time() - start:6.0f}s] {'ok  ' if ok else 'FAIL'} {run.name}{error}", flush=True)
    return failed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--save", default="runs/pool_regimes", help="folder of the pool (one sub-folder per group)")
    p.add_argument("--groups", nargs="+", default=list(GROUPS), choices=GROUPS, metavar="GROUP",
                   help=f"only these groups ({', '.join(GROUPS)})")
    p.add_argument("--jobs", type=int, default=2, help="runs at once (processes)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--dry_run", action="store_true", help="list the runs and whether each is done")
    p.add_argument("--list", action="store_true", help="print the run folders of the finished runs, one a line")
    p.add_argument("--only", default=None, help=argparse.SUPPRESS)  # one run, in a process of its own
    a = p.parse_args()
    if a.jobs < 1 or a.threads < 1:
        p.error("--jobs and --threads must be at least 1")
    torch.set_num_threads(a.threads)
    save = Path(a.save)
    runs = [run for run in all_runs() if run.group in a.groups]
    if a.only:
        by_name = {run.name: run for run in all_runs()}
        if a.only not in by_name:
            p.error(f"--only: no run {a.only!r}")
        if not is_done(by_name[a.only], save):  # another builder of the same pool may have finished it
            train_run(by_name[a.only], save)
    elif a.list or a.dry_run:
        for run in runs:
            if a.list and is_done(run, save):
                print(run.run_dir(save))
            elif a.dry_run:
                print(("done  " if is_done(run, save) else "to do ") + run.name)
    else:
        sys.exit(1 if build(runs, save, jobs=a.jobs, threads=a.threads) else 0)


if __name__ == "__main__":
    main()
