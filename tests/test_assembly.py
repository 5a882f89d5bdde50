"""NeuroidAssembly / StimulusSet formats: Brain-Score's netCDF layout, validation on load, content hashes."""
import re
import shutil
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from PIL import Image

from neurozoo.datasets.assembly import load_assembly, make_assembly, reset_brainscore_indexes, set_brainscore_indexes, validate_assembly, write_assembly
from neurozoo.datasets.errors import DataError
from neurozoo.datasets.stimuli import StimulusSet, load_stimulus_set, make_stimulus_set, write_stimulus_set


def _assembly(n_stimuli=5, n_reps=3, n_neuroids=4, starts=(70, 80, 90), seed=0):
    rng = np.random.default_rng(seed)
    ids = [f"im{i:03d}" for i in range(n_stimuli)]
    values = rng.normal(size=(n_stimuli * n_reps, n_neuroids, len(starts)))
    return make_assembly(values,
                         presentation=dict(stimulus_id=np.tile(ids, n_reps),
                                           object_name=np.tile([f"obj{i % 2}" for i in range(n_stimuli)], n_reps),
                                           repetition=np.repeat(np.arange(n_reps), n_stimuli)),
                         neuroid=dict(neuroid_id=[f"n{i}" for i in range(n_neuroids)], region=["IT"] * n_neuroids),
                         time_bin=dict(time_bin_start=list(starts), time_bin_end=[s + 10 for s in starts]),
                         attrs={"stimulus_set_identifier": "toy"})


def _write_like_brainscore(path, values, ids, objects, reps, neuroids, starts, identifier="toy"):
    """Write the layout of REFERENCE.md section 3 directly with netCDF4, without our writer."""
    with netCDF4.Dataset(path, "w", format="NETCDF4") as f:
        f.setncattr("stimulus_set_identifier", identifier)
        for dim, n in zip(("presentation", "neuroid", "time_bin"), values.shape):
            f.createDimension(dim, n)
        for name, dim, column in (("stimulus_id", "presentation", ids), ("object_name", "presentation", objects),
                                  ("neuroid_id", "neuroid", neuroids), ("region", "neuroid", ["IT"] * len(neuroids))):
            var = f.createVariable(name, str, (dim,))
            for i, v in enumerate(column):
                var[i] = v
        f.createVariable("repetition", "i8", ("presentation",))[:] = reps
        f.createVariable("time_bin_start", "i8", ("time_bin",))[:] = starts
        f.createVariable("time_bin_end", "i8", ("time_bin",))[:] = np.asarray(starts) + 10
        data = f.createVariable("data", "f8", ("presentation", "neuroid", "time_bin"), zlib=True, complevel=9, shuffle=True)
        data[:] = values
        data.setncattr("stimulus_set_identifier", identifier)
        data.setncattr("coordinates", "time_bin_end repetition stimulus_id region object_name neuroid_id time_bin_start")


def test_write_produces_brainscore_layout(tmp_path):
    assembly = _assembly()
    path = write_assembly(set_brainscore_indexes(assembly), tmp_path / "a.nc")  # MultiIndexes are reset on write
    with netCDF4.Dataset(path) as f:
        assert f.data_model == "NETCDF4"
        assert f.getncattr("stimulus_set_identifier") == "toy"
        assert set(f.dimensions) == {"presentation", "neuroid", "time_bin"}
        assert not {"presentation", "neuroid", "time_bin"} & set(f.variables)  # no coordinate variables for dims
        assert f["stimulus_id"].dimensions == ("presentation",) and f["stimulus_id"].dtype is str
        assert f["region"].dtype is str and f["object_name"].dtype is str
        assert f["repetition"].dtype == np.int64 and f["time_bin_start"].dtype == np.int64
        data = f["data"]
        assert data.dimensions == ("presentation", "neuroid", "time_bin")
        filters = data.filters()
        assert filters["zlib"] and filters["complevel"] == 9 and filters["shuffle"]
        assert data.getncattr("stimulus_set_identifier") == "toy"
        assert set(data.getncattr("coordinates").split()) == {
            "stimulus_id", "object_name", "repetition", "neuroid_id", "region", "time_bin_start", "time_bin_end"}
        np.testing.assert_array_equal(data[:], assembly.values)


def _brainio_verify_sha1(file_path, expected_sha1):
    """brain-score/core brainscore_core/supported_data_standards/brainio/fetch.py (commit cd90186), ``verify_sha1``:
    ``hashlib.sha1`` over the file read in 4096-byte blocks, ``hexdigest()`` compared with the expected string, a
    ValueError on a mismatch; ``fetch_file(..., sha1=...)`` calls it on every fetched assembly."""
    import hashlib

    digest = hashlib.sha1()
    with open(file_path, "rb") as f:
        for block in iter(lambda: f.read(4096), b""):
            digest.update(block)
    if digest.hexdigest() != expected_sha1:
        raise ValueError("SHA1 mismatch")


def test_an_assembly_pinned_by_brainscores_sha1_is_read_and_any_other_bytes_are_refused(tmp_path):
    """REFERENCE.md section 3: Brain-Score pins an assembly by sha1. ``load_assembly(sha1=)`` accepts the digest
    brainio's check accepts and refuses a file whose bytes differ, naming the file and both
    digests, before reading anything."""
    import hashlib

    path = write_assembly(_assembly(), tmp_path / "a.nc")
    published = hashlib.sha1(path.read_bytes()).hexdigest()
    _brainio_verify_sha1(path, published)  # what brainio would accept
    loaded = load_assembly(path, sha1=published)
    xr.testing.assert_identical(loaded, load_assembly(path))
    assert load_assembly(path, sha1=published.upper()).shape == loaded.shape  # hex digits in either case
    with open(path, "ab") as f:  # one byte more: another file to brainio, and here
        f.write(b"\0")
    with pytest.raises(ValueError, match="SHA1 mismatch"):
        _brainio_verify_sha1(path, published)
    with pytest.raises(DataError, match=rf"a\.nc: sha1 [0-9a-f]{{40}} does not match the expected {published}"):
        load_assembly(path, sha1=published)
    with pytest.raises(DataError, match="expected 40 hex digits"):
        load_assembly(path, sha1="sha256:" + published)


def test_round_trip_compares_contents(tmp_path):
    assembly = _assembly()
    loaded = load_assembly(write_assembly(assembly, tmp_path / "a.nc"))
    # the attribute source_file is where it was read (refusals name it), left out of what write_assembly writes
    xr.testing.assert_identical(loaded.rename(None), assembly.assign_attrs(source_file=str(tmp_path / "a.nc")))
    again = load_assembly(write_assembly(loaded, tmp_path / "b.nc"))
    xr.testing.assert_identical(again, loaded.assign_attrs(source_file=str(tmp_path / "b.nc")))


def test_reads_a_file_written_in_brainscore_layout(tmp_path):
    rng = np.random.default_rng(1)
    values = rng.poisson(3.0, size=(6, 2, 2)).astype(float)
    ids, objects, reps = ["a", "b", "c"] * 2, ["car", "car", "dog"] * 2, [0, 0, 0, 1, 1, 1]
    _write_like_brainscore(tmp_path / "bs.nc", values, ids, objects, reps, ["n0", "n1"], [70, 80])
    loaded = load_assembly(tmp_path / "bs.nc")
    assert loaded.dims == ("presentation", "neuroid", "time_bin") and not loaded.indexes
    assert loaded.attrs["stimulus_set_identifier"] == "toy"
    np.testing.assert_array_equal(loaded.values, values)
    assert list(loaded["stimulus_id"].values) == ids and list(loaded["repetition"].values) == reps
    indexed = load_assembly(tmp_path / "bs.nc", multiindex=True)
    assert list(indexed.indexes["presentation"].names) == ["stimulus_id", "object_name", "repetition"]
    assert list(indexed.indexes["time_bin"].names) == ["time_bin_start", "time_bin_end"]
    # Brain-Score's selection idiom works on the rebuilt indexes
    np.testing.assert_array_equal(indexed.sel(stimulus_id="b").values, values[[1, 4]])


def test_old_image_id_name_is_read_as_stimulus_id(tmp_path):
    assembly = _assembly().rename(stimulus_id="image_id")
    write_assembly(assembly, tmp_path / "old.nc")
    loaded = load_assembly(tmp_path / "old.nc")
    assert "stimulus_id" in loaded.coords and "image_id" not in loaded.coords


