"""Our file formats read and written by independent re-implementations of the original projects' code.

The readers here are written from the original sources, not from ours:
- deep-retina ``loadexpt`` + ``rolling_window`` (baccuslab/deep-retina deepretina/experiments.py at 064d631,
  ``loadexpt`` lines 171-231: stimulus z-scored per pixel line 222, windows line 225, responses lines 228-229;
  ``rolling_window`` lines 331-386, its strides lines 379-381; the same windows and alignment in
  baccuslab/torch-deep-retina torchdeepretina/datas.py at 000dfeb, ``loadexpt`` lines 32-109: stimulus line 82,
  global z-score lines 90-92, ``valid_indices`` lines 95-96, windows line 99, responses lines 102-103, spike
  history lines 106-107; ``rolling_window`` lines 135-188, its strides lines 181-186): the response matrix is
  ``f[split]['response/firing_rate_10ms'][cells]`` (cells, T) transposed, the cells indexed by row; the stimulus
  is ``f[split]['stimulus']`` as float32, (T, 50, 50); ``rolling_window(stim, history)`` has ``T - history``
  windows, window ``i`` = frames ``i .. i+history-1`` oldest first, paired with ``resp[history:][i]`` = the
  response at frame ``i + history``; repeats are read as ``test/repeats/cell{c+1:02d}`` (datas.py's STA key
  pattern ``train/stas/cell{cells[0]+1:02d}``).
"""
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
from scipy.stats import zscore

from neurozoo.datasets.retina_h5 import N_FRAMES, StimulusWindows, read_experiment, write_experiment
from neurozoo.datasets.synthetic_retina import generate_recording


# ---- deep-retina, re-implemented from experiments.py / datas.py -----------------------------------------
def _rolling_window(array, window):
    """datas.py rolling_window(array, window, time_axis=0) (lines 168-186): as_strided over the transposed array."""
    array = array.T
    shape = array.shape[:-1] + (array.shape[-1] - window, window)
    strides = array.strides + (array.strides[-1],)
    arr = np.lib.stride_tricks.as_strided(array, shape=shape, strides=strides)
    return np.rollaxis(arr.T, 1, 0)


def _deepretina_loadexpt(path, cells, train_or_test, history):
    """torchdeepretina/datas.py loadexpt (lines 32-109) with nskip=0 (one block) and no normalisation step (lines
    85-92; see the test)."""
    with h5py.File(path, mode="r") as f:
        expt_length = f[train_or_test]["time"].size
        valid_indices = np.arange(expt_length).reshape(1, -1)[:, 0:].ravel()
        stim = np.asarray(f[train_or_test]["stimulus"]).astype("float32")
        X = _rolling_window(stim[valid_indices], history)
        resp = np.array(f[train_or_test]["response/firing_rate_10ms"][cells]).T[valid_indices]
        y = resp[history:]
        binned = np.array(f[train_or_test]["response/binned"][cells]).T[valid_indices]
        spkhist = _rolling_window(binned, history)
    return X, y, spkhist


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    return generate_recording(tmp_path_factory.mktemp("interop") / "wn.h5", n_train=160, n_test=90, n_repeats=3)


def test_deepretina_loadexpt_reads_our_file_with_target_lag_1_alignment(recording):
    ours = read_experiment(recording, "train")
    cells = [0, 2, 3]  # a subset by row index (h5py fancy indexing needs increasing order, as in CELLS)
    X, y, spkhist = _deepretina_loadexpt(recording, cells, "train", N_FRAMES)
    T = ours.n_frames
    assert X.shape == (T - N_FRAMES, N_FRAMES, 50, 50) and y.shape == (T - N_FRAMES, 3)
    rows = ours.response("firing_rate_10ms")[cells]
    windows = StimulusWindows(ours.stimulus, rows, target_lag=1, binned=ours.response("binned")[cells], history=N_FRAMES)
    assert len(windows) == len(X)  # targets 40 .. T-1, as resp[history:]
    batch = windows.batch(np.arange(len(windows)))
    np.testing.assert_array_equal(batch["stimulus"].numpy(), X)
    np.testing.assert_array_equal(batch["response"].numpy(), y)
    np.testing.assert_array_equal(batch["history"].numpy(), spkhist.transpose(0, 2, 1))  # ours (N, C, history)
    item = windows[7]
    np.testing.assert_array_equal(item["stimulus"].numpy(), X[7])
    np.testing.assert_array_equal(item["response"].numpy(), y[7])


