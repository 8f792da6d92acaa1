"""Many STEP 1 runs at once, concurrently and resumably (see pipeline/multirun.py).

    python multirun.py SETTINGS.txt [--jobs 2] [--threads 1] [--dry_run]
"""
from __future__ import annotations

from core.errors import run_cli
from pipeline import multirun

if __name__ == "__main__":
    run_cli(lambda: multirun.main(multirun.get_args_parser().parse_args()))