@pytest.mark.parametrize("stored", ["neuroid", "neuroid_"])
def test_neuroid_ids_stored_under_the_dims_name_by_brainios_writer_are_named_not_dropped(tmp_path, stored):
    """brainio's write_netcdf of an assembly whose only neuroid coordinate is neuroid_id (gather_indexes: a single-level
    index, which xarray names after the dim; reset_index writes it as 'neuroid', as 'neuroid_' before xarray 2022.06)
    stores the ids under the dim's name. They were dropped as a dim coordinate without a word, and the file refused
    for a missing 'neuroid_id' as if it held no ids."""
    assembly = _assembly().drop_vars("region")
    written = assembly.set_index(append=True, presentation=["stimulus_id", "object_name", "repetition"],
                                 neuroid=["neuroid_id"], time_bin=["time_bin_start", "time_bin_end"])
    written = written.reset_index(list(written.indexes))  # as brainio's write_netcdf does
    written = written.to_dataset(name="data")
    written.rename_vars(neuroid=stored).to_netcdf(tmp_path / "one_coord.nc")
    ids = assembly["neuroid_id"].values[:3].tolist()
    with pytest.raises(DataError) as raised:
        load_assembly(tmp_path / "one_coord.nc", require={"neuroid": ("neuroid_id",)})
    assert str(raised.value) == (
        f"{tmp_path}/one_coord.nc: missing coordinate 'neuroid_id' along 'neuroid'; variable {stored!r} holds one value "
        f"per neuroid (e.g. {ids}): a single-level index saved by xarray's reset_index (brainio's write_netcdf of an "
        f"assembly with neuroid_id as its only neuroid coordinate) loses its name. If they are the neuroid_ids, rename "
        f"it: xarray.open_dataset(file).rename_vars({{{stored!r}: 'neuroid_id'}}).to_netcdf(new_file)")
    fixed = xr.open_dataset(tmp_path / "one_coord.nc").load().rename_vars({stored: "neuroid_id"})
    fixed.to_netcdf(tmp_path / "fixed.nc")  # the remedy the message gives reads back whole
    loaded = load_assembly(tmp_path / "fixed.nc", require={"neuroid": ("neuroid_id",)})
    assert loaded["neuroid_id"].values.tolist() == assembly["neuroid_id"].values.tolist()


def test_time_bins_stored_in_seconds_are_refused_saying_they_look_like_seconds(tmp_path):
    """Bins of 0.07-0.17 s (a tool that times trials in s) were refused as 'not in whole ms' without a word that they are
    whole ms read as seconds; bins in fractions of a ms that are no seconds keep the plain message."""
    from neurozoo.datasets.assembly import check_time_bins

    write_assembly(_assembly(), tmp_path / "ms.nc")
    with xr.open_dataset(tmp_path / "ms.nc") as dataset:
        dataset = dataset.load()
    starts = dataset["time_bin_start"].values
    seconds = dataset.assign(time_bin_start=("time_bin", starts / 1000.0),
                             time_bin_end=("time_bin", dataset["time_bin_end"].values / 1000.0))
    seconds.to_netcdf(tmp_path / "seconds.nc")
    first, end = int(starts[0]), int(dataset["time_bin_end"].values[0])
    with pytest.raises(DataError) as raised:
        load_assembly(tmp_path / "seconds.nc")
    assert str(raised.value) == (f"{tmp_path}/seconds.nc: time bin 0 [{first / 1000:g}, {end / 1000:g}) ms is not in "
                                 f"whole ms (an assembly stores int ms): these look like seconds; store them in ms, e.g. "
                                 f"[{first}, {end})")
    with pytest.raises(DataError, match=r"time bin 0 \[70\.5, 80\) ms is not in whole ms \(an assembly stores int ms\)$"):
        check_time_bins([70.5], [80], "bins", whole_ms=True)


def test_missing_dim_and_coord_are_named(tmp_path):
    assembly = _assembly()
    write_assembly(assembly.drop_vars("region"), tmp_path / "a.nc")
    with pytest.raises(DataError, match=r"a\.nc: missing coordinate 'region' along 'neuroid'"):
        load_assembly(tmp_path / "a.nc")
    assert "region" not in load_assembly(tmp_path / "a.nc", require={"presentation": ("stimulus_id",)}).coords
    flat = assembly.isel(time_bin=0, drop=True)
    flat.to_dataset(name="data").to_netcdf(tmp_path / "b.nc")
    with pytest.raises(DataError, match=r"b\.nc: dims are \(presentation, neuroid\) with no time window; pass time_bin"):
        load_assembly(tmp_path / "b.nc")


def test_data_that_are_not_numbers_are_refused(tmp_path):
    assembly = _assembly()
    text = assembly.copy(data=np.full(assembly.shape, "x"))
    text.to_dataset(name="data").to_netcdf(tmp_path / "text.nc")
    with pytest.raises(DataError, match=r"text\.nc: field 'data' holds <U1 values; expected numbers, "
                                        r"shape \(presentation, neuroid, time_bin\)"):
        load_assembly(tmp_path / "text.nc")
    with pytest.raises(DataError, match=r"out\.nc: field 'data' holds <U1 values"):
        write_assembly(text, tmp_path / "out.nc")
    assert not (tmp_path / "out.nc").exists()


def test_time_bins_and_repetitions_that_are_not_numbers_are_named(tmp_path):
    # text time bins failed with a bare "could not convert string to float"; text repetitions were accepted
    assembly = _assembly()
    for name, values, unit in (("time_bin_start", ["a", "b", "c"], "ms"), ("repetition", ["x"] * 15, "trial numbers")):
        dataset = assembly.to_dataset(name="data")
        dataset[name] = (dataset[name].dims, np.array(values))
        dataset.to_netcdf(tmp_path / f"{name}.nc")
        with pytest.raises(DataError, match=rf"{name}\.nc: coordinate '{name}' holds <U1 values, e\.g\. "
                                            rf"\['{values[0]}', '{values[1]}', '{values[2]}'\]; expected numbers \({unit}\)"):
            load_assembly(tmp_path / f"{name}.nc")


def test_an_extra_dim_is_named(tmp_path):
    trials = _assembly().expand_dims(trial=2, axis=3)
    trials.to_dataset(name="data").to_netcdf(tmp_path / "trials.nc")
    with pytest.raises(DataError, match=r"trials\.nc: dims must be exactly \('presentation', 'neuroid', 'time_bin'\); "
                                        r"found \('presentation', 'neuroid', 'time_bin', 'trial'\), with extra \['trial'\]"):
        load_assembly(tmp_path / "trials.nc")


def test_nan_policy(tmp_path):
    assembly = _assembly()
    values = assembly.values.copy()
    values[2, 1, 0] = np.nan
    write_assembly(assembly.copy(data=values), tmp_path / "nan.nc")
    with pytest.raises(DataError, match=r"nan\.nc: field 'data' has NaN/inf values in 1 neuroid, e.g. \['n1'\]"):
        load_assembly(tmp_path / "nan.nc")
    # and where the first is, as the retina reader names its first NaN (the error named the neuroid only)
    with pytest.raises(DataError, match=r"; pass nan_policy='allow' or 'drop-neuroids'; the first of 1 is at stimulus_id "
                                        r"im002, repetition 0, neuroid_id n1, time bin \[70, 80\) ms \(expected finite "
                                        r"numbers\)$"):
        load_assembly(tmp_path / "nan.nc")
    assert int(np.isnan(load_assembly(tmp_path / "nan.nc", nan_policy="allow").values).sum()) == 1
    dropped = load_assembly(tmp_path / "nan.nc", nan_policy="drop-neuroids")
    assert list(dropped["neuroid_id"].values) == ["n0", "n2", "n3"]
    np.testing.assert_array_equal(dropped.values, values[:, [0, 2, 3]])
    with pytest.raises(DataError, match="nan_policy must be one of"):
        load_assembly(tmp_path / "nan.nc", nan_policy="ignore")


