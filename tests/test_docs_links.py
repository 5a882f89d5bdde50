"""README.md, docs/*.md, leaderboard/README.md and CHANGELOG.md name only what exists: files, headings a link's anchor points at,
`zoo` commands and their options, dotted names of the suite's code; and the README's lists of registered names
(benchmarks, models, cells) are the registries' built-in entries."""
import argparse
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
GUIDES = [*DOCUMENTS, REPO / "leaderboard" / "README.md", REPO / "CHANGELOG.md"]


def missing_targets(document: Path) -> list:
    """Relative markdown links (resolved from the document's folder, anchors dropped) and `docs/...` paths in
    backticks (resolved from the repository root) that name no existing file or folder."""
    text = document.read_text()
    missing = []
    for match in re.finditer(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", text):
        target = match.group(1)
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):  # a URL, or an anchor in the page
            continue
        if not (document.parent / target.split("#")[0]).exists():
            missing.append(target)
    missing += [m.group(1) for m in re.finditer(r"`(docs/[^`\s]*)`", text) if not (REPO / m.group(1)).exists()]
    return missing


@pytest.mark.parametrize("document", GUIDES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_and_docs_path_names_an_existing_file(document):
    """docs/osr-investigation.md cited `docs/figures/retina/v5_search/` three times: a folder on a branch that is not
    in this repository."""
    assert missing_targets(document) == []


def test_a_missing_link_target_and_a_missing_docs_path_are_both_found(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("[ok](page.md#top) [gone](gone.md) [web](https://example.org/x.md) [here](#anchor) "
                    "`docs/figures/retina/osr_v4.py` `docs/figures/nowhere/`\n")
    assert missing_targets(page) == ["gone.md", "docs/figures/nowhere/"]


def heading_anchors(document: Path) -> set:
    """The anchors GitHub gives a page's headings: lower case, punctuation but hyphens and underscores dropped, spaces
    as hyphens, a repeated heading numbered (``-1``, ``-2``); lines in code blocks are no headings."""
    text = re.sub(r"^```.*?^```", "", document.read_text(), flags=re.S | re.M)
    anchors, seen = set(), {}
    for match in re.finditer(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", text, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
        anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return anchors


def missing_anchors(document: Path) -> list:
    """Links ``[text](FILE#anchor)`` and ``[text](#anchor)`` whose anchor is no heading of the file they name."""
    missing = []
    for match in re.finditer(r"\]\(([^)\s#]*)#([^)\s]+)\)", document.read_text()):
        target, anchor = match.groups()
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # a URL
            continue
        page = document.parent / target if target else document
        if page.is_file() and anchor not in heading_anchors(page):
            missing.append(f"{target}#{anchor}")
    return missing


@pytest.mark.parametrize("document", GUIDES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_link_anchor_names_a_heading_of_its_page(document):
    """The existence check above drops anchors: a renamed heading left its links pointing at the top of the page."""
    assert missing_anchors(document) == []


def test_a_link_to_a_heading_that_is_not_there_is_found(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## Fit speed (2026-12-02)\n\n```bash\n# not a heading\n```\n")
    page = tmp_path / "page.md"
    page.write_text("# Top\n## Top\n[a](other.md#fit-speed-2026-12-02) [b](other.md#not-a-heading) [c](#top-1) "
                    "[d](#gone) [e](https://example.org/x.md#anything)\n")
    assert missing_anchors(page) == ["other.md#not-a-heading", "#gone"]


def _subcommands(parser) -> dict:
    return next((a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction)), {})


def _options(parser) -> set:
    return {s for a in parser._actions for s in a.option_strings}


def zoo_command_lines(document: Path) -> list:
    """``(line number, command)`` for each ``zoo ...`` the document shows as a command: an inline code span that
    starts with it, a line of a code block (its comment left out) or of an indented block."""
    lines, in_block = [], False
    for number, line in enumerate(document.read_text().splitlines(), 1):
        if line.lstrip().startswith("```"):
            in_block = not in_block
            continue
        if in_block or line.startswith("    "):
            for command in re.findall(r"(?:^|&&)\s*(zoo\s[^#]*)", line.split("  #")[0].strip()):
                lines.append((number, command.strip()))
        else:
            lines += [(number, span) for span in re.findall(r"`(zoo\s[^`]+)`", line)]
    return lines


def unknown_commands_and_options(document: Path, parser) -> list:
    """Each command line whose subcommand the ``zoo`` parser lacks, or that names an option its (sub)command does
    not take (``zoo probe --fit-embedded``, with no subcommand named, as an option of any probe)."""
    problems = []
    for number, command in zoo_command_lines(document):
        words = command.split()[1:]
        if not re.fullmatch(r"[a-z][a-z-]*", words[0]):  # a message (`zoo fit: interrupted; ...`), a placeholder
            continue
        commands, known = [parser], _subcommands(parser)
        while words and known and not words[0].startswith("-"):
            names = words.pop(0).strip("[]").split("|")
            if not all(name in known for name in names):
                if commands[0] is parser:  # no subcommand of zoo: a command that is not there
                    problems.append(f"line {number}: {command!r}: no command {names[0]!r}")
                break
            commands, known = [known[name] for name in names], _subcommands(known[names[0]])
        options = set.union(*(_options(c) | {o for s in _subcommands(c).values() for o in _options(s)} for c in commands))
        for option in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", " ".join(words)):
            if option not in options:
                problems.append(f"line {number}: {command!r}: no option {option}")
    return problems


@pytest.mark.parametrize("document", GUIDES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_zoo_command_and_option_the_guides_show_exists(document):
    from neurozoo.leaderboard.cli import build_parser

    assert unknown_commands_and_options(document, build_parser()) == []


def test_a_missing_command_and_a_missing_option_are_found(tmp_path):
    from neurozoo.leaderboard.cli import build_parser

    page = tmp_path / "page.md"
    page.write_text("Run `zoo fit ln --data embedded:whitenoise --epochs 2` or `zoo probe --fit-embedded` "
                    "(`zoo fit: interrupted; ...` when stopped; `zoo COMMAND --help`).\n"
                    "```bash\nzoo probe osr|oms ln --fit-embedded --nope   # --also-nope in a comment\nzoo fitt ln\n```\n"
                    "    zoo score ln retina_embedded.osr --width-multiplier 0.5\n")
    assert unknown_commands_and_options(page, build_parser()) == [
        "line 3: 'zoo probe osr|oms ln --fit-embedded --nope': no option --nope",
        "line 4: 'zoo fitt ln': no command 'fitt'",
        "line 6: 'zoo score ln retina_embedded.osr --width-multiplier 0.5': no option --width-multiplier"]


def _builtin(registry) -> set:
    """A registry's own entries, not an installed plugin's."""
    from neurozoo.datasets.registry import _LazyEntryPoint

    return {e.name for e in registry.entries() if not isinstance(e.factory, _LazyEntryPoint)}


def _readme_section(heading: str) -> str:
    text = (REPO / "README.md").read_text()
    start = text.index(f"\n## {heading}\n")
    return text[start:text.find("\n## ", start + 1)]


def test_the_readme_benchmark_table_is_the_registry_and_says_which_zoo_run_scores():
    from neurozoo import benchmarks
    from neurozoo.leaderboard.zoo import default_benchmarks

    rows = re.findall(r"^\| (`[^|]+`) \|[^|]+\| (yes|no)[^|]*\|$", _readme_section("Commands"), flags=re.M)
    table = {name: scored == "yes" for names, scored in rows for name in re.findall(r"`([^`]+)`", names)}
    assert sorted(table) == sorted(_builtin(benchmarks.BENCHMARKS))
    assert sorted(name for name, scored in table.items() if scored) == sorted(default_benchmarks())


def test_the_readme_names_every_registered_model_and_cell_where_it_lists_them():
    """The Cells paragraph listed seven kinds; `zoo list --kind cells` has eight (`identity`)."""
    from neurozoo import convrnn, retina
    from neurozoo.convrnn.cells import CELLS

    section = _readme_section("ConvRNNs")
    table_names = {name for row in re.findall(r"^\| (.+)$", section, flags=re.M)
                   for name in re.findall(r"`([a-z0-9_]+)`", row.split("|")[0])}
    assert sorted(_builtin(convrnn.MODELS) - table_names) == []
    cells = re.search(r"\*\*Cells\*\*(.*?)\n- ", section, flags=re.S).group(1)
    assert sorted(_builtin(CELLS) - set(re.findall(r"`([a-z_]+)`", cells))) == []
    retina_models = re.search(r"\*\*Models\*\* \(`retina\.MODELS`\)(.*?)\n- ", _readme_section("Retina models"),
                              flags=re.S).group(1)
    assert sorted(_builtin(retina.MODELS) - set(re.findall(r"`([a-z0-9_]+)`", retina_models))) == []



PACKAGES = ("convrnn", "retina", "benchmarks", "datasets", "leaderboard")
#: First parts of the dotted names checked: the package, its five packages, and the two modules of `benchmarks` the
#: guides name on their own (`extraction.StepTable`, `metrics.ceiling.summarize`). Other first parts (a record's
#: fields, `provenance.fitted_to`; optuna's `study`) are not the suite's code.
CODE_ROOTS = ("neurozoo", *PACKAGES, "extraction", "metrics")
#: Dotted names the guides quote from deep-retina's code, whose first part is one of CODE_ROOTS.
OTHER_PROJECTS = {"metrics.cc", "metrics.fev"}
FILE_SUFFIXES = {"json", "jsonl", "npy", "py", "yaml", "h5", "nc", "csv", "png", "pt", "pth", "txt", "sh", "md", "cfg",
                 "zip", "gz", "html", "signed", "lock", "partial"}


def _resolves(module_name: str, attributes: list) -> bool:
    import importlib

    try:
        found = importlib.import_module(module_name)
    except ImportError:
        return False
    for attribute in attributes:
        if hasattr(found, attribute):
            found = getattr(found, attribute)
            continue
        try:  # a submodule its package does not import
            found = importlib.import_module(f"{found.__name__}.{attribute}")
        except (ImportError, AttributeError, TypeError):
            return False
    return True


def unresolved_code_names(document: Path, not_code: set) -> list:
    """Dotted names in backticks that start with one of CODE_ROOTS (`neurozoo.retina.fit`, `retina.fit.evaluate`,
    `extraction.images.load_stimulus_set(...)`) and that the code does not hold; ``not_code`` (registered names,
    `retina_h5.heldout`, entry-point groups) and file names are left alone."""
    roots = {"neurozoo": ["neurozoo"], **{p: [f"neurozoo.{p}"] for p in PACKAGES},
             "extraction": ["neurozoo.benchmarks.extraction"], "metrics": ["neurozoo.benchmarks.metrics"]}
    unresolved = []
    for name in dict.fromkeys(re.findall(r"`([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)[(`]", document.read_text())):
        first, *rest = name.split(".")
        if first not in roots or name in not_code or name in OTHER_PROJECTS or rest[-1] in FILE_SUFFIXES:
            continue
        if not any(_resolves(module, rest) for module in roots[first]):
            unresolved.append(name)
    return unresolved


def _not_code() -> set:
    """Registered benchmark and data set names, and the registries' entry-point groups."""
    from neurozoo import benchmarks, convrnn, datasets, retina
    from neurozoo.convrnn.cells import CELLS

    registries = (benchmarks.BENCHMARKS, datasets.DATASETS, convrnn.MODELS, retina.MODELS, CELLS)
    return {*benchmarks.BENCHMARKS.names(), *datasets.DATASETS.names(), *(r.entry_point_group for r in registries)}


@pytest.mark.parametrize("document", GUIDES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_dotted_name_of_the_suites_code_in_the_guides_exists(document):
    """README cited `extraction.load_stimulus_set`, which is `extraction.images.load_stimulus_set`."""
    assert unresolved_code_names(document, _not_code()) == []


def test_a_dotted_name_that_is_not_in_the_code_is_found(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("`extraction.load_stimulus_set` `extraction.images.load_stimulus_set(stimuli)` "
                    "`neurozoo.retina.fit.evaluate` `neurozoo.retina.fit.evaluated` `metrics.ceiling.summarize` "
                    "`retina.attribution` `retina_h5.heldout` `metrics.heldout` `summary.json` `metrics.cc` "
                    "`provenance.fitted_to` `numpy.linalg.eigh`\n")
    assert unresolved_code_names(page, {"metrics.heldout"}) == ["extraction.load_stimulus_set",
                                                                 "neurozoo.retina.fit.evaluated"]
