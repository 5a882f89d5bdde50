"""The classic phenomena on the ground-truth circuit: present where the circuit has the mechanism, gone from the
same circuit with that mechanism removed (issue 14: "the mechanism is present in the circuit, and the ablated
circuit fails"). Contrast adaptation and object-motion sensitivity: test_phenomena_adaptation.py; the OSR:
test_osr.py. Measured (2026-12-02), in docs/retina.md, "Phenomena on the ground truth"."""
import dataclasses

import numpy as np

from neurozoo.datasets.synthetic_retina import CircuitParams, GroundTruthRetina, default_retina
from neurozoo.retina.phenomena import paired_flash, reversing_grating, step_response

NO_ADAPTATION = dict(depletion=0.0, gain_control=0.0)
LINEAR_SUBUNITS = dict(on_threshold=-30.0, off_threshold=-30.0)  # the bipolar drive never reaches its rectification


def circuit(**changes) -> GroundTruthRetina:
    return GroundTruthRetina(params=dataclasses.replace(CircuitParams(), **changes)) if changes else default_retina()


def cells(kind):
    return np.flatnonzero(np.array(CircuitParams().cell_types) == kind)


def test_paired_flash_depression_needs_the_depleting_synapse():
    """OFF cells, two dark flashes: the second response is smaller at short gaps and recovers with the gap
    (0.73-0.84 at 4 frames, ~1 from 8 on); without depletion it is whole at every gap (1.00-1.02)."""
    off = cells("off")
    result = paired_flash(circuit().simulate)
    full = result["recovery"][off]
    assert full[:, 0].max() < 0.9 and np.all(full[:, -1] > 0.97)
    assert np.all(full[:, -1] - full[:, 0] > 0.1)
    ablated = paired_flash(circuit(depletion=0.0).simulate)["recovery"][off]
    np.testing.assert_allclose(ablated, 1.0, atol=0.03)
    # a dark flash silences the ON cells (first response: their baseline, ~4.9 spikes/s, down to 0); the ratio
    # would measure what the second flash changed instead (4-61), so they have none
    assert result["driven"][off].all() and not result["driven"][cells("on")].any()
    assert np.isnan(result["recovery"][cells("on")]).all()


def test_step_transience_needs_adaptation():
    """ON cells, a bright step: transient (index 0.54-0.66) in the circuit, sustained (0.0) without the depleting
    synapse and the divisive gain control; each alone leaves it partly transient."""
    on = cells("on")
    assert np.all(step_response(circuit().simulate)["transience"][on] > 0.45)
    np.testing.assert_allclose(step_response(circuit(**NO_ADAPTATION).simulate)["transience"][on], 0.0, atol=0.05)
    for one_left in (dict(depletion=0.0), dict(gain_control=0.0)):
        assert np.all(step_response(circuit(**one_left).simulate)["transience"][on] > 0.1)


def test_frequency_doubling_needs_rectified_subunits():
    """ON and OFF cells, a contrast-reversing grating, adaptation removed from both circuits so that only the
    subunits differ: rectified subunits answer every reversal (F2/F1 0.99-1.51), linear ones follow the
    grating's own frequency (F2/F1 0.14-0.26). (With adaptation kept, the depleting synapse doubles frequency
    too, so the ablation is made without it.)"""
    on_off_cells = np.r_[cells("off"), cells("on")]
    rectified = reversing_grating(circuit(**NO_ADAPTATION).simulate)["f2_f1"][on_off_cells]
    linear = reversing_grating(circuit(**NO_ADAPTATION, **LINEAR_SUBUNITS).simulate)["f2_f1"][on_off_cells]
    assert np.all(rectified > 0.9) and np.all(linear < 0.35)
    assert np.all(rectified > 3 * linear)
    assert reversing_grating(circuit().simulate)["f2_f1"][on_off_cells].min() > 1.0  # the full circuit doubles too


def test_linear_subunit_ablation_keeps_the_cells_responsive():
    """The ablation is a fair one: the linear-subunit circuit (its output calibrated to white noise like the
    circuit's) still answers a bright step in its ON cells."""
    rates = step_response(circuit(**NO_ADAPTATION, **LINEAR_SUBUNITS).simulate)
    assert np.all(rates["on_peak"][cells("on")] - rates["baseline"][cells("on")] > 5.0)
