"""Contrast adaptation and object-motion sensitivity: two phenomena of slow and spatial context. Same conventions
as :mod:`retina.phenomena.analyses` (any system via :func:`as_responder`; dict of per-cell arrays; frames of 10 ms).
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

from neurozoo.retina.phenomena import stimuli
from neurozoo.retina.phenomena.responder import as_responder


def fit_exponential(trace: np.ndarray, taus: Optional[np.ndarray] = None) -> Tuple[float, float, float]:
    """Least-squares ``trace[t] ~ c + A exp(-t / tau)``: ``(tau, A, c)``. tau by grid search (log-spaced, 0.5 frame
    to 4x the trace length), c and A linear for each tau -- no start values, no failed fits. tau is NaN when the
    best fit sits on the grid's edge (no decay resolved within the trace)."""
    t = np.arange(len(trace), dtype=float)
    taus = np.geomspace(0.5, 4 * len(trace), 200) if taus is None else taus
    best = (np.inf, np.nan, np.nan, np.nan)
    for tau in taus:
        design = np.stack([np.ones_like(t), np.exp(-t / tau)], 1)
        coef, *_ = np.linalg.lstsq(design, trace, rcond=None)
        sse = float(((design @ coef - trace) ** 2).sum())
        if sse < best[0]:
            best = (sse, tau, coef[1], coef[0])
    _, tau, amplitude, offset = best
    if tau in (taus[0], taus[-1]):
        tau = np.nan
    return float(tau), float(amplitude), float(offset)


def nanmedian(values) -> float:
    """Median of the finite values; NaN (without a warning) when there are none."""
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    return float(np.median(values)) if len(values) else float("nan")


def _index(a, b):
    return (a - b) / np.maximum(np.abs(a) + np.abs(b), 1e-12)


