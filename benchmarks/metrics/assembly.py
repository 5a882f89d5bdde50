"""Small helpers on neural assemblies (presentation, neuroid, time_bin) used by metrics and ceilings."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
import pandas as pd
import scipy.sparse as sp
import xarray as xr

from neurozoo.datasets.assembly import check_values, validate_assembly
from neurozoo.datasets.errors import DataError
from neurozoo.datasets.text_table import counted

DIMS = ("presentation", "neuroid", "time_bin")


def check_assembly(assembly: xr.DataArray, name: str = "assembly", require=("stimulus_id",),
                   features: bool = False) -> xr.DataArray:
    """Validate dims, coords and values; returns the assembly transposed to (presentation, neuroid, time_bin).

    The checks are :func:`datasets.assembly.validate_assembly`'s (numbers, at least one presentation, neuroid and time
    bin, coordinates along their dims, unique ids, whole-ms time bins), NaN kept as a missing response: an infinite
    response is refused, which the repetition means would otherwise average away as a missing one (and the ceiling
    turned into NaN). ``features=True``: a model's activations, checked for numbers only (their bins may come in any
    order; :func:`align_features` matches them to the target's and refuses NaN and inf, naming the layer)."""
    if not isinstance(assembly, xr.DataArray):
        raise DataError(f"{name}: expected an xarray.DataArray with dims {DIMS}, got {type(assembly).__name__}")
    if assembly.ndim == 2 and set(assembly.dims) == {"presentation", "neuroid"}:
        assembly = assembly.expand_dims("time_bin", axis=-1)
    if set(assembly.dims) != set(DIMS):
        raise DataError(f"{name}: dims must be {DIMS}, got {assembly.dims}")
    for coord in require:
        if coord not in assembly.coords:
            raise DataError(f"{name}: missing coordinate {coord!r} along 'presentation'")
    if features:  # bins in any order, matched to the target's by align_features
        check_values(assembly, name)
        return assembly.transpose(*DIMS)
    return validate_assembly(assembly, name, nan_policy="allow", require={})


def assembly_name(assembly: xr.DataArray) -> str:
    """How a refusal names an assembly: its ``stimulus_set_identifier``, the file ``datasets.load_assembly`` read it
    from (its attribute ``source_file``), both (``identifier (file)``), or "assembly" where it has neither."""
    identifier = assembly.attrs.get("stimulus_set_identifier") or ""
    source = assembly.attrs.get("source_file") or ""
    if identifier and source:
        return f"{identifier} ({source})"
    return identifier or source or "assembly"


def coord(assembly: xr.DataArray, name: str, default=None) -> Optional[np.ndarray]:
    return np.asarray(assembly[name].values) if name in assembly.coords else default


def time_bins(assembly: xr.DataArray) -> Tuple[np.ndarray, np.ndarray]:
    """(start, end) arrays in ms; an assembly without time coords gets one bin [nan, nan)."""
    if "time_bin_start" in assembly.coords:
        return np.asarray(assembly["time_bin_start"].values), np.asarray(assembly["time_bin_end"].values)
    n = assembly.sizes["time_bin"]
    return np.full(n, np.nan), np.full(n, np.nan)


