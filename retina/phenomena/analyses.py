"""Analyses of classic retinal phenomena. Each takes a system (see :func:`as_responder`) and returns a dict of
per-cell numpy arrays (first axis = cell). Times are in frames (10 ms)."""
from __future__ import annotations

import numbers
from typing import Dict, Sequence

import numpy as np

from neurozoo.datasets.errors import SpecError, check_integer, check_number
from neurozoo.datasets import retina_stimuli as stimuli
from neurozoo.retina.phenomena.responder import as_responder
from neurozoo.retina.phenomena.rounding import above_rounding


def check_settings(analysis: str, frames: Dict[str, int] = {}, contrasts: Dict[str, float] = {},
                   positive: Dict[str, float] = {}) -> None:
    """``SpecError`` naming the analysis and its first setting out of range: ``frames`` whole numbers of frames >= 1,
    ``contrasts`` finite and non-zero (a flash or step of 0 is none), ``positive`` finite and > 0 (a speed, a
    width). They failed deep inside numpy (a TypeError on a slice of 2.5 frames, a reduction of an empty window, a
    division by a speed of 0), ran on NaN, or measured nothing (a window of 0 frames, a baseline of none)."""
    for name, value in frames.items():
        check_integer(value, f"{analysis}: {name}", least=1, error=SpecError)
    for name, value in contrasts.items():
        if check_number(value, f"{analysis}: {name}", error=SpecError) == 0:
            raise SpecError(f"{analysis}: {name}: expected a non-zero contrast (0 is no stimulus), got {value!r}")
    for name, value in positive.items():
        check_number(value, f"{analysis}: {name}", above=0, error=SpecError)


def check_movie(analysis: str, n_frames: int) -> None:
    """``SpecError`` for a movie longer than :data:`stimuli.MAX_FRAMES` (a MemoryError for terabytes before)."""
    if n_frames > stimuli.MAX_FRAMES:
        raise SpecError(f"{analysis}: its movie would be {n_frames} frames; at most {stimuli.MAX_FRAMES} (check the "
                        "lengths given)")


def peak_latency(trace: np.ndarray, onset: int, window: int) -> np.ndarray:
    """Frames from ``onset`` to the maximum of ``trace[..., onset:onset + window]`` (per row)."""
    return np.argmax(trace[..., onset:onset + window], axis=-1)


def _baseline(rates, onset, n=20):
    return rates[:, max(0, onset - n):onset].mean(1)


def _centroid_time(trace: np.ndarray, lo: int, hi: int, size, baseline: float = None) -> np.ndarray:
    """Time of a response peak, robust to plateaus: mean time of the samples above half the window's maximum
    (floor = the window's minimum), per row. NaN for a row without a response: a flat window, or (``baseline``
    given: the trace's level with no response, e.g. 0 for a trace minus its baseline) a window that never rises
    above ``baseline``. Such a row had been given the window's middle, a made-up latency (a silent cell then
    showed an OSR slope of 0.50 with R^2 1.00). "Flat" and "never rises" are relative to ``size`` (per row: the
    largest rate the trace was computed from): not above :data:`retina.phenomena.rounding.ROUNDING_FLOOR` times it
    (``above_rounding``), where a float32 cell's response may be rounding alone. ``size`` is required: the absolute
    floor of 1e-12 spikes/s kept beside it had left a real response of a cell at rates below 1e-6 spikes/s untimed
    (OSR call version 5)."""
    part = trace[:, lo:hi]
    floor = part.min(1, keepdims=True)
    peak = part.max(1, keepdims=True)
    height = peak - floor
    size = np.asarray(size, float)[:, None]
    silent = ~above_rounding(height, size)[:, 0]
    if baseline is not None:
        silent |= ~above_rounding(peak - baseline, size)[:, 0]
    weights = np.where(part - floor >= 0.5 * height, part - floor, 0.0)
    weights[silent] = 1.0
    times = lo + (weights * np.arange(part.shape[1])).sum(1) / weights.sum(1)
    return np.where(silent, np.nan, times)


