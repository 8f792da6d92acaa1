"""The framework adapters (Hugging Face ``Trainer``, Lightning) write the run folder the plain-loop recorder
writes, and the three examples rank synthesized noise, run as a user runs them.

Equality needs the same training in all three loops: full-batch SGD at a constant rate (so the order the
frameworks' samplers shuffle into changes nothing but float summation order), the same seeded MLP. Each loop
still shuffles, so a wrong index-to-logits mapping would scramble the per-sample values.

Every training runs in a fresh process outside the clone, as a user's would: the clone's research folder
``datasets/`` on the path would pass for Hugging Face's ``datasets`` inside ``transformers``."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from labeltrace.baselines import to_class_order
from labeltrace.io import load_npz
from labeltrace.runfiles import read_metadata

# The examples beside the tests: the clone's, or the copy tests/test_packaging.py makes beside this folder.
EXAMPLES = next(p / "examples" for p in Path(__file__).resolve().parents[1:3] if (p / "examples").is_dir())
ENV = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}


def _python(code_or_script: list[str], cwd: Path) -> str:
    done = subprocess.run([sys.executable, *code_or_script], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env=ENV)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("adapters")
    for name, module in (("plain", "plain_pytorch"), ("hf", "hf_trainer"), ("lightning", "lightning_module")):
        _python(["-c", f"import sys; sys.path.insert(0, {str(EXAMPLES)!r}); import {module}; "
                       f"{module}.train({name!r}, epochs=40, batch_size=1797, lr=1.0)"], root)
    return root


def _files(run: Path) -> dict:
    arrays = load_npz(run / "training_dynamics.npz", keys=("td", "labels", "neighbours"))
    meta = read_metadata(run / "metadata.pth")
    return {"names": sorted(p.name for p in run.iterdir()), "td": arrays["td"], "labels": arrays["labels"],
            "neighbours": arrays["neighbours"], "assigned": meta.assigned_targets, "flipped": meta.label_flipped}


@pytest.mark.parametrize("adapter", ["hf", "lightning"])
def test_adapter_run_folder_equals_the_plain_loops(runs, adapter):
    plain, other = _files(runs / "plain"), _files(runs / adapter)
    assert other["names"] == plain["names"] == [".lock", "metadata.pth", "training_dynamics.npz"]  # working files gone
    assert other["td"].dtype == np.float16 and other["td"].shape == plain["td"].shape == (1797, 40, 10)
    # Channels 1.. are sorted by mean probability, where near-ties may fall either way: compare in class order.
    np.testing.assert_array_equal(other["labels"][:, 0], plain["labels"][:, 0])
    np.testing.assert_array_equal(other["assigned"], plain["assigned"])
    np.testing.assert_array_equal(other["flipped"], plain["flipped"])
    gap = np.abs(to_class_order(other["td"], other["labels"]) - to_class_order(plain["td"], plain["labels"]))
    # Lightning: 0 (the same sampler). Hugging Face's sampler shuffles differently, which moves the full-batch
    # sums by float rounding only, and 40 steps at lr 1.0 amplify it late: measured on one CPU at most 4.9e-4
    # (one float16 step near 1) through epoch 30 and 4.6e-3 at epoch 40; 99% of values within 4.9e-4. A wrong
    # index-to-logits mapping moves values by ~0.5 from the first epoch on.
    assert gap[:, :30].max() < 1e-3, gap[:, :30].max()
    assert gap.max() < 0.02 and np.quantile(gap.astype(np.float32), 0.99) < 1e-3, gap.max()
    assert plain["td"][:, -1, 0].std() > 0.1  # the runs learned something: the traces are not constant
    # The neighbour agreement, from the features the adapter's tap took off the model's head: the same up to a
    # near-tie among the 20 nearest neighbours moved by the same float rounding. A wrong index-to-features
    # mapping would change most entries.
    differ = other["neighbours"] != plain["neighbours"]
    assert other["neighbours"].shape == (1797, 40) and differ[:, :30].mean() < 0.01 and differ.mean() < 0.05, \
        differ.mean(axis=0)


@pytest.mark.parametrize("example", ["plain_pytorch", "hf_trainer", "lightning_module"])
def test_example_ranks_the_synthesized_noise(tmp_path, example):
    out = _python([str(EXAMPLES / f"{example}.py")], tmp_path)
    # The examples leave neighbours= out: the defaults record the agreement (k = 20, exact at this size).
    with np.load(next((tmp_path / "runs").iterdir()) / "training_dynamics.npz") as data:
        assert data["neighbours"].shape == (1797, 30)
        assert '"k": 20' in str(data["neighbour_search"][0]) and '"search": "exact"' in str(data["neighbour_search"][0])
    auc = float(re.search(r"ROC-AUC (\d\.\d+)", out).group(1))
    assert auc > 0.99, out  # measured 0.9996 for each: 30 epochs of a 2-layer MLP on 20% uniform noise
    assert int(re.search(r"\((\d+) of 10 truly flipped\)", out).group(1)) >= 9, out


def test_lightning_on_two_processes_writes_the_one_process_folder(runs, tmp_path):
    # ddp_spawn, 2 gloo ranks on the CPU, each half the full batch: DDP averages the halves' gradients into the
    # full batch's, except that the sampler pads 1797 samples to 2 x 899 with one repeat. Measured: at most
    # 0.0044 over these 12 epochs (the repeat's extra weight in one gradient), 0 at epoch 1.
    _python(["-c", f"import sys; sys.path.insert(0, {str(EXAMPLES)!r}); import lightning_module as m, plain_pytorch as p; "
                   "m.train('ddp', epochs=12, batch_size=899, lr=1.0, devices=2, strategy='ddp_spawn'); "
                   "p.train('plain', epochs=12, batch_size=1797, lr=1.0)"], tmp_path)
    plain, ddp = _files(tmp_path / "plain"), _files(tmp_path / "ddp")
    assert ddp["names"] == plain["names"] == [".lock", "metadata.pth", "training_dynamics.npz"]
    np.testing.assert_array_equal(ddp["labels"][:, 0], plain["labels"][:, 0])
    gap = np.abs(to_class_order(ddp["td"], ddp["labels"]) - to_class_order(plain["td"], plain["labels"]))
    assert gap[:, 0].max() == 0 and gap.max() < 0.01, gap.max(axis=(0, 2))
    # Each rank's features gathered by sample index: the first epoch's agreement is the one-process run's.
    np.testing.assert_array_equal(ddp["neighbours"][:, 0], plain["neighbours"][:, 0])
    assert (ddp["neighbours"] != plain["neighbours"]).mean() < 0.05
