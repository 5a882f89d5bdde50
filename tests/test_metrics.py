"""Regression metrics: fast PLS equals sklearn's, and cross-validated scores recover known answers."""
import re
import warnings

import numpy as np
import pytest
import xarray as xr
from sklearn.cross_decomposition import PLSRegression

from neurozoo.benchmarks.metrics import FastPLS, brainscore_splits, internal_consistency, pls_fit_predict_folds, regression_score
from neurozoo.benchmarks.metrics.correlation import pearson_columns
from neurozoo.benchmarks.metrics.regression import pls_coefficients
from neurozoo.benchmarks.synthetic import as_features, expected_ceiling, synthetic_assembly
from neurozoo.datasets.errors import DataError

# tests/ is on sys.path
from brainscore_reference import average_repetition as brainscore_average_repetition  # noqa: E402
from brainscore_reference import ceiling_splits, explained_variance, span_time  # noqa: E402


def _reference_nipals(X, Y, k, X_test):
    """Textbook NIPALS (regression deflation) with exact singular vectors from a full SVD."""
    xm, ym = X.mean(0), Y.mean(0)
    Xk, Yk = X - xm, Y - ym
    W, P, C = [], [], []
    for _ in range(k):
        w = np.linalg.svd(Xk.T @ Yk)[0][:, 0]
        t = Xk @ w
        p, c = Xk.T @ t / (t @ t), Yk.T @ t / (t @ t)
        Xk, Yk = Xk - np.outer(t, p), Yk - np.outer(t, c)
        W.append(w), P.append(p), C.append(c)
    W, P, C = map(np.array, (W, P, C))
    return (X_test - xm) @ (W.T @ np.linalg.inv(P @ W.T)) @ C + ym


def _data(n, F, Q, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, F)) @ rng.normal(size=(F, F)) + 3.0
    Y = X @ rng.normal(size=(F, Q)) * 0.3 + rng.normal(size=(n, Q)) + 1.0
    return X, Y, rng.normal(size=(15, F)) @ rng.normal(size=(F, F))


@pytest.mark.parametrize("n,F,Q,k", [(80, 30, 5, 25), (120, 40, 8, 25), (60, 12, 30, 10)])
def test_fast_pls_equals_sklearn(n, F, Q, k):
    X, Y, X_test = _data(n, F, Q, seed=n + F + Q)
    fast = FastPLS(k).fit(X, Y).predict(X_test)
    np.testing.assert_allclose(fast, _reference_nipals(X, Y, k, X_test), rtol=1e-9, atol=1e-9)
    # sklearn's power iteration converged tightly lands on the same fixed point
    converged = PLSRegression(k, scale=False, tol=1e-14, max_iter=100000).fit(X, Y).predict(X_test)
    scale = np.abs(converged).max()
    np.testing.assert_allclose(fast, converged, atol=2e-6 * scale)
    # with its default tol=1e-6, sklearn stops early on late components: close, not identical
    default = PLSRegression(k, scale=False).fit(X, Y).predict(X_test)
    assert np.abs(fast - default).max() < 2e-2 * scale


def test_fast_pls_single_target_matches_sklearn_defaults():
    X, Y, X_test = _data(70, 20, 1, seed=3)
    fast = FastPLS(25).fit(X, Y[:, 0]).predict(X_test)  # n_components clipped to 20 features
    sk = PLSRegression(20, scale=False).fit(X, Y[:, 0]).predict(X_test).ravel()
    np.testing.assert_allclose(fast, sk, rtol=1e-8, atol=1e-8)


def test_batched_folds_equal_separate_fits_on_stacked_bins():
    rng = np.random.default_rng(1)
    P, F, Q, T = 60, 15, 4, 3
    X = rng.normal(size=(P, F, T)) + 2.0
    Y = np.einsum("pft,fq->pqt", X, rng.normal(size=(F, Q))) + rng.normal(size=(P, Q, T))
    splits = brainscore_splits(np.arange(P) % 5, n_splits=4)
    predictions = pls_fit_predict_folds(X, Y, splits, n_components=6)
    stack = lambda A, idx: np.moveaxis(A[idx], 2, 0).reshape(-1, A.shape[1])  # noqa: E731
    for (train, test), prediction in zip(splits, predictions):
        expected = FastPLS(6).fit(stack(X, train), stack(Y, train)).predict(stack(X, test))
        np.testing.assert_allclose(np.moveaxis(prediction, 2, 0).reshape(-1, Q), expected, atol=1e-9)
        sk = PLSRegression(6, scale=False, tol=1e-14, max_iter=100000).fit(stack(X, train), stack(Y, train))
        np.testing.assert_allclose(np.moveaxis(prediction, 2, 0).reshape(-1, Q), sk.predict(stack(X, test)), atol=1e-5)


def test_streamed_blocks_and_fold_batches_equal_one_pass(monkeypatch):
    """Moments summed over many small blocks, folds solved a few at a time: same predictions as one block."""
    from neurozoo.benchmarks.metrics import regression

    rng = np.random.default_rng(4)
    P, F, Q, T = 90, 12, 5, 4
    X = rng.normal(size=(P, F, T)) + 5.0
    Y = np.einsum("pft,fq->pqt", X, rng.normal(size=(F, Q))) + rng.normal(size=(P, Q, T))
    splits = brainscore_splits(np.arange(P) % 6, n_splits=5)
    whole = pls_fit_predict_folds(X, Y, splits, n_components=8)
    monkeypatch.setattr(regression, "BLOCK_ROWS", 7)  # 1 presentation (4 rows) per block
    monkeypatch.setattr(regression, "FOLD_MEMORY", 2 * 8 * F * (F + Q))  # 2 folds per batch
    for a, b in zip(whole, pls_fit_predict_folds(X, Y, splits, n_components=8)):
        np.testing.assert_allclose(a, b, atol=1e-10)


