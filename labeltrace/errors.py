"""One-line errors for bad input, and the wrapper every entry point runs its ``main`` in."""
from __future__ import annotations

import errno
import sys
from typing import Callable, NoReturn

__all__ = ["UsageError", "Diverged"]

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)


class UsageError(ValueError):
    """Bad input from the user: a flag, a file or a folder. Libraries raise it (a ``ValueError`` to code that
    calls them); :func:`run_cli` prints it as one line, exit status 2."""


class Diverged(ValueError):
    """A model's outputs or features hold NaN or infinite values: nothing of them was recorded."""


def fail(message: str) -> NoReturn:
    raise UsageError(message)


def require(module: str, *, extra: str, what: str):
    """``import module``, or a one-line :class:`UsageError` saying that ``what`` needs the ``extra`` installed."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UsageError(f"{what} needs {module.split('.')[0]}: pip install 'labeltrace[{extra}]'") from None


def os_error_in_chain(exc: BaseException, codes: tuple[int, ...]) -> OSError | None:
    """The first ``OSError`` with an errno in ``codes`` among ``exc`` and its causes. torch re-raises a failed
    write as a ``RuntimeError`` whose context is the ``OSError``, so the cause, not the type, says what broke."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in codes:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def run_cli(main: Callable[[], object], *, resumable: bool = True) -> None:
    """Run ``main``; a :class:`UsageError` becomes ``error: <message>`` on stderr and exit status 2, a full disk
    one line and exit status 1 (atomic writes left every previous file whole). ``resumable``: whether running
    the same command again continues the work (said when interrupted)."""
    try:
        main()
    except UsageError as exc:
        _exit(str(exc), 2)
    except KeyboardInterrupt:
        print("interrupted" + (": re-run the same command to resume" if resumable else ""), file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        full = os_error_in_chain(exc, DISK_FULL)
        if full is not None:
            where = f" writing {full.filename}" if full.filename else ""
            _exit(f"no space left on device{where}: free some space and re-run the same command"
                  + (" to resume (every committed file is intact)" if resumable else ""), 1)
        denied = os_error_in_chain(exc, NOT_WRITABLE)
        if denied is None or not denied.filename:
            raise
        _exit(f"{denied.filename}: {denied.strerror}", 2)


def _exit(message: str, status: int) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(status)
