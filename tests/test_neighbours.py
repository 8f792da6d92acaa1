"""labeltrace.neighbours: the neighbour agreement by hand, the feature tap, and STEP 1 recording it."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from labeltrace.errors import UsageError
from labeltrace.features import feature_stack
from labeltrace.neighbours import FeatureTap, agreement, head_of
from labeltrace.traces import load_run

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]

# Two clusters in 2-D: three points near the x axis, two near the y axis. Point 2 lies in the x cluster but is
# labelled 1, the y cluster's label: a mislabeled sample among its true class.
FEATURES = np.array([[1.0, 0.0], [0.9, 0.1], [1.0, 0.05], [0.0, 1.0], [0.1, 0.9]])
LABELS = np.array([0, 0, 1, 1, 1])


def test_agreement_by_hand():
    # Cosine similarities (rows normalised): a0.a1 = 0.9939, a0.a2 = 0.9988, a1.a2 = 0.9982, a1.b1 = 0.2194,
    # a2.b1 = 0.1599, b0.b1 = 0.9939, b0.a1 = 0.1104. With k = 2 the nearest two of each point are
    # a0: a2, a1 -> labels 1, 0 -> 1 of 2 agree;  a1: a2, a0 -> 1, 0 -> 1/2;  a2: a0, a1 -> 0, 0 -> 0/2;
    # b0: b1, a1 -> 1, 0 -> 1/2;  b1: b0, a1 -> 1, 0 -> 1/2.
    np.testing.assert_array_equal(agreement(FEATURES, LABELS, k=2), [0.5, 0.5, 0.0, 0.5, 0.5])


def test_agreement_is_cosine_so_scaling_a_row_changes_nothing():
    scaled = FEATURES * np.array([[10.0], [0.1], [3.0], [1.0], [7.0]])
    np.testing.assert_array_equal(agreement(scaled, LABELS, k=2), agreement(FEATURES, LABELS, k=2))


def test_agreement_in_blocks_equals_one_block(monkeypatch):
    import labeltrace.neighbours as neighbours

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(50, 8)), rng.integers(0, 3, 50)
    whole = agreement(x, y, k=5)
    monkeypatch.setattr(neighbours, "_BLOCK_VALUES", 7 * 50)  # blocks of 7 rows
    np.testing.assert_array_equal(agreement(x, y, k=5), whole)
    np.testing.assert_allclose(whole * 5, np.round(whole * 5), atol=1e-6)  # multiples of 1/k


def test_agreement_with_fewer_rows_than_k_uses_every_other_row():
    # Three rows, k = 20 -> 2 neighbours each: row 0 (label 0) has rows 1 (0) and 2 (1) -> 1/2.
    assert agreement(FEATURES[:3], LABELS[:3], k=20)[0] == 0.5
    np.testing.assert_array_equal(agreement(FEATURES[:1], LABELS[:1]), [1.0])  # no other row: nothing disagrees


def test_agreement_refuses_labels_of_another_length():
    with pytest.raises(ValueError, match="labels must have shape"):
        agreement(FEATURES, LABELS[:4])


def test_tap_collects_the_head_input_of_every_forward_call():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    assert head_of(model) is model[2]
    x = torch.randn(5, 4)
    with FeatureTap(model) as tap:
        model(x)
        model(x[:2])
    model(x)  # after the context: no longer collected
    assert [tuple(b.shape) for b in tap.batches] == [(5, 3), (2, 3)]
    torch.testing.assert_close(tap.batches[0], torch.relu(model[0](x)))
    with pytest.raises(ValueError, match="no nn.Linear"):
        head_of(nn.Conv2d(1, 1, 3))


def test_the_neighbours_feature_passes_the_recorded_agreement_through():
    td = np.full((2, 3, 2), 0.5, dtype=np.float32)
    recorded = np.array([[0.1, 0.2, 0.3], [1.0, 0.5, 0.0]], dtype=np.float16)
    np.testing.assert_allclose(feature_stack(td, ["prob", "neighbours"], neighbours=recorded)[:, :, 1], recorded)
    with pytest.raises(ValueError, match="runner.py --neighbours"):
        feature_stack(td, ["neighbours"])
    with pytest.raises(ValueError, match=r"shape \(2, 3\)"):
        feature_stack(td, ["neighbours"], neighbours=recorded[:, :2])


def test_the_class_gap_subtracts_the_mean_agreement_of_the_assigned_class_by_hand():
    td = np.full((4, 2, 3), 1 / 3, dtype=np.float32)
    recorded = np.array([[1.0, 0.5], [0.5, 0.5], [0.0, 0.0], [1.0, 1.0]], dtype=np.float16)
    labels = np.array([0, 0, 1, 1])
    # Class 0's mean agreement: (1 + 0.5) / 2 = 0.75 at epoch 1, 0.5 at epoch 2; class 1's: 0.5 and 0.5.
    gap = feature_stack(td, ["neighbours_class"], labels=labels, neighbours=recorded)[:, :, 0]
    np.testing.assert_allclose(gap, [[0.25, 0.0], [-0.25, 0.0], [-0.5, -0.5], [0.5, 0.5]])
    # Scored a chunk at a time, a row still reads its class's mean over the whole run (the run context).
    from labeltrace.features import run_context

    context = run_context(td, labels, names=["neighbours_class"], neighbours=recorded)
    np.testing.assert_allclose(feature_stack(td[2:], ["neighbours_class"], context, labels=labels[2:],
                                             neighbours=recorded[2:])[:, :, 0], gap[2:])


def _step1(save: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "runner.py", "--dataset", "digits", "--max_train", "300", "--max_test",
                           "100", "--num_epochs", "4", "--noise_ratio", "0.3", "--seed", "1", "--threads", "1",
                           "--no_progress", "--save", str(save), *flags], cwd=ROOT, capture_output=True, text=True)


@pytest.mark.parametrize("record", ["train", "eval"])
def test_step1_records_the_agreement_of_its_training_labels(tmp_path, record):
    result = _step1(tmp_path, "--neighbours", "5", "--record", record)
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "digits_cnn3_percmislabeled0.3_uniform" / "computation4td_seed1"
    run = load_run(run_dir)
    assert run.neighbours.shape == (300, 4) and run.neighbours.dtype == np.float16
    values = run.neighbours.astype(np.float32) * 5
    np.testing.assert_allclose(values, np.round(values), atol=2e-3)  # multiples of 1/k, in float16
    assert not (run_dir / "td_neighbours_raw.npy").exists()  # the working file goes once the run is complete
    # Mislabeled samples sit among their true class: on average fewer of their neighbours share their label.
    flipped = run.label_flipped
    assert run.neighbours[flipped].astype(float).mean() < run.neighbours[~flipped].astype(float).mean() - 0.2


@pytest.mark.parametrize("flags, k", [([], 20), (["--neighbours", "0"], 0)])
def test_step1_records_k_20_by_default_and_nothing_with_0(tmp_path, flags, k):
    assert _step1(tmp_path, *flags).returncode == 0
    run_dir = next(tmp_path.glob("*/computation4td_seed1"))
    assert json.loads((run_dir / "config.json").read_text())["neighbours"] == k  # the value used, not None
    assert (load_run(run_dir).neighbours is not None) == bool(k)


@pytest.mark.parametrize("flags, says", [(["--neighbours", "-1"], "--neighbours: expected K >= 0"),
                                         (["--neighbours", "5", "--record", "none"],
                                          "--neighbours 5: the agreement reads the features of a recorded pass, "
                                          "and --record none records none"),
                                         (["--neighbours", "5", "--compile"], "--neighbours: reads the features")])
def test_bad_neighbours_flags_exit_2_and_write_nothing(tmp_path, flags, says):
    result = _step1(tmp_path / "runs", *flags)
    assert result.returncode == 2 and says in result.stderr
    assert not (tmp_path / "runs").exists()


def test_a_detector_that_reads_neighbours_refuses_a_run_without_them(tmp_path):
    from labeltrace.lstm import LSTMDetector
    from labeltrace.predict import load_detector, make_checkpoint, score

    features = ("prob", "margin", "neighbours")
    model = LSTMDetector("pooled", features=features)
    torch.save(make_checkpoint(model.state_dict(), epoch=1, best_prec=0.5, optimizer_state={}, variant="pooled",
                               train_length=3, features=features), tmp_path / "d.pth.tar")
    loaded, info = load_detector(tmp_path / "d.pth.tar")
    td = np.full((2, 3, 2), 0.5, dtype=np.float32)
    with pytest.raises(UsageError, match="runner.py --neighbours"):
        score(loaded, info, td)
    p_noisy, _ = score(loaded, info, td, neighbours=np.ones((2, 3), np.float16))
    assert p_noisy.shape == (2,)


def _record(run_dir, features_by_epoch, labels, *, k=2, epochs=None, batches=((0, 1, 2), (3, 4))):
    from labeltrace.recorder import DynamicsRecorder

    recorder = DynamicsRecorder(run_dir, labels=labels, num_classes=2, neighbours=k)
    logits = torch.zeros(len(labels), 2)
    for features in features_by_epoch[recorder.num_epochs:epochs]:
        for batch in batches:
            index = torch.tensor(batch)
            recorder.update(index, logits[index], features=torch.as_tensor(features, dtype=torch.float32)[index])
        recorder.end_epoch()
    return recorder


def test_the_library_recorder_records_the_agreement_of_the_features_passed(tmp_path):
    # Epoch 1: the clusters of test_agreement_by_hand -> [0.5, 0.5, 0, 0.5, 0.5]. Epoch 2: point 2 moved into the
    # y cluster, as a memorized wrong label drags a sample's features to its label's class.
    moved = FEATURES.copy()
    moved[2] = [0.05, 1.0]
    recorder = _record(tmp_path / "run", [FEATURES, moved], LABELS)
    recorder.save()
    run = load_run(tmp_path / "run")
    np.testing.assert_array_equal(run.neighbours[:, 0], [0.5, 0.5, 0.0, 0.5, 0.5])
    np.testing.assert_array_equal(run.neighbours[:, 1], agreement(moved, LABELS, k=2))
    # Moved among the points labelled 1, point 2 now agrees with both its neighbours (b0 and b1).
    assert run.neighbours[2, 1] == 1.0


def test_a_killed_library_recording_resumes_with_its_agreement(tmp_path):
    moved = FEATURES.copy()
    moved[2] = [0.05, 1.0]
    _record(tmp_path / "whole", [FEATURES, moved, FEATURES], LABELS).save()
    _record(tmp_path / "killed", [FEATURES, moved, FEATURES], LABELS, epochs=2)  # never saved: a kill
    with pytest.warns(UserWarning, match="resuming after its 2 finished epochs"):
        _record(tmp_path / "killed", [FEATURES, moved, FEATURES], LABELS).save()
    np.testing.assert_array_equal(load_run(tmp_path / "killed").neighbours, load_run(tmp_path / "whole").neighbours)


def test_the_library_recorder_refuses_missing_or_unwanted_features(tmp_path):
    from labeltrace.recorder import DynamicsRecorder

    recorder = DynamicsRecorder(tmp_path / "a", labels=LABELS, num_classes=2, neighbours=2)
    with pytest.raises(ValueError, match="pass features="):
        recorder.update([0, 1], torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"shape \(2, D\)"):
        recorder.update([0, 1], torch.zeros(2, 2), features=torch.zeros(3, 4))
    plain = DynamicsRecorder(tmp_path / "b", labels=LABELS, num_classes=2, neighbours=0)
    with pytest.raises(ValueError, match="neighbours=k"):
        plain.update([0, 1], torch.zeros(2, 2), features=torch.zeros(2, 4))
    with pytest.raises(ValueError, match="k >= 0"):
        DynamicsRecorder(tmp_path / "d", labels=LABELS, num_classes=2, neighbours=-1)
    with pytest.raises(ValueError, match="neighbour_search must be one of auto, exact, ivf"):
        DynamicsRecorder(tmp_path / "e", labels=LABELS, num_classes=2, neighbour_search="hnsw")
    recorder = DynamicsRecorder(tmp_path / "f", labels=LABELS, num_classes=2)
    recorder.update([0, 1], torch.zeros(2, 2), features=torch.ones(2, 3))
    with pytest.raises(ValueError, match="same width, got 4 after 3"):
        recorder.update([2, 3], torch.zeros(2, 2), features=torch.ones(2, 4))


def test_the_default_recorder_records_the_agreement_when_features_come(tmp_path):
    from labeltrace.recorder import DynamicsRecorder

    recorder = DynamicsRecorder(tmp_path / "run", labels=LABELS, num_classes=2)  # neighbours left out
    assert recorder.neighbours == 20
    for _ in range(2):
        recorder.update(np.arange(5), torch.zeros(5, 2), features=torch.as_tensor(FEATURES))
        recorder.end_epoch()
    recorder.save()
    run = load_run(tmp_path / "run")
    # k = 20 > N - 1 = 4: every other point is a neighbour; a0 sees a1 (0), a2, b0, b1 (1): 1 of 4 agree.
    np.testing.assert_array_equal(run.neighbours[:, 0], [0.25, 0.25, 0.5, 0.5, 0.5])
    with np.load(tmp_path / "run" / "training_dynamics.npz") as data:
        assert json.loads(str(data["neighbour_search"][0])) == {"dim": 2, "features_dim": 2, "k": 20, "search": "exact"}


def test_the_default_recorder_without_features_says_once_it_records_the_softmax_alone(tmp_path):
    from labeltrace.recorder import DynamicsRecorder

    recorder = DynamicsRecorder(tmp_path / "run", labels=LABELS, num_classes=2)
    with pytest.warns(UserWarning, match=r"recording the softmax alone \(update\(\) got no features=\)"):
        recorder.update(np.arange(5), torch.zeros(5, 2))
    recorder.end_epoch()
    recorder.save()
    assert recorder.neighbours == 0 and load_run(tmp_path / "run").neighbours is None


def test_the_default_recorder_turns_the_agreement_off_where_memory_is_short(tmp_path, monkeypatch):
    import labeltrace.recorder as recorder_module

    monkeypatch.setattr(recorder_module, "free_memory", lambda device: 10)  # bytes: less than 5 rows of 3 float16 twice
    recorder = recorder_module.DynamicsRecorder(tmp_path / "run", labels=LABELS, num_classes=2)
    with pytest.warns(UserWarning, match="need 0 MiB free on cpu, 0 MiB are"):
        recorder.update(np.arange(5), torch.zeros(5, 2), features=torch.ones(5, 3))
    assert recorder.neighbours == 0


def test_the_compact_layout_round_trips_the_agreement(tmp_path):
    from labeltrace.recorder import DynamicsRecorder

    moved = FEATURES.copy()
    moved[2] = [0.05, 1.0]
    recorder = DynamicsRecorder(tmp_path / "run", labels=LABELS, num_classes=2, neighbours=2, layout="compact")
    for features in (FEATURES, moved):
        recorder.update(np.arange(5), torch.zeros(5, 2), features=torch.as_tensor(features))
        recorder.end_epoch()
    recorder.save()
    assert (tmp_path / "run" / "training_dynamics_compact.npz").is_file()
    run = load_run(tmp_path / "run")
    np.testing.assert_array_equal(run.neighbours, np.stack([agreement(FEATURES, LABELS, k=2),
                                                            agreement(moved, LABELS, k=2)], axis=1))
    # The shipped generalist scores it (it reads prob, margin and the agreement: all three are in the file).
    from labeltrace.api import get_label_quality_scores

    assert get_label_quality_scores(tmp_path / "run").shape == (5,)


@pytest.mark.parametrize("bad, says", [(np.full((3, 2), 0.5, np.float16), r"shape \(3, 4\)"),
                                       (np.full((3, 4), 1.5, np.float16), "outside \\[0, 1\\]")])
def test_a_traces_file_with_a_bad_agreement_is_refused_naming_it(tmp_path, bad, says):
    td = np.full((3, 4, 2), 0.5, np.float16)
    labels = np.tile(np.array([[0, 1]], np.int16), (3, 1))
    path = tmp_path / "training_dynamics.npz"
    np.savez_compressed(path, td=td, labels=labels, neighbours=bad)
    with pytest.raises(UsageError, match=says) as info:
        load_run(path)
    assert str(path) in str(info.value)


def _clusters(n=600, d=16, classes=6, seed=0):
    """Gaussian clusters, one per class, with 20% of the labels flipped: the features a trained network gives."""
    rng = np.random.default_rng(seed)
    true = rng.integers(0, classes, n)
    x = rng.normal(size=(classes, d))[true] * 3 + rng.normal(size=(n, d))
    flip = rng.random(n) < 0.2
    return x.astype(np.float32), np.where(flip, (true + 1) % classes, true)


def test_the_inverted_file_search_probing_every_list_equals_the_exact_one(monkeypatch):
    pytest.importorskip("faiss")
    import labeltrace.neighbours as neighbours

    x, y = _clusters()
    # The rows as the index holds them (unit, float16 values), searched exactly: the same inner products.
    rows = torch.nn.functional.normalize(torch.from_numpy(x), dim=1).half().float()
    exact = neighbours._exact_agreement(torch.from_numpy(neighbours._host(rows)), torch.from_numpy(y), 10)
    monkeypatch.setattr(neighbours, "IVF_PROBES", 10 ** 6)  # every list probed: an exhaustive search
    np.testing.assert_array_equal(neighbours._ivf_agreement(rows, y, 10), exact)
    assert neighbours.ivf_params(600) == (98, 98)  # 4 sqrt(600) lists, all of them probed


def test_the_inverted_file_search_is_close_to_the_exact_one_on_clusters():
    pytest.importorskip("faiss")
    x, y = _clusters(n=3000, d=32, classes=10)
    # sqrt(3000) = 55 lists, 8 probed: most true neighbours sit in the lists nearest a point.
    assert np.abs(agreement(x, y, k=20, search="ivf") - agreement(x, y, k=20, search="exact")).mean() < 0.02


def test_the_search_is_chosen_by_size_and_device(monkeypatch):
    import labeltrace.neighbours as neighbours
    from labeltrace.neighbours import choose_search

    assert choose_search(50_000, 512) == "exact"  # N^2 D = EXACT_MAX_COST
    assert choose_search(50_001, 512, "cuda") == "exact"  # a GPU searches exactly at any size
    assert choose_search(1_280_000, 128, search="exact") == "exact"
    pytest.importorskip("faiss")
    assert choose_search(50_001, 512) == "ivf"
    monkeypatch.setattr(neighbours, "_faiss", lambda required=True: (_ for _ in ()).throw(
        UsageError("needs faiss: pip install 'labeltrace[faiss]'")) if required else None)
    with pytest.warns(UserWarning, match=r"takes about 5 min an epoch .* pip install 'labeltrace\[faiss\]'"):
        assert choose_search(200_000, 512, warn=True) == "exact"  # 16x the cost of 50k: 16 x 20 s = 5.3 min
    with pytest.raises(UsageError, match=r"labeltrace\[faiss\]"):
        choose_search(10, 2, search="ivf")


def test_the_store_keeps_float16_unit_rows_and_projects_what_passes_its_budget():
    from labeltrace.neighbours import FeatureStore, stored_dim

    # 1.28M rows of 512 or 2048 features in 512 MiB of float16: 128 dimensions (1.28M x 128 x 2 = 328 MB;
    # 256 would take 655 MB). 100k x 2048 x 2 = 410 MB fits whole.
    assert stored_dim(1_280_000, 512) == stored_dim(1_280_000, 2048) == 128
    assert stored_dim(100_000, 2048) == 2048
    # 40 classes in 256 dimensions, each sample its class centre (norm 16) plus a spread along 16 directions
    # shared by every class (norm 16): the principal directions are the spread's, which tell no class apart; a
    # random projection keeps the centres apart.
    rng = np.random.default_rng(1)
    n, true = 800, rng.integers(0, 40, 800)
    x = (rng.normal(size=(40, 256))[true] + rng.normal(size=(n, 16)) @ rng.normal(size=(16, 256)) / 4
         ).astype(np.float32)
    flipped = rng.random(n) < 0.2
    y = np.where(flipped, (true + 1) % 40, true)
    whole, reduced = FeatureStore(n), FeatureStore(n, budget=n * 64 * 2)
    for store in (whole, reduced):
        for rows in np.array_split(np.arange(n), 7):  # batch by batch, in any order
            store.add(torch.from_numpy(rows[::-1].copy()), torch.from_numpy(x[rows[::-1]]) * 5)
    assert whole.rows.dtype == torch.float16 and whole.rows.shape == (n, 256)
    np.testing.assert_allclose(whole.rows.float().norm(dim=1), 1.0, atol=2e-3)
    assert reduced.rows.shape == (n, 64) and reduced.describe(k=10)["dim"] == 64
    exact = agreement(x, y, k=10)
    # float16 rows move a near tie now and then: a neighbour in ten changes for a few rows at most.
    assert np.abs(whole.agreement(y, k=10) - exact).max() <= 0.1 + 1e-6
    from sklearn.metrics import roc_auc_score

    auc = [roc_auc_score(flipped, -a) for a in (exact, reduced.agreement(y, k=10))]
    # 4x fewer dimensions, the flips still stand out: measured 0.983 against 0.997 whole.
    assert auc[0] > 0.99 and auc[1] > auc[0] - 0.02, auc
    again = FeatureStore(n, budget=n * 64 * 2)
    again.add(torch.arange(n), torch.from_numpy(x))
    assert torch.equal(again.projection, reduced.projection)  # seeded: the same on every run and resume
    with pytest.raises(ValueError, match="same width, got 8 after 256"):
        reduced.add(torch.arange(2), torch.ones(2, 8))
