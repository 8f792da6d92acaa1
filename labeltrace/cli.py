"""The ``labeltrace`` command: what a practitioner runs after training.

    labeltrace issues RUN_DIR                          # rank with the shipped generalist (or --td_run RUN_DIR)
    labeltrace issues RUN_DIR --detector baseline:aum  # or a hand-crafted score, or a checkpoint file
    labeltrace issues RUN_DIR --images images.npy --classes cat,dog,...   # and draw the contact sheet
    labeltrace baselines                               # the names --detector baseline:<name> takes

RUN_DIR is a run folder: one that :class:`labeltrace.DynamicsRecorder` (or an adapter) wrote, or a STEP 1 run.
Writes ``label_issues.csv`` (every sample, most suspicious first) and, with ``--images``, ``label_issues.png``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from labeltrace.errors import UsageError, fail, run_cli
from labeltrace.predict import GENERALIST_NAME

__all__ = ["main"]


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser("labeltrace", description="Find mislabeled samples from training dynamics.")
    commands = parser.add_subparsers(dest="command")  # none given: main says what to run
    issues = commands.add_parser("issues", help="rank a run folder's samples by how likely their label is wrong")
    add_run_dir(issues, help="a run folder (training_dynamics.npz + metadata.pth)")
    issues.add_argument("--detector", default=GENERALIST_NAME,
                        help="'generalist' (default: the shipped one that fits the run), a detector checkpoint, "
                             "or baseline:<name>")
    issues.add_argument("--out", type=Path, default=None, help="output folder (default: the run folder)")
    issues.add_argument("--top", type=int, default=48, help="images on the contact sheet (default 48)")
    issues.add_argument("--images", type=Path, default=None,
                        help=".npy of the training images by sample index, (N, H, W) or (N, H, W, 3) uint8: "
                             "draws label_issues.png")
    issues.add_argument("--classes", default=None, help="class names, comma-separated, in label order")
    issues.add_argument("--threads", type=int, default=1, help="torch threads (default 1; 0: torch's default)")
    commands.add_parser("baselines", help="list the hand-crafted scores --detector baseline:<name> accepts")
    return parser


def add_run_dir(p: argparse.ArgumentParser, help: str) -> None:
    """A run folder taken as the positional ``RUN_DIR`` or as ``--td_run``, the flag every command
    taking a run folder accepts; read it back with :func:`run_dir`."""
    p.add_argument("run_dir", nargs="?", default=None, help=help)
    p.add_argument("--td_run", default=None, metavar="RUN_DIR", help="the same as the positional RUN_DIR")


def run_dir(args: argparse.Namespace) -> str:
    """The run folder of :func:`add_run_dir`'s two spellings; neither, or two different ones, is a UsageError."""
    given = {path for path in (args.run_dir, args.td_run) if path is not None}
    if len(given) != 1:
        raise UsageError("expected one STEP 1 run folder, as RUN_DIR or --td_run"
                         + (f", got two: {' and '.join(sorted(given))}" if given else ""))
    return given.pop()


def set_threads(threads: int) -> int:
    """Use ``threads`` torch CPU threads, 0 meaning torch's default (the one meaning of ``--threads`` in every
    command); a negative count is a one-line error. Returns the number in use."""
    import torch

    if threads < 0:
        fail(f"--threads: expected 0 or more (0: torch's default), got {threads}")
    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def _images(path: Path | None, n: int):
    """A ``pictures(rows)`` callable over the uint8 images in ``path`` (memory-mapped), or None."""
    if path is None:
        return None
    if not path.is_file():
        fail(f"--images: {path}: no such file (expected a .npy of the training images)")
    try:
        images = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        fail(f"--images: {path}: not a readable .npy file ({exc or 'empty'})")
    if not isinstance(images, np.ndarray):  # a zip archive: an .npz, or a torch.save file
        images.close()
        fail(f"--images: {path}: a zip archive (.npz or torch file), expected a .npy of the training images")
    if images.dtype != np.uint8 or images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[3] != 3):
        fail(f"--images: {path}: expected uint8 of shape (N, H, W) or (N, H, W, 3), "
             f"got {images.dtype} {images.shape}")
    if len(images) < n:
        fail(f"--images: {path} holds {len(images)} images for a run of {n} samples")
    return lambda rows: [np.asarray(images[i]) for i in rows]


def issues(args: argparse.Namespace) -> Path:
    import torch

    from labeltrace.io import check_writable
    from labeltrace.issues import write_issue_files
    from labeltrace.scoring import score_run
    from labeltrace.traces import load_run

    folder = Path(run_dir(args))
    if args.top < 1:
        fail(f"--top: expected a positive number of images, got {args.top}")
    set_threads(args.threads)
    out = args.out or folder
    check_writable(out, flag="--out", folder=True)
    traces = load_run(folder).without_injected()
    classes = args.classes.split(",") if args.classes else None
    num_classes = traces.num_classes
    if classes is not None and len(classes) != num_classes:
        fail(f"--classes: {len(classes)} names for a run of {num_classes} classes")
    n = int(traces.train_indices.max()) + 1 if traces.train_indices is not None and len(traces.td) else len(traces.td)
    pictures = _images(args.images, n)
    scores = score_run(args.detector, traces)
    if scores.note:
        print(scores.note)
    return write_issue_files(out, traces, scores, pictures=pictures, classes=classes, top=args.top,
                             title=folder.name)


def main(argv: list[str] | None = None) -> None:
    args = get_args_parser().parse_args(argv)
    if args.command is None:
        run_cli(lambda: fail("labeltrace needs a command: 'labeltrace issues RUN_DIR' ranks a run's samples, "
                             "'labeltrace baselines' lists the scores (labeltrace issues --help for its flags)"))
    if args.command == "baselines":
        from labeltrace.baselines import BASELINES

        print("\n".join(f"baseline:{name}" for name in BASELINES))
        return
    run_cli(lambda: issues(args), resumable=False)


if __name__ == "__main__":
    main()
