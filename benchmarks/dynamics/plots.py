"""Figures of the dynamics analysis: trajectories with fixed points, eigenvalue spectra, similarity over time."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from neurozoo.benchmarks.dynamics.fixedpoints import FixedPoints
from neurozoo.datasets.figures import save_figure
from neurozoo.datasets.text_table import counted

PathLike = Union[str, Path]


def _groups(labels: Optional[Sequence], n: int):
    labels = np.asarray(labels if labels is not None else np.zeros(n, int)).astype(str)
    names = list(dict.fromkeys(labels))
    return labels, {name: f"C{i % 10}" for i, name in enumerate(names)}


def plot_trajectories(projection: xr.DataArray, path: PathLike, labels: Optional[Sequence] = None,
                      explained=None, fixed_points: Optional[np.ndarray] = None, stable: Optional[np.ndarray] = None,
                      title: Optional[str] = None, highlight: Optional[int] = None,
                      highlight_label: str = "", legend_title: str = "input") -> Path:
    """PC1-PC2 (and PC1 over time) of every stimulus, coloured by ``labels``; ``fixed_points`` are already
    projected (N, >=2): filled = stable, open = unstable. ``legend_title``: what the colours are. ``highlight``: the index of a trajectory drawn thick in
    black (a ConvRNN's held image, whose map the fixed points are of), labelled ``highlight_label``."""
    labels, colours = _groups(labels, projection.sizes["stimulus_id"])
    figure = Figure(figsize=(9, 3.8), layout="constrained")
    plane, time_axis = figure.subplots(1, 2)
    t = projection["time_bin_start"].values
    for i in range(projection.sizes["stimulus_id"]):
        trace = projection.values[i]
        plane.plot(trace[:, 0], trace[:, 1], color=colours[labels[i]], lw=0.8, alpha=0.7)
        plane.plot(trace[-1, 0], trace[-1, 1], ".", color=colours[labels[i]], ms=4)
        time_axis.plot(t, trace[:, 0], color=colours[labels[i]], lw=0.8, alpha=0.7)
    if highlight is not None:
        trace = projection.values[highlight]
        plane.plot(trace[:, 0], trace[:, 1], color="k", lw=2, label=highlight_label, zorder=2)
        time_axis.plot(t, trace[:, 0], color="k", lw=2, zorder=2)
    if fixed_points is not None and len(fixed_points):
        stable = np.ones(len(fixed_points), bool) if stable is None else np.asarray(stable)
        # a kind with no point has no legend entry (an "unstable" marker stood in the legend of 1 stable point)
        if stable.any():
            plane.scatter(fixed_points[stable, 0], fixed_points[stable, 1], s=40, c="k", marker="o", zorder=3,
                          label="stable")
        if not stable.all():
            plane.scatter(fixed_points[~stable, 0], fixed_points[~stable, 1], s=40, facecolors="none", edgecolors="r",
                          marker="o", zorder=3, label="unstable")
    if highlight is not None or (fixed_points is not None and len(fixed_points)):
        plane.legend(frameon=False, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    ratio = "" if explained is None else f" ({100 * explained[0]:.0f}%, {100 * explained[1]:.0f}% var.)"
    plane.set(xlabel="PC1", ylabel="PC2", title="state space" + ratio)
    unit = projection.attrs.get("time_unit") or ("ms" if t[-1] > len(t) else "steps")
    time_axis.set(xlabel=f"time ({unit})", ylabel="PC1", title="PC1 over time")
    if len(colours) > 1 and len(colours) <= 10:
        for name, colour in colours.items():
            time_axis.plot([], [], color=colour, label=name)
        time_axis.legend(frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), title=legend_title,
                         title_fontsize=7)  # beside the panel, not over the traces
    if title:
        figure.suptitle(title)
    return save_figure(figure, path)


def plot_spectra(fixed_points: FixedPoints, path: PathLike, title: Optional[str] = None,
                 time_unit: Optional[str] = None) -> Path:
    return save_figure(spectra_figure(fixed_points, title, time_unit), path)


def conjugate_groups(values: np.ndarray) -> List[Tuple[int, int]]:
    """(first, last) eigenvalue index of each mode of one point's spectrum (sorted by modulus): a complex-conjugate
    pair is one oscillating mode with one time constant, so it is one group (first < last)."""
    groups, i = [], 0
    while i < len(values):
        pair = (values[i].imag != 0 and i + 1 < len(values)
                and np.isclose(values[i + 1], np.conj(values[i]), rtol=1e-6, atol=1e-12))
        groups.append((i, i + 1 if pair else i))
        i += 2 if pair else 1
    return groups


def mode_time_constants(fixed_points: FixedPoints, most: int = 5) -> Tuple[np.ndarray, List[str]]:
    """(N, k) time constants of each point's ``most`` slowest modes, by decreasing |tau| (taking them by modulus
    put a saddle's fast growth modes first), a conjugate pair counted once (its two eigenvalues have the same
    |tau|: plotted apart, "mode 4" hid exactly behind "mode 3"), and each column's legend label: "mode 3", "modes
    3-4 (pair)" (their places by modulus), or, where the points differ, "slowest mode 3 (a pair at some points)"."""
    tau = fixed_points.time_constants()
    if not len(tau):
        return np.zeros((0, 0)), []
    groups = [sorted(conjugate_groups(values), key=lambda g, t=t: -abs(t[g[0]]))[:most]
              for values, t in zip(fixed_points.eigenvalues, tau)]
    k = min(len(g) for g in groups)
    out = np.array([[tau[n, g[j][0]] for j in range(k)] for n, g in enumerate(groups)])
    labels = []
    for j in range(k):
        spans = {g[j] for g in groups}
        first, last = next(iter(spans))
        if len(spans) > 1:
            pairs = " (a pair at some points)" if any(b > a for a, b in spans) else ""
            labels.append(f"slowest mode {j + 1}{pairs}")
        else:
            labels.append(f"modes {first + 1}-{last + 1} (pair)" if last > first else f"mode {first + 1}")
    return out, labels


def spectra_figure(fixed_points: FixedPoints, title: Optional[str] = None, time_unit: Optional[str] = None) -> Figure:
    """Eigenvalues of every point's Jacobian in the complex plane with the unit circle (left), and the time
    constants |tau| = dt / |ln|lambda|| of its slowest modes (right): filled, a decay (|lambda| < 1); open, a
    growth (|lambda| > 1, an unstable mode); modes with |tau| above 1e6 (|lambda| = 1) are left out."""
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(8.5, 3.8), layout="constrained")
    plane, taus = figure.subplots(1, 2)
    angle = np.linspace(0, 2 * np.pi, 200)
    plane.plot(np.cos(angle), np.sin(angle), color="0.6", lw=0.8)
    for i, values in enumerate(fixed_points.eigenvalues):
        colour = "k" if fixed_points.stable[i] else "r"
        plane.plot(values.real, values.imag, ".", color=colour, ms=3, alpha=0.6)
    kinds = ", ".join(f"{int((fixed_points.kind == kind).sum())} {kind}" for kind in ("fixed", "slow")
                      if (fixed_points.kind == kind).any())
    n_values, dim = fixed_points.eigenvalues.shape[1], fixed_points.points.shape[1]
    # above the dense limit only the largest eigenvalues are computed (ARPACK): say so, they are not the spectrum
    part = f"\nlargest {n_values} of {dim} eigenvalues each" if len(fixed_points) and n_values < dim else ""
    plane.set(xlabel="Re $\\lambda$", ylabel="Im $\\lambda$", aspect="equal",
              title=f"{counted(len(fixed_points), 'point')}{f' ({kinds})' if kinds else ''}: "
                    f"{int(fixed_points.stable.sum())} stable (black){part}")
    plane.title.set_fontsize(10)
    tau, labels = mode_time_constants(fixed_points)
    k = len(labels)
    shown = []
    for i in range(k):
        finite = np.abs(tau[:, i]) < 1e6
        growth = finite & (tau[:, i] < 0)
        line, = taus.plot(np.flatnonzero(finite & ~growth), np.abs(tau[finite & ~growth, i]), ".", ms=7,
                          label=labels[i])
        taus.plot(np.flatnonzero(growth), np.abs(tau[growth, i]), "o", ms=5, mfc="none", color=line.get_color())
        shown.append(np.abs(tau[finite, i]))
    shown = np.concatenate(shown) if shown else np.array([])
    # a log axis over less than a decade labelled its ticks 1.525x10^1, 1.52x10^1...
    if len(shown) and shown.min() > 0 and shown.max() / shown.min() > 10:
        taus.set_yscale("log")
    unit = time_unit or fixed_points.time_unit
    taus.set(xlabel="point (row of the summary table)", ylabel=f"|tau| ({unit})",
             title="slowest time constants (open: growth, |$\\lambda$| > 1)")
    taus.title.set_fontsize(10)
    taus.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    taus.set_xlim(-0.5, max(len(fixed_points), 1) - 0.5)
    if k:
        taus.legend(frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    if title:
        figure.suptitle(title)
    return figure


METRIC_TITLES = {"rsa": "RSA (Spearman r of RDMs)", "cka": "linear CKA", "debiased_cka": "debiased linear CKA"}


def plot_similarity_over_time(matrices: Dict[str, xr.DataArray], path: PathLike, title: Optional[str] = None,
                              axes: Sequence[Tuple[str, str]] = (("bin a", "ms"), ("bin b", "ms"))) -> Path:
    return save_figure(similarity_figure(matrices, title, axes), path)


def similarity_figure(matrices: Dict[str, xr.DataArray], title: Optional[str] = None,
                      axes: Sequence[Tuple[str, str]] = (("bin a", "ms"), ("bin b", "ms"))) -> Figure:
    """One panel per metric: the similarity of each bin of the first system (rows) to each bin of the second
    (columns); ``axes``: (name, time unit) of the two systems (the axes said "bin a (ms)" for every system, and
    ms for the examples, whose bins are steps). A bin without information (NaN: constant over stimuli, e.g. before
    the image reaches a layer) is grey."""
    import matplotlib

    (name_a, unit_a), (name_b, unit_b) = axes
    n = len(matrices)
    figure = Figure(figsize=(3.9 * n + 0.6, 3.5), layout="constrained")
    colours = matplotlib.colormaps["viridis"].with_extremes(bad="0.85")
    for axis, (name, matrix) in zip(np.atleast_1d(figure.subplots(1, n)), matrices.items()):
        a, b = matrix["time_bin_a"].values, matrix["time_bin_b"].values
        image = axis.imshow(np.ma.masked_invalid(matrix.values), origin="lower", aspect="auto", cmap=colours,
                            extent=(b[0], b[-1] + (b[1] - b[0] if len(b) > 1 else 1),
                                    a[0], a[-1] + (a[1] - a[0] if len(a) > 1 else 1)))
        figure.colorbar(image, ax=axis, fraction=0.046)  # the panel title names the metric
        axis.set(xlabel=f"{name_b}: bin start ({unit_b})", ylabel=f"{name_a}: bin start ({unit_a})")
        axis.set_title(METRIC_TITLES.get(name, name), fontsize=9)
        axis.xaxis.label.set_fontsize(8)
        axis.yaxis.label.set_fontsize(8)
    if any(np.isnan(m.values).any() for m in matrices.values()):
        figure.text(0.5, 0, "grey: a bin without information (constant over stimuli)", ha="center", va="bottom",
                    fontsize=7, color="0.35")
        figure.get_layout_engine().set(h_pad=0.2)
    if title:
        figure.suptitle(title)
    return figure
