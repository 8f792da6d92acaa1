"""STEP 1's config.json holds every resolved value (the image size a folder dataset trained at natively, the
default network and depth, workers, precision), so a run repeats from config.json alone."""
import json

from tests.conftest import write_image_folder

# The flags a run is made of, as config.json names them (the rest is where and how fast it ran).
REPLAY = ("dataset", "data", "seed", "split_seed", "noise_ratio", "noise_type", "net_type", "depth", "image_size",
          "max_train", "max_test", "num_epochs", "lr", "momentum", "wd", "batch_size", "milestones", "loader",
          "record", "num_valid", "num_workers", "precision", "threads")


def replay_argv(config: dict) -> list[str]:
    """The runner.py flags that repeat the run of ``config`` (None values are left out: the flag's default)."""
    argv = [x for key in REPLAY if config.get(key) is not None for x in (f"--{key}", str(config[key]))]
    return argv + ["--save", config["save"], "--no_progress"]


def test_native_size_folder_run_records_what_it_resolved_and_repeats_from_it(tmp_path, capsys):
    from runner import get_args_parser, main

    tree = write_image_folder(tmp_path / "tree", size=12)  # 12 px images: train at 12 px (at most 64 px)
    main(get_args_parser().parse_args(["--dataset", "imagefolder", "--data", str(tree), "--num_epochs", "1",
                                       "--save", str(tmp_path / "runs"), "--threads", "1", "--no_progress"]))
    run_dir = tmp_path / "runs" / "imagefolder_resnet32_percmislabeled0.2_uniform" / "computation4td_seed0"
    config = json.loads((run_dir / "config.json").read_text())
    assert "image size: 12 px" in capsys.readouterr().out
    # None of these was given: each is recorded as resolved (imagefolder below 128 px: ResNet-32).
    assert (config["image_size"], config["net_type"], config["depth"]) == (12, "resnet", 32)
    assert config["precision"] in ("fp32", "bf16") and config["num_workers"] == 0 and config["threads_used"] == 1
    assert (config["noise_ratio"], config["split_seed"]) == (0.2, 0)
    # Repeated from config.json alone: the same run folder, recognised as the same finished run.
    before = (run_dir / "training_dynamics.npz").stat().st_mtime_ns
    main(get_args_parser().parse_args(replay_argv(config)))
    assert "already complete" in capsys.readouterr().out
    assert (run_dir / "training_dynamics.npz").stat().st_mtime_ns == before
    # And a forced size other than the native one is another configuration (config.json would differ).
    main(get_args_parser().parse_args([*replay_argv({**config, "save": str(tmp_path / "other")}), "--image_size", "8"]))
    other = json.loads((tmp_path / "other" / run_dir.relative_to(tmp_path / "runs") / "config.json").read_text())
    assert other["image_size"] == 8
