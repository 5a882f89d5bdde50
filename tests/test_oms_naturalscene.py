"""embedded:oms-naturalscene: the object-motion circuit (datasets.oms_retina) recorded under natural scenes whose
objects move on their own over the eye-movement-jittered background (datasets.synthetic_retina.object_scene), so that
a fit sees differential motion; the other recordings keep their bytes."""
import hashlib

import numpy as np
import pytest

from neurozoo.datasets.synthetic_retina import FRAME_SIZE, object_scene

SMALL = {"n_train": 300, "n_test": 100, "n_repeats": 2}


def _recorded(path):
    import h5py

    with h5py.File(path, "r") as f:
        return {key: f[key][()] for key in ("train/stimulus", "test/stimulus", "train/response/binned")}, dict(f.attrs)


def _displacement(before, after, pixels, reach=4):
    """The integer shift ``d`` (y, x) with ``after[p + d] == before[p]`` at every pixel ``p`` of ``pixels`` (a boolean
    mask; ``p + d`` must stay in the frame), or None if no shift within ``reach`` px matches."""
    ys, xs = np.nonzero(pixels)
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            y, x = ys + dy, xs + dx
            if (y.min() >= 0 and x.min() >= 0 and y.max() < FRAME_SIZE and x.max() < FRAME_SIZE
                    and np.array_equal(after[y, x], before[ys, xs])):
                return dy, dx
    return None


def test_the_objects_move_on_their_own_paths_over_the_jittered_background():
    """Measured from the pixels: between consecutive frames the background (pixels at least 6 px from every object)
    moves by the eye's step and each object's inside by the eye's step plus its own, so object and background
    move apart in most frames; with ``own_jitter=0`` the same scenes move as one (global motion only)."""
    scene = object_scene(300, np.random.default_rng(4))
    movie, centres, radii = scene["movie"], scene["centres"], scene["radii"]
    y, x = np.mgrid[:FRAME_SIZE, :FRAME_SIZE]
    apart = measured = 0
    for t in range(299):
        if t % 100 == 99:  # a new scene
            continue
        distance = [np.hypot(y - centres[s, :, 0, None, None], x - centres[s, :, 1, None, None]) for s in (t, t + 1)]
        background = np.all([(d > radii[s][:, None, None] + 6).all(0) for s, d in zip((t, t + 1), distance)], 0)
        background &= (y >= 5) & (y < FRAME_SIZE - 5) & (x >= 5) & (x < FRAME_SIZE - 5)
        d_background = _displacement(movie[t], movie[t + 1], background)
        assert d_background == tuple(scene["scene_shift"][t + 1] - scene["scene_shift"][t]), t
        interior = (y >= 5) & (y < FRAME_SIZE - 5) & (x >= 5) & (x < FRAME_SIZE - 5)
        for k in range(len(radii[t])):
            # the object's inside away from the frame's edges and from the objects drawn over it, in both frames
            inside = (distance[0][k] <= radii[t, k]) & interior
            for j in range(k + 1, len(radii[t])):
                inside &= (distance[0][j] > radii[t, j] + 5) & (distance[1][j] > radii[t + 1, j] + 5)
            if inside.sum() < 20:
                continue
            d_object = _displacement(movie[t], movie[t + 1], inside)
            assert d_object == tuple(centres[t + 1, k] - centres[t, k]), (t, k)
            measured += 1
            apart += d_object != d_background
    assert measured > 100 and apart > 0.6 * measured, (measured, apart)

    still = object_scene(300, np.random.default_rng(4), own_jitter=0.0)
    assert np.array_equal(still["scene_shift"], scene["scene_shift"])  # the same eye path
    relative = still["centres"] - still["scene_shift"][:, None]  # each object fixed on the scene (away from the edges)
    assert np.all(np.ptp(relative[:100], 0) <= 1) and not np.all(np.ptp(scene["centres"][:100] -
                                                                        scene["scene_shift"][:100, None], 0) <= 1)


