"""Label issues, listed and shown: ``label_issues.csv`` (every sample, most suspicious first) and
``label_issues.png`` (a contact sheet of the top ones, given -> suggested label).

    python find_issues.py RUN_DIR [--detector checkpoints/generalist_lstm_detector.pth.tar] [--top 48]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from core.errors import fail, run_cli
from core.io import check_writable, write_csv
from core.runfiles import CONFIG_FILE, ISSUES_CSV, ISSUES_PNG
from datasets.base import ArraySplit
from datasets.registry import load_dataset
from detector_models.issues import label_issue_table
from detector_models.predict import GENERALIST
from detector_models.traces import load_run
from pipeline.scoring import score_run

def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser("rank a run's samples by how likely their label is wrong; list and show them")
    p.add_argument("run_dir", help="a STEP 1 run folder (or one written by detector_models.api.DynamicsRecorder)")
    p.add_argument("--detector", default=str(GENERALIST), help="a checkpoint or baseline:<score> (default: generalist)")
    p.add_argument("--top", type=int, default=48, help="images on the contact sheet")
    p.add_argument("--data", default=None, help="data directory (default: the one in the run's config.json)")
    p.add_argument("--out", default=None, help="output folder (default: the run folder)")
    return p


def _dataset(config: dict, data: str | None):
    """The training split and class names of the dataset the run was made from, or (None, None) for a run with
    no config.json (one written from a user's own loop)."""
    if not config:
        return None, None
    bundle = load_dataset(config["dataset"], data or config.get("data"), image_size=config.get("image_size"))
    return bundle.subset(config.get("max_train"), config.get("max_test")).train, bundle.classes


def _pictures(split, rows: np.ndarray) -> list[np.ndarray]:
    """The images at training-set positions ``rows``, each (H, W) or (H, W, 3) uint8."""
    if isinstance(split, ArraySplit):
        return [im[0] if im.shape[0] == 1 else im.transpose(1, 2, 0) for im in split.images[rows]]
    from PIL import Image

    pictures = []
    for i in rows:
        with Image.open(split.paths[i]) as image:
            pictures.append(np.asarray(image.convert("RGB").resize((64, 64))))
    return pictures


def write_label_issues(run_dir: Path, detector: str, *, top: int = 48, data: str | None = None,
                       out: Path | None = None) -> Path:
    """``find_issues.py``: score ``run_dir`` with ``detector`` and write the two files into ``out`` (default the
    run folder); return the CSV's path."""
    run_dir, out = Path(run_dir), Path(out or run_dir)
    check_writable(out, flag="--out", folder=True)
    if top < 1:
        fail(f"--top: expected a positive number of images, got {top}")
    traces = load_run(run_dir).without_injected()  # a self-calibration run's own flips are no issues to list
    scores = score_run(detector, traces)
    config_file = run_dir / CONFIG_FILE
    split, classes = _dataset(json.loads(config_file.read_text()) if config_file.is_file() else {}, data)
    return write_issue_files(out, traces, scores, split=split, classes=classes, top=top,
                             title=f"{run_dir.parent.name}/{run_dir.name}")


def write_issue_files(out: Path, traces, scores, *, split=None, classes=None, top: int = 48,
                      suggested: np.ndarray | None = None, title: str = "") -> Path:
    """Write ``label_issues.csv`` (every row of ``traces``, most suspicious by ``scores`` first) and, when the
    training ``split`` is given, ``label_issues.png`` (its ``top`` images) into ``out``; return the CSV's path.
    STEP 3 and data debugging call this with what they have already scored."""
    indices = traces.train_indices if traces.train_indices is not None else np.arange(len(traces.td))
    paths = None if split is None or isinstance(split, ArraySplit) else split.paths
    table = label_issue_table(traces.td, traces.labels, scores.p_noisy, indices=indices, class_names=classes,
                              paths=paths, suggested=suggested)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / ISSUES_CSV, table)
    print(f"{len(table)} samples ranked by {scores.name} -> {out / ISSUES_CSV}")
    if split is None:
        print("note: the run has no config.json naming its dataset: label_issues.png not drawn")
        return out / ISSUES_CSV
    from plotting.figures import contact_sheet, save_png

    shown = table.head(top)
    captions = [f"#{r} {table_name(classes, g)} -> {table_name(classes, s)}\np_noisy {p:.2f}" for r, g, s, p in
                zip(shown["rank"], shown["given_label"], shown["suggested_label"], shown["p_noisy"])]
    save_png(contact_sheet(_pictures(split, shown["index"].to_numpy()), captions,
                           title=f"{title}: the {len(shown)} most suspicious labels (given -> suggested), "
                                 f"{scores.name}"), out / ISSUES_PNG)
    print(f"top {len(shown)} drawn in {out / ISSUES_PNG}")
    return out / ISSUES_CSV


def table_name(classes, c: int) -> str:
    return str(classes[c]) if classes is not None else str(c)


def main(args: argparse.Namespace) -> Path:
    return write_label_issues(Path(args.run_dir), args.detector, top=args.top, data=args.data,
                              out=Path(args.out) if args.out else None)


if __name__ == "__main__":
    run_cli(lambda: main(get_args_parser().parse_args()))
