"""One run's training dynamics against cleanlab's own flow, at equal data, network, recipe and epochs.

    python benchmarks/vs_cleanlab.py                                   # every dataset, 3 seeds (long)
    python benchmarks/vs_cleanlab.py --datasets digits --seeds 1       # one dataset, one seed
    python benchmarks/vs_cleanlab.py --finetune_from fashion_mnist --datasets digits shapes   # fine-tuning

Per dataset and noise setting (uniform / flip / instance at 0.2 and 0.4):
- ours: ONE training run, its training-pass softmax recorded with :class:`labeltrace.DynamicsRecorder`,
  ranked by the shipped generalist and by the hand-crafted scores (AUM, confidence);
- cleanlab's documented flow: K = 5 stratified folds, each fold's network trained on the other four with the
  same recipe, its softmax on the held-out fold as out-of-sample ``pred_probs``, ranked by
  ``get_label_quality_scores`` (self_confidence, normalized_margin) and flagged by ``find_label_issues``.
Columns: ROC-AUC, mAP, precision at the true noise count, false-negative rate when flagging as many samples
as the nominal noise rate (the protocol of arXiv 2510.16211), training passes over the data and seconds.
With ``--finetune_from``, every training (ours and each fold's) starts from a network the benchmark first
trains on another offline dataset's clean labels (the head re-initialised) and fine-tunes for
:data:`FINETUNE` epochs at a low constant rate: the regime of a practitioner starting from pretrained weights.
Writes every row to ``docs/vs_cleanlab.json`` (a finished setting is not recomputed; ``--rescore`` recomputes our
flow's rows of finished settings after a new generalist is shipped) and prints the tables docs/vs_cleanlab.md and
the README show.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.fit import Recipe, lr_at  # noqa: E402
from datasets.noise import corrupt_labels  # noqa: E402
from datasets.registry import load_dataset  # noqa: E402
from labeltrace import DynamicsRecorder, get_label_quality_scores  # noqa: E402
from labeltrace.baselines import get_baseline  # noqa: E402
from labeltrace.metrics import detection_metrics  # noqa: E402
from labeltrace.neighbours import FeatureTap, disagreement  # noqa: E402
from labeltrace.traces import load_run  # noqa: E402
from models.registry import build_model  # noqa: E402

# The pool's CPU settings of each dataset (benchmarks/pool.py): subset, network, depth, epochs.
SETTINGS = {"digits": dict(max_train=None, net="cnn", depth=3, epochs=40),
            "fashion_mnist": dict(max_train=3000, net="cnn", depth=2, epochs=20),
            "shapes": dict(max_train=None, net="cnn", depth=3, epochs=40)}
NOISE = [(kind, ratio) for kind in ("uniform", "flip", "instance") for ratio in (0.2, 0.4)]
FINETUNE = dict(epochs=8, lr=0.01)  # few epochs at a low rate, no drops: clean samples are fitted at once
FOLDS = 5
BATCH = 128
FASHION_DIR = "/usr/share/datasets/fashion-mnist"
NEIGHBOURS = 20  # our run records the neighbour agreement too, as STEP 1 does by default


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser("one run of training dynamics vs cleanlab's K-fold flow")
    p.add_argument("--datasets", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "vs_cleanlab.json")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "vs_cleanlab", help="run folders of our flow")
    p.add_argument("--finetune_from", default=None, choices=list(SETTINGS),
                   help="pretrain on this dataset's clean labels, then fine-tune every training from it")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rescore", action="store_true",
                   help="recompute our flow's rows of finished settings with the detector shipped now")
    return p


def _data(name: str):
    """Normalized images (N, C, H, W) float32, true labels (N,), uint8 images for instance noise, classes."""
    bundle = load_dataset(name, FASHION_DIR if name == "fashion_mnist" else None)
    bundle = bundle.subset(SETTINGS[name]["max_train"], None)
    images = bundle.train.images
    mean = torch.tensor(bundle.mean).view(1, -1, 1, 1)
    std = torch.tensor(bundle.std).view(1, -1, 1, 1)
    x = (torch.from_numpy(images).float() / 255 - mean) / std
    return x, np.asarray(bundle.train.targets, np.int64), images, bundle


def _recipe(name: str, init: dict | None) -> Recipe:
    """STEP 1's recipe (SGD, Nesterov, LR drops at 50%/75%) at the dataset's epochs, or :data:`FINETUNE`."""
    if init is None:
        return Recipe(epochs=SETTINGS[name]["epochs"])
    return Recipe(epochs=FINETUNE["epochs"], lr=FINETUNE["lr"], milestones=())


def _train(x: torch.Tensor, y: np.ndarray, bundle, net: tuple[str, int], recipe: Recipe, seed: int, *,
           on_batch=None, on_epoch=None, init: dict | None = None):
    """Train ``net`` (type, depth) on (x, y) with ``recipe``, from ``init`` (a state_dict without the head)
    when given; ``on_batch(index, logits, features)`` sees every training forward pass, with the input of the
    network's head (the features of the neighbour agreement). Returns the trained model."""
    torch.manual_seed(seed)
    model = build_model(*net, num_classes=bundle.num_classes, in_channels=bundle.in_channels,
                        image_size=bundle.image_size)
    if init is not None:
        model.load_state_dict(init, strict=False)
    opt = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov,
                          weight_decay=recipe.weight_decay)
    labels, gen = torch.from_numpy(y), torch.Generator().manual_seed(seed)
    with FeatureTap(model) as tap:
        for epoch in range(recipe.epochs):
            for group in opt.param_groups:
                group["lr"] = lr_at(recipe, epoch)
            model.train()
            for idx in torch.randperm(len(y), generator=gen).split(BATCH):
                logits = model(x[idx])
                loss = torch.nn.functional.cross_entropy(logits, labels[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                features = tap.batches.pop()
                if on_batch is not None:
                    on_batch(idx, logits, features)
            if on_epoch is not None:
                on_epoch()
    return model


def _net(name: str) -> tuple[str, int]:
    return SETTINGS[name]["net"], SETTINGS[name]["depth"]


def pretrained(source: str, target: str, work: Path) -> dict:
    """The target's network trained on ``source``'s clean training labels at ``source``'s recipe, its head
    left out (the classes differ in meaning); cached in ``work``. SmallCNN's convolutions and global pooling
    do not depend on image size, so the weights fit the target's images."""
    path = work / f"pretrained_{source}_for_{target}.pt"
    if not path.is_file():
        x, true, _, bundle = _data(source)
        model = _train(x, true, bundle, _net(target), _recipe(source, None), seed=0)
        work.mkdir(parents=True, exist_ok=True)
        torch.save({k: v for k, v in model.state_dict().items() if not k.startswith("fc.")}, path)
    return torch.load(path, weights_only=True)


def _ours(x, true, noisy, bundle, name, seed, run_dir: Path, init) -> tuple[dict, float]:
    """p_noisy of the generalist, AUM and confidence from one recorded run, and its seconds."""
    start = time.perf_counter()
    recorder = DynamicsRecorder(run_dir, labels=noisy, num_classes=bundle.num_classes, true_labels=true,
                                neighbours=NEIGHBOURS)
    _train(x, noisy, bundle, _net(name), _recipe(name, init), seed,
           on_batch=lambda idx, logits, features: recorder.update(idx, logits, features=features),
           on_epoch=recorder.end_epoch, init=init)
    recorder.save()
    return our_scores(run_dir), time.perf_counter() - start


def our_scores(run_dir: Path) -> dict:
    """p_noisy of the shipped generalist and the hand-crafted scores of a recorded run."""
    traces = load_run(run_dir)
    scores = {"generalist": 1 - get_label_quality_scores(run_dir)}
    for baseline in ("aum", "confidence"):
        scores[baseline] = np.asarray(get_baseline(baseline)(traces.td, traces.class_ids), np.float64)
    if traces.neighbours is not None:
        scores["neighbour_disagreement"] = disagreement(traces.neighbours)
    return scores


def _cleanlab(x, noisy, bundle, name, seed, init) -> tuple[dict, np.ndarray, float]:
    """cleanlab's scores from K-fold out-of-sample probabilities, its default issue mask, and its seconds."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores as cl_scores
    from sklearn.model_selection import StratifiedKFold

    start = time.perf_counter()
    pred_probs = np.zeros((len(noisy), bundle.num_classes), np.float32)
    folds = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=seed).split(np.zeros(len(noisy)), noisy)
    for k, (fit_rows, held_rows) in enumerate(folds):
        model = _train(x[fit_rows], noisy[fit_rows], bundle, _net(name), _recipe(name, init), seed * 100 + k,
                       init=init)
        model.eval()
        with torch.no_grad():
            pred_probs[held_rows] = torch.softmax(model(x[held_rows]), 1).numpy()
    seconds = time.perf_counter() - start
    scores = {f"cleanlab {m}": 1 - cl_scores(noisy, pred_probs, method=m)
              for m in ("self_confidence", "normalized_margin")}
    return scores, find_label_issues(noisy, pred_probs), seconds


def ranking_metrics(score: np.ndarray, flipped: np.ndarray, *, budget_rate: float) -> dict:
    """ROC-AUC, mAP, precision among the ``flipped.sum()`` highest scores, and the false-negative rate among
    the ``round(budget_rate * N)`` highest (the share of flipped samples not flagged)."""
    m = detection_metrics(score, flipped, remove_ratio=budget_rate)
    order = np.argsort(-score, kind="stable")
    n_true, budget = int(flipped.sum()), int(round(budget_rate * len(score)))
    return {"roc_auc": m.roc_auc, "map": m.average_precision,
            "precision_at_noise": float(flipped[order[:n_true]].mean()),
            "fnr_at_budget": float(1 - flipped[order[:budget]].sum() / n_true)}


def _noisy(data, kind: str, ratio: float, seed: int) -> np.ndarray:
    x, true, images, bundle = data
    return corrupt_labels(true, ratio=ratio, noise_type=kind, num_classes=bundle.num_classes, split_seed=seed,
                          images=images).assigned


def _run_dir(work: Path, name: str, kind: str, ratio: float, seed: int, init) -> Path:
    return work / f"{name}{'' if init is None else '_finetuned'}_{kind}{ratio}_seed{seed}"


def one_setting(name: str, kind: str, ratio: float, seed: int, work: Path, data, init=None,
                regime: str = "from scratch") -> list[dict]:
    x, true, images, bundle = data
    noisy = _noisy(data, kind, ratio, seed)
    flipped = noisy != true
    ours, ours_s = _ours(x, true, noisy, bundle, name, seed, _run_dir(work, name, kind, ratio, seed, init), init)
    theirs, mask, theirs_s = _cleanlab(x, noisy, bundle, name, seed, init)
    epochs, rows = _recipe(name, init).epochs, []
    for method, score in {**ours, **theirs}.items():
        is_ours = not method.startswith("cleanlab")
        rows.append({"dataset": name, "regime": regime, "noise": kind, "ratio": ratio, "seed": seed, "method": method,
                     **ranking_metrics(score, flipped, budget_rate=ratio),
                     "passes": epochs if is_ours else epochs * (FOLDS - 1),  # K trainings on (K-1)/K of the data
                     "seconds": round(ours_s if is_ours else theirs_s, 1)})
    hits = int((mask & flipped).sum())
    rows.append({"dataset": name, "regime": regime, "noise": kind, "ratio": ratio, "seed": seed,
                 "method": "cleanlab find_label_issues",
                 "flagged": int(mask.sum()), "precision": hits / max(int(mask.sum()), 1),
                 "recall": hits / max(int(flipped.sum()), 1), "passes": epochs * (FOLDS - 1),
                 "seconds": round(theirs_s, 1)})
    return rows


def _frame(rows: list[dict]):
    import pandas as pd

    return pd.DataFrame([{"regime": "from scratch", **r} for r in rows if "roc_auc" in r])


def _setting_means(frame, columns: list[str]):
    """Means per (dataset, regime, method): over seeds within each noise setting first, then over the settings,
    so a setting measured at more seeds weighs no more than the others; and how many runs each mean holds."""
    keys = ["dataset", "regime", "method"]
    per_setting = frame.groupby([*keys, "noise", "ratio"], sort=False)[columns].mean()
    means = per_setting.groupby(level=keys, sort=False).mean()
    return means, frame.groupby(keys, sort=False)["seed"].size()


def full_table(rows: list[dict]) -> str:
    """Mean per dataset, regime and method over every noise setting and seed, as a markdown table."""
    import pandas as pd

    means, runs = _setting_means(_frame(rows), ["roc_auc", "map", "precision_at_noise", "fnr_at_budget", "passes",
                                                "seconds"])
    lines = ["| dataset | regime | runs | method | ROC-AUC | mAP | precision at noise count | FNR at budget | "
             "passes | seconds |", "|---|---|---|---|---|---|---|---|---|---|"]
    for key, r in means.iterrows():
        dataset, regime, method = key
        lines.append(f"| {dataset} | {regime} | {runs[key]} | {method} | {r.roc_auc:.4f} | {r['map']:.4f} | "
                     f"{r.precision_at_noise:.4f} | {r.fnr_at_budget:.4f} | {r.passes:.0f} | {r.seconds:.0f} |")
    issues = pd.DataFrame([{"regime": "from scratch", **r} for r in rows if "recall" in r]).groupby(
        ["dataset", "regime"], sort=False)[["flagged", "precision", "recall"]].mean()
    lines += ["", "| dataset | regime | cleanlab find_label_issues: flagged | precision | recall |",
              "|---|---|---|---|---|"]
    lines += [f"| {d} | {g} | {r.flagged:.0f} | {r.precision:.3f} | {r.recall:.3f} |"
              for (d, g), r in issues.iterrows()]
    return "\n".join(lines)


SHORT = {"generalist": "generalist", "aum": "AUM", "cleanlab self_confidence": "cleanlab 5-fold"}


def short_table(rows: list[dict]) -> str:
    """The README's table: per dataset and regime, ROC-AUC / mAP / FNR at budget of the generalist, AUM and
    cleanlab's default (self_confidence), with each flow's training passes."""
    frame = _frame(rows)
    means, runs = _setting_means(frame[frame.method.isin(list(SHORT))], ["roc_auc", "map", "fnr_at_budget", "passes"])
    head = " | ".join(f"{name} ROC-AUC / mAP / FNR" for name in SHORT.values())
    lines = [f"| dataset | regime | runs | {head} | passes (ours : cleanlab) |", "|---|---|---|" + "---|" * 4]
    for (dataset, regime, method), n in runs.items():
        if method != "generalist":
            continue
        cells = [means.loc[(dataset, regime, m)] for m in SHORT]
        text = " | ".join(f"{c.roc_auc:.3f} / {c['map']:.3f} / {c.fnr_at_budget:.3f}" for c in cells)
        lines.append(f"| {dataset} | {regime} | {n} | {text} | {cells[0].passes:.0f} : {cells[2].passes:.0f} |")
    return "\n".join(lines)


def rescore(rows: list[dict], key: tuple, work: Path, data, init) -> None:
    """Our flow's rows of setting ``key`` (dataset, regime, noise, ratio, seed) anew, in place, with the
    detector shipped now: from the recorded run when ``work`` still holds it, else from the same run trained
    again (same seeds); cleanlab's rows are left as they are."""
    name, regime, kind, ratio, seed = key
    x, true, _, bundle = data
    noisy, run_dir = _noisy(data, kind, ratio, seed), _run_dir(work, name, kind, ratio, seed, init)
    if (run_dir / "metadata.pth").is_file():
        scores = our_scores(run_dir)
    else:
        scores, _ = _ours(x, true, noisy, bundle, name, seed, run_dir, init)
    for row in rows:
        if (row["dataset"], row.get("regime", "from scratch"), row["noise"], row["ratio"], row["seed"]) == key \
                and row["method"] in scores:
            row.update(ranking_metrics(scores[row["method"]], noisy != true, budget_rate=ratio))


def main(args: argparse.Namespace) -> None:
    from labeltrace.io import write_json

    torch.set_num_threads(args.threads)
    rows = json.loads(args.out.read_text()) if args.out.is_file() else []
    regime = f"fine-tuned from {args.finetune_from}" if args.finetune_from else "from scratch"
    done = {(r["dataset"], r.get("regime", "from scratch"), r["noise"], r["ratio"], r["seed"]) for r in rows}
    for name in args.datasets:
        data = _data(name)
        init = pretrained(args.finetune_from, name, args.work) if args.finetune_from else None
        for kind, ratio in NOISE:
            for seed in args.seeds:
                key = (name, regime, kind, ratio, seed)
                if key in done and args.rescore:
                    rescore(rows, key, args.work, data, init)
                elif key not in done:
                    rows += one_setting(name, kind, ratio, seed, args.work, data, init, regime)
                else:
                    continue
                write_json(args.out, rows)  # after every setting: a killed benchmark resumes there
                print(f"{name} ({regime}) {kind} {ratio} seed {seed}: done", flush=True)
    print(full_table(rows))
    print()
    print(short_table(rows))


if __name__ == "__main__":
    main(get_args_parser().parse_args())
