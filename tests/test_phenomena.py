"""Each in-silico analysis on hand-built systems with a known answer."""
import numpy as np
import pytest
import torch

from neurozoo.datasets import retina_stimuli as stimuli
from neurozoo.retina.phenomena import (as_responder, latency_coding, motion_anticipation, motion_reversal, paired_flash,
                              reversing_grating, step_response)


def delay_model(d=3, xs=(20,), signs=(1,), baseline=1.0):
    """Cell i: baseline + sign_i * stimulus(t - d) at pixel (25, x_i) -- linear, pure delay, point receptive field."""
    def respond(movie):
        out = np.zeros((len(xs), len(movie)))
        for i, (x, sign) in enumerate(zip(xs, signs)):
            out[i, d:] = sign * movie[:len(movie) - d, 25, x]
        return baseline + out
    return respond


def transient_model(x=25, sigma=3.0):
    """relu of the frame-to-frame change of a Gaussian-weighted row: a transient cell."""
    w = np.exp(-0.5 * ((np.arange(50) + 0.5 - (x + 0.5)) / sigma) ** 2)
    w /= w.sum()

    def respond(movie):
        g = movie[:, 25, :] @ w
        return np.maximum(np.diff(g, prepend=0.0), 0.0)[None]
    return respond


def depressing_model(recovery=20.0, use=0.5):
    """OFF drive through a depleting synapse: release = drive * u, u recovers with time constant ``recovery``."""
    def respond(movie):
        drive = np.maximum(-movie.mean((1, 2)), 0.0)
        u, out = 1.0, np.zeros(len(movie))
        for t, value in enumerate(drive):
            out[t] = value * u
            u += (1 - u) / recovery - use * value * u / 2
        return out[None]
    return respond


def test_stimuli_shapes_and_protocol():
    movie, last, omitted = stimuli.flash_train(4)
    assert movie.shape[1:] == (50, 50) and omitted - last == 4
    trace = movie[:, 0, 0]
    assert (trace == -2).sum() == 16 and trace[last] == -2 and trace[omitted] == 0
    bar, positions = stimuli.moving_bar(speed=2.0, width=4)
    t = np.flatnonzero(positions == 20.0)[0]
    assert np.allclose(bar[t, 10, 18:22], 1.0) and bar[t, 10, 17] == 0 and bar[t, 10, 22] == 0
    grating = stimuli.reversing_grating(bar_width=5, half_period=10, pre=5)
    assert np.array_equal(grating[5], -grating[15]) and (grating[:5] == 0).all()


def test_step_response_known_latency_and_transience():
    result = step_response(delay_model(d=7))
    assert result["on_latency"][0] == 7 and abs(result["transience"][0]) < 1e-9
    assert step_response(transient_model())["transience"][0] == pytest.approx(1.0)


def test_paired_flash_linear_recovers_fully_and_depression_recovers_with_gap():
    linear = paired_flash(delay_model(d=2, signs=(-1,)))
    np.testing.assert_allclose(linear["recovery"], 1.0, atol=1e-9)
    depressed = paired_flash(depressing_model())["recovery"][0]
    assert depressed[0] < 0.9 and np.all(np.diff(depressed) > 0) and depressed[-1] > 0.9


def _flash_onsets(movie):
    dark = movie[:, 0, 0] < 0
    return np.flatnonzero(dark & ~np.concatenate([[False], dark[:-1]]))


def _kernel(u):
    """A slow alpha-function response to a flash, peak 1 at u = 5 frames, still 0.2 of it 20 frames on."""
    u = np.asarray(u, float)
    return np.where(u >= 0, (u / 5) * np.exp(1 - u / 5), 0.0)


def depressed_pair_model(depth=0.6, tau=15.0):
    """Cell 0 (ON to the dark flash): rate 3 + 10 sum_k s_k kernel(t - onset_k), with s_0 = 1 and a second flash's
    response scaled by s_1 = 1 - depth exp(-gap / tau). Cell 1: the same shape below a rate of 30 (the flash silences
    it). The responses overlap (the first one still 0.8 of its peak at the second flash's peak, gap 4), so the
    second response is only s_1 after the single flash's response is subtracted."""
    def respond(movie):
        t = np.arange(len(movie))
        onsets = _flash_onsets(movie)
        drive = np.zeros(len(movie))
        for k, onset in enumerate(onsets):
            scale = 1.0 if k == 0 else 1 - depth * np.exp(-(onset - onsets[k - 1]) / tau)
            drive += 10 * scale * _kernel(t - onset)
        return np.stack([3 + drive, 30 - drive])
    return respond


