"""One spelling per thing, old spellings kept: ``--td_run`` names a STEP 1 run folder in every command that takes
one, ``--num_epochs`` STEP 2's epochs; the old flags (``--files_path``, ``--epochs``, the positional RUN_DIR)
parse to the same values, so a checkpoint's recorded arguments do not depend on the spelling."""
import pytest

from labeltrace import cli
from labeltrace.errors import UsageError
from pipeline import data_debug, denoise, find_issues, plots, train_detector


def test_step2_td_run_and_files_path_append_to_one_list():
    p = train_detector.get_args_parser()
    args = p.parse_args(["--td_run", "A", "--files_path", "B", "--td_run", "C"])
    assert args.files_path == ["A", "B", "C"]  # three runs pooled, in the order given, whatever the spelling


def test_step2_num_epochs_and_epochs_are_one_flag():
    p = train_detector.get_args_parser()
    new = p.parse_args(["--td_run", "A", "--num_epochs", "7"])
    old = p.parse_args(["--files_path", "A", "--epochs", "7"])
    assert new.epochs == old.epochs == 7
    assert vars(new) == vars(old)  # the checkpoint stores vars(args): same bytes for either spelling
    assert "num_epochs" not in vars(new) and "td_run" not in vars(new)
    assert p.parse_args(["--td_run", "A"]).epochs == 20  # the default (detector_models.train.DEFAULT_EPOCHS)


@pytest.mark.parametrize("module", [find_issues, plots], ids=["find_issues", "plots"])
def test_run_folder_positional_or_td_run(module):
    p = module.get_args_parser()
    assert cli.run_dir(p.parse_args(["runs/x"])) == "runs/x"
    assert cli.run_dir(p.parse_args(["--td_run", "runs/x"])) == "runs/x"
    assert cli.run_dir(p.parse_args(["runs/x", "--td_run", "runs/x"])) == "runs/x"  # the same folder twice: fine
    with pytest.raises(UsageError, match="expected one STEP 1 run folder, as RUN_DIR or --td_run$"):
        cli.run_dir(p.parse_args([]))
    with pytest.raises(UsageError, match="got two: runs/x and runs/y"):
        cli.run_dir(p.parse_args(["runs/x", "--td_run", "runs/y"]))


@pytest.mark.parametrize("module", [denoise, data_debug], ids=["denoise", "data_debug"])
def test_step3_takes_td_run(module):
    args = module.get_args_parser().parse_args(["--dataset", "digits", "--detector", "d.pth.tar",
                                                "--td_run", "runs/x"])
    assert args.td_run == "runs/x"


def test_resolved_values_go_into_a_copy_of_the_flags():
    from core import cli as core_cli

    args = train_detector.get_args_parser().parse_args(["--td_run", "A", "--r", "0.3"])
    resolved = core_cli.with_values(args, r=0.4)
    assert (args.r, resolved.r) == (0.3, 0.4)  # the parsed flags stay as given
    assert list(vars(resolved)) == list(vars(args))  # same order: config.json bytes do not move
    with pytest.raises(KeyError, match="not flags of this command: nope"):
        core_cli.with_values(args, nope=1)
