"""Sound to the core: every fault is a one-line error naming the file or flag (exit status 2), and
nothing is written or lost. Each case runs a command's ``main`` under ``run_cli``, as its entry point does, on a
5-epoch digits run (or a small synthetic run folder) in seconds."""
import fcntl
import os
import pickle
import shutil
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from labeltrace.errors import UsageError, run_cli
from tests.conftest import write_cifar, write_image_folder
from tests.library.synthetic_run import write_run

ROOT = Path(__file__).resolve().parents[1]
RUN = "digits_cnn2_percmislabeled0.2_uniform/computation4td_seed7"
STEP1 = ["--dataset", "digits", "--seed", "7", "--net_type", "cnn", "--depth", "2", "--num_epochs", "5",
         "--threads", "1", "--no_progress"]
KILLED_AT = 2


# -- helpers ---------------------------------------------------------------------------------------------------

def step1(save: Path, *extra: str):
    from runner import get_args_parser, main

    return lambda: main(get_args_parser().parse_args([*STEP1, "--save", str(save), *extra]))


def step2(*argv: str):
    from train_detector import get_args_parser, main

    return lambda: main(get_args_parser().parse_args(["--epochs", "1", "--threads", "1", *argv]))


def step3(save: Path, *extra: str):
    from denoise import get_args_parser, main

    return lambda: main(get_args_parser().parse_args([*STEP1, "--save", str(save), "--num_epochs", "1",
                                                      "--detector", "baseline:confidence", *extra]))


def plots(*argv: str):
    from plots import get_args_parser, main

    return lambda: main(get_args_parser().parse_args(list(argv)))


def export(*argv: str):
    from pipeline.export import main

    return lambda: main(list(argv))


def one_line_error(command, capsys, *needles: str, status: int = 2) -> str:
    """Run ``command`` as its entry point does; it must exit with ``status`` and one line naming ``needles``."""
    with pytest.raises(SystemExit) as info:
        run_cli(command)
    err = capsys.readouterr().err
    assert info.value.code == status, err
    assert err.startswith("error: ") and err.strip().count("\n") == 0, err
    for needle in needles:
        assert needle in err, err
    return err


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


