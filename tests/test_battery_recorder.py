"""The third bad-input battery: the library's recorder (``DynamicsRecorder``) as hard as STEP 1. It never
writes into another run's folder, one recorder writes a folder at a time, and a resume trusts nothing it cannot
check: each refusal is one line naming the file and what to do, and the folder's sha256 is unchanged."""
import errno
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from labeltrace.recorder import DynamicsRecorder
from labeltrace.errors import UsageError
from labeltrace.traces import load_run
from tests.test_battery import RAW_HEADER, digest
from tests.test_sound import RUN, finished, killed  # noqa: F401 - fixtures

N, C, EPOCHS = 7, 3, 2
LABELS = np.arange(N) % C
ROOT = Path(__file__).resolve().parents[1]


def logits(epoch: int) -> torch.Tensor:
    return torch.randn(N, C, generator=torch.Generator().manual_seed(epoch))


def features(epoch: int) -> torch.Tensor:
    return torch.randn(N, 4, generator=torch.Generator().manual_seed(100 + epoch))


def record(run_dir: Path, epochs: int = EPOCHS, *, half: bool = True, labels=LABELS, **kwargs) -> DynamicsRecorder:
    """``epochs`` finished epochs, then (``half``) half of the next one, as a loop killed there leaves them."""
    recorder = DynamicsRecorder(run_dir, labels=labels, num_classes=C, **kwargs)
    k = kwargs.get("neighbours", 0)
    for epoch in range(epochs + half):
        idx = np.arange(N if epoch < epochs else N // 2)
        recorder.update(idx, logits(epoch)[idx], features=features(epoch)[idx] if k else None)
        if epoch < epochs:
            recorder.end_epoch()
    return recorder


def killed_recording(run_dir: Path, layout: str) -> Path:
    """A library run folder whose loop was killed during epoch 3 (2 committed); the full layout records the
    neighbour agreement too."""
    record(run_dir, layout=layout, neighbours=2 if layout == "full" else 0).close()
    return run_dir


@pytest.fixture(params=["full", "compact"])
def killed_loop(request, tmp_path) -> tuple[Path, str]:
    return killed_recording(tmp_path / "r", request.param), request.param


def refused(run_dir: Path, *needles: str, layout: str = "full", error=ValueError, **kwargs) -> str:
    """Constructing a recorder on ``run_dir`` is a one-line ``error`` naming ``needles``; nothing changed."""
    before = digest(run_dir)
    with pytest.raises(error) as info:
        DynamicsRecorder(run_dir, labels=LABELS, num_classes=C, layout=layout,
                         neighbours=2 if layout == "full" else 0, **kwargs)
    message = str(info.value)
    assert "\n" not in message, message
    for needle in needles:
        assert needle in message, message
    assert digest(run_dir) == before
    return message


# -- data lost: another run's folder, a second writer, saving twice -----------------------------------------------

def test_recorder_never_writes_into_a_step1_run_folder(finished):
    run_dir = finished / RUN
    before = digest(run_dir)
    with pytest.raises(ValueError, match=rf"run_dir: {run_dir} holds a STEP 1 run \(.*config.json"):
        DynamicsRecorder(run_dir, labels=np.zeros(1497, dtype=int), num_classes=10)
    assert digest(run_dir) == before


def test_recorder_never_writes_over_a_saved_run_of_other_labels(tmp_path):
    run_dir = record(tmp_path / "r", half=False).save()
    before = digest(run_dir)
    with pytest.raises(ValueError, match=rf"{run_dir} holds a saved run of other labels \(training_dynamics.npz"):
        DynamicsRecorder(run_dir, labels=(LABELS + 1) % C, num_classes=C)
    assert digest(run_dir) == before
    # The same labels again: the same run recorded anew (a notebook run twice), documented in docs/robustness.md
    record(run_dir, 1, half=False).save()
    assert load_run(run_dir).num_epochs == 1


def test_save_twice_is_idempotent_and_recording_after_save_is_refused(tmp_path):
    recorder = record(tmp_path / "r", half=False)
    run_dir = recorder.save()
    before = digest(run_dir)
    assert recorder.save() == run_dir and digest(run_dir) == before
    with pytest.raises(ValueError, match=r"update\(\) after save\(\): the recording of .* is finished"):
        recorder.update(np.arange(N), logits(5))
    with pytest.raises(ValueError, match=r"end_epoch\(\) after save\(\)"):
        recorder.end_epoch()
    assert digest(run_dir) == before and load_run(run_dir).num_epochs == EPOCHS


def test_one_recorder_per_folder(tmp_path):
    first = record(tmp_path / "r", half=False)
    run_dir = tmp_path / "r"
    before = digest(run_dir)
    with pytest.raises(UsageError, match=rf"{run_dir} is in use by another DynamicsRecorder of this process: call "
                                         r"its close\(\) \(or save\(\)\) first"):
        DynamicsRecorder(run_dir, labels=LABELS, num_classes=C)
    code = (f"import numpy as np; from labeltrace.recorder import DynamicsRecorder; "
            f"DynamicsRecorder({str(run_dir)!r}, labels=np.arange({N}) % {C}, num_classes={C})")
    other = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                           env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert other.returncode != 0 and "is in use by another process" in other.stderr.splitlines()[-1]
    assert digest(run_dir) == before
    first.close()
    with pytest.warns(UserWarning, match="resuming after its 2 finished epochs"):
        assert DynamicsRecorder(run_dir, labels=LABELS, num_classes=C).num_epochs == EPOCHS


def test_a_dropped_recorder_lets_its_folder_go(tmp_path):
    """A notebook cell run again: the recorder it replaced is gone, so is its lock."""
    import gc

    record(tmp_path / "r", half=False)  # not kept: garbage once collected
    gc.collect()
    with pytest.warns(UserWarning, match="resuming after its 2 finished epochs"):
        DynamicsRecorder(tmp_path / "r", labels=LABELS, num_classes=C).close()


# -- recorder.json: corrupt, of another shape, or ahead of the rows ------------------------------------------------

@pytest.mark.parametrize("case,needle", [
    ("not_json", "not a recorder state (not JSON"), ("empty", "not a recorder state (not JSON"),
    ("list", "not a recorder state (a JSON list)"), ("no_epochs", "not a recorder state (no 'epochs')"),
    ("negative", "epochs -1 is not a whole number"), ("fraction", "epochs 2.5 is not a whole number"),
    ("text", "epochs 'abc' is not a whole number"), ("folder", "not a recorder state (a folder)"),
    ("ahead_99", "td_raw"), ("ahead_1", "does not hold one checksum per committed epoch")])
def test_damaged_recorder_state_is_refused(killed_loop, case, needle):
    run_dir, layout = killed_loop
    state = run_dir / "recorder.json"
    saved = json.loads(state.read_text())
    text = {"not_json": "{epochs: 2", "empty": "", "list": "[2]", "no_epochs": json.dumps({"layout": layout}),
            "negative": json.dumps({**saved, "epochs": -1}), "fraction": json.dumps({**saved, "epochs": 2.5}),
            "text": json.dumps({**saved, "epochs": "abc"}), "ahead_99": json.dumps({**saved, "epochs": 99}),
            "ahead_1": json.dumps({**saved, "epochs": 3})}.get(case)
    if case == "folder":
        state.unlink()
        state.mkdir()
    else:
        state.write_text(text)
    message = refused(run_dir, needle, "restart=True", layout=layout)
    if case == "ahead_99":
        assert "holds 3 epochs but recorder.json commits 99" in message


# -- the working files: missing, cut short, replaced, damaged after their commit ------------------------------------

def _damage(path: Path, how: str, at: int) -> None:
    """``at``: the first byte of a committed block (overwritten by "zeroed" and "ff")."""
    if how == "deleted":
        path.unlink()
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[:-5])
    elif how == "random":
        path.write_bytes(np.random.default_rng(0).bytes(path.stat().st_size))
    elif how == "pickled":
        path.write_bytes(pickle.dumps({"td": [1, 2, 3]}))
    else:  # zeroes (a legal agreement, a legal probability) or 0xFF (NaN) over a committed block
        data = bytearray(path.read_bytes())
        data[at:at + 4] = bytes(4) if how == "zeroed" else b"\xff" * 4
        path.write_bytes(bytes(data))


