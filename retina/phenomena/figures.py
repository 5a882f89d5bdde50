"""Panels of the phenomenon figures (one per system: model, ground truth) on a matplotlib Figure with an Agg
canvas: no pyplot, so drawing one never switches the backend of the caller's session (a notebook's inline
backend was replaced by Agg) and leaves no figure open."""
from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def panels(n: int, height: float = 3.4, width: float = 4.4, sharey: bool = False):
    """(figure, axes) with ``n`` panels side by side; constrained layout keeps titles and the legends that
    ``legend_below`` puts under each panel clear of each other and of the data."""
    figure = Figure(figsize=(width * n, height), layout="constrained")
    axes = figure.subplots(1, n, sharey=sharey, squeeze=False)[0]
    return figure, axes


def legend_below(axis, ncol: int = 3, fontsize: float = 6.5) -> None:
    """The axis's legend under its x label, never over its lines."""
    axis.legend(fontsize=fontsize, ncol=ncol, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)


def save(figure: Figure, path, title: str = "") -> Path:
    if title:
        figure.suptitle(title)
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=120)
    return Path(path)
