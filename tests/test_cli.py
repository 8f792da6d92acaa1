"""The shell entry point end to end, and one-line errors with a non-zero exit for bad input."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

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
        td, labels = z["td"].astype(np.float32), z["labels"]
    assert td.shape == (1497, 3, 10)
    meta = torch.load(out / "metadata.pth", weights_only=True)
    true, assigned, flipped = (meta[k].numpy() for k in ("true_targets", "assigned_targets", "label_flipped"))
    rows = meta["train_indices"].numpy()
    # asym = flip: class c becomes (c + 1) mod 10, and nothing else changes (uniform noise, a shifted or
    # unseeded draw, or a wrong "flipped" mask all miss this).
    assert np.array_equal(assigned, np.where(flipped, (true + 1) % 10, true))
    assert np.array_equal(flipped, assigned != true)
    # Seeded PCG64 (seed 3), the same on every machine: 599 of the 1,497 flip, 599 / 1497 = 0.40013.
    assert flipped[rows].sum() == 599 and "flip noise 0.4 -> realised 0.4001;" in r.stdout
    assert json.loads((out / "config.json").read_text())["realised_noise_rate"] == 599 / 1497
    # Row n of td is sample train_indices[n]: channel 0 is its assigned label, the other channels are the other
    # nine classes by mean probability, highest first, and each epoch's probabilities sum to 1.
    assert np.array_equal(labels[:, 0], assigned[rows])
    assert np.array_equal(np.sort(labels, 1), np.broadcast_to(np.arange(10), labels.shape))
    assert np.diff(td[:, :, 1:].mean(1), axis=1).max() <= 1e-3  # float16 rounding of the stored values
    np.testing.assert_allclose(td.sum(2), 1.0, atol=2e-3)
    assert [line.split()[1] for line in r.stdout.splitlines() if line.startswith("epoch ")] == ["1/3", "2/3", "3/3"]
    assert "runner.py --data none --dataset digits --seed 3" in (out / "cmd.txt").read_text()


def test_generate_td_sh_usage():
    r = run(["bash", "generate_td.sh", "data", "digits"])
    assert r.returncode == 2 and "usage" in r.stderr
    # 7 positional arguments (<result_save_path> forgotten), then a flag: the count is named, nothing runs
    r = run(["bash", "generate_td.sh", "none", "digits", "1", "0.2", "uniform", "cnn", "3", "--num_epochs", "1"])
    assert r.returncode == 2 and "expects 8 positional arguments before the runner.py flags, got 7" in r.stderr
    r = run(["bash", "generate_td.sh", "none", "digits", "1", "0.2", "uniform", "cnn", "3", "runs", "extra"])
    assert r.returncode == 2 and "got 9" in r.stderr


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
