"""Kill-and-resume equality: a run killed with SIGKILL mid-training and re-run with the same command ends with
the same ``training_dynamics.npz`` (softmax traces and neighbour agreement) and ``train_log.csv``, byte for byte
(CPU, one thread), as an uninterrupted run."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 8
RUN = "digits_cnn2_percmislabeled0.2_uniform/computation4td_seed4"


def command(save: Path) -> list[str]:
    return [sys.executable, "runner.py", "--dataset", "digits", "--seed", "4", "--net_type", "cnn", "--depth", "2",
            "--num_epochs", str(EPOCHS), "--neighbours", "5", "--save", str(save), "--threads", "1", "--no_progress"]


def run(save: Path) -> subprocess.CompletedProcess:
    return subprocess.run(command(save), cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def committed_epochs(run_dir: Path) -> int:
    try:
        return int(torch.load(run_dir / "resume.pth", weights_only=True)["epoch"])
    except (FileNotFoundError, EOFError, RuntimeError):
        return 0


def assert_same_outputs(a: Path, b: Path) -> None:
    with np.load(a / "training_dynamics.npz") as za, np.load(b / "training_dynamics.npz") as zb:
        assert za["td"].shape == (1497, EPOCHS, 10)
        assert np.array_equal(za["td"], zb["td"]) and np.array_equal(za["labels"], zb["labels"])
        assert za["neighbours"].shape == (1497, EPOCHS) and np.array_equal(za["neighbours"], zb["neighbours"])
    assert (a / "train_log.csv").read_bytes() == (b / "train_log.csv").read_bytes()
    assert (a / "results_valid.csv").read_bytes() == (b / "results_valid.csv").read_bytes()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    save = tmp_path_factory.mktemp("whole")
    r = run(save)
    assert r.returncode == 0, r.stderr
    return save / RUN


def test_sigkill_mid_run_then_rerun_is_exact(uninterrupted, tmp_path):
    run_dir = tmp_path / RUN
    proc = subprocess.Popen(command(tmp_path), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120
    while committed_epochs(run_dir) < 2:
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = committed_epochs(run_dir)
    assert 2 <= killed_at < EPOCHS and not (run_dir / "summary.json").exists()
    assert (run_dir / "td_raw.npy").exists() and not (run_dir / "training_dynamics.npz").exists()
    r = run(tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"resuming {run_dir} after epoch" in r.stdout
    assert_same_outputs(uninterrupted, run_dir)
    assert not (run_dir / "td_raw.npy").exists()
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]


def test_kill_after_training_before_traces_written(uninterrupted, tmp_path):
    """All epochs committed but the traces file not yet written (killed in the final writes): the re-run
    writes the same files without training again."""
    from runner import get_args_parser, main

    args = get_args_parser().parse_args(command(tmp_path)[2:])
    run_dir = tmp_path / RUN
    import pipeline.generate as generate

    original = generate.write_json

    def die(path, obj):
        if Path(path).name == "summary.json":
            raise KeyboardInterrupt  # stands for a kill between the traces and the summary
        original(path, obj)

    generate.write_json = die
    try:
        with pytest.raises(KeyboardInterrupt):
            main(args)
    finally:
        generate.write_json = original
    assert (run_dir / "td_raw.npy").exists(), "the raw traces must outlive a kill before the run is complete"
    main(args)
    assert_same_outputs(uninterrupted, run_dir)
    assert not (run_dir / "td_raw.npy").exists()


@pytest.mark.parametrize("lost", ["td_raw.npy", "td_neighbours_raw.npy"])
def test_resume_without_raw_traces_is_an_error(uninterrupted, tmp_path, lost):
    """A committed epoch whose raw traces (softmax or neighbour agreement) are gone cannot resume silently with
    zeros."""
    proc = subprocess.Popen(command(tmp_path), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    run_dir = tmp_path / RUN
    deadline = time.monotonic() + 120
    while committed_epochs(run_dir) < 1:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (run_dir / lost).unlink()
    r = run(tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and lost in r.stderr
    assert "--restart" in r.stderr
