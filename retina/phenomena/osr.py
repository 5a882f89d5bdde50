"""The omitted-stimulus response (Schwartz et al. 2007) as probed in Tanaka et al. (2019).

Protocol: full-field 2-frame (20 ms) dark flashes of intensity -2, 8 flashes every ``period`` frames, then
one omitted. For each period the latency is the time from the last flash's onset to the peak of the
response within ``window`` frames (30) after it. Periods 2-5 frames (the public analysis). A cell shows an
OSR when the least-squares slope of latency against period lies in [0.5, 1.5] and R^2 >= 0.5: the
response follows the time the missing flash was due, not the last flash seen.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from neurozoo.retina.phenomena import stimuli
from neurozoo.retina.phenomena.responder import as_responder

SLOPE_RANGE = (0.5, 1.5)
MIN_R2 = 0.5


@dataclass
class OSRResult:
    periods: np.ndarray           # (P,) frames
    latencies: np.ndarray         # (cells, P) frames from the last flash onset to the peak
    peaks: np.ndarray             # (cells, P) peak rate after the last flash
    train_peaks: np.ndarray       # (cells, P) peak rate during the last 3 periods of the train
    slope: np.ndarray             # (cells,)
    intercept: np.ndarray
    r2: np.ndarray
    is_osr: np.ndarray            # (cells,) bool
    traces: List[np.ndarray] = field(default_factory=list)  # per period: rates (cells, T) aligned to the last flash
    settings: Dict = field(default_factory=dict)

    def summary(self) -> Dict:
        return {"periods": self.periods.tolist(), "latencies": self.latencies.tolist(), "slope": self.slope.tolist(),
                "intercept": self.intercept.tolist(), "r2": self.r2.tolist(), "is_osr": self.is_osr.tolist(),
                "n_osr_cells": int(self.is_osr.sum()), "peaks": self.peaks.tolist(), "settings": self.settings}


def fit_line(x: np.ndarray, y: np.ndarray):
    """Least-squares ``y = slope x + intercept`` per row of ``y`` and R^2 (NaN when y is constant)."""
    x = np.asarray(x, float)
    y = np.atleast_2d(np.asarray(y, float))
    xc = x - x.mean()
    slope = (y - y.mean(1, keepdims=True)) @ xc / (xc @ xc)
    intercept = y.mean(1) - slope * x.mean()
    residual = y - (slope[:, None] * x + intercept[:, None])
    total = ((y - y.mean(1, keepdims=True)) ** 2).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = np.where(total > 0, 1 - (residual ** 2).sum(1) / total, np.nan)
    return slope, intercept, r2


def osr_call(slope, r2, slope_range=SLOPE_RANGE, min_r2=MIN_R2) -> np.ndarray:
    slope, r2 = np.asarray(slope, float), np.asarray(r2, float)
    return (slope >= slope_range[0]) & (slope <= slope_range[1]) & np.nan_to_num(r2 >= min_r2, nan=False)


def omitted_stimulus_response(system, periods: Sequence[int] = (2, 3, 4, 5), n_flashes: int = 8, flash_frames: int = 2,
                              intensity: float = -2.0, window: int = 30, pre: int = 60,
                              cells: Optional[Sequence[int]] = None) -> OSRResult:
    """Run the period sweep on ``system`` (a torch model, the ground-truth circuit, or a callable; see
    :func:`retina.phenomena.as_responder`) and call the OSR per cell."""
    respond = as_responder(system)
    periods = np.asarray(periods, int)
    latencies, peaks, train_peaks, traces = [], [], [], []
    for period in periods:
        movie, last, _ = stimuli.flash_train(int(period), n_flashes, flash_frames, intensity, pre=pre,
                                             post=window + 10)
        rates = respond(movie)
        if cells is not None:
            rates = rates[list(cells)]
        part = rates[:, last:last + window]
        latencies.append(part.argmax(1))
        peaks.append(part.max(1))
        train_peaks.append(rates[:, last - 3 * period:last].max(1))
        traces.append(rates[:, last - 3 * period - 10:last + window])
    latencies = np.stack(latencies, 1).astype(float)
    slope, intercept, r2 = fit_line(periods, latencies)
    settings = {"periods": periods.tolist(), "n_flashes": n_flashes, "flash_frames": flash_frames, "intensity": intensity,
                "window": window, "slope_range": list(SLOPE_RANGE), "min_r2": MIN_R2}
    return OSRResult(periods, latencies, np.stack(peaks, 1), np.stack(train_peaks, 1), slope, intercept, r2,
                     osr_call(slope, r2), traces, settings)


def plot_osr(results: Dict[str, OSRResult], path, cells: Optional[Sequence[int]] = None, title: str = ""):
    """Latency-vs-period panels side by side (one per system, e.g. model and ground truth), one line per cell
    (OSR cells solid, others dotted) with the fitted slope in the legend; saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.6), sharey=True, squeeze=False)
    for ax, (name, result) in zip(axes[0], results.items()):
        chosen = range(len(result.slope)) if cells is None else cells
        for i in chosen:
            style = "-" if result.is_osr[i] else ":"
            ax.plot(result.periods * 10, result.latencies[i] * 10, style, marker="o", ms=3,
                    label=f"cell {i}: slope {result.slope[i]:.2f}, R$^2$ {np.nan_to_num(result.r2[i]):.2f}")
        ax.plot(result.periods * 10, result.periods * 10, "k--", lw=0.8, label="slope 1")
        ax.set_title(f"{name}: {int(result.is_osr.sum())}/{len(result.is_osr)} cells with OSR")
        ax.set_xlabel("flash period (ms)")
        ax.legend(fontsize=5, loc="upper left")
    axes[0][0].set_ylabel("peak latency after last flash (ms)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def compare_to_ground_truth(model: OSRResult, truth: OSRResult) -> Dict:
    """Score a model's OSR against the ground truth's, cell by cell (the fitted model's cells are the circuit's).

    For each cell in which the ground truth shows an OSR: ``cell_score = called * clip(1 - |slope_model -
    slope_truth| / |slope_truth|, 0, 1)`` where ``called`` is 1 when the model shows the OSR in that cell and 0
    otherwise. ``value``: mean cell score; ``osr_fraction``: fraction of those cells with a model OSR. With no
    ground-truth OSR cell the value is NaN."""
    cells = np.flatnonzero(truth.is_osr)
    rows = []
    for c in cells:
        match = float(np.clip(1 - abs(model.slope[c] - truth.slope[c]) / abs(truth.slope[c]), 0, 1))
        rows.append({"cell": int(c), "model_slope": float(model.slope[c]), "truth_slope": float(truth.slope[c]),
                     "model_r2": float(np.nan_to_num(model.r2[c])), "model_osr": bool(model.is_osr[c]),
                     "slope_match": match, "score": match * bool(model.is_osr[c])})
    value = float(np.mean([r["score"] for r in rows])) if rows else float("nan")
    fraction = float(np.mean([r["model_osr"] for r in rows])) if rows else float("nan")
    return {"value": value, "osr_fraction": fraction, "model_shows_osr": bool(model.is_osr.any()), "cells": rows}