def group_mean_matrix(groups: np.ndarray, mask: Optional[np.ndarray] = None) -> Tuple[sp.csr_matrix, np.ndarray]:
    """Sparse (n_groups, n_items) averaging matrix over the items of each group (optionally only masked items).

    Returns (matrix, unique group labels, sorted). Groups with no selected item get an all-zero row.
    """
    labels, index = np.unique(groups, return_inverse=True)
    keep = np.ones(len(groups), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    rows, cols = index[keep], np.flatnonzero(keep)
    counts = np.bincount(rows, minlength=len(labels)).astype(np.float64)
    weights = 1.0 / np.where(counts[rows] > 0, counts[rows], 1.0)
    matrix = sp.csr_matrix((weights, (rows, cols)), shape=(len(labels), len(groups)))
    return matrix, labels


def group_nanmean(groups: np.ndarray, values: np.ndarray, mask: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean of ``values`` (items, ...) over the (masked) items of each group, ignoring NaNs.

    Returns (means (n_groups, ...), sorted group labels, whether each group had any selected item).
    An entry with no finite value in its group stays NaN.
    """
    matrix, labels = group_mean_matrix(groups, mask)
    indicator = matrix.copy()
    indicator.data[:] = 1.0
    flat = values.reshape(len(values), -1)
    finite = np.isfinite(flat)
    if finite.all():
        means = np.asarray(matrix @ flat)
    else:
        sums = np.asarray(indicator @ np.where(finite, flat, 0.0))
        counts = np.asarray(indicator @ finite.astype(np.float64))
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(counts > 0, sums / np.where(counts > 0, counts, 1.0), np.nan)
    seen = np.asarray(matrix.getnnz(axis=1)) > 0
    return means.reshape((len(labels),) + values.shape[1:]), labels, seen


def recorded_neuroids(means: np.ndarray, source: str) -> np.ndarray:
    """(neuroids,) whether each neuroid of repetition means (stimuli, neuroids, bins) has a response to every stimulus
    in every bin. One never recorded on some stimulus (NaN after averaging repetitions) cannot be regressed: the score
    leaves it out, and so does the ceiling, so that the ceiling is that of the neuroids scored. A stimulus no neuroid
    responded to (never shown) is no neuroid's gap: it is passed over here (the ceiling skips it, the score refuses it).
    ``source``: the assembly's :func:`assembly_name`, which the refusal of an assembly with no such neuroid begins with
    (it began "assembly:" until 2026-12-05, naming no file).
    """
    shown = np.isfinite(means).any(axis=(1, 2))
    complete = np.isfinite(means[shown]).all(axis=(0, 2))
    if not complete.any():
        gaps = (~np.isfinite(means[shown])).any(axis=2).sum(axis=0)  # per neuroid: the stimuli it has no mean for
        raise DataError(f"{source}: every neuroid ({len(complete)}) misses responses to some stimulus (NaN after "
                        f"averaging repetitions; the fewest missed by one neuroid: {int(gaps.min())} of "
                        f"{int(shown.sum())} stimuli); expected at least one neuroid with a response to every stimulus "
                        "in every time bin")
    return complete


def _along(assembly: xr.DataArray, dim: str) -> list:
    """The names of the assembly's coordinates along ``dim`` alone, in their order: the levels of a MultiIndex on it
    (``set_brainscore_indexes``), not the index itself, whose tuples hold the repetition too."""
    return [name for name, values in assembly.coords.items() if values.dims == (dim,) and name != dim]


def check_stimulus_groups(assembly: xr.DataArray) -> None:
    """A ``DataError`` where a presentation coordinate other than ``stimulus_id`` and ``repetition`` varies among the
    presentations of one stimulus (a per-trial coordinate: ``session``, ``trial_id``, a time of day).

    Brain-Score's ``average_repetition`` groups the presentations by every presentation coordinate but
    ``repetition`` (brainscore_vision/benchmark_helpers/neural_common.py lines 57-61 at a0ac86f, brainio's
    ``DataAssembly.multi_groupby``, brainio/assemblies.py lines 68-75 at 064b0d4), and so do the halves of its
    split-half ceiling (brainscore_vision/metrics/internal_consistency/ceiling.py lines 59-63 at 0971191): such a
    coordinate keeps a stimulus's presentations apart there, one stimulus scored as several rows against the model's
    one response to it. Averaged over it here (until 2026-12-05, silently), the score was another than Brain-Score's;
    the file is refused instead, naming the coordinate and what to do. Where every such coordinate is constant per
    stimulus (``object_name``, a stimulus set's columns), Brain-Score's groups are the stimuli, and so are ours.

    A missing value (NaN, or None, which brainio's index turns into NaN) in such a coordinate is refused too, naming
    the coordinate and how many presentations hold one (:func:`_check_no_missing_keys`): NaN equals nothing in
    brainio's group keys (``MultiCoord.__eq__``, brainio/assemblies.py lines 83-85 at 064b0d4; brainscore_core 2.5.0's
    bundled copy, supported_data_standards/brainio/assemblies.py lines 115-117), so Brain-Score keeps every such
    presentation as a group of its own, each repeat of the stimulus a row of its own. Run with its pinned xarray
    2022.3 / pandas 1.5 and with this suite's xarray 2026.9 / pandas 3.1 alike: a stimulus of 4 repeats whose
    coordinate is NaN became 4 rows. Until 2026-12-05 the NaN was one value here, averaged as one stimulus."""
    ids = pd.factorize(coord(assembly, "stimulus_id"))[0]
    for name in _along(assembly, "presentation"):
        if name in ("stimulus_id", "repetition"):
            continue
        values = np.asarray(assembly[name].values)
        _check_no_missing_keys(assembly, name, values, ids)
        codes = pd.Series(pd.factorize(values)[0])  # NaN: code -1, one value
        per_stimulus = codes.groupby(ids).nunique()
        if (per_stimulus > 1).any():
            stimulus = int(per_stimulus.index[np.argmax(per_stimulus.to_numpy() > 1)])
            rows = np.flatnonzero(ids == stimulus)
            seen = pd.unique(values[rows])
            source = assembly_name(assembly)
            example = coord(assembly, "stimulus_id")[rows[:1]].tolist()[0]
            raise DataError(
                f"{source}: coordinate {name!r} along 'presentation' varies among the presentations of "
                f"{int((per_stimulus > 1).sum())} stimuli, e.g. stimulus_id {example!r}: {len(seen)} values over its "
                f"{len(rows)} presentations "
                f"({', '.join(map(repr, seen[:3].tolist()))}{', ...' if len(seen) > 3 else ''}). Brain-Score's "
                f"average_repetition averages over 'repetition' only and keeps presentations that differ in any other "
                f"coordinate apart, scoring one stimulus as several rows against the model's one response: to "
                f"average over it, drop it (assembly.drop_vars({name!r})); if it numbers the trials, store it as "
                "'repetition'")


def _check_no_missing_keys(assembly: xr.DataArray, name: str, values: np.ndarray, ids: np.ndarray) -> None:
    """A ``DataError`` where presentation coordinate ``name`` (one Brain-Score groups repetitions by) is NaN or None
    anywhere, naming the assembly's file, the coordinate, how many presentations of how many stimuli: Brain-Score
    keeps each of those presentations apart (:func:`check_stimulus_groups`)."""
    missing = np.asarray(pd.isna(values), dtype=bool)
    if not missing.any():
        return
    stimuli = np.unique(ids[missing])
    example = coord(assembly, "stimulus_id")[np.flatnonzero(missing)[:1]].tolist()[0]
    raise DataError(
        f"{assembly_name(assembly)}: coordinate {name!r} along 'presentation' is NaN (missing) at "
        f"{int(missing.sum())} of {len(values)} presentations, of {len(stimuli)} stimuli (e.g. stimulus_id "
        f"{example!r}). Brain-Score's average_repetition groups the repetitions by every presentation coordinate but "
        f"'repetition', and a NaN equals nothing there: each such presentation stays a group of its own, one stimulus "
        f"scored as several rows against the model's one response. Fill in the missing values, or drop the "
        f"coordinate (assembly.drop_vars({name!r}))")


def average_repetitions(assembly: xr.DataArray) -> xr.DataArray:
    """Mean over the presentations of each stimulus_id (NaN skipped), ordered by stimulus_id, as Brain-Score's
    ``average_repetition`` averages: over ``repetition``, grouped by every other presentation coordinate, which is
    each stimulus where those are the stimulus's own (a per-trial one is refused: :func:`check_stimulus_groups`).
    Keeps every coordinate along each dim but ``repetition``, as it does."""
    assembly = check_assembly(assembly)
    check_stimulus_groups(assembly)
    ids = coord(assembly, "stimulus_id")
    mean, labels, _ = group_nanmean(ids, np.asarray(assembly.values, dtype=np.float64))
    first = np.unique(ids, return_index=True)[1]
    coords = {"stimulus_id": ("presentation", labels)}
    for name in _along(assembly, "presentation"):
        if name not in ("stimulus_id", "repetition"):
            coords[name] = ("presentation", coord(assembly, name)[first])
    for dim in ("neuroid", "time_bin"):
        coords.update({name: (dim, coord(assembly, name)) for name in _along(assembly, dim)})
    return xr.DataArray(mean, dims=DIMS, coords=coords, attrs=dict(assembly.attrs))


def _check_finite(features: xr.DataArray, values: np.ndarray, ids: np.ndarray) -> None:
    """``DataError`` for NaN or infinite activations: PLS turned them into a NaN score (and the layer selection passed
    the layer over for another) without a word, ridge into scikit-learn's ValueError traceback."""
    if values.dtype.kind not in "fc":
        return
    finite = np.isfinite(values)
    if finite.all():
        return
    layers = list(dict.fromkeys(np.asarray(features["layer"].values).tolist())) if "layer" in features.coords else []
    where = f" of layer {', '.join(map(str, layers))}" if layers else ""
    bad = ~finite.all(axis=(1, 2))
    raise DataError(f"features{where}: {int((~finite).sum())} NaN/inf values, in {int(bad.sum())} of {len(bad)} "
                    f"stimuli (e.g. stimulus_id {ids[bad][:3].tolist()}); expected finite activations (a model whose "
                    "activations overflow or divide by zero scores nothing)")


def align_features(features: xr.DataArray, stimulus_ids: Sequence, bins: Tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Features (presentation, neuroid, time_bin) as an array in the order of ``stimulus_ids`` and the target's bins.

    A features array with a single time bin is broadcast to every bin of a target with several (a static model)
    when that bin is unlabelled (no ``time_bin_start``/``time_bin_end``) or is one of the target's bins. Otherwise
    its bins must contain the target's bins: the same start and end (a feature bin [70, 120) does not stand for a
    target bin [70, 170), nor [70, 170) for [70.5, 170); nor does a model recorded at [70, 170) stand for target bins
    [70, 90), [90, 110), ...: that was broadcast, one step scored as every bin's response, until 2026-12-04).
    """
    features = check_assembly(features, "features", features=True)
    ids = coord(features, "stimulus_id")
    position = {value: i for i, value in enumerate(ids)}
    if len(position) < len(ids):  # the last row of an id was scored, the others passed over without a word
        repeated = pd.Index(ids)
        raise DataError(f"features: stimulus_id repeats, e.g. {repeated[repeated.duplicated()].unique()[:3].tolist()} "
                        f"({len(ids)} presentations, {len(position)} stimuli); expected one row of activations per "
                        "stimulus")
    missing = [s for s in stimulus_ids if s not in position]
    if missing:
        raise DataError(f"features: no activations for {counted(len(missing), 'stimulus_id')} of the benchmark, "
                        f"e.g. {np.asarray(missing[:3]).tolist()}")
    rows = np.array([position[s] for s in stimulus_ids])
    values = np.asarray(features.values)
    if len(rows) != len(values) or np.any(rows != np.arange(len(rows))):
        values = values[rows]
    _check_finite(features, values, np.asarray(stimulus_ids))
    starts = bins[0]
    f_start, f_end = time_bins(features)
    lookup = {(float(a), float(b)): i for i, (a, b) in enumerate(zip(f_start, f_end))}
    target = [(float(a), float(b)) for a, b in zip(starts, bins[1])]
    unlabelled = not np.isfinite([*f_start, *f_end, *starts, *bins[1]]).all()
    if values.shape[2] == 1 and (unlabelled or next(iter(lookup)) in target):
        return np.repeat(values, len(starts), axis=2)  # a static model's one bin (one window against one: matched)
    try:
        order = [lookup[bin_] for bin_ in target]
    except KeyError as error:
        shown = [f"[{a:g}, {b:g})" for a, b in lookup]
        static = (" (a static model's features, one bin repeated in every target bin: label that bin as one of the "
                  "target's, or leave time_bin_start/time_bin_end out)") if values.shape[2] == 1 else ""
        raise DataError(f"features: time bins {', '.join(shown)} ms do not include the target's bin "
                        f"[{error.args[0][0]:g}, {error.args[0][1]:g}) ms (bins are matched on time_bin_start "
                        f"and time_bin_end: record the model at the target's bins){static}") from None
    return values if order == list(range(values.shape[2])) else values[:, :, order]
