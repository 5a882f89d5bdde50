"""Similarity measures against independent references, and similarity over time on constructed systems."""
import re

import numpy as np
import pytest
import scipy.spatial
import scipy.stats
import xarray as xr

from neurozoo.benchmarks.dynamics.similarity import (debiased_cka, linear_cka, procrustes_similarity, rsa,
                                                      similarity_over_time, trajectory_similarity)
from neurozoo.benchmarks.dynamics.trajectories import activity, condition_means, pca_trajectories


def kornblith_feature_space_cka(x, y, debiased=False):
    """Reference: google-research/google-research representation_similarity/demo.ipynb,
    ``feature_space_linear_cka`` and ``_debiased_dot_product_similarity_helper`` (Kornblith et al. 2019)."""
    x = x - x.mean(0, keepdims=True)
    y = y - y.mean(0, keepdims=True)
    dot = np.linalg.norm(x.T @ y) ** 2
    norm_x, norm_y = np.linalg.norm(x.T @ x), np.linalg.norm(y.T @ y)
    if debiased:
        n = x.shape[0]

        def helper(xty, rows_x, rows_y, sq_x, sq_y):
            return xty - n / (n - 2.0) * rows_x.dot(rows_y) + sq_x * sq_y / ((n - 1) * (n - 2))

        rows_x, rows_y = np.einsum("ij,ij->i", x, x), np.einsum("ij,ij->i", y, y)
        sq_x, sq_y = rows_x.sum(), rows_y.sum()
        dot = helper(dot, rows_x, rows_y, sq_x, sq_y)
        norm_x = np.sqrt(helper(norm_x ** 2, rows_x, rows_x, sq_x, sq_x))
        norm_y = np.sqrt(helper(norm_y ** 2, rows_y, rows_y, sq_y, sq_y))
    return dot / (norm_x * norm_y)


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 12))
    return x, x @ rng.standard_normal((12, 7)) + 0.8 * rng.standard_normal((40, 7))


def test_cka_matches_kornblith_reference(pair):
    x, y = pair
    assert linear_cka(x, y) == pytest.approx(kornblith_feature_space_cka(x, y), abs=1e-12)
    assert debiased_cka(x, y) == pytest.approx(kornblith_feature_space_cka(x, y, debiased=True), abs=1e-12)
    # debiasing matters with few stimuli: independent noise has a large biased CKA, a near-zero debiased one
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((20, 200)), rng.standard_normal((20, 200))
    assert linear_cka(a, b) > 0.5 and abs(debiased_cka(a, b)) < 0.1


def test_rsa_is_spearman_of_correlation_distance_rdms(pair):
    x, y = pair
    expected = scipy.stats.spearmanr(scipy.spatial.distance.pdist(x, "correlation"),
                                     scipy.spatial.distance.pdist(y, "correlation")).statistic
    assert rsa(x, y) == pytest.approx(expected, abs=1e-10)


def _brainscore_rdm_similarity(x, y):
    """Brain-Score's ``RDMMetric`` (brain-score/vision brainscore_vision/metrics/rdm/metric.py at 54342f0): ``RDM`` is
    ``1 - np.corrcoef(assembly)`` over the presentations (rows; the neuroids last), ``RDMSimilarity`` the
    ``scipy.stats.spearmanr`` of the two RDMs' ``np.triu_indices(n, k=1)`` entries."""
    upper = np.triu_indices(len(x), k=1)
    return scipy.stats.spearmanr((1 - np.corrcoef(x))[upper], (1 - np.corrcoef(y))[upper])[0]


def test_rsa_defaults_equal_brainscores_rdm_metric(pair):
    """``rsa`` with its defaults (rsatoolbox's correlation-distance RDMs compared by Spearman) is Brain-Score's RDM
    similarity (above); a Euclidean RDM or a Pearson comparison differs from it by more than 1e-3 here."""
    x, y = pair
    expected = _brainscore_rdm_similarity(x, y)
    assert rsa(x, y) == pytest.approx(expected, abs=1e-12)
    assert abs(rsa(x, y, rdm_method="euclidean") - expected) > 1e-3
    assert abs(rsa(x, y, compare="corr") - expected) > 1e-3


