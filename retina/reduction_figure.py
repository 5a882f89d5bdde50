"""The figure of ``zoo probe reduction``: per cell, how much of the full model's response the reduced model keeps as
the number of kept units grows, and the top units' contributions (integrated gradients) over a stretch of the
stimulus."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import numpy as np
from matplotlib.figure import Figure

from neurozoo.datasets.cell_names import cell_name


def reduction_figure(cells: List[Dict], traces: Dict[int, Dict[str, np.ndarray]], frame_s: float = 0.01,
                     title: str = "") -> Figure:
    """``cells``: the command's per-cell records (``k``, ``correlation``, ``variance_explained``,
    ``contribution_correlation``, ``contribution_variance_explained``); ``traces[cell]``: ``units`` (the kept units
    at the largest k, most important first), ``contributions`` ``(windows, units)`` and ``response`` ``(windows,)``
    (``F(x) - F(baseline)``, what the contributions of all units add up to) and ``start`` (the first window's frame)."""
    figure = Figure(figsize=(11, 2.6 * len(cells) + 0.6), layout="constrained")
    axes = np.atleast_2d(figure.subplots(len(cells), 2, gridspec_kw={"width_ratios": [1, 2.2]}, squeeze=False))
    for (k_axis, time_axis), row in zip(axes, cells):
        cell = row["cell"]
        k = row["k"]
        k_axis.plot(k, row["correlation"], "o-", color="C0", label="reduced model r")
        k_axis.plot(k, row["variance_explained"], "s--", color="C0", alpha=0.6, label="reduced model VE")
        k_axis.plot(k, row["contribution_correlation"], "o-", color="C3", label="kept contributions r")
        k_axis.plot(k, row["contribution_variance_explained"], "s--", color="C3", alpha=0.6,
                    label="kept contributions VE")
        k_axis.axhline(1.0, color="0.7", lw=0.8)
        k_axis.set(xlabel="kept units k", ylabel="vs full model", title=f"{cell_name(cell)}", xticks=list(k))
        trace = traces[cell]
        seconds = (trace["start"] + np.arange(len(trace["response"]))) * frame_s
        time_axis.plot(seconds, trace["response"], color="k", lw=1.2, label="full model - baseline")
        for j, unit in enumerate(trace["units"]):  # a unit has its colour in every row
            time_axis.plot(seconds, trace["contributions"][:, j], lw=0.9, color=f"C{unit % 10}", label=f"unit {unit}")
        time_axis.axhline(0.0, color="0.7", lw=0.8)
        time_axis.set(xlabel="time in the held-out stimulus (s, window end)", ylabel="contribution (rate)",
                      title=f"{cell_name(cell)}: top {max(k)} units' contributions (integrated gradients)")
        time_axis.legend(frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    axes[-1, 0].legend(frameon=False, fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.25))
    if title:
        figure.suptitle(title, fontsize=11)
    return figure


def plot_reduction(cells: List[Dict], traces: Dict[int, Dict[str, np.ndarray]], path, title: str = "") -> Path:
    from neurozoo.datasets.figures import save_figure

    return save_figure(reduction_figure(cells, traces, title=title), path)
