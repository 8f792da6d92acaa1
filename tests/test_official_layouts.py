"""Tiny ImageNet and Caltech-256 as their official archives unpack: Tiny ImageNet's flat val/ labelled by
val_annotations.txt, Caltech-256's seeded 80/20 split per class (clutter left out), recorded in the run folder."""
import json
from pathlib import Path

import numpy as np
import pytest

from datasets.official import CALTECH_DIR, caltech_split
from datasets.registry import load_dataset
from labeltrace.errors import UsageError
from labeltrace.runfiles import SPLIT_FILE


def _png(path: Path, value: int, size: int = 12) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, dtype=np.uint8)).save(path)


def write_caltech(root: Path, counts: dict[str, int]) -> Path:
    for name, n in counts.items():
        for i in range(n):
            _png(root / "caltech256" / CALTECH_DIR / name / f"{name[:3]}_{i:04d}.jpg", i)
    return root


# 10 images: round(2.0) = 2 test; 5: round(1.0) = 1; 2: round(0.4) = 0, raised to the minimum of 1.
COUNTS = {"001.ak47": 10, "002.bat": 5, "003.cake": 2, "257.clutter": 4}


def test_caltech_split_per_class_seeded_clutter_left_out(tmp_path):
    bundle = load_dataset("caltech256", str(write_caltech(tmp_path, COUNTS)))
    assert bundle.classes == ["001.ak47", "002.bat", "003.cake"] and bundle.num_classes == 3
    assert np.bincount(bundle.test.targets).tolist() == [2, 1, 1]
    assert np.bincount(bundle.train.targets).tolist() == [8, 4, 1]
    assert not set(bundle.train.paths) & set(bundle.test.paths)
    assert not any("clutter" in p for p in bundle.train.paths + bundle.test.paths)
    record = bundle.info["split"]
    assert record["seed"] == 0 and record["left_out"] == ["257.clutter"] and (record["num_train"], record["num_test"]) == (13, 4)
    folder = tmp_path / "caltech256" / CALTECH_DIR
    assert sorted(record["test"]) == sorted(str(Path(p).relative_to(folder)) for p in bundle.test.paths)
    # The same split on every call (one fixed seed, not the run's).
    again = caltech_split(folder)[1]
    assert again.paths == bundle.test.paths


def test_caltech_ready_tree_is_used_as_is_and_missing_layout_named(tmp_path):
    for split, n in (("train", 3), ("val", 1)):
        for c in ("a", "b"):
            for i in range(n):
                _png(tmp_path / "caltech256" / split / c / f"{i}.png", i)
    bundle = load_dataset("caltech256", str(tmp_path))
    assert (len(bundle.train), len(bundle.test)) == (6, 2) and "split" not in bundle.info
    (tmp_path / "empty" / "caltech256").mkdir(parents=True)
    with pytest.raises(UsageError, match="256_ObjectCategories/<NNN.class>/<image>"):
        load_dataset("caltech256", str(tmp_path / "empty"))


def test_step1_writes_the_caltech_split_into_the_run_folder(tmp_path):
    from runner import get_args_parser, main

    write_caltech(tmp_path / "data", COUNTS)
    main(get_args_parser().parse_args([
        "--dataset", "caltech256", "--data", str(tmp_path / "data"), "--net_type", "cnn", "--depth", "2",
        "--image_size", "12", "--num_epochs", "1", "--save", str(tmp_path / "runs"), "--threads", "1",
        "--no_progress"]))
    run_dir = tmp_path / "runs" / "caltech256_cnn2_percmislabeled0.2_uniform" / "computation4td_seed0"
    split = json.loads((run_dir / SPLIT_FILE).read_text())
    assert split["num_test"] == 4 and len(split["test"]) == 4
    assert json.loads((run_dir / "config.json").read_text())["num_train"] == 13


def test_tiny_imagenet_official_val_annotations(tmp_path):
    root = tmp_path / "tiny_imagenet"
    for wnid in ("n01", "n02"):
        for i in range(2):
            _png(root / "train" / wnid / "images" / f"{wnid}_{i}.JPEG", i, size=64)
    for name in ("val_0.JPEG", "val_1.JPEG", "val_2.JPEG"):
        _png(root / "val" / "images" / name, 1, size=64)
    (root / "val" / "val_annotations.txt").write_text(
        "val_1.JPEG\tn01\t0\t0\t63\t63\nval_0.JPEG\tn02\t0\t0\t63\t63\nval_2.JPEG\tn02\t1\t1\t60\t60\n")
    bundle = load_dataset("tiny_imagenet", str(tmp_path))
    assert bundle.classes == ["n01", "n02"] and bundle.image_size == 64
    assert [Path(p).name for p in bundle.test.paths] == ["val_0.JPEG", "val_1.JPEG", "val_2.JPEG"]
    assert bundle.test.targets.tolist() == [1, 0, 1]
    assert bundle.train.targets.tolist() == [0, 0, 1, 1]
    (root / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn99\n")
    with pytest.raises(UsageError, match=r"val_annotations.txt:1: expected"):
        load_dataset("tiny_imagenet", str(tmp_path))
