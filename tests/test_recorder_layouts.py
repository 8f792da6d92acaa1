"""DynamicsRecorder at scale: streamed epochs that survive a kill, the compact layout read by every reader with
the full layout's scores, and the same folder from 2 gloo processes as from one."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from labeltrace import baselines
from labeltrace import DynamicsRecorder
from labeltrace.api import get_label_quality_scores
from labeltrace.compact import AUTO_COMPACT_ABOVE
from labeltrace.errors import UsageError
from labeltrace.features import feature_stack
from labeltrace.issues import label_issue_table, suggested_labels
from labeltrace.epoch_file import order_channels
from labeltrace.traces import load_run
from tests import recorder_loop as loop

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 4
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def run_loop(run_dir, layout, epochs=EPOCHS, *extra, world=1):
    launcher = [sys.executable] if world == 1 else [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                                    "--nproc_per_node", str(world)]
    r = subprocess.run([*launcher, str(ROOT / "tests" / "recorder_loop.py"), str(run_dir), layout, str(epochs),
                        *extra], cwd=ROOT, capture_output=True, text=True, timeout=300, env=ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    return Path(run_dir)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("layouts")
    return {layout: run_loop(base / layout, layout) for layout in ("full", "compact")}


def expected_probs() -> np.ndarray:
    """(N, T, C) float16 in class order: the softmax the loop's logits give, rounded as stored."""
    return np.stack([torch.softmax(loop.logits(np.arange(loop.N), t), 1).half().numpy() for t in range(EPOCHS)], 1)


def test_full_layout_is_the_papers_file(runs):
    run = load_run(runs["full"])
    td, labels = order_channels(expected_probs(), loop.given_labels())  # what STEP 1 and the old recorder wrote
    assert run.td.dtype == np.float16 and run.class_ids.dtype == np.int16
    np.testing.assert_array_equal(run.td, td)
    np.testing.assert_array_equal(run.class_ids, labels)
    np.testing.assert_array_equal(run.label_flipped, np.arange(loop.N) % 5 == 0)
    # save() at the end removed the working files (recorder.json, td_raw.npy): the run's two files stay, and
    # the empty lock file (as in a STEP 1 run folder)
    assert sorted(p.name for p in runs["full"].iterdir()) == [".lock", "metadata.pth", "training_dynamics.npz"]


def test_compact_file_holds_the_two_strongest_and_the_mean(runs):
    run = load_run(runs["compact"])
    probs = expected_probs().astype(np.float32)
    given = loop.given_labels()
    rows = np.arange(loop.N)
    assert run.td.shape == (loop.N, EPOCHS, 2) and run.num_classes == loop.C and run.class_ids.shape == (loop.N, 2)
    np.testing.assert_array_equal(run.td[:, :, 0], probs[rows, :, given])
    others = probs.copy()
    others[rows, :, given] = -1
    np.testing.assert_array_equal(run.td[:, :, 1], others.max(axis=2))
    np.testing.assert_array_equal(run.td.other_class, others.argmax(axis=2))
    mean = probs.mean(axis=1)  # float32 mean of the float16 values, stored as float16
    np.testing.assert_array_equal(run.td.mean_probs, mean.astype(np.float16))
    mean[rows, given] = -1
    np.testing.assert_array_equal(run.class_ids, np.stack([given, mean.argmax(axis=1)], 1))