class Evil:
    """A pickle that runs code: it creates ``marker`` when loaded by a plain unpickler."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture(scope="module")
def killed(tmp_path_factory) -> Path:
    """A STEP 1 run killed after committing epoch 2 of 5 (``td_raw.npy`` and ``resume.pth`` present)."""
    from labeltrace import DynamicsRecorder

    save = tmp_path_factory.mktemp("killed")
    real, calls = DynamicsRecorder.end_epoch, []

    def end_epoch(self):
        calls.append(1)
        if len(calls) > KILLED_AT:
            raise KeyboardInterrupt  # stands for kill -9 while epoch 3 trains
        real(self)

    DynamicsRecorder.end_epoch = end_epoch
    try:
        with pytest.raises(KeyboardInterrupt):
            step1(save)()
    finally:
        DynamicsRecorder.end_epoch = real
    return save


@pytest.fixture
def resumable(killed, tmp_path) -> Path:
    """A copy of the killed run (another --save: the copy is a moved folder); returns its --save."""
    shutil.copytree(killed, tmp_path / "save")
    return tmp_path / "save"


@pytest.fixture(scope="module")
def finished(tmp_path_factory, killed) -> Path:
    """The killed run resumed to its end: a complete STEP 1 run for STEP 3; returns its --save."""
    save = tmp_path_factory.mktemp("finished")
    shutil.copytree(killed, save, dirs_exist_ok=True)
    step1(save)()
    return save


@pytest.fixture
def synthetic(tmp_path) -> Path:
    return write_run(tmp_path / "synthetic_run", n=200, t=10)


# -- 1, 2, 3, 9, 10: resuming, temporary files, two processes, other spellings of --save ---------------------

def test_truncated_raw_traces_refused_and_nothing_rewritten(resumable, capsys):
    run_dir = resumable / RUN
    raw = run_dir / "td_raw.npy"
    raw.write_bytes(raw.read_bytes()[: raw.stat().st_size // 10])  # cut to 10% after a kill
    (run_dir / "cmd.txt").write_text("the run's own command\n")
    before = snapshot(run_dir)
    one_line_error(step1(resumable), capsys, f"{raw}: truncated", f"{KILLED_AT} committed epochs are lost",
                   "--restart")
    assert snapshot(run_dir) == before  # cmd.txt, config.json, metadata.pth untouched (item 10)


def test_orphan_temp_file_of_a_kill_is_removed_on_resume(resumable):
    run_dir = resumable / RUN
    orphan = run_dir / ".model.pth.last.k1ll3d.tmp"
    orphan.write_bytes(b"half a checkpoint")
    step1(resumable)()
    assert not orphan.exists() and (run_dir / "summary.json").is_file()
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]


def test_second_process_on_the_same_run_folder_is_refused(resumable, capsys):
    run_dir = resumable / RUN
    before = snapshot(run_dir)
    with open(run_dir / ".lock", "a") as held:  # another process's lock: flock conflicts across open files
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        one_line_error(step1(resumable, "--threads", "2"), capsys, f"{run_dir} is in use by another process")
    assert snapshot(run_dir) == before


def test_second_process_refused_across_processes(resumable):
    run_dir = resumable / RUN
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time; h = open(sys.argv[1], 'a'); "
                               "fcntl.flock(h, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)",
                               str(run_dir / ".lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        r = subprocess.run([sys.executable, "runner.py", *STEP1, "--save", str(resumable)], cwd=ROOT,
                           capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    finally:
        holder.kill()
        holder.wait()
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0
    assert r.stderr.startswith(f"error: {run_dir} is in use by another process")


@pytest.mark.parametrize("spelling", ["dot", "moved"])
def test_other_spelling_of_save_resumes_the_run(resumable, capsys, spelling):
    """The fixture's copy already is a moved folder (made under another --save); ``save/./`` spells it anew."""
    save = f"{resumable.parent}/./{resumable.name}" if spelling == "dot" else resumable  # a str: Path drops "."
    step1(save)()
    out = capsys.readouterr().out
    assert f"after epoch {KILLED_AT}/5" in out and "done:" in out


# -- 4: a malicious CIFAR pickle -------------------------------------------------------------------------------

def test_malicious_cifar_batch_is_refused_without_running_it(tmp_path, capsys):
    from datasets.registry import load_dataset

    folder = write_cifar(tmp_path, "cifar10")
    marker = tmp_path / "pwned"
    (folder / "data_batch_1").write_bytes(pickle.dumps({"data": Evil(marker)}, protocol=2))
    with pytest.raises(UsageError, match="data_batch_1: refused to load: the pickle asks for (posix|os).system"):
        load_dataset("cifar10", str(tmp_path))
    assert not marker.exists()
    one_line_error(step1(tmp_path / "runs", "--dataset", "cifar10", "--data", str(tmp_path)), capsys,
                   "data_batch_1: refused")
    assert not marker.exists() and not (tmp_path / "runs").exists()


def test_cifar_pickles_of_numpy_1_still_load(tmp_path):
    """Real CIFAR files name ``numpy.core.multiarray._reconstruct`` (numpy 1); numpy 2 writes ``numpy._core``."""
    from datasets.registry import load_dataset

    folder = write_cifar(tmp_path, "cifar10")
    for path in folder.iterdir():
        path.write_bytes(path.read_bytes().replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    bundle = load_dataset("cifar10", str(tmp_path))
    assert bundle.train.images.shape == (100, 3, 32, 32)


# -- 5: a full disk --------------------------------------------------------------------------------------------

class FullDisk:
    """A file handle on a disk that fills up after ``room`` bytes."""

    def __init__(self, handle, room: int) -> None:
        self.handle, self.room = handle, room

    def write(self, data) -> int:
        self.room -= len(data)
        if self.room < 0:
            raise OSError(28, os.strerror(28))
        return self.handle.write(data)

    def flush(self) -> None:
        self.handle.flush()


def test_full_disk_inside_torch_save_is_one_line(resumable, capsys, monkeypatch):
    """torch.save re-raises ENOSPC as a RuntimeError (two tracebacks before); it is the full-disk line now."""
    import core.fit
    from labeltrace import io

    def torch_save(obj, path):
        with io.atomic_open(path, "wb") as handle:
            torch.save(obj, FullDisk(handle, room=1000))  # the real torch.save, on a full disk

    monkeypatch.setattr(core.fit, "torch_save", torch_save)
    run_dir = resumable / RUN
    before = torch.load(run_dir / "resume.pth", weights_only=True)["epoch"]
    one_line_error(step1(resumable), capsys, "no space left on device writing", str(run_dir / "model.pth"),
                   status=1)
    assert torch.load(run_dir / "resume.pth", weights_only=True)["epoch"] == before
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]


