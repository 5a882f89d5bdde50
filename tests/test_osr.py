import json

import numpy as np
import pytest

from retina.phenomena.osr import fit_line, omitted_stimulus_response, osr_call, plot_osr


def test_fit_line_and_call_on_known_lines():
    periods = np.array([2, 3, 4, 5])
    slope, intercept, r2 = fit_line(periods, np.stack([periods + 6, 2 * periods, np.full(4, 7.0), [3, 9, 2, 8]]))
    np.testing.assert_allclose(slope[:3], [1, 2, 0]) and np.testing.assert_allclose(intercept[:2], [6, 0], atol=1e-12)
    assert r2[0] == pytest.approx(1.0) and np.isnan(r2[2]) and r2[3] < 0.5
    np.testing.assert_array_equal(osr_call(slope, r2), [True, False, False, False])
    assert osr_call([0.5, 1.5, 0.49], [0.5, 0.9, 1.0]).tolist() == [True, True, False]


def _omission_detector(delay=4):
    """Fires ``delay`` frames after a flash was due but did not come (it knows the period from the last two
    flashes): latency from the last flash = period + delay, a slope of exactly 1."""
    def respond(movie):
        dark = movie[:, 0, 0] < 0
        onsets = np.flatnonzero(dark & ~np.concatenate([[False], dark[:-1]]))
        out = np.zeros((2, len(movie)))
        out[1, :] = 0.5
        if len(onsets) >= 2:
            due = onsets[-1] + (onsets[-1] - onsets[-2])
            if due + delay < len(movie):
                out[0, due + delay] = 10.0
        for t in onsets:  # cell 1 answers each flash after 2 frames: no OSR
            out[1, t + 2] = 5.0
        return out
    return respond


def test_osr_known_answers():
    result = omitted_stimulus_response(_omission_detector(delay=4), periods=(3, 4, 5, 6))
    np.testing.assert_array_equal(result.latencies[0], [7, 8, 9, 10])
    np.testing.assert_array_equal(result.latencies[1], [2, 2, 2, 2])
    assert result.slope[0] == pytest.approx(1.0) and result.r2[0] == pytest.approx(1.0)
    assert result.is_osr.tolist() == [True, False]
    json.dumps(result.summary())


def test_ground_truth_circuit_on_cells_show_the_osr_and_off_cells_do_not(tmp_path):
    from datasets.synthetic_retina import default_retina

    circuit = default_retina()
    result = omitted_stimulus_response(circuit)  # the reference protocol: periods 2-5 frames
    types = np.array(circuit.cell_types)
    assert result.is_osr[types == "on"].all()
    assert not result.is_osr[types == "off"].any()
    assert (0.5 <= result.slope[types == "on"]).all() and (result.slope[types == "on"] <= 1.5).all()
    figure = plot_osr({"ground truth": result, "again": result}, tmp_path / "osr.png")
    assert figure.stat().st_size > 10_000 and figure.read_bytes()[:4] == b"\x89PNG"
