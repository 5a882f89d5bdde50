"""Panels of the phenomenon figures (one per system: model, ground truth) on a matplotlib Figure with an Agg
canvas: no pyplot, so drawing one never switches the backend of the caller's session (a notebook's inline
backend was replaced by Agg) and leaves no figure open."""
from __future__ import annotations


from matplotlib.figure import Figure


def panels(n: int, height: float = 3.4, width: float = 4.4, sharey: bool = False):
    """(figure, axes) with ``n`` panels side by side; constrained layout keeps titles and the legends that
    ``legend_below`` puts under each panel clear of each other and of the data."""
    figure = Figure(figsize=(width * n, height), layout="constrained")
    axes = figure.subplots(1, n, sharey=sharey, squeeze=False)[0]
    return figure, axes


def index_ticks(first: int, last: int, every_up_to: int = 20) -> list:
    """Integer ticks for a per-cell (or per-channel) axis that always include the first index: every index
    when there are at most ``every_up_to``, else the first and round multiples (1, 10, 20, ...), so a reader
    never has to guess where cell 1 is (a plain locator gave only 5, 10)."""
    first, last = int(first), int(last)
    if last - first + 1 <= every_up_to:
        return list(range(first, last + 1))
    step = next(s for k in range(12) for s in (10 ** k, 2 * 10 ** k, 5 * 10 ** k) if (last - first) / s <= 8)
    start = -(-first // step) * step
    return [first] + [v for v in range(start, last + 1, step) if v - first >= step / 2]


def legend_below(axis, ncol: int = 3, fontsize: float = 6.5) -> None:
    """The axis's legend under its x label, never over its lines."""
    axis.legend(fontsize=fontsize, ncol=ncol, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
