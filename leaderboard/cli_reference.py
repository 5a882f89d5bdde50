"""The command-line reference, docs/cli.md: every ``zoo`` command and option as its ``--help`` shows them, written
from the parsers themselves (``leaderboard.cli.build_parser``), so that the page cannot drift from the code (a test
compares them).

    python -m neurozoo.leaderboard.cli_reference docs/cli.md

One markdown section per command and subcommand: a synopsis, what the command does, then each argument and option
with its help and its default as ``--help`` words them (``datasets.cli_args.ShowDefaults``). The page is the same on
every machine and terminal: nothing is wrapped to the terminal's width (argparse's ``COLUMNS``), and a default that
depends on the machine (``cli_args.MACHINE_DEFAULT``) is given by its rule only. Building the parsers imports no
torch or numpy, nor does this module.
"""
from __future__ import annotations

import argparse
import re
import sys
from typing import List, Optional

from neurozoo.datasets.cli_args import MACHINE_DEFAULT

COMMAND = "python -m neurozoo.leaderboard.cli_reference docs/cli.md"

HEADER = f"""# Command-line reference

Every `zoo` command and option, as `zoo COMMAND --help` shows them (every command also takes `-h`/`--help`).
Generated from the command parsers by `{COMMAND}`:
do not edit this page by hand; a test fails when it and the parsers differ. The README's "Commands" section shows
the commands at work."""


#: argparse's own titles of a parser's two groups (``optional arguments`` before Python 3.10); other groups keep theirs
TITLES = {"positional arguments": "Arguments", "options": "Options", "optional arguments": "Options"}


def reference(parser: Optional[argparse.ArgumentParser] = None) -> str:
    """The markdown of docs/cli.md for ``parser`` (default: the ``zoo`` parser)."""
    if parser is None:
        from neurozoo.leaderboard.cli import build_parser

        parser = build_parser()
    sections = [HEADER, *_section(parser, parser.prog, "", level=1)]
    return "\n\n".join(sections) + "\n"


def _section(parser: argparse.ArgumentParser, prog: str, summary: str, level: int) -> List[str]:
    """The blocks of ``parser``'s section and, below it, its subcommands' (``summary``: its line in the parent's
    list of commands)."""
    formatter = parser._get_formatter()
    blocks = [f"{'#' * level} `{prog}`"] if level > 1 else []  # the page's title heads the root
    if summary:
        blocks.append(inline(summary))
    blocks.append("```text\n" + synopsis(parser, formatter) + "\n```")
    for text in (parser.description, parser.epilog):
        if text and " ".join(text.split()) != " ".join(summary.split()):
            blocks += _prose(text % {"prog": prog} if "%(prog)" in text else text,
                             raw=isinstance(formatter, argparse.RawDescriptionHelpFormatter))
    commands = _subcommands(parser)
    for group in parser._action_groups:
        items = [_item(action, formatter) for action in group._group_actions if _listed(action)]
        if items:
            title = TITLES.get(group.title, group.title or "Options")
            blocks.append(f"{inline(title)}:" + (f" {inline(group.description)}" if group.description else ""))
            blocks.append("\n".join(items))
    for group in parser._mutually_exclusive_groups:
        names = ", ".join(f"`{action.option_strings[0]}`" for action in group._group_actions)
        blocks.append(f"{'Exactly' if group.required else 'At most'} one of {names}.")
    if commands:
        blocks.append("Commands:")
        blocks.append("\n".join(f"- [`{prog} {name}`](#{_anchor(f'{prog} {name}')}): {inline(help_text)}"
                                for name, (_, help_text) in commands.items()))
    for name, (child, help_text) in commands.items():
        blocks += _section(child, f"{prog} {name}", help_text, level + 1)
    return blocks


def _listed(action: argparse.Action) -> bool:
    """Whether the action is an item of its group's list: not a hidden option, not ``--help`` (the page says once that
    every command takes it), not the subcommands (listed as such)."""
    return not (action.help is argparse.SUPPRESS or isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)))


