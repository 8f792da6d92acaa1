"""The run's settings resolved once (pipeline/settings.py), numeric flags checked while parsing
(core/cli.py), parse errors as the one-line UsageError."""
from pathlib import Path

import pytest

from core import cli
from labeltrace.errors import UsageError
from pipeline.settings import resolve_settings


def parse(*argv: str):
    from denoise import get_args_parser

    return get_args_parser().parse_args(list(argv))


def test_settings_resolve_aliases_defaults_and_folders():
    s = resolve_settings(parse("--dataset", "digits", "--noise_type", "sym", "--seed", "4", "--save", "out"))
    assert (s.noise_type, s.net_type, s.depth, s.split_seed, s.real_noise) == ("uniform", "cnn", 3, 4, False)
    exp = Path("out/digits_cnn3_percmislabeled0.2_uniform")
    assert s.td_run_dir == exp / "computation4td_seed4"
    assert s.stage_root("prune4retrain") == exp / "prune4retrain_seed4"
    assert resolve_settings(parse("--net_type", "resnet", "--split_seed", "9")).depth == 32  # not cnn's 3
    assert resolve_settings(parse("--split_seed", "9")).split_seed == 9


def test_real_noise_settings_name_their_folders_by_network():
    s = resolve_settings(parse("--dataset", "webvision50", "--seed", "1", "--save", "out"))
    assert s.real_noise and (s.net_type, s.depth) == ("resnet", 50)
    assert s.td_run_dir == Path("out/webvision50_resnet50/computation4td_seed1")
    assert s.stage_root("relabel") == Path("out/webvision50_resnet50/resnet50_relabel_seed1")


@pytest.mark.parametrize("argv,message", [
    (["--remove_ratio", "1"], "--remove_ratio: expected a value in [0, 1), got 1.0"),
    (["--momentum", "1"], "--momentum: expected a value in (0, 1), got 1.0"),
    (["--wd=-1e-4"], "--wd: expected a weight decay of 0 or more, got -0.0001"),
    (["--num_epochs", "0"], "--num_epochs: expected a positive number, got 0"),
    (["--max_train", "0"], "--max_train: expected a positive number, got 0 (leave the flag out for the default)"),
    (["--split_seed", str(2**32)], "--split_seed: expected a value in 0..4294967295, got 4294967296"),
    (["--threads", "-1"], "--threads: expected 0 or more, got -1"),
    (["--lr", "nan"], "--lr: expected a positive learning rate, got nan"),
    (["--seed", "x"], "--seed: invalid int value: 'x'"),
    (["--milestones", "0.5,x"], "--milestones: expected comma-separated fractions like 0.5,0.75, got '0.5,x'"),
    (["--bogus"], "unrecognized arguments: --bogus (--help lists the flags)"),
])
def test_bad_flags_fail_while_parsing(argv, message):
    with pytest.raises(UsageError) as info:
        parse(*argv)
    assert str(info.value) == message


def test_unknown_names_fail_before_anything_is_loaded():
    with pytest.raises(UsageError, match="--net_type: unknown network 'vgg'"):
        resolve_settings(parse("--net_type", "vgg"))
    with pytest.raises(UsageError, match="--noise_type: unknown noise type 'pair'"):
        resolve_settings(parse("--noise_type", "pair"))


def test_usage_error_is_a_value_error():
    """Library code raises UsageError; a caller of the library may catch it as the ValueError it is."""
    assert issubclass(UsageError, ValueError)
    assert cli.ratio("0") == 0.0 and cli.positive_int("3") == 3
