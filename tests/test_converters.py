"""Converters on the real published files, checked against independent computations from the raw files."""
import shutil
import zipfile

import numpy as np
import pytest
import scipy.io
from PIL import Image

from neurozoo import datasets
from neurozoo.datasets.cache import cache_dir, shared_data_dir
from neurozoo.datasets.converters import converted_folder
from neurozoo.datasets.converters.zhang_desimone_it import bin_counts
from neurozoo.datasets.errors import DataError


@pytest.fixture(scope="module")
def module_cache(session_cache):
    """Module fixtures run before conftest's per-test cache fixture: point them at the same session cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NEUROZOO_CACHE", session_cache)
        yield


@pytest.fixture(scope="module")
def cowley(request, module_cache):
    shared = request.getfixturevalue("shared_data")
    return datasets.DATASETS.create("cowley2023.v4_210325"), shared / "v4_cowley2023"


@pytest.fixture(scope="module")
def zhang(request, module_cache):
    shared = request.getfixturevalue("shared_data")
    return datasets.DATASETS.create("zhang_desimone2011.it"), shared / "it_zhang_desimone2011"


@pytest.fixture(scope="module")
def allen(request, module_cache):
    shared = request.getfixturevalue("shared_data")
    return datasets.DATASETS.create("allen_bo.v1_natural_scenes"), shared / "v1_allen_natural_scenes"


@pytest.fixture(scope="module")
def shared_data():  # module-scoped twin of conftest's fixture
    folder = shared_data_dir()
    if not folder.is_dir():
        pytest.skip(f"real recordings not found at {folder} (set NEUROZOO_SHARED_DATA)")
    return folder


def test_cowley_210325_assembly(cowley):
    (assembly, stimuli), folder = cowley
    raw = np.load(folder / "responses_210325_raw.npy")
    shown = ~np.isnan(raw[0])
    assert assembly.dims == ("presentation", "neuroid", "time_bin")
    assert assembly.shape == (int(shown.sum()), 50, 1) == (4840, 50, 1)
    assert not np.isnan(assembly.values).any()
    assert list(assembly["time_bin_start"].values) == [70] and list(assembly["time_bin_end"].values) == [170]
    assert set(assembly["region"].values) == {"V4"} and set(assembly["object_name"].values) == {"unlabelled"}
    # one presentation per shown (image, repeat), holding that repeat's counts for all 50 units
    image, repeat = 316, 4
    row = np.flatnonzero((assembly["stimulus_id"].values == "cowley2023_210325_0317") & (assembly["repetition"].values == repeat))
    np.testing.assert_array_equal(assembly.values[row[0], :, 0], raw[:, image, repeat])
    counts = np.bincount(assembly["image_index"].values, minlength=640)
    np.testing.assert_array_equal(counts, shown.sum(axis=1))
    # the repeat means equal the separately published averaged file
    averaged = np.load(folder / "responses_210325_repeat_averaged.npy")
    sums = np.zeros((640, 50))
    np.add.at(sums, assembly["image_index"].values, assembly.values[:, :, 0])
    np.testing.assert_allclose(sums / counts[:, None], averaged.T, rtol=1e-12)


def test_cowley_210325_stimuli(cowley):
    (assembly, stimuli), folder = cowley
    assert len(stimuli) == 640 and stimuli.identifier == "cowley2023.v4_210325"
    assert set(assembly["stimulus_id"].values) == set(stimuli["stimulus_id"])
    path = stimuli.get_stimulus("cowley2023_210325_0640")
    with zipfile.ZipFile(folder / "images_210325.zip") as archive:
        assert path.read_bytes() == archive.read("image0640.jpg")
    with Image.open(path) as image:
        assert image.size == (112, 112) and image.mode == "RGB"
    assert stimuli.sha256() == datasets.DATASETS.create("cowley2023.v4_210325").stimulus_set.sha256()


def test_cowley_190923_means_only(shared_data):
    assembly, stimuli = datasets.DATASETS.create("cowley2023.v4_190923")
    means = np.load(shared_data / "v4_cowley2023" / "responses_190923_repeat_averaged.npy")
    assert assembly.shape == (1200, 33, 1) and len(stimuli) == 1200
    assert assembly.attrs["repeat_averaged"] == 1 and set(assembly["repetition"].values) == {0}
    np.testing.assert_array_equal(assembly.values[:, :, 0], means.T)
    assert stimuli.get_stimulus("cowley2023_190923_1200").is_file()


def test_zhang_desimone_shapes_and_labels(zhang):
    (assembly, stimuli), folder = zhang
    assert assembly.shape == (21 * 20, 132, 19)
    assert list(assembly["time_bin_start"].values) == list(range(70, 260, 10))
    assert list(assembly["time_bin_end"].values) == list(range(80, 270, 10))
    assert set(assembly["object_name"].values) == {"car", "couch", "face", "flower", "guitar", "hand", "kiwi"}
    assert set(assembly["position"].values) == {"lower", "middle", "upper"}
    assert len(stimuli) == 21 and not stimuli.has_images
    assert set(assembly["repetition"].values) == set(range(20))
    assert (assembly.values[np.isfinite(assembly.values)] >= 0).all() and np.nansum(assembly.values) > 0
    assert sorted(assembly["neuroid_id"].values)[0] == "bp1001spk_01A"


def _trials_by_hand(path):
    """Independent reading: default loadmat (record structs), labels combined as '<object>_<position>'."""
    mat = scipy.io.loadmat(path)
    labels = mat["raster_labels"][0, 0]
    combined = [str(x[0]) for x in labels["combined_ID_position"][0]]
    onset_ms = int(mat["raster_site_info"][0, 0]["alignment_event_time"][0, 0])  # 1-based ms of onset
    return mat["raster_data"], combined, onset_ms


@pytest.mark.parametrize("unit, condition, k, time_bin", [
    ("bp1001spk_01A", "hand_upper", 0, 0),
    ("bp1002spk_03A", "face_middle", 7, 5),
    ("bp1021spk_04C", "kiwi_lower", 18, 18),
    ("bp1021spk_04C", "flower_middle", 19, 9),  # a 20th trial: every trial is kept
])
def test_zhang_desimone_counts_by_hand(zhang, unit, condition, k, time_bin):
    (assembly, _), folder = zhang
    raster, combined, onset_ms = _trials_by_hand(folder / f"{unit}_raster_data.mat")
    trial = [i for i, c in enumerate(combined) if c == condition][k]
    first_ms = onset_ms + 70 + 10 * time_bin  # 1-based ms column of the bin's first millisecond
    expected = sum(int(raster[trial, ms - 1]) for ms in range(first_ms, first_ms + 10))
    row = np.flatnonzero((assembly["stimulus_id"].values == condition) & (assembly["repetition"].values == k))[0]
    column = list(assembly["neuroid_id"].values).index(unit)
    assert assembly.values[row, column, time_bin] == expected
    # and the unit's total over all its trials and bins
    total = int(raster[:, onset_ms - 1 + 70:onset_ms - 1 + 260].sum())
    assert np.nansum(assembly.values[:, column]) == total


def test_zhang_desimone_keeps_every_trial(zhang):
    """Seven units of session bp1006 have 19 trials of flower_middle, every other unit and condition 20: the
    missing trial is NaN in those units' column of one presentation; no other trial is dropped."""
    (assembly, _), folder = zhang
    counts = [scipy.io.loadmat(p)["raster_data"].shape[0] for p in sorted(folder.glob("*.mat"))]
    assert min(counts) == 419 and max(counts) == 420
    assert list(assembly["n_trials"].values) == counts
    finite = np.isfinite(assembly.values).all(axis=2)  # (presentation, neuroid): a whole trial or none
    assert not (np.isnan(assembly.values).any(axis=2) & finite).any()
    np.testing.assert_array_equal(finite.sum(axis=0), counts)
    short = np.flatnonzero(np.array(counts) == 419)
    assert all(assembly["neuroid_id"].values[u].startswith("bp1006") for u in short) and len(short) == 7
    row = np.flatnonzero((assembly["stimulus_id"].values == "flower_middle") & (assembly["repetition"].values == 19))
    np.testing.assert_array_equal(np.flatnonzero(~finite[row[0]]), short)
    assert finite.sum() == sum(counts)