def _latent_data(P, F, Q, T, latents, noise, offset, seed):
    """Features and responses (presentation, feature/neuroid, bin) driven by the same ``latents`` factors."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(P, latents, T))
    X = np.einsum("plt,lf->pft", latent, rng.normal(size=(latents, F))) + noise * rng.normal(size=(P, F, T)) + offset
    Y = np.einsum("plt,lq->pqt", latent, rng.normal(size=(latents, Q))) + rng.normal(size=(P, Q, T))
    return X, Y


def test_float32_features_match_float64_to_float_precision():
    """float32 features run the products in float32 (summed in float64): predictions agree to ~1e-5."""
    P = 400
    X, Y = _latent_data(P, 60, 8, 5, latents=10, noise=0.5, offset=3.0, seed=5)
    splits = brainscore_splits(np.arange(P) % 8, n_splits=3)
    exact = pls_fit_predict_folds(X, Y, splits, n_components=25)
    single = pls_fit_predict_folds(X.astype(np.float32), Y, splits, n_components=25)
    for a, b in zip(exact, single):
        assert b.dtype == np.float32
        np.testing.assert_allclose(b, a, atol=2e-5 * np.abs(a).max())


@pytest.mark.parametrize("factor", [1e-30, 1e-20, 1e-8, 1e8, 1e15])
def test_pls_predictions_do_not_depend_on_the_features_scale_in_float32(factor):
    """PLS with scale=False predicts the same from X and c X (sklearn, in float64, does). The float32 products of
    features of 1e-30 underflowed to a Gram matrix of zeros: a constant prediction, r = 0, a silent score of 0."""
    P = 120
    X, Y = _latent_data(P, 20, 6, 3, latents=5, noise=0.3, offset=2.0, seed=7)
    splits = brainscore_splits(np.arange(P) % 6, n_splits=3)
    exact = pls_fit_predict_folds(X, Y, splits, n_components=10)
    scaled = pls_fit_predict_folds((X * factor).astype(np.float32), Y, splits, n_components=10)
    for a, b in zip(exact, scaled):
        np.testing.assert_allclose(b, a, atol=2e-5 * np.abs(a).max())


def test_fewer_training_samples_than_components_stop_at_the_rank_in_float32():
    """18 training samples, 25 components: the fit stops once the samples are exhausted, so float32 features
    give the float64 predictions instead of components fitted to rounding noise."""
    rng = np.random.default_rng(6)
    P, F, Q = 20, 50, 6
    X = rng.normal(size=(P, F, 1))
    Y = np.einsum("pft,fq->pqt", X, rng.normal(size=(F, Q))) + rng.normal(size=(P, Q, 1))
    splits = brainscore_splits(np.zeros(P), n_splits=3)
    exact = pls_fit_predict_folds(X, Y, splits, n_components=25)
    single = pls_fit_predict_folds(X.astype(np.float32), Y, splits, n_components=25)
    for a, b in zip(exact, single):
        np.testing.assert_allclose(b, a, atol=1e-3 * np.abs(a).max())


def test_pls_coefficients_batch_axis_matches_loop():
    rng = np.random.default_rng(2)
    Xs = rng.normal(size=(3, 40, 10))
    Ys = rng.normal(size=(3, 40, 6))
    C = np.einsum("knf,kng->kfg", Xs, Xs)
    S = np.einsum("knf,knq->kfq", Xs, Ys)
    batched = pls_coefficients(C, S, 5)
    for k in range(3):
        np.testing.assert_allclose(batched[k], pls_coefficients(C[k], S[k], 5), atol=1e-12)


def test_splits_follow_brainscore_convention():
    objects = np.repeat(np.arange(8), 30)
    splits = brainscore_splits(objects)
    assert len(splits) == 10
    for train, test in splits:
        assert len(test) == 24 and len(train) == 216 and not set(train) & set(test)
        assert set(objects[test]) == set(range(8))  # stratified: every object in every test set
    assert np.array_equal(splits[0][1], brainscore_splits(objects)[0][1])  # seeded


def test_an_assembly_without_object_names_is_scored_on_plain_shuffle_splits(synthetic):
    """brainscore_splits(None), documented as a plain shuffle split, took len(None): a TypeError from
    regression_score on any assembly without an object_name coordinate."""
    from sklearn.model_selection import ShuffleSplit

    assembly, clean = (a.drop_vars("object_name") for a in synthetic)
    n = clean.sizes["presentation"]
    expected = [np.sort(test) for _, test in ShuffleSplit(10, train_size=0.9, random_state=1).split(np.zeros(n))]
    assert all(np.array_equal(test, want) for (_, test), want in zip(brainscore_splits(None, n_presentations=n), expected))
    score = regression_score(clean, assembly)
    assert score.settings["n_splits"] == 10
    from neurozoo.benchmarks.neural import selection_splits  # the layer selection's splits too

    assert [len(test) for _, test in selection_splits(assembly)] == [n // 10] * 10
    np.testing.assert_allclose(score.raw_per_bin, np.sqrt(expected_ceiling(NOISE, REPS)), atol=0.04)  # noiseless features


def test_pearson_columns_known_values():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(50, 3))
    np.testing.assert_allclose(pearson_columns(a, 2 * a + 1), 1.0)
    np.testing.assert_allclose(pearson_columns(a, -a), -1.0)
    expected = [np.corrcoef(a[:, i], a[:, (i + 1) % 3])[0, 1] for i in range(3)]
    np.testing.assert_allclose(pearson_columns(a, np.roll(a, -1, axis=1)), expected)
    assert pearson_columns(np.ones((5, 1)), a[:5, :1])[0] == 0.0



def test_pearson_columns_with_missing_values_needs_three_pairs_as_its_docstring_says():
    """With NaNs (pairwise deletion) a column left with 2 finite pairs has no r (NaN: +-1 over 2 points whatever the
    values, so it would count as a perfect or a perfectly wrong neuroid in the median); with 3 it is scipy's r over
    those 3. (Allowing 2 pairs passed every test: none had a column with so few.)"""
    import scipy.stats

    a = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 4.0], [4.0, np.nan], [5.0, np.nan]])
    b = np.array([[2.0, 3.0], [1.0, 1.0], [np.nan, 5.0], [np.nan, 2.0], [7.0, 0.0]])
    r = pearson_columns(a, b, axis=0)  # column 0: pairs at rows 0, 1, 4; column 1: rows 0, 1, 2
    np.testing.assert_allclose(r, [scipy.stats.pearsonr([1, 2, 5], [2, 1, 7])[0],
                                   scipy.stats.pearsonr([1, 2, 4], [3, 1, 5])[0]], rtol=1e-12)
    b[4, 0] = np.nan  # column 0 down to 2 pairs
    r = pearson_columns(a, b, axis=0)
    assert np.isnan(r[0]) and r[1] == pytest.approx(scipy.stats.pearsonr([1, 2, 4], [3, 1, 5])[0], rel=1e-12)

def test_pearson_columns_constant_columns_as_scipy_tests_them():
    """A column of equal values is constant even where its mean is not exact (21 x 0.1: the centred values are
    rounding residue, not 0): r = ``constant`` (0 by default, NaN as scipy.stats.pearsonr), with or without NaNs."""
    import scipy.stats

    rng = np.random.default_rng(1)
    a = np.column_stack([np.full(21, 0.1), np.zeros(21), rng.normal(size=21)])
    b = rng.normal(size=(21, 3))
    assert np.ptp(a[:, 0] - a[:, 0].mean()) == 0 and (a[:, 0] - a[:, 0].mean()).any()
    expected = [scipy.stats.pearsonr(a[:, 2], b[:, 2])[0]]
    np.testing.assert_allclose(pearson_columns(a, b, axis=0), [0.0, 0.0] + expected, rtol=0, atol=1e-14)
    np.testing.assert_allclose(pearson_columns(a, b, axis=0, constant=np.nan), [np.nan, np.nan] + expected,
                               rtol=0, atol=1e-14)
    np.testing.assert_allclose(pearson_columns(b, a, axis=0, constant=np.nan)[:2], np.nan)  # either input
    holes = a.copy()
    holes[:3, 0] = holes[:3, 2] = np.nan  # missing entries are left out pairwise, and so from the constancy test
    expected = [scipy.stats.pearsonr(a[3:, 2], b[3:, 2])[0]]
    np.testing.assert_allclose(pearson_columns(holes, b, axis=0, constant=np.nan), [np.nan, np.nan] + expected,
                               rtol=0, atol=1e-14)
    assert (pearson_columns(holes, b, axis=0)[:2] == 0).all()


NOISE, REPS = 1.5, 4


@pytest.fixture(scope="module")
def synthetic():
    return synthetic_assembly(n_stimuli=400, n_neuroids=16, n_bins=3, n_repetitions=REPS, noise=NOISE, seed=5)


def test_noiseless_features_score_at_ceiling(synthetic):
    assembly, clean = synthetic
    ceiling = internal_consistency(assembly)
    score = regression_score(clean, assembly, ceiling=ceiling)
    c = expected_ceiling(NOISE, REPS)
    np.testing.assert_allclose(score.raw_per_bin, np.sqrt(c), atol=0.04)
    np.testing.assert_allclose(score.per_bin, 1.0, atol=0.1)
    assert abs(score.value - 1.0) < 0.07 and 0 < score.error < 0.05


def test_shuffled_features_score_zero(synthetic):
    assembly, clean = synthetic
    shuffled = clean.copy(data=np.random.default_rng(0).permutation(clean.values))
    score = regression_score(shuffled, assembly)
    assert abs(score.raw) < 0.06
    assert np.all(np.abs(score.raw_per_bin) < 0.1)


def test_score_value_and_error_bars_by_hand():
    """Four splits, two bins, ceilings 0.5 and 0.25 (sum 0.75), values worked out by hand from the documented
    conventions (ceiling.py): the value is sum_t sign(r_t) r_t^2 / sum_t c_t of the split-mean r; the error is
    the standard error (std, ddof=0, over sqrt(K)) of the same summary taken split by split, per bin of
    sign(r) r^2 / c. The tests on data had only bounded the error (0 < error < 0.05), which the raw r's error bar
    (1 / (8 sqrt 2) here) or a std not divided by sqrt(K) also met."""
    from neurozoo.benchmarks.metrics.ceiling import Ceiling
    from neurozoo.benchmarks.metrics.temporal import TemporalScore
    from neurozoo.benchmarks.score import Score

    r = np.array([[0.5, 0.5], [0.5, -0.5], [0.5, 0.0], [0.0, 0.5]])
    ceiling = Ceiling(np.array([0.5, 0.25]), np.full((4, 2), np.nan), np.array([0.01, 0.02]))
    score = TemporalScore(r, np.array([70, 80]), np.array([80, 90]), ceiling=ceiling)
    # split-mean r (0.375, 0.125): (0.375^2 + 0.125^2) / 0.75 = 5/24, not the mean of the split scores (1/3)
    assert score.raw == pytest.approx(0.25, abs=1e-15) and score.value == pytest.approx(5 / 24, abs=1e-15)
    np.testing.assert_allclose(score.per_bin, [9 / 32, 1 / 16], rtol=0, atol=1e-15)
    # split scores (0.25 + 0.25) / 0.75, 0, 0.25 / 0.75, 0.25 / 0.75 = 2/3, 0, 1/3, 1/3: std sqrt(1/18), over sqrt(4)
    assert score.error == pytest.approx(1 / (6 * np.sqrt(2)), abs=1e-15)
    # per bin: (0.5, 0.5, 0.5, 0) and (1, -1, 0, 1): std sqrt(3) / 8 and sqrt(11) / 4, over sqrt(4)
    np.testing.assert_allclose(score.error_per_bin, [np.sqrt(3) / 16, np.sqrt(11) / 8], rtol=0, atol=1e-15)
    record = Score.from_temporal(score)  # what the results store and the pages show
    assert (record.value, record.error, record.ceiling, record.raw) == pytest.approx(
        (5 / 24, 1 / (6 * np.sqrt(2)), 0.375, 0.25), abs=1e-15)
    np.testing.assert_allclose([(row["error"], row["ceiling_error"]) for row in record.per_bin],
                               [(np.sqrt(3) / 16, 0.01), (np.sqrt(11) / 8, 0.02)], rtol=0, atol=1e-15)
    # without a ceiling: the raw r's mean and standard error (split means 0.5, 0, 0.25, 0.25)
    raw = TemporalScore(r, np.array([70, 80]), np.array([80, 90]))
    assert raw.value == pytest.approx(0.25, abs=1e-15) and raw.error == pytest.approx(1 / (8 * np.sqrt(2)), abs=1e-15)


def test_raw_reported_beside_a_ceiled_score_is_over_the_bins_the_score_uses():
    """Three bins, the first with a ceiling below 0 (no reliable signal: the score leaves it out). Split-mean r
    (0.25, 0.30, 0.40), ceilings (-0.05, 0.4, 0.5): the score is (0.09 + 0.16) / 0.9 = 0.27778 over bins 2-3, so the
    raw r beside it is their mean, 0.35, not 0.31667 over all three; without a ceiling every bin counts (0.31667).
    With NaN in a scored bin's r that bin leaves both the score and the raw mean; no scored bin at all: both NaN."""
    from neurozoo.benchmarks.metrics.ceiling import Ceiling
    from neurozoo.benchmarks.metrics.temporal import TemporalScore
    from neurozoo.benchmarks.score import Score

    r = np.array([[0.2, 0.28, 0.35], [0.3, 0.32, 0.45]])
    start, end = np.array([70, 80, 90]), np.array([80, 90, 100])
    ceiling = Ceiling(np.array([-0.05, 0.4, 0.5]), np.full((2, 3), np.nan), np.zeros(3))
    score = TemporalScore(r, start, end, ceiling=ceiling)
    assert score.value == pytest.approx(0.25 / 0.9, abs=1e-15)
    assert score.raw == pytest.approx(0.35, abs=1e-15)
    assert Score.from_temporal(score).raw == pytest.approx(0.35, abs=1e-15)  # what records and pages show
    assert TemporalScore(r, start, end).raw == pytest.approx(0.95 / 3, abs=1e-15)
    gap = r.copy()
    gap[:, 2] = np.nan
    partial = TemporalScore(gap, start, end, ceiling=ceiling)
    assert partial.value == pytest.approx(0.09 / 0.4, abs=1e-15) and partial.raw == pytest.approx(0.3, abs=1e-15)
    silent = TemporalScore(r, start, end, ceiling=Ceiling(np.array([-0.05, 0.0, np.nan]), np.zeros((2, 3)), np.zeros(3)))
    assert np.isnan(silent.value) and np.isnan(silent.raw)


