"""Neural assemblies: xarray DataArrays with dims (presentation, neuroid, time_bin), in Brain-Score's netCDF layout.

In memory an assembly is a plain ``xarray.DataArray`` whose coordinates are ordinary
(non-index) variables along their dims: ``stimulus_id``, ``object_name``, ``repetition`` along
presentation, ``neuroid_id``, ``region`` along neuroid, ``time_bin_start``, ``time_bin_end`` (int ms)
along time_bin, plus any extra coordinates. Time bins are whole ms everywhere, as Brain-Score stores them (int64
``time_bin_start``/``time_bin_end``): ``make_assembly``, ``write_assembly`` and ``load_assembly`` refuse a bound in
fractions of a ms (70.5) rather than truncate it or keep a bin no Brain-Score file has; a file's whole-ms floats
(70.0) are read as int ms. We deliberately keep no MultiIndexes: selecting,
sorting and aligning by ``stimulus_id`` then works with plain numpy arrays and with
``isel``/``sortby``, and nothing has to be unstacked before a metric. ``set_brainscore_indexes``
rebuilds Brain-Score's MultiIndexes when a caller wants them.

On disk (``write_assembly``) we produce what Brain-Score's writer produces: NETCDF4 through
netCDF4, MultiIndexes reset, no coordinate variables for the dims, every level a plain variable,
the values in variable ``data`` (zlib level 9 + shuffle) with attributes ``stimulus_set_identifier``
and ``coordinates``, and the global attribute ``stimulus_set_identifier``. ``load_assembly`` reads
such files unchanged (and the older ``image_id`` name of ``stimulus_id``) and validates them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence, Union

import numpy as np
import pandas as pd
import xarray as xr

from neurozoo.datasets.errors import DataError
from neurozoo.datasets.json_files import written_whole
from neurozoo.datasets.text_table import counted

DIMS = ("presentation", "neuroid", "time_bin")
COORDS: Dict[str, tuple] = {
    "presentation": ("stimulus_id", "object_name", "repetition"),
    "neuroid": ("neuroid_id", "region"),
    "time_bin": ("time_bin_start", "time_bin_end"),
}
NAN_POLICIES = ("raise", "allow", "drop-neuroids")
_ALIASES = {"image_id": "stimulus_id"}  # Brain-Score files written before 2022


def _as_array(values) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype == object and all(isinstance(v, str) for v in array.ravel()):
        array = array.astype(str)
    return array


def make_assembly(values, presentation: Mapping[str, Sequence], neuroid: Mapping[str, Sequence],
                  time_bin: Mapping[str, Sequence], attrs: Optional[dict] = None) -> xr.DataArray:
    """Build an assembly from a (presentation, neuroid, time_bin) array and per-dim coordinate columns."""
    try:
        values = np.asarray(values)
    except ValueError as error:  # ragged nested lists
        raise DataError(f"assembly values: not an array of shape {DIMS} ({error})") from None
    for dim, columns in zip(DIMS, (presentation, neuroid, time_bin)):
        if not isinstance(columns, Mapping):  # an AttributeError ("'list' object has no attribute 'items'")
            raise DataError(f"assembly {dim}: expected a mapping of coordinate name to values along {dim!r}, e.g. "
                            f"{{{COORDS[dim][0]!r}: [...]}}, got {type(columns).__name__}")
    if values.ndim != 3:
        raise DataError(f"assembly values: expected 3 dims {DIMS}, got shape {values.shape}")
    if "time_bin_start" in time_bin and "time_bin_end" in time_bin:  # checked before the int cast below truncates
        check_time_bins(time_bin["time_bin_start"], time_bin["time_bin_end"], "assembly time_bin", whole_ms=True)
    coords = {}
    for dim, columns in zip(DIMS, (presentation, neuroid, time_bin)):
        for name, column in columns.items():
            column = _as_array(column)
            if name in ("time_bin_start", "time_bin_end", "repetition") and column.dtype.kind in "biuf":
                column = column.astype(np.int64)  # other values are refused below, naming the coordinate
            coords[name] = (dim, column)
    try:
        assembly = xr.DataArray(values, dims=DIMS, coords=coords, attrs=dict(attrs or {}))
    except ValueError as error:  # a coordinate whose length does not match its dim
        raise DataError(f"assembly of shape {values.shape}: {error}") from None
    return validate_assembly(assembly, nan_policy="allow", require={}, allow_inf=True)  # also model features


def _fail(source: str, message: str):
    raise DataError(f"{source}: {message}")


def validate_assembly(assembly: xr.DataArray, source: str = "assembly", stimulus_set=None,
                      nan_policy: str = "raise", require: Mapping[str, Sequence[str]] = COORDS,
                      allow_inf: bool = False) -> xr.DataArray:
    """Check dims, coordinates, time bins, stimulus ids and NaNs; returns the assembly, transposed to ``DIMS``.

    ``nan_policy``: ``"raise"`` refuses any NaN or inf; ``"allow"`` keeps NaN (missing responses) and refuses
    inf (no response is infinite: the metrics would average it away as a missing one); ``"drop-neuroids"`` removes every
    neuroid with a NaN or inf anywhere (and refuses an assembly left with none). ``allow_inf``: ``"allow"`` keeps inf
    too (``make_assembly``'s and the writer's: a model's features are checked where they are scored, and a file may
    hold them for a reader that drops such neuroids).
    """
    policy = nan_policy.replace("_", "-")
    if policy not in NAN_POLICIES:
        raise DataError(f"{source}: nan_policy must be one of {NAN_POLICIES}, got {nan_policy!r}")
    missing_dims = [d for d in DIMS if d not in assembly.dims]
    if missing_dims:
        _fail(source, f"dims must be {DIMS}; missing {missing_dims} (found {tuple(assembly.dims)})")
    if assembly.ndim != 3:
        extra = [d for d in assembly.dims if d not in DIMS]
        _fail(source, f"dims must be exactly {DIMS}; found {tuple(assembly.dims)}, with extra {extra} (average or "
                      "stack it away first, e.g. trials as presentations with a 'repetition' coordinate)")
    assembly = assembly.transpose(*DIMS)
    check_values(assembly, source)
    for dim, names in require.items():
        for name in names:
            if name not in assembly.coords:
                _fail(source, f"missing coordinate {name!r} along {dim!r} (coords: {sorted(assembly.coords)})")
    for dim, names in COORDS.items():
        for name in names:
            if name in assembly.coords and assembly[name].dims != (dim,):
                _fail(source, f"coordinate {name!r} must lie along {dim!r}, found dims {assembly[name].dims}")
    for name, unit in (("repetition", "trial numbers"), ("time_bin_start", "ms"), ("time_bin_end", "ms")):
        if name in assembly.coords and assembly[name].dtype.kind not in "biuf":
            _fail(source, f"coordinate {name!r} holds {assembly[name].dtype} values, e.g. "
                          f"{np.asarray(assembly[name].values).ravel()[:3].tolist()}; expected numbers ({unit})")
    if "neuroid_id" in assembly.coords:
        ids = pd.Index(np.asarray(assembly["neuroid_id"].values))
        if ids.has_duplicates:
            _fail(source, f"coordinate 'neuroid_id' has duplicates, e.g. {ids[ids.duplicated()].unique()[:3].tolist()}")
    for name, dim in (("stimulus_id", "presentation"), ("neuroid_id", "neuroid")):
        if name in assembly.coords and assembly[name].dtype.kind in "OUS":
            empty = np.flatnonzero([not str(s) for s in np.asarray(assembly[name].values).ravel()])
            if len(empty):  # a netCDF's missing text reads as ''; no stimulus set has it, and without one it is no id
                _fail(source, f"coordinate {name!r} is empty at {counted(len(empty), dim)}, e.g. index "
                              f"{empty[:3].tolist()}; expected an id for every {dim}")
    if "repetition" in assembly.coords and assembly["repetition"].dtype.kind == "f":
        missing = np.flatnonzero(~np.isfinite(np.asarray(assembly["repetition"].values).ravel()))
        if len(missing):  # NaN keys compare equal in the duplicate check below, which then named ('1', nan)
            ids = (f" (stimulus_id {np.asarray(assembly['stimulus_id'].values)[missing[:3]].tolist()})"
                   if "stimulus_id" in assembly.coords else "")
            _fail(source, "coordinate 'repetition' is NaN or infinite at "
                          f"{counted(len(missing), 'presentation')}, e.g. index "
                          f"{missing[:3].tolist()}{ids}; expected a trial number for every presentation")
    if "stimulus_id" in assembly.coords and "repetition" in assembly.coords:
        keys = pd.MultiIndex.from_arrays([np.asarray(assembly["stimulus_id"].values),
                                          np.asarray(assembly["repetition"].values)])
        if keys.has_duplicates:
            _fail(source, f"presentations (stimulus_id, repetition) repeat, e.g. {keys[keys.duplicated()].unique()[:3].tolist()}")
    _check_time_bins(assembly, source)
    if stimulus_set is not None and "stimulus_id" in assembly.coords:
        _check_stimulus_set(stimulus_set, source)
        known = set(stimulus_set["stimulus_id"])
        unknown = pd.unique(np.asarray(assembly["stimulus_id"].values))
        unknown = [s for s in unknown.tolist() if s not in known]
        if unknown:
            _fail(source, f"{counted(len(unknown), 'stimulus_id value')} "
                          f"{'is' if len(unknown) == 1 else 'are'} not in stimulus set "
                          f"{getattr(stimulus_set, 'identifier', None)!r}, e.g. {unknown[:3]}")
    if policy == "allow" and not allow_inf and np.issubdtype(assembly.dtype, np.floating):
        infinite = np.isinf(assembly.values)  # NaN means "not recorded"; no recording is infinite
        if infinite.any():
            _fail(source, f"field 'data' has {counted(int(infinite.sum()), 'infinite value')} "
                          f"(e.g. {_where(assembly, infinite)}); "
                          "nan_policy='allow' keeps NaN as a missing response, but an inf is no response (e.g. the log "
                          "of a zero rate) and would be averaged away as if missing: fix the values, or pass "
                          "nan_policy='drop-neuroids'")
    if policy != "allow" and np.issubdtype(assembly.dtype, np.floating):
        finite = np.isfinite(assembly.values)
        bad = ~finite.all(axis=(0, 2))  # an inf would drop the neuroid silently later
        if bad.any():
            names = np.asarray(assembly["neuroid_id"].values)[bad] if "neuroid_id" in assembly.coords else np.flatnonzero(bad)
            empty = _empty_presentations(assembly, finite)
            if policy == "raise":
                _fail(source, f"field 'data' has NaN/inf values in {counted(int(bad.sum()), 'neuroid')}, "
                              f"e.g. {names[:3].tolist()}"
                              f"{empty or '; pass nan_policy=' + repr('allow') + ' or ' + repr('drop-neuroids')}; the "
                              f"first of {int((~finite).sum())} is at {_where(assembly, ~finite)} (expected finite "
                              "numbers)")
            if bad.all():
                _fail(source, "field 'data': every neuroid has NaN/inf values; nothing left after "
                              f"nan_policy='drop-neuroids'{empty}")
            assembly = assembly.isel(neuroid=np.flatnonzero(~bad))
    return assembly


def check_values(assembly: xr.DataArray, source: str) -> None:
    """At least one presentation, neuroid and time bin, and numbers: :func:`validate_assembly`'s check of the values,
    which the metrics also make of a model's features (whose other checks are the metrics' own)."""
    if 0 in assembly.shape:
        _fail(source, f"field 'data' has shape {dict(assembly.sizes)}; expected at least one presentation, neuroid "
                      "and time bin")
    if assembly.dtype.kind not in "biuf":
        _fail(source, f"field 'data' holds {assembly.dtype} values; expected numbers, shape (presentation, neuroid, time_bin)")


def _where(assembly: xr.DataArray, mask: np.ndarray) -> str:
    """Where the first True of ``mask`` (the assembly's shape) is: its stimulus_id, repetition, neuroid_id and time
    bin, those the assembly has, else its index."""
    index = np.argwhere(mask)[0]
    keys = [f"{name} {np.asarray(assembly[name].values)[index[axis]]}"
            for axis, name in ((0, "stimulus_id"), (0, "repetition"), (1, "neuroid_id")) if name in assembly.coords]
    if "time_bin_start" in assembly.coords and "time_bin_end" in assembly.coords:
        keys.append(f"time bin [{assembly['time_bin_start'].values[index[2]]:g}, "
                    f"{assembly['time_bin_end'].values[index[2]]:g}) ms")
    return ", ".join(keys) or f"index {index.tolist()}"


def _check_time_bins(assembly: xr.DataArray, source: str) -> None:
    present = [name for name in COORDS["time_bin"] if name in assembly.coords]
    if len(present) == 1:  # a bin's start without its end (or the reverse) failed later as a KeyError in the metrics
        missing = next(name for name in COORDS["time_bin"] if name not in present)
        _fail(source, f"coordinate {present[0]!r} without {missing!r}: a time bin is [time_bin_start, time_bin_end) "
                      "ms; give both, or neither")
    if len(present) < 2:
        return
    check_time_bins(assembly["time_bin_start"].values, assembly["time_bin_end"].values, source, whole_ms=True)


def _seconds_hint(start: np.ndarray, end: np.ndarray, i: int) -> str:
    """'' or a clause saying that bins in fractions of a ms are whole ms if read as seconds (0.07 s = 70 ms), as
    tools that time trials in s store them (Brain-Score's bins are ms), with bin ``i`` in ms."""
    bounds = np.concatenate([start, end]) * 1000.0
    if np.all(np.abs(bounds) <= 10_000) and np.allclose(bounds, np.round(bounds), rtol=0, atol=1e-6):
        return f": these look like seconds; store them in ms, e.g. [{round(start[i] * 1000):d}, {round(end[i] * 1000):d})"
    return ""


def check_time_bins(starts: Sequence[float], ends: Sequence[float], source: str, error: type = DataError,
                    whole_ms: bool = False) -> None:
    """Check a list of time bins ``[starts[i], ends[i])`` in ms: at least one, finite, each ending after it starts,
    starts increasing; with ``whole_ms`` each bound is a whole number of ms (what an assembly stores). Bins may overlap:
    Brain-Score's MajajHong2015 temporal files hold 20 ms windows every 10 ms ([-100, -80), [-90, -70), ...; until
    2026-12-04 refused here), as sliding-window analyses do. Raises ``error`` with a message that begins with ``source``
    and names the first bad bin. The one checker of time bins: assembly files (``validate_assembly``) and the
    bins a caller asks a model to record (``BrainModel.start_recording``, raising ``SpecError``)."""
    try:
        start = np.asarray(starts, dtype=float).ravel()
        end = np.asarray(ends, dtype=float).ravel()
    except (TypeError, ValueError):  # numpy's "could not convert string to float"
        raise error(f"{source}: time bins must be numbers (ms), got starts {np.asarray(starts).ravel()[:3].tolist()} "
                    f"and ends {np.asarray(ends).ravel()[:3].tolist()}") from None
    if len(start) != len(end):
        raise error(f"{source}: {len(start)} time bin starts but {len(end)} ends")
    if not len(start):
        raise error(f"{source}: no time bins; expected at least one (start_ms, end_ms), e.g. [(70, 170)]")
    bins = [f"[{a:g}, {b:g}) ms" for a, b in zip(start, end)]
    for bad, what in ((~(np.isfinite(start) & np.isfinite(end)), "is not finite"),
                      (whole_ms & ((start != np.round(start)) | (end != np.round(end))),
                       "is not in whole ms (an assembly stores int ms)"),
                      (~(end > start), "does not end after it starts")):
        if np.any(bad):
            i = int(np.flatnonzero(bad)[0])
            raise error(f"{source}: time bin {i} {bins[i]} {what}"
                        f"{_seconds_hint(start, end, i) if what.startswith('is not in whole ms') else ''}")
    if np.any(np.diff(start) <= 0):
        i = int(np.flatnonzero(np.diff(start) <= 0)[0])
        raise error(f"{source}: time bins out of order: bin {i + 1} {bins[i + 1]} does not start after bin {i} "
                    f"{bins[i]}; starts must increase")


def reset_brainscore_indexes(assembly: xr.DataArray) -> xr.DataArray:
    """Drop MultiIndexes and dim coordinate variables, keeping every level as a plain coordinate."""
    if assembly.indexes:
        assembly = assembly.reset_index(list(assembly.indexes))
    return assembly.drop_vars([d for d in assembly.dims if d in assembly.coords])


def set_brainscore_indexes(assembly: xr.DataArray) -> xr.DataArray:
    """Rebuild Brain-Score's MultiIndexes presentation=(stimulus_id, object_name, repetition), etc., where present."""
    indexes = {dim: [n for n in names if n in assembly.coords] for dim, names in COORDS.items()}
    return assembly.set_index({dim: names for dim, names in indexes.items() if names})


def _empty_presentations(assembly: xr.DataArray, finite: np.ndarray) -> str:
    """'' or a clause naming the presentations with no finite value in any neuroid and bin: repeats that were never
    shown, stored as NaN rows (Cowley's raw layout), which 'drop-neuroids' cannot help with."""
    empty = ~finite.any(axis=(1, 2))
    if not empty.any():
        return ""
    keys = [str(assembly[name].values[empty][0]) for name in ("stimulus_id", "repetition") if name in assembly.coords]
    example = f" (e.g. {', repetition '.join(keys)})" if keys else ""
    return (f"; {int(empty.sum())} of {empty.size} presentations are NaN/inf in every neuroid{example}, as repeats never "
            "shown are: drop those presentations, or pass nan_policy='allow' (repetitions are averaged over the finite "
            "values)")


def _netcdf_attribute(value):
    """``value`` as a netCDF attribute holds it, or None where it cannot: text, a number (a bool as 0/1), or a flat
    list, tuple or 1-d array of numbers or of text (a list of one reads back as its one value, netCDF's rule)."""
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float, np.number)):
        value = np.asarray(value)
    elif isinstance(value, (list, tuple, np.ndarray)) and len(value) and np.ndim(value) == 1:
        if all(isinstance(v, str) for v in value):
            return [str(v) for v in value]
        value = np.asarray(value)
    else:
        return None
    if value.dtype.kind not in "biuf":
        return None
    if value.dtype.kind == "b" or value.dtype == np.float16:  # netCDF has neither
        value = value.astype(np.int64 if value.dtype.kind == "b" else np.float32)
    return value[()] if value.ndim == 0 else value