def test_our_default_window_ends_at_the_target_one_frame_later_than_deepretina(recording):
    ours = read_experiment(recording, "train")
    X, y, _ = _deepretina_loadexpt(recording, [0, 1], "train", N_FRAMES)
    windows = StimulusWindows(ours.stimulus, ours.response("firing_rate_10ms")[[0, 1]])
    assert len(windows) == len(X) + 1  # our first target is frame 39, theirs frame 40
    batch = windows.batch(np.arange(1, len(windows)))  # our targets 40 .. T-1
    np.testing.assert_array_equal(batch["response"].numpy(), y)
    np.testing.assert_array_equal(batch["stimulus"].numpy()[:, :-1], X[:, 1:])  # shifted by one frame
    assert not np.array_equal(batch["stimulus"].numpy(), X)


def test_deepretina_reads_our_test_split_repeats_and_zscore_keeps_alignment(recording):
    ours = read_experiment(recording, "test")
    with h5py.File(recording, "r") as f:
        assert f["test/stimulus"].shape == (90, 50, 50) and f["test/time"].shape == (90,)
        assert f["test/response/firing_rate_10ms"].shape == (ours.repeats.shape[0], 90)
        for c in range(ours.repeats.shape[0]):
            trials = np.asarray(f[f"test/repeats/cell{c + 1:02d}"])
            np.testing.assert_array_equal(trials, ours.repeats[c])
            np.testing.assert_allclose(trials.mean(0), f["test/response/firing_rate_10ms"][c], rtol=1e-5, atol=1e-3)
    # deep-retina z-scores per pixel (experiments.py at 064d631 line 222: scipy's zscore(stim), axis 0); the windows
    # are the z-scored frames
    stim = ours.stimulus
    X = _rolling_window(zscore(stim.astype("float32")), N_FRAMES)
    windows = StimulusWindows(zscore(stim), ours.response(), target_lag=1)
    np.testing.assert_allclose(windows.batch(np.arange(len(windows)))["stimulus"].numpy(), X, rtol=1e-6, atol=1e-6)


def test_our_reader_reads_a_file_laid_out_as_deepretina_reads_it(tmp_path):
    """Written with h5py directly in the layout loadexpt reads (uint8 stimulus, cells as rows, cellNN repeats)."""
    rng = np.random.default_rng(3)
    T, Tt, C, R = 60, 50, 4, 5
    path = tmp_path / "naturalscene.h5"
    with h5py.File(path, "w") as f:
        for split, n in (("train", T), ("test", Tt)):
            f[f"{split}/stimulus"] = rng.integers(0, 256, (n, 50, 50), dtype=np.uint8)
            f[f"{split}/time"] = np.arange(n) * 0.01
            for key in ("firing_rate_5ms", "firing_rate_10ms", "firing_rate_20ms"):
                f[f"{split}/response/{key}"] = rng.gamma(2.0, 15.0, (C, n))  # 30 spikes/s on average
            f[f"{split}/response/binned"] = rng.poisson(0.3, (C, n)).astype(np.float64)  # counts per frame: 30 spikes/s
        for c in range(C):
            f[f"train/stas/cell{c + 1:02d}"] = rng.standard_normal((N_FRAMES, 50, 50))  # datas.py reads these
            f[f"test/repeats/cell{c + 1:02d}"] = rng.gamma(2.0, 15.0, (R, Tt))
            f[f"spikes/cell{c + 1:02d}"] = np.sort(rng.uniform(0, 0.6, 9))
    with pytest.warns(UserWarning, match="is uint8"):  # see test_a_uint8_stimulus_is_read_with_a_warning_to_zscore_it
        train, test = read_experiment(path, "train"), read_experiment(path, "test")
    X, y, _ = _deepretina_loadexpt(path, list(range(C)), "train", N_FRAMES)
    w = StimulusWindows(train.stimulus, train.response(), target_lag=1)
    b = w.batch(np.arange(len(w)))
    np.testing.assert_array_equal(b["stimulus"].numpy(), X)
    np.testing.assert_allclose(b["response"].numpy(), y, rtol=1e-6)
    assert test.cells == [f"cell{c + 1:02d}" for c in range(C)] and test.repeats.shape == (C, R, Tt)
    with h5py.File(path, "r") as f:
        np.testing.assert_allclose(test.repeats[2], f["test/repeats/cell03"][()], rtol=1e-6)


