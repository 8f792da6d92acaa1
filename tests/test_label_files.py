"""``--labels_file``: every format read exactly (datasets/label_files.py), every bad file or flag a one-line error
(exit status 2) before anything is written, the run folder named after the file, and ground truth only where the
dataset's own labels are clean: digits end to end through STEP 3 with ROC-AUC, an image folder without."""
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from labeltrace.errors import UsageError, run_cli
from datasets.label_files import read_bundle_labels, read_labels_file
from datasets.registry import load_dataset
from tests.conftest import write_image_folder

ROOT = Path(__file__).resolve().parents[1]
N_DIGITS, C = 1497, 10
FAST = ["--threads", "1", "--no_progress"]


@pytest.fixture(scope="module")
def digits_labels() -> np.ndarray:
    return load_dataset("digits", None).train.targets


@pytest.fixture(scope="module")
def noisy_digits(digits_labels) -> np.ndarray:
    """The digits labels with about 15% moved to another class: a labels file with ground truth to find."""
    rng = np.random.default_rng(3)
    labels = digits_labels.copy()
    moved = rng.random(len(labels)) < 0.15
    labels[moved] = (labels[moved] + rng.integers(1, C, moved.sum())) % C
    return labels


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """An image folder: train/{ant,bee,cat}/{0..3}.png, 12 px."""
    return write_image_folder(tmp_path_factory.mktemp("folder") / "tree")


def read(path, n=6, **kw):
    return read_labels_file(path, num_samples=n, num_classes=3, **kw)


def save_pt(path: Path, data: dict, *, numpy1_names: bool = False) -> Path:
    """``torch.save`` of a dict as CIFAR-N ships it; ``numpy1_names``: the pickle names numpy's reconstructor as
    numpy 1 did (``numpy.core``), as the files saved in 2021 do."""
    torch.save(data, path)
    if numpy1_names:
        with zipfile.ZipFile(path) as zin:
            items = [(info, zin.read(info.filename)) for info in zin.infolist()]
        with zipfile.ZipFile(path, "w") as zout:
            for info, blob in items:
                if info.filename.endswith("data.pkl"):
                    blob = blob.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
                zout.writestr(info, blob)
    return path


# --- every format, read exactly ---