def test_bin_counts_known_answer():
    raster = np.zeros((2, 400), np.uint8)
    raster[0, 100 + 70] = 1  # first ms of the first bin
    raster[0, 100 + 79] = 1  # last ms of the first bin
    raster[1, 100 + 80] = 1  # first ms of the second bin
    raster[1, 100 + 260] = 1  # just after the window
    counts = bin_counts(raster, onset=100)
    assert counts.shape == (2, 19)
    assert counts[0, 0] == 2 and counts[1, 1] == 1 and counts.sum() == 3
    with pytest.raises(DataError, match="exceeds 400 ms"):
        bin_counts(raster, onset=200)


def test_tampered_conversion_is_refused(cowley, tmp_path, monkeypatch):
    datasets.DATASETS.create("cowley2023.v4_190923")
    # tampered in a copy: the run's cache is shared by the workers of a parallel run, where other tests read it
    folder = converted_folder("cowley2023.v4_190923", 1)
    shutil.copytree(folder, tmp_path / folder.relative_to(cache_dir()))
    monkeypatch.setenv("NEUROZOO_CACHE", str(tmp_path))
    assembly_file = converted_folder("cowley2023.v4_190923", 1) / "assembly.nc"
    assert assembly_file.is_relative_to(tmp_path)
    original = assembly_file.read_bytes()
    assembly_file.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    with pytest.raises(DataError, match=r"assembly\.nc: sha256 .* differs"):
        datasets.DATASETS.create("cowley2023.v4_190923")