def _subcommands(parser: argparse.ArgumentParser) -> dict:
    """``{name: (parser, its help)}`` of the parser's subcommands, in the order they were added."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            return {name: (child, helps.get(name, "")) for name, child in action.choices.items()}
    return {}


def synopsis(parser: argparse.ArgumentParser, formatter: argparse.HelpFormatter) -> str:
    """``zoo train MODEL --data DATA [options]``: the positional arguments and the options a command requires (a
    required choice between options in parentheses), then ``[options]`` where it takes others. Before its
    subcommand a command's own options come first."""
    exclusive = {id(a): g for g in parser._mutually_exclusive_groups if g.required for a in g._group_actions}
    required, choices, optional, positionals = [], [], False, []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or action.help is argparse.SUPPRESS:
            continue
        if not action.option_strings:
            text = _invocation(action, formatter)
            optional_command = isinstance(action, argparse._SubParsersAction) and not action.required
            positionals.append(f"[{text}]" if optional_command else text)  # `zoo cache` alone: its default action
        elif id(action) in exclusive:
            group = exclusive[id(action)]
            if group not in choices:
                choices.append(group)
        elif action.required:
            required.append(_invocation(action, formatter, first_only=True))
        else:
            optional = True
    required += ["(" + " | ".join(_invocation(a, formatter, first_only=True) for a in g._group_actions) + ")"
                 for g in choices]
    options = ["[options]"] if optional else []
    if _subcommands(parser):
        return " ".join([parser.prog, *required, *options, *positionals])
    return " ".join([parser.prog, *positionals, *required, *options])


def _invocation(action: argparse.Action, formatter: argparse.HelpFormatter, first_only: bool = False) -> str:
    """``--data DATA``, ``--resume [CHECKPOINT]``, ``--deterministic, --no-deterministic``; a positional argument by
    its metavar."""
    if not action.option_strings:
        return formatter._format_args(action, formatter._get_default_metavar_for_positional(action))
    names = action.option_strings[:1] if first_only else action.option_strings
    if action.nargs == 0:
        return ", ".join(names)
    return ", ".join(names) + " " + formatter._format_args(action, formatter._get_default_metavar_for_optional(action))


def _item(action: argparse.Action, formatter: argparse.HelpFormatter) -> str:
    """One list item: the invocation, then the help with its default as ``--help`` shows it."""
    shown = formatter.described(action)  # ShowDefaults: a bare option's help is its default
    text = ""
    if shown.help:
        if MACHINE_DEFAULT in shown.help:  # the rule in words, without this machine's value
            shown.help = shown.help.replace(MACHINE_DEFAULT, "")
        text = formatter._expand_help(shown)
    required = " (required)" if action.required and action.option_strings else ""
    return f"- `{_invocation(action, formatter)}`{required}" + (f": {inline(text)}" if text else "")


def _prose(text: str, raw: bool) -> List[str]:
    """A description as markdown blocks. argparse fills a description into one paragraph; one laid out by hand (a
    raw formatter's) keeps its paragraphs, and its indented lines (examples) become code blocks."""
    if not raw:
        return [inline(" ".join(text.split()))]
    blocks, lines = [], text.strip("\n").splitlines()
    while lines:
        if not lines[0].strip():
            lines.pop(0)
            continue
        indented = lines[0][:1].isspace()
        run = []
        while lines and lines[0].strip() and lines[0][:1].isspace() == indented:
            run.append(lines.pop(0))
        if indented:
            margin = min(len(line) - len(line.lstrip()) for line in run)
            blocks.append("```text\n" + "\n".join(line[margin:].rstrip() for line in run) + "\n```")
        else:
            blocks.append(inline(" ".join(" ".join(run).split())))
    return blocks


_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_MARKUP = re.compile(r"([\\*_<\[\]|])")


def inline(text: str) -> str:
    """Help text as markdown text that shows it as written: code spans (```zoo fit```, ````x````) kept, and outside them
    the characters markdown would read (``*.JPEG``, ``<wnid>``, ``[/even|/odd]``, ``n_steps``) escaped."""
    parts, start = [], 0
    for match in _CODE_SPAN.finditer(text):
        parts.append(_MARKUP.sub(r"\\\1", text[start:match.start()]))
        parts.append(match.group(0))
        start = match.end()
    parts.append(_MARKUP.sub(r"\\\1", text[start:]))
    return "".join(parts)


def _anchor(heading: str) -> str:
    """The anchor GitHub gives the heading `` `HEADING` ``."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m neurozoo.leaderboard.cli_reference",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("path", help="the page to write (docs/cli.md); written whole or not at all")
    args = parser.parse_args(argv)
    from neurozoo.datasets.json_files import write_atomic

    write_atomic(args.path, reference())
    print(f"wrote {args.path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