# -- 6: tracebacks that are one-line errors now ----------------------------------------------------------------

@pytest.mark.parametrize("flags,needle", [
    (["--seed", "-5"], "--seed: expected a value in 0..4294967295, got -5"),
    (["--lr", "-1"], "--lr: expected a positive learning rate, got -1.0"),
    (["--depth", "0"], "--depth: expected a positive number, got 0"),
    (["--momentum", "0"], "--momentum"),
])
def test_step1_bad_flags_write_nothing(tmp_path, capsys, flags, needle):
    one_line_error(step1(tmp_path / "runs", *flags), capsys, needle)
    assert not (tmp_path / "runs").exists()


def test_cifar_label_outside_the_classes(tmp_path, capsys):
    folder = write_cifar(tmp_path, "cifar10")
    entry = pickle.loads((folder / "data_batch_2").read_bytes(), encoding="latin1")
    entry["labels"][3] = 10
    (folder / "data_batch_2").write_bytes(pickle.dumps(entry, protocol=2))
    one_line_error(step1(tmp_path / "runs", "--dataset", "cifar10", "--data", str(tmp_path)), capsys,
                   f"{folder / 'data_batch_2'}: label 10 at position 3 is outside the 10 classes")


@pytest.mark.parametrize("workers", ["0", "1"])
def test_corrupt_png_in_an_image_folder(tmp_path, capsys, workers):
    root = write_image_folder(tmp_path / "tree")
    bad = root / "train" / "bee" / "2.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    one_line_error(step1(tmp_path / "runs", "--dataset", "imagefolder", "--data", str(root), "--image_size", "12",
                         "--net_type", "cnn", "--depth", "1", "--num_epochs", "1", "--num_workers", workers),
                   capsys, f"{bad}: unreadable image")


def _nan_run(synthetic: Path) -> Path:
    with np.load(synthetic / "training_dynamics.npz") as z:
        td, labels = z["td"].copy(), z["labels"]
    td[5, 3, 0] = np.nan
    np.savez_compressed(synthetic / "training_dynamics.npz", td=td, labels=labels)
    return synthetic


@pytest.mark.parametrize("stage", ["detector", "plots", "export", "denoise"])
def test_nan_in_the_traces(synthetic, tmp_path, capsys, stage):
    run = _nan_run(synthetic)
    out = tmp_path / "out"
    command = {"detector": step2("--files_path", str(run), "--out", str(out / "d.pth.tar")),
               "plots": plots(str(run), "--out", str(out)),
               "export": export(str(run), "--out", str(out)),
               "denoise": step3(tmp_path / "runs", "--td_run", str(run))}[stage]
    one_line_error(command, capsys, f"{run / 'training_dynamics.npz'}: 'td' holds 1 NaN or infinite")
    assert not out.exists() and not (tmp_path / "runs").exists()  # no JSONL with NaN tokens, no figures


def test_lr_in_step2_and_step3(synthetic, finished, tmp_path, capsys):
    one_line_error(step2("--files_path", str(synthetic), "--lr", "-1", "--out", str(tmp_path / "d.pth.tar")),
                   capsys, "--lr: expected a positive learning rate, got -1.0")
    before = snapshot(finished)
    one_line_error(step3(finished, "--lr", "-1"), capsys, "--lr: expected a positive learning rate, got -1.0")
    assert snapshot(finished) == before