def test_zhang_desimone_ceiling_per_bin_from_the_raw_files(zhang):
    """Brain-Score's split-half ceiling per 10 ms bin, computed here straight from the MATLAB files: condition
    means over each half of the 20 repetition numbers (ShuffleSplit(10, 0.5, seed 1); a missing trial skipped),
    Pearson r per unit over the 21 conditions (0 for a unit silent in a half), Spearman-Brown, median over units.
    With silent="drop" (Brain-Score's pearsonr NaN) the silent units leave the median instead."""
    from sklearn.model_selection import ShuffleSplit

    from neurozoo.benchmarks.metrics import internal_consistency

    (assembly, _), folder = zhang
    counts = np.full((132, 21, 20, 19), np.nan)  # unit, condition, repetition, bin
    for u, path in enumerate(sorted(folder.glob("*.mat"))):
        raster, combined, onset_ms = _trials_by_hand(path)
        binned = raster[:, onset_ms - 1 + 70:onset_ms - 1 + 260].reshape(len(raster), 19, 10).sum(axis=2)
        for c, condition in enumerate(sorted(set(combined))):
            trials = [i for i, label in enumerate(combined) if label == condition]
            counts[u, c, :len(trials)] = binned[trials]
    per_split, per_split_dropped = [], []
    for a, b in ShuffleSplit(10, train_size=0.5, random_state=1).split(np.arange(20)):
        means = [np.nanmean(counts[:, :, half], axis=2) for half in (a, b)]  # (unit, condition, bin)
        halves = [m - m.mean(axis=1, keepdims=True) for m in means]
        norms = np.sqrt((halves[0] ** 2).sum(1) * (halves[1] ** 2).sum(1))
        r = np.where(norms > 0, (halves[0] * halves[1]).sum(1) / np.where(norms > 0, norms, 1), 0.0)
        per_split.append(np.median(2 * r / (1 + r), axis=0))
        per_split_dropped.append(np.nanmedian(np.where(norms > 0, 2 * r / (1 + r), np.nan), axis=0))
    expected, dropped = np.mean(per_split, axis=0), np.mean(per_split_dropped, axis=0)
    np.testing.assert_allclose(internal_consistency(assembly).per_bin, expected, atol=1e-12)
    assert abs(expected[0]) < 0.05 and expected[7:].mean() > 0.2  # no reliable signal at 70-80 ms; IT responds later
    np.testing.assert_allclose(internal_consistency(assembly, silent="drop").per_bin, dropped, atol=1e-12)
    # measured effect (README): counting the silent units as 0 lowers the ceiling by 0.009-0.028 in the 18 bins
    # where it is above 0, and raises it by 0.020 in the 80-90 ms bin, where it is below 0 (-0.052)
    difference = dropped - expected
    assert (expected > 0).sum() == 18 and expected[1] < 0
    assert 0.0085 < difference[expected > 0].min() and difference[expected > 0].max() < 0.0285
    assert -0.021 < difference[1] < -0.019