def test_target_lag_refuses_negative_values():
    from neurozoo.datasets.errors import DataError
    with pytest.raises(DataError, match="target_lag"):
        StimulusWindows(np.zeros((50, 50, 50), np.float32), np.zeros((1, 50), np.float32), target_lag=-1)


# ---- Brain-Score (brainio), re-implemented from brain-score/core brainscore_core/supported_data_standards/brainio --
# packaging.py write_netcdf(compress=True) (at 08461ff and c7155c1): assembly.reset_index(list(assembly.indexes));
#   attrs that are DataFrames, DataArrays or None deleted; ds = assembly.to_dataset(name="data", promote_attrs=True)
#   (the array's attributes become the file's global ones too); encoding dict(zlib=True, complevel=9) on
#   ds.data_vars only (the values; the coordinates stay uncompressed). The writer of the older brain-score/brainio
#   package (brainio/packaging.py write_netcdf at 0a56b05), which wrote the files published before brainscore-core
#   took it over: attrs that are DataFrames or DataArrays deleted (None kept); to_dataset(name="data") without
#   promote_attrs; dict(zlib=True, complevel=1) on every variable, coordinates included.
# assemblies.py AssemblyLoader.load: xr.open_dataarray(file); correct_stimulus_id_name (stimulus_id assigned from
#   image_id when missing); DataAssembly.__init__ -> gather_indexes: set_index(append=True) per dim over every
#   non-index coordinate along it. StimulusReferenceAssemblyLoader sets attrs stimulus_set_identifier.
# stimuli.py StimulusSetLoader.load: pd.read_csv(csv); stimulus_id from image_id when missing; paths
#   Path(dir) / row['filename'] per row['stimulus_id'], each asserted to be a file.
import pandas as pd
import xarray as xr

from neurozoo.datasets.assembly import load_assembly, make_assembly, write_assembly
from neurozoo.datasets.stimuli import load_stimulus_set, make_stimulus_set, write_stimulus_set


BRAINIO_WRITERS = ("brainscore_core", "brainio")


def _brainio_write_netcdf(assembly, path, writer="brainscore_core"):
    """packaging.write_netcdf(compress=True) of brain-score/core (``writer="brainscore_core"``) or of the older
    brain-score/brainio (``writer="brainio"``), as the header above describes."""
    core = writer == "brainscore_core"
    assembly = assembly.copy()
    assembly = assembly.reset_index(list(assembly.indexes))
    for name in list(assembly.attrs):
        attr = assembly.attrs[name]
        if isinstance(attr, (pd.DataFrame, xr.DataArray)) or (core and attr is None):
            del assembly.attrs[name]
    if core:
        ds = assembly.to_dataset(name="data", promote_attrs=True)
        ds.to_netcdf(path, encoding={var: dict(zlib=True, complevel=9) for var in ds.data_vars})
    else:
        ds = assembly.to_dataset(name="data")
        ds.to_netcdf(path, encoding={var: dict(zlib=True, complevel=1) for var in ds.variables})


def _brainio_gather_indexes(assembly):
    coords_d = {}
    for dim in assembly.dims:
        names = [n for n, v in assembly.coords.variables.items()
                 if v.dims == (dim,) and not isinstance(v, xr.IndexVariable)]
        if names:
            coords_d[dim] = names
    return assembly.set_index(append=True, **coords_d) if coords_d else assembly


def _brainio_load(path, stimulus_set_identifier=None):
    result = xr.open_dataarray(path)
    if "image_id" in result.coords and "stimulus_id" not in result.coords:
        result = result.assign_coords(stimulus_id=("presentation", result["image_id"].values))
    result = _brainio_gather_indexes(xr.DataArray(result))
    result.attrs["stimulus_set_identifier"] = stimulus_set_identifier
    return result


def _brainio_stimulus_set(csv_path, directory):
    frame = pd.read_csv(csv_path)
    if "image_id" in frame and "stimulus_id" not in frame:
        frame["stimulus_id"] = frame["image_id"]
    paths = {row["stimulus_id"]: Path(directory) / row["filename"] for _, row in frame.iterrows()}
    assert all(p.is_file() for p in paths.values())
    return frame, paths


def _values(seed=0, P=12, N=5, T=3):
    return np.random.default_rng(seed).gamma(2.0, 1.0, (P, N, T))