def test_repeats_never_shown_as_nan_rows_are_named_with_the_way_out(tmp_path):
    """Cowley's raw layout keeps a NaN row for every repeat an image was not shown. The error said "NaN/inf values in
    4 neuroid(s); pass nan_policy='allow' or 'drop-neuroids'", and 'drop-neuroids' then left nothing. It now names
    the empty presentations, and 'allow', which it advises, gives the assembly without those rows' numbers."""
    from neurozoo.benchmarks.metrics import internal_consistency

    assembly = _assembly(n_stimuli=8, n_reps=4)
    values = assembly.values.copy()
    values[-3:] = np.nan  # the last repeat of three stimuli was never shown
    write_assembly(assembly.copy(data=values), tmp_path / "missing.nc")
    expected = r"missing\.nc: field 'data' has NaN/inf values in 4 neuroids, e.g. \['n0', 'n1', 'n2'\]; 3 of 32 " \
               r"presentations are NaN/inf in every neuroid \(e.g. im005, repetition 3\), as repeats never shown are: " \
               r"drop those presentations, or pass nan_policy='allow'"
    with pytest.raises(DataError, match=expected):
        load_assembly(tmp_path / "missing.nc")
    with pytest.raises(DataError, match=r"nothing left after nan_policy='drop-neuroids'; 3 of 32 presentations"):
        load_assembly(tmp_path / "missing.nc", nan_policy="drop-neuroids")
    allowed = internal_consistency(load_assembly(tmp_path / "missing.nc", nan_policy="allow"))
    dropped = internal_consistency(assembly.isel(presentation=slice(0, -3)))
    np.testing.assert_allclose(allowed.per_bin, dropped.per_bin, rtol=1e-12)


def test_inf_and_empty_assemblies_are_refused_on_load(tmp_path):
    """An inf passed the NaN check, and the scorer then dropped that neuroid without a word (it is not finite after
    averaging repetitions); an assembly with no presentations loaded and failed later with a ceiling error about
    repetitions."""
    assembly = _assembly()
    values = assembly.values.copy()
    values[0, 2, 1] = -np.inf
    write_assembly(assembly.copy(data=values), tmp_path / "inf.nc")
    with pytest.raises(DataError, match=r"inf\.nc: field 'data' has NaN/inf values in 1 neuroid, e.g. \['n2'\]"):
        load_assembly(tmp_path / "inf.nc")
    assert list(load_assembly(tmp_path / "inf.nc", nan_policy="drop-neuroids")["neuroid_id"].values) == ["n0", "n1", "n3"]
    empty = assembly.isel(presentation=[])
    with pytest.raises(DataError, match=r"out\.nc: field 'data' has shape \{'presentation': 0"):
        write_assembly(empty, tmp_path / "out.nc")
    reset_brainscore_indexes(empty).to_netcdf(tmp_path / "empty.nc")  # written by another tool
    with pytest.raises(DataError, match=r"empty\.nc: field 'data' has shape \{'presentation': 0, 'neuroid': 4, "
                                        r"'time_bin': 3\}; expected at least one presentation"):
        load_assembly(tmp_path / "empty.nc")


def test_a_folder_is_named_as_a_folder_not_as_a_missing_file(tmp_path):
    """A folder given for the assembly was "assembly file not found", as if nothing were there."""
    with pytest.raises(DataError, match=re.escape(f"{tmp_path}: is a folder, not a netCDF assembly file (.nc)")):
        load_assembly(tmp_path)
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'gone.nc'}: assembly file not found")):
        load_assembly(tmp_path / "gone.nc")


@pytest.mark.parametrize("starts, ends, message", [
    ([80, 70, 90], [90, 80, 100], r"time bins out of order: bin 1 \[70, 80\) ms does not start after bin 0 \[80, 90\) ms"),
    ([70, 80, 90], [80, 80, 100], r"time bin 1 \[80, 80\) ms does not end after it starts"),
])
def test_bad_time_bins(tmp_path, starts, ends, message):
    assembly = _assembly().assign_coords(time_bin_start=("time_bin", starts), time_bin_end=("time_bin", ends))
    assembly.to_dataset(name="data").to_netcdf(tmp_path / "bins.nc")
    with pytest.raises(DataError, match=r"bins\.nc: " + message):
        load_assembly(tmp_path / "bins.nc")


def test_overlapping_windows_of_brainscores_majajhong2015_temporal_files_are_read(tmp_path):
    """Brain-Score's MajajHong2015 temporal assemblies hold 20 ms windows every 10 ms, time_bin_start -100..280 and
    time_bin_end -80..300 (brain-score's tests of 'dicarlo.Majaj2015.temporal.*'; its benchmark realigns them with
    assembly_time_align): load_assembly refused the file, "time bins overlap: bin 0 [-100, -80) ms and bin 1 [-90,
    -70) ms". They are read as they are, and the ceiling has one value per window."""
    from neurozoo.benchmarks.metrics import internal_consistency

    starts = np.arange(-100, 281, 10)
    assembly = _assembly(n_stimuli=12, n_reps=4, starts=starts)
    assembly = assembly.assign_coords(time_bin_end=("time_bin", starts + 20))
    write_assembly(assembly, tmp_path / "majajhong_temporal.nc")
    loaded = load_assembly(tmp_path / "majajhong_temporal.nc")
    assert loaded["time_bin_start"].values.tolist() == list(range(-100, 281, 10))
    assert loaded["time_bin_end"].values.tolist() == list(range(-80, 301, 10))
    assert internal_consistency(loaded).per_bin.shape == (39,)


def test_make_assembly_refuses_time_bins_it_would_truncate():
    """make_assembly stores time bins as int ms: a bound in fractions of a ms was truncated (70.5 -> 70), silently."""
    values = np.zeros((1, 1, 2))
    with pytest.raises(DataError, match=r"assembly time_bin: time bin 0 \[70\.5, 80\) ms is not in whole ms"):
        make_assembly(values, {"stimulus_id": ["a"]}, {"neuroid_id": ["n"]},
                      {"time_bin_start": [70.5, 80], "time_bin_end": [80, 90]})
    assembly = make_assembly(values, {"stimulus_id": ["a"]}, {"neuroid_id": ["n"]},
                             {"time_bin_start": [70.0, 80], "time_bin_end": [80, 90]})
    assert assembly["time_bin_start"].values.tolist() == [70, 80]


def test_load_assembly_refuses_the_fractional_time_bins_make_assembly_refuses(tmp_path):
    """Brain-Score stores time bins as int ms: load_assembly read [70.5, 80) as it was (and a (presentation, neuroid)
    file's window truncated to 70), while make_assembly refused it. A whole-ms float bin is read as int ms."""
    assembly = _assembly().assign_coords(time_bin_start=("time_bin", [70.5, 80, 90]),
                                         time_bin_end=("time_bin", [80.0, 90, 100]))
    assembly.to_dataset(name="data").to_netcdf(tmp_path / "half.nc")
    with pytest.raises(DataError, match=r"half\.nc: time bin 0 \[70\.5, 80\) ms is not in whole ms"):
        load_assembly(tmp_path / "half.nc")
    with pytest.raises(DataError, match=r"flat\.nc: time window: time bin 0 \[70\.5, 170\) ms is not in whole ms"):
        _assembly().isel(time_bin=0, drop=True).to_dataset(name="data").to_netcdf(tmp_path / "flat.nc")
        load_assembly(tmp_path / "flat.nc", time_bin=(70.5, 170))
    assembly.assign_coords(time_bin_start=("time_bin", [70.0, 80, 90])).to_dataset(name="data").to_netcdf(
        tmp_path / "whole.nc")
    loaded = load_assembly(tmp_path / "whole.nc")
    assert loaded["time_bin_start"].dtype == np.int64 and loaded["time_bin_start"].values.tolist() == [70, 80, 90]


def test_stimulus_ids_must_match_the_stimulus_set(tmp_path):
    assembly = _assembly(n_stimuli=5)
    path = write_assembly(assembly, tmp_path / "a.nc")
    complete = make_stimulus_set({"stimulus_id": [f"im{i:03d}" for i in range(5)]}, "toy")
    assert load_assembly(path, stimulus_set=complete).sizes["presentation"] == 15
    with pytest.raises(DataError, match=r"a\.nc: 2 stimulus_id values are not in stimulus set 'toy', e.g. \['im003', 'im004'\]"):
        load_assembly(path, stimulus_set=complete.iloc[:3])


def test_construction_errors_and_unstorable_attributes(tmp_path):
    with pytest.raises(DataError, match=r"assembly of shape \(2, 1, 1\):"):
        make_assembly(np.zeros((2, 1, 1)), presentation={"stimulus_id": ["a", "b", "c"]}, neuroid={}, time_bin={})
    assembly = _assembly().assign_attrs(averaged=True, stimulus_set=object(), note="kept")
    loaded = load_assembly(write_assembly(assembly, tmp_path / "attrs.nc"))
    assert loaded.attrs["averaged"] == 1 and loaded.attrs["note"] == "kept" and "stimulus_set" not in loaded.attrs