#: The attribute ``load_assembly`` records the file it read in, so that refusals name it
#: (``benchmarks.metrics.assembly.assembly_name``); ``write_assembly`` leaves it out of the file it writes.
SOURCE_FILE = "source_file"


def write_assembly(assembly: xr.DataArray, path: Union[str, Path], stimulus_set_identifier: Optional[str] = None) -> Path:
    """Write in Brain-Score's layout (see the module docstring). Attributes are kept where netCDF can hold them
    (``_netcdf_attribute``: text, numbers, flat lists of either) and dropped otherwise (a dict, an object), as is
    ``source_file``, the file ``load_assembly`` read it from (not the written file's data, nor its bytes' digest);
    float16 values and coordinates are stored as float32 (netCDF has no 16-bit float), so they read back as float32.
    Not an xarray.DataArray (an AttributeError on .dims) or a ``path`` that is a folder (an IsADirectoryError naming
    the writer's temporary) is a ``DataError`` naming it."""
    path = Path(path)
    if not isinstance(assembly, xr.DataArray):
        raise DataError(f"{path}: expected an xarray.DataArray with dims (presentation, neuroid, time_bin) to write "
                        f"(datasets.assembly.make_assembly builds one), got {type(assembly).__name__}")
    if path.is_dir():
        raise DataError(f"{path}: is a folder; expected the path of the netCDF file to write (e.g. {path / 'assembly.nc'})")
    assembly = reset_brainscore_indexes(validate_assembly(assembly, str(path), nan_policy="allow", require={}, allow_inf=True))
    identifier = stimulus_set_identifier or assembly.attrs.get("stimulus_set_identifier") or ""
    attrs = {k: stored for k, stored in ((k, _netcdf_attribute(v)) for k, v in assembly.attrs.items())
             if stored is not None and k != SOURCE_FILE}  # where it was read from: not the new file's data
    attrs["stimulus_set_identifier"] = identifier
    assembly = assembly.copy(deep=False)
    assembly.attrs = attrs
    if assembly.dtype == np.float16:  # netCDF has no 16-bit float (netCDF4 raised a TypeError naming no file);
        assembly = assembly.astype(np.float32)  # float32 holds every float16 value exactly
    for name in list(assembly.coords):
        values = np.asarray(assembly[name].values)
        if values.dtype == object or values.dtype == np.float16:
            values = values.astype(np.float32) if values.dtype == np.float16 else _as_array(values)
            assembly = assembly.assign_coords({name: (assembly[name].dims, values)})
    dataset = assembly.to_dataset(name="data")
    dataset.attrs["stimulus_set_identifier"] = identifier
    path.parent.mkdir(parents=True, exist_ok=True)
    with written_whole(path) as temporary:  # an interrupted write leaves the file of before, not half a new one
        dataset.to_netcdf(temporary, format="NETCDF4", engine="netcdf4",
                          encoding={"data": {"zlib": True, "complevel": 9, "shuffle": True}})
    return path


