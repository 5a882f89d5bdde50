"""Contrast adaptation and object-motion sensitivity: two phenomena of slow and spatial context. Same conventions
as :mod:`retina.phenomena.analyses` (any system via :func:`as_responder`; dict of per-cell arrays; frames of 10 ms).
"""
from __future__ import annotations

import numbers
from typing import Dict, Mapping, Optional, Tuple

import numpy as np
from scipy import ndimage, signal

from neurozoo.datasets.cell_names import cell_name
from neurozoo.datasets.errors import SpecError, check_integer, check_number
from neurozoo.datasets import retina_stimuli as stimuli
from neurozoo.retina.phenomena.analyses import check_movie, check_settings
from neurozoo.retina.phenomena.responder import N_FRAMES, as_responder
from neurozoo.retina.phenomena.rounding import ROUNDING_FLOOR, above_rounding


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
    """``(a - b) / (|a| + |b|)``, 0 where both are 0 (its callers leave an index undefined where ``|a| + |b|`` is at
    rounding level: :func:`above_rounding`; an absolute floor of 1e-12 had shrunk the index of a cell at rates that
    small)."""
    total = np.abs(a) + np.abs(b)
    return (a - b) / np.where(total > 0, total, 1.0)


# The measure's version, recorded with its settings (``index_version``) so that indices of two versions are not
# compared. 2: early window frames 40-70 after the switch and a late window whose stimulus replays it (below).
# Version 1 compared frames 10-40 with the block's second half (fresh noise): fixed LN cells, which cannot adapt,
# scored -0.34 to 0.07 there, and the LN, two-subunit and GLM fits 0.08-0.11 on retina_embedded.contrast-adaptation.
# 3: version 2's windows; an index whose two windows' rates are at rounding level (not above ROUNDING_FLOOR times the
# cell's largest rate: a silent cell) is undefined (NaN, with a reason), where version 2 read 0 (no adaptation)
# 4: an index whose two windows' rates differ by rounding alone (their difference not above ROUNDING_FLOOR times the
# cell's largest rate) is 0, no adaptation; version 3 divided the rounding (a fitted BN-CNN's -2e-8, which
# zoo probe adaptation printed as -0.00)
INDEX_VERSION = 4
#: the least index (``adaptation_index``, ``recovery_index``) whose cell is given a time constant: 0 up to rounding is
#: no adaptation (a system without memory beyond its window answers the replayed windows alike: index 0)
MIN_TAU_INDEX = ROUNDING_FLOOR
# The time constants' rule, recorded with the settings (``tau_version``; no benchmark scores a time constant, and
# zoo reproduce reruns no probe record: it tells two zoo probe adaptation records apart). 2: a time constant longer
# than the trace it is fitted on (from the peak to the block's end) is not resolved (NaN, with a reason: the trace
# shows less than 1 - 1/e of such a decay, and the fitted offset and amplitude trade off against it); version 1
# gave any time constant inside the fit's grid, up to 4x the trace: the ground truth's cell12 read 4409 ms in a
# 2 s block (its trace from the peak 1320-1620 ms long)
TAU_VERSION = 2


def resolved_tau(tau: float, amplitude: float, window: int) -> Tuple[float, str]:
    """``(tau, "")`` where :func:`fit_exponential`'s fit to a ``window``-frame trace resolves a decay of the expected
    sign (``amplitude`` > 0: the rate falls after the switch up, ``-amplitude`` for the recovery after the switch
    down), else ``(NaN, why)``: no decay of that sign, a time constant at the fit grid's edge, or one longer than
    the window (:data:`TAU_VERSION` 2): an exponential's first ``window`` frames hold less than 1 - 1/e of its decay
    there, and its offset and amplitude trade off against its time constant."""
    if not amplitude > 0:
        return float("nan"), "no decay of the expected sign"
    if not np.isfinite(tau):
        return float("nan"), f"no decay resolved (time constant at the end of the fit's grid, 5 ms to {40 * window} ms)"
    if tau > window:
        return float("nan"), (f"decay not resolved: time constant {10 * tau:.0f} ms, longer than the {10 * window} ms "
                              "fitted (from the peak to the block's end)")
    return float(tau), ""


