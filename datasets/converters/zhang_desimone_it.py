"""Zhang, Meyers, Bichot, Serre, Poggio & Desimone (2011) IT rasters -> time-binned assembly of spike counts.

Input: 132 MATLAB files (emeyers/NeuroDecodeR data-raw/raster/), one per unit, each with
``raster_data`` (trials x 1000 ms, 1 ms bins of 0/1 spikes), ``raster_labels`` (``stimulus_ID``: 7
objects, ``stimulus_position``: 3 positions) and ``raster_site_info`` (``alignment_event_time``: the
1-based ms of stimulus onset, 501).

Time bins: spike counts in 10 ms bins [70, 80) .. [250, 260) ms after onset (19 bins, the ConvRNN
fitting window); the bin [s, s+10) sums raster columns onset-1+s .. onset-1+s+9 (0-based).

Presentations: units were not recorded together and every file has its own ~420 trials, so there is
no shared trial axis. We build a pseudo-population, as population decoding of these data does: a
stimulus is an (object, position) condition (``stimulus_id`` = ``<object>_<position>``, 21 of
them), and presentation (condition, k) takes, for every unit, that unit's k-th trial of the
condition in file order, for k below the largest repetition count of any unit and condition (20).
Every trial is kept: a unit with fewer trials of a condition is NaN in the presentations it lacks
(the 7 units of session bp1006 have 19 trials of flower_middle, so their ``repetition`` 19 of it is
NaN), which the ceiling and the decoding skip; the assembly therefore loads with
``nan_policy="allow"``. Trials of different units in one presentation were not simultaneous. The
stimulus set holds the labels only: the images were not published.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import numpy as np

from neurozoo.datasets import Recording
from neurozoo.datasets.converters import ASSEMBLY_FILE, STIMULUS_FILE, load_converted
from neurozoo.datasets.errors import DataError

CONVERTER_VERSION = 2  # 2: every trial kept (NaN where a unit has fewer), was the first 19 of each
NAME = "zhang_desimone2011.it"
BIN_MS = 10
WINDOW_MS = (70, 260)


def read_raster(path: Path) -> dict:
    """One unit's file as plain arrays: raster (trials, ms), objects, positions, onset index (0-based), site info."""
    import scipy.io

    try:
        mat = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    except (ValueError, OSError, NotImplementedError) as error:
        raise DataError(f"{path}: not a readable MATLAB file ({error})") from None
    for field in ("raster_data", "raster_labels", "raster_site_info"):
        if field not in mat:
            raise DataError(f"{path}: missing variable {field!r}")
    raster = np.asarray(mat["raster_data"])
    labels, site = mat["raster_labels"], mat["raster_site_info"]
    objects = np.atleast_1d(np.asarray(labels.stimulus_ID, dtype=str))
    positions = np.atleast_1d(np.asarray(labels.stimulus_position, dtype=str))
    if raster.ndim != 2 or len(objects) != raster.shape[0] or len(positions) != raster.shape[0]:
        raise DataError(f"{path}: raster_data {raster.shape} does not match {len(objects)} stimulus_ID / "
                        f"{len(positions)} stimulus_position labels")
    return {"raster": raster, "objects": objects, "positions": positions,
            "onset": int(site.alignment_event_time) - 1,
            "session_id": int(site.session_ID), "recording_channel": int(site.recording_channel), "unit": str(site.unit)}


def bin_counts(raster: np.ndarray, onset: int, window=WINDOW_MS, bin_ms: int = BIN_MS) -> np.ndarray:
    """(trials, bins) spike counts in [window[0], window[1]) ms after the onset column, ``bin_ms`` per bin."""
    start, stop = onset + window[0], onset + window[1]
    if start < 0 or stop > raster.shape[1]:
        raise DataError(f"raster_data: window {window} ms after onset column {onset} exceeds {raster.shape[1]} ms")
    return raster[:, start:stop].reshape(raster.shape[0], -1, bin_ms).sum(axis=2, dtype=np.int64)


def _convert(files: Dict[str, Path], folder: Path) -> None:
    from tqdm import tqdm

    from neurozoo.datasets.assembly import make_assembly, write_assembly
    from neurozoo.datasets.stimuli import make_stimulus_set, write_stimulus_set

    paths = sorted(files.values())
    units = [read_raster(p) for p in tqdm(paths, desc="Zhang-Desimone rasters", unit="unit", leave=False)]
    conditions = sorted(set(zip(units[0]["objects"], units[0]["positions"])))
    per_unit: List[dict] = []
    for path, unit in zip(paths, units):
        labels = list(zip(unit["objects"], unit["positions"]))
        if sorted(set(labels)) != conditions:
            raise DataError(f"{path}: stimulus_ID x stimulus_position conditions differ from {paths[0].name}'s")
        per_unit.append({c: np.flatnonzero([lab == c for lab in labels]) for c in conditions})
    n_rep = max(len(trials) for unit in per_unit for trials in unit.values())

    n_bins = (WINDOW_MS[1] - WINDOW_MS[0]) // BIN_MS
    values = np.full((len(conditions) * n_rep, len(units), n_bins), np.nan)  # condition-major, repetition minor
    for u, (unit, trials) in enumerate(zip(units, per_unit)):
        counts = bin_counts(unit["raster"], unit["onset"])
        for c, condition in enumerate(conditions):
            rows = trials[condition]
            values[c * n_rep:c * n_rep + len(rows), u] = counts[rows]

    stimulus_ids = [f"{o}_{p}" for o, p in conditions]
    stimulus_set = make_stimulus_set({"stimulus_id": stimulus_ids, "object_name": [o for o, _ in conditions],
                                      "position": [p for _, p in conditions]}, NAME)
    write_stimulus_set(stimulus_set, folder / STIMULUS_FILE)
    starts = np.arange(WINDOW_MS[0], WINDOW_MS[1], BIN_MS)
    assembly = make_assembly(
        values,
        presentation={"stimulus_id": np.repeat(stimulus_ids, n_rep),
                      "object_name": np.repeat([o for o, _ in conditions], n_rep),
                      "position": np.repeat([p for _, p in conditions], n_rep),
                      "repetition": np.tile(np.arange(n_rep), len(conditions))},
        neuroid={"neuroid_id": [p.name.replace("_raster_data.mat", "") for p in paths], "region": ["IT"] * len(units),
                 "session_id": [u["session_id"] for u in units], "recording_channel": [u["recording_channel"] for u in units],
                 "unit": [u["unit"] for u in units], "n_trials": [u["raster"].shape[0] for u in units]},
        time_bin={"time_bin_start": starts, "time_bin_end": starts + BIN_MS},
        attrs={"stimulus_set_identifier": NAME, "units": "spike count per bin", "pseudo_population": 1,
               "source": "Zhang et al. 2011 PNAS, emeyers/NeuroDecodeR data-raw/raster"})
    write_assembly(assembly, folder / ASSEMBLY_FILE)


def load_zhang_desimone_it(nan_policy: str = "allow") -> Recording:
    """(assembly (420 presentations x 132 units x 19 bins), labels-only stimulus set), converted once into the cache.

    ``nan_policy="allow"``: the NaN are the trials a unit lacks (module docstring); ``"drop-neuroids"`` keeps only
    the 125 units with every trial."""
    return load_converted(NAME, CONVERTER_VERSION, _convert, nan_policy=nan_policy)