def test_duplicates_are_refused():
    assembly = _assembly()
    with pytest.raises(DataError, match=r"'neuroid_id' has duplicates, e.g. \['n0'\]$"):
        validate_assembly(assembly.assign_coords(neuroid_id=("neuroid", ["n0", "n0", "n0", "n2"])))
    with pytest.raises(DataError, match=r"presentations \(stimulus_id, repetition\) repeat"):
        validate_assembly(assembly.assign_coords(repetition=("presentation", np.zeros(15, int))))



def test_a_nan_repetition_is_named_not_reported_as_a_repeated_presentation():
    """Two NaN repetitions of one stimulus were refused as "(stimulus_id, repetition) repeat, e.g. ('im001', nan)";
    one NaN passed."""
    repetition = np.repeat(np.arange(3.0), 5)
    for index, count in (([6], 1), ([1, 6], 2)):
        repetition[index] = np.nan
        message = (f"cells.nc: coordinate 'repetition' is NaN or infinite at {count} presentation{'s' if count > 1 else ''}, e.g. index "
                   f"{index} (stimulus_id {['im001'] * count}); expected a trial number for every presentation")
        with pytest.raises(DataError, match=f"^{re.escape(message)}$"):
            validate_assembly(_assembly().assign_coords(repetition=("presentation", repetition)), "cells.nc")


def _images(folder, n, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(folder / f"img{i}.png")
    return {"stimulus_id": [f"{i:04d}" for i in range(n)], "filename": [f"img{i}.png" for i in range(n)],
            "object_name": ["a", "b", "a", "b"][:n], "size": [1.5, 0.25, 2.0, 1.0][:n], "flag": [True, False, True, True][:n]}


def test_stimulus_set_round_trip_and_hash(tmp_path):
    records = _images(tmp_path / "src", 4)
    stimuli = make_stimulus_set(records, "toy", image_dir=tmp_path / "src")
    assert isinstance(stimuli, StimulusSet)
    assert stimuli.get_stimulus("0002") == tmp_path / "src" / "img2.png"
    csv = write_stimulus_set(stimuli, tmp_path / "out" / "toy.csv")
    loaded = load_stimulus_set(csv)
    assert loaded.identifier == "toy" and loaded.image_dir == tmp_path / "out" / "toy"
    assert list(loaded["stimulus_id"]) == ["0000", "0001", "0002", "0003"]  # ids stay text
    assert loaded.get_stimulus("0001").read_bytes() == (tmp_path / "src" / "img1.png").read_bytes()
    assert loaded.sha256() == stimuli.sha256()
    assert loaded.iloc[::-1].sha256() == stimuli.sha256()  # row order does not matter
    subset = loaded[loaded["object_name"] == "a"]
    assert isinstance(subset, StimulusSet) and subset.identifier == "toy" and subset.sha256() != stimuli.sha256()
    # the hash covers the image bytes and the table
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "out" / "toy" / "img3.png")
    assert load_stimulus_set(csv).sha256() != stimuli.sha256()
    assert make_stimulus_set({**records, "size": [1.5, 0.25, 2.0, 1.1]}, "toy", tmp_path / "src").sha256() != stimuli.sha256()


def test_stimulus_set_errors(tmp_path):
    records = _images(tmp_path / "src", 3)
    with pytest.raises(DataError, match="column 'stimulus_id' has duplicates"):
        make_stimulus_set({**records, "stimulus_id": ["a", "a", "b"]}, "dup", tmp_path / "src")
    (tmp_path / "src" / "img1.png").unlink()
    with pytest.raises(DataError, match=r"1 image file listed in column 'filename' is missing .*img1\.png"):
        make_stimulus_set(records, "gone", tmp_path / "src")
    (tmp_path / "bad.csv").write_text("filename\nx.png\n")
    with pytest.raises(DataError, match=r"bad\.csv: missing column 'stimulus_id'"):
        load_stimulus_set(tmp_path / "bad.csv")


def test_a_stimulus_sets_missing_images_are_counted_in_words(tmp_path):
    """The refusal said "1 image file(s) listed in column 'filename' are missing": one file is now one that is."""
    records = _images(tmp_path / "src", 3)
    (tmp_path / "src" / "img1.png").unlink()
    with pytest.raises(DataError) as one:
        make_stimulus_set(records, "gone", tmp_path / "src")
    assert str(one.value) == (f"gone: 1 image file listed in column 'filename' is missing from {tmp_path / 'src'}, "
                              "e.g. ['img1.png']")
    (tmp_path / "src" / "img2.png").unlink()
    with pytest.raises(DataError) as two:
        make_stimulus_set(records, "gone", tmp_path / "src")
    assert str(two.value) == (f"gone: 2 image files listed in column 'filename' are missing from {tmp_path / 'src'}, "
                              "e.g. ['img1.png', 'img2.png']")
    no_images = make_stimulus_set({"stimulus_id": ["a"]}, "labels-only")
    with pytest.raises(DataError, match="no image file for stimulus_id 'a'"):
        no_images.get_stimulus("a")


