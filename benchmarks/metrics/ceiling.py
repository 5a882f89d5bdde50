"""Split-half internal-consistency ceiling and the normalised score.

Ceiling (Brain-Score's "internal consistency", REFERENCE.md section 3), per time bin:

1. ``ShuffleSplit(n_splits=10, train_size=0.5, random_state=1)`` over the unique repetition numbers;
2. each half = the presentations whose repetition is in that half, averaged per stimulus; where stimuli
   miss repetitions, each stimulus's shown ones are split in the same proportion (:func:`balanced_halves`;
   with every repetition shown this is Brain-Score's split exactly);
3. Pearson r per neuroid between the two halves across stimuli (stimuli seen in both halves); a neuroid with no
   response to some stimulus (NaN in every repetition of it) is left out, as the score leaves it out
   (``metrics.assembly.recorded_neuroids``): the ceiling is that of the neuroids scored;
4. Spearman-Brown with n = 2: ``c = 2r / (1 + r)``, the reliability of the average of all repetitions;
5. median over neuroids, then mean over the 10 splits (error = std / sqrt(10)).

One number for the ceiling (``Ceiling.value``, what records, tables and ``zoo score`` report) is the mean over the
bins the normalised score uses -- those with ``c > 0`` (:func:`scored_bins`) -- so that it is the denominator of
the summary score below; ``Ceiling.error`` is its standard error over the splits.
Brain-Score has no such number: its temporal ceiling stays one value per bin.

Standard errors over splits, here and in the score (:class:`benchmarks.metrics.temporal.TemporalScore`), follow
Brain-Score's ``Split.aggregate`` (brainscore_vision/metric_helpers/transformations.py at 0971191, lines 211-216,
``standard_error_of_the_mean``): the std over the splits that have a value (xarray's ``std``, which skips NaN)
divided by the square root of the number of *all* splits (``len(values['split'])``), 10 by default. A split without a
value (``silent="drop"``, every neuroid silent in a half) thus shrinks the std's sample, never the divisor.

A neuroid constant across the stimuli in one half (in practice: silent in that bin over that half's repeats)
has no defined r. ``silent="zero"`` (ours, the default) counts it as r = 0 in the median, as a constant
prediction is counted; ``silent="drop"`` is Brain-Score's behaviour: scipy.stats.pearsonr gives NaN
(brainscore_vision/metrics/internal_consistency/ceiling.py, ``PearsonCorrelation``), the median over neuroids
and the mean and std over splits skip NaN (xarray's default ``skipna``), so the neuroid drops out of that
split's median. Counting it keeps the ceiling a property of all recorded units, not of those that happened to
fire in both halves; in sparse bins the two differ (Zhang-Desimone: "drop" is 0.009-0.028 higher where the
ceiling is above 0, README). With "drop", a bin where every neuroid is silent in a half in every split has no
ceiling at all (NaN in ``per_bin``; ``Ceiling.defined`` is False there, and :func:`internal_consistency` warns
naming the bins); the normalised score (:func:`summarize`) and ``Ceiling.value`` / ``Ceiling.error`` leave such
bins out.

``c`` is a *variance fraction* (r^2 units): for responses ``s + noise`` it estimates
``var(s) / var(s + mean noise)``, i.e. the squared correlation between the repetition-averaged data
and the noiseless signal. A model that predicts the signal perfectly therefore reaches a Pearson r of
``sqrt(c)``, not ``c``.

Normalised score (used here): ``r**2 / c``, where ``r`` is the model's cross-validated Pearson r
(median over neuroids, mean over splits) and ``c`` the ceiling above, per time bin; the quantity squared
is the model's r, never the ceiling, and its sign is kept (``sign(r) r**2``: an anti-correlated
prediction scores below zero, not above). A model at the noise ceiling scores 1. Over time bins the
summary is ``sum_t sign(r_t) r_t**2 / sum_t c_t`` -- the ceiling-weighted mean of the per-bin scores --
so bins where the data carry no reliable signal (``c_t`` near 0, where the per-bin ratio is noise over
noise) neither dominate the mean nor need an arbitrary cut-off; bins with ``c_t <= 0`` are left out. This is Brain-Score's
convention from January 2026 on (REFERENCE.md). Until then it was ``(r / c)**2``: the ratio of the raw
r to the same ceiling ``c`` (treated as if it were in r units), squared. With ``c < 1`` that ratio is
larger than ``r**2 / c`` (by a factor ``1 / c``), so the two are not comparable; :func:`normalize` offers
it as ``convention="pre-2026"`` only to compare with old leaderboards.
"""
from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass
from typing import Optional

