"""multirun.py: a list of STEP 1 settings run concurrently; killed, then re-run, it ends as if never killed."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labeltrace.errors import UsageError
from pipeline.multirun import read_settings

ROOT = Path(__file__).resolve().parents[1]
RUN = "digits_cnn2_percmislabeled0.2_uniform/computation4td_seed{}"


def _settings(path: Path, save: Path, epochs: int) -> Path:
    path.write_text("# two digits runs\n" + "".join(
        f"--dataset digits --depth 2 --noise_ratio 0.2 --seed {s} --num_epochs {epochs} --save {save}  # seed {s}\n"
        for s in (1, 2)))
    return path


def _multirun(settings: Path, logs: Path, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "multirun.py", str(settings), "--jobs", "2", "--threads", "1",
                             "--logs", str(logs)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, **popen)


def test_killed_multirun_resumes_to_the_same_files(tmp_path):
    epochs = 30  # ~0.15 s an epoch: the kill below lands seconds before the end
    clean = _multirun(_settings(tmp_path / "a.txt", tmp_path / "clean", epochs), tmp_path / "la")
    out, _ = clean.communicate(timeout=300)
    assert clean.returncode == 0 and "2 runs in" in out and "images/s" in out
    killed = _multirun(_settings(tmp_path / "b.txt", tmp_path / "killed", epochs), tmp_path / "lb",
                       start_new_session=True)
    resume = tmp_path / "killed" / RUN.format(1) / "resume.pth"
    deadline = time.time() + 120
    while not resume.exists() and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(killed.pid, signal.SIGKILL)  # the command and both runner.py processes, as a kill -9 of the job
    killed.wait()
    assert not (tmp_path / "killed" / RUN.format(1) / "summary.json").exists()
    again = _multirun(tmp_path / "b.txt", tmp_path / "lb")
    out, _ = again.communicate(timeout=300)
    assert again.returncode == 0, out
    for seed in (1, 2):  # byte for byte what the uninterrupted command wrote (same threads: STEP 1's resume)
        a, b = tmp_path / "clean" / RUN.format(seed), tmp_path / "killed" / RUN.format(seed)
        assert (a / "training_dynamics.npz").read_bytes() == (b / "training_dynamics.npz").read_bytes()
        assert (a / "train_log.csv").read_bytes() == (b / "train_log.csv").read_bytes()


def test_settings_file_errors_are_one_line(tmp_path):
    with pytest.raises(UsageError, match="no such settings file"):
        read_settings(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    with pytest.raises(UsageError, match="no runs in it"):
        read_settings(tmp_path / "empty.txt")
    (tmp_path / "t.txt").write_text("--dataset digits --threads 4\n")
    with pytest.raises(UsageError, match="run 1 sets --threads: multirun sets them"):
        read_settings(tmp_path / "t.txt")
    assert read_settings(_settings(tmp_path / "ok.txt", tmp_path, 3))[1].endswith("--save " + str(tmp_path))


@pytest.mark.parametrize("flags,message", [
    (["--logs", "FILE"], "--logs: FILE is a file, not a folder"), (["--jobs", "0"], "--jobs: expected at least 1"),
    (["--threads", "-1"], "--threads: expected 0 or more (0: torch's default), got -1")])
def test_multirun_flags_are_one_line_before_any_run(tmp_path, flags, message):
    from pipeline.multirun import get_args_parser, main

    (tmp_path / "FILE").write_text("my notes")
    flags = [str(tmp_path / "FILE") if f == "FILE" else f for f in flags]
    settings = _settings(tmp_path / "list.txt", tmp_path / "runs", 1)
    with pytest.raises(UsageError, match=message.replace("FILE", str(tmp_path / "FILE")).replace("(", r"\(")
                       .replace(")", r"\)")):
        main(get_args_parser().parse_args([str(settings), *flags]))
    assert not (tmp_path / "runs").exists() and (tmp_path / "FILE").read_text() == "my notes"


def test_lines_may_name_another_entry_point(tmp_path):
    """paper/ runs STEP 2 and STEP 3 through multirun: a line may start with the script it runs."""
    from pipeline.multirun import command, split_line

    assert split_line("--dataset digits --seed 1") == ("runner.py", ["--dataset", "digits", "--seed", "1"])
    assert command("denoise.py --dataset digits", 2) == ["denoise.py", "--dataset", "digits", "--threads", "2",
                                                         "--no_progress"]
    assert command("train_detector.py --files_path R", 1) == ["train_detector.py", "--files_path", "R",
                                                              "--threads", "1"]  # it has no --no_progress
    (tmp_path / "s.txt").write_text("train_detector.py --files_path R --threads 3\n")
    with pytest.raises(UsageError, match="run 1 sets --threads"):
        read_settings(tmp_path / "s.txt")
    with pytest.raises(UsageError, match="plots.py: multirun runs only runner.py, denoise.py"):
        split_line("plots.py RUN")
