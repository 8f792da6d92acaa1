"""Export recorded traces in the data-maps layout of Dataset Cartography (allenai/cartography).

    python -m pipeline.export runs/digits_.../computation4td_seed1 [--out DIR]

Cartography's ``log_training_dynamics`` writes one JSON-lines file per epoch,
``<model_dir>/training_dynamics/dynamics_epoch_{e}.jsonl``, one record per training sample:
``{"guid": <id>, "logits_epoch_{e}": [C floats, class order], "gold": <label trained on>}``. Its
``read_training_dynamics`` counts every file in that folder as an epoch and expects every guid in every
epoch file, so the folder holds the epoch files and nothing else. (The version of its reader we checked
opens ``dynamics_epoch_{e}.json``, without the ``l``, although its writer and its sample data use
``.jsonl``: pass ``suffix=".json"`` to feed that reader unchanged.)

We record probabilities, not logits: the ``logits_epoch_{e}`` field holds log-probabilities
``log(max(p, 1e-8))``. That is a softmax-equivalent choice, ``softmax(log p) = p`` (up to the clip and
float16 rounding), so cartography's confidence, variability, correctness and forgetfulness, which apply a
softmax or an argmax to the field, come out as from the real logits.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from labeltrace.errors import UsageError, run_cli
from labeltrace.io import atomic_open, check_writable
from labeltrace.baselines import to_class_order
from labeltrace.traces import load_run

LOG_FLOOR = 1e-8  # float16 probabilities reach 0; log(0) is not JSON
DECIMALS = 4  # float16 holds ~3 significant digits: more is noise


def epoch_records(td: np.ndarray, labels: np.ndarray, epoch: int, *,
                  guids: np.ndarray | None = None) -> list[dict]:
    """Cartography records of one epoch.

    Parameters
    ----------
    td : array of shape (N, T, C), channel-ordered probabilities (channel 0 = assigned label).
    labels : int array of shape (N, C), the class id of each channel.
    epoch : index into T.
    guids : array of shape (N,), the sample ids (e.g. ``train_indices``); row positions by default.

    Returns
    -------
    list of N dicts ``{"guid", "logits_epoch_{epoch}", "gold"}`` with log-probabilities in class order and
    ``gold`` = the assigned (possibly noisy) label, the one the model was trained on.
    """
    if not 0 <= epoch < td.shape[1]:
        raise UsageError(f"epoch {epoch} out of range: the traces hold {td.shape[1]} epochs")
    guids = np.arange(len(td)) if guids is None else np.asarray(guids)
    if len(guids) != len(td):
        raise UsageError(f"{len(guids)} guids for {len(td)} samples")
    probs = to_class_order(td[:, epoch, :].astype(np.float32), labels)
    logp = np.round(np.log(np.maximum(probs, LOG_FLOOR)).astype(np.float64), DECIMALS).tolist()
    gold = np.asarray(labels)[:, 0].tolist()
    key = f"logits_epoch_{epoch}"
    return [{"guid": guid, key: row, "gold": g} for guid, row, g in zip(guids.tolist(), logp, gold)]


def export_data_maps(td: np.ndarray, labels: np.ndarray, model_dir: str | os.PathLike, *,
                     guids: np.ndarray | None = None, suffix: str = ".jsonl") -> list[Path]:
    """Write ``<model_dir>/training_dynamics/dynamics_epoch_{e}<suffix>`` for every epoch, atomically, then
    remove the epoch files this run does not have (a longer run's, or the other suffix's, exported there
    before): cartography would count them as epochs of this run.

    Shapes as in :func:`epoch_records`. Returns the written paths, in epoch order.
    """
    folder = Path(model_dir) / "training_dynamics"
    folder.mkdir(parents=True, exist_ok=True)
    stray = [p.name for p in folder.iterdir() if not p.name.startswith("dynamics_epoch_")]
    if stray:
        raise UsageError(f"{folder} holds other files ({', '.join(stray[:3])}): cartography reads every "
                         "file there as an epoch; choose an empty folder")
    paths = []
    for epoch in range(td.shape[1]):
        path = folder / f"dynamics_epoch_{epoch}{suffix}"
        with atomic_open(path, "w") as handle:
            for record in epoch_records(td, labels, epoch, guids=guids):
                handle.write(json.dumps(record) + "\n")
        paths.append(path)
    for stale in set(folder.glob("dynamics_epoch_*")) - set(paths):
        stale.unlink()
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="run folder with training_dynamics.npz (+ metadata.pth)")
    parser.add_argument("--out", type=Path, default=None,
                        help="cartography model_dir to write into (default: <run_dir>/data_maps)")
    parser.add_argument("--suffix", default=".jsonl", choices=[".jsonl", ".json"])
    args = parser.parse_args(argv)
    out = args.out or args.run_dir / "data_maps"
    check_writable(out / "training_dynamics", flag="--out", folder=True)
    run = load_run(args.run_dir)
    paths = export_data_maps(run.td, run.class_ids, out, guids=run.train_indices, suffix=args.suffix)
    print(f"wrote {len(paths)} epoch files to {paths[0].parent if paths else args.out}")


if __name__ == "__main__":
    run_cli(main, resumable=False)