def test_paired_flash_recovery_equals_a_known_depression_of_overlapping_responses():
    """Known answer: the second response of ``depressed_pair_model`` is s_1 = 1 - 0.6 exp(-gap / 15) times the first,
    so the recovery at gaps 4, 8, 16, 32, 64 is 0.5404, 0.6480, 0.7935, 0.9289, 0.9916 (hand: exp(-4/15) = 0.7659,
    exp(-8/15) = 0.5866, exp(-16/15) = 0.3442, exp(-32/15) = 0.1185, exp(-64/15) = 0.0140). Taking the pair's own
    response in the second window (without subtracting the single flash's) gives 1.42 at gap 4 and 1.24 at gap 8 (the
    first response's tail adds to it): the linear cell of the test above cannot tell, its responses do not overlap.
    The silenced cell has no recovery (NaN); both cells' first amplitude is 10."""
    gaps = np.array([4, 8, 16, 32, 64])
    result = paired_flash(depressed_pair_model(), gaps=tuple(gaps))
    np.testing.assert_allclose(result["recovery"][0], 1 - 0.6 * np.exp(-gaps / 15), rtol=1e-12)
    np.testing.assert_allclose(result["recovery"][0], [0.5404, 0.6480, 0.7935, 0.9289, 0.9916], atol=1e-4)
    np.testing.assert_allclose(result["first_amplitude"], [10.0, 10.0], rtol=1e-12)
    assert result["driven"].tolist() == [True, False] and np.isnan(result["recovery"][1]).all()


def test_paired_flash_of_a_cell_that_does_not_answer_is_undefined_even_with_min_response_0():
    """A cell at a constant 10.1 spikes/s: its 'rise' is float rounding (1.8e-15). With min_response 0 it was driven,
    and its second response (0) over that rounding gave a recovery of 0, a full depression; it is not driven now."""
    result = paired_flash(lambda movie: np.full((2, len(movie)), 10.1) + np.array([[0.0], [1.0]]) * np.maximum(
        movie[:, 25, 25], 0), gaps=(10,), intensity=2.0, min_response=0.0)
    assert result["first_amplitude"][0] < 1e-14 and not result["driven"][0] and np.isnan(result["recovery"][0, 0])
    assert result["driven"][1] and result["recovery"][1, 0] == pytest.approx(1.0)  # a rectified cell answers both


def test_latency_coding_integrator_known_latencies_and_delay_model_constant():
    def integrator(movie):  # accumulates |intensity| while the flash lasts
        return np.cumsum(np.abs(movie[:, 25, 25]))[None] * (np.abs(movie[:, 25, 25]) > 0)

    result = latency_coding(integrator, intensities=(0.5, 1.0, 2.0, 4.0), threshold=2.0)
    np.testing.assert_array_equal(result["threshold_latency"][0], [3, 1, 0, 0])  # ceil(2 / I) - 1
    # least squares against log2 I = (-1, 0, 1, 2): Sxy = -1.5 * 2 + 0.5 * -1 + 1.5 * -1 = -5, Sxx = 5: slope -1
    assert result["slope"][0] == pytest.approx(-1.0, abs=1e-12) and result["falls"][0]
    flat = latency_coding(delay_model(d=4), intensities=(0.5, 1.0, 2.0))
    np.testing.assert_array_equal(flat["peak_latency"][0], [4, 4, 4])
    assert not flat["falls"][0]


