"""The ``labeltrace`` command, in-process: what it writes and how it refuses bad input (exit 2, nothing written)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from labeltrace.cli import main
from synthetic_run import write_run


@pytest.fixture()
def run(tmp_path):
    return write_run(tmp_path / "run", n=40, t=10, num_classes=4, noise_rate=0.3, seed=2)


def _refused(capsys, argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([str(a) for a in argv])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1, err


def test_issues_with_images_and_class_names(run, tmp_path):
    images = np.random.default_rng(0).integers(0, 255, (40, 8, 8), dtype=np.uint8)
    np.save(tmp_path / "images.npy", images)
    main(["issues", str(run), "--detector", "baseline:aum", "--images", str(tmp_path / "images.npy"),
          "--classes", "a,b,c,d", "--top", "6", "--out", str(tmp_path / "out")])
    table = pd.read_csv(tmp_path / "out" / "label_issues.csv")
    assert len(table) == 40 and list(table["rank"]) == list(range(1, 41))
    # assigned_name is the class name of assigned_label: "a,b,c,d"[label]
    assert (table["assigned_name"] == table["assigned_label"].map(dict(enumerate("abcd")))).all()
    # Ranked by the AUM score itself (minus the margin: higher = more suspect), so the two columns agree.
    np.testing.assert_allclose(table["p_noisy"], table["aum"], atol=1e-6)
    assert table["p_noisy"].is_monotonic_decreasing
    assert (tmp_path / "out" / "label_issues.png").stat().st_size > 1000


@pytest.mark.parametrize("extra, message", [
    (["--top", "0"], "--top: expected a positive number"),
    (["--classes", "a,b"], "--classes: 2 names for a run of 4 classes"),
    (["--images", "missing.npy"], "--images: missing.npy: no such file"),
    (["--detector", "baseline:nope"], "nope"),
    (["--threads", "-1"], "--threads: expected 0 or more (0: torch's default), got -1"),
])
def test_bad_input_is_one_line_and_writes_nothing(run, tmp_path, capsys, monkeypatch, extra, message):
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in run.iterdir())
    _refused(capsys, ["issues", run, *extra], message)
    assert sorted(p.name for p in run.iterdir()) == before


def test_images_of_the_wrong_kind_are_refused(run, tmp_path, capsys):
    np.save(tmp_path / "small.npy", np.zeros((39, 8, 8), np.uint8))
    _refused(capsys, ["issues", run, "--images", tmp_path / "small.npy"], "holds 39 images for a run of 40 samples")
    np.save(tmp_path / "float.npy", np.zeros((40, 8, 8), np.float32))
    _refused(capsys, ["issues", run, "--images", tmp_path / "float.npy"], "expected uint8 of shape")


def test_images_that_are_not_a_npy_file(run, tmp_path, capsys):
    import torch

    (tmp_path / "empty.npy").write_bytes(b"")
    _refused(capsys, ["issues", run, "--images", tmp_path / "empty.npy"], "empty.npy: not a readable .npy file")
    np.savez(tmp_path / "images.npz", images=np.zeros((40, 8, 8), np.uint8))
    _refused(capsys, ["issues", run, "--images", tmp_path / "images.npz"], "a zip archive (.npz or torch file)")
    torch.save(torch.zeros(40, 8, 8, dtype=torch.uint8), tmp_path / "images.pt")
    _refused(capsys, ["issues", run, "--images", tmp_path / "images.pt"], "a zip archive (.npz or torch file)")


def test_threads_0_is_torchs_default(run, tmp_path):
    main(["issues", str(run), "--detector", "baseline:aum", "--threads", "0", "--out", str(tmp_path / "out")])
    assert (tmp_path / "out" / "label_issues.csv").is_file()


def test_no_command_says_which_to_run(capsys):
    _refused(capsys, [], "labeltrace needs a command: 'labeltrace issues RUN_DIR' ranks a run's samples")


def test_td_run_is_the_positional_run_folder(run, tmp_path, capsys):
    main(["issues", str(run), "--detector", "baseline:aum", "--out", str(tmp_path / "a")])
    main(["issues", "--td_run", str(run), "--detector", "baseline:aum", "--out", str(tmp_path / "b")])
    assert (tmp_path / "a/label_issues.csv").read_bytes() == (tmp_path / "b/label_issues.csv").read_bytes()
    _refused(capsys, ["issues", "--detector", "baseline:aum"], "expected one STEP 1 run folder")