# Each working file, its layout, and the committed block a resume after epoch 2 reads: the raw rows' epoch 1,
# the sums' slot 2 (the last commit's; slot 1 holds the stale sums of epoch 1).
WORKING_FILES = {"td_raw.npy": ("full", 0, "epoch 1"), "td_neighbours_raw.npy": ("full", 0, "epoch 1"),
                 "td_raw_compact.npy": ("compact", 0, "epoch 1"), "td_mean_sum.npy": ("compact", N * C * 4, "slot 2")}


@pytest.mark.parametrize("how,needle", [("deleted", "is missing: the 2 committed epochs are lost"),
                                        ("truncated", "truncated"), ("random", "unreadable working file"),
                                        ("pickled", "unreadable working file"),
                                        ("zeroed", "changed after it was committed"),
                                        ("ff", "changed after it was committed")])
@pytest.mark.parametrize("name", list(WORKING_FILES))
def test_damaged_working_file_is_refused(tmp_path, name, how, needle):
    layout, at, block = WORKING_FILES[name]
    run_dir = killed_recording(tmp_path / "r", layout)
    _damage(run_dir / name, how, RAW_HEADER + at)
    if "changed" in needle:
        needle = f"{block} {needle}"
    refused(run_dir, str(run_dir / name), needle, "restart=True", layout=layout)