def _coords(P=12, N=5, T=3):
    objects = np.array(["car", "face", "chair"])
    presentation = {"stimulus_id": [f"img{i % 6:02d}" for i in range(P)], "object_name": objects[np.arange(P) % 3],
                    "repetition": np.arange(P) // 6, "variation": np.arange(P) % 2}
    neuroid = {"neuroid_id": [f"n{j}" for j in range(N)], "region": ["V4"] * 2 + ["IT"] * (N - 2),
               "animal": ["m1", "m2"] * (N // 2) + ["m1"] * (N % 2)}
    time_bin = {"time_bin_start": 70 + 10 * np.arange(T), "time_bin_end": 80 + 10 * np.arange(T)}
    return presentation, neuroid, time_bin


def test_brainio_loader_reads_our_assembly(tmp_path):
    values = _values()
    ours = make_assembly(values, *_coords(), attrs={"stimulus_set_identifier": "lab.Test2026"})
    path = write_assembly(ours, tmp_path / "assy.nc")
    theirs = _brainio_load(path)
    assert theirs.dims == ("presentation", "neuroid", "time_bin") and theirs.name == "data"
    np.testing.assert_array_equal(theirs.values, values)
    assert list(theirs.indexes["presentation"].names) == ["stimulus_id", "object_name", "repetition", "variation"]
    assert list(theirs.indexes["neuroid"].names) == ["neuroid_id", "region", "animal"]
    assert list(theirs.indexes["time_bin"].names) == ["time_bin_start", "time_bin_end"]
    assert theirs["time_bin_start"].dtype == np.int64 and theirs["repetition"].dtype == np.int64
    np.testing.assert_array_equal(theirs["stimulus_id"].values, ours["stimulus_id"].values)
    np.testing.assert_array_equal(theirs["region"].values, ours["region"].values)
    # Brain-Score selects by level, e.g. one region and one stimulus
    it = theirs.sel(region="IT")
    np.testing.assert_array_equal(it.values, values[:, 2:])
    np.testing.assert_array_equal(theirs.sel(stimulus_id="img03").values, values[[3, 9]])
    with xr.open_dataset(path) as ds:
        assert ds.attrs["stimulus_set_identifier"] == "lab.Test2026"
        assert ds["data"].attrs["stimulus_set_identifier"] == "lab.Test2026"


def _brainio_assembly(values, attrs):
    """A brainio DataAssembly of ``values`` on :func:`_coords` (MultiIndexes on every dim, as gather_indexes makes)."""
    presentation, neuroid, time_bin = _coords()
    coords = {k: ("presentation", np.asarray(v)) for k, v in presentation.items()}
    coords |= {k: ("neuroid", np.asarray(v)) for k, v in neuroid.items()}
    coords |= {k: ("time_bin", np.asarray(v)) for k, v in time_bin.items()}
    assembly = _brainio_gather_indexes(xr.DataArray(values, dims=("presentation", "neuroid", "time_bin"), coords=coords))
    assembly.attrs = dict(attrs)
    return assembly, coords


@pytest.mark.parametrize("writer", BRAINIO_WRITERS)
def test_our_loader_reads_a_brainio_written_assembly(tmp_path, writer):
    values = _values(1)
    presentation, neuroid, time_bin = _coords()
    # the stimulus set rides along as a DataFrame attribute (both writers drop it); brainio keeps a None attribute,
    # which netCDF cannot hold, so only brainscore-core's writer (which drops it) is given one
    attrs = {"stimulus_set_identifier": "lab.Test2026", "stimulus_set": pd.DataFrame({"stimulus_id": ["img00"]})}
    theirs, coords = _brainio_assembly(values, attrs | ({"stimulus_set_path": None} if writer == "brainscore_core" else {}))
    _brainio_write_netcdf(theirs, tmp_path / "brainio.nc", writer=writer)
    ours = load_assembly(tmp_path / "brainio.nc")
    np.testing.assert_array_equal(ours.values, values)
    for name in list(presentation) + list(neuroid) + list(time_bin):
        np.testing.assert_array_equal(ours[name].values, coords[name][1])
        assert ours[name].dims == (coords[name][0],)
    assert ours.attrs["stimulus_set_identifier"] == "lab.Test2026"
    indexed = load_assembly(tmp_path / "brainio.nc", multiindex=True)
    np.testing.assert_array_equal(indexed.sel(region="V4").values, values[:, :2])
    # a brainio DataAssembly (MultiIndexes on every dim) handed to our writer, read back by both
    write_assembly(theirs, tmp_path / "ours.nc")
    np.testing.assert_array_equal(load_assembly(tmp_path / "ours.nc")["variation"].values, presentation["variation"])
    back = _brainio_load(tmp_path / "ours.nc")
    assert list(back.indexes["neuroid"].names) == list(theirs.indexes["neuroid"].names)
    np.testing.assert_array_equal(back.values, values)


def test_our_writer_lays_the_file_out_as_brainscore_cores_writer_does(tmp_path):
    """The same assembly written by ours and by brain-score/core's write_netcdf (above): the same variables with the
    same dimensions and types, no coordinate variable for any dim, the values compressed alike (zlib level 9, shuffle:
    netCDF4's default with zlib, which core's encoding leaves on) and the coordinates not, and
    stimulus_set_identifier both on ``data`` and global. (Bytes differ between any two writes; see REFERENCE.md.)"""
    import netCDF4

    values = _values(3)
    theirs, _ = _brainio_assembly(values, {"stimulus_set_identifier": "lab.Test2026"})
    _brainio_write_netcdf(theirs, tmp_path / "core.nc")
    write_assembly(make_assembly(values, *_coords(), attrs={"stimulus_set_identifier": "lab.Test2026"}),
                   tmp_path / "ours.nc")

    def layout(path):
        with netCDF4.Dataset(path) as f:
            variables = {name: (v.dimensions, str(v.dtype), v.filters()["zlib"], v.filters()["complevel"],
                                v.filters()["shuffle"]) for name, v in f.variables.items()}
            return (f.data_model, {name: len(d) for name, d in f.dimensions.items()},
                    variables, f.getncattr("stimulus_set_identifier"), f["data"].getncattr("stimulus_set_identifier"),
                    set(f["data"].getncattr("coordinates").split()))

    ours, core = layout(tmp_path / "ours.nc"), layout(tmp_path / "core.nc")
    assert ours == core
    assert core[2]["data"][2:] == (True, 9, True) and core[2]["stimulus_id"][2] is False
    assert not {"presentation", "neuroid", "time_bin"} & set(core[2])


def test_our_loader_reads_a_legacy_brainio_file_with_image_id_and_no_variable_name(tmp_path):
    """brainio before 2022 (packaging.write_netcdf: reset_index, then assembly.to_netcdf of an unnamed array)."""
    values = _values(2)
    presentation, neuroid, time_bin = _coords()
    presentation["image_id"] = presentation.pop("stimulus_id")
    coords = {k: ("presentation", np.asarray(v)) for k, v in presentation.items()}
    coords |= {k: ("neuroid", np.asarray(v)) for k, v in neuroid.items()}
    coords |= {k: ("time_bin", np.asarray(v)) for k, v in time_bin.items()}
    legacy = xr.DataArray(values, dims=("presentation", "neuroid", "time_bin"), coords=coords)
    legacy.to_netcdf(tmp_path / "legacy.nc")
    ours = load_assembly(tmp_path / "legacy.nc")
    theirs = _brainio_load(tmp_path / "legacy.nc")
    np.testing.assert_array_equal(ours.values, theirs.values)
    np.testing.assert_array_equal(ours["stimulus_id"].values, theirs["stimulus_id"].values)


def test_brainio_stimulus_set_loader_reads_our_csv_and_merges_into_our_assembly(tmp_path):
    images = tmp_path / "src"
    images.mkdir()
    ids = [f"img{i:02d}" for i in range(6)]
    for i in ids:
        (images / f"{i}.png").write_bytes(b"\x89PNG" + i.encode())
    stimuli = make_stimulus_set({"stimulus_id": ids, "filename": [f"{i}.png" for i in ids],
                                 "object_name": ["car", "face", "chair"] * 2, "size_deg": np.arange(6) * 1.5},
                                identifier="lab.Test2026", image_dir=images)
    csv = write_stimulus_set(stimuli, tmp_path / "out" / "stimulus_set.csv")
    frame, paths = _brainio_stimulus_set(csv, csv.with_suffix(""))
    assert list(frame["stimulus_id"]) == ids and paths["img04"].read_bytes() == b"\x89PNGimg04"
    np.testing.assert_array_equal(frame["size_deg"].values, np.arange(6) * 1.5)
    # StimulusMergeAssemblyLoader.merge_stimulus_set_meta: left merge of the presentation coords on stimulus_id
    assembly = make_assembly(_values(), *_coords())
    write_assembly(assembly, tmp_path / "assy.nc")
    loaded = _brainio_load(tmp_path / "assy.nc").reset_index(["presentation", "neuroid", "time_bin"])
    presentation = pd.DataFrame({n: loaded[n].values for n in ("stimulus_id", "object_name", "repetition", "variation")})
    columns = frame.columns.difference(presentation.columns.difference(["stimulus_id"]))
    merged = presentation.merge(frame[columns], on="stimulus_id", how="left")
    assert not merged["filename"].isna().any()
    np.testing.assert_array_equal(merged["size_deg"].values, (np.arange(12) % 6) * 1.5)
    # and ours reads a CSV as brainio's packaging writes it (create_stimulus_csv: to_csv(index=False))
    frame.to_csv(tmp_path / "theirs.csv", index=False)
    again = load_stimulus_set(tmp_path / "theirs.csv", image_dir=csv.with_suffix(""))
    assert list(again["stimulus_id"]) == ids and again.get_stimulus("img02").read_bytes() == b"\x89PNGimg02"


def test_our_loader_reads_a_two_dim_brainio_neuroid_assembly(tmp_path):
    """brainio's NeuroidAssembly.validate and verify_assembly accept dims {presentation, neuroid} (assemblies.py,
    packaging.py); such a file is one time bin, its window given or kept as scalar coordinates."""
    values = _values(4)[:, :, 0]
    presentation, neuroid, _ = _coords()
    coords = {k: ("presentation", np.asarray(v)) for k, v in presentation.items()}
    coords |= {k: ("neuroid", np.asarray(v)) for k, v in neuroid.items()}
    two_dim = _brainio_gather_indexes(xr.DataArray(values, dims=("presentation", "neuroid"), coords=coords))
    _brainio_write_netcdf(two_dim, tmp_path / "2d.nc")
    from neurozoo.datasets.errors import DataError
    with pytest.raises(DataError, match=r"pass time_bin=\(start_ms, end_ms\)"):
        load_assembly(tmp_path / "2d.nc")
    ours = load_assembly(tmp_path / "2d.nc", time_bin=(70, 170))
    assert ours.shape == (12, 5, 1) and ours["time_bin_start"].values.tolist() == [70]
    np.testing.assert_array_equal(ours.values[:, :, 0], values)
    # a 3-dim assembly after Brain-Score's .sel(time_bin=...) / squeeze keeps the window as scalar coordinates
    squeezed = two_dim.assign_coords(time_bin_start=np.int64(70), time_bin_end=np.int64(170))
    _brainio_write_netcdf(squeezed, tmp_path / "squeezed.nc")
    again = load_assembly(tmp_path / "squeezed.nc")
    assert again["time_bin_end"].values.tolist() == [170] and again["time_bin_end"].dims == ("time_bin",)
    np.testing.assert_array_equal(again.values[:, :, 0], values)


# ---- the converters' output (real recordings), read by the brainio re-implementation -----------------------------
@pytest.fixture(scope="module")
def converted(session_cache):
    from neurozoo import datasets
    from neurozoo.datasets.cache import shared_data_dir

    if not shared_data_dir().is_dir():
        pytest.skip(f"real recordings not found at {shared_data_dir()} (set NEUROZOO_SHARED_DATA)")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NEUROZOO_CACHE", session_cache)
        from neurozoo.datasets.converters import ASSEMBLY_FILE, STIMULUS_FILE, converted_folder
        from neurozoo.datasets.converters.allen_v1 import CONVERTER_VERSION as ALLEN
        from neurozoo.datasets.converters.cowley_v4 import CONVERTER_VERSION as COWLEY
        from neurozoo.datasets.converters.zhang_desimone_it import CONVERTER_VERSION as ZHANG
        out = {}
        for name, version in (("cowley2023.v4_210325", COWLEY), ("zhang_desimone2011.it", ZHANG),
                              ("allen_bo.v1_natural_scenes", ALLEN)):
            recording = datasets.DATASETS.create(name)
            folder = converted_folder(name, version)
            out[name] = recording, folder / ASSEMBLY_FILE, folder / STIMULUS_FILE
        yield out


@pytest.mark.parametrize("name", ["cowley2023.v4_210325", "zhang_desimone2011.it", "allen_bo.v1_natural_scenes"])
def test_brainio_reads_the_converted_real_recordings(converted, name):
    (ours, stimuli), nc, csv = converted[name]
    theirs = _brainio_load(nc)
    assert theirs.dims == ours.dims and theirs.shape == ours.shape
    np.testing.assert_array_equal(theirs.values, ours.values)
    for level in ("stimulus_id", "object_name", "repetition", "neuroid_id", "region", "time_bin_start", "time_bin_end"):
        np.testing.assert_array_equal(theirs[level].values, ours[level].values)
    if name.startswith("zhang"):  # no images published: brainio's StimulusSetLoader needs a file per row
        assert (pd.read_csv(csv)["filename"].isna()).all()
        with pytest.raises(TypeError):
            _brainio_stimulus_set(csv, csv.with_suffix(""))
        frame = pd.read_csv(csv)
    else:
        frame, paths = _brainio_stimulus_set(csv, csv.with_suffix(""))
        assert len(paths) == len(stimuli)
        last = str(stimuli["stimulus_id"].iloc[-1])
        assert paths[last].read_bytes() == stimuli.get_stimulus(last).read_bytes()
    # strings for plain pd.read_csv too (no id that reads as a number), so a merge on stimulus_id matches
    assert all(isinstance(v, str) for v in frame["stimulus_id"])
    assert set(theirs["stimulus_id"].values) <= set(frame["stimulus_id"])
    # one presentation selected the Brain-Score way equals ours
    sid, rep = str(ours["stimulus_id"].values[5]), int(ours["repetition"].values[5])
    np.testing.assert_array_equal(theirs.sel(stimulus_id=sid, repetition=rep).values.ravel(), ours.values[5].ravel())


# ---- ImageNet folders, against torchvision's ImageFolder (pytorch/vision torchvision/datasets/folder.py) -----------
# find_classes: sorted(entry.name for entry in os.scandir(directory) if entry.is_dir()), index = position;
# make_dataset: for target_class in sorted(class_to_idx): for root, _, fnames in sorted(os.walk(target_dir,
# followlinks=True)): for fname in sorted(fnames): kept if fname.lower().endswith(IMG_EXTENSIONS).
TV_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def _torchvision_samples(directory):
    import os

    classes = sorted(entry.name for entry in os.scandir(directory) if entry.is_dir())
    class_to_idx = {name: i for i, name in enumerate(classes)}
    samples = []
    for target_class in sorted(class_to_idx):
        target_dir = os.path.join(directory, target_class)
        for root, _, fnames in sorted(os.walk(target_dir, followlinks=True)):
            for fname in sorted(fnames):
                path = os.path.join(root, fname)
                if path.lower().endswith(TV_EXTENSIONS):
                    samples.append((path, class_to_idx[target_class]))
    return class_to_idx, samples


def test_imagefolder_matches_torchvision_including_nested_folders(tmp_path):
    from PIL import Image

    from neurozoo.convrnn.training.imagefolder import ImageFolder

    files = ["n02102040/b.JPEG", "n02102040/a.jpeg", "n02102040/sub/c.png", "n02102040/sub/deeper/d.JPEG",
             "n01440764/z.JPEG", "n01440764/A.JPG", "n01440764/notes.txt", "n03000134/only/nested.JPEG"]
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".txt"):
            (tmp_path / name).write_text("x")
        else:
            Image.new("RGB", (4, 4), (len(name), 0, 0)).save(tmp_path / name, format="PNG")
    class_to_idx, samples = _torchvision_samples(tmp_path)
    ours = ImageFolder(tmp_path)
    assert ours.class_to_idx == class_to_idx
    assert [(str(p), label) for p, label in ours.samples] == samples
    assert len(samples) == 7 and ours.targets == [label for _, label in samples]


def test_torchdeepretina_repeat_reading_matches_our_repeats_at_the_window_targets(recording):
    """torch-deep-retina fnn/notebook/sci_optimize2.py: per cell f['test']['repeats'][cell], np.stack, swapaxes to
    (repeats, T, cells), then [:, 40:...] -- the trials at the targets of the 40-frame windows (resp[history:])."""
    ours = read_experiment(recording, "test")
    with h5py.File(recording, "r") as f:
        single_trial = np.stack([f["test"]["repeats"][cell] for cell in ours.cells])
    single_trial = np.swapaxes(np.swapaxes(single_trial, 0, 1), 1, 2)[:, N_FRAMES:, :]
    windows = StimulusWindows(ours.stimulus, ours.response(), target_lag=1)
    targets = windows.targets.numpy()
    np.testing.assert_array_equal(single_trial, ours.repeats[:, :, targets].transpose(1, 2, 0))
    _, y, _ = _deepretina_loadexpt(recording, list(range(len(ours.cells))), "test", N_FRAMES)
    np.testing.assert_allclose(single_trial.mean(0), y, rtol=1e-5, atol=1e-3)


def test_heldout_evaluation_with_deepretinas_alignment(tmp_path):
    """Weights fitted with deep-retina's windows (frames t-40 .. t-1 -> response at t) are scored with
    ``evaluate(..., target_lag=1)``: a cell driven by the frame before each response bin is predicted exactly by a
    model reading its window's last frame only under that alignment."""
    import torch

    from neurozoo.retina.fit import evaluate

    rng = np.random.default_rng(0)
    T = 200
    stim = rng.standard_normal((T, 50, 50)).astype(np.float32)
    drive = np.exp(np.r_[0.0, stim[:-1, 25, 25]]).astype(np.float32)  # response at t: the frame at t-1
    repeats = {"cell01": np.tile(drive, (4, 1))}
    split = {"stimulus": stim, "time": np.arange(T) * 0.01, "response": {"firing_rate_10ms": drive[None]}}
    path = write_experiment(tmp_path / "lag.h5", split, {**split, "repeats": repeats})

    class LastFrame(torch.nn.Module):  # the rate is the window's last frame at the cell's pixel
        def forward(self, x):
            return torch.exp(x[:, -1, 25, 25])[:, None]

    ours = evaluate(LastFrame(), path)["correlation"].iloc[0]
    theirs = evaluate(LastFrame(), path, target_lag=1)["correlation"].iloc[0]
    assert theirs == pytest.approx(1.0, abs=1e-6) and abs(ours) < 0.2


def test_a_uint8_stimulus_is_read_with_a_warning_to_zscore_it(tmp_path):
    """deep-retina z-scores the stimulus on load; we use it as stored, so raw 0-255 intensities would be fitted as
    such without a word."""
    T = 60
    stim = np.random.default_rng(1).integers(0, 256, (T, 50, 50)).astype(np.uint8)
    split = {"stimulus": stim, "time": np.arange(T) * 0.01, "response": {"firing_rate_10ms": np.ones((1, T))}}
    path = write_experiment(tmp_path / "u8.h5", split, {**split, "repeats": {"cell01": np.ones((2, T))}})
    with pytest.warns(UserWarning, match="train/stimulus is uint8 .* z-score it first"):
        recording = read_experiment(path, "train")
    assert recording.stimulus.max() > 1  # as stored
    with warnings.catch_warnings():  # the uint8 warning only, not a second one for its offset
        warnings.simplefilter("error")
        assert recording.stimulus.mean() > 100


@pytest.mark.parametrize("name,offset,warned", [("0-1 intensities", 0.5, True), ("z-scored", 0.0, False),
                                                ("z-scored, a small offset", 0.2, False)])
def test_a_float_stimulus_far_from_zero_mean_is_read_with_a_warning(tmp_path, name, offset, warned):
    """A float stimulus not z-scored (0/1 noise, intensities in [0, 1]) was read without a word, and its zero -- the
    grey of zoo probe's flashes and gratings, the attribution's baseline -- is then no stimulus of the recording's."""
    T = 60
    rng = np.random.default_rng(2)
    stim = (rng.random((T, 50, 50)) if offset == 0.5 else rng.standard_normal((T, 50, 50)) + offset).astype(np.float32)
    split = {"stimulus": stim, "time": np.arange(T) * 0.01, "response": {"firing_rate_10ms": np.ones((1, T))}}
    path = write_experiment(tmp_path / "f.h5", split, {**split, "repeats": {"cell01": np.ones((2, T))}})
    recording = read_experiment(path, "train")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        np.testing.assert_array_equal(recording.stimulus, stim)  # used as stored
    messages = [str(w.message) for w in caught]
    if warned:
        assert messages == [f"{path}: train/stimulus has mean 0.5 and sd 0.289, not zero mean; it is used as stored, "
                            "while the zero stimulus is the grey of zoo probe (flashes and gratings around it) and the "
                            "baseline of the attribution, and deep-retina z-scores it on load: z-score it first (zero "
                            "mean, unit variance) to fit and probe as they did"], name
    else:
        assert messages == [], name
