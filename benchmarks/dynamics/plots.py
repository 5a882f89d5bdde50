"""Figures of the dynamics analysis: trajectories with fixed points, eigenvalue spectra, similarity over time."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Sequence, Union

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from neurozoo.benchmarks.dynamics.fixedpoints import FixedPoints
from neurozoo.benchmarks.plots import _save

PathLike = Union[str, Path]


def _groups(labels: Optional[Sequence], n: int):
    labels = np.asarray(labels if labels is not None else np.zeros(n, int)).astype(str)
    names = list(dict.fromkeys(labels))
    return labels, {name: f"C{i % 10}" for i, name in enumerate(names)}


def plot_trajectories(projection: xr.DataArray, path: PathLike, labels: Optional[Sequence] = None,
                      explained=None, fixed_points: Optional[np.ndarray] = None, stable: Optional[np.ndarray] = None,
                      title: Optional[str] = None) -> Path:
    """PC1-PC2 (and PC1 over time) of every stimulus, coloured by ``labels``; ``fixed_points`` are already
    projected (N, >=2): filled = stable, open = unstable."""
    labels, colours = _groups(labels, projection.sizes["stimulus_id"])
    figure = Figure(figsize=(9, 3.8), layout="constrained")
    plane, time_axis = figure.subplots(1, 2)
    t = projection["time_bin_start"].values
    for i in range(projection.sizes["stimulus_id"]):
        trace = projection.values[i]
        plane.plot(trace[:, 0], trace[:, 1], color=colours[labels[i]], lw=0.8, alpha=0.7)
        plane.plot(trace[-1, 0], trace[-1, 1], ".", color=colours[labels[i]], ms=4)
        time_axis.plot(t, trace[:, 0], color=colours[labels[i]], lw=0.8, alpha=0.7)
    if fixed_points is not None and len(fixed_points):
        stable = np.ones(len(fixed_points), bool) if stable is None else np.asarray(stable)
        plane.scatter(fixed_points[stable, 0], fixed_points[stable, 1], s=40, c="k", marker="o", zorder=3, label="stable")
        plane.scatter(fixed_points[~stable, 0], fixed_points[~stable, 1], s=40, facecolors="none", edgecolors="r",
                      marker="o", zorder=3, label="unstable")
        plane.legend(frameon=False, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    ratio = "" if explained is None else f" ({100 * explained[0]:.0f}%, {100 * explained[1]:.0f}% var.)"
    plane.set(xlabel="PC1", ylabel="PC2", title="state space" + ratio)
    time_axis.set(xlabel="time (ms)" if t[-1] > len(t) else "time (steps)", ylabel="PC1", title="PC1 over time")
    if len(colours) > 1 and len(colours) <= 10:
        for name, colour in colours.items():
            time_axis.plot([], [], color=colour, label=name)
        time_axis.legend(frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), title="input",
                         title_fontsize=7)  # beside the panel, not over the traces
    if title:
        figure.suptitle(title)
    return _save(figure, path)


def plot_spectra(fixed_points: FixedPoints, path: PathLike, title: Optional[str] = None) -> Path:
    """Eigenvalues of every fixed point's Jacobian in the complex plane with the unit circle (left), and the
    time constants of the slowest modes (right)."""
    figure = Figure(figsize=(8.5, 3.8), layout="constrained")
    plane, taus = figure.subplots(1, 2)
    angle = np.linspace(0, 2 * np.pi, 200)
    plane.plot(np.cos(angle), np.sin(angle), color="0.6", lw=0.8)
    for i, values in enumerate(fixed_points.eigenvalues):
        colour = "k" if fixed_points.stable[i] else "r"
        plane.plot(values.real, values.imag, ".", color=colour, ms=3, alpha=0.6)
    plane.set(xlabel="Re $\\lambda$", ylabel="Im $\\lambda$", aspect="equal",
              title=f"{len(fixed_points)} points: {int(fixed_points.stable.sum())} stable (black)")
    tau = fixed_points.time_constants()
    k = min(5, tau.shape[1]) if len(tau) else 0
    for i in range(k):
        finite = np.abs(tau[:, i]) < 1e6
        taus.plot(np.flatnonzero(finite), np.abs(tau[finite, i]), ".", label=f"mode {i + 1}")
    taus.set(yscale="log", xlabel="fixed point", ylabel=f"|tau| ({'steps' if fixed_points.dt == 1 else 'ms'})",
             title="slowest time constants")
    if k:
        taus.legend(frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    if title:
        figure.suptitle(title)
    return _save(figure, path)


METRIC_LABELS = {"rsa": "RSA (Spearman r of RDMs)", "cka": "linear CKA", "debiased_cka": "debiased linear CKA"}


def _time_label(values) -> str:
    """Bin starts in ms (10 ms bins), or plain steps for the examples, whose grid is 0, 1, 2, ..."""
    return "ms" if len(values) > 1 and values[-1] > len(values) else "step"


def similarity_figure(matrices: Dict[str, xr.DataArray], title: Optional[str] = None,
                      names: Optional[Sequence[str]] = None) -> Figure:
    """One panel per comparison: similarity of bin a (rows, system ``names[0]``) against bin b (columns,
    ``names[1]``); a bin without information (NaN: constant over stimuli, e.g. before the image reaches a layer)
    is grey."""
    import matplotlib

    n = len(matrices)
    first, second = names if names is not None else ("system a", "system b")
    figure = Figure(figsize=(3.9 * n + 0.6, 3.5), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, n))
    colours = matplotlib.colormaps["viridis"].with_extremes(bad="0.85")
    for axis, (name, matrix) in zip(axes, matrices.items()):
        a, b = matrix["time_bin_a"].values, matrix["time_bin_b"].values
        image = axis.imshow(np.ma.masked_invalid(matrix.values), origin="lower", aspect="auto", cmap=colours,
                            extent=(b[0], b[-1] + (b[1] - b[0] if len(b) > 1 else 1),
                                    a[0], a[-1] + (a[1] - a[0] if len(a) > 1 else 1)))
        figure.colorbar(image, ax=axis, fraction=0.046)  # the panel title names the metric
        axis.set(xlabel=f"{second}: bin start ({_time_label(b)})", ylabel=f"{first}: bin start ({_time_label(a)})")
        axis.set_title(METRIC_LABELS.get(name, name), fontsize=9)
        axis.xaxis.label.set_fontsize(8)
        axis.yaxis.label.set_fontsize(8)
    if any(np.isnan(m.values).any() for m in matrices.values()):
        figure.text(0.5, 0, "grey: a bin without information (constant over stimuli)", ha="center", va="bottom",
                    fontsize=7, color="0.35")
        figure.get_layout_engine().set(h_pad=0.2)
    if title:
        figure.suptitle(title)
    return figure


def plot_similarity_over_time(matrices: Dict[str, xr.DataArray], path: PathLike, title: Optional[str] = None,
                              names: Optional[Sequence[str]] = None) -> Path:
    return _save(similarity_figure(matrices, title, names), path)