def step_response(system, intensity: float = 1.0, pre: int = 60, duration: int = 100, post: int = 100,
                  window: int = 50) -> Dict[str, np.ndarray]:
    """Full-field step: onset/offset peak latencies and amplitudes, sustained level and transience index ``(peak -
    sustained) / (peak - baseline)`` (1: fully transient, 0: sustained). A latency (and the transience, with the
    onset's) is NaN where its window never rises above the pre-step baseline by more than
    :data:`retina.phenomena.rounding.ROUNDING_FLOOR` times the cell's largest rate (``above_rounding``: a float32
    cell's rounding had been timed, and a real response below 1e-9 spikes/s not; the floor was 1e-9 spikes/s).
    ``window`` at most ``duration`` and ``post`` (the onset's window ran into the offset response), ``duration`` at
    least 20 frames (the sustained level is the step's last 20)."""
    check_settings("step_response", frames={"pre": pre, "duration": duration, "post": post, "window": window},
                   contrasts={"intensity": intensity})
    if duration < 20 or window > min(duration, post):
        raise SpecError(f"step_response: duration={duration}, post={post}, window={window}: expected duration >= 20 "
                        "(the sustained level is its last 20 frames) and window <= duration and post")
    check_movie("step_response", pre + duration + post)
    rates = as_responder(system, protocol="step_response")(stimuli.step(intensity, pre, duration, post),
                                                            probe=f"a step of intensity {intensity:g}")
    baseline = _baseline(rates, pre)
    on = rates[:, pre:pre + window]
    off = rates[:, pre + duration:pre + duration + window]
    sustained = rates[:, pre + duration - 20:pre + duration].mean(1)
    peak = on.max(1)
    gain = peak - baseline
    # a window that never rises above the baseline (or by rounding alone) has no peak to time (argmax would say 0)
    size = np.abs(rates).max(1)
    rises, falls_back = above_rounding(gain, size), above_rounding(off.max(1) - baseline, size)
    return {"rates": rates, "baseline": baseline, "on_peak": peak, "on_latency": np.where(rises, on.argmax(1), np.nan),
            "off_peak": off.max(1), "off_latency": np.where(falls_back, off.argmax(1), np.nan), "sustained": sustained,
            "transience": np.where(rises, (peak - sustained) / np.where(rises, gain, 1.0), np.nan)}


def paired_flash(system, gaps: Sequence[int] = (4, 8, 16, 32, 64), flash_frames: int = 2, intensity: float = -2.0,
                 window: int = 25, pre: int = 60, min_response: float = 1.0) -> Dict[str, np.ndarray]:
    """Recovery of the response to a second flash: the second response is isolated as
    ``R(pair) - R(first flash alone)`` and its amplitude (max |deviation|) divided by the single flash's.
    A linear system gives exactly 1 at every gap; depression gives < 1 recovering with the gap.

    ``driven``: the flash excites the cell (its largest deviation from baseline is a rise of at least
    ``min_response``, in the rates' units). Elsewhere ``recovery`` is NaN: a cell the flash silences has a first
    response bounded by its baseline (rates cannot fall below 0), and the ratio measured whatever the second flash
    changed instead (the circuit's ON cells gave 4-61). Nor is a rise at rounding level driven (not above
    :data:`retina.phenomena.rounding.ROUNDING_FLOOR` times the cell's largest rate: ``above_rounding``): with
    ``min_response`` 0 a cell that does not answer the flash at all had been driven by its rounding (a rise of
    1.8e-15 on a rate of 10.1) and given a recovery of 0, a depression of 1."""
    check_settings("paired_flash", frames={"flash_frames": flash_frames, "window": window, "pre": pre},
                   contrasts={"intensity": intensity})
    gaps = np.asarray(gaps)
    if gaps.ndim != 1 or not len(gaps) or not all(isinstance(gap, numbers.Integral) and gap >= 1 for gap in gaps.tolist()):
        raise SpecError(f"paired_flash: gaps: expected whole frames >= 1 between the flashes' onsets, at least one; "
                        f"got {gaps.tolist()}")
    check_movie("paired_flash", pre + 2 * int(gaps.max()) + window + 10)
    respond = as_responder(system, protocol="paired_flash")
    post = int(gaps.max()) + window + 10
    single = respond(stimuli.flashes([pre], pre + post + int(gaps.max()), flash_frames, intensity), probe="one flash")
    deviation = single[:, pre:pre + window] - _baseline(single, pre)[:, None]
    first = np.abs(deviation).max(1)
    rise = deviation.max(1)
    driven = (rise >= first) & (rise >= min_response) & above_rounding(rise, np.abs(single).max(1))
    ratios = np.full((len(single), len(gaps)), np.nan)
    for j, gap in enumerate(gaps):
        pair = respond(stimuli.flashes([pre, pre + gap], single.shape[1], flash_frames, intensity),
                       probe=f"two flashes {gap} frames apart")
        second = np.abs(pair - single)[:, pre + gap:pre + gap + window].max(1)
        ratios[driven, j] = second[driven] / first[driven]
    return {"gaps": gaps, "first_amplitude": first, "driven": driven, "recovery": ratios}


