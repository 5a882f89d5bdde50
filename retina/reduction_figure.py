"""The figure of ``zoo probe reduction``: per cell, how much of the full model's response the reduced model keeps as
the number of kept units grows, and the top units' contributions (integrated gradients) over a stretch of the
stimulus."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import numpy as np
from matplotlib.figure import Figure

from neurozoo.datasets.cell_names import cell_name

#: rows drawn at most (each is 2.6 inches: 220 cells made a 68,725 px tall image after two minutes of drawing);
#: every cell's numbers are in reduction.json
MAX_FIGURE_CELLS = 10
#: the left panels' curves; the units' colours leave them out
REDUCED_COLOUR, KEPT_COLOUR = "C0", "C3"
UNIT_COLOURS = ("C1", "C2", "C4", "C5", "C6", "C7", "C8", "C9")


def unit_colour(unit: int) -> str:
    """A unit has its colour in every row (distinct for a layer of up to 8 units)."""
    return UNIT_COLOURS[unit % len(UNIT_COLOURS)]


def row_name(row: Dict) -> str:
    """A per-cell record's cell as the recording names it (``name``: a fit of some of a file's cells, ``zoo fit
    --cells``, keeps the file's), else by its index."""
    return row.get("name") or cell_name(row["cell"])


def shown_cells_note(cells: List[Dict]) -> str:
    """'' when every cell is drawn, else which are and where the rest are."""
    if len(cells) <= MAX_FIGURE_CELLS:
        return ""
    shown = cells[:MAX_FIGURE_CELLS]
    return (f"the first {len(shown)} of {len(cells)} cells shown ({row_name(shown[0])} to "
            f"{row_name(shown[-1])}); every cell is in reduction.json, pick cells to draw with --cells")


def reduction_figure(cells: List[Dict], traces: Dict[int, Dict[str, np.ndarray]], frame_s: float = 0.01,
                     title: str = "") -> Figure:
    """``cells``: the command's per-cell records (``k``, ``correlation``, ``variance_explained``,
    ``contribution_correlation``, ``contribution_variance_explained``); ``traces[cell]``: ``units`` (the kept units
    at the largest k, most important first), ``contributions`` ``(windows, units)`` and ``response`` ``(windows,)``
    (``F(x) - F(baseline)``, what the contributions of all units add up to) and ``start`` (the first window's frame).
    Draws the first :data:`MAX_FIGURE_CELLS` cells and says so in the title when there are more."""
    title = "\n".join(filter(None, (title, shown_cells_note(cells))))
    cells = cells[:MAX_FIGURE_CELLS]
    figure = Figure(figsize=(11, 2.6 * len(cells) + 0.6), layout="constrained")
    axes = np.atleast_2d(figure.subplots(len(cells), 2, gridspec_kw={"width_ratios": [1, 2.2]}, squeeze=False))
    for (k_axis, time_axis), row in zip(axes, cells):
        cell = row["cell"]
        k = row["k"]
        k_axis.plot(k, row["correlation"], "o-", color=REDUCED_COLOUR, label="reduced model r")
        k_axis.plot(k, row["variance_explained"], "s--", color=REDUCED_COLOUR, alpha=0.6, label="reduced model VE")
        k_axis.plot(k, row["contribution_correlation"], "o-", color=KEPT_COLOUR, label="kept contributions r")
        k_axis.plot(k, row["contribution_variance_explained"], "s--", color=KEPT_COLOUR, alpha=0.6,
                    label="kept contributions VE")
        k_axis.axhline(1.0, color="0.7", lw=0.8)
        if row.get("flat"):  # r and VE NaN: say why the panel is empty
            k_axis.text(0.5, 0.5, f"full response flat\n(sd {row['full_response_sd']:.1e} spikes/s):\nr, VE undefined",
                        transform=k_axis.transAxes, ha="center", va="center", fontsize=8)
            k_axis.set(xlim=(min(k) - 0.5, max(k) + 0.5), ylim=(-0.1, 1.1))  # no data to scale the axes by
        k_axis.set(xlabel="kept units k", ylabel="vs full model", title=row_name(row), xticks=list(k))
        trace = traces[cell]
        seconds = (trace["start"] + np.arange(len(trace["response"]))) * frame_s
        time_axis.plot(seconds, trace["response"], color="k", lw=1.2, label="full model - baseline")
        for j, unit in enumerate(trace["units"]):
            time_axis.plot(seconds, trace["contributions"][:, j], lw=0.9, color=unit_colour(unit), label=f"unit {unit}")
        time_axis.axhline(0.0, color="0.7", lw=0.8)
        time_axis.set(xlabel="time in the held-out stimulus (s, window end)", ylabel="contribution (rate)",
                      title=f"{row_name(row)}: top {max(k)} units' contributions (integrated gradients)")
        time_axis.legend(frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    axes[-1, 0].legend(frameon=False, fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.25))
    if title:
        figure.suptitle(title, fontsize=11)
    return figure


def plot_reduction(cells: List[Dict], traces: Dict[int, Dict[str, np.ndarray]], path, title: str = "") -> Path:
    from neurozoo.datasets.figures import save_figure

    return save_figure(reduction_figure(cells, traces, title=title), path)
