"""Plain-text tables for the ``zoo`` commands' output (``zoo list``, ``zoo info``, the leaderboard ranking), and the
counted nouns of their lines (:func:`counted`)."""
from __future__ import annotations

from typing import Iterable, Optional, Sequence


def plural(count: int, noun: str, nouns: Optional[str] = None) -> str:
    """``noun`` as ``count`` of it is said: 'job' for 1, 'jobs' for 0 or 2 (a regular plural, an 's' added; an
    irregular one is given as ``nouns``: ``plural(2, "process", "processes")``)."""
    return noun if count == 1 else (nouns if nouns is not None else noun + "s")


def counted(count: int, noun: str, nouns: Optional[str] = None) -> str:
    """'1 job', '2 jobs', '0 jobs': the zoo commands' one way to count in words, where they printed '1 job(s)' (and
    '1 jobs'). ``noun`` may be qualified: ``counted(2, "failed job")`` is '2 failed jobs'; ``nouns`` is an irregular
    plural (:func:`plural`)."""
    return f"{count} {plural(count, noun, nouns)}"


def format_table(header: Sequence[str], rows: Iterable[Sequence]) -> str:
    """Left-aligned columns two spaces apart, a dashed rule under the header; cells are ``str()``-ed."""
    rows = [tuple(str(c) for c in r) for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]

    def line(cells):
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])