LATENCIES = ("threshold", "centroid")


def latency_coding(system, intensities: Sequence[float] = (0.5, 1.0, 2.0, 4.0), flash_frames: int = 10,
                   threshold: float = None, window: int = 60, pre: int = 60, latency: str = "threshold",
                   rate_floor: float = 3.0) -> Dict[str, np.ndarray]:
    """Latency vs flash intensity. ``peak_latency``: frames from onset to the response maximum;
    ``threshold_latency``: first frame at which the response exceeds baseline + ``threshold`` (default: half the
    weakest flash's peak response, per cell; NaN if never); ``centroid_latency``: torch-deep-retina's measure
    (figs/deep-retina-figures/latency_encoding.py at dfdfe2f, lines 130-146): the centre of mass over the window of
    the rate, with rates under ``rate_floor`` spikes/s (there 3, line 45) set to 0 -- the rate itself, not above baseline, as there, so a
    baseline above the floor pulls it toward the window's middle; NaN where nothing is above the floor. ``slope``:
    least-squares slope against log2 |intensity| of the ``latency`` chosen (``"threshold"``: the threshold latency
    where defined, else the peak latency, NaN with fewer than 2 of either; ``"centroid"``: the centroid latency, NaN
    with fewer than 2 defined); ``falls``: slope < 0. A threshold crossing and a peak are of a response above the
    baseline by more than :data:`retina.phenomena.rounding.ROUNDING_FLOOR` times the cell's largest rate
    (``above_rounding``; elsewhere NaN): a float32 cell the flashes move by rounding alone had been timed by it, and
    the threshold's absolute floor of 1e-9 moved the crossings of a cell whose response is that small (a real response
    at a scale of 1e-9 spikes/s). The centroid's ``rate_floor`` stays in spikes/s, the reference's rule. Dark flashes
    (negative intensities, as latency_encoding.py: 2-frame flashes of 0 to -3, over 150 ms: ``flash_frames=2,
    window=15, latency="centroid"``) are measured by their magnitude; a zero intensity is refused (no flash, no
    latency)."""

    check_settings("latency_coding", frames={"flash_frames": flash_frames, "window": window, "pre": pre})
    check_movie("latency_coding", pre + window + 20)
    respond = as_responder(system, protocol="latency_coding")
    intensities = np.asarray(intensities, float)
    if intensities.ndim != 1 or len(intensities) < 2 or (intensities == 0).any() or not np.isfinite(intensities).all():
        raise SpecError(f"latency_coding: intensities: at least 2 finite non-zero flash intensities expected (a slope "
                        f"against log2 |intensity|); got {intensities.tolist()}")
    if latency not in LATENCIES:
        raise SpecError(f"latency_coding: latency must be one of {', '.join(LATENCIES)}; got {latency!r}")
    traces, raw = [], []
    for value in intensities:
        rates = respond(stimuli.flashes([pre], pre + window + 20, flash_frames, value),
                        probe=f"a flash of intensity {value:g}")
        traces.append(rates - _baseline(rates, pre)[:, None])
        raw.append(rates)
    size = np.abs(np.stack(raw, 1)).max((1, 2))[:, None, None]  # each cell's largest rate, over every flash
    traces = np.stack(traces, 1)[:, :, pre:pre + window]  # (cells, intensities, window)
    resolved = above_rounding(traces, size)
    kept = np.stack(raw, 1)[:, :, pre:pre + window]
    kept = np.where(kept >= rate_floor, kept, 0.0)
    mass = kept.sum(2)
    with np.errstate(invalid="ignore", divide="ignore"):
        centroid = np.where(mass > 0, (kept * np.arange(window)).sum(2) / mass, np.nan)
    if threshold is None:
        threshold = 0.5 * traces[:, np.argmin(np.abs(intensities))].max(1)
    threshold = np.broadcast_to(np.asarray(threshold, float), (traces.shape[0],))
    above = (traces >= threshold[:, None, None]) & resolved
    crossing = np.where(above.any(2), above.argmax(2), np.nan)
    peak = np.where(resolved.any(2), traces.argmax(2), np.nan)
    x = np.log2(np.abs(intensities))
    if latency == "threshold":
        slope = np.array([np.polyfit(x[np.isfinite(c)], c[np.isfinite(c)], 1)[0] if np.isfinite(c).sum() >= 2
                          else np.polyfit(x[np.isfinite(p)], p[np.isfinite(p)], 1)[0] if np.isfinite(p).sum() >= 2
                          else np.nan for c, p in zip(crossing, peak)])
    else:
        slope = np.array([np.polyfit(x[np.isfinite(c)], c[np.isfinite(c)], 1)[0] if np.isfinite(c).sum() >= 2
                          else np.nan for c in centroid])
    return {"intensities": intensities, "peak_latency": peak, "threshold_latency": crossing,
            "centroid_latency": centroid, "slope": slope, "falls": slope < 0}