def test_allen_v1_assembly_and_images_match_the_npy_files(allen):
    (assembly, stimuli), folder = allen
    scenes = np.load(folder / "all_input_scenes_118_961.npy")
    assert assembly.shape == (118, 212, 1) and len(stimuli) == 118
    assert list(assembly["time_bin_start"].values) == [0] and list(assembly["time_bin_end"].values) == [250]
    assert set(assembly["region"].values) == {"V1"} and set(assembly["repetition"].values) == {0}
    assert assembly.attrs["repeat_averaged"] == 1
    split = assembly["split"].values
    assert list(split) == ["train"] * 100 + ["test"] * 18
    for name in ("train", "test"):
        rows = split == name
        inputs, outputs = np.load(folder / f"Allen_{name}_input.npy"), np.load(folder / f"Allen_{name}_output.npy")
        np.testing.assert_array_equal(assembly.values[rows, :, 0], outputs)  # the published values, in their order
        np.testing.assert_array_equal(scenes[assembly["image_index"].values[rows]], inputs)
        ids = assembly["stimulus_id"].values[rows]
        assert set(stimuli[stimuli["split"] == name]["stimulus_id"]) == set(ids)
        for stimulus_id, row in zip(ids[:3], inputs[:3]):  # the PNG holds the published pixels (31x31, row-major)
            with Image.open(stimuli.get_stimulus(stimulus_id)) as image:
                assert image.mode == "L" and image.size == (31, 31)
                np.testing.assert_array_equal(np.asarray(image), row.reshape(31, 31))
    assert len(set(assembly["stimulus_id"].values)) == 118  # every scene once: 100 train and 18 test, disjoint


def test_allen_v1_refuses_a_scene_row_it_cannot_find(tmp_path):
    from neurozoo.datasets.converters.allen_v1 import _convert

    rng = np.random.default_rng(0)
    scenes = rng.integers(0, 256, (118, 961)).astype(float)
    files = {"all_input_scenes_118_961.npy": scenes, "Allen_train_input.npy": scenes[:100],
             "Allen_test_input.npy": scenes[100:].copy(), "Allen_train_output.npy": rng.standard_normal((100, 5)),
             "Allen_test_output.npy": rng.standard_normal((18, 5))}
    files["Allen_test_input.npy"][3, 0] = 0.5  # no longer any scene
    paths = {}
    for name, array in files.items():
        np.save(tmp_path / name, array)
        paths[name] = tmp_path / name
    with pytest.raises(DataError, match=r"Allen_test_input\.npy: input row 3 matches 0 scenes"):
        _convert(paths, tmp_path / "out")
    np.save(tmp_path / "Allen_test_output.npy", rng.standard_normal((17, 5)))
    with pytest.raises(DataError, match=r"Allen_test_output\.npy: expected shape \(18, n\)"):
        _convert(paths, tmp_path / "out")


def test_the_real_stimulus_sets_read_as_before_ids_as_text_and_numbers_as_numbers(cowley, zhang, allen):
    """Stimulus-set CSVs are read as text and only columns of numbers converted (README, deviations); the converted
    real sets must read exactly as the reader of before read them (pandas' types, its three text columns as text),
    so that their sha256, the activation caches keyed on it and every score stay the same."""
    import pandas as pd

    from neurozoo.datasets.converters import STIMULUS_FILE
    from neurozoo.datasets.converters import allen_v1, cowley_v4, zhang_desimone_it
    from neurozoo.datasets.stimuli import StimulusSet

    (_, cowley_stimuli), _ = cowley
    (_, zhang_stimuli), _ = zhang
    (_, allen_stimuli), _ = allen
    for name, version, stimuli in (("cowley2023.v4_210325", cowley_v4.CONVERTER_VERSION, cowley_stimuli),
                                   ("zhang_desimone2011.it", zhang_desimone_it.CONVERTER_VERSION, zhang_stimuli),
                                   ("allen_bo.v1_natural_scenes", allen_v1.CONVERTER_VERSION, allen_stimuli)):
        csv = converted_folder(name, version) / STIMULUS_FILE
        before = pd.read_csv(csv, dtype={c: str for c in ("stimulus_id", "filename", "object_name")},
                             keep_default_na=False, na_values=[""])
        before["filename"] = before["filename"].fillna("")
        pd.testing.assert_frame_equal(pd.DataFrame(stimuli), before)
        assert stimuli.sha256() == StimulusSet(before, image_dir=stimuli.image_dir).sha256()
    assert cowley_stimuli["image_index"].dtype == np.int64 and cowley_stimuli["session"].tolist()[:1] == [210325]
