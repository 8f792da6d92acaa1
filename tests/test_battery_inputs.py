"""The second bad-input battery, continued: values that were accepted without a word (now an error, or a
one-line note where the value is legal) and messages that did not say what was wrong."""
import errno
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from labeltrace.errors import UsageError, run_cli
from tests.conftest import write_cifar, write_fashion, write_image_folder
from tests.test_battery import digest
from tests.test_sound import RUN, finished, killed, one_line_error, step1, step2, step3, synthetic  # noqa: F401


# -- accepted without a word -------------------------------------------------------------------------------------

def test_16_bit_png_is_scaled_not_white(tmp_path):
    """An I;16 PNG holds 0..65535; convert("RGB") clipped every value above 255 to white. Scaled by
    255 / 65535: 0 -> 0, 13107 -> 51, 65535 -> 255."""
    from PIL import Image

    from datasets.folders import to_rgb

    path = tmp_path / "deep.png"
    Image.fromarray(np.array([[0, 13107, 65535]], dtype=np.uint16)).save(path)
    with Image.open(path) as img:
        assert img.mode.startswith("I")
        rgb = np.asarray(to_rgb(img))
    assert rgb.shape == (1, 3, 3) and rgb[0, :, 0].tolist() == [0, 51, 255]


def test_image_size_beyond_the_machines_memory(tmp_path, capsys):
    """3 x 100000^2 float32 = 120 GB for one image, x32 for its activations: no machine here holds it."""
    one_line_error(step1(tmp_path / "runs", "--image_size", "100000"), capsys,
                   "--image_size 100000: one image and its activations need about 3,576 GiB")
    assert not (tmp_path / "runs").exists()


def test_cifar_float_labels_are_not_truncated(tmp_path):
    from datasets.registry import load_dataset

    folder = write_cifar(tmp_path, "cifar10")
    with open(folder / "data_batch_2", "rb") as handle:
        entry = pickle.load(handle)
    entry["labels"] = [0.5] + entry["labels"][1:]
    with open(folder / "data_batch_2", "wb") as handle:
        pickle.dump(entry, handle, protocol=2)
    with pytest.raises(UsageError, match="data_batch_2: label 0.5 at position 0 is not a whole class number"):
        load_dataset("cifar10", str(tmp_path))


def test_num_valid_that_leaves_fewer_samples_than_classes(tmp_path, capsys):
    one_line_error(step1(tmp_path / "runs", "--num_valid", "1496"), capsys,
                   "--num_valid 1496: leaves 1 of 1497 samples to train on, fewer than the 10 classes")
    assert not (tmp_path / "runs").exists()


def test_one_class_image_folder(tmp_path, capsys):
    tree = write_image_folder(tmp_path / "tree", classes=("ant",))
    one_line_error(step1(tmp_path / "runs", "--dataset", "imagefolder", "--data", str(tree)), capsys,
                   f"{tree / 'train'}: one class folder (ant): a classifier needs 2 or more")
    assert not (tmp_path / "runs").exists()


def test_empty_features_is_not_the_default(synthetic, tmp_path, capsys):
    out = tmp_path / "d.pth.tar"
    one_line_error(step2("--files_path", str(synthetic), "--features", "", "--out", str(out)), capsys,
                   "--features: features must be distinct names", "got none")
    assert not out.exists()


def test_the_same_run_twice_is_not_pooled_twice(synthetic, tmp_path, capsys):
    out = tmp_path / "d.pth.tar"
    one_line_error(step2("--files_path", str(synthetic), "--files_path", f"{synthetic}/.", "--out", str(out)),
                   capsys, f"--files_path: {synthetic}/. is given twice (also as {synthetic})")
    assert not out.exists()


def test_summary_json_has_null_not_nan(tmp_path):
    from labeltrace.io import write_json

    path = tmp_path / "s.json"
    write_json(path, {"auc": float("nan"), "nested": [float("inf"), 1.5], "n": np.float32("nan")})

    def refuse(token):
        raise AssertionError(f"invalid JSON token {token}")

    assert json.loads(path.read_text(), parse_constant=refuse) == {"auc": None, "nested": [None, 1.5], "n": None}