def contrast_adaptation(system, low: float = 0.3, high: float = 1.0, block: int = 200, cycles: int = 12,
                        checker: int = 2, seed: int = 0, early: Tuple[int, int] = (10, 40),
                        late: Optional[Tuple[int, int]] = None, smooth: int = 5) -> Dict[str, np.ndarray]:
    """Slow contrast adaptation (Smirnakis et al. 1997; Baccus & Meister 2002): white noise switching between sd
    ``low`` and ``high`` every ``block`` frames, ``cycles`` times (the first cycle is dropped: it starts from rest).

    The rate is averaged over cycles, aligned to the switch: ``high`` / ``low`` ``(cells, block)``. The measure
    is the mean rate, not a linear-filter gain: it needs no filter estimate, so it holds for rectifying (ON-OFF)
    cells whose spike-triggered average is weak, and for a fixed linear filter it is flat by construction. (A
    Baccus & Meister style gain -- slope of the rate on a rank-1 STA filter's output per window -- was tried on
    the ground-truth circuit: with 30-frame early windows it did not separate the circuit from the same circuit
    without gain control and depletion, while the mean rate does in every cell.)

    * ``early_high`` / ``late_high``: mean rate in frames ``early`` after the switch up (default 10-40: after the
      filters fill with high-contrast frames) and ``late`` (default: the block's second half);
      ``adaptation_index = (early_high - late_high) / (|early_high| + |late_high|)`` (> 0: the response decays
      as the cell adapts to high contrast; 0 without adaptation);
    * ``recovery_index``: the same for the low block, ``(late_low - early_low) / (...)`` (> 0: the rate recovers
      after the drop to low contrast);
    * ``tau_high``: time constant (frames) of the decay, an exponential fitted from the peak of the (``smooth``-
      frame boxcar smoothed) trace within ``early`` to the end of the block; ``tau_low``: the same for the
      recovery from the trough after the switch down. NaN where no decay of the expected sign is resolved."""
    movie, _ = stimuli.contrast_switching_noise(low, high, block, cycles, checker, seed)
    rates = as_responder(system)(movie)
    n_cells = len(rates)
    aligned = rates.reshape(n_cells, cycles, 2, block)[:, 1:].mean(1)
    low_trace, high_trace = aligned[:, 0], aligned[:, 1]
    late = late or (block // 2, block)
    e, l_ = slice(*early), slice(*late)
    early_high, late_high = high_trace[:, e].mean(1), high_trace[:, l_].mean(1)
    early_low, late_low = low_trace[:, e].mean(1), low_trace[:, l_].mean(1)
    tau_high, tau_low = np.full(n_cells, np.nan), np.full(n_cells, np.nan)
    for i in range(n_cells):
        for trace, out, sign in ((high_trace[i], tau_high, 1.0), (low_trace[i], tau_low, -1.0)):
            smoothed = ndimage.uniform_filter1d(trace, smooth, mode="nearest")
            start = early[0] + int(np.argmax(sign * smoothed[early[0]:early[1]]))
            tau, amplitude, _ = fit_exponential(smoothed[start:])
            out[i] = tau if sign * amplitude > 0 else np.nan
    return {"time": np.arange(block), "high": high_trace, "low": low_trace, "early_high": early_high,
            "late_high": late_high, "early_low": early_low, "late_low": late_low,
            "adaptation_index": _index(early_high, late_high), "recovery_index": _index(late_low, early_low),
            "tau_high": tau_high, "tau_low": tau_low}


def object_motion_sensitivity(system, centres: Optional[np.ndarray] = None, n_frames: int = 1000, radius: float = 12.0,
                              bar_width: int = 4, contrast: float = 0.3, speed: float = 1.0, smoothness: float = 20.0,
                              seed: int = 0, settle: int = 100, min_response: float = 0.1) -> Dict[str, np.ndarray]:
    """Object-motion sensitivity (Olveczky, Baccus & Meister 2003): the response to an object jittering
    differently from its background vs the response to the whole scene jittering together.

    ``centres``: the object's centre (y, x) px per cell, ``(cells, 2)`` (as in the experiments, centred on each
    cell's receptive field; each distinct centre is one stimulus run); None: one object at the frame centre.
    Responses are mean rates after ``settle`` frames minus the rate to a grey screen (``baseline``), per
    condition (``global``, ``differential``, ``object``: background still; see :func:`stimuli.object_motion`).
    ``oms_index = (differential - global) / (|differential| + |global|)``: > 0 when global motion is suppressed
    relative to differential motion (wide-field inhibition), ~0 without a surround; NaN where
    ``|differential| + |global| < min_response`` spikes/s (no motion response to compare)."""
    respond = as_responder(system)
    baseline = respond(np.zeros((settle + 100, stimuli.FRAME_SIZE, stimuli.FRAME_SIZE), np.float32))[:, settle:].mean(1)
    n_cells = len(baseline)
    if centres is None:
        centres = np.full((n_cells, 2), stimuli.FRAME_SIZE / 2)
    centres = np.asarray(centres, float)
    if centres.shape != (n_cells, 2):
        from neurozoo.datasets.errors import SpecError

        raise SpecError(f"object_motion_sensitivity: centres must have shape ({n_cells}, 2) (y, x per cell); "
                        f"got {centres.shape}")
    conditions = ("global", "differential", "object")
    responses = {c: np.empty(n_cells) for c in conditions}
    unique, which = np.unique(centres, axis=0, return_inverse=True)
    for k, centre in enumerate(unique):
        cells = np.flatnonzero(which.ravel() == k)
        for condition in conditions:
            movie = stimuli.object_motion(condition, n_frames, tuple(centre), radius, bar_width, contrast, speed,
                                          smoothness, seed)
            responses[condition][cells] = respond(movie)[cells, settle:].mean(1) - baseline[cells]
    return {"baseline": baseline, **responses, "centres": centres,
            "oms_index": np.where(np.abs(responses["differential"]) + np.abs(responses["global"]) >= min_response,
                                  _index(responses["differential"], responses["global"]), np.nan)}


def adaptation_figure(results: Dict[str, Dict], title: str = "", smooth: int = 10):
    """Rate after the switch to high contrast (solid) and back to low (dotted), averaged over cycles and smoothed
    over ``smooth`` frames for display, one colour per cell, one panel per system (e.g. model and ground truth)."""
    from neurozoo.retina.phenomena.figures import legend_below, panels

    figure, axes = panels(len(results), height=4.4)
    for ax, (name, result) in zip(axes, results.items()):
        t = result["time"] * 10
        for i, (high, low) in enumerate(zip(result["high"], result["low"])):
            high, low = (ndimage.uniform_filter1d(trace, smooth, mode="nearest") for trace in (high, low))
            line, = ax.plot(t, high, lw=0.8, label=f"cell {i}: index {result['adaptation_index'][i]:.2f}")
            ax.plot(t, low, ":", lw=0.8, color=line.get_color())
        ax.plot([], [], "k-", lw=0.8, label="after switch to high")
        ax.plot([], [], "k:", lw=0.8, label="after switch to low")
        ax.set_title(f"{name}: median index {nanmedian(result['adaptation_index']):.2f}, "
                     f"tau {10 * nanmedian(result['tau_high']):.0f} ms", fontsize=9)
        ax.set_xlabel("time after contrast switch (ms)")
        legend_below(ax)
    axes[0].set_ylabel("rate (spikes/s)")
    if title:
        figure.suptitle(title)
    return figure


def plot_adaptation(results: Dict[str, Dict], path, title: str = "", smooth: int = 10):
    """``adaptation_figure`` saved as PNG."""
    from neurozoo.retina.phenomena.figures import save

    return save(adaptation_figure(results, title, smooth), path)


def oms_figure(results: Dict[str, Dict], title: str = ""):
    """Per-cell responses (rate above grey) to global, differential and object-only motion, one panel per
    system."""
    from neurozoo.retina.phenomena.figures import legend_below, panels

    figure, axes = panels(len(results), height=3.6)
    for ax, (name, result) in zip(axes, results.items()):
        cells = np.arange(len(result["oms_index"]))
        for k, condition in enumerate(("global", "differential", "object")):
            ax.bar(cells + (k - 1) * 0.27, result[condition], width=0.27, label=f"{condition} motion")
        ax.axhline(0, color="0.4", lw=0.6)
        ax.set_title(f"{name}: median OMS index {nanmedian(result['oms_index']):.2f}", fontsize=9)
        ax.set_xlabel("cell")
        ax.set_xticks(cells)
        legend_below(ax, fontsize=7)
    axes[0].set_ylabel("response above grey (spikes/s)")
    if title:
        figure.suptitle(title)
    return figure


def plot_oms(results: Dict[str, Dict], path, title: str = ""):
    """``oms_figure`` saved as PNG."""
    from neurozoo.retina.phenomena.figures import save

    return save(oms_figure(results, title), path)


def compare_indices(model: np.ndarray, truth: np.ndarray) -> Dict:
    """Cell-by-cell agreement of a model's index with the ground truth's (the fitted model's cells are the
    circuit's): Pearson r across cells, mean absolute difference, and the fraction of cells with the same sign."""
    model, truth = np.asarray(model, float), np.asarray(truth, float)
    ok = np.isfinite(model) & np.isfinite(truth)
    r = float(np.corrcoef(model[ok], truth[ok])[0, 1]) if ok.sum() > 2 and model[ok].std() > 0 else float("nan")
    return {"pearson_r": r, "mean_abs_difference": float(np.abs(model[ok] - truth[ok]).mean()) if ok.any() else float("nan"),
            "same_sign": float((np.sign(model[ok]) == np.sign(truth[ok])).mean()) if ok.any() else float("nan")}
