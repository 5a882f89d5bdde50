"""embedded:oms-gratingmotion: the object-motion circuit (datasets.oms_retina) recorded under the OMS probe's own
stimulus family at other positions, phases and jitter paths (datasets.synthetic_retina.grating_motion), the data of
docs/retina.md's capacity check; the other recordings and the probe's movies keep their bytes."""
import hashlib

import numpy as np

from neurozoo.datasets.synthetic_retina import FRAME_SIZE, GRATING_MOTION_CONDITIONS, grating_motion
from neurozoo.datasets.retina_stimuli import object_motion

SMALL = {"n_train": 300, "n_test": 100, "n_repeats": 2}
CONDITIONS = list(GRATING_MOTION_CONDITIONS)


def test_each_segment_is_the_probes_stimulus_at_its_own_draw_never_the_benchmarks_jitter_seed():
    """Every 200-frame segment is object_motion at the probe's settings (radius 12, 4-px bars, contrast 0.3) with the
    segment's condition, centre, phase, background sign and seed; no seed is the benchmark's 0, the centres lie
    within 8 px of the frame's centre, and each segment has its own paths and phase."""
    scene = grating_motion(4000, np.random.default_rng(5))
    starts = np.arange(0, 4000, 200)
    assert np.all(scene["seed"] >= 1)
    assert np.all(np.abs(scene["centre"] - FRAME_SIZE / 2) <= 8)
    assert np.all(np.abs(scene["movie"]) == np.float32(0.3))
    for start in starts:
        expected = object_motion(CONDITIONS[scene["condition"][start]], 200, tuple(scene["centre"][start]), 12.0, 4,
                                 0.3, 1.0, 20.0, int(scene["seed"][start]),
                                 background_sign=scene["background_sign"][start], phase=scene["phase"][start])
        assert np.array_equal(scene["movie"][start:start + 200], expected), start
    assert len(set(scene["condition"][starts])) >= 3 and set(scene["background_sign"][starts]) == {-1.0, 1.0}
    assert len(np.unique(scene["seed"][starts])) == 20 and len(np.unique(scene["phase"][starts])) == 20


def test_the_probes_movies_keep_their_bytes_at_phase_0():
    """object_motion's new ``phase`` is 0 by default: the probe's movies (every condition, both path orders, both
    background signs) are the bytes they were before it (digest taken from the code before the argument)."""
    digest = hashlib.sha256()
    for condition in ("global", "differential", "object", "static"):
        for swap in (False, True):
            for sign in (1.0, -1.0):
                digest.update(object_motion(condition, 400, (25.0, 29.0), 12.0, 4, 0.3, 1.0, 20.0, 0, swap_paths=swap,
                                            background_sign=sign).tobytes())
    assert digest.hexdigest()[:16] == "98ebee1efe8d9080"
    shifted = object_motion("global", 50, (25.0, 25.0), 12.0, 4, 0.3, 1.0, 20.0, 0, phase=4.0)
    assert np.array_equal(shifted, -object_motion("global", 50, (25.0, 25.0), 12.0, 4, 0.3, 1.0, 20.0, 0))


def test_the_circuit_suppresses_global_motion_in_the_recordings_segments():
    """The data show what the probe asks: on the segments (frames 50-199 of each, 3000 frames drawn as the recording
    draws them), the six cells fire 5-10 times more under differential than under global motion and more again with
    the object alone (the recording's training split: global 2.1-2.6, differential 17-23, object 74-98 spikes/s)."""
    from neurozoo.datasets.oms_retina import oms_retina

    scene = grating_motion(3000, np.random.default_rng(7))
    rates = oms_retina().rates(scene["movie"])
    late = np.arange(3000) % 200 >= 50
    mean = {name: rates[:, late & (scene["condition"] == k)].mean(1) for k, name in enumerate(CONDITIONS)
            if np.any(scene["condition"] == k)}
    assert {"global", "differential", "object"} <= set(mean), sorted(mean)
    assert np.all(mean["differential"] > 4 * mean["global"]), mean
    assert np.all(mean["object"] > 2 * mean["differential"]), mean