def test_procrustes_matches_scipy_and_is_rotation_invariant(pair):
    x, _ = pair
    rng = np.random.default_rng(2)
    other = x @ rng.standard_normal((12, 12)) + rng.standard_normal((40, 12))
    _, _, disparity = scipy.spatial.procrustes(x, other)
    assert procrustes_similarity(x, other) == pytest.approx(np.sqrt(1 - disparity), abs=1e-10)
    rotation = np.linalg.qr(rng.standard_normal((12, 12)))[0]
    assert procrustes_similarity(x, 3 * x @ rotation + 5) == pytest.approx(1.0, abs=1e-12)


def _system(values, name, start=0.0):
    return activity(values, [f"s{i}" for i in range(values.shape[0])], start + 10.0 * np.arange(values.shape[1]), 10.0, name)


def test_similarity_over_time_finds_the_lag():
    """b at bin j is a rotated copy of a at bin j - 2 (a 20 ms lag): every row's best match is two bins later."""
    rng = np.random.default_rng(3)
    a = rng.standard_normal((24, 10, 15))
    rotation = np.linalg.qr(rng.standard_normal((15, 15)))[0]
    b = np.concatenate([rng.standard_normal((24, 2, 15)), a[:, :-2] @ rotation], axis=1)
    for metric in ("cka", "rsa", "debiased_cka"):
        matrix = similarity_over_time(_system(a, "a"), _system(b, "b"), metric)
        assert matrix.dims == ("time_bin_a", "time_bin_b")
        np.testing.assert_array_equal(matrix.values[:8].argmax(1), np.arange(8) + 2)
        if metric != "rsa":  # correlation distance centres each pattern over units: not rotation invariant
            assert matrix.values[np.arange(8), np.arange(8) + 2] == pytest.approx(1.0, abs=1e-9)
    window = trajectory_similarity(_system(a[:, :-2], "a"), _system(b[:, 2:], "b"), window=4)
    assert window.values == pytest.approx(1.0, abs=1e-12)
    unrelated = trajectory_similarity(_system(a, "a"), _system(rng.standard_normal((24, 10, 15)), "c"))
    assert float(unrelated.values[0]) < 0.6


def test_every_entry_of_similarity_over_time_equals_the_references_on_its_two_bins():
    """The lag test checks the argmax and the entries of a rotated copy, which are 1 under any CKA or RSA; the
    matrix is computed batched over all bin pairs (one Gram or RDM per bin). Here every entry, on partly related
    bins (each of b's bins mixes two of a's with noise, 8 of 12 units), against the references computed per pair:
    Kornblith's feature-space CKA (above; debiased too) and scipy's Spearman r of correlation-distance pdists."""
    rng = np.random.default_rng(11)
    a = rng.standard_normal((16, 4, 12))
    mix = rng.standard_normal((12, 8))
    b = np.stack([(a[:, j] + 0.7 * a[:, (j + 1) % 4]) @ mix + rng.standard_normal((16, 8)) for j in range(4)], axis=1)
    expected = {
        "cka": lambda x, y: kornblith_feature_space_cka(x, y),
        "debiased_cka": lambda x, y: kornblith_feature_space_cka(x, y, debiased=True),
        "rsa": lambda x, y: scipy.stats.spearmanr(scipy.spatial.distance.pdist(x, "correlation"),
                                                  scipy.spatial.distance.pdist(y, "correlation")).statistic}
    for metric, reference in expected.items():
        matrix = similarity_over_time(_system(a, "a"), _system(b, "b"), metric).values
        by_pair = np.array([[reference(a[:, i], b[:, j]) for j in range(4)] for i in range(4)])
        np.testing.assert_allclose(matrix, by_pair, rtol=0, atol=1e-10)
        assert 0.2 < np.ptp(by_pair) and np.abs(by_pair).max() < 0.99  # neither all alike nor all 1