def contrast_adaptation(system, low: float = 0.3, high: float = 1.0, block: int = 200, cycles: int = 12,
                        checker: int = 2, seed: int = 0, early: Tuple[int, int] = (40, 70), memory: int = N_FRAMES,
                        smooth: int = 5, index_version: int = INDEX_VERSION) -> Dict[str, np.ndarray]:
    """Slow contrast adaptation (Smirnakis et al. 1997; Baccus & Meister 2002): white noise switching between sd
    ``low`` and ``high`` every ``block`` frames, ``cycles`` times (the first cycle is dropped: it starts from rest).

    The rate is averaged over cycles, aligned to the switch: ``high`` / ``low`` ``(cells, block)``. The measure
    is the mean rate, not a linear-filter gain: it needs no filter estimate, so it holds for rectifying (ON-OFF)
    cells whose spike-triggered average is weak. (A Baccus & Meister style gain -- slope of the rate on a rank-1
    STA filter's output per window -- was tried on the ground-truth circuit: with 30-frame early windows it did not
    separate the circuit from the same circuit without gain control and depletion, while the mean rate does in
    every cell.)

    Windows (version 2, ``INDEX_VERSION``): a system whose rate at frame t depends only on frames t-memory+1 .. t
    (an LN model, a CNN: ``memory`` = their 40-frame window, ``responder.N_FRAMES``) must score 0, whatever its
    nonlinearity. So the ``early`` window (default frames 40-70 after the switch) starts once that window holds
    only the new contrast, and the late window is the block's last ``early[1] - early[0]`` frames, whose stimulus,
    with the ``memory - 1`` frames before it, is a replay of the early window's (``contrast_switching_noise``'s
    ``replay``). Such a system answers both windows with the same rates: index 0 up to rounding. Only a state
    older than ``memory`` frames -- adaptation -- makes them differ. Version 1's windows (frames 10-40 vs the
    block's second half, fresh noise) let a fixed LN cell score as adapting twice over: its filter still held
    low-contrast frames (a saturating or convex nonlinearity then gives another mean rate than at steady state),
    and 11 cycles of different noise in the two windows differ by chance. Fixed LN cells (tests/
    test_phenomena_adaptation.py: a 40-frame biphasic filter into a sigmoid near saturation or floor, or a
    softplus) scored -0.34 to 0.07 at frames 10-40, still -0.30 to 0.06 at 40-70 against fresh noise, 0 with the
    replay; the models fitted to the embedded retina (2026-12-04) scored 0.08-0.11 (LN, two-subunit, GLM) and 0.14
    (``bncnn2016``) on the benchmark with version 1, 0.03-0.23 with frames 40-70 against fresh noise, and 0 (the
    GLM, whose sampled spike history reaches further back, 0.007) with the replay. The ground-truth circuit keeps
    a positive index in every cell (0.07-0.33 by default, its ON and OFF cells the smallest, 0.07-0.09); the
    circuit without gain control and depletion -0.02 to 0.08.

    * ``early_high`` / ``late_high``: mean rate in the two windows after the switch up;
      ``adaptation_index = (early_high - late_high) / (|early_high| + |late_high|)`` (> 0: the response decays
      as the cell adapts to high contrast; 0 without adaptation);
    * ``recovery_index``: the same for the low block, ``(late_low - early_low) / (...)`` (> 0: the rate recovers
      after the drop to low contrast);
    * each index is undefined (NaN) where its denominator is not above :data:`ROUNDING_FLOOR` times the cell's
      largest rate (:func:`above_rounding`): no rate in either window, or rounding alone (a silent cell; index
      version 3: version 2 divided by a 1e-12 floor and read 0, no adaptation, for a cell with no response to
      adapt); ``reason`` says why per cell (else ""); an index whose windows' rates differ by no more than that
      (rounding alone) is 0, no adaptation (index version 4: version 3 divided the rounding, a fitted BN-CNN's
      indices -2e-8 to 3e-8);
    * ``tau_high``: time constant (frames) of the decay, an exponential fitted from the peak of the (``smooth``-
      frame boxcar smoothed) trace within ``early`` to the end of the block; ``tau_low``: the same for the
      recovery from the trough after the switch down. NaN where no decay of the expected sign is resolved
      (:func:`resolved_tau`), a time constant longer than the trace fitted among them (:data:`TAU_VERSION` 2: the
      ground truth's cell12 read 4409 ms in a 2 s block), and where the cell's index (``adaptation_index`` for
      ``tau_high``, ``recovery_index`` for ``tau_low``) is not above :data:`MIN_TAU_INDEX`: a cell that does not
      adapt has no decay to time (a model without memory beyond its window scores 0, and the exponential fitted to
      its cycle-averaged noise gave 9-320 ms, which ``zoo probe adaptation`` printed as its time constant);
      ``tau_high_reason``, ``tau_low_reason`` say why per cell (else "");
    * ``settings``: the windows (``early``, ``late``, ``replay``: the replayed frames), ``index_version`` and
      ``tau_version``.

    ``index_version``: recorded with the settings; only the current version is computed."""
    if index_version != INDEX_VERSION:
        raise SpecError(f"contrast_adaptation: index_version={index_version} is not computed by this code (version "
                        f"{INDEX_VERSION}; version 1's windows scored fixed LN cells as adapting, version 2 gave a "
                        "silent cell an index of 0, version 3 a cell without adaptation one of rounding: "
                        "docs/retina.md)")
    check_settings("contrast_adaptation", frames={"block": block, "checker": checker, "smooth": smooth,
                                                  "memory": memory}, positive={"low": low, "high": high})
    if check_integer(cycles, "contrast_adaptation: cycles", least=2, error=SpecError) and not low < high:
        # cycles=1 averaged no cycle (the first is dropped): NaN; low above high swapped the blocks' meaning
        raise SpecError(f"contrast_adaptation: low={low!r}, high={high!r}: expected low < high (the sd of the low and "
                        "the high contrast blocks)")
    if not (len(early) == 2 and all(isinstance(e, numbers.Integral) for e in early) and early[0] < early[1]):
        raise SpecError(f"contrast_adaptation: early: expected a window (start, end) of whole frames after the switch, "
                        f"start < end; got {early!r}")  # (70, 40) failed with numpy's 'argmax of an empty sequence'
    check_movie("contrast_adaptation", 2 * block * cycles)
    if early[0] < memory - 1:
        raise SpecError(f"contrast_adaptation: early={tuple(early)} starts before frame {memory - 1}, where the "
                        f"{memory}-frame memory first holds only the new contrast")
    replay = (early[0] - memory + 1, early[1])
    late = (block - (early[1] - early[0]), block)
    if late[0] - (memory - 1) < early[1]:
        raise SpecError(f"contrast_adaptation: block={block} is too short for early={tuple(early)} and its replay "
                        f"(with the {memory - 1} frames before it) after it: need block >= "
                        f"{early[1] + (early[1] - early[0]) + memory - 1}")
    movie, _ = stimuli.contrast_switching_noise(low, high, block, cycles, checker, seed, replay=replay)
    rates = as_responder(system, protocol="contrast_adaptation")(
        movie, probe=f"white noise switching between sd {low:g} and {high:g}")
    n_cells = len(rates)
    aligned = rates.reshape(n_cells, cycles, 2, block)[:, 1:].mean(1)
    low_trace, high_trace = aligned[:, 0], aligned[:, 1]
    e, l_ = slice(*early), slice(*late)
    early_high, late_high = high_trace[:, e].mean(1), high_trace[:, l_].mean(1)
    early_low, late_low = low_trace[:, e].mean(1), low_trace[:, l_].mean(1)
    tau_high, tau_low = np.full(n_cells, np.nan), np.full(n_cells, np.nan)
    tau_high_reason, tau_low_reason = np.full(n_cells, "", dtype=object), np.full(n_cells, "", dtype=object)
    for i in range(n_cells):
        for trace, out, why, sign in ((high_trace[i], tau_high, tau_high_reason, 1.0),
                                      (low_trace[i], tau_low, tau_low_reason, -1.0)):
            smoothed = ndimage.uniform_filter1d(trace, smooth, mode="nearest")
            start = early[0] + int(np.argmax(sign * smoothed[early[0]:early[1]]))
            tau, amplitude, _ = fit_exponential(smoothed[start:])
            out[i], why[i] = resolved_tau(tau, sign * amplitude, block - start)
    size = np.abs(rates).max(1)  # each cell's largest rate: windows' rates not above 1e-6 of it may be rounding
    adaptation, recovery = (np.where(above_rounding(np.abs(a) + np.abs(b), size),
                                     np.where(above_rounding(np.abs(a - b), size), _index(a, b), 0.0), np.nan)
                            for a, b in ((early_high, late_high), (late_low, early_low)))
    reason = np.full(n_cells, "", dtype=object)
    reason[np.isnan(recovery)] = "no rate above rounding level in the low block's windows: no recovery index"
    reason[np.isnan(adaptation)] = "no rate above rounding level in the high block's windows: no adaptation index"
    reason[np.isnan(adaptation) & np.isnan(recovery)] = "no rate above rounding level in the windows (a silent cell)"
    for tau, why, index, name in ((tau_high, tau_high_reason, adaptation, "adaptation_index"),
                                  (tau_low, tau_low_reason, recovery, "recovery_index")):
        still = ~(index > MIN_TAU_INDEX)
        tau[still] = np.nan
        why[still] = f"no adaptation to time ({name} not above {MIN_TAU_INDEX:g})"
    return {"time": np.arange(block), "high": high_trace, "low": low_trace, "early_high": early_high,
            "late_high": late_high, "early_low": early_low, "late_low": late_low,
            "adaptation_index": adaptation, "recovery_index": recovery, "reason": reason,
            "tau_high": tau_high, "tau_low": tau_low, "tau_high_reason": tau_high_reason,
            "tau_low_reason": tau_low_reason,
            "settings": {"early": list(early), "late": list(late), "replay": list(replay), "memory": memory,
                         "index_version": INDEX_VERSION, "tau_version": TAU_VERSION}}