def _unordered_recording(feature_noise=0.5, scale=1.0, offset=0.0):
    """A small recording whose presentations come in no particular order (Brain-Score's average_repetition sorts
    them by its presentation coordinates, stimulus_id first here), and 30 features mixing its clean responses
    (``scale * (mix + noise) + offset``), in another order."""
    assembly, clean = synthetic_assembly(n_stimuli=120, n_neuroids=6, n_bins=3, n_repetitions=3, noise=1.0,
                                         latent=5, seed=11)
    order = np.random.default_rng(0).permutation(assembly.sizes["presentation"])
    assembly = assembly.isel(presentation=order)
    rng = np.random.default_rng(1)
    mixed = scale * (np.einsum("pnt,nf->pft", clean.values, rng.normal(size=(6, 30)))
                     + feature_noise * rng.normal(size=(120, 30, 3))) + offset
    features = clean.isel(neuroid=0, drop=True).expand_dims(neuroid=30).transpose("presentation", "neuroid", "time_bin")
    features = features.copy(data=mixed).drop_vars([c for c in ("neuroid_id", "region") if c in features.coords])
    # the features in an order of their own too: both sides align them on stimulus_id, not on position
    return features.isel(presentation=np.random.default_rng(2).permutation(features.sizes["presentation"])), assembly