import numpy as np
import xarray as xr
from sklearn.model_selection import ShuffleSplit

from neurozoo.benchmarks.metrics.assembly import (assembly_name, check_assembly, check_stimulus_groups, coord,
                                                  group_nanmean, recorded_neuroids, time_bins)
from neurozoo.benchmarks.metrics.correlation import MIN_SAMPLES, pearson_columns, spearman_brown
from neurozoo.datasets.errors import DataError


@dataclass
class Ceiling:
    per_bin: np.ndarray  # (T,) mean over splits
    per_split: np.ndarray  # (K, T)
    error_per_bin: np.ndarray  # (T,)

    @property
    def defined(self) -> np.ndarray:
        """(T,) whether the bin has a ceiling (with ``silent="drop"`` a bin whose neuroids are all silent has none)."""
        return np.isfinite(self.per_bin)

    @property
    def scored(self) -> np.ndarray:
        """(T,) the bins a normalised score uses: those with a positive ceiling (:func:`scored_bins`)."""
        return scored_bins(self.per_bin)

    @property
    def value(self) -> float:
        """Mean over the bins the normalised score uses (:attr:`scored`: ceiling above 0); NaN if there is none.

        This is the denominator of the summary score: over those bins ``summarize(r, c)`` is
        ``mean(sign(r) r**2) / value``. A bin with a ceiling at or below 0 (no reliable signal) or none at all
        enters neither; the per-bin ceilings, all of them, are in :attr:`per_bin`.
        """
        return float(np.mean(self.per_bin[self.scored])) if self.scored.any() else float("nan")

    @property
    def error(self) -> float:
        """Standard error of :attr:`value` over splits: each split's mean over the :attr:`scored` bins, std over
        the splits that have a value, divided by the square root of the number of all splits (Brain-Score's
        convention, the score's and :attr:`error_per_bin`'s: module docstring); NaN where no split has a value."""
        if not self.scored.any():
            return float("nan")
        with warnings.catch_warnings():  # a split without a ceiling in any of those bins has no value (NaN)
            warnings.simplefilter("ignore", RuntimeWarning)
            per_split = np.nanmean(self.per_split[:, self.scored], axis=1)
        finite = per_split[np.isfinite(per_split)]
        return float(np.std(finite) / np.sqrt(len(per_split))) if len(finite) else float("nan")