def _add_time_bin(assembly: xr.DataArray, time_bin, source: str) -> xr.DataArray:
    """A (presentation, neuroid) assembly, which Brain-Score's NeuroidAssembly allows, as one time bin: its window is
    ``time_bin=(start, end)`` or the scalar ``time_bin_start``/``time_bin_end`` coordinates the file keeps."""
    scalar = [n for n in COORDS["time_bin"] if n in assembly.coords and assembly[n].ndim == 0]
    if time_bin is None and len(scalar) == 2:
        time_bin = tuple(float(assembly[n].values) for n in COORDS["time_bin"])
    if time_bin is None:
        _fail(source, "dims are (presentation, neuroid) with no time window; pass time_bin=(start_ms, end_ms) "
                      "(e.g. (70, 170)) to read it as one time bin")
    time_bin = _time_window(time_bin, source)
    check_time_bins([time_bin[0]], [time_bin[1]], f"{source}: time window", whole_ms=True)  # before the int cast
    assembly = assembly.drop_vars(scalar).expand_dims("time_bin", axis=2)
    return assembly.assign_coords(time_bin_start=("time_bin", np.array([time_bin[0]], np.int64)),
                                  time_bin_end=("time_bin", np.array([time_bin[1]], np.int64)))


def _time_window(time_bin, source: str) -> tuple:
    """``load_assembly``'s ``time_bin`` as (start_ms, end_ms): a pair, or refused naming it (``(70,)`` was an
    IndexError)."""
    window = np.asarray(time_bin, dtype=object).ravel() if not isinstance(time_bin, str) else np.array([time_bin])
    if len(window) != 2 or not all(isinstance(bound, (int, float, np.integer, np.floating)) for bound in window):
        _fail(source, f"time_bin: expected (start_ms, end_ms), e.g. (70, 170); got {time_bin!r}")
    return tuple(window)