def test_an_empty_stimulus_set_csv_is_named(tmp_path):
    """A 0-byte CSV raised pandas' EmptyDataError (a traceback); a header without rows loaded as a set of 0."""
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.csv: empty file; expected a CSV with columns stimulus_id, filename"):
        load_stimulus_set(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("stimulus_id,filename,object_name\n")
    with pytest.raises(DataError, match=r"header\.csv: no stimuli \(a header and no rows\)"):
        load_stimulus_set(tmp_path / "header.csv")


def test_a_stimulus_set_whose_image_folder_is_missing_is_named(tmp_path):
    """The set loaded as one 'without images' and failed later with 'this set has no images'."""
    records = _images(tmp_path / "src", 3)
    csv = write_stimulus_set(make_stimulus_set(records, "toy", image_dir=tmp_path / "src"), tmp_path / "out" / "toy.csv")
    for name in ("img0.png", "img1.png", "img2.png"):
        (tmp_path / "out" / "toy" / name).unlink()
    (tmp_path / "out" / "toy").rmdir()
    with pytest.raises(DataError, match=rf"toy\.csv: column 'filename' names 3 image files, e\.g\. \['img0\.png', "
                                        rf"'img1\.png', 'img2\.png'\], but the image folder {tmp_path}/out/toy does not "
                                        r"exist \(expected beside the CSV, named as it without \.csv; or, in "
                                        r"Brain-Score's layout, toy\.zip or the images themselves beside the CSV\)"):
        load_stimulus_set(csv)
    with pytest.raises(DataError, match=r"the image folder .*elsewhere does not exist \(expected as image_dir\)"):
        load_stimulus_set(csv, image_dir=tmp_path / "elsewhere")


def test_a_stimulus_set_in_brainscores_layout_reads_from_its_zip_or_the_images_unzipped_beside_it(tmp_path):
    """brainio packages a stimulus set as stimulus_<name>.csv beside stimulus_<name>.zip (package_stimulus_set;
    'filename' names the zip's members) and its get_stimulus_set unzips the zip beside the CSV: both were refused,
    'the image folder .../stimulus_toy does not exist'. The zip is unpacked whole into that folder; the set is the
    same set (sha256) as the one written with its folder."""
    import zipfile

    records = _images(tmp_path / "src", 3)
    ours = write_stimulus_set(make_stimulus_set(records, "toy", image_dir=tmp_path / "src"), tmp_path / "ours" / "toy.csv")
    expected = load_stimulus_set(ours).sha256()
    brainio = tmp_path / "brainio"
    brainio.mkdir()
    csv = brainio / "stimulus_toy.csv"
    csv.write_bytes(ours.read_bytes())
    with zipfile.ZipFile(brainio / "stimulus_toy.zip", "w") as archive:
        for name in ("img0.png", "img1.png", "img2.png"):
            archive.write(tmp_path / "src" / name, arcname=name)
    from_zip = load_stimulus_set(csv)
    assert from_zip.image_dir == brainio / "stimulus_toy" and from_zip.sha256() == expected
    assert sorted(p.name for p in (brainio / "stimulus_toy").iterdir()) == ["img0.png", "img1.png", "img2.png",
                                                                             "manifest.json"]
    assert [p.name for p in brainio.iterdir() if ".tmp" in p.name] == []  # no temporary left
    shutil.rmtree(brainio / "stimulus_toy")
    with zipfile.ZipFile(brainio / "stimulus_toy.zip") as archive:  # as brainio's fetch.unzip does
        archive.extractall(brainio)
    beside = load_stimulus_set(csv)
    assert beside.image_dir == brainio and beside.sha256() == expected
    assert not (brainio / "stimulus_toy").exists()  # nothing unpacked when the images are there


def test_a_stimulus_zip_that_is_no_zip_or_would_unpack_outside_its_folder_is_named(tmp_path):
    import zipfile

    records = _images(tmp_path / "src", 2)
    csv = write_stimulus_set(make_stimulus_set(records, "toy", image_dir=tmp_path / "src"), tmp_path / "set" / "toy.csv")
    shutil.rmtree(tmp_path / "set" / "toy")
    (tmp_path / "set" / "toy.zip").write_bytes(b"half a download")
    with pytest.raises(DataError, match=rf"^{tmp_path}/set/toy\.zip: not a readable zip \(File is not a zip file\); "
                                        r"expected the stimulus set's images, zipped as brainio packages them$"):
        load_stimulus_set(csv)
    with zipfile.ZipFile(tmp_path / "set" / "toy.zip", "w") as archive:
        archive.writestr("../escaped.png", b"x")
    with pytest.raises(DataError, match=r"toy\.zip: member '\.\./escaped\.png' would be unpacked outside "):
        load_stimulus_set(csv)
    assert not (tmp_path / "escaped.png").exists() and not (tmp_path / "set" / "toy").exists()


def test_a_corrupt_image_in_a_stimulus_set_is_named(tmp_path):
    from neurozoo.benchmarks.extraction.images import load_stimulus_set as read_images

    stimuli = make_stimulus_set(_images(tmp_path / "src", 3), "toy", image_dir=tmp_path / "src")
    (tmp_path / "src" / "img1.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=rf"^cannot read image {tmp_path}/src/img1\.png \(stimulus_id '0001'\): not an "
                                        r"image PIL can decode"):
        read_images(stimuli, image_size=8)


def test_integer_stimulus_ids_in_a_file_match_the_same_ids_in_a_stimulus_set_csv(tmp_path):
    """A user numbering stimuli 0..N-1 in both files was told '5 stimulus_id value(s) are not in stimulus set, e.g.
    [0, 1, 2]': the CSV's ids are read as text ('0'), the netCDF's stayed integers. Both are text now."""
    assembly = _assembly(n_stimuli=5)
    numbered = assembly.assign_coords(stimulus_id=("presentation", np.array([int(s[2:]) for s in assembly["stimulus_id"].values])))
    numbered.to_netcdf(tmp_path / "numbered.nc")  # as xarray writes it
    images = tmp_path / "numbered"
    images.mkdir()
    for i in range(5):
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(images / f"{i}.png")
    (tmp_path / "numbered.csv").write_text("stimulus_id,filename\n" + "".join(f"{i},{i}.png\n" for i in range(5)))
    stimuli = load_stimulus_set(tmp_path / "numbered.csv")
    loaded = load_assembly(tmp_path / "numbered.nc", stimulus_set=stimuli)
    assert loaded["stimulus_id"].values.tolist() == [str(int(s[2:])) for s in assembly["stimulus_id"].values]
    np.testing.assert_array_equal(loaded.values, assembly.values)


def test_character_array_text_as_matlab_writes_it_is_read_as_text(tmp_path):
    """MATLAB's netCDF writer (and netCDF3) stores text as NC_CHAR arrays, which xarray reads as bytes: the ids b'im000'..
    matched none of a stimulus set's 'im000'.. ('5 stimulus_id value(s) are not in stimulus set'). Such a writer also
    leaves out xarray's 'coordinates' attribute, and the file was refused for "missing coordinate 'stimulus_id' along
    'presentation' (coords: [])" though it has that variable."""
    assembly = _assembly(n_stimuli=5)
    with netCDF4.Dataset(tmp_path / "matlab.nc", "w", format="NETCDF4") as f:
        for dim, n in (*assembly.sizes.items(), ("chars", 8)):
            f.createDimension(dim, n)
        for name in ("stimulus_id", "object_name", "neuroid_id", "region"):
            column = assembly[name].values.astype("S8")
            f.createVariable(name, "S1", (assembly[name].dims[0], "chars"))[:] = netCDF4.stringtochar(column)
        for name in ("repetition", "time_bin_start", "time_bin_end"):
            f.createVariable(name, "i8", assembly[name].dims)[:] = assembly[name].values
        f.createVariable("data", "f8", assembly.dims)[:] = assembly.values
    assert xr.open_dataset(tmp_path / "matlab.nc")["stimulus_id"].dtype.kind == "S"  # what the reader is given
    stimuli = make_stimulus_set({"stimulus_id": [f"im{i:03d}" for i in range(5)]}, "toy")
    loaded = load_assembly(tmp_path / "matlab.nc", stimulus_set=stimuli)
    for name in ("stimulus_id", "object_name", "neuroid_id", "region"):
        assert loaded[name].values.tolist() == assembly[name].values.tolist()
    np.testing.assert_array_equal(loaded.values, assembly.values)


def test_an_interrupted_write_leaves_the_file_of_before(tmp_path, monkeypatch):
    """write_assembly and write_stimulus_set wrote straight to the path: a write stopped halfway (Ctrl-C, a full disk)
    left half a file under the final name, in place of the recording written there before."""
    path = write_assembly(_assembly(seed=0), tmp_path / "my_v4.nc")
    before = path.read_bytes()

    def half_written(self, target, *args, **kwargs):
        Path(target).write_bytes(b"\x89HDF\r\n")  # a netCDF4 file's first bytes, then the write stops
        raise KeyboardInterrupt

    monkeypatch.setattr(xr.Dataset, "to_netcdf", half_written)
    with pytest.raises(KeyboardInterrupt):
        write_assembly(_assembly(seed=1), path)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["my_v4.nc"]
    # the stimulus set's CSV likewise: one cut at a line end read as a smaller set, without a word
    stimuli = make_stimulus_set({"stimulus_id": ["a", "b", "c"], "object_name": ["x", "y", "z"]}, "toy")
    csv = write_stimulus_set(stimuli, tmp_path / "my_stimuli.csv")
    before = csv.read_bytes()

    def first_rows(self, target, *args, **kwargs):
        Path(target).write_text("stimulus_id,object_name,filename\na,x,\n")
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_csv", first_rows)
    with pytest.raises(KeyboardInterrupt):
        write_stimulus_set(stimuli.iloc[::-1], csv)
    assert csv.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["my_stimuli.csv", "my_v4.nc"]


def test_object_name_missing_from_the_file_comes_from_the_stimulus_set_as_brainscore_merges_it(tmp_path):
    """Brain-Score's loader merges the stimulus set's columns into the assembly (brainio StimulusMergeAssemblyLoader), so
    its files need not hold object_name: load_assembly(path, stimulus_set=...) refused such a file for "missing
    coordinate 'object_name'" though my_stimuli.csv has the column. A coordinate the file has is kept."""
    assembly = _assembly(n_stimuli=5)
    assembly.drop_vars("object_name").to_netcdf(tmp_path / "no_objects.nc")
    ids = [f"im{i:03d}" for i in range(5)]
    stimuli = make_stimulus_set({"stimulus_id": ids, "object_name": [f"obj{i % 2}" for i in range(5)],
                                 "size": range(5)}, "toy")
    loaded = load_assembly(tmp_path / "no_objects.nc", stimulus_set=stimuli)
    assert loaded["object_name"].values.tolist() == assembly["object_name"].values.tolist()
    assert "size" not in loaded.coords  # only the required coordinates: the data's checksum stays that of the file
    with pytest.raises(DataError, match="no_objects.nc: missing coordinate 'object_name' along 'presentation'"):
        load_assembly(tmp_path / "no_objects.nc")
    assembly.to_netcdf(tmp_path / "objects.nc")
    renamed = make_stimulus_set({"stimulus_id": ids, "object_name": ["other"] * 5}, "toy")
    kept = load_assembly(tmp_path / "objects.nc", stimulus_set=renamed)
    assert kept["object_name"].values.tolist() == assembly["object_name"].values.tolist()


def test_a_stimulus_set_made_in_python_with_integer_ids_holds_them_as_text(tmp_path):
    """make_stimulus_set({"stimulus_id": range(5), ...}) kept ints: an assembly's ids (text, as a CSV's) were "not in
    stimulus set, e.g. ['0', '1', '2']", and reading its images failed with "no stimulus_id '0'"."""
    from neurozoo.benchmarks.extraction.images import load_stimulus_set as read_images

    for i in range(5):
        Image.fromarray(np.full((4, 4, 3), 40 * i, np.uint8)).save(tmp_path / f"{i}.png")
    stimuli = make_stimulus_set({"stimulus_id": range(5), "filename": [f"{i}.png" for i in range(5)]}, "toy",
                                image_dir=tmp_path)
    assert stimuli["stimulus_id"].tolist() == ["0", "1", "2", "3", "4"]
    assembly = _assembly(n_stimuli=5)
    numbered = assembly.assign_coords(stimulus_id=("presentation", np.array([int(s[2:]) for s in assembly["stimulus_id"].values])))
    numbered.to_netcdf(tmp_path / "numbered.nc")
    assert load_assembly(tmp_path / "numbered.nc", stimulus_set=stimuli).sizes["presentation"] == 15
    images = read_images(stimuli, image_size=None)
    assert images.ids == ["0", "1", "2", "3", "4"] and images.pixels[4, 0, 0, 0] == 160


def test_whole_number_float_stimulus_ids_match_a_csvs_and_other_floats_or_empty_ids_are_named(tmp_path):
    """MATLAB stores numbers as doubles: ids 0.0..4.0 stayed floats and matched none of the CSV's '0'..'4' (a list of
    '5 stimulus_id value(s) are not in stimulus set'), and without a stimulus set a fractional, NaN or empty id
    (netCDF's missing text) was read as an id."""
    assembly = _assembly(n_stimuli=5)
    numbers = np.array([float(s[2:]) for s in assembly["stimulus_id"].values])
    assembly.assign_coords(stimulus_id=("presentation", numbers)).to_netcdf(tmp_path / "doubles.nc")
    images = tmp_path / "doubles"
    images.mkdir()
    for i in range(5):
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(images / f"{i}.png")
    (tmp_path / "doubles.csv").write_text("stimulus_id,filename\n" + "".join(f"{i},{i}.png\n" for i in range(5)))
    loaded = load_assembly(tmp_path / "doubles.nc", stimulus_set=load_stimulus_set(tmp_path / "doubles.csv"))
    assert loaded["stimulus_id"].values.tolist() == [str(int(n)) for n in numbers]
    for name, ids, message in (("half", numbers + 0.5, r"holds \d+ values that are not whole numbers, e\.g\. "
                                                        r"\[0\.5, 1\.5, 2\.5\]; expected text or whole numbers"),
                               ("nan", np.where(numbers == 1, np.nan, numbers),
                                r"holds \d+ values? that (is|are) not whole numbers, e\.g\. \[nan"),
                               ("empty", np.where(numbers == 1, "", numbers.astype(int).astype(str)),
                                r"is empty at \d+ presentations?, e\.g\. index \[\d+")):
        assembly.assign_coords(stimulus_id=("presentation", ids)).to_netcdf(tmp_path / f"{name}.nc")
        with pytest.raises(DataError, match=rf"^{tmp_path}/{name}\.nc: coordinate 'stimulus_id' {message}"):
            load_assembly(tmp_path / f"{name}.nc")
    # an empty neuroid id too (it loaded, a unit named '')
    assembly.assign_coords(neuroid_id=("neuroid", ["n0", "", "n2", "n3"])).to_netcdf(tmp_path / "unnamed.nc")
    with pytest.raises(DataError, match=rf"^{tmp_path}/unnamed\.nc: coordinate 'neuroid_id' is empty at 1 neuroid, "
                                        r"e\.g\. index \[1\]; expected an id for every neuroid$"):
        load_assembly(tmp_path / "unnamed.nc")


def test_allow_keeps_nan_but_refuses_inf(tmp_path):
    """nan_policy='allow' let an inf through, and the ceiling and the score then averaged it away as a missing repeat:
    a -inf in the first repeat of every stimulus of one unit (the log of a zero rate) gave a ceiling as if that repeat
    had not been recorded, without a word. NaN (not recorded) stays allowed; inf is refused, naming where."""
    assembly = _assembly()
    values = assembly.values.copy()
    values[2, 1, 0] = np.nan
    write_assembly(assembly.copy(data=values), tmp_path / "nan.nc")
    assert int(np.isnan(load_assembly(tmp_path / "nan.nc", nan_policy="allow").values).sum()) == 1
    values[0, 2, 1] = -np.inf
    write_assembly(assembly.copy(data=values), tmp_path / "inf.nc")
    first = assembly.isel(presentation=0)
    expected = (rf"inf\.nc: field 'data' has 1 infinite value \(e\.g\. stimulus_id {first['stimulus_id'].item()}, "
                rf"repetition {first['repetition'].item()}, neuroid_id n2, time bin \[80, 90\) ms\); nan_policy='allow' "
                "keeps NaN")
    with pytest.raises(DataError, match=expected):
        load_assembly(tmp_path / "inf.nc", nan_policy="allow")
    assert list(load_assembly(tmp_path / "inf.nc", nan_policy="drop-neuroids")["neuroid_id"].values) == ["n0", "n3"]


def test_float16_values_and_coordinates_are_written_as_float32(tmp_path):
    """netCDF has no 16-bit float: write_assembly of half-precision features (or a float16 coordinate) failed in
    netCDF4 with "Illegal primitive data type ... got float16", naming neither the file nor a way out."""
    assembly = _assembly()
    half = assembly.astype(np.float16).assign_coords(contrast=("presentation", np.linspace(0, 1, 15).astype(np.float16)))
    loaded = load_assembly(write_assembly(half, tmp_path / "half.nc"))
    assert loaded.dtype == np.float32 and loaded["contrast"].dtype == np.float32
    np.testing.assert_array_equal(loaded.values, half.values.astype(np.float32))
    np.testing.assert_array_equal(loaded["contrast"].values, half["contrast"].values.astype(np.float32))
    assert loaded.attrs["stimulus_set_identifier"] == "toy"


def test_list_and_array_attributes_survive_a_round_trip(tmp_path):
    """netCDF attributes hold flat lists of numbers or of text, but write_assembly kept only scalars: a list of layers,
    the time window as (start, end) or a 1-d array of gains was dropped without a word."""
    assembly = _assembly().assign_attrs(layers=["conv5", "conv6"], window_ms=(70, 170), gains=np.array([0.5, 2.0]),
                                        half=np.float16(1.5), flags=[True, False], nested=[[1, 2]], table={"a": 1})
    loaded = load_assembly(write_assembly(assembly, tmp_path / "attrs.nc"))
    assert loaded.attrs["layers"] == ["conv5", "conv6"]
    assert loaded.attrs["window_ms"].tolist() == [70, 170] and loaded.attrs["gains"].tolist() == [0.5, 2.0]
    assert loaded.attrs["half"] == 1.5 and loaded.attrs["flags"].tolist() == [1, 0]
    assert "nested" not in loaded.attrs and "table" not in loaded.attrs  # no netCDF attribute holds them


def test_id_like_columns_keep_their_text_through_a_csv_round_trip_and_other_columns_their_type(tmp_path):
    """pandas re-parses every CSV column, as Brain-Score's loader (brainio's StimulusSetLoader, a plain read_csv) does:
    a background_id '007' came back as 7, and so did any column whose values have leading zeros ('0042' -> 42), so
    they matched neither the set they were written from nor an assembly's text coordinate. Integer ids given to
    make_stimulus_set in an id-named column are held as text, as its stimulus ids are, so the round trip is exact."""
    records = {"stimulus_id": ["007", "010", "1"], "filename": ["", "", ""], "object_name": ["001", "002", "001"],
               "background_id": ["007", "8", "0x1f"], "category_id": [1, 2, 10], "id": ["01", "02", "03"],
               "code": ["0042", "0043", "7"], "size": [1.5, 0.25, 2.0], "count": [3, 4, 5], "flag": [True, False, True],
               "label": ["a", "b", "NA"], "sparse": [1.0, np.nan, 2.0]}
    stimuli = make_stimulus_set(records, "ids")
    assert stimuli["category_id"].tolist() == ["1", "2", "10"]
    csv = write_stimulus_set(stimuli, tmp_path / "ids.csv")
    loaded = load_stimulus_set(csv)
    for column in ("stimulus_id", "object_name", "background_id", "category_id", "id", "code", "label"):
        assert loaded[column].tolist() == stimuli[column].tolist(), column
        assert all(isinstance(v, str) for v in loaded[column]), column
    assert loaded["size"].dtype == np.float64 and loaded["size"].tolist() == [1.5, 0.25, 2.0]
    assert loaded["count"].dtype == np.int64 and loaded["count"].tolist() == [3, 4, 5]
    assert loaded["flag"].dtype == bool and loaded["flag"].tolist() == [True, False, True]
    assert loaded["sparse"].dtype == np.float64 and np.isnan(loaded["sparse"][1])
    assert loaded.sha256() == stimuli.sha256()
    # an assembly's text ids with leading zeros match the set's, and '7' is not taken for '007'
    assembly = _assembly(n_stimuli=3).assign_coords(stimulus_id=("presentation", np.tile(["007", "010", "1"], 3)))
    write_assembly(assembly, tmp_path / "ids.nc")
    assert load_assembly(tmp_path / "ids.nc", stimulus_set=loaded)["stimulus_id"].values[:3].tolist() == ["007", "010", "1"]
    write_assembly(assembly.assign_coords(stimulus_id=("presentation", np.tile(["7", "010", "1"], 3))), tmp_path / "seven.nc")
    with pytest.raises(DataError, match=r"1 stimulus_id value is not in stimulus set 'ids', e\.g\. \['7'\]"):
        load_assembly(tmp_path / "seven.nc", stimulus_set=loaded)


def test_a_stimulus_set_csv_with_an_empty_id_a_partly_empty_filename_or_shifted_rows_is_named(tmp_path):
    """Three CSVs that loaded without a word: an empty stimulus_id cell became NaN (no assembly id, and no image found
    by it); one empty 'filename' among named ones made the whole set 'without images' (has_images False, so every
    get_stimulus failed with 'this set has no images'); rows of one field more than the header were read with their
    first field as pandas' index, every column shifted by one (the error then named a 'missing image' 'extra')."""
    folder = tmp_path / "set"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(folder / name)
    (tmp_path / "set.csv").write_text("stimulus_id,filename\n1,a.png\n,b.png\n")
    with pytest.raises(DataError, match=r"set\.csv: column 'stimulus_id' is empty in 1 of 2 rows, e\.g\. row \[1\] "
                                        r"\(from 0, the header not counted\); expected an id for every stimulus"):
        load_stimulus_set(tmp_path / "set.csv")
    (tmp_path / "set.csv").write_text("stimulus_id,filename\n1,a.png\n2,\n")
    with pytest.raises(DataError, match=r"set\.csv: column 'filename' is empty for 1 of 2 stimuli, e\.g\. stimulus_id "
                                        r"\['2'\]; expected an image file for every stimulus \(or for none"):
        load_stimulus_set(tmp_path / "set.csv")
    with pytest.raises(DataError, match=r"^partly: column 'filename' is empty for 1 of 2 stimuli"):
        make_stimulus_set({"stimulus_id": ["1", "2"], "filename": ["a.png", ""]}, "partly", folder)
    (tmp_path / "set.csv").write_text("stimulus_id,filename\n1,a.png,x\n2,b.png,y\n")
    with pytest.raises(DataError, match=r"set\.csv: its rows hold more fields than the header names \(2: stimulus_id, "
                                        r"filename\); expected one value per column in every row"):
        load_stimulus_set(tmp_path / "set.csv")
    (tmp_path / "set.csv").write_text("stimulus_id,filename\n1,a.png\n2,b.png,y\n")
    with pytest.raises(DataError, match=r"set\.csv: not a readable CSV \(Error tokenizing data\. C error: Expected 2 "
                                        r"fields in line 3, saw 3\)$"):
        load_stimulus_set(tmp_path / "set.csv")
    (tmp_path / "set.csv").write_text("stimulus_id,filename\n1,a.png\n2,b.png\n")
    assert load_stimulus_set(tmp_path / "set.csv").has_images


def test_a_stimulus_set_rewrite_interrupted_halfway_leaves_the_set_of_before(tmp_path, monkeypatch):
    """Each image was renamed into place as it was copied: a rewrite stopped at its second image left the old CSV
    with the new first image under its name, a set that matched neither."""
    import pathlib

    old = make_stimulus_set(_images(tmp_path / "old", 3), "toy", image_dir=tmp_path / "old")
    csv = write_stimulus_set(old, tmp_path / "out" / "toy.csv")
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}
    records = _images(tmp_path / "new", 3, seed=1)
    new = make_stimulus_set({**records, "object_name": ["c", "d", "c"]}, "toy", image_dir=tmp_path / "new")
    calls, real = [], pathlib.Path.write_bytes

    def interrupted(self, data):
        calls.append(self)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, data)

    monkeypatch.setattr(pathlib.Path, "write_bytes", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_stimulus_set(new, csv)
    monkeypatch.setattr(pathlib.Path, "write_bytes", real)
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()} == before
    assert load_stimulus_set(csv).sha256() == old.sha256()
    write_stimulus_set(new, csv)
    assert load_stimulus_set(csv).sha256() == new.sha256() != old.sha256()


