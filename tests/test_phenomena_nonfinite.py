"""A system answering a phenomenon probe with NaN or inf rates (a diverged fit): every protocol stops with an error
naming itself, the probe and the cells. The OSR probe had run on and called no cell without a word; the others
returned NaN indices (or, in contrast_gain_control, a per-cell reason)."""
import re

import numpy as np
import pytest

from neurozoo import benchmarks
from neurozoo.datasets.errors import UserFacingError
from neurozoo.retina.phenomena import (NonFiniteRates, as_responder, contrast_adaptation, contrast_gain_control,
                                       latency_coding, motion_anticipation, motion_reversal, object_motion_sensitivity,
                                       omitted_stimulus_response, paired_flash, reversing_grating, step_response)
from neurozoo.retina.phenomena.osr import PERIODS


def diverged(bad=np.nan, after_calls=0):
    """Five cells answering the frame's mean; cells 1 and 3 give ``bad`` in one frame, from call ``after_calls`` on."""
    calls = []

    def system(movie):
        calls.append(1)
        rates = np.repeat(1.0 + movie.mean((1, 2))[None], 5, 0)
        if len(calls) > after_calls:
            rates[[1, 3], len(movie) // 2] = bad
        return rates
    return system


# (protocol, its analysis with fast settings, the first probe it runs)
PROTOCOLS = [
    ("step_response", step_response, "a step of intensity 1"),
    ("paired_flash", paired_flash, "one flash"),
    ("latency_coding", latency_coding, "a flash of intensity 0.5"),
    ("reversing_grating", reversing_grating, "the grating at phase 0"),
    ("motion_anticipation", motion_anticipation, "a bar flashed at x=3.5 px"),
    ("motion_reversal", motion_reversal, "the reversing bar"),
    ("contrast_adaptation", lambda system: contrast_adaptation(system, cycles=2),
     "white noise switching between sd 0.3 and 1"),
    ("contrast_gain_control", lambda system: contrast_gain_control(system, frames=3000),
     "white noise of sd 0.3 (low contrast)"),
    ("object_motion_sensitivity", lambda system: object_motion_sensitivity(system, n_frames=200),
     "a grey screen (the baseline)"),
    ("omitted_stimulus_response", omitted_stimulus_response, f"a flash train of period {PERIODS[0]} frames"),
]


@pytest.mark.parametrize("protocol, analysis, probe", PROTOCOLS, ids=[p[0] for p in PROTOCOLS])
def test_every_protocol_names_itself_the_probe_and_the_cells(protocol, analysis, probe):
    with pytest.raises(NonFiniteRates, match=rf"^{protocol}: system's rates to {re.escape(probe)} are NaN or inf in "
                                             r"cells 1, 3 of 5 \(2 values of \d+\); expected finite rates"):
        analysis(diverged())
    with pytest.raises(NonFiniteRates, match=r"cells 1, 3 of 5"):  # inf too
        analysis(diverged(bad=np.inf))
    analysis(diverged(after_calls=10 ** 6))  # the same system without the bad values runs through


def test_the_probe_named_is_the_one_answered_with_nan():
    """The OSR sweep's third period (its first two answered finitely), and one of paired_flash's pairs."""
    with pytest.raises(NonFiniteRates, match=rf"^omitted_stimulus_response: system's rates to a flash train of period "
                                             rf"{PERIODS[2]} frames are NaN"):
        omitted_stimulus_response(diverged(after_calls=2))
    with pytest.raises(NonFiniteRates, match=r"^paired_flash: system's rates to two flashes 8 frames apart are NaN"):
        paired_flash(diverged(after_calls=2), gaps=(4, 8))
    # many cells: the first ten named, and how many
    wide = lambda movie: np.full((30, len(movie)), np.nan)  # noqa: E731
    with pytest.raises(NonFiniteRates, match=r"in cells 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, \.\.\. \(30 cells\) of 30 "):
        step_response(wide)


def test_a_wrapper_without_protocol_leaves_the_check_to_the_analysis():
    """A benchmark's safe-point wrapper (no protocol) passes the rates on; the analysis's own responder names itself,
    the probe and the system the wrapper wraps; it is a user-facing error (zoo prints one line)."""
    system = diverged()
    wrapped = as_responder(system, safe_point=lambda: None)
    assert np.isnan(wrapped(np.zeros((60, 50, 50), np.float32))).sum() == 2
    with pytest.raises(NonFiniteRates, match=r"^step_response: system's rates to a step of intensity 1 ") as error:
        step_response(wrapped)
    assert isinstance(error.value, UserFacingError)


def test_a_phenomenon_benchmark_stops_with_the_error():
    """``zoo run`` records the error as the job's failure (leaderboard.scorer.work), as any other model's error."""
    bench = benchmarks.load("retina_embedded.paired-flash", sizes={"n_train": 2500, "n_test": 400, "n_repeats": 5})
    with pytest.raises(NonFiniteRates, match=r"^paired_flash: system's rates to one flash are NaN or inf in cells "
                                             r"1, 3 of 5"):
        bench.score(diverged(), progress=False)