def test_reversing_grating_linear_vs_rectified_subunits():
    linear = reversing_grating(delay_model(d=2, xs=(21,)))
    # a linear cell's F2 is rounding: no ratio (F2/F1 of noise had been reported as ~0, log2 of it as a measurement)
    assert linear["F1"].max() > 0.5 and linear["F2"].max() < 1e-6 * linear["F1"].max()
    assert np.isnan(linear["f2_f1"][0]) and linear["reason"][0].startswith("F2 at rounding level")

    def subunits(movie):  # rectified local changes pooled over space: responds at every reversal
        return np.maximum(np.diff(movie[:, 25, 10:40], axis=0, prepend=0.0), 0).sum(1)[None]

    assert reversing_grating(subunits)["f2_f1"][0] > 5


def test_motion_anticipation_zero_for_delay_positive_for_transient():
    delayed = motion_anticipation(delay_model(d=5, xs=(24,)))
    assert delayed["rf_centre"][0] == pytest.approx(24.5, abs=0.6)
    assert delayed["flash_latency"][0] == pytest.approx(5, abs=0.01)
    assert abs(delayed["anticipation"][0]) < 0.6
    transient = motion_anticipation(transient_model(x=25, sigma=3.0))
    assert transient["anticipation"][0] > 1.5


@pytest.mark.parametrize("speed", [1.0, 0.5, 0.176, 0.08])  # ours, ..., the anticipation figure's, Berry et al.'s
def test_motion_anticipation_is_unbiased_at_the_originals_slow_speeds(speed):
    """torch-deep-retina moves a 2-px bar at 0.08-0.176 px/frame (figs/deep-retina-figures at dfdfe2f: stimuli.py
    ``driftingbar(speed=0.08, width=2, ...)`` line 210; motion_anticipation.py ``width=2`` line 50 and velocity
    0.176 line 78). A pure delay anticipates nothing at any speed, and
    the transient cell leads the bar by the same distance (~3 px: it answers the bar entering its Gaussian field).
    Measured before: the delay cell 0.5, 1.0, 2.8, 6.4 frames (flashed bars centred on pixel edges, 2 px apart, put
    its centre half a pixel off), the transient cell 2.9, 3.1, 3.2, 1.7 px (a +-30-frame search window cut its slow
    response short)."""
    delayed = motion_anticipation(delay_model(d=5, xs=(24,)), speed=speed, width=2.0)
    assert delayed["rf_centre"][0] == pytest.approx(24.5, abs=0.05)
    assert abs(delayed["anticipation_px"][0]) < 0.1
    transient = motion_anticipation(transient_model(x=25, sigma=3.0), speed=speed, width=2.0)
    assert 2.5 < transient["anticipation_px"][0] < 3.5


def test_motion_reversal_known_latency():
    # cells at x=15 (the reversed bar comes back over it) and x=40 (beyond the reversal point)
    result = motion_reversal(delay_model(d=3, xs=(15, 40), baseline=0.0), reverse_at=25.0)
    assert result["latency"][0] == pytest.approx(25 - 15.5 + 3, abs=1.0)
    assert result["index"][0] > 0.5
    assert result["reversal_response"][1] == pytest.approx(0.0, abs=1e-9)
    # a cell that the bar never drives (opposite polarity: a rectified OFF cell and a bright bar) has no index
    silent = motion_reversal(lambda movie: np.maximum(delay_model(d=3, xs=(15,), signs=(-1,), baseline=0.0)(movie), 0))
    assert np.isnan(silent["index"][0]) and silent["reversal_response"][0] == 0.0
    assert np.isnan(silent["latency"][0]) and np.isnan(result["latency"][1])  # nothing to time (had been 19.5)


def test_a_silent_cell_has_no_step_latency():
    """A cell that never rises above its baseline: argmax of a flat window had reported an onset latency of 0."""
    result = step_response(lambda movie: np.stack([delay_model(d=7)(movie)[0], np.full(len(movie), 2.0)]))
    assert result["on_latency"][0] == 7 and np.isnan(result["on_latency"][1]) and np.isnan(result["off_latency"][1])


def rounding_cell(system, rate=100.0, gain=40.1):
    """A float32 cell computing ``(rate + drive) - drive`` with ``drive = gain * system``'s response: constant
    (``rate``) in exact arithmetic, whatever the stimulus; in float32 the sum is rounded, so the rate moves by a
    float32 step (7.6e-6 at 100, 7.6e-8 of it) where the drive is not 0 (up at a response of 1): a response of
    rounding alone."""
    def respond(movie):
        drive = np.float32(gain) * system(movie).astype(np.float32)
        return (np.float32(rate) + drive) - drive
    return respond


