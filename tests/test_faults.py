"""Bad input and faults, none losing data: corrupt traces files, a NaN loss, a disk that fills up mid-write."""
import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from labeltrace import io
from labeltrace.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]
RUN = "digits_cnn2_percmislabeled0.2_uniform/computation4td_seed5"


def args_for(save: Path, *extra: str):
    from runner import get_args_parser

    return get_args_parser().parse_args(["--dataset", "digits", "--seed", "5", "--net_type", "cnn", "--depth", "2",
                                         "--num_epochs", "3", "--save", str(save), "--threads", "1",
                                         "--no_progress", *extra])


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    from runner import main

    save = tmp_path_factory.mktemp("ref")
    main(args_for(save))
    return save / RUN


# -- corrupt or truncated traces files -------------------------------------------------------------------------

def _loaders():
    yield "labeltrace.io.load_npz", lambda path: io.load_npz(path, keys=("td", "labels"))
    try:
        from labeltrace.traces import load_run
    except ImportError:  # the detector package is optional
        return
    yield "labeltrace.traces.load_run", load_run


@pytest.mark.parametrize("loader", [name for name, _ in _loaders()])
@pytest.mark.parametrize("damage", ["truncated", "bitflip", "empty", "not_a_zip"])
def test_damaged_traces_file_names_the_file(reference, tmp_path, damage, loader):
    load = dict(_loaders())[loader]
    data = (reference / "training_dynamics.npz").read_bytes()
    bad = tmp_path / "training_dynamics.npz"
    if damage == "truncated":
        bad.write_bytes(data[: len(data) // 2])
    elif damage == "bitflip":
        flipped = bytearray(data)
        for i in range(200, len(data) // 2, 97):  # inside the compressed ``td`` member
            flipped[i] ^= 0xFF
        bad.write_bytes(bytes(flipped))
    elif damage == "empty":
        bad.write_bytes(b"")
    else:
        bad.write_text("td,labels\n1,2\n")
    with pytest.raises(UsageError, match=str(bad).replace(".", r"\.")):
        load(bad)


def test_core_npz_loader(reference, tmp_path):
    arrays = io.load_npz(reference / "training_dynamics.npz", keys=("td", "labels"))
    assert arrays["td"].shape == (1497, 3, 10)
    bad = tmp_path / "x.npz"
    bad.write_bytes((reference / "training_dynamics.npz").read_bytes()[:1000])
    with pytest.raises(UsageError, match="x.npz: unreadable"):
        io.load_npz(bad)
    io.save_npz(bad, td=np.zeros(3))
    with pytest.raises(UsageError, match="missing \\['labels'\\]"):
        io.load_npz(bad, keys=("td", "labels"))


# -- NaN loss --------------------------------------------------------------------------------------------------

def test_nan_loss_stops_naming_the_epoch_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    """From epoch 3 on the learning rate explodes: the loss goes non-finite, the run stops with a message naming
    epoch 3, and what epochs 1-2 committed is intact (re-running with a lower --lr is a new run)."""
    import core.fit
    from runner import main

    real_lr_at = core.fit.lr_at
    monkeypatch.setattr(core.fit, "lr_at", lambda recipe, epoch: 1e30 if epoch >= 2 else real_lr_at(recipe, epoch))
    with pytest.raises(UsageError, match="epoch 3: training loss is (nan|inf).*last good checkpoint"):
        main(args_for(tmp_path))
    run_dir = tmp_path / RUN
    state = torch.load(run_dir / "resume.pth", weights_only=True)
    assert state["epoch"] == 2 and len(state["rows"]) == 2
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    last = torch.load(run_dir / "model.pth.last", weights_only=True)
    assert all(torch.equal(last[k], state["model"][k]) for k in last)
    assert pd.read_csv(run_dir / "train_log.csv")["epoch"].tolist() == [1, 2]
    raw = np.load(run_dir / "td_raw.npy")  # (T, N, C): the two committed epochs hold probabilities
    assert np.allclose(raw[:2].astype(np.float32).sum(-1), 1, atol=1e-2) and not raw[2:].any()


def test_non_finite_outputs_of_the_recording_pass_stop_in_one_line(tmp_path, monkeypatch):
    """--record eval: outputs the recorder refuses in the eval pass (the training loss still finite) stop the run
    with the epoch named and nothing of it committed, as a non-finite training loss does."""
    from labeltrace import DynamicsRecorder
    from labeltrace.errors import Diverged
    from runner import main

    def diverged(self, *args, **kwargs):
        raise Diverged("outputs hold 3 NaN or infinite values: the model diverged (nothing recorded)")

    monkeypatch.setattr(DynamicsRecorder, "update", diverged)
    with pytest.raises(UsageError, match=r"^epoch 1: the recording pass's outputs are not finite \(outputs hold 3 "
                                         r"NaN.*no epoch was committed"):
        main(args_for(tmp_path, "--record", "eval"))
    assert not (tmp_path / RUN / "resume.pth").exists()


def test_nan_loss_cli_one_line(tmp_path):
    r = subprocess.run([sys.executable, "runner.py", "--dataset", "digits", "--num_epochs", "2", "--lr", "1e30",
                        "--save", str(tmp_path), "--threads", "1", "--no_progress"], cwd=ROOT, capture_output=True,
                       text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 2 and r.stderr.startswith("error: epoch 1: training loss is")
    assert r.stderr.strip().count("\n") == 0 and "--lr" in r.stderr


# -- a disk that fills up --------------------------------------------------------------------------------------

def _no_space(*_):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("writer", ["text", "csv", "torch", "npz", "npz_chunked"])
def test_full_disk_keeps_the_previous_file_and_no_temp(tmp_path, writer):
    target = tmp_path / f"out.{writer}"
    target.write_bytes(b"previous content")

    def chunks():
        yield np.ones((4, 3), np.float16)
        _no_space()

    with pytest.raises(OSError) as info:
        if writer == "text":
            with io.atomic_open(target, "w") as handle:
                handle.write("half of the new content")
                _no_space()
        elif writer == "csv":
            frame = pd.DataFrame({"a": [1, 2]})
            frame.to_csv = lambda handle, index: (handle.write("a\n1\n"), _no_space())
            io.write_csv(target, frame)
        elif writer == "torch":
            original = torch.save
            torch.save = lambda obj, handle: (handle.write(b"PK\x03\x04half"), _no_space())
            try:
                io.torch_save({"w": torch.ones(3)}, target)
            finally:
                torch.save = original
        elif writer == "npz":
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(np, "savez_compressed", lambda handle, **a: (handle.write(b"PK\x03\x04"), _no_space()))
                io.save_npz(target, td=np.ones(3))
        else:
            io.save_npz_chunked(target, {"td": ((8, 3), np.float16, chunks())})
    assert info.value.errno == errno.ENOSPC
    assert target.read_bytes() == b"previous content"
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


def test_full_disk_mid_run_loses_nothing(reference, tmp_path, monkeypatch):
    """The disk fills while epoch 2 writes its log: the run stops with one line naming the problem, epoch 1
    stays committed, and re-running the same command (space freed) ends exactly like an uninterrupted run."""
    import core.fit
    from labeltrace.errors import run_cli
    from runner import main

    real = core.fit.write_csv
    calls = []

    def write_csv(path, frame):
        calls.append(path)
        if len(calls) == 2:
            with io.atomic_open(path, "w") as handle:
                handle.write("epoch,train")
                _no_space()
        real(path, frame)

    monkeypatch.setattr(core.fit, "write_csv", write_csv)
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda: main(args_for(tmp_path)))
    assert exit_info.value.code == 1
    run_dir = tmp_path / RUN
    assert pd.read_csv(run_dir / "train_log.csv")["epoch"].tolist() == [1]
    assert torch.load(run_dir / "resume.pth", weights_only=True)["epoch"] == 1
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.setattr(core.fit, "write_csv", real)
    main(args_for(tmp_path))
    with np.load(reference / "training_dynamics.npz") as a, np.load(run_dir / "training_dynamics.npz") as b:
        assert np.array_equal(a["td"], b["td"]) and np.array_equal(a["labels"], b["labels"])
    assert (reference / "train_log.csv").read_bytes() == (run_dir / "train_log.csv").read_bytes()


def test_full_disk_message(capsys):
    from labeltrace.errors import run_cli

    with pytest.raises(SystemExit) as info:
        run_cli(lambda: _no_space())
    err = capsys.readouterr().err
    assert info.value.code == 1 and err.startswith("error: no space left on device")
    assert "re-run the same command to resume" in err and err.strip().count("\n") == 0
