"""The command-line edge: a parser whose errors are the project's one-line errors, and ``type=`` validators for
numeric flags, so a value out of range is refused while the flags are parsed, before anything is loaded or written.

Every validator names the range it expects (``--lr: expected a positive learning rate, got -1.0``); argparse
adds the flag's name.
"""
from __future__ import annotations

import argparse
import math
from typing import Callable, NoReturn, TypeVar

from labeltrace.errors import UsageError

T = TypeVar("T", int, float)
# numpy's legacy seeding takes 0..2**32-1; torch's per-epoch seeds (seed * 1_000_003 + epoch) then fit too.
SEED_LIMIT = 2**32


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose parse errors raise :class:`UsageError`: under ``run_cli`` they are the
    same one-line ``error: <message>`` with exit status 2 as every other bad input (argparse would print the
    usage block first), and a caller parsing flags itself gets the exception."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("argument "):  # "argument --lr: expected ..." names the flag already
            raise UsageError(message.removeprefix("argument "))
        raise UsageError(f"{message} (--help lists the flags)")  # unknown or missing flags


def checked(convert: Callable[[str], T], ok: Callable[[T], bool], expected: str, *,
            hint: str = "") -> Callable[[str], T]:
    """A ``type=`` for argparse: ``convert`` the text (a ``ValueError`` reads "invalid int value: 'x'" as
    before), then refuse a value outside ``ok`` with "expected <expected>, got <value><hint>"."""
    def parse(text: str) -> T:
        value = convert(text)
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value}{hint}")
        return value

    parse.__name__ = convert.__name__  # argparse names the type in its "invalid <type> value" message
    return parse


seed = checked(int, lambda v: 0 <= v < SEED_LIMIT, f"a value in 0..{SEED_LIMIT - 1}")
positive_int = checked(int, lambda v: v >= 1, "a positive number")
# A flag whose default is computed: 0 must not silently stand for it (cnn 0 was once the default cnn 3).
positive_int_or_default = checked(int, lambda v: v >= 1, "a positive number",
                                  hint=" (leave the flag out for the default)")
non_negative_int = checked(int, lambda v: v >= 0, "0 or more")


def in_range(low: float, high: float, *, low_open: bool = False, high_open: bool = True,
             what: str = "") -> Callable[[str], float]:
    """The one float-range check of every fractional flag: a ``type=`` that refuses NaN, infinities and any value
    outside ``[low, high)`` (``low_open``/``high_open`` say which ends are excluded), stating the range once
    as "expected a value in (0, 0.5], got 1.5"; ``what`` follows the range (what the value stands for)."""
    def ok(v: float) -> bool:
        return math.isfinite(v) and (low < v if low_open else low <= v) and (v < high if high_open else v <= high)

    text = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    return checked(float, ok, f"a value in {text}{' ' + what if what else ''}")


ratio = in_range(0.0, 1.0)
learning_rate = checked(float, lambda v: 0.0 < v < math.inf, "a positive learning rate")
momentum = in_range(0.0, 1.0, low_open=True)  # SGD's Nesterov momentum needs > 0
# Past one half the injected labels would outnumber the clean ones in a class on average.
calibrate = in_range(0.0, 0.5, low_open=True, high_open=False, what="(a fraction of the training labels)")
# A milestone is a fraction of training strictly inside it: at 0 or before, the rate drops before epoch 1; at 1
# or beyond, never.
milestone = in_range(0.0, 1.0, low_open=True)
weight_decay = checked(float, lambda v: 0.0 <= v < math.inf, "a weight decay of 0 or more")


def with_values(args: argparse.Namespace, **values) -> argparse.Namespace:
    """A copy of the parsed flags with ``values`` (resolved defaults: the precision used, the noise ratio drawn)
    in place, in the same order: the parsed flags themselves are never changed after parsing."""
    unknown = set(values) - set(vars(args))
    if unknown:
        raise KeyError(f"not flags of this command: {', '.join(sorted(unknown))}")
    return argparse.Namespace(**{**vars(args), **values})