def scored_bins(ceiling_per_bin) -> np.ndarray:
    """Which time bins a normalised score uses: a ceiling above 0 (NaN, no ceiling, and ``c <= 0`` are out).

    The one rule :func:`summarize` and :attr:`Ceiling.value` share, so the reported ceiling is the one the score
    is divided by."""
    c = np.asarray(ceiling_per_bin, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return c > 0


#: How a neuroid constant in one half (silent) enters the ceiling: "zero" (ours) or "drop" (Brain-Score's NaN).
SILENT = ("zero", "drop")


def internal_consistency(assembly: xr.DataArray, n_splits: int = 10, train_size: float = 0.5,
                         random_state: int = 1, silent: str = "zero") -> Ceiling:
    """Spearman-Brown corrected split-half reliability per time bin (see module docstring)."""
    check_silent(silent)
    if not (isinstance(n_splits, numbers.Integral) and n_splits >= 1):  # 0 gave a NaN ceiling, -1 a numpy error
        raise ValueError(f"n_splits: expected an integer >= 1, got {n_splits!r}")
    if not (isinstance(train_size, numbers.Real) and 0 < train_size < 1):
        raise ValueError(f"train_size: expected the fraction of repetitions in the first half, between 0 and 1 "
                         f"(exclusive), got {train_size!r}")
    assembly = check_repetitions(assembly)
    n_stimuli = len(np.unique(coord(assembly, "stimulus_id")))
    if n_stimuli < MIN_SAMPLES:  # the halves' r over 2 stimuli is +-1 (a ceiling of 1), over 1 undefined
        raise DataError(f"{assembly_name(assembly)}: {n_stimuli} stimuli; the split-half ceiling correlates the halves over the "
                        f"stimuli, and a Pearson r over fewer than {MIN_SAMPLES} measures nothing (undefined over 1, "
                        f"+-1 over 2): expected at least {MIN_SAMPLES} stimuli")
    repetitions = coord(assembly, "repetition")
    unique = np.unique(repetitions)
    ids = coord(assembly, "stimulus_id")
    values = np.asarray(assembly.values, dtype=np.float64)
    if not np.isfinite(values).all():  # the neuroids the score regresses: those with a mean for every stimulus
        values = values[:, recorded_neuroids(group_nanmean(ids, values)[0], assembly_name(assembly))]
    T = values.shape[2]
    splitter = ShuffleSplit(n_splits=n_splits, train_size=train_size, random_state=random_state)
    shown = np.isfinite(values).reshape(len(values), -1).any(axis=1)  # an all-NaN row is a repeat never shown
    per_split = np.empty((n_splits, T))
    for k, (a, b) in enumerate(splitter.split(unique)):
        in_second = balanced_halves(ids, repetitions, shown, unique[a], unique[b])
        halves, seen = [], []
        for mask in (shown & ~in_second, shown & in_second):
            mean, _, any_selected = group_nanmean(ids, values, mask)
            halves.append(mean)
            seen.append(any_selected)
        both = seen[0] & seen[1]
        r = pearson_columns(halves[0][both], halves[1][both], axis=0,
                            constant=0.0 if silent == "zero" else np.nan)  # (N, T)
        with warnings.catch_warnings():
            if silent == "drop":  # a bin where every neuroid is silent in a half has no median (NaN, skipped below)
                warnings.simplefilter("ignore", RuntimeWarning)
            per_split[k] = np.nanmedian(spearman_brown(r), axis=0)
    if silent == "zero":
        return Ceiling(per_split.mean(0), per_split, per_split.std(0) / np.sqrt(n_splits))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ceiling = Ceiling(np.nanmean(per_split, 0), per_split, np.nanstd(per_split, 0) / np.sqrt(n_splits))
    if not ceiling.defined.all():
        starts, ends = (bounds[~ceiling.defined] for bounds in time_bins(assembly))
        names = ", ".join(f"[{start:g}, {end:g}) ms" for start, end in zip(starts, ends))
        warnings.warn(f"{assembly_name(assembly)}: no ceiling in time bin {names}: every neuroid is silent in a half in every split "
                      f"(silent='drop'); the ceiling's value and the normalised score leave the bin out", stacklevel=2)
    return ceiling


def check_repetitions(assembly: xr.DataArray, benchmark: Optional[str] = None) -> xr.DataArray:
    """The assembly (checked: ``check_assembly``) if :func:`internal_consistency` can split it, else its refusal,
    computing nothing: a 'repetition' coordinate with 2 values or more, and presentations grouped per stimulus as
    Brain-Score groups them (``assembly.check_stimulus_groups``). A benchmark asks before it extracts features
    (minutes), not after, naming itself (``benchmark``): its score is ceiled by definition, so the refusal says to give
    it the trials, not only to score the raw r outside it."""
    assembly = check_assembly(assembly, assembly_name(assembly) if isinstance(assembly, xr.DataArray) else "assembly",
                              require=("stimulus_id",))
    if "repetition" not in assembly.coords:
        _no_repetitions(assembly, "no coordinate 'repetition'", benchmark)
    check_stimulus_groups(assembly)  # the halves are averaged per stimulus: Brain-Score's groups, or refused
    unique = np.unique(coord(assembly, "repetition"))
    if len(unique) < 2:
        _no_repetitions(assembly, f"found {len(unique)} ({unique[:1].tolist()})", benchmark)
    return assembly


def _no_repetitions(assembly: xr.DataArray, found: str, benchmark: Optional[str] = None) -> None:
    """The ``DataError`` for an assembly without 2 repetitions to split: one response per stimulus (repeat means:
    Brain-Score's split-half ceiling has no ``repetition`` to split either, ``assembly['repetition']`` in
    brainscore_vision/metrics/internal_consistency/ceiling.py line 60 at 0971191), with what it has and what to do.
    A benchmark's refusal began "assembly:", naming neither the benchmark nor what would let it score."""
    averaged = " (its attribute repeat_averaged says so)" if assembly.attrs.get("repeat_averaged") else ""
    name = assembly_name(assembly)
    if benchmark is not None:
        name = f"benchmark {benchmark}'s {name}"
    ids = coord(assembly, "stimulus_id")
    trials = "" if len(np.unique(ids)) == len(ids) else (
        "; its stimulus_ids repeat: if those are trials, number them in a coordinate 'repetition' along "
        "'presentation' (0, 1, ... per stimulus), which the split-half ceiling splits")
    raise DataError(f"{name}: the split-half ceiling needs at least 2 distinct values of coordinate 'repetition', "
                    f"{found} over {assembly.sizes['presentation']} presentations: one response per stimulus, such as "
                    f"repeat means{averaged}, has no ceiling; score its raw r with "
                    f"benchmarks.metrics.regression_score(features, assembly) (ceiling=None){trials}"
                    + ("" if benchmark is None else
                       "; a benchmark's score is r²/ceiling: for one, load the single trials, numbered in a "
                       "coordinate 'repetition' along 'presentation'"))


def check_silent(silent: str) -> str:
    if silent not in SILENT:
        raise ValueError(f"unknown silent={silent!r}; expected one of {', '.join(map(repr, SILENT))}")
    return silent


def balanced_halves(ids: np.ndarray, repetitions: np.ndarray, shown: np.ndarray, first, second) -> np.ndarray:
    """Whether each presentation goes to the second half of a split of the repetition numbers into ``first``
    and ``second`` (in the splitter's random order), rebalanced per stimulus over its *shown* repetitions.

    With every repetition shown for every stimulus this is exactly ``isin(repetitions, second)`` (Brain-Score's
    split). Where stimuli miss repetitions (Cowley's session 210325: 6 to 10 of 10, the missing ones trailing),
    that global split would give a stimulus halves of 5 and 1 repetitions, or all of them in one half (the
    stimulus then drops out of the ceiling): the Spearman-Brown step assumes halves of equal reliability, so the
    ceiling would be biased either way. Instead each stimulus puts ``floor(n * |second| / R + 0.5)`` of its ``n``
    shown presentations in the second half (a half rounded up, where Python's ``round`` would round 2.5 to 2; at least
    one in each half where ``n >= 2``), moving the last ones (in the split's order) of the fuller half.
    """
    split_order = np.concatenate([first, second])
    by_value = np.argsort(split_order, kind="stable")
    order = by_value[np.searchsorted(split_order[by_value], repetitions)]  # each repetition's place in the split
    in_second = np.isin(repetitions, second)
    stimulus = np.unique(ids, return_inverse=True)[1]
    n = np.bincount(stimulus, weights=shown, minlength=stimulus.max() + 1)
    target = np.floor(n * len(second) / (len(first) + len(second)) + 0.5)
    target = np.where(n >= 2, np.clip(target, 1, n - 1), target)  # both halves hold one where there are two
    rows = np.flatnonzero(shown)
    rows = rows[np.lexsort((order[rows], in_second[rows], stimulus[rows]))]  # by stimulus, half, split order
    group = stimulus[rows] * 2 + in_second[rows]
    starts = np.r_[0, np.flatnonzero(np.diff(group)) + 1]
    rank = np.arange(len(rows)) - np.repeat(starts, np.diff(np.r_[starts, len(rows)]))
    t = target[stimulus[rows]]
    result = np.zeros(len(ids), dtype=bool)
    result[rows] = np.where(in_second[rows], rank < t, rank >= n[stimulus[rows]] - t)
    return result


def normalize(r, ceiling, convention: str = "r2/ceiling"):
    """Normalised score from a raw Pearson ``r`` and a Spearman-Brown ceiling ``c`` (arrays broadcast).

    ``"r2/ceiling"`` (default): ``sign(r) r**2 / c``, Brain-Score's convention from 2026 with the sign of ``r`` kept
    (Brain-Score squares, README "Deviations from Brain-Score"). ``"pre-2026"``: ``(r / c)**2``.
    A non-positive ceiling gives NaN (the data carry no reliable signal in that bin). One of ``r`` and ``ceiling``
    broadcasts to the other's shape (a ceiling per bin against r per split and bin, a scalar against an array); shapes
    that would broadcast to a third (r of shape (3,) against a ceiling of shape (3, 1) gave a (3, 3) table of every r
    over every ceiling) or not at all are a ``ValueError`` naming both.
    """
    check_convention(convention)
    r = np.asarray(r, dtype=np.float64)
    c = np.asarray(ceiling, dtype=np.float64)
    try:
        shape = np.broadcast_shapes(r.shape, c.shape)
    except ValueError:
        shape = None
    if shape not in (r.shape, c.shape):
        raise ValueError(f"r of shape {r.shape} and ceiling of shape {c.shape}: expected the same shape, or one that "
                         "broadcasts to the other's (e.g. r (splits, bins) and a ceiling (1, bins) or (bins,))")
    safe = np.where(c > 0, c, np.nan)
    if convention == "r2/ceiling":
        return np.sign(r) * r ** 2 / safe
    return (r / safe) ** 2


#: The normalisations :func:`normalize` offers: ours (Brain-Score's from 2026, sign kept) and Brain-Score's before 2026.
CONVENTIONS = ("r2/ceiling", "pre-2026")


def check_convention(convention: str) -> str:
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown convention {convention!r}; expected one of {', '.join(map(repr, CONVENTIONS))}")
    return convention


def summary_bins(r_per_bin, ceiling_per_bin) -> np.ndarray:
    """The bins one summary number is taken over: a positive ceiling (:func:`scored_bins`) and a finite raw ``r``.

    :func:`summarize` (both conventions) and the raw r reported beside the score
    (:attr:`benchmarks.metrics.temporal.TemporalScore.raw`) use these same bins."""
    return scored_bins(ceiling_per_bin) & np.isfinite(np.asarray(r_per_bin, dtype=np.float64))


def summarize(r_per_bin, ceiling_per_bin, convention: str = "r2/ceiling") -> float:
    """One number over time bins (:func:`summary_bins`: c > 0 and a finite r; NaN where there is none):
    ceiling-weighted mean ``sum sign(r) r^2 / sum c``; for ``"pre-2026"`` the plain mean of the per-bin
    ``(r / c)**2``, which is not weighted by the ceiling and drops the sign of r."""
    r = np.asarray(r_per_bin, dtype=np.float64)
    c = np.asarray(ceiling_per_bin, dtype=np.float64)
    check_convention(convention)  # refused even where no bin is scored
    keep = summary_bins(r, c)
    if not keep.any():
        return float("nan")
    if convention == "pre-2026":
        return float(np.mean(normalize(r[keep], c[keep], convention)))
    return float(np.sum(np.sign(r[keep]) * r[keep] ** 2) / np.sum(c[keep]))
