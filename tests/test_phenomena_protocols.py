"""Our phenomenon stimuli against independent re-implementations of the original code's (baccuslab/torch-deep-retina,
figs/deep-retina-figures/stimuli.py and osr.py at commit dfdfe2f, torchdeepretina/retinal_phenomena.py at 00255c7).
The references rebuild the frames the original hands to ``concat`` (before its rolling 40-frame windows)."""
import math

import numpy as np
import pytest

from neurozoo.datasets import retina_stimuli as stimuli


def ref_flash(duration, delay, nsamples, intensity):
    """stimuli.py ``flash`` (lines 117-147): zeros, ``intensity`` on samples delay .. delay + duration - 1 (lines
    144-146)."""
    trace = np.zeros(nsamples)
    trace[delay:delay + duration] = intensity
    return trace


def ref_osr_figure(duration=2, interval=6, nflashes=8, intensity=-2.0):
    """osr.py ``osr`` (lines 48-83; the OSR figure's call, line 116: duration 2, interval 6, 8 flashes, intensity -2,
    noise_std 0; the flash groups lines 74-78, the pads and ``concat`` lines 79-81): each flash is
    a group of ``interval`` grey frames then the flash, so the period is ``duration + interval``; a grey group takes
    the omitted flash's place. Returns ``(trace, first_onset, omitted_onset)``."""
    single = ref_flash(duration, interval, duration + interval, intensity)
    omitted = ref_flash(duration, interval, duration + interval, 0.0)
    start_pad, zero_pad = np.zeros(interval * (nflashes - 1)), np.zeros(40 - interval)
    trace = np.concatenate([start_pad, zero_pad, *[single] * nflashes, omitted, zero_pad])
    first = len(start_pad) + len(zero_pad) + interval
    return trace, first, first + nflashes * (duration + interval)


def ref_osr_phenomena(duration=2, interval=10, nflashes=5, intensity=-2.0):
    """retinal_phenomena.py ``osr``: groups of ``2 * interval`` frames with the flash at ``interval``: period
    ``2 * interval``; after the omitted group the train resumes."""
    single = ref_flash(duration, interval, 2 * interval, intensity)
    omitted = ref_flash(duration, interval, 2 * interval, 0.0)
    trace = np.concatenate([np.zeros(interval), *[single] * nflashes, omitted, *[single] * nflashes])
    first = 2 * interval
    return trace, first, first + nflashes * 2 * interval


@pytest.mark.parametrize("reference, period, n_flashes", [
    (lambda: ref_osr_figure(), 8, 8),                       # the published figure: 80 ms period
    (lambda: ref_osr_figure(interval=10, nflashes=6), 12, 6),
    (lambda: ref_osr_phenomena(), 20, 5),
])
def test_flash_train_equals_the_originals_omitted_stimulus_protocol(reference, period, n_flashes):
    trace, first, omitted = reference()
    movie, last, our_omitted = stimuli.flash_train(period, n_flashes=n_flashes, flash_frames=2, intensity=-2.0, pre=60,
                                                   post=period)
    ours = movie[:, 17, 33]
    assert np.array_equal(movie, np.broadcast_to(ours[:, None, None], movie.shape))  # full field, as spatialize
    our_first = last - (n_flashes - 1) * period
    # from the first flash to the end of the omitted flash's period, frame for frame
    np.testing.assert_array_equal(ours[our_first:our_omitted + period], trace[first:omitted + period])
    assert our_omitted - our_first == omitted - first and (ours[:our_first] == 0).all()


@pytest.mark.parametrize("ifi", [2, 5, 19])
def test_paired_flash_equals_the_originals_paired_flashes(ifi):
    """stimuli.py ``paired_flashes(ifi, duration, intensity, total_length, delay)`` (lines 255-266): the second flash
    starts ``duration + ifi`` frames after the first's onset (line 263); our ``gap`` is that onset-to-onset interval."""
    duration, delay, total = 2, 40, 100
    reference = ref_flash(duration, delay, total, -2.0) + ref_flash(duration, delay + duration + ifi, total, -2.0)
    movie, first, second = stimuli.paired_flash(gap=duration + ifi, flash_frames=duration, intensity=-2.0, pre=delay,
                                                post=total - delay - duration - ifi)
    np.testing.assert_array_equal(movie[:, 3, 3], reference)
    assert (first, second) == (delay, delay + duration + ifi)


def test_step_equals_the_originals_step_response_stimulus():
    """retinal_phenomena.py ``step_response`` (at 00255c7, lines 18-25): ``flash(duration=100, delay=50, nsamples=200,
    intensity=-1)`` (the defaults, line 18; the flash, line 20)."""
    movie = stimuli.step(intensity=-1.0, pre=50, duration=100, post=50)
    np.testing.assert_array_equal(movie[:, 10, 40], ref_flash(100, 50, 200, -1.0))