F2_F1_RATIOS = ("max", "phase_mean")


def reversing_grating(system, bar_width: int = 8, phases: Sequence[float] = (0.0, 0.125, 0.25, 0.375, 0.5),
                      half_period: int = 25, n_reversals: int = 10, contrast: float = 1.0,
                      ratio: str = "max") -> Dict[str, np.ndarray]:
    """Contrast-reversing grating: amplitude of the response at the reversal frequency (F1) and at twice it
    (F2) per spatial phase, from the cycles after the first; ``f2_f1`` (frequency doubling: > 1 for nonlinear
    subunits, small for a nearly linear receptive field):

    * ``ratio="max"``: max F2 / max F1 over phases (Hochstein & Shapley 1976: F1 is largest where F2 is smallest,
      so each is taken at its best phase);
    * ``ratio="phase_mean"``: the mean over phases of F2 / F1 at each phase, as torch-deep-retina's
      frequency-doubling figure computes it (figs/deep-retina-figures/f2_response.py at dfdfe2f, lines
      65-66: ``fratio = F2 / F1``, ``fratio.mean(axis=1)``). A phase where F1 is small (near the null position)
      makes it large; one where F1 is at rounding level (below) is left out of the mean (its ratio divides by noise).

    An amplitude is resolved where it is above :data:`retina.phenomena.rounding.ROUNDING_FLOOR` times the cell's
    largest rate over the analysed cycles (:func:`retina.phenomena.rounding.above_rounding`): below that it may
    be float32 rounding alone. ``f2_f1`` is NaN, with ``reason`` per cell (else ""), where F2 is resolved at no phase
    (a linear cell: F2 is rounding, and a float64 one's 8e-17 against an F1 of 4.2 had given log2(F2/F1) = -39.9),
    where F1 is resolved at none, or neither (no response)."""

    if ratio not in F2_F1_RATIOS:
        raise SpecError(f"reversing_grating: ratio must be one of {', '.join(F2_F1_RATIOS)}; got {ratio!r}")
    if half_period < 2:
        raise SpecError(f"reversing_grating: half_period={half_period}: need >= 2 frames (F2 is the second harmonic "
                        "of a cycle of 2 * half_period frames)")
    if n_reversals < 4:
        raise SpecError(f"reversing_grating: n_reversals={n_reversals} leaves no whole cycle after the first "
                        "(need >= 4)")
    check_settings("reversing_grating", frames={"bar_width": bar_width, "half_period": half_period,
                                                "n_reversals": n_reversals}, contrasts={"contrast": contrast})
    phases = np.asarray(phases, float) if np.asarray(phases).dtype.kind in "iuf" else np.asarray(phases)
    if phases.ndim != 1 or not len(phases) or phases.dtype.kind != "f" or not np.isfinite(phases).all():
        raise SpecError(f"reversing_grating: phases: expected at least one finite spatial phase (a fraction of the "
                        f"grating's period); got {phases.tolist()}")
    check_movie("reversing_grating", 50 + half_period * n_reversals)
    respond = as_responder(system, protocol="reversing_grating")
    period, pre = 2 * half_period, 50
    f1, f2, size = [], [], 0.0
    for phase in phases:
        rates = respond(stimuli.reversing_grating(bar_width, phase, half_period, n_reversals, contrast, pre),
                        probe=f"the grating at phase {phase:g}")
        steady = rates[:, pre + period:pre + n_reversals * half_period]
        size = np.maximum(size, np.abs(steady).max(1))
        n_cycles = steady.shape[1] // period
        cycle = steady[:, :n_cycles * period].reshape(len(rates), n_cycles, period).mean(1)
        spectrum = np.abs(np.fft.rfft(cycle, axis=1)) * 2 / period
        f1.append(spectrum[:, 1]), f2.append(spectrum[:, 2])
    f1, f2 = np.stack(f1, 1), np.stack(f2, 1)
    has_f1, has_f2 = above_rounding(f1, size[:, None]), above_rounding(f2, size[:, None])
    reason = np.full(len(f1), "", dtype=object)
    reason[~has_f1.any(1)] = "F1 at rounding level (no response at the grating's frequency)"
    reason[~has_f2.any(1)] = "F2 at rounding level (no second harmonic: a linear response)"
    reason[~has_f1.any(1) & ~has_f2.any(1)] = "F1 and F2 at rounding level (no response to the grating)"
    if ratio == "max":
        f2_f1 = f2.max(1) / np.where(has_f1.any(1), f1.max(1), 1.0)
    else:  # a phase whose F1 is rounding (the null position of a linear centre) has no ratio: left out
        f2_f1 = np.where(has_f1, f2 / np.where(has_f1, f1, 1.0), 0.0).sum(1) / np.maximum(has_f1.sum(1), 1)
    f2_f1 = np.where(reason == "", f2_f1, np.nan)
    return {"phases": np.asarray(phases), "F1": f1, "F2": f2, "f2_f1": f2_f1, "reason": reason}