@pytest.mark.parametrize("flipped,reason", [(0, "no flipped samples"), (4, "no clean samples")])
def test_metrics_without_one_group_say_undefined(flipped, reason):
    from labeltrace.metrics import detection_metrics, format_metrics

    truth = np.arange(4) < flipped
    m = detection_metrics(np.array([0.1, 0.2, 0.3, 0.4]), truth, remove_ratio=0.5)
    assert m.undefined == f"undefined: {reason}" and np.isnan(m.roc_auc)
    assert f"ROC-AUC/mAP undefined: {reason}" in format_metrics(m, remove_ratio=0.5) and "nan" not in \
        format_metrics(m, remove_ratio=0.5).split("|")[0]


def test_step3_on_a_run_without_flips_writes_valid_json(finished, tmp_path, capsys):
    """STEP 3 on a run with no flipped sample: printed "ROC-AUC nan" and wrote NaN tokens into summary.json."""
    import shutil

    save = tmp_path / "save"
    shutil.copytree(finished, save)
    meta_path = save / RUN / "metadata.pth"
    meta = torch.load(meta_path, weights_only=True)
    meta["label_flipped"] = torch.zeros_like(meta["label_flipped"])
    torch.save(meta, meta_path)
    summaries = step3(save)()
    assert "ROC-AUC/mAP undefined: no flipped samples" in capsys.readouterr().out
    text = (Path(summaries[0]["run_dir"]) / "summary.json").read_text()
    assert "NaN" not in text
    summary = json.loads(text)
    assert summary["detection"]["roc_auc"] is None and summary["detection_note"] == "undefined: no flipped samples"
    assert not (Path(summaries[0]["run_dir"]) / "resume.pth").exists()  # complete: no resume state


# -- unclear messages --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["1.5", "0.99", "nan"])
def test_calibrate_states_one_range(tmp_path, capsys, value):
    err = one_line_error(step1(tmp_path / "runs", "--calibrate", value), capsys,
                         f"--calibrate: expected a value in (0, 0.5] (a fraction of the training labels), got "
                         f"{float(value)}")
    assert "[0, 1)" not in err


def test_plain_pickle_is_not_a_torch_file(tmp_path, synthetic, capsys):
    from labeltrace.io import load_torch
    from labeltrace.runfiles import read_metadata

    plain = tmp_path / "plain.pt"
    plain.write_bytes(pickle.dumps({"worse_label": [0, 1]}, protocol=2))
    for load in (lambda: load_torch(plain, what="labels file"), lambda: read_metadata(plain)):
        with pytest.raises(UsageError, match="not a file torch.save writes; refused"):
            load()
    one_line_error(step2("--files_path", str(synthetic), "--resume", str(plain), "--out", str(tmp_path / "d.pt")),
                   capsys, f"{plain}: not a detector checkpoint", "not a file torch.save writes; refused")
    legacy = tmp_path / "legacy.pt"  # torch's own pre-1.6 format is a pickle too, and still reads
    torch.save({"a": torch.ones(2)}, legacy, _use_new_zipfile_serialization=False)
    assert load_torch(legacy, what="file")["a"].tolist() == [1.0, 1.0]


def test_full_disk_writing_the_raw_traces_names_the_file(tmp_path, monkeypatch):
    """A full disk while an epoch is committed: one error naming td_raw.npy, and the epoch is not committed (STEP 1
    writes resume.pth only after the recorder's commit)."""
    import labeltrace.epoch_file
    from labeltrace import DynamicsRecorder

    recorder = DynamicsRecorder(tmp_path / "run", labels=np.array([0, 1, 0]), num_classes=2, neighbours=0)
    recorder.update(np.arange(3), torch.zeros(3, 2))

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")  # os.write and fsync name no file

    monkeypatch.setattr(labeltrace.epoch_file.os, "fsync", full)
    with pytest.raises(OSError) as info:
        recorder.end_epoch()
    assert info.value.errno == errno.ENOSPC and str(tmp_path / "run" / "td_raw.npy") in str(info.value)
    assert recorder.num_epochs == 0 and not (tmp_path / "run" / "recorder.json").exists()


def test_labels_file_that_is_a_folder(tmp_path, capsys):
    one_line_error(step1(tmp_path / "runs", "--labels_file", str(tmp_path)), capsys,
                   f"--labels_file: {tmp_path} is a folder: give the labels file itself")