def test_the_gratingmotion_recording_is_deterministic_and_holds_the_probes_intensities(tmp_path, monkeypatch):
    """Same seed, same stimulus and spikes; another seed, another movie. Intensities +-0.3 as the probe's (float16),
    not z-scored; six OMS cells; the stimulus class is neither white noise nor natural scenes, so unknown."""
    import json

    import h5py

    from neurozoo.datasets.retina_stimulus_class import experiment_stimulus_class
    from neurozoo.datasets.synthetic_retina import (_embedded_path, embedded_kind, generate_recording,
                                                    load_embedded_retina)

    def recorded(path):
        with h5py.File(path, "r") as f:
            keys = ("train/stimulus", "test/stimulus", "train/response/binned")
            return {key: f[key][()] for key in keys}, dict(f.attrs)

    monkeypatch.setenv("NEUROZOO_CACHE", str(tmp_path))
    path = load_embedded_retina("oms-gratingmotion", **SMALL)
    data, attrs = recorded(path)
    again, _ = recorded(generate_recording(tmp_path / "again.h5", "oms-gratingmotion", **SMALL))
    other, _ = recorded(generate_recording(tmp_path / "other.h5", "oms-gratingmotion", **SMALL, seed=1))
    assert all(np.array_equal(data[key], again[key]) for key in data)
    assert not np.array_equal(data["train/stimulus"], other["train/stimulus"])
    assert data["train/stimulus"].dtype == np.float16 and data["train/stimulus"].shape == (300, FRAME_SIZE, FRAME_SIZE)
    assert np.all(np.abs(data["train/stimulus"]) == np.float16(0.3))
    assert attrs["kind"] == "oms-gratingmotion" and json.loads(attrs["cell_types"]) == ["oms"] * 6
    assert experiment_stimulus_class(path).name == "unknown"
    assert embedded_kind(tmp_path / "x" / _embedded_path("oms-gratingmotion", {})[0].name) == "oms-gratingmotion"
    assert data["train/response/binned"].shape == (6, 300)


def test_oms_naturalscene_keeps_its_stimulus_bytes(tmp_path):
    """The kind is appended to KINDS (whose index seeds each kind's generator): embedded:oms-naturalscene's stimulus
    at SMALL sizes, seed 0, is the bytes generated before it (the three earlier kinds are pinned in
    tests/test_oms_naturalscene.py)."""
    import h5py

    from neurozoo.datasets.synthetic_retina import generate_recording

    with h5py.File(generate_recording(tmp_path / "oms-naturalscene.h5", "oms-naturalscene", **SMALL), "r") as f:
        stimulus = f["train/stimulus"][()].tobytes() + f["test/stimulus"][()].tobytes()
    assert hashlib.sha256(stimulus).hexdigest()[:16] == "9d550fb1b06523e5"


def test_an_ln_model_fitted_on_the_gratingmotion_recording_still_has_no_object_motion_sensitivity(tmp_path):
    """The control of the capacity check: data that show the suppression plainly (global motion a tenth of
    differential) do not give an LN model OMS. Fitted for 2 epochs on 4000 frames of the recording, it answers
    retina_embedded.oms's probe with an index within 0.01 of 0 in every cell it answers (4 of 6 here, -0.001 to 0.0003), so its score
    against the circuit's 0.82-0.88 is below 0.012 (fixed LN cells: at most 0.0032)."""
    import torch

    from neurozoo.benchmarks.phenomena import OMS, _oms
    from neurozoo.datasets.synthetic_retina import generate_recording
    from neurozoo.retina.fit import create_model, fit

    path = generate_recording(tmp_path / "gm.h5", "oms-gratingmotion", n_train=4000, n_test=200, n_repeats=2)
    torch.manual_seed(0)
    index = _oms(fit(create_model("ln", n_cells=6), path, epochs=2, seed=0).model, OMS)
    answered = index[np.isfinite(index)]
    assert len(answered) >= 3 and np.all(np.abs(answered) < 0.01), index
