"""Figures written next to results (matplotlib, Agg canvas; no global pyplot state)."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional, Union

import numpy as np
from matplotlib.figure import Figure

from neurozoo.benchmarks.score import Score
from neurozoo.datasets.figures import save_figure


def _column(rows, key):
    return np.array([np.nan if row.get(key) is None else row[key] for row in rows], dtype=float)


def time_course_figure(score: Score, title: Optional[str] = None) -> Figure:
    """Left: raw r per time bin with the ceiling band (sqrt(ceiling) +- error, the r of a noiseless model).
    Right: normalised score r^2 / ceiling per bin with its error bar; 1 is the ceiling."""
    rows = score.per_bin
    start, end = _column(rows, "time_bin_start"), _column(rows, "time_bin_end")
    timed = np.isfinite(start).all()
    t = (start + end) / 2 if timed else np.arange(len(rows))
    time_label = "time after stimulus onset (ms)" if timed else "time bin"
    figure = Figure(figsize=(9, 3.6), layout="constrained")  # constrained: the suptitle never covers a panel title
    raw_axis, norm_axis = figure.subplots(1, 2)
    raw = _column(rows, "raw")
    raw_axis.plot(t, raw, "o-", color="C0", label="model r")
    ceiling = _column(rows, "ceiling")
    if np.isfinite(ceiling).any():
        c_error = _column(rows, "ceiling_error") if "ceiling_error" in rows[0] else np.zeros_like(ceiling)
        low = np.sqrt(np.clip(ceiling - np.nan_to_num(c_error), 0, None))
        high = np.sqrt(np.clip(ceiling + np.nan_to_num(c_error), 0, None))
        raw_axis.fill_between(t, low, high, color="0.6", alpha=0.5, lw=1, label="ceiling (\u221a split-half r\u00b2)")
    raw_axis.set(xlabel=time_label, ylabel="Pearson r", title="raw")
    raw_axis.legend(frameon=False, fontsize=8)
    value, error = _column(rows, "value"), np.nan_to_num(_column(rows, "error"))
    norm_axis.errorbar(t, value, yerr=error, fmt="o-", color="C1", capsize=2, label="score \u00b1 error")
    norm_axis.axhline(1.0, color="0.5", lw=0.8, ls="--", label="ceiling")
    norm_axis.set(xlabel=time_label, ylabel="r$^2$ / ceiling", title=f"normalised (mean {score.value:.3f})")
    norm_axis.legend(frameon=False, fontsize=8)
    if title:
        figure.suptitle(title)
    return figure


def plot_time_course(score: Score, path: Union[str, Path], title: Optional[str] = None) -> Path:
    return save_figure(time_course_figure(score, title), path)


def plot_layer_profile(layer_scores: Mapping[str, Union[Score, float]], path: Union[str, Path],
                       title: Optional[str] = None, ylabel: str = "score", chosen: Optional[str] = None) -> Path:
    """Score of each layer (in the given order), with its error bar; values may be Scores or plain numbers.
    ``chosen``: the layer the score was computed on, ringed and named in the legend."""
    names = list(layer_scores)
    values = [float(getattr(layer_scores[n], "value", layer_scores[n])) for n in names]
    errors = [getattr(layer_scores[n], "error", None) or 0.0 for n in names]
    figure = Figure(figsize=(max(4, 0.7 * len(names) + 2), 3.2), layout="constrained")
    axis = figure.subplots()
    axis.errorbar(range(len(names)), values, yerr=errors, fmt="o-", capsize=2)
    if chosen in names:
        k = names.index(chosen)
        axis.plot([k], [values[k]], "o", ms=12, mfc="none", mec="C3", mew=1.5, label=f"chosen: {chosen}")
        axis.legend(frameon=False, fontsize=8)
    axis.set_xticks(range(len(names)), names, rotation=45, ha="right")
    axis.set(xlabel="layer", ylabel=ylabel, title=title or "per-layer score")
    return save_figure(figure, path)
