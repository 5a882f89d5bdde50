"""Cross-validated regression scores over time bins.

Two temporal variants (REFERENCE.md section 3):

* ``"span"`` (Brain-Score's span-time PLS, used for MajajHong2015 *-temporal-pls): the time bins are
  stacked into the sample axis, one mapping is fitted on all (training presentation, bin) samples, then
  each bin's held-out presentations are predicted and correlated separately;
* ``"per_bin"``: an independent mapping per time bin.

Per split and bin: Pearson r per neuroid across the held-out stimuli, median over neuroids. A neuroid constant over a
split's held-out stimuli in a bin (silent there), or a constant prediction, has no r: ``silent="zero"`` (default)
counts it as r = 0 in the median, ``silent="drop"`` leaves it out of that median as Brain-Score does
(scipy.stats.pearsonr's NaN, skipped by ``scores.median(dim='neuroid')``; brainscore_vision/metrics/
regression_correlation/metric.py at 0197a60, ``CrossRegressedCorrelation.aggregate``), the same choice as the
ceiling's (:func:`benchmarks.metrics.ceiling.internal_consistency`). Per bin:
mean over splits (error = std over the splits with a value / sqrt(n_splits, all of them): Brain-Score's
``Split.aggregate``, the ceiling's convention too, :mod:`benchmarks.metrics.ceiling`). The single summary value is the
mean raw r over bins, or with a ceiling the ceiling-weighted mean of the normalised per-bin scores
(:func:`benchmarks.metrics.ceiling.summarize`); the raw r reported beside a normalised score
(:attr:`TemporalScore.raw`) is the mean over the same bins (ceiling above 0).
Repetitions are averaged per stimulus before fitting; splits are drawn over the stimuli sorted by
stimulus_id, stratified on object_name.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
import xarray as xr

from neurozoo.benchmarks.metrics.assembly import (align_features, assembly_name, average_repetitions, check_assembly,
                                                  coord, recorded_neuroids, time_bins)
from neurozoo.benchmarks.metrics.ceiling import (Ceiling, check_convention, check_silent, normalize, summarize,
                                                 summary_bins)
from neurozoo.benchmarks.metrics.correlation import MIN_SAMPLES, pearson_columns
from neurozoo.benchmarks.metrics.regression import (BRAINSCORE_PLS_COMPONENTS, Split, brainscore_splits,
                                                    fit_predict_folds)
from neurozoo.datasets.errors import DataError


@dataclass
class TemporalScore:
    raw_per_split: np.ndarray  # (K, T): median-over-neuroids r per split and bin
    bin_start: np.ndarray
    bin_end: np.ndarray
    ceiling: Optional[Ceiling] = None
    convention: str = "r2/ceiling"
    settings: dict = field(default_factory=dict)

    @property
    def n_splits(self) -> int:
        return self.raw_per_split.shape[0]

    @property
    def scale(self) -> str:
        """What :attr:`value` and :attr:`per_bin` measure: ``"raw r"`` without a ceiling (repeat means have none), else
        the normalisation ``convention`` (``"r2/ceiling"``): a raw r is no fraction of a ceiling and is not to be
        ranked beside one (``settings["convention"]`` names the convention asked for, ceiling or not)."""
        return "raw r" if self.ceiling is None else self.convention

    @property
    def raw_per_bin(self) -> np.ndarray:
        """(T,) mean over the splits that have an r (with ``silent="drop"`` a split where no neuroid has one in a bin
        has none), as Brain-Score's ``Split.aggregate`` (xarray's mean, skipna); NaN where no split has one."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(self.raw_per_split, axis=0)

    @property
    def raw(self) -> float:
        """Mean raw r over the bins the score is taken over: with a ceiling, those of :attr:`value`
        (``ceiling.summary_bins``: ceiling above 0, finite r), so a bin without reliable signal enters neither;
        without one, every bin with a finite r. NaN where there is no such bin."""
        r = self.raw_per_bin
        keep = np.isfinite(r) if self.ceiling is None else summary_bins(r, self.ceiling.per_bin)
        return float(r[keep].mean()) if keep.any() else float("nan")

    @property
    def per_bin(self) -> np.ndarray:
        if self.ceiling is None:
            return self.raw_per_bin
        return normalize(self.raw_per_bin, self.ceiling.per_bin, self.convention)

    @property
    def per_split_values(self) -> np.ndarray:
        """(K, T) per-split scores on the reported scale (normalised when a ceiling is given)."""
        if self.ceiling is None:
            return self.raw_per_split
        return normalize(self.raw_per_split, self.ceiling.per_bin[None, :], self.convention)

    @property
    def value(self) -> float:
        """Mean raw r over bins, or with a ceiling the ceiling-weighted normalised score (see ``ceiling.summarize``)."""
        if self.ceiling is None:
            return float(np.nanmean(self.raw_per_bin))
        return summarize(self.raw_per_bin, self.ceiling.per_bin, self.convention)

    @property
    def error(self) -> float:
        if self.ceiling is None:
            with warnings.catch_warnings():  # a split where no bin has an r (silent="drop") has no value (NaN)
                warnings.simplefilter("ignore", RuntimeWarning)
                per_split = np.nanmean(self.raw_per_split, axis=1)
        else:
            per_split = np.array([summarize(r, self.ceiling.per_bin, self.convention) for r in self.raw_per_split])
        return float(np.nanstd(per_split) / np.sqrt(self.n_splits))

    @property
    def error_per_bin(self) -> np.ndarray:
        values = self.per_split_values
        defined = np.isfinite(values).any(axis=0)  # a bin with a non-positive ceiling has no normalised score
        error = np.full(values.shape[1], np.nan)
        error[defined] = np.nanstd(values[:, defined], axis=0) / np.sqrt(self.n_splits)
        return error

    def table(self):
        """Per-bin pandas DataFrame: time_bin_start, time_bin_end, value, error, raw, ceiling."""
        import pandas as pd

        return pd.DataFrame({
            "time_bin_start": self.bin_start, "time_bin_end": self.bin_end,
            "value": self.per_bin, "error": self.error_per_bin, "raw": self.raw_per_bin,
            "ceiling": self.ceiling.per_bin if self.ceiling is not None else np.full(len(self.bin_start), np.nan),
        })


