"""One-line errors for bad input, and the wrapper every entry point runs its ``main`` in."""
from __future__ import annotations

import errno
import sys
from typing import Callable, NoReturn


class UsageError(Exception):
    """Bad input from the user: a flag, a file or a folder. Printed as one line, exit status 2."""


def fail(message: str) -> NoReturn:
    raise UsageError(message)


def run_cli(main: Callable[[], object]) -> None:
    """Run ``main``; a :class:`UsageError` becomes ``error: <message>`` on stderr and exit status 2, a full disk
    one line and exit status 1 (atomic writes left every previous file whole)."""
    try:
        main()
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = f" writing {exc.filename}" if exc.filename else ""
        print(f"error: no space left on device{where}: free some space and re-run the same command to resume "
              "(every committed file is intact)", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted: re-run the same command to resume", file=sys.stderr)
        sys.exit(130)
