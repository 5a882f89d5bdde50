"""Brain-Score's neural-predictivity pipeline written from brain-score/vision's code (not from ours), for the parity
tests of tests/test_metrics.py and tests/test_ceiling.py. Each function names the files, commits and lines it follows."""
import warnings

import numpy as np
import scipy.stats
import xarray as xr


def average_repetition(assembly):
    """(stimuli, neuroid, time_bin) means over repetitions, the stimuli in Brain-Score's order: brain-score/vision
    benchmark_helpers/neural_common.py at 0117fef, ``average_repetition``: ``multi_groupby`` over the presentation
    coordinates but 'repetition' as ``walk_coords`` yields them (a MultiIndex's levels in their order, other
    coordinates in the assembly's order), then ``.mean(dim='presentation', skipna=True)``. brain-score/brainio
    brainio/assemblies.py at 064b0d4, ``DataAssembly.multi_groupby`` / ``_join_group_coords``: each presentation's key
    is the tuple of those coordinates' values (``MultiCoord``, ordered by ``self.values < other.values``), and
    xarray's groupby returns the groups in sorted key order. So the stimuli come sorted by the *first* such
    coordinate, then the next: by stimulus_id only where stimulus_id is the first presentation coordinate."""
    assembly = assembly.transpose("presentation", "neuroid", "time_bin")
    names = [name for name, values in assembly.coords.items()
             if values.dims == ("presentation",) and name not in ("presentation", "repetition")]
    keys = list(zip(*(assembly[name].values.tolist() for name in names)))
    groups = sorted(set(keys))
    rows = [[i for i, key in enumerate(keys) if key == group] for group in groups]
    values = np.stack([np.nanmean(assembly.values[r], axis=0) for r in rows])
    coords = {name: ("presentation", [group[k] for group in groups]) for k, name in enumerate(names)}
    coords |= {name: (values_.dims, values_.values) for name, values_ in assembly.coords.items()
               if values_.dims in (("neuroid",), ("time_bin",))}
    return xr.DataArray(values, dims=assembly.dims, coords=coords)


def span_time(features, assembly, make_regression, per_time=False):
    """MajajHong2015public.*-temporal-pls's metric as brain-score/vision computes it, written from its code (files
    under brainscore_vision/, at the commits named):
    benchmark_helpers/neural_common.py at 0117fef ``average_repetition`` (``multi_groupby`` over every presentation
    coordinate but repetition, in walk_coords order, then a mean over presentations: :func:`average_repetition`
    below); metrics/regression_correlation/metric.py
    at 0197a60: ``SpanTimeCrossRegressedCorrelation`` (lines 70-75) = ``CrossRegressedCorrelation`` (lines 14-34:
    ``train_size=.9, test_size=None`` line 17, ``scores.median(dim='neuroid')`` line 34) over a
    ``SpanTimeRegression`` (metric_helpers/temporal.py at 0f8fee4, lines 86-99: ``fit`` on the time bins stacked into
    the sample axis by ``SpanTime`` line 96, ``predict`` per bin by ``PerTime`` line 99) of ``pls_regression()``
    (``PLSRegression(n_components=25, scale=False)``, lines 104-110) and ``PerTime(pearsonr_correlation())``
    (scipy.stats.pearsonr per neuroid: NaN for a constant input, which ``scores.median(dim='neuroid')``, xarray's
    median with its default skipna, leaves out); metric_helpers/transformations.py at 0971191 ``Split`` (lines 165-216:
    defaults 10 splits, train_size .9, stratification on object_name, random_state 1, lines 166-172;
    ``StratifiedShuffleSplit(n_splits, train_size, test_size, random_state)`` lines 188-190; ``build_splits`` over
    the target's stimulus_id values in order, lines 204-209) and ``Split.aggregate`` (mean over splits,
    ``standard_error_of_the_mean``: xarray std / sqrt(n), lines 211-216). PLS runs to convergence here (tol 1e-14):
    Brain-Score's default tol=1e-6 is our named deviation (README). ``make_regression()``: the sklearn estimator
    (for 'spantime_ridge', metric.py ``ridge_regression`` lines 120-126: ``Ridge(alpha=1)``).

    ``per_time=True``: the per-bin variant, brain-score/vision's ``PerTimeRegression`` (metric_helpers/temporal.py at
    0f8fee4, lines 101-119: ``fit`` only keeps the training source and target; ``predict`` runs
    ``PerTime(fit_predict)``, which for each time bin fits the regression on that bin's training samples alone and
    predicts that bin's test samples), inside the same ``CrossRegressedCorrelation`` over the same splits."""
    from sklearn.model_selection import StratifiedShuffleSplit

    target = average_repetition(assembly)
    ids = target["stimulus_id"].values
    objects = dict(zip(assembly["stimulus_id"].values, assembly["object_name"].values))
    source = features.set_index(presentation="stimulus_id").sel(presentation=ids).values  # aligned on stimulus_id
    Y = target.values
    splitter = StratifiedShuffleSplit(n_splits=10, train_size=.9, test_size=None, random_state=1)
    per_split = []
    for train, test in splitter.split(np.zeros(len(ids)), [objects[i] for i in ids]):
        stack = lambda A, idx: np.concatenate([A[idx, :, t] for t in range(A.shape[2])])  # noqa: E731
        if not per_time:
            regression = make_regression()
            regression.fit(stack(source, train), stack(Y, train))
        medians = []
        for t in range(Y.shape[2]):
            if per_time:  # a fresh fit on this bin's training samples only
                regression = make_regression()
                regression.fit(source[train, :, t], Y[train, :, t])
            prediction = regression.predict(source[test, :, t])
            with warnings.catch_warnings():  # a constant input: scipy's NaN, skipped by the median below
                warnings.simplefilter("ignore", scipy.stats.ConstantInputWarning)
                r = [scipy.stats.pearsonr(prediction[:, n], Y[test, n, t])[0] for n in range(Y.shape[1])]
            medians.append(float(xr.DataArray(r, dims=("neuroid",)).median("neuroid")))  # skipna, as Score's
        per_split.append(medians)
    per_split = np.array(per_split)
    return per_split.mean(0), per_split.std(0) / np.sqrt(len(per_split))