def _check_time_bin_argument(assembly: xr.DataArray, time_bin, source: str) -> None:
    """``time_bin`` reads a (presentation, neuroid) file as one bin; given for a file with its own time bins it was
    ignored without a word (a window other than the file's, or ``(90, 80)``, read as the file's bins). Refused unless
    it is the file's one bin."""
    start, end = _time_window(time_bin, source)
    if not {"time_bin_start", "time_bin_end"} <= set(assembly.coords):
        return
    bins = list(zip(np.ravel(assembly["time_bin_start"].values).tolist(),
                    np.ravel(assembly["time_bin_end"].values).tolist()))
    if bins != [(start, end)]:
        shown = ", ".join(f"[{a:g}, {b:g})" for a, b in bins[:3]) + (", ..." if len(bins) > 3 else "")
        _fail(source, f"time_bin=({start:g}, {end:g}) reads a file of dims (presentation, neuroid) as one time bin; "
                      f"this file has {counted(len(bins), 'time bin')} of its own ({shown} ms): "
                      "leave time_bin out (select "
                      "bins with .isel(time_bin=...))")


def _check_stimulus_set(stimulus_set, source: str) -> None:
    if not (hasattr(stimulus_set, "columns") and "stimulus_id" in stimulus_set.columns):  # a TypeError from indexing
        _fail(source, f"stimulus_set: expected a stimulus set with a 'stimulus_id' column (datasets.stimuli."
                      f"load_stimulus_set(CSV)), got {type(stimulus_set).__name__} {stimulus_set!r:.60}")