@pytest.mark.parametrize("arguments, message", [
    # ignored without a word: the file's own bins were read, whatever the window asked for
    ({"time_bin": (90, 80)}, r"time_bin=\(90, 80\) reads a file of dims \(presentation, neuroid\) as one time bin; this "
                             r"file has 3 time bins of its own \(\[70, 80\), \[80, 90\), \[90, 100\) ms\)"),
    ({"time_bin": "70-170"}, r"time_bin: expected \(start_ms, end_ms\), e\.g\. \(70, 170\); got '70-170'$"),
    # a TypeError from indexing a string ("string indices must be integers")
    ({"stimulus_set": "stimuli.csv"}, r"stimulus_set: expected a stimulus set with a 'stimulus_id' column "
                                      r"\(datasets\.stimuli\.load_stimulus_set\(CSV\)\), got str 'stimuli\.csv'$"),
])
def test_load_assembly_refuses_arguments_it_cannot_use_naming_them(tmp_path, arguments, message):
    path = write_assembly(_assembly(), tmp_path / "a.nc")
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: {message}"):
        load_assembly(path, **arguments)


def test_a_window_of_the_wrong_length_for_a_two_dim_file_is_refused_naming_it(tmp_path):
    """An IndexError ("tuple index out of range") for time_bin=(70,)."""
    path = tmp_path / "two.nc"
    xr.DataArray(np.ones((4, 3)), dims=("presentation", "neuroid"),
                 coords={"stimulus_id": ("presentation", list("abcd"))}).to_netcdf(path)
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: time_bin: expected \(start_ms, end_ms\), e\.g\. "
                                        r"\(70, 170\); got \(70,\)$"):
        load_assembly(path, time_bin=(70,), require={})
    assert load_assembly(path, time_bin=(70, 170), require={})["time_bin_start"].values.tolist() == [70]


