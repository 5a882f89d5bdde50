"""Plain-text tables for the ``zoo`` commands' output (``zoo list``, ``zoo info``, the leaderboard ranking)."""
from __future__ import annotations

from typing import Iterable, Sequence


def format_table(header: Sequence[str], rows: Iterable[Sequence]) -> str:
    """Left-aligned columns two spaces apart, a dashed rule under the header; cells are ``str()``-ed."""
    rows = [tuple(str(c) for c in r) for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]

    def line(cells):
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])
