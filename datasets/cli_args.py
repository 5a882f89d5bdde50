"""argparse types for the numeric options of the ``zoo`` commands.

A value out of range is refused while the command line is parsed, before any data are read or any model is built:
argparse prints the usage and ``zoo CMD: error: argument --OPTION: expected an integer >= 1, got 0`` and exits with
status 2. (A zero count had silently meant a command's default in some commands, and failed deep inside a fit or a
sandboxed job in others.) Checks that involve two options, or the Python API's own settings, stay with the code
that uses them."""
from __future__ import annotations

import argparse
import math
from typing import Callable, Optional


def at_least(least: int, most: Optional[int] = None) -> Callable[[str], int]:
    """The type of an integer option whose value must be ``>= least`` (and ``<= most``: for a length of stimulus
    held in memory, where a typo of a few zeros would otherwise fail deep inside with numpy's MemoryError)."""
    expected = f"an integer >= {least}" if most is None else f"an integer from {least} to {most}"

    def integer(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if value < least or (most is not None and value > most):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value}")
        return value

    return integer


def integer_list(least: int) -> Callable[[str], list]:
    """The type of an option holding integers ``>= least`` separated by commas (``--k 1,2,4,8``), in the order given,
    repeats dropped."""
    expected = f"integers >= {least} separated by commas (e.g. {least},{least + 1})"

    def integers(text: str) -> list:
        try:
            values = [int(part) for part in text.split(",")]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if any(value < least for value in values):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
        return list(dict.fromkeys(values))

    return integers


def positive(text: str) -> float:
    """The type of a number option whose value must be finite and ``> 0``."""
    return _finite_number(text, "a positive number", lambda value: value > 0)


def non_negative(text: str) -> float:
    """The type of a number option whose value must be finite and ``>= 0`` (a tolerance: a negative one, or NaN,
    would accept nothing; an infinite one everything)."""
    return _finite_number(text, "a finite number >= 0", lambda value: value >= 0)


def _finite_number(text: str, expected: str, accept: Callable[[float], bool]) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not (accept(value) and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
    return value