def test_validate_assembly_refuses_a_stimulus_set_that_is_not_one():
    with pytest.raises(DataError, match=r"^assembly: stimulus_set: expected a stimulus set with a 'stimulus_id' column"):
        validate_assembly(_assembly(), stimulus_set=["s0"])  # list indices must be integers or slices, not str


@pytest.mark.parametrize("name", [None, 3, ["rgc_shallow"]])
def test_a_registry_refuses_a_name_that_is_not_text_naming_its_type(name):
    """None failed in difflib ("'NoneType' object is not iterable") and a list as unhashable, naming no registry."""
    from neurozoo import benchmarks, convrnn, datasets, retina
    from neurozoo.datasets.registry import UnknownNameError

    for registry in (convrnn.MODELS, retina.MODELS, benchmarks.BENCHMARKS, datasets.DATASETS):
        with pytest.raises(UnknownNameError, match=rf"^{registry.kind} name: expected text, got {type(name).__name__} "
                                                   rf"{re.escape(repr(name))} \(known: "):
            registry.get(name)


@pytest.mark.parametrize("arguments, message", [
    # numpy's "could not convert string to float: 'a'"
    ({"time_bin": {"time_bin_start": ["a"], "time_bin_end": ["b"]}},
     r"^assembly time_bin: time bins must be numbers \(ms\), got starts \['a'\] and ends \['b'\]$"),
    # "invalid literal for int() with base 10: 'x'"
    ({"presentation": {"stimulus_id": ["a", "b"], "repetition": ["x", "y"]}},
     r"^assembly: coordinate 'repetition' holds <U1 values, e.g\. \['x', 'y'\]; expected numbers \(trial numbers\)$"),
    # an AttributeError, "'list' object has no attribute 'items'"
    ({"presentation": ["a", "b"]}, r"^assembly presentation: expected a mapping of coordinate name to values along "
                                   r"'presentation', e\.g\. \{'stimulus_id': \[\.\.\.\]\}, got list$"),
    # accepted, and a KeyError ('time_bin_end') from the metrics' time_bins()
    ({"time_bin": {"time_bin_start": [70]}}, r"^assembly: coordinate 'time_bin_start' without 'time_bin_end': a time "
                                             r"bin is \[time_bin_start, time_bin_end\) ms; give both, or neither$"),
])
def test_make_assembly_names_the_coordinate_it_cannot_build(arguments, message):
    columns = {"presentation": {"stimulus_id": ["a", "b"]}, "neuroid": {}, "time_bin": {}} | arguments
    with pytest.raises(DataError, match=message):
        make_assembly(np.ones((2, 3, 1)), **columns)


