import numpy as np
import pytest

from labeltrace.errors import UsageError
from datasets.offline import FASHION_SYSTEM_DIR
from datasets.registry import load_dataset
from tests.conftest import write_cifar, write_fashion, write_image_folder


def test_cifar10_pickles(tmp_path):
    write_cifar(tmp_path, "cifar10", n_train=20, n_test=10)
    b = load_dataset("cifar10", str(tmp_path))
    assert b.train.images.shape == (100, 3, 32, 32) and b.train.images.dtype == np.uint8
    assert b.test.images.shape == (10, 3, 32, 32) and b.num_classes == 10
    assert b.train.targets[:3].tolist() == [0, 1, 2] and b.train.targets[20:23].tolist() == [1, 2, 3]


def test_cifar100_pickles_use_fine_labels(tmp_path):
    write_cifar(tmp_path, "cifar100", n_train=30, n_test=5)
    b = load_dataset("cifar100", str(tmp_path))
    assert len(b.train) == 30 and len(b.test) == 5 and b.num_classes == 100
    assert b.train.targets.tolist() == list(range(30))


def test_cifar_pixel_layout_is_channel_planes(tmp_path):
    folder = write_cifar(tmp_path, "cifar10", n_train=2, n_test=1)
    import pickle
    with open(folder / "data_batch_1", "rb") as f:
        raw = pickle.load(f, encoding="latin1")["data"]
    b = load_dataset("cifar10", str(tmp_path))
    assert np.array_equal(b.train.images[0, 1].ravel(), raw[0, 1024:2048])  # the green plane


def test_missing_cifar_names_expected_path(tmp_path):
    with pytest.raises(UsageError, match=r"cifar10/cifar-10-batches-py"):
        load_dataset("cifar10", str(tmp_path))


def test_corrupt_cifar_batch(tmp_path):
    folder = write_cifar(tmp_path, "cifar10")
    (folder / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(UsageError, match="data_batch_3"):
        load_dataset("cifar10", str(tmp_path))


def test_image_folder_tree(tmp_path):
    write_image_folder(tmp_path / "tiny_imagenet", per_class=4)
    b = load_dataset("tiny_imagenet", str(tmp_path), image_size=64)  # the recipe size (the files are 12 px)
    assert len(b.train) == 12 and len(b.test) == 6 and b.num_classes == 3
    assert b.classes == ["ant", "bee", "cat"] and b.train.targets.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    from datasets.folders import FolderImages
    x, i = FolderImages(b.train, b, train=True)[5]
    assert tuple(x.shape) == (3, 64, 64) and i == 5


def test_imagefolder_any_path(tmp_path):
    tree = write_image_folder(tmp_path / "mine", classes=("a", "b"), per_class=3)
    b = load_dataset("imagefolder", str(tree))
    assert (len(b.train), len(b.test), b.num_classes) == (6, 4, 2)


def test_image_folder_wrong_layout(tmp_path):
    (tmp_path / "caltech256" / "images").mkdir(parents=True)
    with pytest.raises(UsageError, match=r"caltech256/train/<class>/<image>"):
        load_dataset("caltech256", str(tmp_path))


def test_fashion_idx_files(tmp_path):
    write_fashion(tmp_path / "fashion_mnist", n_train=30, n_test=10)
    b = load_dataset("fashion_mnist", str(tmp_path))
    assert b.train.images.shape == (30, 1, 28, 28) and b.test.images.shape == (10, 1, 28, 28)
    assert b.train.targets.tolist() == [i % 10 for i in range(30)]


def test_fashion_truncated_file(tmp_path):
    folder = write_fashion(tmp_path / "fashion_mnist")
    import gzip
    with gzip.open(folder / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(b"\x00\x00\x08\x03" + (30).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + b"\x00" * 10)
    with pytest.raises(UsageError, match="train-images-idx3-ubyte.gz: header says"):
        load_dataset("fashion_mnist", str(tmp_path))


@pytest.mark.skipif(not FASHION_SYSTEM_DIR.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_system_copy():
    b = load_dataset("fashion_mnist", None).subset(1000, 200)
    assert b.train.images.shape == (1000, 1, 28, 28) and len(b.test) == 200
    assert np.bincount(load_dataset("fashion_mnist", None).train.targets).tolist() == [6000] * 10


def test_digits_embedded():
    b = load_dataset("digits", None)
    assert b.train.images.shape == (1497, 1, 8, 8) and len(b.test) == 300 and b.train.images.max() == 255


def test_unknown_dataset_lists_valid():
    with pytest.raises(UsageError, match="valid: .*cifar10.*digits"):
        load_dataset("mnist3d", None)


def test_missing_data_dir(tmp_path):
    with pytest.raises(UsageError, match=f"data directory {tmp_path / 'nope'} does not exist"):
        load_dataset("cifar10", str(tmp_path / "nope"))


def test_folder_images_train_at_their_own_size_when_small(tmp_path, capsys):
    """28 px PNGs train at 28 px, not upscaled to 224 (~60x the memory); large ones keep the default."""
    small = load_dataset("imagefolder", str(write_image_folder(tmp_path / "small", size=28)))
    assert small.image_size == 28 and small.info["image_size_choice"].startswith("28 px: the images' own size")
    assert small.augment.pad == 3  # CIFAR-style pad-and-crop at 28 // 8
    large = load_dataset("imagefolder", str(write_image_folder(tmp_path / "large", size=96)))
    assert large.image_size == 224 and "the images are 96 px, above 64" in large.info["image_size_choice"]
    forced = load_dataset("imagefolder", str(tmp_path / "small"), image_size=16)
    assert forced.image_size == 16 and forced.info["image_size_choice"] == "16 px: --image_size 16"


def test_shapes_is_generated_the_same_everywhere():
    """The third offline dataset (datasets/shapes.py): float64 geometry and numpy's PCG64 make it byte-equal on
    every machine; a change of the generator changes the digest, and the pool's shapes runs must be remade."""
    import hashlib

    b = load_dataset("shapes", None)
    assert b.train.images.shape == (4000, 1, 16, 16) and b.test.images.shape == (1000, 1, 16, 16)
    assert b.train.images.dtype == np.uint8 and b.num_classes == 10 and b.classes[0] == "disc"
    assert hashlib.sha1(b.train.images.tobytes()).hexdigest()[:12] == "057f2c578ded"
    assert b.train.targets[:10].tolist() == [6, 4, 3, 0, 2, 8, 6, 1, 5, 6]
    counts = np.bincount(np.concatenate([b.train.targets, b.test.targets]))
    assert counts.tolist() == [500] * 10  # classes in turn over the 5,000 images