def test_paper_dry_run_refuses_a_file_as_the_output_folder(tmp_path, capsys):
    from paper import common, small_datasets

    taken = tmp_path / "results"
    taken.write_text("not a folder")
    one_line_error(lambda: common.main(small_datasets, ["none", str(taken), "--scale", "tiny", "--dry_run"]), capsys,
                   f"<result_save_path> {taken} is a file, not a folder")


def test_digits_traces_scored_as_fashion_mnist_say_so(finished, tmp_path, capsys):
    write_fashion(tmp_path / "data" / "fashion_mnist")
    before = digest(finished)
    err = one_line_error(step3(tmp_path / "runs", "--td_run", str(finished / RUN), "--dataset", "fashion_mnist",
                               "--data", str(tmp_path / "data")), capsys,
                         "contradicts the flags: --dataset fashion_mnist (the run has digits)")
    assert "--max_train" not in err and digest(finished) == before


def test_multirun_counts_a_run_another_multirun_holds_as_done(tmp_path, monkeypatch, capsys):
    """The second of two multiruns on one list found a run folder locked (exit 2) and counted it failed; it now
    waits for the lock and sees the run complete."""
    from pipeline import multirun

    calls = []

    def call(cmd, stdout, stderr):
        calls.append(cmd)
        if len(calls) == 1:
            stdout.write("error: runs/x is in use by another process (it holds runs/x/.lock): wait for it to end\n")
            return 2
        stdout.write("runs/x: already complete (add --restart to run it again)\n")
        return 0

    monkeypatch.setattr(multirun.subprocess, "call", call)
    monkeypatch.setattr(multirun, "LOCK_RETRY_SECONDS", 0.0)
    outcome = multirun.run_one("--dataset digits", threads=1, log=tmp_path / "run-1.log")
    assert outcome.code == 0 and outcome.run_dir == "runs/x" and len(calls) == 2


def test_multirun_runs_a_repeated_line_once(tmp_path, capsys):
    from pipeline.multirun import get_args_parser, main

    settings = tmp_path / "list.txt"
    settings.write_text("--dataset digits --seed 1\n--dataset digits --seed 2\n--dataset digits --seed 1\n")
    run_cli(lambda: main(get_args_parser().parse_args([str(settings), "--dry_run"])))
    out = capsys.readouterr().out
    assert "1 repeated line(s) run once" in out and out.count("runner.py --dataset digits --seed 1") == 1


def test_find_issues_prints_the_resampling_note(synthetic, tmp_path, capsys):
    """The generalist was trained on another T than the synthetic run's 10 epochs: the README promises a note."""
    from labeltrace.predict import load_detector, GENERALIST
    from pipeline.find_issues import get_args_parser, main

    _, info = load_detector(GENERALIST)
    assert info.train_length != 10
    main(get_args_parser().parse_args([str(synthetic), "--out", str(tmp_path / "out")]))
    assert f"note: traces have T=10 epochs, the detector was trained on T={info.train_length}" in \
        capsys.readouterr().out


# -- the third battery: flags with one range and one meaning in every command --------------------------------------

@pytest.mark.parametrize("value,needle", [("-1", "--threads: expected 0 or more (0: torch's default), got -1"),
                                          ("0", None)])
def test_plots_threads_like_every_command(synthetic, tmp_path, capsys, value, needle):
    from tests.test_sound import plots

    if needle:
        one_line_error(plots(str(synthetic), "--threads", value, "--out", str(tmp_path / "p")), capsys, needle)
        assert not (tmp_path / "p").exists()
    else:  # 0: torch's default, as in STEP 1
        run_cli(plots(str(synthetic), "--threads", value, "--out", str(tmp_path / "p")))
        assert (tmp_path / "p" / "data_map.png").is_file()


def test_compile_backend_checked_before_the_run_folder(tmp_path, capsys):
    one_line_error(step1(tmp_path / "save", "--compile", "bogusbackend"), capsys,
                   "--compile: expected a torch.compile backend", "got 'bogusbackend'")
    assert not (tmp_path / "save").exists()