def _columns_from_stimulus_set(assembly: xr.DataArray, stimulus_set, names: Sequence[str]) -> xr.DataArray:
    """The required presentation coordinates (``object_name``) the file lacks, from the stimulus set's columns of those
    names by ``stimulus_id``, as Brain-Score's loader merges a stimulus set's columns into its assembly (brainio's
    ``StimulusMergeAssemblyLoader.merge_stimulus_set_meta``, which keeps a coordinate the file has). Only the missing
    required ones: another column would change the assembly, and so the data checksum of stored scores."""
    names = [n for n in names if n not in assembly.coords and n in stimulus_set.columns]
    if not names or "stimulus_id" not in assembly.coords or "stimulus_id" not in stimulus_set.columns:
        return assembly
    table = pd.DataFrame(stimulus_set).set_index("stimulus_id")[names]
    rows = table.reindex(np.asarray(assembly["stimulus_id"].values))  # an id not in the set: NaN, refused as unknown
    return assembly.assign_coords({n: ("presentation", _as_array(rows[n].to_numpy())) for n in names})


def check_sha1(path: Path, expected: str) -> None:
    """Refuse ``path`` unless its bytes have the sha1 ``expected`` (as Brain-Score checks a fetched file)."""
    from neurozoo.datasets.provenance import sha1_file

    if not (isinstance(expected, str) and len(expected) == 40 and all(c in "0123456789abcdefABCDEF" for c in expected)):
        raise DataError(f"{path}: sha1 {expected!r} is not a sha1 (expected 40 hex digits, as Brain-Score publishes it)")
    actual = sha1_file(path)
    if actual != expected.lower():
        raise DataError(f"{path}: sha1 {actual} does not match the expected {expected.lower()}; the file is corrupted "
                        "or a different version of the assembly")


