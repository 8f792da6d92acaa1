"""A generated training loop for the recorder tests: logits that depend only on (sample, epoch), so any batching,
order or split over ranks gives every sample the same probabilities.

    python tests/recorder_loop.py RUN_DIR LAYOUT EPOCHS [--kill_in_epoch K]        # one process
    torchrun --nproc_per_node 2 tests/recorder_loop.py RUN_DIR LAYOUT EPOCHS       # each rank its share
"""
import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

N, C, BATCH = 61, 12, 8  # N odd: a distributed sampler pads by repeating samples


def given_labels() -> np.ndarray:
    true = np.arange(N) % C
    noisy = true.copy()
    noisy[::5] = (true[::5] + 3) % C  # every fifth label flipped
    return noisy


def true_labels() -> np.ndarray:
    return np.arange(N) % C


def logits(index: np.ndarray, epoch: int) -> torch.Tensor:
    """(B, C): a wave in (sample, class, epoch) plus a bump on the true class growing with the epoch."""
    index = np.asarray(index)
    waves = np.sin(np.outer(index + 1, np.arange(C) + 1) * 0.37 + 0.9 * epoch) * 3.0
    waves[np.arange(len(index)), true_labels()[index]] += 0.8 * epoch
    return torch.as_tensor(waves, dtype=torch.float32)


def epoch_order(epoch: int) -> np.ndarray:
    return np.random.default_rng(epoch).permutation(N)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("run_dir")
    p.add_argument("layout")
    p.add_argument("epochs", type=int)
    p.add_argument("--kill_in_epoch", type=int, default=None, help="os._exit halfway through this epoch (0-based)")
    args = p.parse_args()
    torch.set_num_threads(1)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        import torch.distributed as dist

        dist.init_process_group("gloo")
    from labeltrace.recorder import DynamicsRecorder

    recorder = DynamicsRecorder(args.run_dir, labels=given_labels(), num_classes=C, true_labels=true_labels(),
                                layout=args.layout)
    rank = int(os.environ.get("RANK", "0"))
    for epoch in range(recorder.num_epochs, args.epochs):
        order = epoch_order(epoch)
        order = np.concatenate([order, order[: (-len(order)) % world]])  # padded like DistributedSampler
        mine = order[rank::world]
        for b, start in enumerate(range(0, len(mine), BATCH)):
            if epoch == args.kill_in_epoch and b == 3:
                os._exit(0)  # no cleanup at all, as a killed process
            index = mine[start:start + BATCH]
            recorder.update(torch.as_tensor(index), logits(index, epoch))
        recorder.end_epoch()
    recorder.save()
    sys.stdout.flush()
    os._exit(0)  # gloo's teardown can abort a finished worker (core/distributed.py: end_worker)


if __name__ == "__main__":
    main()
