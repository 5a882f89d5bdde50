"""Split-half Spearman-Brown ceiling: theoretical values on data with a known signal-to-noise ratio."""
import numpy as np
import pytest

from neurozoo.benchmarks.metrics import internal_consistency, normalize, spearman_brown
from neurozoo.benchmarks.metrics.ceiling import summarize
from neurozoo.benchmarks.synthetic import expected_ceiling, synthetic_assembly
from neurozoo.datasets.errors import DataError


@pytest.mark.parametrize("noise,reps", [(0.5, 4), (2.0, 6), (4.0, 2)])
def test_ceiling_matches_spearman_brown_theory(noise, reps):
    assembly, _ = synthetic_assembly(n_stimuli=600, n_neuroids=24, n_bins=2, n_repetitions=reps, noise=noise, seed=reps)
    ceiling = internal_consistency(assembly)
    # half of the repetitions: reliability 1/(1 + 2 sigma^2 / R); Spearman-Brown doubles it back to 1/(1 + sigma^2/R)
    np.testing.assert_allclose(ceiling.per_bin, expected_ceiling(noise, reps), atol=0.03)
    assert ceiling.per_split.shape == (10, 2)
    assert np.all(ceiling.error_per_bin < 0.02)


def test_ceiling_per_bin_follows_bin_noise():
    assembly, _ = synthetic_assembly(n_stimuli=500, n_neuroids=20, n_bins=2, n_repetitions=4, noise=0.0, seed=1)
    rng = np.random.default_rng(0)
    noisy = assembly.copy(data=assembly.values + rng.standard_normal(assembly.shape) * np.array([0.5, 3.0]))
    ceiling = internal_consistency(noisy)
    np.testing.assert_allclose(ceiling.per_bin, [expected_ceiling(0.5, 4), expected_ceiling(3.0, 4)], atol=0.03)


def test_pure_noise_has_zero_ceiling():
    assembly, _ = synthetic_assembly(n_stimuli=400, n_neuroids=20, n_bins=1, n_repetitions=4, noise=1.0, seed=2)
    rng = np.random.default_rng(3)
    noise = assembly.copy(data=rng.standard_normal(assembly.shape))
    assert abs(internal_consistency(noise).value) < 0.05


def test_spearman_brown_and_normalisation_conventions():
    assert spearman_brown(0.5) == pytest.approx(2 / 3)
    assert spearman_brown(0.5, n=3) == pytest.approx(0.75)
    assert normalize(0.6, 0.36) == pytest.approx(1.0)  # r = sqrt(c): at the ceiling
    assert normalize(0.3, 0.36) == pytest.approx(0.25)
    assert normalize(-0.3, 0.36) == pytest.approx(-0.25)  # the sign of r is kept
    # over bins: ceiling-weighted, so a bin without signal (c ~ 0) cannot blow up the mean
    assert summarize([0.6, 0.01], [0.36, 1e-4]) == pytest.approx((0.36 + 1e-4) / (0.36 + 1e-4))
    assert summarize([0.3, 0.3, 0.5], [0.36, -0.1, 0.5]) == pytest.approx((0.09 + 0.25) / 0.86)
    assert normalize(0.3, 0.6, convention="pre-2026") == pytest.approx(0.25)
    assert np.isnan(normalize(0.3, 0.0))
    with pytest.raises(ValueError):
        normalize(0.3, 0.5, convention="other")


def test_ceiling_needs_repetitions():
    assembly, _ = synthetic_assembly(n_stimuli=50, n_repetitions=1, seed=0)
    with pytest.raises(DataError, match="repetition"):
        internal_consistency(assembly)


def test_missing_values_are_ignored_not_propagated():
    from neurozoo.benchmarks.metrics import pearson_columns, regression_score

    assembly, clean = synthetic_assembly(n_stimuli=500, n_neuroids=12, n_bins=1, n_repetitions=4, noise=1.0, seed=4)
    values = assembly.values.copy()
    rng = np.random.default_rng(0)
    values[rng.random(values.shape) < 0.1] = np.nan  # 10 % of single-trial responses missing
    values[:, 0, :] = np.nan  # one neuroid never recorded
    holes = assembly.copy(data=values)
    ceiling = internal_consistency(holes)
    # fewer effective repetitions: reliability of ~3.6 trials per half-pair instead of 4
    assert abs(ceiling.value - expected_ceiling(1.0, 4)) < 0.05
    score = regression_score(clean, holes, ceiling=ceiling)
    assert score.settings["n_neuroids_dropped"] >= 1 and abs(score.value - 1) < 0.1
    a = rng.standard_normal((30, 2))
    b = a + rng.standard_normal((30, 2))
    b_holes = b.copy()
    b_holes[:5, 0] = np.nan
    expected = np.corrcoef(a[5:, 0], b[5:, 0])[0, 1]
    np.testing.assert_allclose(pearson_columns(a, b_holes), [expected, np.corrcoef(a[:, 1], b[:, 1])[0, 1]])
