"""The omitted-stimulus response (Schwartz et al. 2007) as probed in Tanaka et al. (2019).

Protocol: full-field 2-frame (20 ms) dark flashes of intensity -2, 8 flashes every ``period`` frames, then one
omitted; periods 6-16 frames (60-160 ms, about 6-17 Hz: the range of Schwartz et al. 2007, where each flash
is resolved). Per cell and period:

* the response is the rate minus the pre-train baseline (mean of the ``pre`` grey frames before the first
  flash);
* its time is the **centroid** of the response from the last flash's onset to ``window`` frames after the
  omitted flash was due (the mean time of the samples above half the window's maximum, robust to plateaus);
  NaN where the response never rises above the baseline there, or only by rounding (not above
  ``ROUNDING_FLOOR`` (1e-6) times the cell's largest rate: a float32 cell whose rate the flashes move by less had
  been timed by its rounding; call version 5: version 4 kept an absolute floor of 1e-12 beside it) (nothing to
  time; the cell's slope and R^2 are then NaN and it shows no OSR);
  ``latencies`` are measured from the last flash's onset, ``omission_latencies`` from the omitted flash;
* ``peaks``: the response's maximum in that window; ``train_peaks``: the mean over the three flashes before
  the last one of each flash's peak (maximum within its period); ``peak_ratio = peaks / train_peaks``, undefined
  (NaN; ``null`` in JSON, with the reason in the summary) where the train evoked nothing above baseline: where
  ``train_peaks`` is not above ``ROUNDING_FLOOR`` times the cell's largest rate (``sizes``;
  :func:`retina.phenomena.rounding.above_rounding`), so at most rounding (dividing by a floor had reported ratios
  of ~1e10 there; call version 4: version 3 asked only ``train_peaks > 0``, which a float32 cell's rounding passes).

A cell shows an OSR when the least-squares slope of latency (from the last flash) against period is within 1 +- 0.25
(the response is timed by the flash that did not come, not by the last one seen), with R^2 >= 0.8, and the
post-omission peak is at least twice the train's per-flash peak at every period (the response is specific to the
omission). A cell whose train evoked nothing above baseline at some period (``train_peaks`` at rounding level or below)
shows no OSR there, whatever follows the train: in Schwartz et al. (2007) the cell answers each flash of the train and
the OSR is its response to the one that did not come, while a rise after a train the cell never answered is an offset
(rebound) response to the train's end, which an LN cell makes (a 2-epoch BN-CNN fitted to LN-only cells had been called
OSR with slope 0.84, R^2 1.00, its rise 17-19 frames after the omitted flash; call version 2 refuses it). Invalid
stimulus parameters raise :class:`datasets.errors.SpecError`.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from neurozoo.datasets.cell_names import cell_name
from neurozoo.datasets import retina_stimuli as stimuli
from neurozoo.retina.phenomena.analyses import _centroid_time
from neurozoo.retina.phenomena.responder import as_responder
from neurozoo.retina.phenomena.rounding import above_rounding

PERIODS = (6, 8, 10, 12, 14, 16)
MAX_PERIOD = 100
SLOPE_RANGE = (0.75, 1.25)
MIN_R2 = 0.8
MIN_PEAK_RATIO = 2.0
# 2: a cell whose flash train evoked nothing above baseline is no OSR (version 1 asked only for a post-omission
# peak above baseline there); recorded in the settings so that scores of the two calls are not compared.
# 3: a rise after the last flash not above ROUNDING_FLOOR (1e-6) times the cell's largest rate is no response to
# time (version 2's floor was 1e-12 absolute: a float32 cell's rounding got a latency; a 2-epoch BN-CNN fitted on
# the embedded recording had 10 of its 72 cell-period latencies timed from rounding, 32-38 frames, in 3 cells)
# 4: a train whose per-flash peak is not above ROUNDING_FLOOR times the cell's largest rate evoked nothing (no OSR,
# no peak ratio); version 3 asked train_peaks > 0, which rounding passes: a float32 cell whose flashes moved its rate
# by one float32 step and which rose after the omission was called OSR, with a peak ratio of 1e7
# 5: the latency's rounding floor is relative alone; version 4 kept 1e-12 spikes/s beside it (at least), so a real rise
# of a cell whose largest rate is below 1e-6 spikes/s could go untimed (its latency, slope, R^2 and call)
CALL_VERSION = 5


@dataclass
class OSRResult:
    periods: np.ndarray           # (P,) frames
    latencies: np.ndarray         # (cells, P) frames from the last flash onset to the response centroid
    peaks: np.ndarray             # (cells, P) post-omission peak (above baseline)
    train_peaks: np.ndarray       # (cells, P) mean per-flash peak over the three flashes before the last
    slope: np.ndarray             # (cells,)
    intercept: np.ndarray
    r2: np.ndarray
    is_osr: np.ndarray            # (cells,) bool
    traces: List[np.ndarray] = field(default_factory=list)  # per period: rates (cells, T) aligned to the last flash
    settings: Dict = field(default_factory=dict)
    sizes: Optional[np.ndarray] = None  # (cells, P) the cell's largest rate per period (None: train_peaks > 0 decides)

    @property
    def train_answered(self) -> np.ndarray:
        """``(cells, P)``: the train evoked a response above rounding (:func:`train_answered`)."""
        return train_answered(self.train_peaks, self.sizes)

    @property
    def peak_ratio(self) -> np.ndarray:
        """``(cells, P)``: post-omission peak over the train's per-flash peak; NaN where the train evoked nothing
        (:attr:`train_answered`)."""
        return peak_ratio(self.peaks, self.train_peaks, self.sizes)

    @property
    def omission_latencies(self) -> np.ndarray:
        """``(cells, P)``: frames from the omitted flash's onset to the response centroid."""
        return self.latencies - self.periods[None, :]

    def summary(self) -> Dict:
        return {"periods": self.periods.tolist(), "latencies": self.latencies.tolist(),
                "omission_latencies": self.omission_latencies.tolist(), "slope": self.slope.tolist(),
                "intercept": self.intercept.tolist(), "r2": self.r2.tolist(), "is_osr": self.is_osr.tolist(),
                "n_osr_cells": int(self.is_osr.sum()), "peaks": self.peaks.tolist(),
                "train_peaks": self.train_peaks.tolist(), "peak_ratio": self.peak_ratio.tolist(),
                "peak_ratio_undefined": (UNDEFINED_RATIO if not self.train_answered.all() else None),
                "latency_undefined": (UNDEFINED_LATENCY if not np.isfinite(self.latencies).all() else None),
                "settings": self.settings}