def test_trajectory_similarity_per_window_equals_scipys_procrustes_on_those_bins():
    """The lag test's windows compare rotated copies (1 under any window that pairs the same bins of both). Here,
    on related but not equal trajectories, each window's value against scipy.spatial.procrustes of that window's
    (stimulus x bin, neuroid) rows, sqrt(1 - disparity), with the window's start time as its coordinate. Windows one
    bin short in both systems passed the lag test (checked) and fail this one; without a window, the whole
    trajectory."""
    rng = np.random.default_rng(12)
    a = rng.standard_normal((10, 6, 5))
    b = a @ rng.standard_normal((5, 5)) + 1.5 * rng.standard_normal((10, 6, 5))
    result = trajectory_similarity(_system(a, "a"), _system(b, "b"), window=3)
    expected = [np.sqrt(1 - scipy.spatial.procrustes(a[:, s:s + 3].reshape(-1, 5), b[:, s:s + 3].reshape(-1, 5))[2])
                for s in range(4)]
    np.testing.assert_allclose(result.values, expected, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(result["window"].values, [0.0, 10.0, 20.0, 30.0])
    assert np.abs(np.diff(expected)).min() > 1e-3 and max(expected) < 0.99  # the windows differ, and none is 1
    whole = np.sqrt(1 - scipy.spatial.procrustes(a.reshape(-1, 5), b.reshape(-1, 5))[2])
    assert float(trajectory_similarity(_system(a, "a"), _system(b, "b")).values[0]) == pytest.approx(whole, abs=1e-10)


def test_systems_are_aligned_on_shared_stimuli_and_checked():
    rng = np.random.default_rng(4)
    a = _system(rng.standard_normal((6, 3, 4)), "a")
    b = a.isel(stimulus_id=[5, 4, 3, 2, 1, 0])  # same stimuli, other order
    assert np.diag(similarity_over_time(a, b, "cka").values) == pytest.approx(1.0)
    silent = a.copy(data=a.values.copy())
    silent.values[:, 0] = 0.0  # a layer the signal has not reached yet
    for metric in ("rsa", "cka", "debiased_cka"):
        matrix = similarity_over_time(silent, a, metric).values
        assert np.isnan(matrix[0]).all() and np.isfinite(matrix[1:]).all()
    with pytest.raises(ValueError, match="share 0 stimuli"):
        similarity_over_time(a, a.assign_coords(stimulus_id=[f"x{i}" for i in range(6)]))
    with pytest.raises(ValueError, match=r"expected dims \('stimulus_id', 'time_bin', 'neuroid'\)"):
        similarity_over_time(a.transpose("time_bin", "stimulus_id", "neuroid"), a)


def test_procrustes_of_a_trajectory_without_variance_is_undefined_not_an_error():
    """A ConvRNN layer the image has not reached in the steps run is the same for every stimulus at every step: its
    centred trajectory is zero, and `zoo compare --n-steps 1` failed with 'SVD did not converge' from 0/0."""
    from neurozoo.benchmarks.dynamics.analysis import compare, compare_records

    rng = np.random.default_rng(5)
    silent, a = _system(np.ones((6, 3, 4)), "silent"), _system(rng.standard_normal((6, 3, 4)), "a")
    assert np.isnan(procrustes_similarity(silent.values.reshape(-1, 4), a.values.reshape(-1, 4)))
    assert np.isnan(trajectory_similarity(silent, a).values).all()
    results = compare({"silent": silent, "a": a}, ["cka"])
    records = {r.benchmark: r for r in compare_records({"silent": silent, "a": a}, results, 0.0)}
    assert records["compare.procrustes"].value is None and records["compare.cka"].value is None


def test_condition_means_and_pca_trajectories():
    counts = np.arange(2 * 3 * 4 * 2, dtype=float).reshape(6, 4, 2)  # presentations (3 stimuli x 2 reps), 4 neuroids, 2 bins
    assembly = xr.DataArray(counts, dims=("presentation", "neuroid", "time_bin"), coords={
        "stimulus_id": ("presentation", ["a", "b", "c"] * 2), "time_bin_start": ("time_bin", [70, 80]),
        "time_bin_end": ("time_bin", [80, 90])})
    means = condition_means(assembly, "toy")
    assert means.dims == ("stimulus_id", "time_bin", "neuroid")
    np.testing.assert_allclose(means.sel(stimulus_id="b").values, (counts[1] + counts[4]).T / 2)
    projection, explained, pca = pca_trajectories(means, 2)
    assert projection.dims == ("stimulus_id", "time_bin", "pc") and explained[0] == pytest.approx(1.0)
    np.testing.assert_allclose(pca.transform(means.values[1]), projection.values[1], atol=1e-9)


def test_condition_means_are_the_benchmarks_repetition_means_and_refuse_what_they_refuse():
    """The dynamics analysis of a neural assembly averages its repetitions with ``average_repetitions``, the one way
    the benchmarks average their targets: the same stimuli and numbers, and the same refusals. Its own xarray groupby
    (until 2026-12-05) averaged a per-trial coordinate's groups together and an inf into the mean without a word."""
    from neurozoo.benchmarks.metrics.assembly import average_repetitions
    from neurozoo.benchmarks.synthetic import synthetic_assembly
    from neurozoo.datasets.errors import DataError

    assembly, _ = synthetic_assembly(n_stimuli=12, n_neuroids=5, n_bins=3, n_repetitions=4, seed=2)
    assembly = assembly.isel(presentation=np.random.default_rng(0).permutation(assembly.sizes["presentation"]))
    means, target = condition_means(assembly, "toy"), average_repetitions(assembly)
    np.testing.assert_array_equal(means["stimulus_id"].values, target["stimulus_id"].values)
    np.testing.assert_array_equal(means.values, target.values.transpose(0, 2, 1))
    np.testing.assert_array_equal(means["time_bin_start"].values, target["time_bin_start"].values)
    session = assembly.assign_coords(session=("presentation", np.where(assembly["repetition"].values < 2, "A", "B")))
    with pytest.raises(DataError, match=r"^assembly: coordinate 'session' along 'presentation' varies among the "
                                        r"presentations of 12 stimuli"):
        condition_means(session)
    infinite = assembly.copy(data=np.where(np.arange(assembly.size).reshape(assembly.shape) == 7, np.inf,
                                           assembly.values))
    with pytest.raises(DataError, match=r"^assembly: field 'data' has 1 infinite value\b"):
        condition_means(infinite)


def test_cka_of_a_system_with_itself_is_one_at_every_bin_even_where_a_pattern_is_flat():
    """CKA and Procrustes need only variance over stimuli; the correlation distance of RSA also needs each pattern to
    vary over units. A bin where one stimulus's pattern is flat (a ReLU layer silent for one image) or a single-unit
    system was NaN for every metric: identical systems read as undefined, and such bins were dropped from the means."""
    rng = np.random.default_rng(7)
    values = rng.standard_normal((10, 5, 6))
    values[3] = 0.0  # stimulus s3 silent at every bin
    flat, single = _system(values, "flat"), _system(values[:, :, :1], "single")  # one unit: every pattern is flat
    permuted = _system(values[:, :, rng.permutation(6)], "permuted")  # the same units, in another order
    for metric in ("cka", "debiased_cka"):
        np.testing.assert_allclose(similarity_over_time(flat, permuted, metric).values.diagonal(), 1.0, atol=1e-12)
        np.testing.assert_allclose(similarity_over_time(single, single, metric).values.diagonal(), 1.0, atol=1e-12)
    np.testing.assert_allclose(similarity_over_time(flat, permuted, "procrustes").values.diagonal(), 1.0, atol=1e-12)
    assert np.isnan(similarity_over_time(flat, permuted, "rsa").values).all()  # s3's correlation distance: 0 / 0
    rotation = np.linalg.qr(rng.standard_normal((6, 6)))[0]
    rotated = _system(values @ rotation, "rotated")
    np.testing.assert_allclose(similarity_over_time(flat, rotated, "cka").values.diagonal(), 1.0, atol=1e-12)


def test_a_bin_the_other_system_leaves_undefined_is_none_per_bin_on_a_shared_grid():
    """On a shared grid bin i is compared with bin i; where only B's bin i carries no information (a layer the image
    has not reached yet) the per-bin value was NaN with best_b_start set, not None as for A's own silent bins."""
    from neurozoo.benchmarks.dynamics.analysis import compare, compare_records

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((6, 3, 4)), rng.standard_normal((6, 3, 4))
    b[:, 0] = 1.0  # B silent in its first bin
    systems = {"a": _system(a, "a"), "b": _system(b, "b")}
    [record] = [r for r in compare_records(systems, compare(systems, ["cka"]), 0.0) if r.benchmark == "compare.cka"]
    first, *rest = record.per_bin
    assert (first["value"], first["best_b_start"]) == (None, None)
    expected = [linear_cka(a[:, i], b[:, i]) for i in (1, 2)]
    np.testing.assert_allclose([r["value"] for r in rest], expected, rtol=1e-12)
    assert [r["best_b_start"] for r in rest] == [10.0, 20.0]
    assert record.value == pytest.approx(np.mean(expected), rel=1e-12)


def test_pca_trajectories_of_ellipses_rotated_into_five_dimensions():
    """Stimulus s runs round an ellipse of semi-axes s + 1 and (s + 1) / 2 in a plane, rotated into 5-D by a random
    orthogonal matrix: PCA finds the plane with variances 4 : 1 (0.8, 0.2, 0), its first two axes are the ellipses'
    axes, the rotated copy projects to the same trajectories up to each axis's sign, and CKA and trajectory
    Procrustes between the two are 1."""
    rng = np.random.default_rng(11)
    angle = 2 * np.pi * np.arange(20) / 20  # whole turns about 0: PCA's centring leaves them where they are
    radius = np.arange(1, 5)[:, None]
    values = np.zeros((4, 20, 5))
    values[..., 0], values[..., 1] = radius * np.cos(angle), radius / 2 * np.sin(angle)
    rotation = np.linalg.qr(rng.standard_normal((5, 5)))[0]
    plane, rotated = _system(values, "plane"), _system(values @ rotation, "rotated")
    projection, explained, _ = pca_trajectories(plane, 3)
    projected_rotated, explained_rotated, _ = pca_trajectories(rotated, 3)
    np.testing.assert_allclose(explained, [0.8, 0.2, 0.0], atol=1e-12)
    np.testing.assert_allclose(explained_rotated, explained, atol=1e-12)
    np.testing.assert_allclose(np.abs(projection.values[..., 0]), np.abs(radius * np.cos(angle)), atol=1e-9)
    np.testing.assert_allclose(np.abs(projection.values[..., 1]), np.abs(radius / 2 * np.sin(angle)), atol=1e-9)
    signs = np.sign((projection.values * projected_rotated.values).sum(axis=(0, 1)))[:2]
    np.testing.assert_allclose(projected_rotated.values[..., :2] * signs, projection.values[..., :2], atol=1e-9)
    np.testing.assert_allclose(similarity_over_time(plane, rotated, "cka").values.diagonal(), 1.0, atol=1e-12)
    np.testing.assert_allclose(trajectory_similarity(plane, rotated).values, [1.0], atol=1e-12)


@pytest.mark.parametrize("window", [0, 4, -1])
def test_a_trajectory_window_outside_the_bins_is_refused_naming_both(window):
    """A window longer than the trajectories gave an empty result (and 0 silently meant all bins)."""
    rng = np.random.default_rng(2)
    a, b = _system(rng.standard_normal((6, 3, 4)), "a"), _system(rng.standard_normal((6, 3, 4)), "b")
    with pytest.raises(ValueError, match=rf"window {window}: expected 1\.\.3 bins \(None: all 3\)"):
        trajectory_similarity(a, b, window)
    windows = trajectory_similarity(a, b, 2)
    np.testing.assert_allclose(windows.values, [procrustes_similarity(a.values[:, s: s + 2].reshape(-1, 4),
                                                                      b.values[:, s: s + 2].reshape(-1, 4))
                                                for s in (0, 1)], rtol=1e-12)


def test_repeated_stimulus_ids_are_refused_naming_them():
    """Rows are stimuli (or conditions): a repeated id failed inside pandas ("Reindexing only valid with uniquely
    valued Index objects"), naming neither the system nor the id."""
    rng = np.random.default_rng(0)
    a = activity(rng.standard_normal((6, 3, 4)), ["s0", "s0", "s1", "s2", "s3", "s3"], [0, 10, 20], 10, "a")
    b = _system(rng.standard_normal((6, 3, 4)), "b")
    for first, second in ((a, b), (b, a)):
        with pytest.raises(ValueError, match=r"a: stimulus ids repeated: s0 \(2 rows\), s3 \(2 rows\); one row per "
                                             r"stimulus expected \(condition_means averages repetitions\)"):
            similarity_over_time(first, second, "cka")


@pytest.mark.parametrize("change, message", [
    # NaN or inf: every similarity NaN, without a word
    (lambda a: a.where(a.stimulus_id != "s3"), r"^a: \d+ NaN/inf values, the first at stimulus_id s3, time bin 0 ms, "
                                               r"neuroid 0; expected finite activity"),
    (lambda a: a.where(a.time_bin_start != 20, np.inf), r"^a: \d+ NaN/inf values, the first at stimulus_id s0, time bin "
                                                         r"20 ms"),
    (lambda a: a.values, r"^activity a: expected an xarray\.DataArray with dims .*got ndarray$"),  # AttributeError: dims
    (lambda a: a.drop_vars("time_bin_start"), r"^a: missing coordinate \['time_bin_start'\]"),  # a KeyError
    (lambda a: a.astype(str), r"^a: holds <U\d+ values; expected numbers$"),  # numpy's UFuncTypeError
])
@pytest.mark.parametrize("compare", [similarity_over_time, trajectory_similarity])
def test_activity_that_cannot_be_compared_is_refused_naming_the_system(change, message, compare):
    rng = np.random.default_rng(0)
    a = _system(rng.normal(size=(10, 3, 5)), "a")
    b = _system(rng.normal(size=(10, 3, 5)), "b")
    with pytest.raises(ValueError, match=message):
        compare(change(a), b)


@pytest.mark.parametrize("metric", [linear_cka, debiased_cka, rsa, procrustes_similarity])
@pytest.mark.parametrize("x_shape, y_shape", [((10, 3), (8, 3)), ((10,), (10,))])
def test_matrices_of_other_stimuli_or_a_vector_are_refused_naming_the_metric(metric, x_shape, y_shape):
    """Rows that differ failed inside numpy's matmul or rsatoolbox; a 1-D vector scored 1.0 as a matrix of one
    value per row."""
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=rf"^{metric.__name__}: expected two \(stimuli, features\) matrices of the same "
                                         rf"stimuli, got shapes {re.escape(str(x_shape))} and {re.escape(str(y_shape))}$"):
        metric(rng.normal(size=x_shape), rng.normal(size=y_shape))


