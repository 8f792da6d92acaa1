"""One-line errors for bad input, and the wrapper every entry point runs its ``main`` in."""
from __future__ import annotations

import sys
from typing import Callable, NoReturn


class UsageError(Exception):
    """Bad input from the user: a flag, a file or a folder. Printed as one line, exit status 2."""


def fail(message: str) -> NoReturn:
    raise UsageError(message)


def run_cli(main: Callable[[], object]) -> None:
    """Run ``main``; a :class:`UsageError` becomes ``error: <message>`` on stderr and exit status 2."""
    try:
        main()
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: re-run the same command to resume", file=sys.stderr)
        sys.exit(130)