def small_response(system, relative=1e-4, scale=1e-6):
    """``scale * (1 + relative * system's response)``: a real response (1e-4 of the rate, 100 times the rounding
    floor) of a cell whose rates are all ``scale`` times smaller; every index and latency is the unscaled cell's."""
    def respond(movie):
        return scale * (1.0 + relative * system(movie))
    return respond


def silent(movie):
    return np.zeros((1, len(movie)))


def test_step_latencies_are_of_responses_above_rounding_relative_to_the_rate():
    """A floor of 1e-9 spikes/s timed a float32 cell's rounding (its step response one float32 step: on latency 7)
    and gave a real response of 1e-10 spikes/s (1e-4 of a cell at 1e-6 spikes/s) none. The floor is 1e-6 of the
    cell's largest rate: the rounding cell has no latency nor transience, the small cell those of the same cell
    unscaled, a silent cell none."""
    cell = delay_model(d=7, baseline=0.0)
    rounding = step_response(rounding_cell(cell))
    assert 0 < rounding["on_peak"][0] - rounding["baseline"][0] < 1e-6 * 100  # a rise, of rounding
    assert np.isnan(rounding["on_latency"][0]) and np.isnan(rounding["transience"][0])
    unscaled, small = step_response(small_response(cell, scale=1.0)), step_response(small_response(cell))
    assert small["on_latency"][0] == unscaled["on_latency"][0] == 7
    assert small["off_latency"][0] == unscaled["off_latency"][0] == 0  # (the offset window's largest rate: its first
    # frame, the step's response delayed 7 frames into it)
    assert small["transience"][0] == pytest.approx(unscaled["transience"][0], abs=1e-9)
    quiet = step_response(silent)
    assert np.isnan(quiet["on_latency"][0]) and np.isnan(quiet["off_latency"][0]) and np.isnan(quiet["transience"][0])


def test_flash_latencies_are_of_responses_above_rounding_relative_to_the_rate():
    """latency_coding's threshold had an absolute floor of 1e-9: a float32 cell whose flashes move it by rounding
    alone was given threshold crossings (a slope of its rounding), a silent cell a slope of 0 from the argmax of a
    flat window (peak latency 0 at every intensity), and the weakest flash's crossing of a real response of 5e-11
    spikes/s none. A crossing and a peak are above 1e-6 of the cell's largest rate now: no latency and no slope for
    the rounding and the silent cells, the unscaled cell's for the small one."""
    def integrator(movie):  # accumulates |intensity| while the flash lasts
        return np.cumsum(np.abs(movie[:, 25, 25]))[None] * (np.abs(movie[:, 25, 25]) > 0)

    for system in (rounding_cell(integrator), silent):
        result = latency_coding(system)
        assert np.isnan(result["threshold_latency"]).all() and np.isnan(result["peak_latency"]).all()
        assert np.isnan(result["slope"][0]) and not result["falls"][0]
    unscaled, small = latency_coding(small_response(integrator, scale=1.0)), latency_coding(small_response(integrator))
    np.testing.assert_array_equal(small["threshold_latency"], unscaled["threshold_latency"])
    np.testing.assert_array_equal(unscaled["threshold_latency"][0], [4, 2, 1, 0])  # half the weakest's peak: 2.5
    assert small["slope"][0] == pytest.approx(unscaled["slope"][0], abs=1e-12) and small["falls"][0]


