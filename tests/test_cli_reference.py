"""docs/cli.md, the command-line reference, is what the ``zoo`` parsers say (leaderboard.cli_reference), the same on
every machine and terminal."""
import argparse
import difflib
import os
import subprocess
import sys
from pathlib import Path

from neurozoo.datasets.cli_args import MACHINE_DEFAULT, ShowDefaultsRaw, ZooArgumentParser
from neurozoo.leaderboard import cli_reference
from neurozoo.leaderboard.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "cli.md"


def test_docs_cli_md_is_the_reference_of_the_zoo_parsers():
    """Many options (zoo train --schedule, --warmup-epochs; zoo dynamics --slow-tol) were documented in --help only;
    the page that lists them all must follow every change to a parser."""
    written, current = PAGE.read_text(), cli_reference.reference()
    diff = "".join(list(difflib.unified_diff(written.splitlines(True), current.splitlines(True), "docs/cli.md",
                                             "the parsers"))[:40])
    assert written == current, (f"docs/cli.md is out of date with the zoo parsers; regenerate it with\n"
                                f"    {cli_reference.COMMAND}\n{diff}")


def test_the_reference_names_every_command_and_option_of_the_parsers():
    text = PAGE.read_text()

    def walk(parser, prog):
        assert f"`{prog}`" in text
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    walk(child, f"{prog} {name}")
            elif action.help is not argparse.SUPPRESS and not isinstance(action, argparse._HelpAction):
                assert f"- `{cli_reference._invocation(action, parser._get_formatter())}`" in text, (prog, action.dest)

    walk(build_parser(), "zoo")
    for option in ("--schedule {cosine,step,constant}", "--warmup-epochs WARMUP_EPOCHS", "--slow-tol SLOW_TOL"):
        assert f"- `{option}`: " in text


def test_the_reference_is_the_same_on_any_terminal_and_number_of_cpus(monkeypatch):
    """argparse wraps --help to the terminal's COLUMNS, and zoo train's --workers default is the machine's
    (min(4, available CPUs - 1), said with MACHINE_DEFAULT in --help): the page has neither."""
    page = cli_reference.reference()
    monkeypatch.setenv("COLUMNS", "41")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    sixteen = build_parser()
    train = next(a for a in sixteen._actions if isinstance(a, argparse._SubParsersAction)).choices["train"]
    assert next(a for a in train._actions if a.dest == "workers").default == 4  # the parser's default did change
    assert "4 here" in " ".join(train.format_help().split())
    assert cli_reference.reference(sixteen) == page
    assert "--workers WORKERS`: data-loading processes per training process (default: min(4, available CPUs - 1); " \
           "0 loads in the training process)" in page


def test_a_parser_becomes_sections_with_synopsis_description_arguments_and_defaults():
    parser = ZooArgumentParser(prog="zoo", description="the tool")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    p = sub.add_parser("fit", help="fit a *model* to <data>", description="Fit MODEL.\n\n    zoo fit ln --data x.h5\n\n"
                                                                           "Then score it.", formatter_class=ShowDefaultsRaw)
    p.add_argument("model", help="a `retina.MODELS` name, e.g. n_steps")
    p.add_argument("--data", required=True, help="recording")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--workers", type=int, default=3, help=f"processes (default: CPUs - 1{MACHINE_DEFAULT})")
    p.add_argument("--secret", help=argparse.SUPPRESS)
    p.add_argument("--cells", nargs="+", metavar="CELL", help="cells [1|2]")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="weights")
    source.add_argument("--fit-embedded", action="store_true", help="fit first")
    cache = sub.add_parser("cache", help="the cache")
    cache.add_subparsers(dest="action", metavar="ACTION").add_parser("info", help="what it holds")
    assert cli_reference.reference(parser).split("\n\n")[2:] == [
        "```text\nzoo COMMAND ...\n```",
        "the tool",
        "Commands:",
        "- [`zoo fit`](#zoo-fit): fit a \\*model\\* to \\<data>\n- [`zoo cache`](#zoo-cache): the cache",
        "## `zoo fit`",
        "fit a \\*model\\* to \\<data>",
        "```text\nzoo fit model --data DATA (--checkpoint CHECKPOINT | --fit-embedded) [options]\n```",
        "Fit MODEL.",
        "```text\nzoo fit ln --data x.h5\n```",
        "Then score it.",
        "Arguments:",
        "- `model`: a `retina.MODELS` name, e.g. n\\_steps",
        "Options:",
        "- `--data DATA` (required): recording\n"
        "- `--epochs EPOCHS`: (default: 40)\n"
        "- `--workers WORKERS`: processes (default: CPUs - 1)\n"
        "- `--cells CELL [CELL ...]`: cells \\[1\\|2\\]\n"
        "- `--checkpoint CHECKPOINT`: weights\n"
        "- `--fit-embedded`: fit first",
        "Exactly one of `--checkpoint`, `--fit-embedded`.",
        "## `zoo cache`",
        "the cache",
        "```text\nzoo cache [ACTION ...]\n```",
        "Commands:",
        "- [`zoo cache info`](#zoo-cache-info): what it holds",
        "### `zoo cache info`",
        "what it holds",
        "```text\nzoo cache info\n```\n"]


def test_the_generator_writes_the_page_and_imports_no_torch_or_numpy(tmp_path):
    """Building the parsers imports neither (tests/test_cli_info.py), and neither does the generator."""
    page = tmp_path / "cli.md"
    assert cli_reference.main([str(page)]) == 0
    assert page.read_text() == cli_reference.reference()
    code = ("from neurozoo.leaderboard.cli_reference import reference; reference(); import sys; "
            "print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"