def _rf_centres(respond, positions, width, intensity, flash_frames, pre=40, post=40):
    """Each cell's receptive-field centre (the amplitude-weighted position of the flashed bars that drive it to at
    least half its largest response), flash latency and amplitudes. No centre (NaN) for a cell no bar drives above
    :data:`retina.phenomena.rounding.ROUNDING_FLOOR` times its largest rate (``above_rounding``; the floor was
    1e-6 spikes/s: a float32 cell at 100 spikes/s was given a centre from its rounding, a real response of a cell at
    1e-6 of that scale none)."""
    amplitudes, latencies, size = [], [], 0.0
    for x in positions:
        rates = respond(stimuli.flashed_bar(x, width, intensity, flash_frames, pre, post),
                        probe=f"a bar flashed at x={x:g} px")
        dev = rates - _baseline(rates, pre)[:, None]
        cell_size = np.abs(rates).max(1)
        size = np.maximum(size, cell_size)
        amplitudes.append(dev[:, pre:pre + post].max(1))
        latencies.append(_centroid_time(dev, pre, pre + post, cell_size, baseline=0.0) - pre
                         - (flash_frames - 1) / 2)
    amplitudes, latencies = np.stack(amplitudes, 1), np.stack(latencies, 1)
    positions = np.asarray(positions, float)
    weights = np.where(amplitudes >= 0.5 * amplitudes.max(1, keepdims=True), np.maximum(amplitudes, 0), 0)
    silent = ~above_rounding(amplitudes.max(1), size)  # no response to this polarity: no receptive field found
    centre = (weights * positions).sum(1) / np.where(silent, 1.0, weights.sum(1))
    best = amplitudes.argmax(1)
    centre[silent] = np.nan
    return centre, np.where(silent, np.nan, latencies[np.arange(len(best)), best]), amplitudes


#: flashed-bar centres: every pixel centre (x + 0.5), away from the edges
FLASH_POSITIONS = tuple(np.arange(3, 47) + 0.5)