def ref_square(halfperiod, nsamples, phase=0.0, intensity=1.0):
    """stimuli.py ``square`` (lines 269-288): ``halfperiod`` samples of +intensity, then of -intensity (line 281),
    repeated, started ``int(2 * phase * halfperiod)`` samples in (lines 278, 288)."""
    offset = int(2 * phase * halfperiod)
    waveform = np.concatenate([np.full(halfperiod, intensity), np.full(halfperiod, -intensity)])
    repeats = int(np.ceil(nsamples / (2 * halfperiod)) + 1)
    return np.tile(waveform, repeats)[offset:offset + nsamples]


def ref_reversing_grating(nsamples, halfperiod, barsize, phase):
    """stimuli.py ``reversing_grating(..., waveform='square')`` (lines 414-417) = ``reverse(grating(barsize=(barsize,
    0), phase=(phase, 0)))``: a square wave along x (columns), constant along y (``grating`` lines 310-350, the outer
    product line 350), times a square wave in time (``reverse`` lines 387-401)."""
    frame = np.outer(np.ones(50), ref_square(barsize, 50, phase))
    return np.stack([sign * frame for sign in ref_square(halfperiod, nsamples)])


@pytest.mark.parametrize("bar_width", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("phase", [0.0, 0.125, 0.25, 0.375, 0.5, 0.75])
def test_reversing_grating_equals_the_originals(bar_width, phase):
    """Bar widths 1-8 and phases as in the frequency-doubling figure (f2_response.py at dfdfe2f: widths 1-8
    checkers line 62, half period 25 frames line 23; its gratings are sinusoidal, ``'sin'`` line 36, which we do not
    offer: docs/retina.md) and retinal_phenomena.py ``reversing_grating`` (at 00255c7 lines 66-69: size 5, half
    period 50, 300 samples)."""
    for half_period, n_reversals in ((25, 6), (50, 6)):
        ours = stimuli.reversing_grating(bar_width, phase, half_period, n_reversals, contrast=1.0, pre=7)
        assert (ours[:7] == 0).all()
        np.testing.assert_array_equal(ours[7:], ref_reversing_grating(n_reversals * half_period, half_period,
                                                                      bar_width, phase))


def ref_bar(centre, width, intensity=-1.0, us_factor=5):
    """stimuli.py ``bar((centre, 0), width, np.Inf, us_factor=5, blur=0.)`` (lines 180-202): drawn on a 5x finer
    grid, the centre truncated to that grid (``int``, line 191), then each 5x5 block averaged
    (``downscale_local_mean``, ``downsample`` lines 205-207); full height."""
    nx, width = 50 * us_factor, width * us_factor
    cx = int(centre * us_factor + nx // 2)
    fine = np.zeros(nx)
    fine[max(0, cx - width // 2):max(0, min(nx, cx + width // 2))] = intensity
    return np.outer(np.ones(50), fine.reshape(50, us_factor).mean(1))


def test_moving_bar_frames_equal_the_originals_driftingbar():
    """stimuli.py ``driftingbar(speed, width=2, intensity=-1, x=(-30, 30))`` (lines 210-244; default speed 0.08,
    line 210): centres ``linspace(-30, 30, 1 + floor(60 / speed))`` (lines 236-237) relative to the frame centre,
    each frame a ``bar`` (line 244). Our ``bar_frames`` draws the same bar at x = 25 + the centre the original
    actually draws (its 1/5-pixel grid)."""
    # the default, the anticipation figure's (motion_anticipation.py at dfdfe2f line 78), ours
    for speed in (0.08, 0.176, 1.0):
        centres = np.linspace(-30, 30, int(1 + math.floor(60 / speed)))
        drawn = np.array([int(c * 5 + 125) / 5 for c in centres])
        ours = stimuli.bar_frames(drawn, width=2.0, intensity=-1.0)
        reference = np.stack([ref_bar(c, 2) for c in centres])
        np.testing.assert_allclose(ours, reference, atol=1e-6)


def test_f2_f1_equals_the_originals_fourier_analysis_of_the_same_responses():
    """f2_response.py ``freq_doubling`` (at dfdfe2f lines 23-43): |FFT| of the response at the reversal frequency and
    at twice it (lines 30-31, 40-42), per phase; the figure's ratio is the mean over phases of F2 / F1 (lines 65-66;
    ``ratio="phase_mean"``). Reference: numpy's FFT of the
    steady response (4 whole cycles, the first dropped as ours), bins 4 and 8."""
    from neurozoo.retina.phenomena import reversing_grating

    def cell(movie):  # a linear centre (8 px, phase dependent) plus rectified local changes (subunits)
        centre = movie[:, 25, 20:28].mean(1)
        subunits = np.maximum(np.diff(movie[:, 25, 10:40], axis=0, prepend=0.0), 0).sum(1)
        return np.stack([5 + 4 * centre + 0.5 * subunits, 5 + 4 * centre])

    phases = (0.0, 0.125, 0.25, 0.375, 0.5)
    reference_f1, reference_f2 = [], []
    for phase in phases:
        response = cell(stimuli.reversing_grating(8, phase, 25, 10, pre=50))[:, 100:300]
        spectrum = np.abs(np.fft.fft(response, axis=1))
        reference_f1.append(spectrum[:, 4]), reference_f2.append(spectrum[:, 8])
    reference_f1, reference_f2 = np.stack(reference_f1, 1), np.stack(reference_f2, 1)
    result = reversing_grating(cell, phases=phases, ratio="phase_mean")
    np.testing.assert_allclose(result["F1"], reference_f1 / 100, rtol=1e-9, atol=1e-12)  # amplitude: |FFT| * 2 / 200
    np.testing.assert_allclose(result["F2"], reference_f2 / 100, rtol=1e-9, atol=1e-12)
    # the subunit cell (the linear cell's F1 vanishes at its null phase, where the figure's ratio is 0 / 0)
    np.testing.assert_allclose(result["f2_f1"][0], (reference_f2[0] / reference_f1[0]).mean(), rtol=1e-9)
    assert result["f2_f1"][0] > 2 * reversing_grating(cell, phases=phases)["f2_f1"][0]  # the null phase weighs in
    by_max = reversing_grating(cell, phases=phases)
    np.testing.assert_allclose(by_max["f2_f1"][0], reference_f2[0].max() / reference_f1[0].max(), rtol=1e-9)
    # the linear cell has no F2: rounding (below 1e-6 of its rates), so no ratio, by either definition (it was
    # 1e-17 by the maximum; log2 of it, -56, read as a measurement)
    assert reference_f2[1].max() < 1e-6 * reference_f1[1].max()
    for result in (by_max, reversing_grating(cell, phases=phases, ratio="phase_mean")):
        assert np.isnan(result["f2_f1"][1]) and result["reason"][1].startswith("F2 at rounding level")
        assert result["reason"][0] == ""

    from neurozoo.datasets.errors import SpecError

    with pytest.raises(SpecError, match="ratio must be one of max, phase_mean"):
        reversing_grating(cell, ratio="mean")
    # too short for one whole cycle after the first (dropped): F1 and F2 were NaN with 'Mean of empty slice'
    with pytest.raises(SpecError, match=r"n_reversals=3 leaves no whole cycle after the first \(need >= 4\)"):
        reversing_grating(cell, n_reversals=3)
    with pytest.raises(SpecError, match=r"half_period=1: need >= 2 frames"):  # an IndexError before
        reversing_grating(cell, half_period=1)


def test_latency_coding_runs_the_originals_dark_flash_protocol():
    """latency_encoding.py (at dfdfe2f) flashes 2-frame dark flashes (``s.flash(2, 40, 70, intensity=i)`` line 26;
    intensities ``linspace(0, -3, 21)`` line 65). An OFF integrator (accumulates
    darkness while the flash lasts, then holds it for 10 frames) crosses a threshold of 2 sooner for darker flashes:
    latency = ceil(2 / |I|) - 1 frames while the flash lasts, never for a flash too dim to reach it. The slope is
    taken against log2 |intensity|, the threshold from the weakest flash whatever the order given."""
    from neurozoo.retina.phenomena import latency_coding

    def off_integrator(movie):
        dark = np.maximum(-movie[:, 25, 25], 0)
        level = np.cumsum(dark)
        return np.where(np.convolve(dark > 0, np.ones(11))[:len(dark)] > 0, level, 0.0)[None]

    result = latency_coding(off_integrator, intensities=(-3.0, -2.0, -1.5, -0.5), flash_frames=2, threshold=2.0)
    np.testing.assert_array_equal(result["threshold_latency"][0], [0, 0, 1, np.nan])
    assert np.isfinite(result["slope"][0]) and result["falls"][0]
    by_default = latency_coding(off_integrator, intensities=(-3.0, -2.0, -1.5, -1.0), flash_frames=2)
    ascending = latency_coding(off_integrator, intensities=(-1.0, -1.5, -2.0, -3.0), flash_frames=2)
    # default threshold: half the weakest flash's peak (2 frames of -1: 1.0), whatever the order
    np.testing.assert_array_equal(by_default["threshold_latency"][0], [0, 0, 0, 0])
    np.testing.assert_array_equal(ascending["threshold_latency"][0], by_default["threshold_latency"][0][::-1])

    from neurozoo.datasets.errors import SpecError

    with pytest.raises(SpecError, match="intensities"):
        latency_coding(off_integrator, intensities=(0.0, -1.0, -2.0))


def test_centroid_latency_equals_the_originals_centre_of_mass():
    """latency_encoding.py (at dfdfe2f): rates under 3 spikes/s set to 0 (``threshold = 3`` line 45, line 130), then
    ``(idxs * temp).sum(1) / temp.sum(1)`` over the window (lines 141-146; here without its cubic upsampling,
    ``upsample`` lines 17-20). A cell answering a dark flash of intensity I with a triangle
    peaking 8 / |I| frames after onset, over a silent baseline: the centre of mass is that delay, falling with I."""
    from neurozoo.retina.phenomena import latency_coding

    def off_cell(movie):
        dark = -movie[:, 25, 25]
        onset = int(np.argmax(dark > 0))
        rate = np.zeros(len(movie))
        if dark.max() > 0:
            centre = onset + 8 / dark.max()
            rate = np.maximum(40 * (1 - np.abs(np.arange(len(movie)) - centre) / 4), 0)
        return np.stack([rate, rate + 10.0])  # the second cell: a 10 spikes/s baseline, above the floor

    intensities = (-0.5, -1.0, -1.5, -2.0)
    result = latency_coding(off_cell, intensities=intensities, flash_frames=2, window=30, latency="centroid")
    for k, value in enumerate(intensities):
        rates = off_cell(stimuli.flashes([60], 110, 2, value))[:, 60:90]
        temp = np.where(rates < 3, 0.0, rates)
        np.testing.assert_allclose(result["centroid_latency"][:, k], (np.arange(30) * temp).sum(1) / temp.sum(1))
    np.testing.assert_allclose(result["centroid_latency"][0], [16, 8, 16 / 3, 4], atol=1e-5)  # float32 movie
    assert result["falls"].all() and result["slope"][0] < 2 * result["slope"][1] < 0  # the baseline dilutes it (-6.1 vs -2.1)
    with pytest.raises(Exception, match="latency must be one of threshold, centroid"):
        latency_coding(off_cell, intensities=intensities, latency="com")


def _two_cells(movie):
    """A cell rectifying the mean contrast through a 5-frame exponential filter, and one twice it."""
    drive = np.convolve(np.abs(movie.mean((1, 2))), np.exp(-np.arange(20) / 5.0))[:len(movie)]
    return np.stack([drive, 2 * drive + 0.1])


@pytest.mark.parametrize("analysis, kwargs, message", [
    # a ValueError for a reduction of an empty window
    ("step_response", dict(window=0), r"^step_response: window: expected an integer >= 1, got 0$"),
    # a baseline over no frame: NaN everywhere, without a word
    ("step_response", dict(pre=0), r"^step_response: pre: expected an integer >= 1, got 0$"),
    # the onset's window ran into the offset response
    ("step_response", dict(window=500), r"^step_response: duration=100, post=100, window=500: expected duration >= 20"),
    ("step_response", dict(pre=10 ** 9), r"^step_response: its movie would be 1000000200 frames; at most 100000"),
    ("paired_flash", dict(gaps=(0, 4)), r"^paired_flash: gaps: expected whole frames >= 1 between the flashes' onsets"),
    ("paired_flash", dict(gaps=(2.5,)), r"^paired_flash: gaps: .*got \[2\.5\]$"),  # a TypeError on a slice
    ("paired_flash", dict(intensity=float("nan")), r"^paired_flash: intensity: expected a finite number, got nan$"),
    # LAPACK's 'SVD did not converge'
    ("latency_coding", dict(intensities=(float("nan"), 1.0)), r"^latency_coding: intensities: at least 2 finite"),
    # ran as a grating of one colour: F1 = F2 = 0
    ("reversing_grating", dict(bar_width=0), r"^reversing_grating: bar_width: expected an integer >= 1, got 0$"),
    ("reversing_grating", dict(phases=()), r"^reversing_grating: phases: expected at least one finite spatial phase"),
    ("motion_anticipation", dict(speed=0), r"^motion_anticipation: speed: expected a finite number > 0, got 0$"),
    ("motion_reversal", dict(speed=0), r"^motion_reversal: speed: expected a finite number > 0, got 0$"),
    # a reversal outside the frame: the bar reversed where no cell sees it, and the index was measured anyway
    ("motion_reversal", dict(reverse_at=-5), r"^motion_reversal: reverse_at: expected a position in the frame, from 0 "
                                             r"to 50 px; got -5$"),
])
def test_analysis_settings_out_of_range_are_refused_naming_the_analysis_and_setting(analysis, kwargs, message):
    from neurozoo.datasets.errors import SpecError
    from neurozoo.retina import phenomena

    with pytest.raises(SpecError, match=message):
        getattr(phenomena, analysis)(_two_cells, **kwargs)