def test_restart_records_from_scratch_over_damaged_working_files(killed_loop):
    run_dir, layout = killed_loop
    (run_dir / "recorder.json").write_text("[]")
    recorder = record(run_dir, 1, half=False, layout=layout, neighbours=2 if layout == "full" else 0, restart=True)
    assert recorder.num_epochs == 1 and load_run(recorder.save()).num_epochs == 1


def test_a_valid_resume_still_resumes_and_keeps_checksums(killed_loop):
    run_dir, layout = killed_loop
    k = 2 if layout == "full" else 0
    with pytest.warns(UserWarning, match="resuming after its 2 finished epochs"):
        recorder = DynamicsRecorder(run_dir, labels=LABELS, num_classes=C, layout=layout, neighbours=k)
    recorder.update(np.arange(N), logits(2), features=features(2) if k else None)
    recorder.end_epoch()
    state = json.loads((run_dir / "recorder.json").read_text())
    assert state["epochs"] == 3 and len(state["rows_crc32"]) == 3
    recorder.close()
    with pytest.warns(UserWarning, match="resuming after its 3 finished epochs"):
        DynamicsRecorder(run_dir, labels=LABELS, num_classes=C, layout=layout, neighbours=k).close()


# -- construction and writing ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,needle", [
    ({"labels": np.zeros(0, dtype=int)}, "labels is empty: a recorder needs one label per training sample"),
    ({"num_classes": 3.0}, "num_classes must be a whole number of classes >= 2, got 3.0"),
    ({"num_classes": "3"}, "num_classes must be a whole number of classes >= 2, got '3'"),
    ({"num_classes": 1}, "num_classes must be a whole number of classes >= 2, got 1")])
def test_recorder_arguments_refused_at_construction(tmp_path, kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        DynamicsRecorder(tmp_path / "r", **{"labels": LABELS, "num_classes": C, **kwargs})
    assert not (tmp_path / "r").exists()


def test_run_dir_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("mine")
    with pytest.raises(ValueError, match=f"run_dir: {tmp_path / 'f'} is a file, not a folder"):
        DynamicsRecorder(tmp_path / "f", labels=LABELS, num_classes=C)
    assert (tmp_path / "f").read_text() == "mine"


def test_read_only_run_dir_is_one_line(tmp_path, monkeypatch):
    import labeltrace.recording

    def read_only(run_dir):
        raise OSError(errno.EROFS, "Read-only file system", str(run_dir / ".lock"))

    monkeypatch.setattr(labeltrace.recording, "lock_run_dir", read_only)
    (tmp_path / "r").mkdir()
    with pytest.raises(ValueError, match=rf"run_dir: cannot write {tmp_path / 'r' / '.lock'} \(Read-only file system\)"):
        DynamicsRecorder(tmp_path / "r", labels=LABELS, num_classes=C)


def test_full_disk_in_save_keeps_the_epochs_and_saves_once_there_is_space(tmp_path, monkeypatch):
    import labeltrace.recording

    recorder = record(tmp_path / "r", half=False, layout="compact")
    real = labeltrace.recording.write_compact

    def full(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(labeltrace.recording, "write_compact", full)
    with pytest.raises(OSError, match=r"no space left on device writing .*training_dynamics_compact.npz: free some "
                                      r"space and call save\(\) again \(the committed epochs are intact\)"):
        recorder.save()
    monkeypatch.setattr(labeltrace.recording, "write_compact", real)
    assert load_run(recorder.save()).num_epochs == EPOCHS


def test_a_state_without_checksums_still_range_checks_the_rows(tmp_path):
    """recorder.json of a recorder that kept no checksums, one epoch ahead: the killed epoch's half-written block
    would resume as committed, its unrecorded rows zeros."""
    run_dir = killed_recording(tmp_path / "r", "full")
    state = json.loads((run_dir / "recorder.json").read_text())
    del state["rows_crc32"], state["neighbours_crc32"]
    (run_dir / "recorder.json").write_text(json.dumps({**state, "epochs": 3}))
    refused(run_dir, f"{run_dir / 'td_raw.npy'}: epoch 3 has 7 of 7 rows that do not sum to 1 (never written: zeros)",
            "restart=True")
    (run_dir / "recorder.json").write_text(json.dumps(state))  # the 2 committed epochs are whole: resumed
    with pytest.warns(UserWarning, match="resuming after its 2 finished epochs"):
        DynamicsRecorder(run_dir, labels=LABELS, num_classes=C, neighbours=2).close()