@pytest.mark.parametrize("flags,needle", [
    (["--val_fraction", "0.999"], "--val_fraction: expected a value in (0, 0.5]"),
    (["--length", "-3"], "--length: expected a positive number of epochs, got -3"),
    (["--length", "0"], "--length: expected a positive number of epochs, got 0"),
])
def test_detector_flags(synthetic, tmp_path, capsys, flags, needle):
    out = tmp_path / "d.pth.tar"
    one_line_error(step2("--files_path", str(synthetic), "--out", str(out), *flags), capsys, needle)
    assert not out.exists()


def test_detector_out_is_a_folder(synthetic, tmp_path, capsys):
    one_line_error(step2("--files_path", str(synthetic), "--out", str(tmp_path)), capsys,
                   f"--out: {tmp_path} is a folder")


@pytest.fixture
def read_only(tmp_path, monkeypatch) -> Path:
    """A folder nobody may write into (root ignores the mode bits: os.access is told then)."""
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() == 0:
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **k: False if Path(p) == folder and mode & os.W_OK
                            else real(p, mode, **k))
    yield folder
    folder.chmod(0o755)


@pytest.mark.parametrize("stage", ["detector", "plots", "export"])
def test_read_only_output_folder(synthetic, read_only, capsys, stage):
    command = {"detector": step2("--files_path", str(synthetic), "--out", str(read_only / "d.pth.tar")),
               "plots": plots(str(synthetic), "--out", str(read_only / "figures")),
               "export": export(str(synthetic), "--out", str(read_only / "maps"))}[stage]
    one_line_error(command, capsys, f"--out: cannot write into {read_only}")
    assert not list(read_only.iterdir())


def test_permission_error_anywhere_is_one_line(capsys):
    def denied():
        raise PermissionError(13, os.strerror(13), "/some/file")

    one_line_error(denied, capsys, "/some/file: Permission denied")


@pytest.mark.parametrize("kind", ["empty", "random", "malicious", "no_config"])
def test_damaged_resume_state(resumable, tmp_path, capsys, kind):
    run_dir = resumable / RUN
    state, marker = run_dir / "resume.pth", tmp_path / "pwned"
    if kind == "empty":
        state.write_bytes(b"")
    elif kind == "random":
        state.write_bytes(os.urandom(4096))
    elif kind == "malicious":
        torch.save({"epoch": 2, "config": Evil(marker)}, state)
    else:
        torch.save({"epoch": 2, "model": {}}, state)
    before = snapshot(run_dir)
    err = one_line_error(step1(resumable), capsys, f"{state}: ", "--restart")
    assert "weights_only" not in err and "will likely succeed" not in err
    assert not marker.exists() and snapshot(run_dir) == before


def test_metadata_missing_a_key(finished, tmp_path, capsys):
    save = tmp_path / "save"
    shutil.copytree(finished, save)
    meta_path = save / RUN / "metadata.pth"
    meta = torch.load(meta_path, weights_only=True)
    del meta["label_flipped"]
    torch.save(meta, meta_path)
    one_line_error(step3(save), capsys, f"{meta_path}: missing label_flipped")


# -- 7: silent substitutions -----------------------------------------------------------------------------------

def test_depth_0_is_not_the_default_depth(finished, capsys):
    """``cnn 0`` was the finished ``cnn 3`` run of the same settings; now it is an error."""
    before = snapshot(finished)
    one_line_error(step1(finished, "--depth", "0"), capsys, "--depth: expected a positive number, got 0")
    assert snapshot(finished) == before


def test_step3_batch_size_0_is_an_error(finished, capsys):
    before = snapshot(finished)
    one_line_error(step3(finished, "--batch_size", "0"), capsys, "--batch_size: expected a positive number, got 0")
    assert snapshot(finished) == before


