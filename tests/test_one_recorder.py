"""STEP 1 records through the library's recorder: the same model trained by STEP 1 and by a hand-written loop
that feeds :class:`labeltrace.DynamicsRecorder` leaves byte-equal ``training_dynamics.npz`` files; and a kill
between the recorder's commit of an epoch and ``resume.pth`` replays that epoch, ending byte-equal too."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from labeltrace import DynamicsRecorder, FeatureTap
from core.seed import epoch_generator, epoch_seed, seed_everything

ROOT = Path(__file__).resolve().parents[1]
SEED, EPOCHS, BATCH, K = 3, 3, 128, 5
LR, MILESTONES = 0.1, (0.5, 0.75)  # STEP 1's defaults: SGD, momentum 0.9, nesterov, weight decay 1e-4
RUN = f"digits_cnn2_percmislabeled0.2_uniform/computation4td_seed{SEED}"
FLAGS = ["--dataset", "digits", "--seed", str(SEED), "--net_type", "cnn", "--depth", "2", "--num_epochs",
         str(EPOCHS), "--neighbours", str(K), "--precision", "fp32", "--threads", "1", "--no_progress"]


def step1(save: Path, prelude: str = "") -> subprocess.CompletedProcess:
    code = (f"{prelude}\nimport runpy, sys\nsys.argv = ['runner.py', *{FLAGS!r}, '--save', {str(save)!r}]\n"
            "runpy.run_path('runner.py', run_name='__main__')")
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    save = tmp_path_factory.mktemp("step1")
    r = step1(save)
    assert r.returncode == 0, r.stderr
    return save / RUN


def hand_loop(run_dir: Path, step1_dir: Path) -> Path:
    """The loop a user writes: the digits images normalised, the noisy labels of the STEP 1 run, the same network
    and seeds; each batch's logits and head input go to the recorder."""
    from datasets.registry import load_dataset
    from models.registry import build_model

    torch.set_num_threads(1)
    meta = torch.load(step1_dir / "metadata.pth", weights_only=True)
    labels, truth = meta["assigned_targets"].long(), meta["true_targets"].long()
    bundle = load_dataset("digits", None)
    mean = torch.tensor(bundle.mean).view(1, -1, 1, 1) * 255
    std = torch.tensor(bundle.std).view(1, -1, 1, 1) * 255
    images = torch.from_numpy(bundle.train.images)
    seed_everything(SEED)
    model = build_model("cnn", 2, num_classes=10, in_channels=1, image_size=bundle.image_size)
    model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9, nesterov=True, weight_decay=1e-4)
    recorder = DynamicsRecorder(run_dir, labels=labels, true_labels=truth, num_classes=10, neighbours=K)
    for epoch in range(EPOCHS):
        for group in opt.param_groups:
            group["lr"] = LR * 0.1 ** sum(epoch >= int(m * EPOCHS) for m in MILESTONES)
        torch.manual_seed(epoch_seed(SEED, epoch))
        model.train()
        order = torch.randperm(len(labels), generator=epoch_generator(SEED, epoch))
        for start in range(0, len(labels), BATCH):
            index = order[start:start + BATCH]
            x = ((images[index].float() - mean) / std).contiguous(memory_format=torch.channels_last)
            with FeatureTap(model) as tap:
                logits = model(x).float()
            loss = F.cross_entropy(logits, labels[index])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            recorder.update(index, logits.detach(), features=tap.batches[0])
        recorder.end_epoch()
    return recorder.save()


def test_step1_and_a_hand_loop_write_byte_equal_traces(uninterrupted, tmp_path):
    mine = hand_loop(tmp_path / "mine", uninterrupted)
    ours = (uninterrupted / "training_dynamics.npz").read_bytes()
    assert (mine / "training_dynamics.npz").read_bytes() == ours
    with np.load(mine / "training_dynamics.npz") as z:  # the comparison covers both signals
        assert z["td"].shape == (1497, EPOCHS, 10) and z["neighbours"].shape == (1497, EPOCHS)


KILL_BEFORE_RESUME_STATE = """
import core.fit
real, calls = core.fit._commit, []
def commit(*args, **kwargs):
    calls.append(1)
    if len(calls) == 2:  # the recorder has committed epoch 2; resume.pth still says 1
        raise SystemExit(9)
    real(*args, **kwargs)
core.fit._commit = commit
"""


def test_kill_between_the_recorders_commit_and_resume_state_replays_the_epoch(uninterrupted, tmp_path):
    killed = step1(tmp_path, KILL_BEFORE_RESUME_STATE)
    assert killed.returncode == 9, killed.stderr
    run_dir = tmp_path / RUN
    state = torch.load(run_dir / "resume.pth", weights_only=True)
    assert state["epoch"] == 1 and '"epochs": 2' in (run_dir / "recorder.json").read_text()
    r = step1(tmp_path)
    assert r.returncode == 0, r.stderr
    for name in ("training_dynamics.npz", "train_log.csv", "results_valid.csv"):
        assert (run_dir / name).read_bytes() == (uninterrupted / name).read_bytes(), name
    assert not (run_dir / "td_raw.npy").exists() and not (run_dir / "recorder.json").exists()
