"""Shared fixtures: small files in the real layouts, and one short real STEP 1 run on digits."""
from __future__ import annotations

import gzip
import pickle
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
torch.set_num_threads(1)


def write_cifar(root: Path, name: str, n_train: int = 20, n_test: int = 10, seed: int = 0) -> Path:
    """CIFAR pickles as the real ones read under ``encoding='latin1'``: ``str`` keys, a uint8 (N, 3072) array."""
    rng = np.random.default_rng(seed)
    if name == "cifar10":
        folder, train_files, test_files, key, k = root / "cifar10" / "cifar-10-batches-py", \
            [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "labels", 10
    else:
        folder, train_files, test_files, key, k = root / "cifar100" / "cifar-100-python", ["train"], ["test"], \
            "fine_labels", 100
    folder.mkdir(parents=True)
    for files, n in ((train_files, n_train), (test_files, n_test)):
        for i, fname in enumerate(files):
            entry = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                     key: [int(x) for x in (np.arange(n) + i) % k], "batch_label": fname}
            with open(folder / fname, "wb") as handle:
                pickle.dump(entry, handle, protocol=2)
    return folder


def write_image_folder(root: Path, classes=("ant", "bee", "cat"), per_class: int = 4, size: int = 12) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", per_class), ("val", 2)):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / split / c / f"{i}.png")
    return root


def write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def write_fashion(folder: Path, n_train: int = 30, n_test: int = 10) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for stem, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{stem}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(folder / f"{stem}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    return folder


DIGITS_EPOCHS = 20


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory) -> Path:
    """A real STEP 1 run: digits, uniform noise 0.2, seed 1, the small CNN, 20 epochs (about 10 s), recorded by
    the paper's eval pass (the default, ``--record train``, is what most other run tests use)."""
    from runner import get_args_parser, main

    save = tmp_path_factory.mktemp("runs")
    args = get_args_parser().parse_args(["--dataset", "digits", "--seed", "1", "--noise_ratio", "0.2",
                                         "--noise_type", "uniform", "--num_epochs", str(DIGITS_EPOCHS),
                                         "--save", str(save), "--threads", "1", "--no_progress", "--record", "eval"])
    main(args)
    return save / "digits_cnn3_percmislabeled0.2_uniform" / "computation4td_seed1"


@pytest.fixture(scope="session")
def digits_finetuned_run(tmp_path_factory) -> Path:
    """A fine-tuning STEP 1 run no detector saw (about 25 s): a cnn 3 trained 5 epochs on 1,000 clean shapes, its
    head left out (``models.registry.without_head``), then fine-tuned on digits with flip noise 0.3, seed 2,
    6 epochs at lr 0.01 without an LR drop, recorded from the training pass."""
    from models.registry import without_head
    from runner import get_args_parser, main

    save = tmp_path_factory.mktemp("finetune")
    common = ["--threads", "1", "--no_progress"]
    main(get_args_parser().parse_args(["--dataset", "shapes", "--max_train", "1000", "--max_test", "200",
                                       "--noise_ratio", "0", "--num_epochs", "5", "--seed", "0",
                                       "--save", str(save / "pretrain"), *common]))
    weights = save / "pretrain" / "shapes_cnn3_percmislabeled0.0_uniform" / "computation4td_seed0" / "model.pth.last"
    torch.save(without_head(torch.load(weights, weights_only=True)), save / "backbone.pt")
    main(get_args_parser().parse_args(["--dataset", "digits", "--seed", "2", "--noise_ratio", "0.3",
                                       "--noise_type", "flip", "--num_epochs", "6", "--lr", "0.01", "--milestones", "",
                                       "--pretrained", str(save / "backbone.pt"), "--save", str(save), *common]))
    return save / "digits_cnn3_percmislabeled0.3_flip" / "computation4td_seed2"