#: the coordinate that names each element of a dim, which a single-level index of it becomes when it is written
_ID_COORDS = {"presentation": "stimulus_id", "neuroid": "neuroid_id"}


def _check_unnamed_index(assembly: xr.DataArray, require: Mapping[str, Sequence[str]], source: str) -> None:
    """A ``DataError`` where the file stores a dim's ids under the dim's own name: brainio's ``write_netcdf`` of an
    assembly with one coordinate along a dim (``neuroid_id`` alone: ``gather_indexes`` makes it a single-level index,
    which xarray names after the dim) writes it as the variable ``neuroid`` (``neuroid_`` with the xarray of before
    2022.06), its name lost. That variable was dropped as a dim coordinate, and the file refused for a missing
    ``neuroid_id`` without a word of where the ids were (Brain-Score's loader loses the name too)."""
    for dim, name in _ID_COORDS.items():
        if name in assembly.coords or name not in require.get(dim, ()):
            continue
        for stored in (dim, f"{dim}_"):
            if stored in assembly.coords and assembly[stored].dims == (dim,):
                values = np.asarray(assembly[stored].values)
                _fail(source, f"missing coordinate {name!r} along {dim!r}; variable {stored!r} holds one value per "
                              f"{dim} (e.g. {values[:3].tolist()}): a single-level index saved by xarray's reset_index "
                              f"(brainio's write_netcdf of an assembly with {name} as its only {dim} coordinate) loses "
                              f"its name. If they are the {name}s, rename it: xarray.open_dataset(file).rename_vars({{"
                              f"{stored!r}: {name!r}}}).to_netcdf(new_file)")