def test_detector_length_beyond_any_run(synthetic, tmp_path, capsys):
    """--length 100000 ran for hours (the LSTM reads every resampled epoch)."""
    one_line_error(step2("--files_path", str(synthetic), "--length", "100000", "--out", str(tmp_path / "d.pth.tar")),
                   capsys, "--length: expected at most 1000 epochs", "got 100000")
    assert not (tmp_path / "d.pth.tar").exists()


@pytest.mark.parametrize("flags,needle", [
    (["--max_train", "5"], "--max_train 5: keeps 5 samples to train on, fewer than the 10 classes"),
    (["--neighbours", "100000"], "--neighbours 100000: more neighbours than the 1496 other training samples"),
    (["--max_train", "15", "--neighbours", "15"], "--neighbours 15: more neighbours than the 14 other training"),
])
def test_step1_counts_blame_the_flag_given(tmp_path, capsys, flags, needle):
    """--max_train 5 was blamed on --num_valid 0 (never given); K beyond N - 1 was cut to N - 1 without a word."""
    err = one_line_error(step1(tmp_path / "runs", *flags), capsys, needle)
    assert "--num_valid" not in err and not (tmp_path / "runs").exists()


def test_default_neighbours_on_too_few_samples_records_none_and_says_so(tmp_path, capsys):
    """The default K = 20 on 15 samples was cut to 14 (the class frequency) while config.json said 20."""
    from labeltrace.traces import load_run

    run_cli(step1(tmp_path / "runs", "--max_train", "15", "--num_epochs", "1"))
    assert "note: --neighbours (default 20) needs more than the 15 training samples: no neighbour agreement " \
           "recorded" in capsys.readouterr().out
    run_dir = tmp_path / "runs" / RUN
    assert json.loads((run_dir / "config.json").read_text())["neighbours"] == 0
    assert load_run(run_dir).neighbours is None


# -- the third battery: metadata that contradicts itself or the traces --------------------------------------------

def _edit_metadata(run_dir: Path, **changes) -> None:
    meta = torch.load(run_dir / "metadata.pth", weights_only=True)
    for key, change in changes.items():
        meta[key] = change(meta[key])
    torch.save(meta, run_dir / "metadata.pth")


@pytest.mark.parametrize("case,needle", [
    ("float", "true_targets holds values that are not whole class ids (float32)"),
    ("negative", "true_targets holds negative class ids (from -1)"),
    ("beyond_c", "true_targets holds class 4, outside the traces' 4 classes 0..3"),
    ("inverted", "label_flipped marks"),
])
@pytest.mark.parametrize("stage", ["step2", "issues"])
def test_metadata_truth_that_cannot_be_true(synthetic, tmp_path, capsys, case, needle, stage):
    """Float, negative or out-of-range true_targets were cast and used; an inverted label_flipped (81% "flipped"
    in a 19% run) trained a detector on inverted truth."""
    from labeltrace.cli import issues, get_args_parser

    change = {"float": lambda t: t.float() + 0.5, "negative": lambda t: torch.where(t == 0, -1, t),
              "beyond_c": lambda t: torch.where(t == 3, 4, t)}
    if case == "inverted":
        _edit_metadata(synthetic, label_flipped=lambda f: ~f)
    else:
        _edit_metadata(synthetic, true_targets=change[case])
    before = digest(synthetic)
    command = (step2("--files_path", str(synthetic), "--out", str(tmp_path / "d.pth.tar")) if stage == "step2" else
               lambda: issues(get_args_parser().parse_args(["issues", str(synthetic), "--detector", "baseline:aum"])))
    one_line_error(command, capsys, f"{synthetic / 'metadata.pth'}: ", needle)
    assert digest(synthetic) == before and not (tmp_path / "d.pth.tar").exists()