def test_compact_scores_equal_the_full_layouts(runs):
    full, compact = load_run(runs["full"]), load_run(runs["compact"])
    for name in ("aum", "confidence", "variability", "forgetting", "mean_loss", "last_self_confidence"):
        score = baselines.get_baseline(name)
        np.testing.assert_array_equal(score(compact.td, compact.class_ids), score(full.td, full.class_ids), err_msg=name)
    np.testing.assert_array_equal(feature_stack(compact.td, ["prob", "margin"]), feature_stack(full.td, ["prob", "margin"]))
    np.testing.assert_array_equal(get_label_quality_scores(runs["compact"]), get_label_quality_scores(runs["full"]))
    np.testing.assert_array_equal(suggested_labels(compact.td, compact.class_ids), suggested_labels(full.td, full.class_ids))
    # cleanlab reads the mean probabilities, stored as float16 in the compact file: equal to about 1e-3
    for name in ("cl_label_quality", "cl_label_issues"):
        a, b = (baselines.get_baseline(name)(r.td, r.class_ids) for r in (compact, full))
        np.testing.assert_allclose(a, b, atol=2e-3, err_msg=name)
    table_c = label_issue_table(compact.td, compact.class_ids, 1 - get_label_quality_scores(runs["compact"]))
    table_f = label_issue_table(full.td, full.class_ids, 1 - get_label_quality_scores(runs["full"]))
    assert table_c.equals(table_f)
    sub = compact.without_injected()  # the row selection every reader goes through keeps the extras aligned
    assert sub.td.mean_probs is not None and np.array_equal(sub.td.other_class, compact.td.other_class)


def test_readers_that_need_every_class_say_so(runs):
    compact = load_run(runs["compact"])
    with pytest.raises(UsageError, match="feature 'entropy' needs every class's probability .* layout='full'"):
        feature_stack(compact.td, ["prob", "entropy"])
    with pytest.raises(UsageError, match="compact layout holds the mean probabilities over all epochs"):
        baselines.cl_label_quality(compact.td, compact.class_ids, epochs=slice(0, 2))
    from pipeline.export import export_data_maps

    with pytest.raises(UsageError, match="needs every class's probability"):
        export_data_maps(compact.td, compact.class_ids, runs["compact"] / "maps")


def test_a_killed_loop_keeps_its_finished_epochs_and_resumes(runs, tmp_path):
    for layout in ("full", "compact"):
        run_dir = run_loop(tmp_path / layout, layout, EPOCHS, "--kill_in_epoch", "2")  # killed during epoch 3
        assert not (run_dir / "metadata.pth").exists()
        with pytest.raises(ValueError, match="records another run .*labels_crc32"):  # other labels: not this run
            DynamicsRecorder(run_dir, labels=loop.true_labels(), num_classes=loop.C, layout=layout)
        with pytest.warns(UserWarning, match="resuming after its 2 finished epochs"):
            recorder = DynamicsRecorder(run_dir, labels=loop.given_labels(), num_classes=loop.C, layout=layout)
        assert recorder.num_epochs == 2  # the two finished epochs, not the half-recorded third
        part = load_run(recorder.save(keep_working_files=True))  # the loop goes on below
        assert part.num_epochs == 2
        whole = load_run(runs[layout])
        np.testing.assert_array_equal(part.td[:, :, 0], whole.td[:, :2, 0])
        recorder.close()  # one writer per folder: the process below takes the folder's lock
        run_loop(run_dir, layout, EPOCHS)  # the loop started again continues after epoch 2
        again = load_run(run_dir)
        for key in ("td", "class_ids"):
            np.testing.assert_array_equal(getattr(again, key), getattr(whole, key), err_msg=f"{layout} {key}")
        if layout == "compact":
            np.testing.assert_array_equal(again.td.mean_probs, whole.td.mean_probs)


def test_two_gloo_processes_write_the_one_process_folder(runs, tmp_path):
    for layout in ("full", "compact"):
        two = load_run(run_loop(tmp_path / layout, layout, world=2))
        one = load_run(runs[layout])
        for key in ("td", "class_ids", "label_flipped", "true_targets", "assigned_targets", "train_indices"):
            np.testing.assert_array_equal(getattr(two, key), getattr(one, key), err_msg=f"{layout} {key}")
        if layout == "compact":
            np.testing.assert_array_equal(two.td.mean_probs, one.td.mean_probs)
            np.testing.assert_array_equal(two.td.other_class, one.td.other_class)


