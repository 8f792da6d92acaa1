"""Many STEP 1 runs at once, concurrently and resumably (see pipeline/multirun.py); a line may also name
train_detector.py, denoise.py or data_debug.py before its flags.

    python multirun.py SETTINGS.txt [--jobs 2] [--threads 1] [--dry_run]
"""
from __future__ import annotations

from labeltrace.errors import run_cli
from pipeline.multirun import get_args_parser, main  # noqa: F401 (importable from here too)

if __name__ == "__main__":
    run_cli(lambda: main(get_args_parser().parse_args()))