def test_find_issues_checks_the_dataset_config_json_names(finished, tmp_path, capsys):
    """A digits run whose config.json names fashion_mnist got Fashion-MNIST images and class names in its sheet."""
    import shutil

    from pipeline.find_issues import get_args_parser, main

    run_dir = tmp_path / "run"
    shutil.copytree(finished / RUN, run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    write_fashion(tmp_path / "data" / "fashion_mnist", n_train=1497)
    (run_dir / "config.json").write_text(json.dumps({**config, "dataset": "fashion_mnist",
                                                     "data": str(tmp_path / "data")}))
    before = digest(run_dir)
    one_line_error(lambda: main(get_args_parser().parse_args([str(run_dir), "--detector", "baseline:aum"])), capsys,
                   f"{run_dir / 'config.json'} names fashion_mnist, whose labels differ from the run's true_targets",
                   "not the run's dataset")
    assert digest(run_dir) == before


def test_plots_without_label_flipped_draw_no_ground_truth(synthetic, tmp_path, capsys):
    from tests.test_sound import plots

    meta = torch.load(synthetic / "metadata.pth", weights_only=True)
    del meta["label_flipped"]
    torch.save(meta, synthetic / "metadata.pth")
    run_cli(plots(str(synthetic), "--out", str(tmp_path / "p")))
    assert "no ground truth (label_flipped unknown)" in capsys.readouterr().out
    report = json.loads((tmp_path / "p" / "detection_metrics.json").read_text())
    assert not (tmp_path / "p" / "roc.png").exists() and report["scores"] == {} and "remove_ratio" not in report


def test_the_generalist_named_by_its_path_is_honoured_not_swapped(synthetic, tmp_path, capsys):
    """STEP 3 (and every scorer) given the shipped generalist's path on a run without the agreement scored it with
    the softmax-only generalist, without a word; 'generalist' (the default) still picks the one that fits."""
    from labeltrace.predict import GENERALIST, GENERALIST_NAME, GENERALIST_SOFTMAX
    from labeltrace.scoring import score_run
    from labeltrace.traces import load_run
    from pipeline.find_issues import get_args_parser, main

    run = load_run(synthetic)
    assert run.neighbours is None
    with pytest.raises(UsageError, match=f"{GENERALIST} reads prob,margin,neighbours: it needs the neighbour "
                                         f"agreement .* score this run with {GENERALIST_SOFTMAX.name}"):
        score_run(str(GENERALIST), run)
    assert score_run(GENERALIST_NAME, run).info["path"] == str(GENERALIST_SOFTMAX)
    main(get_args_parser().parse_args([str(synthetic), "--out", str(tmp_path / "out")]))  # the default: fits
    assert (tmp_path / "out" / "label_issues.csv").is_file()


@pytest.mark.parametrize("stage", ["step1", "step3"])
def test_image_size_on_a_dataset_of_one_size(tmp_path, capsys, stage):
    """--image_size 16 on digits (8 px) was accepted and ignored; its own size replays a run's config.json."""
    command = step1(tmp_path / "runs", "--image_size", "16") if stage == "step1" else \
        step3(tmp_path / "runs", "--image_size", "16")
    one_line_error(command, capsys, "--image_size 16: the images of digits are 8 px, one size", "leave it out")
    assert not (tmp_path / "runs").exists()


def test_damaged_true_targets_named_in_step3(finished, tmp_path, capsys):
    """true_targets edited within the classes were blamed on --data/--max_train/--image_size, flags never given."""
    import shutil

    run_dir = tmp_path / "save" / RUN
    shutil.copytree(finished / RUN, run_dir)
    flipped = torch.load(run_dir / "metadata.pth", weights_only=True)["label_flipped"]
    clean = int(torch.nonzero(~flipped)[0, 0])  # a clean sample: moving its true label contradicts no flip
    _edit_metadata(run_dir, true_targets=lambda t: torch.where(torch.arange(len(t)) == clean, (t + 1) % 10, t))
    before = digest(run_dir)
    err = one_line_error(step3(tmp_path / "out", "--td_run", str(run_dir)), capsys,
                         f"{run_dir / 'metadata.pth'}: true_targets differ from the labels of the 1497 training "
                         "samples loaded now on 1: the metadata is damaged")
    assert "--max_train" not in err and digest(run_dir) == before and not (tmp_path / "out").exists()


def test_traces_of_no_samples_name_the_traces_file(synthetic, capsys):
    """An N = 0 traces file was blamed on metadata.pth (its entries then cover no row)."""
    from labeltrace.traces import load_run

    np.savez(synthetic / "training_dynamics.npz", td=np.zeros((0, 10, 4), np.float16), labels=np.zeros((0, 4), np.int16))
    with pytest.raises(UsageError, match=r"training_dynamics.npz: 'td' holds no samples \(N = 0"):
        load_run(synthetic)