def test_make_assembly_refuses_ragged_values():
    with pytest.raises(DataError, match=r"^assembly values: not an array of shape \('presentation', 'neuroid', "
                                        r"'time_bin'\) \(setting an array element with a sequence"):
        make_assembly([[[1]], [[1, 2]]], {"stimulus_id": ["a", "b"]}, {}, {})


def test_write_assembly_refuses_what_is_no_assembly_and_a_folder_for_a_path(tmp_path):
    """A numpy array failed with an AttributeError on .dims; a folder failed in the rename with an IsADirectoryError
    naming the writer's temporary."""
    with pytest.raises(DataError, match=rf"^{re.escape(str(tmp_path / 'a.nc'))}: expected an xarray.DataArray with "
                                        r"dims \(presentation, neuroid, time_bin\) to write .*got ndarray$"):
        write_assembly(_assembly().values, tmp_path / "a.nc")
    with pytest.raises(DataError, match=rf"^{re.escape(str(tmp_path))}: is a folder; expected the path of the netCDF "
                                        rf"file to write \(e\.g\. {re.escape(str(tmp_path / 'assembly.nc'))}\)$"):
        write_assembly(_assembly(), tmp_path)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("frame, message", [
    (pd.DataFrame({"stimulus_id": ["a", "a"], "filename": ["", ""]}), r"column 'stimulus_id' has duplicates, e\.g\. \['a'\]$"),
    (pd.DataFrame({"x": [1, 2]}), r"missing column 'stimulus_id' \(columns: \['x'\]\)$"),
])
def test_write_stimulus_set_refuses_a_set_the_reader_would_refuse(tmp_path, frame, message):
    """Written without a word, refused only when read (load_stimulus_set); nothing is written now."""
    from neurozoo.datasets.stimuli import StimulusSet, write_stimulus_set

    path = tmp_path / "set.csv"
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: {message}"):
        write_stimulus_set(StimulusSet(frame), path)
    assert not list(tmp_path.iterdir())


def test_write_stimulus_set_refuses_a_plain_frame_and_a_folder(tmp_path):
    from neurozoo.datasets.stimuli import StimulusSet, write_stimulus_set

    frame = pd.DataFrame({"stimulus_id": ["a"], "filename": [""]})
    with pytest.raises(DataError, match=r": expected a StimulusSet to write .*got DataFrame$"):  # an AttributeError
        write_stimulus_set(frame, tmp_path / "set.csv")
    with pytest.raises(DataError, match=rf"^{re.escape(str(tmp_path))}: is a folder; expected the path of the CSV"):
        write_stimulus_set(StimulusSet(frame), tmp_path)  # an IsADirectoryError naming the writer's temporary
    assert not list(tmp_path.iterdir())


def test_an_already_averaged_file_without_repetition_is_read_and_scored_raw_never_ceiled(tmp_path):
    """One presentation per stimulus and no 'repetition' coordinate (repeat means, which Brain-Score users often
    hold) was refused on load: "missing coordinate 'repetition'". Brain-Score reads it and its average_repetition
    leaves it as it is; only its split-half ceiling needs repetitions (brainscore_vision/metrics/internal_consistency/
    ceiling.py line 60 at 0971191). It is read now; the ceiling refuses it saying so, its raw r is scored and labelled
    "raw r", and a benchmark on it (whose records are ceiled) is refused: no unceiled value reaches a record."""
    import torch

    from neurozoo.benchmarks.metrics import internal_consistency, regression_score
    from neurozoo.benchmarks.neural import NeuralBenchmark

    rng = np.random.default_rng(0)
    n, units = 40, 5
    latent = rng.standard_normal((n, 3))
    ids = [f"im{i:02d}" for i in range(n)]
    xr.DataArray((latent @ rng.standard_normal((3, units)) + 0.2 * rng.standard_normal((n, units)))[:, :, None],
                 dims=("presentation", "neuroid", "time_bin"), coords={
                     "stimulus_id": ("presentation", ids), "object_name": ("presentation", ["unlabelled"] * n),
                     "neuroid_id": ("neuroid", [f"u{u}" for u in range(units)]), "region": ("neuroid", ["V4"] * units),
                     "time_bin_start": ("time_bin", [70]), "time_bin_end": ("time_bin", [170])}).to_netcdf(tmp_path / "means.nc")
    means = load_assembly(tmp_path / "means.nc")
    assert "repetition" not in means.coords and means.sizes == {"presentation": 40, "neuroid": 5, "time_bin": 1}
    with pytest.raises(DataError, match=r"needs at least 2 distinct values of coordinate 'repetition', no coordinate "
                                        r"'repetition' over 40 presentations: .* score its raw r with "
                                        r"benchmarks\.metrics\.regression_score"):
        internal_consistency(means)
    features = make_assembly(latent[:, :, None], {"stimulus_id": ids}, {"neuroid_id": ["f0", "f1", "f2"]},
                             {"time_bin_start": [70], "time_bin_end": [170]})
    score = regression_score(features, means)
    assert score.ceiling is None and score.scale == "raw r" and score.value == pytest.approx(score.raw) and score.raw > 0.9
    assert np.isnan(score.table()["ceiling"]).all()
    benchmark = NeuralBenchmark("mine.V4-means", "V4", load_assembly=lambda: means, load_stimuli=lambda: None)
    assert benchmark.scale == "ceiled"
    class Model(torch.nn.Module):  # commits its layer V4 to region V4; never run
        layer_names = ["V4"]

    for refused in (lambda: benchmark.ceiling, lambda: benchmark.score(Model())):  # the score: before any extraction
        with pytest.raises(DataError, match=rf"^benchmark mine\.V4-means's {re.escape(str(tmp_path / 'means.nc'))}: "
                                            r"the split-half ceiling needs .* "
                                            r"no coordinate 'repetition' over 40 presentations: one response per "
                                            r"stimulus, such as repeat means, has no ceiling; .*\(ceiling=None\); a "
                                            r"benchmark's score is r²/ceiling: for one, load the single trials, "
                                            r"numbered in a coordinate 'repetition' along 'presentation'$"):
            refused()  # what its score divides by: refused, so no record of it is written; named (it began
            # "assembly:"), saying what lets the benchmark score: the trials (the raw r is scored outside it)


def test_trials_without_a_repetition_coordinate_are_refused_naming_what_to_add(tmp_path):
    """Stimulus ids that repeat with no 'repetition' are trials with nothing to number them (the split-half ceiling
    splits on it): refused as before, the message now saying what to add and how; the assembly so fixed loads."""
    assembly = _assembly(n_stimuli=5, n_reps=3)
    assembly.drop_vars("repetition").to_netcdf(tmp_path / "trials.nc")
    with pytest.raises(DataError, match=rf"^{re.escape(str(tmp_path / 'trials.nc'))}: missing coordinate 'repetition' "
                                        r"along 'presentation': stimulus_id repeats \(e\.g\. \['im000', 'im001', "
                                        r"'im002'\]; 15 presentations of 5 stimuli\) and no coordinate numbers its "
                                        r"trials\. Add each presentation's trial number per stimulus \(0, 1, \.\.\.\), "
                                        r"e\.g\. assembly\.assign_coords\(repetition=\('presentation', pandas\.Series\("
                                        r"ids\)\.groupby\(ids\)\.cumcount\(\)\.to_numpy\(\)\)\)"):
        load_assembly(tmp_path / "trials.nc")
    trials = xr.open_dataarray(tmp_path / "trials.nc").load()
    ids = trials["stimulus_id"].values
    trials.assign_coords(repetition=("presentation", pd.Series(ids).groupby(ids).cumcount().to_numpy())).to_netcdf(
        tmp_path / "numbered.nc")  # the way it names
    numbered = load_assembly(tmp_path / "numbered.nc")
    np.testing.assert_array_equal(numbered["repetition"].values, assembly["repetition"].values)