def motion_anticipation(system, speed: float = 1.0, width: float = 4.0, intensity: float = 1.0,
                        flash_positions: Sequence[float] = FLASH_POSITIONS, flash_frames: int = 1) -> Dict[str, np.ndarray]:
    """Berry et al. (1999): does the response to a moving bar lead the bar?

    Each cell's receptive-field centre (x) and flash latency come from brief flashed bars at
    ``flash_positions`` (default: centred on every pixel; bars centred on pixel edges 2 px apart put a one-pixel
    cell's centre half a pixel off, 6 frames of false anticipation at the 0.08 px/frame of Berry et al.). For the
    bar moving along +x at ``speed`` px/frame, ``anticipation`` (frames) = (time the bar centre crosses the RF
    centre + the flash latency) - time of the moving-bar response peak: 0 for a purely delayed linear cell, > 0
    when the response leads the bar. The peak is the centroid of the suprathreshold response within
    ``max(30, 10 / speed)`` frames of the expected time (the bar's passage over +-10 px at slow speeds)."""
    check_settings("motion_anticipation", frames={"flash_frames": flash_frames}, contrasts={"intensity": intensity},
                   positive={"speed": speed, "width": width})
    flash_positions = np.asarray(flash_positions)
    if (flash_positions.ndim != 1 or not len(flash_positions) or flash_positions.dtype.kind not in "iuf"
            or not np.isfinite(flash_positions).all()):
        raise SpecError(f"motion_anticipation: flash_positions: expected at least one finite bar position (px); got "
                        f"{flash_positions.tolist()}")
    respond = as_responder(system, protocol="motion_anticipation")
    centre, flash_latency, _ = _rf_centres(respond, flash_positions, width, intensity, flash_frames)
    movie, positions = stimuli.moving_bar(speed, width, intensity)
    rates = respond(movie, probe=f"a bar moving at {speed:g} px/frame")
    valid = np.flatnonzero(np.isfinite(positions))
    crossing = np.interp(centre, positions[valid], valid.astype(float))  # bar centre at the RF centre
    reach = int(np.ceil(max(30.0, 10.0 / speed)))
    size = np.abs(rates).max(1)  # a peak not above 1e-6 of the cell's largest rate may be rounding: none
    peak = np.array([_centroid_time(rates[i:i + 1], max(0, int(c + l) - reach), int(c + l) + reach,
                                    size=size[i:i + 1])[0] if np.isfinite(c + l) else np.nan
                     for i, (c, l) in enumerate(zip(crossing, flash_latency))])
    anticipation = crossing + flash_latency - peak
    return {"rf_centre": centre, "flash_latency": flash_latency, "crossing_time": crossing, "peak_time": peak,
            "anticipation": anticipation, "anticipation_px": anticipation * speed}


def motion_reversal(system, reverse_at: float = 25.0, speed: float = 1.0, width: float = 4.0, intensity: float = 1.0,
                    window: int = 40) -> Dict[str, np.ndarray]:
    """Schwartz et al. (2007): the response to a bar that reverses direction, minus the response to the same bar
    continuing (control). ``reversal_response``: max of that difference within ``window`` frames after the
    reversal; ``latency``: its time (frames after the reversal, plateau-robust centroid; NaN where the difference
    never rises above 0); ``index``: the
    reversal response relative to the cell's peak response to the continuing bar (NaN for a cell the continuing
    bar does not drive: a ratio to zero is not an index). "Above 0" and "drives" mean by more than
    :data:`retina.phenomena.rounding.ROUNDING_FLOOR` times the cell's largest rate (``above_rounding``; the
    floors were 1e-12 and 1e-9 spikes/s: a float32 cell's rounding got an index and a latency, a real response at a
    scale of 1e-9 spikes/s none)."""
    check_settings("motion_reversal", frames={"window": window}, contrasts={"intensity": intensity},
                   positive={"speed": speed, "width": width})
    if not 0 <= check_number(reverse_at, "motion_reversal: reverse_at", error=SpecError) <= stimuli.FRAME_SIZE:
        raise SpecError(f"motion_reversal: reverse_at: expected a position in the frame, from 0 to "
                        f"{stimuli.FRAME_SIZE} px; got {reverse_at!r}")
    respond = as_responder(system, protocol="motion_reversal")
    movie, _, t_rev = stimuli.reversing_bar(reverse_at, speed, width, intensity, reverse=True)
    control, _, _ = stimuli.reversing_bar(reverse_at, speed, width, intensity, reverse=False)
    r_rev, r_ctl = respond(movie, probe="the reversing bar"), respond(control, probe="the continuing bar")
    diff = r_rev - r_ctl
    size = np.maximum(np.abs(r_rev).max(1), np.abs(r_ctl).max(1))  # each cell's largest rate
    response = diff[:, t_rev:t_rev + window].max(1)
    latency = _centroid_time(diff, t_rev, t_rev + window, size, baseline=0.0) - t_rev
    drive = r_ctl.max(1) - _baseline(r_ctl, 40)
    driven = above_rounding(drive, size)
    return {"reversal_frame": t_rev, "reversal_response": response, "latency": latency,
            "index": np.where(driven, response / np.where(driven, drive, 1.0), np.nan), "rates": r_rev,
            "control": r_ctl}