def _without_repetitions(assembly: xr.DataArray, require: Mapping[str, Sequence[str]],
                         source: str) -> Mapping[str, Sequence[str]]:
    """``require`` without ``repetition`` where the file has no such coordinate and one presentation per stimulus:
    an assembly averaged over its repetitions already, which Brain-Score users often hold. Brain-Score reads it (a
    NeuroidAssembly needs no repetition: brainio/assemblies.py ``NeuroidAssembly.validate`` at 064b0d4 checks its
    dims only) and its ``average_repetition`` leaves it as it is (each presentation a group of its own); only its
    split-half ceiling needs repetitions (``assembly['repetition']``, brainscore_vision/metrics/internal_consistency/
    ceiling.py line 60 at 0971191), and so does ours: ``internal_consistency`` refuses it saying so,
    ``regression_score(features, assembly)`` scores its raw r, and a benchmark on it (ceiled by definition) is
    refused with that ceiling's message before it extracts features. Where stimulus ids repeat without a
    ``repetition``, the trials are not numbered: refused, naming what to add."""
    if "repetition" in assembly.coords or "repetition" not in require.get("presentation", ()) \
            or "stimulus_id" not in assembly.coords:
        return require
    ids = pd.Index(np.asarray(assembly["stimulus_id"].values).ravel())
    if ids.has_duplicates:
        repeated = ids[ids.duplicated()].unique()[:3].tolist()
        _fail(source, f"missing coordinate 'repetition' along 'presentation': stimulus_id repeats (e.g. {repeated}; "
                      f"{len(ids)} presentations of {ids.nunique()} stimuli) and no coordinate numbers its trials. "
                      "Add each presentation's trial number per stimulus (0, 1, ...), e.g. assembly.assign_coords("
                      "repetition=('presentation', pandas.Series(ids).groupby(ids).cumcount().to_numpy())) with ids "
                      "its stimulus_id values; a file of one response per stimulus (repeat means) needs none")
    return {**require, "presentation": tuple(name for name in require["presentation"] if name != "repetition")}