def test_span_time_pls_equals_brainscores_pipeline():
    """regression_score (span-time PLS) against brain-score/vision's own steps."""
    features, assembly = _unordered_recording()
    score = regression_score(features, assembly)
    expected, error = span_time(
        features, assembly, lambda: PLSRegression(n_components=25, scale=False, tol=1e-14, max_iter=100000))
    np.testing.assert_allclose(score.raw_per_bin, expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(score.error_per_bin, error, rtol=1e-4, atol=1e-7)
    assert 0.3 < expected.min()  # the features carry signal: a wrong split or alignment would show


def test_per_bin_pls_equals_brainscores_per_time_regression():
    """regression_score(temporal="per_bin") against brain-score/vision's ``PerTimeRegression`` (one PLS per time bin;
    tests/brainscore_reference.py ``span_time(..., per_time=True)``, written from metric_helpers/temporal.py at 0f8fee4,
    lines 101-119). The features' code flips sign in the last bin, so a mapping shared over the bins (span time) or
    fitted on another bin cannot reach these numbers."""
    features, assembly = _unordered_recording()
    features = features.copy(data=features.values * np.array([1.0, 1.0, -1.0]))
    score = regression_score(features, assembly, temporal="per_bin")
    make = lambda: PLSRegression(n_components=25, scale=False, tol=1e-14, max_iter=100000)  # noqa: E731
    expected, error = span_time(features, assembly, make, per_time=True)
    np.testing.assert_allclose(score.raw_per_bin, expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(score.error_per_bin, error, rtol=1e-4, atol=1e-7)
    assert 0.3 < expected.min()  # every bin, the flipped one too, is predicted by its own fit
    assert span_time(features, assembly, make)[0][-1] < expected[-1] - 0.3  # the shared fit misses the flipped bin


def test_the_splits_order_stimuli_by_stimulus_id_where_brainscore_orders_them_by_the_first_coordinate():
    """Named deviation (README): Brain-Score's ``average_repetition`` orders the repeat-averaged stimuli by the tuple of
    every presentation coordinate but repetition, in the assembly's coordinate order (tests/brainscore_reference.py
    ``average_repetition``), and its StratifiedShuffleSplit draws the folds over that order; ours sorts by stimulus_id
    whatever the coordinate order. The folds agree where stimulus_id is the first presentation coordinate (our
    writer's and converters' files), and where object_name alone precedes it (the stratified splitter draws within
    each object, whose stimuli keep their id order); a per-stimulus coordinate that reorders stimuli within an object
    (here a shuffled ``image_index``) ahead of stimulus_id gives Brain-Score other folds."""
    features, assembly = _unordered_recording()
    make = lambda: PLSRegression(n_components=25, scale=False, tol=1e-14, max_iter=100000)  # noqa: E731
    ids = assembly["stimulus_id"].values
    unique = np.unique(ids)
    shuffled = dict(zip(unique, np.random.default_rng(5).permutation(len(unique))))

    def first(*names, extra=None):
        extra = extra or {}
        coords = {name: extra[name] if name in extra else assembly[name] for name in names}
        coords |= {name: values for name, values in assembly.coords.items() if name not in coords}
        return xr.DataArray(assembly.values, dims=assembly.dims, coords=coords)

    object_first = first("object_name", "stimulus_id")
    image_index = ("presentation", [shuffled[i] for i in ids])  # a per-stimulus number, not in id order
    index_first = first("image_index", "stimulus_id", extra={"image_index": image_index})
    assert list(brainscore_average_repetition(assembly)["stimulus_id"].values) == list(unique)
    assert list(brainscore_average_repetition(object_first)["stimulus_id"].values) != list(unique)  # by object first
    stimulus_first = span_time(features, assembly, make)[0]
    ours = regression_score(features, index_first).raw_per_bin
    np.testing.assert_array_equal(ours, regression_score(features, assembly).raw_per_bin)  # ours: same either way
    np.testing.assert_allclose(ours, stimulus_first, rtol=0, atol=1e-6)
    np.testing.assert_allclose(span_time(features, object_first, make)[0], stimulus_first, rtol=0, atol=1e-12)
    assert np.abs(span_time(features, index_first, make)[0] - stimulus_first).max() > 1e-3  # other folds there


def _with_presentation_coords(assembly, **columns):
    """``assembly`` with more presentation coordinates, each from a function of (stimulus index, repetition)."""
    index = np.unique(assembly["stimulus_id"].values, return_inverse=True)[1]
    repetition = assembly["repetition"].values
    return assembly.assign_coords({name: ("presentation", np.array([make(i, r) for i, r in zip(index, repetition)]))
                                   for name, make in columns.items()})


def test_repetitions_are_averaged_over_the_groups_of_brainscores_average_repetition():
    """Brain-Score's ``average_repetition`` groups the presentations by every presentation coordinate but
    'repetition' (brain-score/vision benchmark_helpers/neural_common.py lines 57-61 at a0ac86f; brainio's
    ``multi_groupby``, brainio/assemblies.py lines 68-75 at 064b0d4; tests/brainscore_reference.py
    ``average_repetition`` is written from them) and keeps those coordinates. Per-stimulus coordinates (a stimulus
    set's columns) give the same groups as stimulus_id: the means are the reference's, and the target keeps them
    (until 2026-12-05 only object_name was kept). A per-trial coordinate (a recording session) splits a stimulus
    into several groups there, each scored against the model's one response: it was averaged over here without a
    word, another score than Brain-Score's; it is refused, naming it."""
    from neurozoo.benchmarks.metrics.assembly import average_repetitions

    assembly, clean = synthetic_assembly(n_stimuli=30, n_neuroids=4, n_bins=2, n_repetitions=4, n_objects=3, seed=3)
    per_stimulus = _with_presentation_coords(assembly, category=lambda i, r: f"c{i % 2}", size=lambda i, r: 1.5 * i)
    ours, reference = average_repetitions(per_stimulus), brainscore_average_repetition(per_stimulus)
    reference = reference.isel(presentation=np.argsort(reference["stimulus_id"].values, kind="stable"))
    assert ours.sizes == reference.sizes == {"presentation": 30, "neuroid": 4, "time_bin": 2}
    np.testing.assert_allclose(ours.values, reference.values, rtol=0, atol=1e-12)
    for name in ("stimulus_id", "object_name", "category", "size", "neuroid_id", "region", "time_bin_start"):
        np.testing.assert_array_equal(ours[name].values, reference[name].values)
    assert "repetition" not in ours.coords
    np.testing.assert_array_equal(average_repetitions(assembly).values, ours.values)  # the numbers of before
    from neurozoo.datasets.assembly import set_brainscore_indexes

    indexed = average_repetitions(set_brainscore_indexes(per_stimulus))  # levels, not the index's (id, ..., rep) tuples
    np.testing.assert_array_equal(indexed.values, ours.values)
    np.testing.assert_array_equal(indexed["category"].values, ours["category"].values)

    per_trial = _with_presentation_coords(assembly, session=lambda i, r: f"day{r // 2}")  # repeats 0-1 and 2-3
    assert brainscore_average_repetition(per_trial).sizes["presentation"] == 60  # each stimulus twice there
    with pytest.raises(DataError, match=r"^assembly: coordinate 'session' along 'presentation' varies among the "
                                        r"presentations of 30 stimuli, e\.g\. stimulus_id 's00000': 2 values over its 4 "
                                        r"presentations \('day0', 'day1'\)\. Brain-Score's average_repetition averages "
                                        r"over 'repetition' only .* drop it \(assembly\.drop_vars\('session'\)\); if "
                                        r"it numbers the trials, store it as 'repetition'$"):
        average_repetitions(per_trial)
    features = as_features(clean.values + 0.5 * np.random.default_rng(0).standard_normal(clean.shape), clean)
    with pytest.raises(DataError, match=r"coordinate 'session' along 'presentation' varies"):
        regression_score(features, per_trial)
    dropped = regression_score(features, per_trial.drop_vars("session")).raw_per_bin  # the way out it names
    np.testing.assert_array_equal(dropped, regression_score(features, assembly).raw_per_bin)


def test_a_nan_in_a_grouping_coordinate_is_refused_where_brainscore_keeps_each_such_presentation_apart():
    """A NaN equals nothing in the keys Brain-Score groups repetitions by (brain-score/brainio brainio/assemblies.py
    lines 83-85 at 064b0d4, ``MultiCoord.__eq__``; the same lines 115-117 of brainscore_core 2.5.0's
    supported_data_standards/brainio/assemblies.py, run with its pinned xarray 2022.3 / pandas 1.5 and with ours):
    each presentation with a NaN in a presentation coordinate but 'repetition' is a group of its own, here one
    stimulus of 4 repeats 4 rows. Until 2026-12-05 the NaN was one value here and the stimulus one row, another
    target than Brain-Score's; refused, naming the file, the coordinate and the count, by the score and the ceiling."""
    from neurozoo.benchmarks.metrics.assembly import average_repetitions

    assembly, _ = synthetic_assembly(n_stimuli=30, n_neuroids=4, n_bins=1, n_repetitions=4, n_objects=3, seed=3)
    depth = _with_presentation_coords(assembly, depth=lambda i, r: np.nan if i in (2, 7) else float(i))
    depth.attrs["source_file"] = "/data/depth.nc"
    assert brainscore_average_repetition(depth).sizes["presentation"] == 28 + 2 * 4  # each NaN presentation apart
    message = (r"^/data/depth\.nc: coordinate 'depth' along 'presentation' is NaN \(missing\) at 8 of 120 "
               r"presentations, of 2 stimuli \(e\.g\. stimulus_id 's00002'\)\. Brain-Score's average_repetition .* "
               r"a NaN equals nothing there: each such presentation stays a group of its own, .* drop the coordinate "
               r"\(assembly\.drop_vars\('depth'\)\)$")
    with pytest.raises(DataError, match=message):
        average_repetitions(depth)
    with pytest.raises(DataError, match=message):
        internal_consistency(depth)
    label = np.array([f"l{i}" for i in assembly["stimulus_id"].values], dtype=object)
    label[30 + 5] = None  # repeat 1 of stimulus 5: brainio's index makes None a NaN, a group of its own
    labels = assembly.assign_coords(label=("presentation", label))
    with pytest.raises(DataError, match=r"^assembly: coordinate 'label' along 'presentation' is NaN \(missing\) at 1 of "
                                        r"120 presentations, of 1 stimuli \(e\.g\. stimulus_id 's00005'\)"):
        average_repetitions(labels)
    filled = depth.assign_coords(depth=("presentation", np.nan_to_num(depth["depth"].values, nan=-1.0)))
    np.testing.assert_array_equal(average_repetitions(filled).values, average_repetitions(assembly).values)


def test_a_text_coordinates_nan_written_to_netcdf_reads_back_as_empty_text_a_value(tmp_path):
    """README: the NaN refusal holds for a number coordinate or one built in memory. xarray writes a text
    coordinate's None (or NaN) to netCDF as "", which is read back as a value (as Brain-Score reads it): a stimulus
    with "" in some presentations is refused as a coordinate that varies among them, one with "" in all keeps it."""
    from neurozoo.benchmarks.metrics.assembly import average_repetitions
    from neurozoo.datasets.assembly import load_assembly

    assembly, _ = synthetic_assembly(n_stimuli=30, n_neuroids=4, n_bins=1, n_repetitions=4, n_objects=3, seed=3)
    label = np.array([f"l{i}" for i in assembly["stimulus_id"].values], dtype=object)
    ids = assembly["stimulus_id"].values
    label[ids == ids[2]] = None  # every presentation of one stimulus
    label[np.flatnonzero(ids == ids[5])[1]] = np.nan  # one repeat of another
    path = tmp_path / "labels.nc"
    assembly.assign_coords(label=("presentation", label)).to_netcdf(path)
    read = load_assembly(path)
    assert sorted(set(read["label"].values[ids == ids[2]])) == [""]
    with pytest.raises(DataError, match=rf"labels\.nc: coordinate 'label' along 'presentation' varies among the "
                                        rf"presentations of 1 stimuli, e\.g\. stimulus_id '{ids[5]}': 2 values over "
                                        rf"its 4 presentations \('l{ids[5]}', ''\)"):
        average_repetitions(read)
    kept = read.where(read["stimulus_id"] != ids[5], drop=True)
    means = average_repetitions(kept)
    assert means.sizes["presentation"] == 29
    assert list(means["label"].values[means["stimulus_id"].values == ids[2]]) == [""]


def test_an_assembly_whose_every_neuroid_misses_a_stimulus_is_refused_naming_its_file():
    """No neuroid with a mean for every stimulus leaves nothing to regress: the score and the ceiling refuse it, the
    message beginning with the file as every other refusal of an assembly does (``assembly_name``; it began
    "assembly:" until 2026-12-05)."""
    assembly, clean = synthetic_assembly(n_stimuli=30, n_neuroids=4, n_bins=2, n_repetitions=4, n_objects=3, seed=3)
    index = np.unique(assembly["stimulus_id"].values, return_inverse=True)[1]
    values = assembly.values.copy()
    for neuroid, stimuli in enumerate(([0], [1, 2], [3], [4, 5, 6])):  # every repeat of those stimuli, one bin
        values[np.isin(index, stimuli), neuroid, 1] = np.nan
    gaps = assembly.copy(data=values)
    gaps.attrs.update(source_file="/data/gaps.nc", stimulus_set_identifier="toy")
    features = as_features(np.random.default_rng(0).standard_normal((30, 6, 2)), clean)
    message = (r"^toy \(/data/gaps\.nc\): every neuroid \(4\) misses responses to some stimulus \(NaN after averaging "
               r"repetitions; the fewest missed by one neuroid: 1 of 30 stimuli\); expected at least one neuroid with a "
               r"response to every stimulus in every time bin$")
    with pytest.raises(DataError, match=message):
        regression_score(features, gaps)
    with pytest.raises(DataError, match=message):
        internal_consistency(gaps)


def _sparse_unit(assembly, unit=0, time_bin=0, firing=5):
    """The recording with one unit silent in one bin on all but ``firing`` stimuli (every repeat): many splits' test
    stimuli (12 of 120) then hold none of those, and the unit is constant (0) over them there."""
    ids = np.unique(assembly["stimulus_id"].values)
    values = assembly.values.copy()
    silent = ~np.isin(assembly["stimulus_id"].values, ids[:firing])
    values[silent, unit, time_bin] = 0.0
    return assembly.copy(data=values)


def test_a_unit_silent_over_a_splits_test_stimuli_is_dropped_as_brainscore_drops_it_or_counted_as_zero():
    """``silent="drop"``: a unit constant over a split's test stimuli (no r) leaves that split's median over neuroids,
    as scipy's NaN leaves Brain-Score's (brainscore_reference.span_time, written from metric.py at 0197a60);
    ``silent="zero"`` (default) counts it as r = 0 there, which lowers the median of that bin, and only of that bin."""
    features, assembly = _unordered_recording()
    assembly = _sparse_unit(assembly)
    expected, error = span_time(features, assembly,
                                lambda: PLSRegression(n_components=25, scale=False, tol=1e-14, max_iter=100000))
    dropped = regression_score(features, assembly, silent="drop")
    np.testing.assert_allclose(dropped.raw_per_bin, expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(dropped.error_per_bin, error, rtol=1e-4, atol=1e-7)
    assert dropped.settings["silent"] == "drop"
    counted = regression_score(features, assembly)
    assert "silent" not in counted.settings  # the default leaves the settings as they were
    np.testing.assert_allclose(counted.raw_per_bin[1:], expected[1:], rtol=0, atol=1e-6)  # the unit fires there
    assert expected[0] - counted.raw_per_bin[0] > 0.005  # the zeros pull bin 0's median down (by 0.012)
    with pytest.raises(ValueError, match="silent='nan'"):
        regression_score(features, assembly, silent="nan")


def test_a_split_without_an_r_in_a_bin_is_left_out_of_that_bins_mean_as_brainscores_split_aggregate_does():
    """With ``silent="drop"`` a split whose test stimuli silence every neuroid in a bin has no median r there (NaN);
    Brain-Score's ``Split.aggregate`` (metric_helpers/transformations.py at 0971191, lines 211-216: xarray's mean
    over splits, skipna) averages the other splits, so the bin keeps its score."""
    import xarray as xr

    from neurozoo.benchmarks.metrics.temporal import TemporalScore

    per_split = np.array([[0.5, 0.2], [np.nan, 0.4], [0.3, np.nan], [0.4, 0.6]])
    score = TemporalScore(per_split, np.array([70, 80]), np.array([80, 90]))
    brainscore = xr.DataArray(per_split, dims=("split", "time_bin")).mean("split").values
    np.testing.assert_allclose(score.raw_per_bin, brainscore, rtol=0, atol=1e-15)
    np.testing.assert_allclose(score.raw_per_bin, [0.4, 0.4], rtol=0, atol=1e-15)
    assert np.isnan(TemporalScore(np.full((3, 1), np.nan), np.array([70]), np.array([80])).raw_per_bin[0])


def test_normalised_per_bin_scores_equal_brainscores_explained_variance_of_its_own_r_and_ceiling():
    """The whole per-bin number of a Brain-Score temporal benchmark (NeuralBenchmark.__call__: span-time PLS, the
    temporal internal-consistency ceiling of the repetitions, explained_variance bin by bin), each step from the
    references in brainscore_reference (written from brain-score/vision): ``convention="pre-2026"`` is
    ``(r / c)**2`` of neural_common.py at 0117fef, the default ``r**2 / c`` of pull request #2169, with
    ``silent="drop"`` on both sides. r > 0 in every bin here, so our keeping of r's sign does not show."""
    features, assembly = _unordered_recording()
    assembly = _sparse_unit(assembly, unit=2, time_bin=1)
    r, _ = span_time(features, assembly, lambda: PLSRegression(n_components=25, scale=False, tol=1e-14, max_iter=100000))
    ceiling = ceiling_splits(assembly).mean(0)
    assert (r > 0.3).all() and (ceiling > 0.2).all()
    ours = internal_consistency(assembly, silent="drop")
    for convention in ("r2/ceiling", "pre-2026"):
        score = regression_score(features, assembly, ceiling=ours, convention=convention, silent="drop")
        np.testing.assert_allclose(score.per_bin, explained_variance(r, ceiling, convention), rtol=1e-5, atol=0)
    # a planted mix-up of the two conventions moves every bin by far more than the tolerance
    assert np.abs(explained_variance(r, ceiling) - explained_variance(r, ceiling, "pre-2026")).min() > 0.05


def test_span_time_ridge_equals_brainscores_spantime_ridge():
    """mapping="ridge" is Brain-Score's 'spantime_ridge' (metric.py at 0197a60 ``ridge_regression``, lines 120-126:
    ``Ridge(alpha=1)``, intercept fitted, features unscaled), through the same pipeline as the PLS above. The features
    are small (scale 0.05) and noisy (sd 3), so that the penalty of 1 matters, and offset from 0: another alpha or a
    missing intercept moves the per-bin r by more than 1e-3 here (checked below)."""
    from sklearn.linear_model import Ridge

    features, assembly = _unordered_recording(feature_noise=3.0, scale=0.05, offset=2.0)
    score = regression_score(features, assembly, mapping="ridge")
    expected, error = span_time(features, assembly, lambda: Ridge(alpha=1))
    np.testing.assert_allclose(score.raw_per_bin, expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(score.error_per_bin, error, rtol=1e-7, atol=1e-10)
    assert score.settings["mapping"] == "ridge"
    for other in (lambda: Ridge(alpha=10), lambda: Ridge(alpha=1, fit_intercept=False)):
        assert np.abs(span_time(features, assembly, other)[0] - expected).max() > 1e-3


def test_ridgecv_option_searches_brainscores_alpha_list():
    """mapping="ridgecv": per fold, sklearn's leave-one-out ``RidgeCV`` over Brain-Score's ``ALPHA_LIST`` (metric.py at
    0197a60 lines 128-136, written out here: 0.01, 0.1, 0.5, 1, then 10-100 in 4, 100-1e3, 1e3-1e4, 1e4-1e5 and
    1e5-1e6 in 18 equal steps each, 1e6-1e7 in 19 with the end point: 99 values)."""
    from sklearn.linear_model import RidgeCV

    alphas = [0.01, 0.1, 0.5, 1.0]
    for lo, n, last in ((1e1, 4, False), (1e2, 18, False), (1e3, 18, False), (1e4, 18, False), (1e5, 18, False),
                        (1e6, 19, True)):
        alphas += list(np.linspace(lo, 10 * lo, n, endpoint=last))
    assert len(alphas) == 99
    features, assembly = _unordered_recording(feature_noise=3.0, scale=0.05, offset=2.0)
    score = regression_score(features, assembly, mapping="ridgecv")
    expected, _ = span_time(features, assembly, lambda: RidgeCV(alphas=alphas))
    np.testing.assert_allclose(score.raw_per_bin, expected, rtol=0, atol=1e-9)
    with pytest.raises(ValueError, match="'pls', 'ridge', 'ridgecv'"):
        regression_score(features, assembly, mapping="lasso")


@pytest.mark.parametrize("mapping", ["pls", "ridge"])
def test_noisy_linear_transform_gives_analytic_r(synthetic, mapping):
    """features = (signal + N(0, tau^2)) A, A invertible: best prediction of neuroid i is
    (signal_i + noise_i) / (1 + tau^2), whose r with the repetition-averaged data is
    sqrt(1/(1+tau^2)) * sqrt(1/(1+sigma^2/R))."""
    assembly, clean = synthetic
    tau = 0.75
    rng = np.random.default_rng(1)
    noisy = clean.values + tau * rng.standard_normal(clean.shape)
    mixed = np.einsum("snt,nf->sft", noisy, rng.normal(size=(16, 16)))
    score = regression_score(as_features(mixed, clean), assembly, mapping=mapping)
    expected = np.sqrt(1 / (1 + tau ** 2)) * np.sqrt(expected_ceiling(NOISE, REPS))
    assert abs(score.raw - expected) < 0.03, (score.raw, expected)


def test_per_bin_mapping_fits_time_varying_code_span_time_cannot(synthetic):
    """The feature code flips sign in the last bin: one shared mapping cannot follow, one per bin can."""
    assembly, clean = synthetic
    values = clean.values.copy()
    values[:, :, -1] *= -1
    features = as_features(values, clean)
    per_bin = regression_score(features, assembly, temporal="per_bin")
    span = regression_score(features, assembly, temporal="span")
    c = np.sqrt(expected_ceiling(NOISE, REPS))
    np.testing.assert_allclose(per_bin.raw_per_bin, c, atol=0.04)
    assert span.raw_per_bin[-1] < 0  # the shared mapping fits the majority (unflipped) bins
    assert span.raw < per_bin.raw - 0.2


def test_static_features_broadcast_over_bins(synthetic):
    assembly, clean = synthetic
    static = as_features(clean.values[:, :, :1], clean)
    score = regression_score(static, assembly)
    assert score.raw_per_bin[0] > 0.7 and abs(score.raw_per_bin[1]) < 0.1  # bins carry independent signal


def test_one_recorded_bin_is_not_broadcast_over_other_bins(synthetic):
    """A model recorded at one window, [70, 170), scored against a target's several bins was broadcast as if static:
    one step's features scored as every bin's response. Only a bin that is one of the target's, or none, is."""
    from neurozoo.datasets.errors import DataError

    assembly, clean = synthetic
    static = as_features(clean.values[:, :, :1], clean)
    start, end = int(clean["time_bin_start"][0]), int(clean["time_bin_end"][-1])
    spanning = static.assign_coords(time_bin_start=("time_bin", [start]), time_bin_end=("time_bin", [end]))
    with pytest.raises(DataError, match=rf"time bins \[{start}, {end}\) ms do not include the target's bin .*"
                                        "record the model at the target's bins.*static model"):
        regression_score(spanning, assembly)
    unlabelled = static.drop_vars(["time_bin_start", "time_bin_end"])
    second = static.assign_coords(time_bin_start=clean["time_bin_start"][1:2], time_bin_end=clean["time_bin_end"][1:2])
    expected = regression_score(static, assembly).raw_per_bin
    for features in (unlabelled, second):
        np.testing.assert_array_equal(regression_score(features, assembly).raw_per_bin, expected)


def test_missing_stimuli_raise_clear_error(synthetic):
    from neurozoo.datasets.errors import DataError

    assembly, clean = synthetic
    with pytest.raises(DataError, match="stimulus_id"):
        regression_score(clean.isel(presentation=slice(0, 100)), assembly)


def test_decoding_accuracy_matches_bayes_optimal():
    """Two Gaussian classes (identity covariance) at distance d: nearest-mean is Bayes-optimal, Phi(d/2); noise is at chance."""
    import xarray as xr
    from scipy.stats import norm

    from neurozoo.benchmarks.metrics.decoding import decoding_time_course

    rng = np.random.default_rng(0)
    n, neuroids, d = 1200, 10, 1.5
    labels = np.repeat(["a", "b"], n // 2)
    direction = rng.standard_normal(neuroids)
    direction *= d / np.linalg.norm(direction)
    values = rng.standard_normal((n, neuroids, 2))
    values[labels == "b", :, 0] += direction  # bin 0 carries the object, bin 1 does not
    assembly = xr.DataArray(values, dims=("presentation", "neuroid", "time_bin"), coords={
        "stimulus_id": ("presentation", np.arange(n).astype(str)), "object_name": ("presentation", labels),
        "time_bin_start": ("time_bin", [70, 80]), "time_bin_end": ("time_bin", [80, 90])})
    course = decoding_time_course(assembly, decoder="nearest_mean")
    assert abs(course.accuracy[0] - norm.cdf(d / 2)) < 0.03
    assert abs(course.accuracy[1] - 0.5) < 0.04 and course.chance == 0.5
    assert course.per_split.shape == (10, 2) and np.all(course.error < 0.02)
    correlation = decoding_time_course(assembly)  # Meyers' max-correlation decoder: above chance, below optimal
    assert 0.6 < correlation.accuracy[0] <= norm.cdf(d / 2) + 0.02 and abs(correlation.accuracy[1] - 0.5) < 0.04


@pytest.mark.parametrize("decoder", ["max_correlation", "nearest_mean"])
def test_decoding_a_missing_trial_carries_no_information(decoder):
    """A pseudo-population misses a few units' trials (NaN): those entries must not decode. Here the classes differ
    only in which trials are missing; read as 0 spikes (the old ``nan_to_num`` of the counts) class b's gaps gave it
    away (accuracy 0.71 and 0.74); imputed at the training mean, decoding stays at chance."""
    import xarray as xr

    from neurozoo.benchmarks.metrics.decoding import decoding_time_course

    rng = np.random.default_rng(1)
    n, neuroids = 1200, 10
    labels = np.repeat(["a", "b"], n // 2)
    values = 5.0 + rng.standard_normal((n, neuroids, 1))
    values[(labels == "b") & (rng.random(n) < 0.5), :3, :] = np.nan
    assembly = xr.DataArray(values, dims=("presentation", "neuroid", "time_bin"), coords={
        "stimulus_id": ("presentation", np.arange(n).astype(str)), "object_name": ("presentation", labels)})
    course = decoding_time_course(assembly, decoder=decoder)
    assert abs(course.accuracy[0] - 0.5) < 0.04


def test_decoding_chance_is_the_largest_class_fraction_not_one_over_the_classes():
    """Three objects shown 600, 300 and 300 times: chance is 0.5 (always guessing the commonest), as the module
    documents, not 1/3; every test until now had balanced classes, where the two agree."""
    import xarray as xr

    from neurozoo.benchmarks.metrics.decoding import decoding_time_course

    labels = np.repeat(["a", "b", "c"], [600, 300, 300])
    values = np.random.default_rng(2).standard_normal((1200, 6, 1))
    assembly = xr.DataArray(values, dims=("presentation", "neuroid", "time_bin"), coords={
        "stimulus_id": ("presentation", np.arange(1200).astype(str)), "object_name": ("presentation", labels)})
    course = decoding_time_course(assembly, decoder="nearest_mean", n_splits=2)
    assert course.chance == 0.5


@pytest.mark.parametrize("mapping, message", [
    ("ridge", "alphas: mapping 'ridge' (Brain-Score's Ridge(alpha=1)) does not use them; mapping 'ridgecv' searches alphas"),
    ("pls", "alphas: mapping 'pls' does not use them; mapping 'ridgecv' searches alphas"),
])
def test_alphas_with_a_mapping_that_does_not_search_them_is_refused(mapping, message):
    """fit_predict_folds('ridge', alphas=...) fitted Ridge(alpha=1) and dropped the alphas without a word: a caller
    who meant a penalty search got another fit reported as it. 'ridgecv' takes them (a one-alpha tuple is that
    alpha's ridge; sklearn's RidgeCV failed on one with a TypeError)."""
    from sklearn.linear_model import Ridge

    from neurozoo.benchmarks.metrics.regression import fit_predict_folds
    from neurozoo.datasets.errors import SpecError

    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(40, 6, 1)), rng.normal(size=(40, 3, 1))
    splits = [(np.arange(30), np.arange(30, 40))]
    with pytest.raises(SpecError) as info:
        fit_predict_folds(mapping, X, Y, splits, alphas=(10.0,))
    assert str(info.value) == message
    [predicted] = fit_predict_folds("ridgecv", X, Y, splits, alphas=(10.0,))
    expected = Ridge(alpha=10.0).fit(X[:30, :, 0], Y[:30, :, 0]).predict(X[30:, :, 0])
    np.testing.assert_allclose(predicted[:, :, 0], expected, atol=1e-10)


@pytest.mark.parametrize("mapping, message", [
    ("ridge", "n_components: mapping 'ridge' (Brain-Score's Ridge(alpha=1)) does not use them; mapping 'pls' fits "
              "n_components"),
    ("ridgecv", "n_components: mapping 'ridgecv' does not use them; mapping 'pls' fits n_components"),
])
def test_n_components_with_a_mapping_that_does_not_fit_them_is_refused(mapping, message):
    """fit_predict_folds('ridge', n_components=...) fitted ridge and dropped the number without a word (its default
    was PLS's 25, so no caller could tell a request from the default). It is None now, PLS's default Brain-Score's 25,
    and a ridge mapping refuses one, as it refuses alphas; regression_score records the components PLS fitted and
    none for ridge."""
    from neurozoo.benchmarks.metrics.regression import BRAINSCORE_PLS_COMPONENTS, fit_predict_folds
    from neurozoo.datasets.errors import SpecError

    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(60, 30, 1)), rng.normal(size=(60, 3, 1))
    splits = [(np.arange(50), np.arange(50, 60))]
    with pytest.raises(SpecError) as info:
        fit_predict_folds(mapping, X, Y, splits, n_components=10)
    assert str(info.value) == message
    assert BRAINSCORE_PLS_COMPONENTS == 25
    [default] = fit_predict_folds("pls", X, Y, splits)
    np.testing.assert_array_equal(default, pls_fit_predict_folds(X, Y, splits, n_components=25)[0])
    [three] = fit_predict_folds("pls", X, Y, splits, n_components=3)
    np.testing.assert_array_equal(three, pls_fit_predict_folds(X, Y, splits, n_components=3)[0])
    assert np.abs(three - default).max() > 1e-3
    features, assembly = _unordered_recording(feature_noise=3.0, scale=0.05, offset=2.0)
    assert regression_score(features, assembly, mapping=mapping).settings["n_components"] is None
    assert regression_score(features, assembly).settings["n_components"] == 25
    with pytest.raises(SpecError, match="n_components: mapping"):
        regression_score(features, assembly, mapping=mapping, n_components=25)


def test_the_components_recorded_are_those_fitted_when_there_are_fewer_features():
    """PLS fits at most one component per feature (FastPLS clips 25 to the feature count): a score on 10 features
    recorded n_components 25, which it never fitted. The record holds the number fitted, and the one asked for
    beside it where they differ."""
    from neurozoo.benchmarks.score import Score

    features, assembly = _unordered_recording()
    few = features.isel(neuroid=slice(0, 10))
    score = regression_score(few, assembly)
    assert score.settings["n_components"] == 10 and score.settings["n_components_requested"] == 25
    np.testing.assert_array_equal(score.raw_per_split, regression_score(few, assembly, n_components=10).raw_per_split)
    assert Score.from_temporal(score).provenance["settings"]["n_components"] == 10
    assert "n_components_requested" not in regression_score(few, assembly, n_components=10).settings
    assert "n_components_requested" not in regression_score(features, assembly).settings  # 30 features: 25 fitted
    assert regression_score(few, assembly, n_components=4).settings["n_components"] == 4


@pytest.mark.parametrize("mapping", ["pls", "ridge"])
def test_features_with_nan_or_inf_are_named_not_scored(synthetic, mapping):
    """A model whose activations overflowed on some images: PLS scored NaN without a word (and the layer selection
    passed the layer over for another), ridge raised scikit-learn's 'Input X contains NaN'. Now the features are
    refused, naming the layer, how many values and which stimuli."""
    from neurozoo.datasets.errors import DataError

    assembly, clean = synthetic
    values = clean.values.copy()
    values[7, 3, 1], values[9, 0, 0] = np.nan, np.inf
    features = clean.copy(data=values).assign_coords(layer=("neuroid", ["conv5"] * clean.sizes["neuroid"]))
    ids = clean["stimulus_id"].values
    with pytest.raises(DataError, match=rf"^features of layer conv5: 2 NaN/inf values, in 2 of 400 stimuli \(e\.g\. "
                                        rf"stimulus_id \['{ids[7]}', '{ids[9]}'\]\); expected finite activations"):
        regression_score(features, assembly, mapping=mapping)


def test_features_whose_bins_start_alike_but_end_elsewhere_are_refused(synthetic):
    """Feature bins were matched on time_bin_start alone: features read in [70, 75), [80, 85), [90, 95) were
    regressed onto the data's [70, 80), [80, 90), [90, 100) without a word (a model's window silently not the
    recording's). Now bins match on start and end, and the error names both."""
    from neurozoo.datasets.errors import DataError

    assembly, clean = synthetic
    features = clean.assign_coords(time_bin_end=("time_bin", clean["time_bin_start"].values + 5))
    with pytest.raises(DataError, match=r"features: time bins \[70, 75\), \[80, 85\), \[90, 95\) ms do not include "
                                        r"the target's bin \[70, 80\) ms"):
        regression_score(features, assembly)
    reordered = clean.isel(time_bin=[2, 0, 1])  # the same bins in another order are still found
    # to rounding: the per-bin work runs in the features' bin order, and the float sums may round apart (1e-16 seen)
    assert regression_score(reordered, assembly).value == pytest.approx(regression_score(clean, assembly).value,
                                                                        rel=1e-12)


def test_a_missing_stimulus_is_named_as_plain_text(synthetic):
    from neurozoo.datasets.errors import DataError

    assembly, clean = synthetic
    first = str(clean["stimulus_id"].values[0])
    with pytest.raises(DataError, match=rf"no activations for 1 stimulus_id of the benchmark, e.g. \['{first}'\]$"):
        regression_score(clean.isel(presentation=slice(1, None)), assembly)


def test_one_object_per_stimulus_is_a_data_error_naming_object_name(synthetic):
    """A user without object labels who gave every stimulus its own object_name (the stimulus id) got sklearn's
    'The least populated class in y has only 1 member' traceback from inside the metric."""
    from neurozoo.datasets.errors import DataError

    assembly, clean = synthetic
    ids = assembly["stimulus_id"].values
    own = assembly.assign_coords(object_name=("presentation", ids))
    with pytest.raises(DataError, match=r"coordinate 'object_name' along 'presentation' gives 400 objects over 400 "
                                        r"stimuli \(fewest stimuli per object: 1.*one value for every stimulus"):
        regression_score(clean, own)



def test_too_few_stimuli_for_a_stratified_test_part_says_how_many_are_needed():
    """24 stimuli of 4 objects (6 each): each split tests 3 stimuli, fewer than the objects. The refusal said
    "expected several stimuli per object" of objects that have 6; it now says what is short and the count that
    splits (31: floor(0.9 * 31) = 27 train, 4 test), which sklearn's splitter then takes."""
    from neurozoo.benchmarks.metrics import brainscore_splits
    from neurozoo.datasets.errors import DataError

    objects = [f"o{i % 4}" for i in range(24)]
    with pytest.raises(DataError) as info:
        brainscore_splits(objects, name="my_v4.nc")
    assert str(info.value).endswith(
        "expected a train and a test part of at least one stimulus per object (4 objects; 24 stimuli give 21/3): 31 "
        "stimuli or more, or fewer objects, or one value for every stimulus (e.g. 'unlabelled') for plain shuffle "
        "splits"), str(info.value)
    assert "several stimuli per object" not in str(info.value)
    with pytest.raises(DataError, match="4 objects; 30 stimuli give 27/3"):
        brainscore_splits([f"o{i % 4}" for i in range(30)])
    assert len(brainscore_splits([f"o{i % 4}" for i in range(31)])) == 10
    with pytest.raises(DataError, match=r"expected at least 2 stimuli of every object, or one value"):
        brainscore_splits([f"o{i}" for i in range(40)])


# ---------------------------------------------------------------- bad inputs to the public metric API
@pytest.fixture(scope="module")
def small():
    """40 stimuli of 4 objects, 2 repetitions, 6 neuroids, 2 bins: every split tests 4 stimuli."""
    assembly, clean = synthetic_assembly(n_stimuli=40, n_neuroids=6, n_bins=2, n_repetitions=2, n_objects=4, seed=3)
    return assembly, clean


def _stimuli(assembly, n):
    ids = np.unique(assembly["stimulus_id"].values)[:n]
    return assembly.isel(presentation=np.flatnonzero(np.isin(assembly["stimulus_id"].values, ids)))


@pytest.mark.parametrize("change, message", [
    # an inf response was averaged away as a missing one (a score of the other repetitions, without a word)
    (lambda a, f: (a.where(a > -2.5, np.inf), f), r"^assembly: field 'data' has \d+ infinite values? \(e\.g\. stimulus_id "),
    # numpy's "could not convert string to float" from inside the repetition means
    (lambda a, f: (a.astype(str), f), r"^assembly: field 'data' holds <U\d+ values; expected numbers"),
    (lambda a, f: (a, f.astype(object)), r"^features: field 'data' holds object values; expected numbers"),
    # a ZeroDivisionError from the PLS blocks
    (lambda a, f: (a, f.isel(neuroid=[])), r"^features: field 'data' has shape \{'presentation': 40, 'neuroid': 0, "),
    # the last row of a repeated id was scored, the other one passed over
    (lambda a, f: (a, xr.concat([f, f.isel(presentation=[0])], "presentation")),
     r"^features: stimulus_id repeats, e\.g\. \['[^']+'\] \(41 presentations, 40 stimuli\)"),
])
def test_bad_assemblies_and_features_are_refused_naming_the_field(small, change, message):
    from neurozoo.datasets.errors import DataError

    assembly, features = change(*small)
    with pytest.raises(DataError, match=message):
        regression_score(features, assembly)


@pytest.mark.parametrize("n_stimuli, tested", [(5, 1), (20, 2)])
def test_too_few_test_stimuli_for_a_correlation_are_refused(small, n_stimuli, tested):
    """A split testing 1 stimulus scored r = 0 (undefined) and one testing 2 a median of +-1, whatever the features:
    a number out of nothing. 21 stimuli are the fewest whose 90/10 splits test 3."""
    from neurozoo.datasets.errors import DataError

    assembly, features = (_stimuli(array, n_stimuli) for array in small)
    assembly = assembly.assign_coords(object_name=("presentation", ["one"] * assembly.sizes["presentation"]))
    with pytest.raises(DataError, match=rf"^assembly: {n_stimuli} stimuli; a split tests {tested} of them, and a "
                                        r"Pearson r over fewer than 3 stimuli measures nothing"):
        regression_score(features, assembly)
    many = _stimuli(small[0], 21).assign_coords(object_name=("presentation", ["one"] * 42))
    assert np.isfinite(regression_score(_stimuli(small[1], 21), many).raw)


def test_the_metrics_refusals_of_an_assembly_read_from_a_file_name_the_file(small, tmp_path):
    """The split (regression), the temporal score and the decoder refused an assembly read with ``load_assembly`` as
    "assembly: ...", naming no file; they name it as the ceiling does (``assembly_name``), the rest of each message
    kept."""
    from neurozoo.benchmarks.metrics.decoding import decoding_time_course
    from neurozoo.datasets.assembly import load_assembly, write_assembly

    assembly, features = small
    ids = assembly["stimulus_id"].values
    own = load_assembly(write_assembly(assembly.assign_coords(object_name=("presentation", ids)), tmp_path / "own.nc"))
    with pytest.raises(DataError, match=rf"^{re.escape(str(tmp_path / 'own.nc'))}: coordinate 'object_name' along "
                                        r"'presentation' gives 40 objects over 40 stimuli \(fewest stimuli per "):
        regression_score(features, own)  # regression.brainscore_splits
    few = _stimuli(assembly, 5)
    few = few.assign_coords(object_name=("presentation", ["one"] * few.sizes["presentation"]))
    few = load_assembly(write_assembly(few, tmp_path / "few.nc"))
    with pytest.raises(DataError, match=rf"^{re.escape(str(tmp_path / 'few.nc'))}: 5 stimuli; a split tests 1 of them, "
                                        r"and a Pearson r over fewer than 3 stimuli measures nothing"):
        regression_score(_stimuli(features, 5), few)  # temporal.regression_score
    with pytest.raises(DataError, match=rf"^{re.escape(str(tmp_path / 'few.nc'))}: decoding needs at least 2 distinct "
                                        r"values of 'object_name'$"):
        decoding_time_course(few)


@pytest.mark.parametrize("arguments, error, message", [
    ({"n_components": 0}, "SpecError", r"^n_components: expected an integer >= 1 \(PLS components\), got 0$"),  # scored 0
    ({"n_components": -3}, "SpecError", r"got -3$"),  # numpy's "negative dimensions are not allowed"
    ({"n_components": 2.5}, "SpecError", r"got 2\.5$"),  # fitted as 2, recorded as 2.5
    ({"convention": "r2"}, "ValueError", r"^unknown convention 'r2'"),  # ignored without a ceiling
    ({"ceiling": 0.8}, "DataError", r"^ceiling: expected a Ceiling of the assembly's 2 time bins .*got a float$"),
    ({"splits": []}, "DataError", r"^splits: expected at least one \(train, test\) pair"),  # numpy's stack error
    ({"splits": [(np.arange(30), np.arange(30, 45))]}, "DataError",
     r"^splits\[0\]: presentation indices \[40, 41, 42\] outside \[0, 40\)"),  # an IndexError
    ({"splits": [(np.arange(30.0), np.arange(30.0, 40))]}, "DataError", r"^splits\[0\]: expected a \(train, test\) pair"),
    # PLS trained on the test stimuli' complement whatever the train part said: overlapping splits scored silently
    ({"splits": [(np.arange(35), np.arange(30, 40))]}, "DataError",
     r"^splits\[0\]: presentations \[30, 31, 32\] are in both train and test \(5 in all\)"),
    ({"splits": [(np.arange(20), np.arange(30, 40))]}, "DataError",
     r"^splits\[0\]: train \(20\) and test \(10\) leave out 10 of the 40 presentations; PLS fits each split on every"),
])
def test_bad_arguments_to_regression_score_are_refused_naming_them(small, arguments, error, message):
    from neurozoo.datasets import errors

    assembly, features = small
    with pytest.raises(getattr(errors, error, ValueError), match=message):
        regression_score(features, assembly, **arguments)


def test_a_ceiling_of_other_bins_is_refused(small):
    """A ceiling of 3 bins against an assembly of 2 failed in numpy's broadcasting, naming neither."""
    from neurozoo.datasets.errors import DataError

    assembly, features = small
    other = synthetic_assembly(n_stimuli=40, n_neuroids=6, n_bins=3, n_repetitions=2, n_objects=4, seed=4)[0]
    with pytest.raises(DataError, match=r"^ceiling: expected a Ceiling of the assembly's 2 time bins .*got a ceiling "
                                        r"of 3 time bins$"):
        regression_score(features, assembly, ceiling=internal_consistency(other))


@pytest.mark.parametrize("mapping", ["pls", "ridge"])
@pytest.mark.parametrize("X_shape, Y_shape, message", [
    ((40, 8), (40, 3, 2), r"^X: expected numbers of shape \(presentations, features, time bins\), none of them 0; got "
                          r"float64 of shape \(40, 8\)$"),
    ((30, 8, 2), (40, 3, 2), r"^X of shape \(30, 8, 2\) and Y of shape \(40, 3, 2\): expected the same presentations"),
    ((40, 8, 2), (40, 3, 1), r"^X of shape \(40, 8, 2\) and Y of shape \(40, 3, 1\): expected the same presentations"),
])
def test_fold_inputs_of_the_wrong_shape_are_refused_naming_both(mapping, X_shape, Y_shape, message):
    """numpy's matmul or reshape errors (``size 80 is different from 60``) from inside the folds."""
    from neurozoo.benchmarks.metrics.regression import fit_predict_folds
    from neurozoo.datasets.errors import DataError

    rng = np.random.default_rng(0)
    with pytest.raises(DataError, match=message):
        fit_predict_folds(mapping, rng.normal(size=X_shape), rng.normal(size=Y_shape),
                          brainscore_splits(None, n_presentations=40))


@pytest.mark.parametrize("fit, predict, error, message", [
    ((lambda X, Y: (X[:, 0], Y)), None, ValueError, r"^Expected 2D array, got 1D array instead"),  # an IndexError
    ((lambda X, Y: (X, Y[:40])), None, ValueError, r"inconsistent numbers of samples: \[50, 40\]"),  # numpy's matmul
    ((lambda X, Y: (np.where(X > 1, np.nan, X), Y)), None, ValueError, r"^Input X contains NaN"),  # fitted NaN
    ((lambda X, Y: (X, np.where(Y > 1, np.inf, Y))), None, ValueError, r"^Input y contains infinity"),
    ((lambda X, Y: (X, Y)), lambda X: X[:, :5], ValueError, r"^X has 5 features, but FastPLS is expecting 8 features"),
])
def test_fast_pls_checks_its_inputs_as_sklearn_does(fit, predict, error, message):
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(50, 8)), rng.normal(size=(50, 3))
    with pytest.raises(error, match=message):
        model = FastPLS().fit(*fit(X, Y))
        model.predict(predict(X))


def test_fast_pls_refuses_a_predict_before_fit_and_zero_components():
    """An AttributeError naming x_mean_, and 0 components fitted as a constant prediction."""
    from sklearn.exceptions import NotFittedError

    from neurozoo.datasets.errors import SpecError

    with pytest.raises(NotFittedError, match=r"^This FastPLS instance is not fitted yet"):
        FastPLS().predict(np.zeros((3, 8)))
    with pytest.raises(SpecError, match=r"^n_components: expected an integer >= 1 \(PLS components\), got 0$"):
        FastPLS(0).fit(np.random.default_rng(0).normal(size=(50, 8)), np.zeros(50))


@pytest.mark.parametrize("mapping", ["pls", "ridge"])
@pytest.mark.parametrize("argument, where, value", [("X", (0, 3, 1), np.nan), ("Y", (7, 2, 0), np.inf),
                                                    ("X", (39, 7, 1), -np.inf)])
def test_fold_inputs_with_nan_or_inf_are_refused_naming_the_argument(mapping, argument, where, value):
    """PLS predicted NaN for every fold without a word (the ridge mapping failed in sklearn, naming neither X nor Y);
    regression_score refuses such features before, but pls_fit_predict_folds is public."""
    from neurozoo.benchmarks.metrics.regression import fit_predict_folds
    from neurozoo.datasets.errors import DataError

    rng = np.random.default_rng(0)
    arrays = {"X": rng.normal(size=(40, 8, 2)), "Y": rng.normal(size=(40, 3, 2))}
    arrays[argument][where] = value
    with pytest.raises(DataError, match=rf"^{argument}: 1 NaN/inf values of {arrays[argument].size} \(the first at "
                                        rf"index \({', '.join(map(str, where))}\), {value}\); expected finite numbers$"):
        fit_predict_folds(mapping, arrays["X"], arrays["Y"], brainscore_splits(None, n_presentations=40))


def test_the_finiteness_check_tells_an_overflowing_sum_from_a_bad_value():
    """check_finite sums first (no copy of the features); a sum that overflows (finite values near the float64
    maximum) must not be taken for a NaN: the element-wise test decides."""
    from neurozoo.benchmarks.metrics.regression import check_finite
    from neurozoo.datasets.errors import DataError

    big = np.full((4, 3, 2), 1e308)
    with np.errstate(over="ignore"):
        assert not np.isfinite(np.sum(big))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's "overflow encountered in reduce" is the check's own business
        check_finite(big, "X")
    big[2, 1, 0] = np.nan
    with pytest.raises(DataError, match=r"^X: 1 NaN/inf values of 24 \(the first at index \(2, 1, 0\), nan\)"):
        check_finite(big, "X")


@pytest.mark.parametrize("a_shape, b_shape", [((5, 3), (5, 4)), ((5, 3), (5, 1)), ((5, 3), (4, 3)), ((5, 3), (5,))])
def test_pearson_columns_of_two_shapes_is_refused_naming_both(a_shape, b_shape):
    """numpy broadcast a (5, 1) against a (5, 3) without a word (one column correlated with three), and failed on the
    others with an operands or axis error."""
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=rf"^a of shape {re.escape(str(a_shape))} and b of shape "
                                         rf"{re.escape(str(b_shape))}: expected the same shape"):
        pearson_columns(rng.normal(size=a_shape), rng.normal(size=b_shape))