UNDEFINED_RATIO = ("NaN (null) where the train's per-flash peak is <= 0 or at float32 rounding level (not above 1e-6 "
                   "of the cell's largest rate): the flashes evoked nothing above baseline, so the ratio is undefined "
                   "and the cell shows no OSR (a rise after a train it never answered is an offset response, not a "
                   "response to the omission)")


UNDEFINED_LATENCY = ("NaN (null) latency where the response never rose above the pre-train baseline after the last "
                     "flash (a silent cell has no response to time); that cell's slope and R^2 are then NaN (null) "
                     "and it shows no OSR")


def train_answered(train_peaks, sizes=None) -> np.ndarray:
    """The flash train evoked a response: ``train_peaks`` above :data:`retina.phenomena.rounding.ROUNDING_FLOOR`
    times ``sizes``, the cell's largest rate (:func:`~retina.phenomena.rounding.above_rounding`: a smaller peak may
    be float32 rounding alone), or, without ``sizes``, above 0."""
    train_peaks = np.asarray(train_peaks, float)
    return train_peaks > 0 if sizes is None else above_rounding(train_peaks, sizes)


def peak_ratio(peaks, train_peaks, sizes=None) -> np.ndarray:
    """``peaks / train_peaks``, NaN where the train evoked nothing (:func:`train_answered`)."""
    peaks, train_peaks = np.asarray(peaks, float), np.asarray(train_peaks, float)
    defined = train_answered(train_peaks, sizes)
    return np.where(defined, peaks / np.where(defined, train_peaks, 1.0), np.nan)


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


def osr_call(slope, r2, peaks=None, train_peaks=None, slope_range=SLOPE_RANGE, min_r2=MIN_R2,
             min_peak_ratio=MIN_PEAK_RATIO, sizes=None) -> np.ndarray:
    """The OSR call per cell: slope within ``slope_range``, R^2 >= ``min_r2`` and (when ``peaks`` and
    ``train_peaks`` ``(cells, P)`` are given) a train that evoked a response (:func:`train_answered`, relative to
    ``sizes``, the cells' largest rates, where given) and a post-omission peak at least ``min_peak_ratio`` times it,
    at every period (module docstring)."""
    if (peaks is None) != (train_peaks is None):
        raise ValueError("osr_call: peaks and train_peaks go together (both (cells, P)), or neither")
    slope, r2 = np.asarray(slope, float), np.asarray(r2, float)
    called = (slope >= slope_range[0]) & (slope <= slope_range[1]) & np.nan_to_num(r2 >= min_r2, nan=False)
    if peaks is not None:
        peaks, train_peaks = np.asarray(peaks, float), np.asarray(train_peaks, float)
        specific = train_answered(train_peaks, sizes) & (peaks >= min_peak_ratio * train_peaks)
        called &= specific.all(1)
    return called


