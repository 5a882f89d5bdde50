"""The ``zoo`` command: a thin shell over the packages.

Each package contributes its subcommands through ``<package>.cli.add_commands(subparsers)``;
handlers import their heavy dependencies lazily so ``zoo --help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from typing import List, Optional

# Packages whose ``cli`` module contributes subcommands, bottom layer first.
COMMAND_MODULES = ("neurozoo.datasets.cli", "neurozoo.convrnn.cli", "neurozoo.convrnn.search.cli", "neurozoo.retina.cli", "neurozoo.benchmarks.cli",
                   "neurozoo.benchmarks.cache_cli", "neurozoo.leaderboard.commands",
                   "neurozoo.leaderboard.run_commands", "neurozoo.benchmarks.dynamics.cli")


def build_parser() -> argparse.ArgumentParser:
    from neurozoo.datasets.cli_args import ZooArgumentParser

    parser = ZooArgumentParser(prog="zoo", description="Model zoo and benchmark harness for ConvRNNs and retina models")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name == module_name:
                continue
            raise
        module.add_commands(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    # Idle OpenMP threads sleep instead of spinning; set here, before the command modules import torch, and not
    # at import time, so that importing this module changes nothing. On a machine shared with other work,
    # libgomp's default spin-wait made each of torch's ~300 small parallel ops per BN-CNN training step wait for
    # a descheduled thread: 2 threads ran 3-5x slower than 1 (docs/performance.md, "OpenMP spin-waiting on a shared machine").
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from neurozoo.datasets.termination import sigterm_stops_at_once

    # SIGTERM stops zoo where Python is, as Ctrl-C does (exit 130, "interrupted; signal 15"), from its start-up (the
    # command modules' imports, ~1 s) on. It was SIGTERM's default there, and throughout the commands that do not
    # take it themselves (zoo probe, dynamics, compare, data, convert-weights, cache...): killed without a word (exit
    # -15), their clean-up (finally blocks, a transaction's rollback, a temporary file's removal) never run. The
    # commands that defer it to their safe points (train, search, fit, score, run, work) do so inside their blocks,
    # which hand a request no safe point saw back to this handler; zoo serve's server takes it for its own shutdown
    with sigterm_stops_at_once():
        try:
            parser = build_parser()
            args = parser.parse_args(argv)
        except KeyboardInterrupt as error:
            print(f"zoo: interrupted; {error}" if str(error) else "zoo: interrupted", file=sys.stderr)
            return 130
        return _run_command(args)


def _run_command(args) -> int:
    default_format = warnings.formatwarning
    warnings.formatwarning = warning_line(args.command, default_format)
    try:
        device = _check_device(getattr(args, "device", None))
        if device is not None:
            args.device = device  # --device auto: the device it gives, which the command uses and records
        result = args.handler(args)
        sys.stdout.flush()  # in the try: output still buffered meets a reader that left here, not at exit
    except KeyboardInterrupt as error:  # its message, if any, says what was kept (retina.fit.FitInterrupted)
        print(f"zoo {args.command}: interrupted; {error}" if str(error) else "interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of our output left (`zoo data list | head`): stop without a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the flush at exit cannot fail again
        return 1
    except UserFacingError as error:
        print(f"zoo {args.command}: error: {error}", file=sys.stderr)
        return 2
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError, FileExistsError) as error:
        if error.filename is None:  # not about a path the user gave: a bug, keep its traceback
            raise
        print(f"zoo {args.command}: error: {error.filename}: {error.strerror}", file=sys.stderr)
        return 2
    finally:
        warnings.formatwarning = default_format
    return int(result or 0)


def warning_line(command: str, default_format):
    """``warnings.formatwarning`` for a zoo command: a ``UserWarning`` (what the zoo's own code warns a user of) as one
    line ``zoo COMMAND: warning: ...``, as its errors are; Python's default added the warning code's file, line
    number and source line (``.../retina/cli.py:116: UserWarning: ...`` then ``result = fit(model, ...``). Other
    categories as ``default_format`` shows them (``datasets.errors.warning_format``)."""
    from neurozoo.datasets.errors import warning_format

    return warning_format(f"zoo {command}", default_format)


def _check_device(name: Optional[str]) -> Optional[str]:
    """Every command's --device, checked before any work, and the device the command is to use: ``auto`` resolved
    here, for every command that takes --device (``convrnn.training.distributed.auto_device``: a GPU where there is
    one, else the CPU), so that what a command records is the device it used; only zoo train and zoo search had
    resolved it, the others failed inside the fit or the scoring with torch's traceback. A GPU name on a machine
    without one had failed there too ('Torch not compiled with CUDA enabled'), after the data were read."""
    if name in (None, "cpu"):  # no torch import for the usual case: `zoo --help` and friends stay fast
        return name
    from neurozoo.convrnn.training.distributed import checked_device

    return checked_device(name)


from neurozoo.datasets.errors import UserFacingError  # noqa: E402  (bottom-layer error type)

if __name__ == "__main__":
    from neurozoo.datasets.termination import exit_status

    sys.exit(exit_status(main()))  # 130 after a stop, not a death by SIGINT (exit_status says why)