def regression_score(features: xr.DataArray, assembly: xr.DataArray, mapping: str = "pls", temporal: str = "span",
                     ceiling: Optional[Ceiling] = None, splits: Optional[Sequence[Split]] = None,
                     n_components: Optional[int] = None, convention: str = "r2/ceiling",
                     silent: str = "zero") -> TemporalScore:
    """Score model ``features`` against the neural ``assembly`` (both (presentation, neuroid, time_bin)).
    ``n_components``: PLS's (default Brain-Score's 25); refused with a ridge mapping (:func:`fit_predict_folds`). The
    settings record the number fitted: at most the number of features (sklearn refuses more, ``FastPLS`` clips), with
    the number asked for as ``n_components_requested`` where it was clipped.
    ``silent``: how a neuroid without an r in a split and bin enters its median (module docstring): "zero", or
    Brain-Score's "drop"."""
    check_silent(silent)
    assembly = check_assembly(assembly)
    target = average_repetitions(assembly)
    ids = coord(target, "stimulus_id")
    bins = time_bins(target)
    X = align_features(features, ids, bins)
    Y = np.asarray(target.values, dtype=np.float64)
    unseen = ~np.isfinite(Y).any(axis=(1, 2))
    if unseen.any():  # every neuroid would miss it: say which stimuli, not that no neuroid can be scored
        raise DataError(f"{assembly_name(assembly)}: {int(unseen.sum())} stimuli have no response in any neuroid and "
                        f"time bin (never shown), e.g. stimulus_id {ids[unseen][:3].tolist()}; drop their presentations")
    complete = recorded_neuroids(Y, assembly_name(assembly))
    if not complete.all():
        Y = Y[:, complete]
    check_convention(convention)
    if ceiling is not None and not (isinstance(ceiling, Ceiling) and len(ceiling.per_bin) == Y.shape[2]):
        got = (f"a ceiling of {len(ceiling.per_bin)} time bins" if isinstance(ceiling, Ceiling)
               else f"a {type(ceiling).__name__}")
        raise DataError(f"ceiling: expected a Ceiling of the assembly's {Y.shape[2]} time bins "
                        f"(benchmarks.metrics.internal_consistency(assembly)), got {got}")
    if splits is None:
        splits = brainscore_splits(coord(target, "object_name"), n_presentations=len(ids),
                                   name=assembly_name(assembly))
    fewest = min((len(np.asarray(test)) for _, test in splits), default=0)
    if 0 < fewest < MIN_SAMPLES:  # r over 1 stimulus is undefined (scored 0), over 2 it is +-1 whatever the model
        raise DataError(f"{assembly_name(assembly)}: {len(ids)} stimuli; a split tests {fewest} of them, and a Pearson "
                        f"r over fewer than {MIN_SAMPLES} stimuli measures nothing (undefined over 1, +-1 over 2): expected at "
                        f"least {MIN_SAMPLES} test stimuli per split (at least 21 stimuli for the 10 90/10 splits)")
    if temporal == "span":
        predictions = fit_predict_folds(mapping, X, Y, splits, n_components=n_components)
    elif temporal == "per_bin":
        per_bin = [fit_predict_folds(mapping, X[:, :, t:t + 1], Y[:, :, t:t + 1], splits, n_components=n_components)
                   for t in range(Y.shape[2])]
        predictions = [np.concatenate([per_bin[t][k] for t in range(Y.shape[2])], axis=2) for k in range(len(splits))]
    else:
        raise ValueError(f"unknown temporal variant {temporal!r}; expected 'span' or 'per_bin'")
    constant = 0.0 if silent == "zero" else np.nan
    with warnings.catch_warnings():  # with "drop", a bin where no neuroid has an r in a split has no median (NaN)
        warnings.simplefilter("ignore", RuntimeWarning)
        raw = np.stack([
            np.nanmedian(pearson_columns(prediction, Y[test], axis=0, constant=constant), axis=0)  # (N, T) -> (T,)
            for prediction, (_, test) in zip(predictions, splits)
        ])
    requested = BRAINSCORE_PLS_COMPONENTS if mapping == "pls" and n_components is None else n_components
    # recorded as fitted: PLS fits at most one component per feature (a ridge mapping's record: None, it has none)
    fitted = None if requested is None else min(int(requested), X.shape[1])
    settings = {"mapping": mapping, "temporal": temporal, "n_components": fitted, "n_splits": len(splits),
                "convention": convention, "n_neuroids": int(complete.sum()), "n_neuroids_dropped": int((~complete).sum())}
    if fitted != requested:  # the number asked for, where there were fewer features to fit it with
        settings["n_components_requested"] = int(requested)
    if silent != "zero":  # the default is left out, so earlier records keep their settings
        settings["silent"] = silent
    return TemporalScore(raw, bins[0], bins[1], ceiling, convention, settings)
