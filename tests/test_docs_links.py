"""README.md and docs/*.md point only at files that are in the repository."""
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


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


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_and_docs_path_names_an_existing_file(document):
    """docs/osr-investigation.md cited `docs/figures/retina/v5_search/` three times: a folder on a branch that is not
    in this repository."""
    assert missing_targets(document) == []


def test_a_missing_link_target_and_a_missing_docs_path_are_both_found(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("[ok](page.md#top) [gone](gone.md) [web](https://example.org/x.md) [here](#anchor) "
                    "`docs/figures/retina/osr_v4.py` `docs/figures/nowhere/`\n")
    assert missing_targets(page) == ["gone.md", "docs/figures/nowhere/"]
