"""argparse types for the numeric options of the ``zoo`` commands, and the parser every ``zoo`` command's help
is written by (:class:`ZooArgumentParser`: each option's default shown).

A value out of range is refused while the command line is parsed, before any data are read or any model is built:
argparse prints the usage and ``zoo CMD: error: argument --OPTION: expected an integer >= 1, got 0`` and exits with
status 2. (A zero count had silently meant a command's default in some commands, and failed deep inside a fit or a
sandboxed job in others.) Checks that involve two options, or the Python API's own settings, stay with the code
that uses them."""
from __future__ import annotations

import argparse
import copy
import itertools
import math
import sys
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


def number_in(low: float, high: float, *, open_low: bool = False,
              open_high: bool = False) -> Callable[[str], float]:
    """The type of a number option whose value must lie between ``low`` and ``high``, each bound included unless
    ``open_low`` / ``open_high`` (a fraction of a split, ``zoo fit --val-fraction``: ``> 0 and < 1``; a label smoothing,
    ``zoo train --label-smoothing``: ``from 0 to 1``)."""
    if open_low or open_high:
        expected = f"a number {'>' if open_low else '>='} {low:g} and {'<' if open_high else '<='} {high:g}"
    else:
        expected = f"a number from {low:g} to {high:g}"
    return lambda text: _finite_number(text, expected, lambda value: (low < value if open_low else low <= value)
                                       and (value < high if open_high else value <= high))


def _finite_number(text: str, expected: str, accept: Callable[[float], bool]) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not (accept(value) and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
    return value


#: Where an option's default depends on the machine (``zoo train --workers``), its help gives the rule in words and
#: then, with this, the machine's value: ``(default: min(4, available CPUs - 1), 1 here; ...)``. The command-line
#: reference (``leaderboard.cli_reference``), the same on every machine, gives the rule only.
MACHINE_DEFAULT = ", %(default)s here"


#: The default results store, as the commands that take ``--db`` open it (``benchmarks.records.default_url``)
RESULTS_STORE = "sqlite:///$NEUROZOO_HOME/results.sqlite"

#: how ``--cells`` names a recording's cells, in every command that takes it (``zoo fit``, ``zoo score``, ``zoo probe
#: reduction``; parsed by :func:`datasets.retina_h5.selected_cells`)
CELLS_SPEC = ("indices into the file's cells (from 0) and/or their names (cell01 is index 0), e.g. 0,2,5 or "
              "cell01,cell03, taken in file order whatever the order given")

#: the options whose value is one comma-separated list in every command that takes them (``--cells``, one SPEC: a
#: space-separated list, ``--cells 0 2``, is refused naming the form to use, :func:`stray_list_items`)
COMMA_LIST_OPTIONS = ("--cells",)


def stray_list_items(argv, unrecognized) -> str:
    """The refusal of a command line that gave a :data:`COMMA_LIST_OPTIONS` option a space-separated list
    (``--cells 0 2``, its ``2`` among argparse's ``unrecognized`` arguments, which argparse alone named without a
    word on why): ``--cells takes one comma-separated list: --cells 0,2 (not --cells 0 2)``; "" where the unrecognized
    arguments are not the words right after such an option's value."""
    for i, token in enumerate(argv):
        option, equals, value = token.partition("=")
        if option not in COMMA_LIST_OPTIONS or (not equals and i + 1 >= len(argv)):
            continue
        value, rest = (value, argv[i + 1:]) if equals else (argv[i + 1], argv[i + 2:])
        words = list(itertools.takewhile(lambda word: not word.startswith("-"), rest))
        strays = [word for word, _ in itertools.takewhile(lambda pair: pair[0] == pair[1], zip(words, unrecognized))]
        if strays:
            given = " ".join([value, *strays])
            return (f"argument {option}: takes one comma-separated list: {option} {','.join([value, *strays])} "
                    f"(not {option} {given})")
    return ""


def add_db_argument(parser, *aliases: str, note: str = "") -> argparse.Action:
    """``--db URL``, the results store: one store for every command that takes it (scores, and the leaderboard's jobs,
    submissions and tokens beside them: ``benchmarks.records.ResultsStore``, ``leaderboard.db.LeaderboardDB``), one
    help for all. ``aliases``: an earlier name of the option that still works (``zoo search --results``); ``note``:
    what this command does with the store beyond that, appended to the help."""
    extra = "".join(f"; {alias}, its earlier name, still works" for alias in aliases)
    return parser.add_argument("--db", *aliases, dest="db", metavar="URL",
                               help=f"SQLAlchemy URL of the results store{note} (default: {RESULTS_STORE}, the "
                                    f"same store for every zoo command){extra}")


def add_device_argument(parser, computes: str, default: str = "cpu", note: str = "") -> argparse.Action:
    """``--device``: the torch device for ``computes``, checked before any work, where ``auto`` is resolved for every
    command that takes it (``leaderboard.cli``: a GPU named on a machine without one is refused there; ``auto`` becomes
    the device it gives, which the command uses and records). ``default`` ``"auto"`` for the commands whose training
    takes it (``convrnn.training.distributed.resolve_device``, also under torchrun)."""
    return parser.add_argument("--device", default=default,
                               help=f"torch device for {computes}: auto (a GPU where there is one, else the CPU; the "
                                    f"device it gives is the one recorded), cpu, cuda or cuda:N{note}")


class ShowDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` shows each option's default as ``(default: X)``, also for an option without help text, except where
    there is nothing to show (no default, an empty list, a switch: its default is that it is not given) or where the
    help already says its default in words (e.g. ``--workers``: ``min(4, available CPUs - 1)``)."""

    def add_argument(self, action):
        super().add_argument(self.described(action))

    def described(self, action):
        """A copy of ``action`` whose help is what ``--help`` expands: an option without help text has its default
        for help."""
        action = copy.copy(action)
        if not action.help and _shows_default(action):
            action.help = "(default: %(default)s)"
        return action

    def _get_help_string(self, action):
        text = action.help or ""
        return super()._get_help_string(action) if _shows_default(action) and "default" not in text.lower() else text


def _shows_default(action) -> bool:
    default = action.default
    switch = action.nargs == 0 and not isinstance(action, argparse.BooleanOptionalAction)  # --deterministic: shown
    return not (default is None or default is argparse.SUPPRESS or switch
                or (isinstance(default, (list, tuple)) and not default))


class ShowDefaultsRaw(ShowDefaults, argparse.RawDescriptionHelpFormatter):
    """:class:`ShowDefaults` for a command whose description is laid out by hand (examples on their own lines)."""


class ZooArgumentParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose help shows the defaults (:class:`ShowDefaults`), as does every subcommand's: a
    subparser is made of its parent's class."""

    def __init__(self, *args, formatter_class=ShowDefaults, **kwargs):
        super().__init__(*args, formatter_class=formatter_class, **kwargs)

    def parse_args(self, args=None, namespace=None):
        """argparse's, except that a space-separated list given to a comma-list option (``--cells 0 2``) is refused
        naming the form to use (:func:`stray_list_items`) rather than as ``unrecognized arguments: 2``."""
        namespace, unrecognized = self.parse_known_args(args, namespace)
        if unrecognized:
            argv = list(sys.argv[1:] if args is None else args)
            self.error(stray_list_items(argv, unrecognized) or f"unrecognized arguments: {' '.join(unrecognized)}")
        return namespace