def test_index_csv_any_order_ids_and_names(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("index,label\n3,bee\n0,2\n5,ant\n1,0\n4,1\n2,cat\n")
    got = read(path, class_names=["ant", "bee", "cat"])
    assert got.dtype == np.int64 and got.tolist() == [2, 0, 2, 1, 1, 0]


def test_path_csv_on_an_image_folder(tree, tmp_path):
    bundle = load_dataset("imagefolder", str(tree))
    listed = bundle.train.paths  # train/ant/0.png ... train/cat/3.png, sorted: ant 0-3, bee 4-7, cat 8-11
    want = (bundle.train.targets + 1) % 3
    rows = [(str(Path(p).relative_to(tree).as_posix()), ["ant", "bee", "cat"][w]) for p, w in zip(listed, want)]
    rows[0] = (listed[0], str(want[0]))  # as the dataset lists it, with a class id
    rows[5] = ("./" + rows[5][0], rows[5][1])
    path = tmp_path / "by_path.csv"
    pd.DataFrame(rows[::-1], columns=["path", "label"]).to_csv(path, index=False)
    assert read_bundle_labels(bundle, path).tolist() == want.tolist()


def test_npy_json_and_dict_json(tmp_path):
    want = [0, 2, 1, 1, 0, 2]
    np.save(tmp_path / "a.npy", np.array(want, dtype=np.int16))
    (tmp_path / "b.json").write_text(json.dumps(want))
    (tmp_path / "c.json").write_text(json.dumps({"labels": want}))
    for name in ("a.npy", "b.json", "c.json"):
        assert read(tmp_path / name).tolist() == want


@pytest.mark.parametrize("numpy1_names", [False, True])
def test_cifar_n_pt_dict_of_numpy_arrays(tmp_path, numpy1_names):
    data = {"clean_label": np.array([0, 1, 2, 0, 1, 2]), "worse_label": np.array([1, 1, 0, 0, 2, 2], np.int32),
            "aggre_label": torch.tensor([2, 1, 2, 0, 1, 2])}
    path = save_pt(tmp_path / "CIFAR-10_human.pt", data, numpy1_names=numpy1_names)
    assert read(path, key="worse_label").tolist() == [1, 1, 0, 0, 2, 2]
    assert read(path, key="aggre_label").tolist() == [2, 1, 2, 0, 1, 2]


# --- bad files and flags: one line naming the file or flag ---

@pytest.mark.parametrize("name,content,key,message", [
    ("l.txt", "0\n", None, "unknown extension '.txt'"),
    ("l.npy", np.zeros(5, int), None, "expected 6 labels (one per sample of the full training set), got 5"),
    ("l.npy", np.array([0.5] * 6), None, "expected integer class ids"),
    ("l.json", [0, 1, 2, 3, 0, 1], None, "label 3 at position 3 is outside the 3 classes 0..2"),
    ("l.json", {"x": [0]}, None, "expected a JSON list of integer labels"),
    ("l.csv", "idx,label\n", None, "expected the header index,label or path,label, got idx,label"),
    ("l.csv", "index,label\n0,0\n1,1\n", None, "expected 6 rows"),
    ("l.csv", "index,label\n0,0\n1,1\n2,2\n3,dog\n4,0\n5,0\n", None, "line 5: unknown class name 'dog'"),
    ("l.csv", "index,label\n0,0\n1,1\n2,2\n3,7\n4,0\n5,0\n", None, "line 5: label 7 is outside the 3 classes"),
    ("l.csv", "index,label\n0,0\n1,1\n2,2\n2,1\n4,0\n5,0\n", None, "line 5: '2' is labelled twice (also line 4)"),
    ("l.csv", "index,label\n0,0\n1,1\n2,2\n9,1\n4,0\n5,0\n", None, "line 5: index '9' is not a training-set position"),
    # str.isdigit admits '²' (int() then raises) and other scripts' digits: ASCII digits only
    ("l.csv", "index,label\n0,0\n1,1\n2,2\n\u00b2,1\n4,0\n5,0\n", None, "line 5: index '\u00b2' is not a training-set"),
    ("l.csv", "index,label\n0,0\n1,1\n2,2\n3,\u00b2\n4,0\n5,0\n", None, "line 5: unknown class name '\u00b2'"),
    ("l.csv", "index,label\n0,0\n1,1\n2,2\n3,\u0661\n4,0\n5,0\n", None, "line 5: unknown class name '\u0661'"),
    ("l.csv", "path,label\n" + "a.png,0\n" * 6, None, "a path,label CSV needs a folder dataset"),
    ("l.pt", {"clean_label": np.zeros(6, int), "noisy_label": np.zeros(6, int)}, None,
     "choose the labels with --labels_key; its keys: clean_label, noisy_label"),
    ("l.pt", {"clean_label": np.zeros(6, int)}, "worse_label", "--labels_key worse_label: not in --labels_file"),
    ("l.npy", np.zeros(6, int), "worse_label", "--labels_key worse_label: only a .pt labels file has keys"),
])
def test_bad_labels_files(tmp_path, name, content, key, message):
    path = tmp_path / name
    if name.endswith(".npy"):
        np.save(path, content)
    elif name.endswith(".json"):
        path.write_text(json.dumps(content))
    elif name.endswith(".pt"):
        save_pt(path, content)
    else:
        path.write_text(content)
    with pytest.raises(UsageError) as info:
        read(path, key=key)
    assert message in str(info.value) and ("--labels_file" in str(info.value) or "--labels_key" in str(info.value))
    assert "\n" not in str(info.value)


def test_unknown_path_is_named(tree, tmp_path):
    bundle = load_dataset("imagefolder", str(tree))
    rows = [Path(p).relative_to(tree).as_posix() for p in bundle.train.paths]
    rows[7] = "train/bee/missing.png"
    path = tmp_path / "p.csv"
    path.write_text("path,label\n" + "".join(f"{r},ant\n" for r in rows))
    with pytest.raises(UsageError, match=r"line 9: unknown path 'train/bee/missing.png'.*e\.g\. train/ant/0\.png"):
        read_bundle_labels(bundle, path)


def step1(argv, capsys):
    """runner.py under run_cli, in this process: (exit status, stderr)."""
    from runner import get_args_parser, main

    try:
        run_cli(lambda: main(get_args_parser().parse_args(argv)))
    except SystemExit as exc:
        return exc.code, capsys.readouterr().err
    return 0, capsys.readouterr().err


def test_cli_errors_exit_2_and_write_nothing(tmp_path, capsys, digits_labels):
    np.save(tmp_path / "short.npy", digits_labels[:100])
    np.save(tmp_path / "ok.npy", digits_labels)
    save_pt(tmp_path / "n.pt", {"clean_label": digits_labels, "worse_label": digits_labels})
    (tmp_path / "l.txt").write_text("0\n")
    (tmp_path / "h.csv").write_text("idx,label\n0,1\n")
    (tmp_path / "r.json").write_text(json.dumps([0] * 9 + [10] + [0] * (N_DIGITS - 10)))
    save = tmp_path / "runs"
    cases = [
        (["--labels_file", str(tmp_path / "l.txt")], "unknown extension '.txt'"),
        (["--labels_file", str(tmp_path / "h.csv")], "h.csv: expected the header index,label or path,label"),
        (["--labels_file", str(tmp_path / "r.json")], "label 10 at position 9 is outside the 10 classes"),
        (["--labels_file", str(tmp_path / "none.npy")], "--labels_file: no such file"),
        (["--labels_file", str(tmp_path / "short.npy")], f"expected {N_DIGITS} labels"),
        (["--labels_file", str(tmp_path / "n.pt")], "--labels_key; its keys: clean_label, worse_label"),
        (["--labels_key", "worse_label"], "--labels_key worse_label: needs --labels_file"),
        (["--labels_file", str(tmp_path / "ok.npy"), "--noise_ratio", "0.4"], "got --noise_ratio 0.4"),
        (["--labels_file", str(tmp_path / "ok.npy"), "--noise_type", "flip"], "got --noise_type flip"),
    ]
    for argv, message in cases:
        code, err = step1(["--dataset", "digits", "--save", str(save), "--num_epochs", "1", *FAST, *argv], capsys)
        assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and message in err, (argv, err)
        assert not save.exists()
    r = subprocess.run(["bash", "generate_td.sh", "none", "digits", "1", "0.2", "uniform", "cnn", "3", str(save),
                        "--labels_file", str(tmp_path / "ok.npy"), *FAST], cwd=ROOT, capture_output=True, text=True,
                       timeout=120, env={"PYTHON": sys.executable, "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 2 and "gives the labels, no synthetic noise is drawn" in r.stderr and not save.exists()


def test_run_folder_names_never_meet_synthetic_noise(tmp_path):
    from pipeline.settings import resolve_settings
    from runner import get_args_parser

    pt = save_pt(tmp_path / "CIFAR-10_human.pt", {"worse_label": np.zeros(3, int)})
    s = resolve_settings(get_args_parser().parse_args(["--dataset", "cifar10", "--seed", "1", "--save", "out",
                                                       "--labels_file", str(pt), "--labels_key", "worse_label"]))
    assert s.td_run_dir == Path("out/cifar10_resnet32_labels-CIFAR-10_human-worse_label/computation4td_seed1")
    assert s.has_ground_truth and (s.noise_ratio, s.noise_type) == (0.0, "labels_file")
    s = resolve_settings(get_args_parser().parse_args(["--dataset", "imagefolder", "--labels_file", str(pt),
                                                       "--labels_key", "worse_label", "--noise_ratio", "0"]))
    assert not s.has_ground_truth and "not known to be clean" in s.no_truth_reason


# --- end to end ---

def test_digits_labels_file_step1_and_step3_roc_auc(tmp_path, noisy_digits, digits_labels, capsys):
    """STEP 1 on digits with a labels file (the first 600 of its 1,497 rows under --max_train), then STEP 3 via
    small_dataset_sym_denoise.sh with the same flags: it finds the run and reports ROC-AUC."""
    from runner import get_args_parser, main

    np.save(tmp_path / "noisy.npy", noisy_digits)
    save, n = tmp_path / "runs", 600
    common = ["--max_train", str(n), "--labels_file", str(tmp_path / "noisy.npy"), *FAST]
    main(get_args_parser().parse_args(["--dataset", "digits", "--seed", "1", "--save", str(save),
                                       "--num_epochs", "4", *common]))
    run = save / "digits_cnn3_labels-noisy" / "computation4td_seed1"
    meta = torch.load(run / "metadata.pth", weights_only=True)
    assigned, flipped = meta["assigned_targets"].numpy(), meta["label_flipped"].numpy()
    assert np.array_equal(assigned, noisy_digits[:n]) and np.array_equal(meta["true_targets"].numpy(),
                                                                          digits_labels[:n])
    assert np.array_equal(flipped, noisy_digits[:n] != digits_labels[:n]) and flipped.any()
    config = json.loads((run / "config.json").read_text())
    assert (config["noise_type"], config["noise_ratio"]) == ("labels_file", 0.0)
    main(get_args_parser().parse_args(["--dataset", "digits", "--seed", "1", "--save", str(save), "--num_epochs",
                                       "4", *common]))  # the same command again: resume.pth loads, nothing re-runs
    assert "already complete" in capsys.readouterr().out
    assert config["realised_noise_rate"] == pytest.approx(flipped.mean())
    r = subprocess.run(["bash", "small_dataset_sym_denoise.sh", "none", "digits", "1", "0", "uniform", str(save),
                        "baseline:confidence", "0.2", "--num_epochs", "1", *common], cwd=ROOT, capture_output=True,
                       text=True, timeout=120,
                       env={"PYTHON": sys.executable, "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    summary = json.loads((save / "digits_cnn3_labels-noisy" / "prune4retrain_seed1" / "detector_baseline_confidence"
                          / "percremove0.2" / "summary.json").read_text())
    assert summary["detection"]["roc_auc"] > 0.6 and "ROC-AUC" in r.stdout
    assert summary["noise_rate_before"] == pytest.approx(flipped.mean())


def test_image_folder_labels_file_has_no_ground_truth(tree, tmp_path, capsys):
    """A labels file over an image folder: the folder's labels are not known to be clean, so nothing is
    "flipped" and STEP 3 reports no detection metrics, as for real noise."""
    from denoise import get_args_parser as denoise_parser, main as denoise_main
    from runner import get_args_parser, main

    bundle = load_dataset("imagefolder", str(tree))
    want = (bundle.train.targets + np.arange(12) % 2) % 3
    path = tmp_path / "relabel.csv"
    path.write_text("path,label\n" + "".join(f"{Path(p).relative_to(tree).as_posix()},{w}\n"
                                             for p, w in zip(bundle.train.paths, want)))
    flags = ["--data", str(tree), "--dataset", "imagefolder", "--seed", "1", "--save", str(tmp_path / "runs"),
             "--labels_file", str(path), "--net_type", "cnn", "--depth", "1", "--image_size", "12", *FAST]
    main(get_args_parser().parse_args([*flags, "--num_epochs", "2"]))
    run = tmp_path / "runs" / "imagefolder_cnn1_labels-relabel" / "computation4td_seed1"
    meta = torch.load(run / "metadata.pth", weights_only=True)
    assert meta["assigned_targets"].tolist() == want.tolist() and not meta["label_flipped"].any()
    assert meta["true_targets"].tolist() == bundle.train.targets.tolist()  # the folder's, not known to be clean
    capsys.readouterr()
    s = denoise_main(denoise_parser().parse_args([*flags, "--detector", "baseline:confidence", "--remove_ratio",
                                                  "0.25", "--num_epochs", "1"]))[0]
    out = capsys.readouterr().out
    assert s["detection"] is None and "no ground truth" in s["detection_note"] and "no ground truth" in out
    assert s["noise_rate_after"] is None and s["num_removed"] == 3
    with pytest.raises(UsageError, match="not known to be clean, there is no ground truth"):
        denoise_main(denoise_parser().parse_args([*flags, "--removal", "oracle", "--num_epochs", "1"]))