def test_motion_analyses_resolve_responses_relative_to_the_rate():
    """The flashed bars' 'no receptive field' floor was 1e-6 spikes/s and the reversal's drive floor 1e-9: a float32
    cell at 100 spikes/s moved by rounding alone (7.6e-6) was given a receptive-field centre, a flash latency and a
    reversal index of rounding, and a real response of 1e-10 spikes/s (1e-4 of a cell at 1e-6) no centre and no
    index. Both are relative now (1e-6 of the cell's largest rate): nothing for the rounding and silent cells, the
    unscaled cell's numbers for the small one."""
    cell = delay_model(d=5, xs=(24,), baseline=0.0)
    for system in (rounding_cell(cell), silent):
        anticipation = motion_anticipation(system)
        assert np.isnan(anticipation["rf_centre"][0]) and np.isnan(anticipation["anticipation"][0])
    unscaled, small = motion_anticipation(small_response(cell, scale=1.0)), motion_anticipation(small_response(cell))
    assert small["rf_centre"][0] == pytest.approx(24.5, abs=0.05) and unscaled["rf_centre"][0] == small["rf_centre"][0]
    assert small["anticipation"][0] == pytest.approx(unscaled["anticipation"][0], abs=1e-9)
    assert small["flash_latency"][0] == pytest.approx(5, abs=0.01)

    reversing = delay_model(d=3, xs=(15,), baseline=0.0)
    rounding = motion_reversal(rounding_cell(reversing))
    assert 0 < rounding["reversal_response"][0] < 1e-6 * 100  # a response, of rounding
    assert np.isnan(rounding["index"][0]) and np.isnan(rounding["latency"][0])
    quiet = motion_reversal(silent)
    assert np.isnan(quiet["index"][0]) and np.isnan(quiet["latency"][0])
    unscaled, small = motion_reversal(small_response(reversing, scale=1.0)), motion_reversal(small_response(reversing))
    assert unscaled["index"][0] > 0.5 and small["index"][0] == pytest.approx(unscaled["index"][0], rel=1e-6)
    assert small["latency"][0] == pytest.approx(unscaled["latency"][0], abs=1e-9)


def test_response_times_have_no_absolute_floor():
    """The response centroid (``_centroid_time``: the flashed bars' latencies, the moving bar's peak, the reversal's
    latency, the OSR's) kept a floor of 1e-12 spikes/s beside the relative one, and without ``size`` used it alone: a
    real response 1e-4 of a cell at 1e-9 spikes/s (1e-13) had no flash latency, no anticipation and no reversal
    latency. ``size`` is required and the floor relative alone: the unscaled cell's numbers."""
    from neurozoo.retina.phenomena.analyses import _centroid_time

    cell = delay_model(d=5, xs=(24,), baseline=0.0)
    unscaled, tiny = (motion_anticipation(small_response(cell, scale=scale)) for scale in (1.0, 1e-9))
    assert tiny["flash_latency"][0] == pytest.approx(unscaled["flash_latency"][0], abs=1e-9)
    assert tiny["flash_latency"][0] == pytest.approx(5, abs=0.01)
    assert tiny["anticipation"][0] == pytest.approx(unscaled["anticipation"][0], abs=1e-9)
    reversing = delay_model(d=3, xs=(15,), baseline=0.0)
    unscaled, tiny = (motion_reversal(small_response(reversing, scale=scale)) for scale in (1.0, 1e-9))
    assert np.isfinite(unscaled["latency"][0]) and tiny["latency"][0] == pytest.approx(unscaled["latency"][0], abs=1e-9)
    assert tiny["index"][0] == pytest.approx(unscaled["index"][0], rel=1e-6)
    trace = 1e-13 * np.array([[0.0, 0.0, 1.0, 2.0, 1.0, 0.0]])
    assert _centroid_time(trace, 0, 6, [2e-13], baseline=0.0)[0] == pytest.approx(3.0)
    assert np.isnan(_centroid_time(np.zeros((1, 6)), 0, 6, [0.0], baseline=0.0)[0])
    with pytest.raises(TypeError):
        _centroid_time(trace, 0, 6, baseline=0.0)  # size is required: no absolute fallback


def test_torch_models_are_aligned_frame_by_frame():
    class LastFrameCentre(torch.nn.Module):  # rate = the newest frame's centre pixel
        def forward(self, x):
            return x[:, -1, 25, 25][:, None] + 1.0

    movie = np.random.default_rng(0).standard_normal((70, 50, 50)).astype(np.float32)
    np.testing.assert_allclose(as_responder(LastFrameCentre())(movie)[0], movie[:, 25, 25] + 1.0, atol=1e-6)
    with pytest.raises(TypeError, match="cannot probe"):
        as_responder(42)
