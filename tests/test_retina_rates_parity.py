"""The smoothed rates of the deep-retina layout against the original's rule, written here from its source.

The lab's rule is ``estfr`` (baccuslab/pyret pyret/spiketools.py lines 109-141 at 07421d2; vendored as
baccuslab/torch-deep-retina torchdeepretina/pyret_func.py lines 4-30 at b0d88c4): sd ``sigma`` in seconds (0.01 s
default: the ``firing_rate_10ms`` key), taps ``tau = arange(-5 sigma, 5 sigma, dt)`` (line 135), normalised to sum
1 (line 137), ``convolve(filt, counts, 'full')[size:size + T] / dt`` with ``size = floor(n_taps / 2)`` (pyret_func.py
line 27). A count at frame ``s`` therefore adds, at frame ``s + d``, the tap with ``tau = -5 sigma + (d + size) dt``.
The tables below are that tap for every ``d``, in closed form; the reference sums them spike by spike.
"""
import numpy as np
import pytest

from neurozoo.datasets.retina_h5 import firing_rates


def _taps(sd_ms: float, frame_ms: float) -> dict:
    """{d: weight} for the offsets d (frames, from the spike's frame) that estfr reaches, normalised to sum 1.

    10 ms frames: sd 10 ms -> d = -5..4, tau = d frames; sd 20 ms -> d = -10..9; sd 5 ms -> the five taps at
    -25, -15, -5, 5, 15 ms land on d = -2..2 with tau = d frames - 5 ms (half a frame early)."""
    table = {
        (5.0, 10.0): {d: np.exp(-0.5 * ((10 * d - 5) / 5) ** 2) for d in range(-2, 3)},
        (10.0, 10.0): {d: np.exp(-0.5 * d ** 2) for d in range(-5, 5)},
        (20.0, 10.0): {d: np.exp(-0.5 * (d / 2) ** 2) for d in range(-10, 10)},
        # 20 ms frames: sd 10 ms is half a frame (taps -50, -30, -10, 10, 30 ms), sd 20 ms one frame
        (10.0, 20.0): {d: np.exp(-0.5 * ((20 * d - 10) / 10) ** 2) for d in range(-2, 3)},
        (20.0, 20.0): {d: np.exp(-0.5 * d ** 2) for d in range(-5, 5)},
    }[(sd_ms, frame_ms)]
    total = sum(table.values())
    return {d: w / total for d, w in table.items()}


def _reference(counts: np.ndarray, sd_ms: float, frame_ms: float) -> np.ndarray:
    """estfr's rate (spikes/s) of one cell's counts, summed spike by spike; what falls outside the record is lost
    (the 'full' convolution pads with zeros and is not renormalised)."""
    rate = np.zeros(len(counts))
    for s in np.flatnonzero(counts):
        for d, w in _taps(sd_ms, frame_ms).items():
            if 0 <= s + d < len(counts):
                rate[s + d] += counts[s] * w / (frame_ms / 1000)
    return rate


KEYS = {"firing_rate_5ms": 5.0, "firing_rate_10ms": 10.0, "firing_rate_20ms": 20.0}


@pytest.mark.parametrize("key", KEYS)
def test_one_spike_gives_the_original_rate_exactly(key):
    counts = np.zeros(60, np.float32)
    counts[30] = 1
    ours = firing_rates(counts[None])[key][0]
    np.testing.assert_allclose(ours, _reference(counts, KEYS[key], 10.0), rtol=1e-6, atol=1e-9)


def test_the_5ms_rate_peaks_half_a_frame_late_and_the_10ms_kernel_is_one_sided_at_5_sd():
    counts = np.zeros(60, np.float32)
    counts[30] = 1
    rates = firing_rates(counts[None])
    five, ten = rates["firing_rate_5ms"][0], rates["firing_rate_10ms"][0]
    assert five[30] == pytest.approx(five[31]) and five[30] > 10 * five[29]  # split evenly over frames 30 and 31
    assert ten[25] > 0 and ten[35] == 0  # taps -5..+4 sd: arange(-5 sd, 5 sd) stops before +5 sd


def test_many_cells_and_repeats_with_spikes_at_the_edges():
    rng = np.random.default_rng(3)
    counts = rng.poisson(0.4, (4, 3, 150)).astype(np.float32)  # (repeats, cells, T)
    counts[:, :, :3] = 2  # spikes whose kernel reaches past the start and, below, the end
    counts[:, :, -3:] = 1
    rates = firing_rates(counts)
    for key, sd in KEYS.items():
        assert rates[key].shape == counts.shape and rates[key].dtype == np.float32
        for r in range(4):
            for c in range(3):
                np.testing.assert_allclose(rates[key][r, c], _reference(counts[r, c], sd, 10.0), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("key", ["firing_rate_10ms", "firing_rate_20ms"])
def test_the_width_is_in_ms_converted_by_the_frame_length(key):
    """20 ms frames: the 20 ms key is sd one frame, the 10 ms key half a frame; a width kept in frames (sd 1 or 2
    frames whatever the frame length) or taken as seconds (no smoothing) fails this."""
    counts = np.zeros(40, np.float32)
    counts[[20, 22]] = [1, 2]
    ours = firing_rates(counts[None], frame_ms=20.0)[key][0]
    np.testing.assert_allclose(ours, _reference(counts, KEYS[key], 20.0), rtol=1e-6, atol=1e-9)


def test_the_centered_option_is_within_1e_4_of_the_original_at_10_and_20_ms_but_not_at_5():
    rng = np.random.default_rng(4)
    counts = rng.poisson(0.5, (2, 400)).astype(np.float32)
    original, centered = firing_rates(counts), firing_rates(counts, rule="centered")
    for key in ("firing_rate_10ms", "firing_rate_20ms"):
        np.testing.assert_allclose(centered[key], original[key], rtol=0, atol=1e-4 * original[key].max())
    assert np.abs(centered["firing_rate_5ms"] - original["firing_rate_5ms"]).max() > 0.2 * original["firing_rate_5ms"].max()
    with pytest.raises(ValueError, match="deep-retina, centered"):
        firing_rates(counts, rule="gaussian")