def test_layout_auto_switches_above_300_classes(tmp_path):
    labels = np.zeros(3, dtype=np.int64)
    assert AUTO_COMPACT_ABOVE == 300
    assert DynamicsRecorder(tmp_path / "a", labels=labels, num_classes=300).layout == "full"
    assert DynamicsRecorder(tmp_path / "b", labels=labels, num_classes=301).layout == "compact"
    with pytest.raises(ValueError, match="layout must be one of auto, full, compact"):
        DynamicsRecorder(tmp_path / "c", labels=labels, num_classes=3, layout="sparse")


def test_hand_computed_compact_rows(tmp_path):
    # 2 samples, 4 classes, 2 epochs, given labels 0 and 2, probabilities passed directly (powers of 2: exact).
    recorder = DynamicsRecorder(tmp_path, labels=np.array([0, 2]), num_classes=4, layout="compact")
    epochs = [np.array([[0.5, 0.25, 0.125, 0.125], [0.25, 0.5, 0.125, 0.125]]),
              np.array([[0.25, 0.125, 0.5, 0.125], [0.5, 0.25, 0.125, 0.125]])]
    for probs in epochs:
        recorder.update(np.array([1, 0]), probs[[1, 0]], probabilities=True)
        recorder.end_epoch()
    run = load_run(recorder.save())
    # sample 0 (given 0): epoch 1 others max 0.25 (class 1), epoch 2 max 0.5 (class 2)
    # sample 1 (given 2): 0.125 both epochs; others max 0.5 (class 1) then 0.5 (class 0)
    np.testing.assert_array_equal(run.td[:, :, 0], [[0.5, 0.25], [0.125, 0.125]])
    np.testing.assert_array_equal(run.td[:, :, 1], [[0.25, 0.5], [0.5, 0.5]])
    np.testing.assert_array_equal(run.td.other_class, [[1, 2], [1, 0]])
    # means: sample 0 (0.375, 0.1875, 0.3125, 0.125): strongest other 2; sample 1 (0.375, 0.375, 0.125, 0.125):
    # classes 0 and 1 tie, the lower id wins (as the full layout's stable channel order)
    np.testing.assert_array_equal(run.td.mean_probs, [[0.375, 0.1875, 0.3125, 0.125], [0.375, 0.375, 0.125, 0.125]])
    np.testing.assert_array_equal(run.class_ids, [[0, 2], [2, 0]])
    # AUM: sample 0 mean(0.5-0.25, 0.25-0.5) = 0 -> -0; sample 1 mean(0.125-0.5, 0.125-0.5) = -0.375 -> 0.375
    np.testing.assert_array_equal(baselines.aum(run.td, run.class_ids), [0.0, 0.375])


def test_step3_with_td_run_reads_a_compact_run(tmp_path):
    from datasets.noise import corrupt_labels
    from datasets.offline import load_digits_bundle
    from denoise import get_args_parser, main

    true = load_digits_bundle().train.targets
    noisy = corrupt_labels(true, ratio=0.2, noise_type="uniform", num_classes=10, split_seed=7)
    removed = {}
    for layout in ("full", "compact"):
        recorder = DynamicsRecorder(tmp_path / layout, labels=noisy.assigned, num_classes=10, true_labels=true,
                                    layout=layout)
        for epoch in range(3):
            index = np.arange(len(true))
            logits = torch.randn(len(true), 10, generator=torch.Generator().manual_seed(epoch))
            logits[index, torch.as_tensor(noisy.assigned)] += 1.0 + epoch  # the given labels, fitted over time
            logits[index, torch.as_tensor(true)] += 1.5
            recorder.update(index, logits)
            recorder.end_epoch()
        recorder.save()
        main(get_args_parser().parse_args(["--dataset", "digits", "--seed", "7", "--net_type", "cnn", "--depth", "2",
                                           "--num_epochs", "1", "--threads", "1", "--no_progress",
                                           "--save", str(tmp_path / f"step3_{layout}"), "--detector",
                                           "baseline:aum", "--td_run", str(tmp_path / layout)]))
        (found,) = (tmp_path / f"step3_{layout}").rglob("removed.csv")
        removed[layout] = found.read_text()
    assert removed["compact"] == removed["full"] and len(removed["full"].splitlines()) > 100