FAST_ADAPTATION_SOURCE = ("torch-deep-retina torchdeepretina/retinal_phenomena.py (commit 00255c7, 'Fast Contrast "
                          "adaptation figure': normalize_filter, filter_and_nonlinearity, contrast_fig)")


def _rank_one(sta: np.ndarray, crop: int) -> Tuple[np.ndarray, np.ndarray]:
    """Best rank-1 (SVD) approximation of an STA ``(lags, 50, 50)`` within the ``crop``-px square around its
    largest entry (zero outside): ``(temporal (lags,), spatial (50, 50))`` with the spatial peak positive, so the
    temporal part carries the polarity (OFF cells: negative lobe first)."""
    _, y, x = np.unravel_index(np.argmax(np.abs(sta)), sta.shape)
    ys = slice(max(0, y - crop // 2), min(sta.shape[1], y - crop // 2 + crop))
    xs = slice(max(0, x - crop // 2), min(sta.shape[2], x - crop // 2 + crop))
    part = sta[:, ys, xs]
    u, s, vh = np.linalg.svd(part.reshape(len(sta), -1), full_matrices=False)
    temporal, spatial = u[:, 0] * s[0], np.zeros(sta.shape[1:])
    spatial[ys, xs] = vh[0].reshape(part.shape[1:])
    sign = np.sign(spatial.flat[np.argmax(np.abs(spatial))]) or 1.0
    return temporal * sign, spatial * sign


def _peak_latency(temporal: np.ndarray) -> float:
    """Frame of the filter's largest lobe (|value|), refined by a parabola through it and its neighbours."""
    a = np.abs(temporal)
    k = int(np.argmax(a))
    if 0 < k < len(a) - 1:
        denominator = a[k - 1] - 2 * a[k] + a[k + 1]
        if denominator < 0:
            return k + 0.5 * (a[k - 1] - a[k + 1]) / denominator
    return float(k)


def _binned_nonlinearity(drive: np.ndarray, rate: np.ndarray, edges: np.ndarray, min_count: int) -> np.ndarray:
    """Mean rate per bin of the filtered stimulus (NaN where a bin holds fewer than ``min_count`` frames)."""
    which = np.digitize(drive, edges) - 1
    inside = (which >= 0) & (which < len(edges) - 1)
    counts = np.bincount(which[inside], minlength=len(edges) - 1)
    sums = np.bincount(which[inside], rate[inside], minlength=len(edges) - 1)
    return np.where(counts >= min_count, sums / np.maximum(counts, 1), np.nan)


MIN_GAIN_CONTROL_FRAMES = 2800  # per contrast, after the settling frames
MAX_GAIN_RATIO = 0.9  # the call's gain criterion: high/low contrast gain below this
# The call's kinetics criterion: the peak must come this many frames earlier at high contrast. Measured on fixed LN
# cells, which cannot adapt (2026-12-03): 20 softplus(offset +/- 30 SLOW-filtered 6x6 patch mean) of
# tests/test_phenomena_gain_control.py, offsets 1, -1, -3, ON and OFF, seeds 0-12 (78 cells, default settings): peak
# shifts sd 0.061 frames, largest |shift| 0.184 (99th percentile 0.182); 0.25 is about 4 null sds. At frames=3000
# (the probe's least) the 67 resolved ones scatter with sd 0.092, -0.205 to 0.327: the margin is 2.7 null sds there.
MIN_PEAK_SHIFT_FRAMES = 0.25


def adaptation_call(gain_ratio, latency_shift, max_ratio: float = MAX_GAIN_RATIO,
                    min_shift: float = MIN_PEAK_SHIFT_FRAMES) -> np.ndarray:
    """``adapting`` per cell: the gain falls (``gain_ratio < max_ratio``) and the filter peaks more than
    ``min_shift`` frames earlier at high contrast (``latency_shift < -min_shift``). False where either is NaN."""
    return (np.asarray(gain_ratio) < max_ratio) & (np.asarray(latency_shift) < -min_shift)


MAX_GAIN_CONTROL_LAGS = 100  # 1 s, 2.5 times the models' window: the STA's weights are cells x lags x frames floats

#: How rarely noise unrelated to a cell's rates reaches :func:`sta_noise_reach`: in 1 run of 1000.
STA_NOISE_REACH_LEVEL = 0.999


def sta_noise_reach(n_lags: int, checker: int, level: float = STA_NOISE_REACH_LEVEL) -> float:
    """The largest |entry|, in null sds, that the STA of rates unrelated to the movie reaches in a fraction ``1 -
    level`` of runs: the ``level`` quantile of the largest of ``n_lags`` x (checkers per frame) independent standard
    normal entries (``checker`` px squares of a 50 px frame; 0, full-field flicker: one per lag). 5.49 null sds at
    :func:`contrast_gain_control`'s defaults (25,000 entries); their median, 4.19, is what the embedded circuit's
    rates measured against 5 independent noise seeds (median 4.09, largest 5.14 of 120: docs/retina.md, "Why the
    ground truth reads 'STA not resolved'"). An unresolved STA peaking beyond it is a filter too weak for the run,
    which more frames resolve (there: the three cells between it and ``resolve_sd`` at 7800 frames resolved at
    19,800); one within it is not told from noise."""
    from scipy.stats import norm

    per_frame = 1 if checker == 0 else (-(-stimuli.FRAME_SIZE // checker)) ** 2
    return float(norm.isf(-np.expm1(np.log(level) / (n_lags * per_frame)) / 2))


def check_gain_control_settings(low, high, frames, checker, seed, settle, n_lags, crop, resolve_sd, window_sd, n_bins,
                                min_count, max_ratio, min_shift) -> None:
    """:func:`contrast_gain_control`'s settings, else a ``SpecError`` naming the first out of range. Unchecked, a
    fractional, NaN or string count failed inside numpy or torch (``arange: cannot compute length``, ``'float' object
    cannot be interpreted as an integer``), a negative ``checker`` or ``seed`` in numpy's words, ``frames=10**7`` was
    a MemoryError for 23 GiB (``n_lags`` near ``frames`` one for terabytes, ``n_bins=10**9`` one for gigabytes), and
    some gave a number silently: ``min_count=0`` read an empty bin as a rate of 0, a NaN ``resolve_sd`` resolved every
    STA, a NaN ``max_ratio`` or ``min_shift`` called no cell adapting, an infinite contrast gave every cell NaN."""
    check_settings("contrast_gain_control", frames={"frames": frames, "n_lags": n_lags, "crop": crop,
                                                    "min_count": min_count},
                   positive={"low": low, "high": high, "window_sd": window_sd, "max_ratio": max_ratio})
    for name, value, least in (("checker", checker, 0), ("seed", seed, 0), ("settle", settle, 0), ("n_bins", n_bins, 3)):
        check_integer(value, f"contrast_gain_control: {name}", least=least, error=SpecError)
    for name, value in (("resolve_sd", resolve_sd), ("min_shift", min_shift)):
        check_number(value, f"contrast_gain_control: {name}", least=0, error=SpecError)
    if not low < high:
        raise SpecError(f"contrast_gain_control: need 0 < low < high (white-noise sds); got low={low:g}, high={high:g}")
    if n_lags > MAX_GAIN_CONTROL_LAGS:
        raise SpecError(f"contrast_gain_control: n_lags={n_lags}: at most {MAX_GAIN_CONTROL_LAGS} frames of STA (its "
                        "weights are cells x lags x frames floats)")
    check_movie("contrast_gain_control", frames)
    # shorter runs read a fixed cell as adapting: an LN cell with a 1-px spot measured a gain ratio of 0.58 at 1500
    # frames and 0.99 at 3000 (the low-contrast STA is noisy and its nonlinearity's slope comes out too steep)
    analysed = frames - max(settle, n_lags - 1)
    if analysed < MIN_GAIN_CONTROL_FRAMES:
        raise SpecError(f"contrast_gain_control: frames={frames} leaves {analysed} frames after "
                        f"settle={settle}; need at least {MIN_GAIN_CONTROL_FRAMES} for an STA at low contrast")
    if min_count * 3 > analysed:  # the fewest bins (3) must fit: "at most 0 bins" named the wrong setting
        raise SpecError(f"contrast_gain_control: min_count={min_count}: the {analysed} frames analysed hold fewer than "
                        f"the 3 bins the nonlinearity needs at {min_count} frames each; at most {analysed // 3}")
    if n_bins > analysed // min_count:
        raise SpecError(f"contrast_gain_control: n_bins={n_bins}: at most {analysed // min_count} bins of "
                        f"min_count={min_count} frames each in the {analysed} frames analysed")


def contrast_gain_control(system, low: float = 0.3, high: float = 1.0, frames: int = 8000, checker: int = 2,
                          seed: int = 0, settle: int = 200, n_lags: int = 40, crop: int = 15, resolve_sd: float = 6.0,
                          window_sd: float = 2.0, n_bins: int = 12, min_count: int = 20,
                          max_ratio: float = MAX_GAIN_RATIO,
                          min_shift: float = MIN_PEAK_SHIFT_FRAMES) -> Dict[str, np.ndarray]:
    """Fast contrast adaptation as an LN model at two contrasts (Baccus & Meister 2002; the deep-retina models'
    figure, McIntosh et al. 2016): at high contrast the filter's gain falls and its kinetics speed up.

    Follows ``FAST_ADAPTATION_SOURCE``: per contrast, white noise of sd ``low`` / ``high`` (one ``seed``: the same
    sample scaled), the STA, the filter normalised so that the filtered stimulus has the stimulus's sd (the
    original's ``normalize_filter``, target ``0.35 * contrast`` in its units): the normalised filters then have one
    norm, so the gain is the slope of the nonlinearity fitted to the rate against the filtered stimulus (the
    original fits ``pyret.nonlinearities.Binterp(80)``: 80 equal-count bins per contrast, interpolated (pyret at
    df03391, nonlinearities.py ``Binterp.fit`` lines 132-143: ``binsize = x.size / nbins`` line 133, the mean output
    per bin lines 138-139, ``interp1d`` line 142); here fixed
    bins shared by the two contrasts, so both nonlinearities are compared at the same inputs), and the kinetics are the rank-1 temporal
    component's (the original's ``pyret.filtertools.decompose``). Deviations, for any system rather than a
    differentiable model: the STA is reverse correlation of the rates (``retina.fit.spike_triggered_average``,
    as ``pyret.filtertools.revcorr``), not the mean gradient of the model output; the filtered stimulus uses the
    rank-1 filter within the ``crop``-px square (the BN-CNN's first-layer kernel size) around the STA's largest
    entry (the full 40 x 50 x 50 STA of a finite run is mostly estimation noise); a new noise frame every
    frame (the original holds each for 3 frames); frames before ``settle`` (the system adapting to the run's
    contrast) are left out.

    Gain: both nonlinearities are binned on the same ``n_bins`` edges, ``window_sd`` low-contrast sds either side
    of 0 (inside both runs' ranges), and a line is fitted to each; ``gain_low`` / ``gain_high`` are the slopes
    (spikes/s per unit of the normalised filter's output), ``gain_ratio = gain_high / gain_low``. A fixed LN cell
    has one nonlinearity at both contrasts: ratio 1 (within 0.05 on the tests' cell); a cell with divisive gain
    control ~ the ratio of its effective filter gains. ``latency_low`` / ``latency_high``: frames to the rank-1
    temporal filter's largest lobe (sub-frame, parabolic). ``adapting`` (:func:`adaptation_call`): ``gain_ratio < max_ratio``
    and a peak more than ``min_shift`` frames earlier at high contrast (beyond the estimation noise of fixed LN
    cells: ``MIN_PEAK_SHIFT_FRAMES``).

    Per cell NaN with ``reason`` where nothing is resolved: ``no response`` (rates constant over the run, up to
    rounding: a range not above :data:`ROUNDING_FLOOR` times the largest rate, :func:`above_rounding`; a float32
    linear cell moved by 3e-7 of its rate, its rates a few float32 steps apart, had been called adapting, gain ratio
    -2.0, with a floor of 1e-9 of the rate),
    ``STA not resolved`` (no STA entry above ``resolve_sd`` times its null sd, ``contrast * sqrt(sum (r - mean r)^2)
    / sum r``: the sd of the STA of noise unrelated to the rates; ``sta_peak_low`` / ``sta_peak_high``: each cell's
    largest |entry| in null sds, NaN without a response, beside ``resolve_sd`` and ``sta_noise_reach``, what noise
    unrelated to the rates reaches, :func:`sta_noise_reach`; ``sta_unresolved``: per cell the contrast, ``"low"`` or
    ``"high"``, whose STA this reason names, else None), ``nonlinearity not resolved``
    (fewer than 3 shared bins, or no slope at low contrast: the fitted line's rise over the shared bins not above
    :data:`ROUNDING_FLOOR` times the low-contrast run's largest rate). Every floor is relative to the cell's rates, so
    a cell's numbers do not depend on their scale: the absolute floors of 1e-9 spikes/s on the rates' range and on
    ``gain_low`` had called a cell at rates below 1e-9 spikes/s unresponsive or flat, whatever its response."""
    import torch

    from neurozoo.retina.fit import spike_triggered_average

    check_gain_control_settings(low, high, frames, checker, seed, settle, n_lags, crop, resolve_sd, window_sd, n_bins,
                                min_count, max_ratio, min_shift)
    respond = as_responder(system, protocol="contrast_gain_control")
    targets = np.arange(max(settle, n_lags - 1), frames)
    runs = {}
    for name, contrast in (("low", low), ("high", high)):
        movie = stimuli.white_noise(frames, contrast, checker, seed)
        rates = respond(movie, probe=f"white noise of sd {contrast:g} ({name} contrast)")
        sta = spike_triggered_average(torch.from_numpy(movie), torch.from_numpy(rates.astype(np.float32)), targets,
                                      n_lags).numpy()[:, ::-1]  # lag 0 (the current frame) first
        # minus each lag's own window mean rather than the whole movie's (their difference, the same at every lag,
        # would be the STA's first singular vector): the STA of the rates' fluctuations, sum (r - mean r) s / sum r
        summed = np.concatenate([np.zeros((1,) + movie.shape[1:]), np.cumsum(movie, 0, dtype=np.float64)])
        lags = np.arange(n_lags)[:, None, None]
        window_mean = (summed[targets[-1] + 1 - lags[:, 0, 0]] - summed[targets[0] - lags[:, 0, 0]]) / len(targets)
        sta = sta + (movie.mean(0, dtype=np.float64) - window_mean)[None]
        runs[name] = (contrast, movie, rates, sta)
    n_cells = len(runs["low"][2])
    out = {f"{key}_{name}": np.full(n_cells, np.nan) for key in ("gain", "latency") for name in runs}
    out.update({f"temporal_{name}": np.full((n_cells, n_lags), np.nan) for name in runs})
    out.update({f"spatial_{name}": np.full((n_cells,) + runs["low"][1].shape[1:], np.nan) for name in runs})
    edges = np.linspace(-window_sd * low, window_sd * low, n_bins + 1)
    out.update({f"nonlinearity_{name}": np.full((n_cells, n_bins), np.nan) for name in runs})
    out.update({f"sta_peak_{name}": np.full(n_cells, np.nan) for name in runs})
    reason = np.full(n_cells, "", dtype=object)
    sta_unresolved = np.full(n_cells, None, dtype=object)  # the contrast whose unresolved STA is the cell's reason
    for i in range(n_cells):
        for name, (contrast, movie, rates, sta) in runs.items():
            r = rates[i, targets]
            if not above_rounding(np.ptp(r), np.abs(r).max()):  # constant up to rounding (or silent): no response
                reason[i] = reason[i] or f"no response ({name} contrast)"
                continue
            null_sd = contrast * np.sqrt(((r - r.mean()) ** 2).sum()) / abs(r.sum())
            out[f"sta_peak_{name}"][i] = np.abs(sta[i]).max() / null_sd
            if np.abs(sta[i]).max() < resolve_sd * null_sd:
                if not reason[i]:
                    reason[i] = f"STA not resolved ({name} contrast: peak {np.abs(sta[i]).max() / null_sd:.1f} null sd)"
                    sta_unresolved[i] = name
                continue
            temporal, spatial = _rank_one(sta[i], crop)
            drive = signal.lfilter(temporal, 1.0, movie.reshape(len(movie), -1) @ spatial.ravel())[targets]
            theta = contrast / drive.std()
            out[f"temporal_{name}"][i], out[f"spatial_{name}"][i] = theta * temporal, spatial
            out[f"latency_{name}"][i] = _peak_latency(temporal)
            out[f"nonlinearity_{name}"][i] = _binned_nonlinearity(theta * drive, r, edges, min_count)
        if reason[i]:
            out["latency_low"][i] = out["latency_high"][i] = np.nan
            continue
        centres = (edges[:-1] + edges[1:]) / 2
        shared = np.isfinite(out["nonlinearity_low"][i]) & np.isfinite(out["nonlinearity_high"][i])
        if shared.sum() < 3:
            reason[i] = f"nonlinearity not resolved ({shared.sum()} shared bins)"
            continue
        for name in runs:
            out[f"gain_{name}"][i] = np.polyfit(centres[shared], out[f"nonlinearity_{name}"][i][shared], 1)[0]
        # the low-contrast line's rise over the shared bins, at rounding level of the run's largest rate: flat
        low_rates = runs["low"][2][i, targets]
        if not above_rounding(abs(out["gain_low"][i]) * np.ptp(centres[shared]), np.abs(low_rates).max()):
            reason[i] = "nonlinearity not resolved (flat at low contrast)"
            out["gain_low"][i] = out["gain_high"][i] = np.nan
    out["gain_ratio"] = out["gain_high"] / out["gain_low"]
    out["latency_shift"] = out["latency_high"] - out["latency_low"]
    out["adapting"] = adaptation_call(out["gain_ratio"], out["latency_shift"], max_ratio, min_shift)
    out["reason"], out["sta_unresolved"] = reason, sta_unresolved
    out["resolve_sd"], out["sta_noise_reach"] = float(resolve_sd), sta_noise_reach(n_lags, checker)
    out["nonlinearity_x"] = (edges[:-1] + edges[1:]) / 2
    out["contrasts"] = np.array([low, high])
    return out


def object_motion_sensitivity(system, centres: Optional[np.ndarray] = None, n_frames: int = 1000, radius: float = 12.0,
                              bar_width: int = 4, contrast: float = 0.3, speed: float = 1.0, smoothness: float = 20.0,
                              seed: int = 0, settle: int = 100, min_response: float = 0.1,
                              balanced: bool = False) -> Dict[str, np.ndarray]:
    """Object-motion sensitivity (Olveczky, Baccus & Meister 2003): the response to an object jittering
    differently from its background vs the response to the whole scene jittering together.

    ``centres``: the object's centre (y, x) px per cell, ``(cells, 2)`` (as in the experiments, centred on each
    cell's receptive field; each distinct centre is one stimulus run); None: one object at the frame centre.
    Responses are mean rates after ``settle`` frames minus the rate to a grey screen (``baseline``), per
    condition (``global``, ``differential``, ``object``: background still; see :func:`stimuli.object_motion`).
    ``oms_index = (differential - global) / (|differential| + |global|)``: > 0 when global motion is suppressed
    relative to differential motion (wide-field inhibition), ~0 without a surround; NaN, with ``reason`` per cell
    (else ""), where ``|differential| + |global| < min_response`` spikes/s or is at rounding level (not above
    :data:`ROUNDING_FLOOR` times the cell's largest rate: :func:`above_rounding`): no motion response to compare.
    With ``min_response`` 0 a float32 cell whose responses were a few eps of its rate (its rate modulated by 8e-8
    of itself) had been given an index of 1.0, a quotient of rounding.

    ``balanced``: each condition's response is the mean over four movies, both jitter paths in each role
    (``swap_paths``) and the background's grating and its contrast inverse (``background_sign``). Differential minus
    global then holds neither the two paths' different motion energy (the unbalanced index follows the jitter seed)
    nor the correlation of a linear centre's and surround's drives under coherent motion, whose sign the inverse
    grating flips (a static nonlinearity turned it into an index: docs/retina.md, "OMS"); a pool of rectified
    subunits, which answers either polarity alike, keeps its coherence-specific suppression."""
    return object_motion_sensitivities({"system": system}, centres, n_frames, radius, bar_width, contrast, speed,
                                       smoothness, seed, settle, min_response, balanced)["system"]


def object_motion_sensitivities(systems: Mapping[str, object], centres: Optional[np.ndarray] = None,
                                n_frames: int = 1000, radius: float = 12.0, bar_width: int = 4, contrast: float = 0.3,
                                speed: float = 1.0, smoothness: float = 20.0, seed: int = 0, settle: int = 100,
                                min_response: float = 0.1, balanced: bool = False) -> Dict[str, Dict[str, np.ndarray]]:
    """:func:`object_motion_sensitivity` of each of ``systems`` (name -> system), by name: each movie is made once and
    shown to every system (``zoo probe oms``'s model and ground truth, a test's many systems) rather than remade per
    system, one movie held at a time; each system's numbers are those it gets alone. ``centres`` (given) is every
    system's, which must each have as many cells."""
    check_settings("object_motion_sensitivity", frames={"n_frames": n_frames, "bar_width": bar_width},
                   contrasts={"contrast": contrast}, positive={"speed": speed, "smoothness": smoothness})
    if check_integer(settle, "object_motion_sensitivity: settle", least=0, error=SpecError) >= n_frames:
        # n_frames=0 (or settle past it) averaged no frame: NaN without a word
        raise SpecError(f"object_motion_sensitivity: settle={settle}, n_frames={n_frames}: expected settle < n_frames "
                        "(the response is the mean after the settle frames)")
    check_movie("object_motion_sensitivity", n_frames)
    conditions = ("global", "differential", "object")
    probed = {}  # name -> (respond, baseline, size, centres, which unique centre each cell's is, responses)
    unique = np.empty((0, 2))
    for name, system in systems.items():
        respond = as_responder(system, protocol="object_motion_sensitivity")
        grey = respond(np.zeros((settle + 100, stimuli.FRAME_SIZE, stimuli.FRAME_SIZE), np.float32),
                       probe="a grey screen (the baseline)")[:, settle:]
        baseline, size = grey.mean(1), np.abs(grey).max(1)  # size: each cell's largest rate (above_rounding)
        n_cells = len(baseline)
        at = np.full((n_cells, 2), stimuli.FRAME_SIZE / 2) if centres is None else np.asarray(centres, float)
        if at.shape != (n_cells, 2):
            raise SpecError(f"object_motion_sensitivity: centres must have shape ({n_cells}, 2) (y, x per cell); "
                            f"got {at.shape}")
        unique, which = np.unique(at, axis=0, return_inverse=True)  # one centre, or the given ones: every system's
        probed[name] = (respond, baseline, size, at, which.ravel(), {c: np.empty(n_cells) for c in conditions})
    variants = [(swap, sign) for swap in (False, True) for sign in (1.0, -1.0)] if balanced else [(False, 1.0)]
    for k, centre in enumerate(unique):
        for condition in conditions:
            means = {name: 0.0 for name in probed}
            for swap, sign in variants:
                movie = stimuli.object_motion(condition, n_frames, tuple(centre), radius, bar_width, contrast, speed,
                                              smoothness, seed, swap_paths=swap, background_sign=sign)
                variant = f"{', paths swapped' if swap else ''}{', background inverted' if sign < 0 else ''}"
                probe = f"{condition} motion centred at (y, x) = ({centre[0]:g}, {centre[1]:g}){variant}"
                for name, (respond, _, size, _, which, _) in probed.items():
                    cells = np.flatnonzero(which == k)
                    rates = respond(movie, probe=probe)
                    means[name] = means[name] + rates[cells, settle:].mean(1) / len(variants)
                    size[cells] = np.maximum(size[cells], np.abs(rates[cells, settle:]).max(1))
            for name, (_, baseline, _, _, which, responses) in probed.items():
                cells = np.flatnonzero(which == k)
                responses[condition][cells] = means[name] - baseline[cells]
    return {name: _oms_result(baseline, size, at, responses, min_response)
            for name, (_, baseline, size, at, _, responses) in probed.items()}


def _oms_result(baseline, size, centres, responses, min_response: float) -> Dict[str, np.ndarray]:
    """One system's :func:`object_motion_sensitivity` from its baseline, largest rates and responses per condition."""
    motion = np.abs(responses["differential"]) + np.abs(responses["global"])
    reason = np.full(len(baseline), "", dtype=object)
    reason[~above_rounding(motion, size)] = "no motion response (|differential| + |global| at rounding level)"
    reason[~(motion >= min_response)] = ("no motion response (|differential| + |global| below "
                                         f"min_response={min_response:g})")
    return {"baseline": baseline, **responses, "centres": centres, "reason": reason,
            "oms_index": np.where(reason == "", _index(responses["differential"], responses["global"]), np.nan)}


def tau_summary(tau_high, adaptation_index) -> str:
    """The median time constant of the adapting cells (index above :data:`MIN_TAU_INDEX`), in ms, over those whose
    decay is resolved (a ``tau_high``), and how many they are. An adapting cell can have none (the exponential's
    time constant at its grid's end: the ground truth's cell11, index 0.27), which the count of cells with a tau
    alone had left out of the adapting cells."""
    tau = np.asarray(tau_high, float)
    adapting = int((np.nan_to_num(np.asarray(adaptation_index, float), nan=0.0) > MIN_TAU_INDEX).sum())
    resolved = int(np.isfinite(tau).sum())
    if not adapting:
        return f"tau: no adapting cell of {len(tau)}"
    if not resolved:
        return f"tau: no decay resolved in the {adapting}/{len(tau)} adapting cells"
    if resolved == adapting:
        return f"tau {10 * nanmedian(tau):.0f} ms (median of {adapting}/{len(tau)} adapting cells)"
    return (f"tau {10 * nanmedian(tau):.0f} ms (median of {resolved} of the {adapting}/{len(tau)} adapting cells; "
            f"{adapting - resolved} without a resolved decay)")


def adaptation_figure(results: Dict[str, Dict], title: str = "", smooth: int = 10):
    """Rate after the switch to high contrast (solid) and back to low (dotted), averaged over cycles and smoothed
    over ``smooth`` frames for display, one colour per cell, one panel per system (e.g. model and ground truth)."""
    from neurozoo.retina.phenomena.figures import legend_below, panels

    figure, axes = panels(len(results), height=4.4)
    for ax, (name, result) in zip(axes, results.items()):
        t = result["time"] * 10
        for i, (high, low) in enumerate(zip(result["high"], result["low"])):
            high, low = (ndimage.uniform_filter1d(trace, smooth, mode="nearest") for trace in (high, low))
            line, = ax.plot(t, high, lw=0.8, label=f"{cell_name(i)}: index {result['adaptation_index'][i]:.2f}")
            ax.plot(t, low, ":", lw=0.8, color=line.get_color())
        ax.plot([], [], "k-", lw=0.8, label="after switch to high")
        ax.plot([], [], "k:", lw=0.8, label="after switch to low")
        ax.set_title(f"{name}: median index {nanmedian(result['adaptation_index']):.2f}\n"
                     f"{tau_summary(result['tau_high'], result['adaptation_index'])}", fontsize=9)
        ax.set_xlabel("time after contrast switch (ms)")
        legend_below(ax)
    axes[0].set_ylabel("rate (spikes/s)")
    if title:
        figure.suptitle(title)
    return figure


def plot_adaptation(results: Dict[str, Dict], path, title: str = "", smooth: int = 10):
    """``adaptation_figure`` saved as PNG."""
    from neurozoo.datasets.figures import save_figure

    return save_figure(adaptation_figure(results, title, smooth), path)


def oms_figure(results: Dict[str, Dict], title: str = ""):
    """Per-cell responses (rate above grey) to global, differential and object-only motion, one panel per
    system."""
    from neurozoo.retina.phenomena.figures import index_ticks, legend_below, panels

    figure, axes = panels(len(results), height=3.6)
    for ax, (name, result) in zip(axes, results.items()):
        cells = np.arange(1, len(result["oms_index"]) + 1)  # numbered as the tables name them: cell01 is 1
        for k, condition in enumerate(("global", "differential", "object")):
            ax.bar(cells + (k - 1) * 0.27, result[condition], width=0.27, label=f"{condition} motion")
        ax.axhline(0, color="0.4", lw=0.6)
        ax.set_title(f"{name}: median OMS index {nanmedian(result['oms_index']):.2f}", fontsize=9)
        ax.set_xlabel("cell")
        ax.set_xticks(index_ticks(1, len(cells)))
        legend_below(ax, fontsize=7)
    axes[0].set_ylabel("response above grey (spikes/s)")
    if title:
        figure.suptitle(title)
    return figure


def plot_oms(results: Dict[str, Dict], path, title: str = ""):
    """``oms_figure`` saved as PNG."""
    from neurozoo.datasets.figures import save_figure

    return save_figure(oms_figure(results, title), path)


def gain_control_figure(results: Dict[str, Dict], title: str = ""):
    """Per cell (rows) and system (model beside ground truth): the rank-1 temporal filters at low and high contrast
    (each times its spatial part's norm, so they keep the one norm :func:`contrast_gain_control` gives them, then
    scaled so the low-contrast peak is 1) and the two nonlinearities, rate against the filtered stimulus in units
    of the low contrast's sd. A cell with nothing resolved shows its reason instead."""
    from matplotlib.figure import Figure

    n_cells = max(len(result["gain_ratio"]) for result in results.values())
    figure = Figure(figsize=(3.3 * 2 * len(results), 2.1 * n_cells + 0.8), layout="constrained")
    axes = figure.subplots(n_cells, 2 * len(results), squeeze=False)
    for k, (name, result) in enumerate(results.items()):
        low, high = result["contrasts"]
        lags_ms = 10 * np.arange(result["temporal_low"].shape[1])
        x_sd = result["nonlinearity_x"] / low
        for i in range(n_cells):
            filters, curves = axes[i, 2 * k], axes[i, 2 * k + 1]
            for ax in (filters, curves):
                ax.tick_params(labelsize=7)
            filters.set_ylabel("filter (low peak = 1)", fontsize=8)
            curves.set_ylabel("rate (spikes/s)", fontsize=8)
            if i >= len(result["gain_ratio"]) or np.isnan(result["gain_ratio"][i]):
                reason = result["reason"][i] if i < len(result["gain_ratio"]) else "no such cell"
                filters.set_title(f"{name}, {cell_name(i)}", fontsize=8)
                for ax in (filters, curves):
                    ax.set(xticks=[], yticks=[], ylabel="")
                    ax.text(0.5, 0.5, reason or "not resolved", ha="center", va="center", fontsize=7,
                            transform=ax.transAxes, wrap=True)
                continue
            scale = {c: result[f"temporal_{c}"][i] * np.linalg.norm(result[f"spatial_{c}"][i]) for c in ("low", "high")}
            peak = np.abs(scale["low"]).max()
            for c, contrast, style in (("low", low, "-"), ("high", high, "--")):
                filters.plot(lags_ms, scale[c] / peak, style, lw=1, label=f"{c} contrast (sd {contrast:g})")
                curves.plot(x_sd, result[f"nonlinearity_{c}"][i], style + "o", ms=2.5, lw=1,
                            label=f"{c} contrast (sd {contrast:g})")
            filters.axhline(0, color="0.6", lw=0.5)
            filters.set_title(f"{name}, {cell_name(i)}: peak {10 * result['latency_low'][i]:.0f} -> "
                              f"{10 * result['latency_high'][i]:.0f} ms", fontsize=8)
            curves.set_title(f"gain ratio {result['gain_ratio'][i]:.2f}"
                             f"{' (adapting)' if result['adapting'][i] else ''}", fontsize=8)
        axes[-1, 2 * k].set_xlabel("time before spike (ms)", fontsize=8)
        axes[-1, 2 * k + 1].set_xlabel("filtered stimulus (low-contrast sd)", fontsize=8)
    handles = next((ax.get_legend_handles_labels() for ax in axes.flat if ax.get_lines()), None)
    if handles:  # one legend for every panel, under the figure: never over a filter or a nonlinearity
        figure.legend(*handles, loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    if title:
        figure.suptitle(title)
    return figure


def plot_gain_control(results: Dict[str, Dict], path, title: str = ""):
    """``gain_control_figure`` saved as PNG."""
    from neurozoo.datasets.figures import save_figure

    return save_figure(gain_control_figure(results, title), path)


def compare_indices(model: np.ndarray, truth: np.ndarray) -> Dict:
    """Cell-by-cell agreement of a model's index with the ground truth's (the fitted model's cells are the
    circuit's): Pearson r across cells, mean absolute difference, and the fraction of cells with the same sign
    (:func:`has_truths_sign`), each over the cells where both indices are defined: ``n_compared`` of ``n_cells``, and
    ``n_same_sign`` of them (a fraction of 1 over 1 cell of 6 had been printed as "same sign in 100%"). The r takes an
    index within :data:`ROUNDING_FLOOR` of 0 as 0, so indices that are all rounding give none (NaN): a BN-CNN's twelve
    contrast-adaptation indices, all below 3e-8, had read r 0.45 with the truth's, a correlation blind to their
    scale."""
    model, truth = np.asarray(model, float), np.asarray(truth, float)
    ok = np.isfinite(model) & np.isfinite(truth)
    with np.errstate(invalid="ignore"):
        m, t = (np.where(np.abs(x[ok]) > ROUNDING_FLOOR, x[ok], 0.0) for x in (model, truth))
    defined = ok.sum() > 2 and m.std() > 0 and t.std() > 0
    r = float(np.corrcoef(m, t)[0, 1]) if defined else float("nan")
    same = has_truths_sign(model[ok], truth[ok])
    return {"pearson_r": r, "mean_abs_difference": float(np.abs(model[ok] - truth[ok]).mean()) if ok.any() else float("nan"),
            "same_sign": float(same.mean()) if ok.any() else float("nan"), "n_same_sign": int(same.sum()),
            "n_compared": int(ok.sum()), "n_cells": len(ok)}


def has_truths_sign(model, truth) -> np.ndarray:
    """Per cell: the model's index is finite, beyond :data:`ROUNDING_FLOOR` from 0, and of the truth's sign. An index
    within the floor has no sign: a model without memory answered the second flash as the first up to float32
    rounding, and the sign of its 1e-8 matched the truth's in most cells (``retina_embedded.paired-flash``'s raw 0.83
    for the BN-CNN, its score ~0)."""
    model, truth = np.asarray(model, float), np.asarray(truth, float)
    with np.errstate(invalid="ignore"):
        return np.isfinite(model) & (np.abs(model) > ROUNDING_FLOOR) & (np.sign(model) == np.sign(truth))
