"""A CIFAR-sized dataset for speed benchmarks, from data that is offline: Fashion-MNIST padded to 32x32 and
repeated over 3 channels, written in CIFAR-10's pickle layout (50,000 train / 10,000 test).

    python benchmarks/make_cifar_like.py /tmp/cifar_like [FASHION_DIR]   # then, on a GPU:
    python benchmarks/bench_paths.py --dataset cifar10 --data /tmp/cifar_like --net_type resnet --depth 32 \
        --max_train 50000 --max_test 10000 --device cuda --threads 8
"""
from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datasets.offline import load_fashion_mnist  # noqa: E402


def to_cifar_rows(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 1, 28, 28) -> CIFAR rows (N, 3072): zero-padded to 32x32, the grey plane as R, G and B."""
    padded = np.pad(images[:, 0], ((0, 0), (2, 2), (2, 2)))
    return np.repeat(padded[:, None], 3, axis=1).reshape(len(images), 3072)


def main(out: str, source: str | None = None) -> None:
    """``source``: a folder holding Fashion-MNIST's idx files (default: ``/usr/share/datasets/fashion-mnist``)."""
    bundle = load_fashion_mnist(Path(source) if source else None)
    folder = Path(out) / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    train_rows, test_rows = to_cifar_rows(bundle.train.images[:50000]), to_cifar_rows(bundle.test.images)
    for i in range(5):
        part = slice(i * 10000, (i + 1) * 10000)
        batch = {"data": train_rows[part], "labels": bundle.train.targets[part].tolist(), "batch_label": f"{i + 1}"}
        with open(folder / f"data_batch_{i + 1}", "wb") as handle:
            pickle.dump(batch, handle, protocol=2)
    with open(folder / "test_batch", "wb") as handle:
        pickle.dump({"data": test_rows, "labels": bundle.test.targets.tolist(), "batch_label": "test"}, handle, protocol=2)
    print(f"wrote {folder}")


def ensure(out: str | Path) -> Path:
    """``out``, holding the CIFAR-like data (made now unless a previous call made it): for the benchmarks that
    train on it."""
    if not (Path(out) / "cifar10" / "cifar-10-batches-py" / "test_batch").is_file():
        main(str(out))
    return Path(out)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/cifar_like", sys.argv[2] if len(sys.argv) > 2 else None)
