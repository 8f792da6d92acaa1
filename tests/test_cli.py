"""The shell entry point end to end, and one-line errors with a non-zero exit for bad input."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(cmd, **kw):
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={"PYTHON": sys.executable, "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}, **kw)


def test_generate_td_sh_end_to_end(tmp_path):
    r = run(["bash", "generate_td.sh", "none", "digits", "3", "0.4", "asym", "cnn", "2", str(tmp_path),
             "--num_epochs", "3", "--threads", "1", "--no_progress"])
    assert r.returncode == 0, r.stderr
    out = tmp_path / "digits_cnn2_percmislabeled0.4_flip" / "computation4td_seed3"
    with np.load(out / "training_dynamics.npz") as z:
        assert z["td"].shape == (1497, 3, 10)
    assert "realised 0.3" in r.stdout or "realised 0.4" in r.stdout
    assert r.stdout.count("epoch ") >= 3
    assert "runner.py --data none --dataset digits --seed 3" in (out / "cmd.txt").read_text()


def test_generate_td_sh_usage():
    r = run(["bash", "generate_td.sh", "data", "digits"])
    assert r.returncode == 2 and "usage" in r.stderr


@pytest.mark.parametrize("flags,message", [
    (["--dataset", "mnist3d"], "--dataset: unknown dataset 'mnist3d'; valid:"),
    (["--net_type", "vgg"], "--net_type: unknown network 'vgg'; valid:"),
    (["--noise_type", "pair"], "--noise_type: unknown noise type 'pair'; valid:"),
    (["--noise_ratio", "1.0"], "--noise_ratio: expected a value in [0, 1), got 1.0"),
    (["--noise_ratio", "-0.2"], "--noise_ratio: expected a value in [0, 1), got -0.2"),
    (["--dataset", "cifar10", "--data", "/nonexistent/dir"], "--data: data directory /nonexistent/dir does not exist"),
    (["--net_type", "resnet", "--depth", "33"], "--depth: the CIFAR ResNet needs depth 6n+2"),
])
def test_bad_input_one_line(flags, message, tmp_path):
    r = run([sys.executable, "runner.py", "--save", str(tmp_path), "--num_epochs", "1", *flags])
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and r.stderr.startswith("error: ")
    assert message in r.stderr


def test_unwritable_save_path(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    r = run([sys.executable, "runner.py", "--save", str(blocker / "runs"), "--num_epochs", "1"])
    assert r.returncode == 2 and r.stderr.startswith("error: --save: cannot create the run folder")
    assert r.stderr.strip().count("\n") == 0


def test_rerun_with_other_settings_is_refused_and_overwrites_nothing(tmp_path):
    flags = [sys.executable, "runner.py", "--dataset", "digits", "--net_type", "cnn", "--depth", "2",
             "--num_epochs", "2", "--threads", "1", "--no_progress", "--save", str(tmp_path)]
    assert run(flags).returncode == 0
    run_dir = tmp_path / "digits_cnn2_percmislabeled0.2_uniform" / "computation4td_seed0"
    before = {f: (run_dir / f).read_bytes() for f in ("config.json", "metadata.pth", "cmd.txt", "training_dynamics.npz")}
    r = run(flags + ["--record", "eval", "--max_train", "500"])
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0
    assert r.stderr.startswith(f"error: {run_dir} holds a run with other settings (")
    assert "--record 'train' -> 'eval'" in r.stderr and "--restart" in r.stderr
    assert {f: (run_dir / f).read_bytes() for f in before} == before