def test_pretrained_that_does_not_fit_is_an_error(tmp_path, capsys):
    from models.registry import build_model

    path = tmp_path / "weights.pth"
    torch.save({"features.0.weight": torch.zeros(32, 1, 3, 3)}, path)  # 1 of the network's tensors
    one_line_error(step1(tmp_path / "runs", "--pretrained", str(path)), capsys,
                   f"--pretrained: {path} fits 1 of the", "missing or of another shape")
    assert not (tmp_path / "runs").exists()
    # Another number of classes: every tensor but the head loads, and the output says so.
    torch.save(build_model("cnn", 2, num_classes=7, in_channels=1, image_size=8).state_dict(), path)
    said = []
    model = build_model("cnn", 2, num_classes=10, in_channels=1, image_size=8, pretrained=str(path), log=said.append)
    assert len(said) == 1 and "(fc.bias, fc.weight)" in said[0] and model.fc.out_features == 10


def test_empty_image_folder_class(tmp_path, capsys):
    root = write_image_folder(tmp_path / "tree")
    (root / "train" / "dog").mkdir()
    one_line_error(step1(tmp_path / "runs", "--dataset", "imagefolder", "--data", str(root)), capsys,
                   f"{root / 'train' / 'dog'}: a class folder without images")


def test_remove_ratio_that_keeps_almost_nothing(finished, capsys, monkeypatch):
    before = snapshot(finished)
    one_line_error(step3(finished, "--remove_ratio", "0.999", "--removal", "random"), capsys,
                   "--remove_ratio 0.999: keeps 1 of 1497 samples, fewer than the 10 classes")
    assert snapshot(finished) == before
    import pipeline.denoise

    monkeypatch.setattr(pipeline.denoise, "denoise_one", lambda *a, **k: {})  # no retraining: the warning only
    step3(finished, "--remove_ratio", "0.95", "--removal", "random")()
    assert "warning: --remove_ratio 0.95 keeps 74 of 1497 samples" in capsys.readouterr().out


# -- 8: misleading messages ------------------------------------------------------------------------------------

def test_data_that_is_a_file(tmp_path, capsys):
    data = tmp_path / "cifar.tar.gz"
    data.write_bytes(b"x")
    one_line_error(step1(tmp_path / "runs", "--dataset", "cifar10", "--data", str(data)), capsys,
                   f"--data: {data} is a file, not a data directory")


@pytest.mark.parametrize("stage", ["denoise", "detector", "plots"])
def test_random_bytes_as_a_detector(finished, synthetic, tmp_path, capsys, stage):
    bogus = tmp_path / "bogus.pth.tar"
    bogus.write_bytes(b"garbage" + os.urandom(2041))  # torch reads "Unsupported operand", not code
    command = {"denoise": step3(finished, "--detector", str(bogus)),
               "detector": step2("--files_path", str(synthetic), "--resume", str(bogus),
                                 "--out", str(tmp_path / "d.pth.tar")),
               "plots": plots(str(synthetic), "--detector", str(bogus), "--out", str(tmp_path / "f"))}[stage]
    err = one_line_error(command, capsys, f"{bogus}: not a detector checkpoint")
    assert "code" not in err


def test_nan_at_epoch_1_names_no_missing_checkpoint(tmp_path, capsys):
    err = one_line_error(step1(tmp_path, "--lr", "1e30"), capsys, "epoch 1: training loss is",
                         "no epoch was committed")
    assert "resume.pth" not in err


def test_ctrl_c_in_detector_training_does_not_promise_a_resume(synthetic, tmp_path):
    code = ("import runpy, sys; import detector_models.train as t\n"
            "def interrupted(*a, **k): raise KeyboardInterrupt\n"
            "t.train_detector = interrupted\n"
            f"sys.argv = ['train_detector.py', '--files_path', {str(synthetic)!r}, '--out', {str(tmp_path / 'd')!r}]\n"
            "runpy.run_path('train_detector.py', run_name='__main__')\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 130 and r.stderr.strip() == "interrupted"


def test_malicious_metadata_is_refused_without_torchs_advice(synthetic, tmp_path):
    from labeltrace.traces import load_run

    marker = tmp_path / "pwned"
    torch.save(OrderedDict(train_indices=Evil(marker)), synthetic / "metadata.pth")
    with pytest.raises(UsageError) as info:
        load_run(synthetic)
    message = str(info.value)
    assert message.startswith(f"{synthetic / 'metadata.pth'}: refused to load") and "system" in message
    assert "weights_only" not in message and "\n" not in message and not marker.exists()