def check_protocol(periods, n_flashes: int, flash_frames: int, intensity: float, window: int, pre: int) -> None:
    """Raise a one-line :class:`SpecError` for stimulus parameters the analysis cannot use. A count of frames that is
    not a whole number failed deep inside numpy (a TypeError on a slice), a NaN or infinite intensity ran and called no
    cell, and a movie longer than :data:`stimuli.MAX_FRAMES` (a pre of 10**9) failed with a MemoryError."""
    from neurozoo.datasets.errors import SpecError

    periods = np.asarray(periods)
    problems = []
    if periods.ndim != 1 or len(np.unique(periods)) < 3:
        problems.append(f"periods: need at least 3 distinct flash periods to fit a slope; got {periods.tolist()}")
    elif periods.dtype.kind not in "iuf" or (periods != np.round(periods)).any():
        problems.append(f"periods: whole frames expected; got {periods.tolist()}")
    elif periods.min() <= flash_frames:
        problems.append(f"periods: every period must be longer than the flash ({flash_frames} frames), or the "
                        f"train is a continuous step; got {periods.tolist()}")
    elif periods.max() > MAX_PERIOD:  # a typo (100000) built a movie of gigabytes and ran for hours
        problems.append(f"periods: at most {MAX_PERIOD} frames (1 s; the OSR is a response to 6-17 Hz flash trains); "
                        f"got {periods.tolist()}")
    counts = {"n_flashes": n_flashes, "flash_frames": flash_frames, "window": window, "pre": pre}
    whole = {name: value for name, value in counts.items() if isinstance(value, numbers.Integral)}
    problems += [f"{name}: whole frames expected; got {value!r}" for name, value in counts.items() if name not in whole]
    if whole.get("flash_frames", 1) < 1:
        problems.append(f"flash_frames: at least 1 frame; got {flash_frames}")
    if whole.get("n_flashes", 4) < 4:
        problems.append(f"n_flashes: at least 4 (the train's peak is taken over the three flashes before the last); "
                        f"got {n_flashes}")
    if not (isinstance(intensity, numbers.Real) and np.isfinite(intensity)):
        problems.append(f"intensity: a finite contrast expected; got {intensity!r}")
    elif intensity == 0:
        problems.append("intensity: a flash of intensity 0 is no flash")
    if whole.get("window", 1) < 1 or whole.get("pre", 1) < 1:
        problems.append(f"window and pre: at least 1 frame; got window={window}, pre={pre}")
    if not problems:  # the longest train's movie (stimuli.flash_train with post = period + window + 10)
        frames = int(pre + (n_flashes + 1) * periods.max() + window + 10)
        if frames > stimuli.MAX_FRAMES:
            problems.append(f"pre={pre}, n_flashes={n_flashes}, window={window}: the longest train's movie would be "
                            f"{frames} frames; at most {stimuli.MAX_FRAMES}")
    if problems:
        raise SpecError("omitted-stimulus protocol: " + "; ".join(problems))


def check_cells(cells, n_cells: int) -> List[int]:
    """``cells`` as a list of indices into the system's ``n_cells`` cells, else a :class:`SpecError` naming them:
    an index out of range failed with numpy's IndexError, a negative one counted from the end without a word, and none
    at all gave a result of no cell."""
    from neurozoo.datasets.errors import SpecError

    cells = list(np.atleast_1d(np.asarray(cells, dtype=object)))
    if not cells or not all(isinstance(cell, numbers.Integral) and 0 <= cell < n_cells for cell in cells):
        raise SpecError(f"cells: expected indices of the system's cells, from 0 to {n_cells - 1}; got {cells}")
    return [int(cell) for cell in cells]


def omitted_stimulus_response(system, periods: Sequence[int] = PERIODS, n_flashes: int = 8, flash_frames: int = 2,
                              intensity: float = -2.0, window: int = 40, pre: int = 60,
                              cells: Optional[Sequence[int]] = None) -> OSRResult:
    """Run the period sweep on ``system`` (a torch model, the ground-truth circuit, or a callable; see
    :func:`retina.phenomena.as_responder`) and call the OSR per cell (module docstring)."""
    check_protocol(periods, n_flashes, flash_frames, intensity, window, pre)
    respond = as_responder(system, protocol="omitted_stimulus_response")
    periods = np.asarray(periods, int)
    latencies, peaks, train_peaks, traces, sizes = [], [], [], [], []
    for period in periods:
        movie, last, omitted = stimuli.flash_train(int(period), n_flashes, flash_frames, intensity, pre=pre,
                                                   post=period + window + 10)
        rates = respond(movie, probe=f"a flash train of period {period} frames")
        if cells is not None:
            rates = rates[check_cells(cells, len(rates))]
        response = rates - rates[:, :pre].mean(1, keepdims=True)
        stop = omitted + window
        size = np.abs(rates[:, :stop]).max(1)  # a rise not above 1e-6 of it may be float32 rounding: no response
        latencies.append(_centroid_time(response, last, stop, size, baseline=0.0) - last)
        peaks.append(response[:, last:stop].max(1))
        flashes = [last - k * period for k in (3, 2, 1)]
        train_peaks.append(np.mean([response[:, t:t + period].max(1) for t in flashes], 0))
        traces.append(rates[:, last - 3 * period - 10:stop])
        sizes.append(size)
    latencies = np.stack(latencies, 1).astype(float)
    peaks, train_peaks, sizes = np.stack(peaks, 1), np.stack(train_peaks, 1), np.stack(sizes, 1)
    slope, intercept, r2 = fit_line(periods, latencies)
    settings = {"periods": periods.tolist(), "n_flashes": n_flashes, "flash_frames": flash_frames, "intensity": intensity,
                "window": window, "pre": pre, "latency": "centroid", "slope_range": list(SLOPE_RANGE),
                "min_r2": MIN_R2, "min_peak_ratio": MIN_PEAK_RATIO, "call_version": CALL_VERSION}
    return OSRResult(periods, latencies, peaks, train_peaks, slope, intercept, r2,
                     osr_call(slope, r2, peaks, train_peaks, sizes=sizes), traces, settings, sizes)