@pytest.mark.parametrize("metric", [linear_cka, debiased_cka, procrustes_similarity])
def test_a_nan_in_a_matrix_is_refused_not_scored_nan(metric):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 3))
    x[2, 1] = np.nan
    with pytest.raises(ValueError, match=rf"^{metric.__name__}: NaN/inf values in the first matrix"):
        metric(x, rng.normal(size=(10, 3)))


@pytest.mark.parametrize("n_components, message", [
    (0, r"^n_components: expected an integer >= 1, got 0$"),  # a projection of no component
    (2.5, r"^n_components: expected an integer >= 1, got 2.5$"),  # sklearn's InvalidParameterError, naming PCA
    (7, r"^n_components: expected at most 6 \(min\(stimuli x bins, neuroids\) of the activity of shape \(4, 5, 6\)\), "
        r"got 7$"),  # 6 components, without a word
])
def test_pca_trajectories_refuses_a_number_of_components_the_activity_cannot_give(n_components, message):
    values = np.random.default_rng(0).normal(size=(4, 5, 6))
    with pytest.raises(ValueError, match=message):
        pca_trajectories(activity(values, list("abcd"), np.arange(5) * 10.0, 10.0), n_components)


def test_pca_trajectories_refuses_what_is_not_an_activity_array():
    """A numpy array failed with an AttributeError on .values; a DataArray in another axis order was projected over
    the wrong samples."""
    values = np.random.default_rng(0).normal(size=(4, 5, 6))
    with pytest.raises(ValueError, match=r"^activity_: expected an xarray.DataArray with dims \('stimulus_id', "
                                         r"'time_bin', 'neuroid'\) \(trajectories.activity\), got ndarray$"):
        pca_trajectories(values, 2)
    transposed = activity(values, list("abcd"), np.arange(5) * 10.0, 10.0).transpose("neuroid", "time_bin",
                                                                                      "stimulus_id")
    with pytest.raises(ValueError, match=r"got DataArray with dims \('neuroid', 'time_bin', 'stimulus_id'\)$"):
        pca_trajectories(transposed, 2)