def ceiling_splits(assembly, n_splits=10, random_state=1):
    """Brain-Score's internal consistency, (splits, bins) of per-split medians, written from brain-score/vision
    (brainscore_vision/metrics/internal_consistency/ceiling.py at 0971191): TemporalCeiling runs the ceiling per
    time bin; _SplitHalvesConsistency (lines 39-42) has CrossValidationSingle split np.unique(repetition) by
    ShuffleSplit(10, train_size=0.5, random_state=1) (metric_helpers/transformations.py at 0971191: Split,
    lines 165-209, build_splits lines 204-209, extract_coord with unique=True); SplitHalfWrapper (lines 53-57) averages each half over repetitions per stimulus, correlates,
    applies Spearman-Brown with n=2; PearsonCorrelation uses scipy.stats.pearsonr (line 74), called per neuroid by
    XarrayCorrelation (metric_helpers/xarray_utils.py at 14dbe13, line 76), NaN for a constant input; its aggregate
    is scores.median(dim='neuroid') (line 83), which skips NaN (xarray's default skipna; Score does not override
    median). ``n_splits`` and ``random_state``: the ``Split`` defaults (10, 1) unless given."""
    from sklearn.model_selection import ShuffleSplit

    repetitions = np.unique(assembly["repetition"].values)
    per_bin = []
    for t in range(assembly.sizes["time_bin"]):
        one_bin = assembly.isel(time_bin=t)
        medians = []
        for first, second in ShuffleSplit(n_splits, train_size=0.5, random_state=random_state).split(np.zeros(len(repetitions))):
            half1, half2 = (one_bin.isel(presentation=np.isin(one_bin["repetition"].values, repetitions[h]))
                            .groupby("stimulus_id").mean("presentation").transpose("stimulus_id", "neuroid")
                            for h in (first, second))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", scipy.stats.ConstantInputWarning)
                r = np.array([scipy.stats.pearsonr(half2.values[:, n], half1.values[:, n])[0]
                              for n in range(half1.sizes["neuroid"])])
            corrected = xr.DataArray(2 * r / (1 + r), dims=("neuroid",))
            medians.append(float(corrected.median("neuroid")))
        per_bin.append(medians)
    return np.array(per_bin).T


def explained_variance(r, ceiling, convention="2026"):
    """Brain-Score's normalisation of a raw score by a ceiling, applied elementwise (per time bin, as
    ``NeuralBenchmark.__call__`` applies it to a temporal score): before 2026, ``explained_variance`` in
    brainscore_vision/benchmark_helpers/neural_common.py at 0117fef, ``np.power(score.values / ceiling.values, 2)``;
    from brain-score/vision pull request #2169 (merged December 2025, "Normalize neural scores as r^2 / reliability
    instead of (r/reliability)^2"), ``r**2 / ceiling``. Both square r, so its sign is lost."""
    r, ceiling = np.asarray(r, dtype=np.float64), np.asarray(ceiling, dtype=np.float64)
    return (r / ceiling) ** 2 if convention == "pre-2026" else r ** 2 / ceiling