def load_assembly(path: Union[str, Path], stimulus_set=None, nan_policy: str = "raise", multiindex: bool = False,
                  require: Mapping[str, Sequence[str]] = COORDS, time_bin: Optional[Sequence[int]] = None,
                  sha1: Optional[str] = None) -> xr.DataArray:
    """Read a Brain-Score-style netCDF assembly and validate it (see ``validate_assembly``).

    Returns plain coordinates (no indexes) unless ``multiindex=True``. A file with dims (presentation, neuroid) only
    becomes one time bin ``time_bin=(start_ms, end_ms)`` (default: its scalar time_bin_start/end coordinates).
    Integer stimulus ids are read as their decimal text, as ``load_stimulus_set`` reads a CSV's ids (always text);
    text stored as netCDF characters (bytes in xarray) is read as text (UTF-8). Variables of at most one dim are read
    as coordinates, also without the ``coordinates`` attribute xarray writes. With ``stimulus_set``, a required
    presentation coordinate the file lacks (``object_name``) is taken from the stimulus set's column of that name.
    With ``sha1`` (40 hex digits), the file's bytes must have that sha1, the digest Brain-Score pins an assembly by
    (its data plugins' ``load_assembly_from_s3(..., sha1=...)``, checked by brainio's ``verify_sha1``), or nothing is
    read; this suite's own registry pins files by sha256 (``datasets.checksums``).
    A file without ``repetition`` and one presentation per stimulus (repeat means) is read as it is: it has no
    split-half ceiling (``_without_repetitions``).
    The assembly's attribute ``source_file`` (``SOURCE_FILE``) is the path read, which later refusals name.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not a netCDF assembly file (.nc): give the file in it")
    if not path.is_file():
        raise DataError(f"{path}: assembly file not found")
    if sha1 is not None:
        check_sha1(path, sha1)
    try:
        with xr.open_dataset(path, engine="netcdf4") as dataset:
            dataset = dataset.load()
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: not a readable netCDF file ({error})") from None
    # a writer other than xarray (netCDF4, MATLAB) may leave out the 'coordinates' attribute: its 1-d variables
    # (stimulus_id along presentation, ...) are the coordinates all the same
    dataset = dataset.set_coords([name for name, variable in dataset.data_vars.items() if variable.ndim <= 1])
    if "data" in dataset.data_vars:
        assembly = dataset["data"]
    elif len(dataset.data_vars) == 1:
        assembly = dataset[next(iter(dataset.data_vars))]
    else:
        raise DataError(f"{path}: no variable 'data' (variables: {sorted(dataset.data_vars)})")
    assembly = assembly.rename({k: v for k, v in _ALIASES.items() if k in assembly.coords and v not in assembly.coords})
    for key in ("stimulus_set_identifier",):
        if key not in assembly.attrs and key in dataset.attrs:
            assembly.attrs[key] = dataset.attrs[key]
    assembly.encoding = {}
    _check_unnamed_index(assembly, require, str(path))
    assembly = reset_brainscore_indexes(assembly)
    text = {name: (coord.dims, np.char.decode(coord.values, "utf-8")) for name, coord in assembly.coords.items()
            if coord.dtype.kind == "S"}  # netCDF char arrays (MATLAB's, netCDF3) read as bytes: b"1" matched no id "1"
    assembly = assembly.assign_coords(text) if text else assembly
    ids = assembly.coords.get("stimulus_id")
    if ids is not None and ids.dtype.kind == "f":  # MATLAB's numbers are doubles: 1.0 is stimulus 1
        values = np.asarray(ids.values)
        bad = ~np.isfinite(values) | (values != np.round(values))
        if bad.any():
            raise DataError(f"{path}: coordinate 'stimulus_id' holds {counted(int(bad.sum()), 'value')} that "
                            f"{'is' if bad.sum() == 1 else 'are'} not whole "
                            f"numbers, e.g. {values[bad][:3].tolist()}; expected text or whole numbers (ids)")
        ids = ids.copy(data=values.astype(np.int64))
    if ids is not None and ids.dtype.kind in "iu":  # ids are text, as a stimulus set's CSV is read: 1 -> "1"
        assembly = assembly.assign_coords(stimulus_id=(ids.dims, np.asarray(ids.values).astype(str)))
    if set(assembly.dims) == {"presentation", "neuroid"}:
        assembly = _add_time_bin(assembly, time_bin, str(path))
    elif time_bin is not None:
        _check_time_bin_argument(assembly, time_bin, str(path))
    if stimulus_set is not None:
        _check_stimulus_set(stimulus_set, str(path))
        assembly = _columns_from_stimulus_set(assembly, stimulus_set, require.get("presentation", ()))
    require = _without_repetitions(assembly, require, str(path))
    assembly = validate_assembly(assembly, str(path), stimulus_set, nan_policy, require)
    # whole ms (checked above) stored as floats, 70.0: int ms, as make_assembly and Brain-Score keep them
    assembly = assembly.assign_coords({name: ("time_bin", assembly[name].values.astype(np.int64))
                                       for name in COORDS["time_bin"] if name in assembly.coords})
    assembly.attrs[SOURCE_FILE] = str(path)  # a later refusal (the ceiling's, a benchmark's) names the file
    return set_brainscore_indexes(assembly) if multiindex else assembly