def test_the_oms_naturalscene_recording_is_deterministic_standardised_and_drives_the_oms_cells(tmp_path, monkeypatch):
    """Same seed, same stimulus and spikes; another seed, another movie. The movie has zero mean and unit sd (as
    embedded:naturalscene's), stored as float16 with the natural-scene stimulus class, and the six OMS cells fire
    (tens of spikes/s: natural images drive the zero-DC subunits well above white noise's 20 spikes/s)."""
    import json

    from neurozoo.datasets.retina_stimulus_class import experiment_stimulus_class
    from neurozoo.datasets.synthetic_retina import (_embedded_path, embedded_kind, generate_recording,
                                                    load_embedded_retina)

    monkeypatch.setenv("NEUROZOO_CACHE", str(tmp_path))
    path = load_embedded_retina("oms-naturalscene", **SMALL)
    again, _ = _recorded(generate_recording(tmp_path / "again.h5", "oms-naturalscene", **SMALL))
    other, _ = _recorded(generate_recording(tmp_path / "other.h5", "oms-naturalscene", **SMALL, seed=1))
    data, attrs = _recorded(path)
    assert all(np.array_equal(data[key], again[key]) for key in data)
    assert not np.array_equal(data["train/stimulus"], other["train/stimulus"])
    stimulus = data["train/stimulus"].astype(np.float64)
    assert data["train/stimulus"].dtype == np.float16 and stimulus.shape == (300, FRAME_SIZE, FRAME_SIZE)
    assert abs(stimulus.mean()) < 1e-3 and abs(stimulus.std() - 1) < 1e-3
    assert attrs["kind"] == "oms-naturalscene" and json.loads(attrs["cell_types"]) == ["oms"] * 6
    assert experiment_stimulus_class(path).name == "naturalscene"
    assert embedded_kind(tmp_path / "x" / _embedded_path("oms-naturalscene", {})[0].name) == "oms-naturalscene"
    spikes_per_s = data["train/response/binned"].sum(1) / 3.0  # 300 frames at 100 Hz
    assert data["train/response/binned"].shape == (6, 300) and np.all(spikes_per_s > 10), spikes_per_s


def test_the_oms_cells_fire_more_when_the_objects_move_on_their_own():
    """The circuit under the same scenes with and without the objects' own motion (one normalisation for both): the
    differential motion raises the six cells' mean rate (1.1-1.4 times on two seeds; not the 10 times of the
    grating probe: natural images' uneven local contrast leaves the annulus's inhibition short of the centre's
    excitation under global motion too, so the cells fire 40-100 spikes/s without the objects' own motion)."""
    from neurozoo.datasets.oms_retina import oms_retina

    moving = object_scene(1000, np.random.default_rng(6))["movie"]
    still = object_scene(1000, np.random.default_rng(6), own_jitter=0.0)["movie"]
    mean, sd = moving.mean(), moving.std()
    rates = [oms_retina().rates((movie - mean) / sd)[:, 100:].mean() for movie in (moving, still)]
    assert rates[0] > 1.1 * rates[1] and rates[1] > 20, rates


# the stimuli of the recordings that existed before embedded:oms-naturalscene, at SMALL sizes and seed 0, as generated
# before it was added (int8 white noise, float16 natural images; the circuit's spikes are left out: their floats
# may round otherwise on another CPU)
STIMULUS_SHA256 = {"whitenoise": "e056fb5ddd89a158", "naturalscene": "7a67c4d606432163",
                   "oms-whitenoise": "a7a117ebf8aed7ba"}


@pytest.mark.parametrize("kind", sorted(STIMULUS_SHA256))
def test_the_other_recordings_keep_their_stimulus_bytes(kind, tmp_path):
    from neurozoo.datasets.synthetic_retina import generate_recording

    data, _ = _recorded(generate_recording(tmp_path / f"{kind}.h5", kind, **SMALL))
    digest = hashlib.sha256(data["train/stimulus"].tobytes() + data["test/stimulus"].tobytes()).hexdigest()[:16]
    assert digest == STIMULUS_SHA256[kind]
