"""The second bad-input battery: resumes that must not trust a damaged or edited state, outputs that must not
replace a run's files, and inputs that were accepted without a word or crashed with a traceback. Each data-loss
case compares the sha256 of every file of the run folder before and after the refused command."""
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from labeltrace.errors import UsageError
from tests.test_sound import KILLED_AT, RUN, export, finished, killed, one_line_error, plots, resumable, step1, \
    step2, step3, synthetic  # noqa: F401 - fixtures

RAW_HEADER = 128  # np.save's header of td_raw.npy: its rows start here


def digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (and the folders, as names), by relative path."""
    out = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        out[key] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "folder"
    return out


def edit_resume(run_dir: Path, **changes) -> None:
    state = torch.load(run_dir / "resume.pth", weights_only=True)
    state.update(changes)
    torch.save(state, run_dir / "resume.pth")


# -- data lost or corrupted: each a refusal that changes nothing ----------------------------------------------

@pytest.mark.parametrize("epoch", [4, 99, -3])
def test_resume_epoch_beyond_the_committed_traces(resumable, capsys, epoch):
    """resume.pth says epoch 4 (2 committed), 99 (of 5) or -3: resumed, epochs 3-4 would be zeros."""
    run_dir = resumable / RUN
    edit_resume(run_dir, epoch=epoch)
    before = digest(run_dir)
    needle = "holds 2 log rows" if epoch == 4 else "is not a committed epoch of this 5-epoch run"
    one_line_error(step1(resumable), capsys, f"{run_dir / 'resume.pth'}: ", needle, "--restart")
    assert digest(run_dir) == before


def test_resume_epoch_with_rows_and_log_edited_too_is_caught_by_the_traces(resumable, capsys):
    """Epoch 3 with 3 log rows everywhere: only the recorder knows epoch 3 was never recorded."""
    run_dir = resumable / RUN
    state = torch.load(run_dir / "resume.pth", weights_only=True)
    rows = state["rows"] + [{**state["rows"][-1], "epoch": 3}]
    edit_resume(run_dir, epoch=3, rows=rows)
    pd.DataFrame(rows).to_csv(run_dir / "train_log.csv", index=False)
    before = digest(run_dir)
    one_line_error(step1(resumable), capsys, f"{run_dir / 'recorder.json'}: commits 2 epochs of traces",
                   "but resume.pth commits 3", "3 committed epochs are lost")
    assert digest(run_dir) == before


def test_resume_log_disagreeing_with_the_state_is_refused(resumable, capsys):
    run_dir = resumable / RUN
    log = run_dir / "train_log.csv"
    log.write_text(log.read_text().splitlines()[0] + "\n")  # the header alone: 0 epochs for 2 committed
    before = digest(run_dir)
    one_line_error(step1(resumable), capsys, f"{log}: holds 0 epochs but resume.pth commits 2")
    assert digest(run_dir) == before


def test_damaged_raw_traces_of_the_right_size_are_refused(resumable, capsys):
    """Bytes 200-260 overwritten with 0xFF (float16 NaN) inside epoch 1: was resumed into 30 NaN."""
    run_dir = resumable / RUN
    raw = run_dir / "td_raw.npy"
    data = bytearray(raw.read_bytes())
    assert len(data) > 260 and 260 < RAW_HEADER + 1497 * 10 * 2  # inside the first epoch's block
    data[200:260] = b"\xff" * 60
    raw.write_bytes(bytes(data))
    before = digest(run_dir)
    one_line_error(step1(resumable), capsys, f"{raw}: epoch 1 changed after it was committed",
                   f"{KILLED_AT} committed epochs are lost")
    assert digest(run_dir) == before


@pytest.mark.parametrize("case", ["other_network", "nan_weights"])
def test_resume_weights_checked_before_the_run_folder_is_rewritten(resumable, capsys, case):
    """Another network's weights failed in load_state_dict after cmd.txt and config.json were rewritten; NaN
    weights trained to a NaN loss answered with "lower --lr"."""
    run_dir = resumable / RUN
    weights = torch.load(run_dir / "resume.pth", weights_only=True)["model"]
    name = next(k for k, v in weights.items() if v.is_floating_point())
    if case == "other_network":
        weights[name] = torch.zeros(3, 3)
        needle = f"holds the weights of another network (1 tensors differ from this"
    else:
        weights[name] = torch.full_like(weights[name], float("nan"))
        needle = f"1 of the model's tensors hold NaN or infinite weights (e.g. {name}): the state is damaged"
    edit_resume(run_dir, model=weights)
    (run_dir / "cmd.txt").write_text("the run's own command\n")
    before = digest(run_dir)
    err = one_line_error(step1(resumable), capsys, f"{run_dir / 'resume.pth'}: ", needle, "--restart")
    assert "--lr" not in err and digest(run_dir) == before


@pytest.mark.parametrize("name", ["td_neighbours_raw.npy", "td_raw.npy"])
def test_committed_epoch_changed_within_range_is_caught_by_its_checksum(resumable, capsys, name):
    """Epoch 1 of the agreement zeroed (0 is a legal agreement), or two probabilities of epoch 1 swapped (each
    row still sums to 1): only the crc32 the recorder keeps in recorder.json sees it."""
    run_dir = resumable / RUN
    raw = run_dir / name
    data = bytearray(raw.read_bytes())
    if name == "td_neighbours_raw.npy":
        data[RAW_HEADER:RAW_HEADER + 1497 * 2] = bytes(1497 * 2)
    else:
        data[RAW_HEADER:RAW_HEADER + 4] = data[RAW_HEADER + 2:RAW_HEADER + 4] + data[RAW_HEADER:RAW_HEADER + 2]
    raw.write_bytes(bytes(data))
    key = "neighbours_crc32" if name == "td_neighbours_raw.npy" else "rows_crc32"
    assert json.loads((run_dir / "recorder.json").read_text())[key][0] >= 0
    before = digest(run_dir)
    one_line_error(step1(resumable), capsys, f"{raw}: epoch 1 changed after it was committed",
                   f"the {KILLED_AT} committed epochs are lost", "--restart")
    assert digest(run_dir) == before


@pytest.mark.parametrize("name", ["training_dynamics.npz", "metadata.pth"])
def test_detector_out_never_replaces_a_run_file(finished, tmp_path, capsys, name):
    run_dir = finished / RUN
    before = digest(run_dir)
    one_line_error(step2("--files_path", str(run_dir), "--out", str(run_dir / name)), capsys,
                   f"--out: {run_dir / name} is an input of this command")
    other = tmp_path / "copy"  # a run folder that is not an input: its files are refused all the same
    shutil.copytree(run_dir, other)
    one_line_error(step2("--files_path", str(run_dir), "--out", str(other / "train_log.csv")), capsys,
                   f"is the train_log.csv of the run folder {other}")
    assert digest(run_dir) == before


def test_stale_temp_sweep_keeps_a_users_files_and_folders(resumable):
    """``.my_notes.tmp`` (a user's) and a folder ``.cache.tmp`` stay; the resume, which crashed on the folder
    with IsADirectoryError, completes; the project's own orphan goes."""
    run_dir = resumable / RUN
    (run_dir / ".my_notes.tmp").write_text("mine")
    (run_dir / ".cache.tmp").mkdir()
    (run_dir / ".notes.v2.tmp").write_text("mine too")  # .<name>.<random>.tmp, but not a name we write
    (run_dir / ".model.pth.abc123de.tmp").write_bytes(b"half")
    step1(resumable)()
    assert (run_dir / "summary.json").is_file()
    assert (run_dir / ".my_notes.tmp").read_text() == "mine" and (run_dir / ".cache.tmp").is_dir()
    assert (run_dir / ".notes.v2.tmp").read_text() == "mine too"
    assert not (run_dir / ".model.pth.abc123de.tmp").exists()


def test_td_run_contradicting_the_flags_writes_nothing(finished, tmp_path, capsys):
    """--td_run of a 0.2 run with --noise_ratio 0.4: was filed under ..._percmislabeled0.4_... first."""
    run_dir = finished / RUN
    before = digest(finished)
    one_line_error(step3(tmp_path / "elsewhere", "--td_run", str(run_dir), "--noise_ratio", "0.4"), capsys,
                   f"{run_dir / 'config.json'} contradicts the flags: --noise_ratio 0.4 (the run has 0.2)")
    assert digest(finished) == before and not (tmp_path / "elsewhere").exists()


def test_complete_run_has_no_resume_state_and_is_not_rerun(finished, capsys):
    run_dir = finished / RUN
    assert not (run_dir / "resume.pth").exists() and not (run_dir / "td_raw.npy").exists()
    before = digest(run_dir)
    step1(finished)()
    assert "already complete" in capsys.readouterr().out and digest(run_dir) == before
    # Other settings: refused as before resume.pth went (config.json holds the run's settings).
    one_line_error(step1(finished, "--lr", "0.05"), capsys, f"{run_dir} holds a run with other settings",
                   "--lr 0.1 -> 0.05")
    assert digest(run_dir) == before


def test_complete_run_without_its_traces_is_not_complete(finished, tmp_path, capsys):
    """summary.json alone marked completion: a deleted training_dynamics.npz was "already complete", exit 0."""
    shutil.copytree(finished, tmp_path / "save")
    run_dir = tmp_path / "save" / RUN
    (run_dir / "training_dynamics.npz").unlink()
    before = digest(run_dir)
    one_line_error(step1(tmp_path / "save"), capsys, f"{run_dir}: complete (summary.json) but training_dynamics.npz "
                   "is missing: add --restart to run it again")
    assert digest(run_dir) == before


# -- tracebacks: each one line, exit status 2, nothing written ---------------------------------------------------

def test_every_flipped_byte_of_an_npz_is_read_or_refused_naming_the_file(tmp_path):
    """One flipped byte anywhere (header, compressed stream, directory): np.load raised tokenize.TokenError and
    SyntaxError on some; now every offset either reads or is a UsageError naming the file."""
    from labeltrace.io import load_npz

    good = tmp_path / "good.npz"
    np.savez_compressed(good, td=np.full((3, 2, 2), 0.5, np.float16), labels=np.zeros((3, 2), np.int16))
    data = good.read_bytes()
    refused = 0
    for offset in range(len(data)):
        bad = tmp_path / "bad.npz"
        bad.write_bytes(data[:offset] + bytes([data[offset] ^ 0xFF]) + data[offset + 1:])
        try:
            load_npz(bad)
        except UsageError as exc:
            assert str(exc).startswith(f"{bad}: ") and "\n" not in str(exc), exc
            refused += 1
    assert refused > len(data) // 2  # most bytes matter


def test_npz_of_random_bytes_does_not_relay_numpys_pickle_advice(tmp_path):
    from labeltrace.io import load_npz

    path = tmp_path / "x.npz"
    path.write_bytes(b"\x80\x04random bytes, not a zip")
    with pytest.raises(UsageError, match="not an .npz file") as info:
        load_npz(path)
    assert "allow_pickle" not in str(info.value)


@pytest.mark.parametrize("value", ["nan", "inf", "1.5", "-0.5", "0"])
def test_milestones_outside_training_refused_before_the_run_folder(tmp_path, capsys, value):
    one_line_error(step1(tmp_path / "runs", "--milestones", value), capsys,
                   f"--milestones: expected a value in (0, 1), got {float(value)}")
    assert not (tmp_path / "runs").exists()


def test_one_epoch_with_the_default_milestones_warns(capsys):
    """int(0.5 * 1) = int(0.75 * 1) = 0: both drops land on epoch 0, the run trains at 0.1 * 0.1**2 = 0.001."""
    from pipeline.generate import get_args_parser
    from pipeline.recipe import make_recipe

    args = get_args_parser().parse_args(["--num_epochs", "1"])
    make_recipe(args, args.milestones)
    assert "the learning rate is 0.001 from the first epoch, not --lr 0.1" in capsys.readouterr().out


def _detector_file(tmp_path: Path, **changes) -> Path:
    from labeltrace.predict import GENERALIST

    ckpt = torch.load(GENERALIST, weights_only=True)
    ckpt.update(changes)
    path = tmp_path / "d.pth.tar"
    torch.save(ckpt, path)
    return path


@pytest.mark.parametrize("length", [0, -4])
def test_detector_with_a_non_positive_train_length(tmp_path, synthetic, capsys, length):
    from labeltrace.predict import load_detector

    path = _detector_file(tmp_path, train_length=length)
    with pytest.raises(UsageError, match=f"train_length {length}: expected a positive number of epochs"):
        load_detector(path)
    out = tmp_path / "new.pth.tar"
    one_line_error(step2("--files_path", str(synthetic), "--resume", str(path), "--out", str(out)), capsys,
                   f"{path}: train_length {length}")
    assert not out.exists()


def test_nan_detector_refused_at_scoring(tmp_path, synthetic, capsys):
    ckpt = torch.load(_detector_file(tmp_path), weights_only=True)
    state = {k: v.clone() for k, v in ckpt["state_dict"].items()}
    next(iter(state.values())).view(-1)[0] = float("nan")
    path = _detector_file(tmp_path, state_dict=state)
    out = tmp_path / "plots"
    one_line_error(plots(str(synthetic), "--detector", str(path), "--out", str(out)), capsys,
                   f"{path}: 1 of the detector's weights are NaN or infinite")
    from pipeline.find_issues import get_args_parser, main

    before = digest(synthetic)
    one_line_error(lambda: main(get_args_parser().parse_args([str(synthetic), "--detector", str(path)])), capsys,
                   "NaN or infinite")
    assert digest(synthetic) == before and not out.exists()  # no label_issues.csv ranked by row order


def test_diverging_detector_training_saves_nothing(synthetic, tmp_path, capsys):
    out = tmp_path / "d.pth.tar"
    one_line_error(step2("--files_path", str(synthetic), "--lr", "1e30", "--out", str(out)), capsys,
                   "training diverged, nothing saved (lower --lr?)")
    assert not out.exists()


def _rewrite_traces(run: Path, td=None, labels=None) -> Path:
    with np.load(run / "training_dynamics.npz") as z:
        td, labels = (z["td"] if td is None else td), (z["labels"] if labels is None else labels)
    np.savez_compressed(run / "training_dynamics.npz", td=td, labels=labels)
    return run / "training_dynamics.npz"


@pytest.mark.parametrize("case", ["one_class", "label_beyond_c", "above_1", "below_0"])
def test_traces_that_are_not_a_classifiers_probabilities(synthetic, tmp_path, capsys, case):
    with np.load(synthetic / "training_dynamics.npz") as z:
        td, labels = z["td"].copy(), z["labels"].copy()
    if case == "one_class":
        td, labels = td[:, :, :1], labels[:, :1]
        needle = "'td' has 1 class channel"
    elif case == "label_beyond_c":
        labels[3, 1] = td.shape[2]
        needle = f"'labels' run from 0 to 4, outside the {td.shape[2]} classes 0..3"
    else:
        td[4, 2, 1] = 1.7 if case == "above_1" else -0.3
        needle = "'td' holds 1 values outside [0, 1]"
    path = _rewrite_traces(synthetic, td, labels)
    out = tmp_path / "out"
    for command in (plots(str(synthetic), "--out", str(out)), export(str(synthetic), "--out", str(out))):
        one_line_error(command, capsys, f"{path}: {needle}")
    assert not out.exists()  # plots wrote three figures first


def test_plots_of_a_run_where_every_sample_is_flipped(synthetic, tmp_path, capsys):
    meta = torch.load(synthetic / "metadata.pth", weights_only=True)
    meta["label_flipped"] = torch.ones_like(meta["label_flipped"])
    meta["true_targets"] = (meta["assigned_targets"] + 1) % 4  # every true label differs: the flips are true
    torch.save(meta, synthetic / "metadata.pth")
    from plots import get_args_parser, main

    main(get_args_parser().parse_args([str(synthetic), "--out", str(tmp_path / "p")]))
    assert "every sample is flipped" in capsys.readouterr().out
    assert (tmp_path / "p" / "data_map.png").is_file() and not (tmp_path / "p" / "roc.png").exists()


def test_multirun_unbalanced_quote_names_file_and_run(tmp_path, capsys):
    from pipeline.multirun import get_args_parser, main

    settings = tmp_path / "list.txt"
    settings.write_text("--dataset digits --seed 1\n--dataset digits --save 'runs\n")
    one_line_error(lambda: main(get_args_parser().parse_args([str(settings), "--dry_run"])), capsys,
                   f"{settings}: run 2 cannot be split into flags", "No closing quotation")
