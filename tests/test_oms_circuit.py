"""The object-motion circuit (datasets.oms_retina), the ground truth of retina_embedded.oms protocol version 2, and
its recording embedded:oms-whitenoise. The default circuit's recordings keep their names (cache keys) and bytes."""
import numpy as np
import pytest

from neurozoo.benchmarks.phenomena import OMS, _oms, agreement
from neurozoo.datasets.oms_retina import oms_retina
from neurozoo.retina.phenomena import object_motion_sensitivity

SETTINGS = {key: value for key, value in OMS.items() if key != "protocol_version"}


def balanced(system, **settings):
    return object_motion_sensitivity(system, centres=oms_retina().positions, balanced=True, **{**SETTINGS, **settings})


def test_every_oms_cell_is_suppressed_by_coherent_motion_and_the_truth_agrees_with_itself_across_jitter_seeds():
    """Index 0.82-0.88 at jitter seed 0 (0.84-0.95 at seeds 1-5): global motion leaves 1.6-3.4 spikes/s above grey,
    differential 25-35, the object moving alone on a still background 135-166. The default circuit's OMS index
    (version 1) scored 0.027 against itself at another seed; this circuit's agrees with seed 0's at 0.90-0.97 (the
    benchmark's agreement; seeds 1-3 here, 1-5 in docs/retina.md)."""
    result = balanced(oms_retina())
    index = result["oms_index"]
    assert np.all(index > 0.7), index
    assert np.all(result["object"] > result["differential"]) and np.all(result["differential"] > 5 * result["global"])
    for seed in (1, 2, 3):
        other = _oms(oms_retina(), {**OMS, "seed": seed})
        assert agreement(other, index)["value"] > 0.8, (seed, other, index)


@pytest.mark.parametrize("ablation", [{"annulus_weight": 0.0}, {"linear_annulus": True}])
def test_without_the_rectified_annulus_inhibition_there_is_no_object_motion_sensitivity(ablation):
    """The cells still answer the jitter (9-13 spikes/s above grey in either condition), but alike: index 0 up to
    0.0002 without the amacrine's inhibition, -0.009 to -0.004 with it pooling the subunits' signed drive (which
    cancels over the annulus), against the circuit's 0.82-0.88."""
    result = balanced(oms_retina(**ablation))
    assert np.all(result["differential"] > 5) and np.all(np.abs(result["oms_index"]) < 0.02), result["oms_index"]


def test_the_oms_circuit_answers_white_noise_at_its_calibrated_rate():
    from neurozoo.datasets.synthetic_retina import white_noise

    retina = oms_retina()
    rates = retina.simulate(white_noise(1500, np.random.default_rng(3)).astype(np.float32))
    assert rates.shape == (6, 1500) and retina.cell_types == ["oms"] * 6
    assert np.all(np.abs(rates[:, 200:].mean(1) - 20) < 4), rates[:, 200:].mean(1)


def test_the_oms_recording_is_its_own_kind_and_the_default_recordings_keep_their_names(tmp_path, monkeypatch):
    """embedded:oms-whitenoise is recorded from the object-motion circuit (6 cells), its circuit's version in its cache
    key; the default circuit's recordings keep the names (the cache keys) they had before it existed."""
    import json

    import h5py

    from neurozoo.datasets.synthetic_retina import _embedded_path, embedded_kind, load_embedded_retina

    monkeypatch.setenv("NEUROZOO_CACHE", str(tmp_path))
    assert [_embedded_path(kind, {})[0].name for kind in ("whitenoise", "naturalscene")] == [
        "whitenoise-1706b011a5.h5", "naturalscene-1706b011a5.h5"]
    path = load_embedded_retina("oms-whitenoise", n_train=300, n_test=100, n_repeats=2)
    assert _embedded_path("oms-whitenoise", {})[1]["oms_version"] == 1
    with h5py.File(path, "r") as f:
        assert f.attrs["kind"] == "oms-whitenoise" and f.attrs["oms_version"] == 1
        assert json.loads(f.attrs["cell_types"]) == ["oms"] * 6
        assert f["train/response/binned"].shape == (6, 300) and f["train/stimulus"].dtype == np.int8
    assert embedded_kind(tmp_path / "elsewhere" / _embedded_path("oms-whitenoise", {})[0].name) == "oms-whitenoise"
    from neurozoo.datasets.retina_stimulus_class import experiment_stimulus_class

    assert experiment_stimulus_class(path).name == "whitenoise"  # its stimulus class (it was "unknown")


def test_the_balanced_protocols_movies_exchange_the_paths_and_invert_the_background_only():
    from neurozoo.datasets.retina_stimuli import object_motion

    plain = object_motion("differential", 60, (25.0, 25.0), 12.0, seed=3)
    swapped = object_motion("differential", 60, (25.0, 25.0), 12.0, seed=3, swap_paths=True)
    inverted = object_motion("differential", 60, (25.0, 25.0), 12.0, seed=3, background_sign=-1.0)
    # row 0 is background, row 25 columns 20-29 the object: the bars vary along x only
    assert np.array_equal(swapped[:, 25, 20:30], plain[:, 0, 20:30])  # the object on the background's path
    global_ = object_motion("global", 60, (25.0, 25.0), 12.0, seed=3, swap_paths=True)
    assert np.array_equal(global_[:, 0], plain[:, 0])  # global motion on the second path
    assert np.array_equal(inverted[:, 0], -plain[:, 0]) and np.array_equal(inverted[:, 25, 20:30], plain[:, 25, 20:30])
    assert not np.array_equal(plain[:, 25, 20:30], plain[:, 0, 20:30])  # two paths