def osr_figure(results: Dict[str, OSRResult], cells: Optional[Sequence[int]] = None, title: str = "",
               names: Optional[Sequence[str]] = None):
    """Latency-vs-period panels side by side (one per system, e.g. model and ground truth), one line per cell
    (OSR cells solid, others dotted) with the fitted slope in the legend under the panel. ``names``: the cells' names
    in the legend (default cell01, cell02, ...; a fit of some of a file's cells has theirs, zoo fit --cells)."""
    from neurozoo.retina.phenomena.figures import panels

    figure, axes = panels(len(results), height=4.6, width=4.4, sharey=True)
    for ax, (name, result) in zip(axes, results.items()):
        chosen = range(len(result.slope)) if cells is None else cells
        for i in chosen:
            style = "-" if result.is_osr[i] else ":"
            fit = (f"slope {result.slope[i]:.2f}, R$^2$ {np.nan_to_num(result.r2[i]):.2f}" if np.isfinite(result.slope[i])
                   else "no response to time")
            ax.plot(result.periods * 10, result.latencies[i] * 10, style, marker="o", ms=3, label=f"{cell_name(i) if names is None else names[i]}: {fit}")
        ax.plot(result.periods * 10, result.periods * 10, "k--", lw=0.8, label="slope 1")
        ax.set_title(f"{name}: {int(result.is_osr.sum())}/{len(result.is_osr)} cells with OSR (solid)", fontsize=10)
        ax.set_xlabel("flash period (ms)")
        ax.legend(fontsize=6, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.18), frameon=False)
    axes[0].set_ylabel("response centroid after last flash (ms)")
    if title:
        figure.suptitle(title)
    return figure


def plot_osr(results: Dict[str, OSRResult], path, cells: Optional[Sequence[int]] = None, title: str = "",
             names: Optional[Sequence[str]] = None):
    """``osr_figure`` saved as PNG."""
    from neurozoo.datasets.figures import save_figure

    return save_figure(osr_figure(results, cells, title, names), path)


def compare_to_ground_truth(model: OSRResult, truth: OSRResult) -> Dict:
    """Score a model's OSR against the ground truth's, cell by cell (the fitted model's cells are the circuit's).

    For each cell in which the ground truth shows an OSR: ``cell_score = called * clip(1 - |slope_model -
    slope_truth| / |slope_truth|, 0, 1)`` where ``called`` is 1 when the model shows the OSR in that cell and 0
    otherwise. ``value``: mean cell score; ``osr_fraction``: fraction of those cells with a model OSR. With no
    ground-truth OSR cell the value is NaN."""
    cells = np.flatnonzero(truth.is_osr)
    rows = []
    for c in cells:
        # a model cell without a slope (no response to time) matches nothing
        match = (float(np.clip(1 - abs(model.slope[c] - truth.slope[c]) / abs(truth.slope[c]), 0, 1))
                 if np.isfinite(model.slope[c]) else 0.0)
        rows.append({"cell": int(c), "model_slope": float(model.slope[c]), "truth_slope": float(truth.slope[c]),
                     "model_r2": float(np.nan_to_num(model.r2[c])), "model_osr": bool(model.is_osr[c]),
                     "slope_match": match, "score": match * bool(model.is_osr[c])})
    value = float(np.mean([r["score"] for r in rows])) if rows else float("nan")
    fraction = float(np.mean([r["model_osr"] for r in rows])) if rows else float("nan")
    return {"value": value, "osr_fraction": fraction, "model_shows_osr": bool(model.is_osr.any()), "cells": rows}
