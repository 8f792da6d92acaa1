"""Label issues of a run, listed and shown (label_issues.csv, label_issues.png).

    python find_issues.py RUN_DIR [--detector checkpoints/generalist_lstm_detector.pth.tar | baseline:aum] [--top 48]
"""
from __future__ import annotations

from labeltrace.errors import run_cli
from pipeline.find_issues import get_args_parser, main  # noqa: F401 (importable from here too)

if __name__ == "__main__":
    run_cli(lambda: main(get_args_parser().parse_args()))
