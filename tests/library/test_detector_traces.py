"""labeltrace.traces: loading STEP 1 run folders, their validation, and time resampling."""
import numpy as np
import pytest
import torch

from labeltrace.errors import UsageError
from labeltrace.traces import load_run, resample_time
from synthetic_run import write_run

torch.set_num_threads(1)


def test_load_run_maps_metadata_through_train_indices(tmp_path):
    run = write_run(tmp_path / "run", n=50, t=7, num_valid=13, seed=3)
    traces = load_run(run)
    meta = torch.load(run / "metadata.pth", weights_only=True)
    rows = meta["train_indices"].numpy()
    assert traces.td.shape == (50, 7, 4) and traces.td.dtype == np.float16
    assert traces.class_ids.dtype == np.int16
    np.testing.assert_array_equal(traces.label_flipped, meta["label_flipped"].numpy()[rows])
    np.testing.assert_array_equal(traces.assigned_targets, traces.class_ids[:, 0])
    assert traces.curves.dtype == np.float32 and traces.curves.shape == (50, 7)
    # The npz path itself works too.
    assert load_run(run / "training_dynamics.npz").td.shape == (50, 7, 4)


def test_load_run_without_metadata_has_no_ground_truth(tmp_path):
    run = write_run(tmp_path / "run", n=20, t=5)
    (run / "metadata.pth").unlink()
    assert load_run(run).label_flipped is None


@pytest.mark.parametrize("damage", ["missing", "truncated", "not_td", "wrong_labels", "meta_mismatch"])
def test_bad_run_folders_give_one_line_errors_naming_the_file(tmp_path, damage):
    run = write_run(tmp_path / "run", n=30, t=5)
    npz = run / "training_dynamics.npz"
    if damage == "missing":
        npz.unlink()
    elif damage == "truncated":
        npz.write_bytes(npz.read_bytes()[:200])
    elif damage == "not_td":
        np.savez(npz, something=np.zeros(3))
    elif damage == "wrong_labels":
        np.savez(npz, td=np.zeros((30, 5, 4), np.float16), labels=np.zeros((29, 4), np.int16))
    elif damage == "meta_mismatch":
        with np.load(npz) as d:
            td, labels = d["td"], d["labels"].copy()
        labels[:, 0] = (labels[:, 0] + 1) % 4
        np.savez(npz, td=td, labels=labels)
    with pytest.raises(UsageError) as err:
        load_run(run)
    assert str(run) in str(err.value) and "\n" not in str(err.value)


def test_resample_time_hand_computed():
    x = np.array([[0.0, 1.0, 0.0], [1.0, 2.0, 3.0]], np.float32)
    # 3 -> 5 steps: positions 0, .5, 1, 1.5, 2
    np.testing.assert_allclose(resample_time(x, 5), [[0, .5, 1, .5, 0], [1, 1.5, 2, 2.5, 3]])
    # 3 -> 2 steps: the ends map to the ends
    np.testing.assert_allclose(resample_time(x, 2), [[0, 0], [1, 3]])
    assert resample_time(x, 3) is not None and np.array_equal(resample_time(x, 3), x)
    np.testing.assert_allclose(resample_time(x[:, :1], 4), [[0] * 4, [1] * 4])


def test_resample_time_round_trip_of_linear_curve():
    x = np.linspace(0, 1, 40, dtype=np.float32)[None]
    np.testing.assert_allclose(resample_time(resample_time(x, 200), 40), x, atol=1e-6)
