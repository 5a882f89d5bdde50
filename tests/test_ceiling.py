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


def _with_trailing_repeats_missing(noise, low, seed, n_stimuli=600, repetitions=10):
    """Like Cowley's session 210325: stimulus i was shown n_i of 10 times (n_i from ``low`` to 10), its missing
    repeats the last ones, dropped from the assembly as the converter drops them."""
    assembly, _ = synthetic_assembly(n_stimuli=n_stimuli, n_neuroids=24, n_bins=1, n_repetitions=repetitions,
                                     noise=noise, seed=seed)
    shown_times = np.random.default_rng(seed).integers(low, repetitions + 1, n_stimuli)
    stimulus = np.tile(np.arange(n_stimuli), repetitions)
    keep = assembly["repetition"].values < shown_times[stimulus]
    # the repeat-averaged data's reliability: var(s) / (var(s) + noise^2 mean(1 / n_i))
    return assembly.isel(presentation=np.flatnonzero(keep)), 1 / (1 + noise ** 2 * np.mean(1 / shown_times))


@pytest.mark.parametrize("low, noise", [(2, 2.0), (6, 2.0)])
def test_ceiling_is_unbiased_when_stimuli_miss_trailing_repeats(low, noise):
    # Splitting the repetition numbers globally gave stimuli with 2-4 shown repeats all of them in one half
    # (dropped: 0.550 against 0.535) and stimuli with 6 halves of 5 and 1 (0.651 against 0.659)
    assembly, expected = _with_trailing_repeats_missing(noise, low, seed=0)
    assert abs(internal_consistency(assembly).value - expected) < 0.004


def test_complete_repetitions_keep_the_global_split():
    from neurozoo.benchmarks.metrics.ceiling import balanced_halves

    ids = np.repeat(np.arange(5), 7).astype(str)
    repetitions = np.tile(np.arange(7), 5)
    first, second = np.array([4, 0, 6]), np.array([2, 5, 1, 3])
    np.testing.assert_array_equal(balanced_halves(ids, repetitions, np.ones(35, bool), first, second),
                                  np.isin(repetitions, second))
    # a stimulus shown 0..3 only: its shown repeats are split 2 / 2, not 1 (rep 0) / 3 (reps 1, 2, 3)
    shown = ~((ids == "0") & (repetitions > 3))
    halves = balanced_halves(ids, repetitions, shown, first, second)
    assert halves[(ids == "0") & shown].sum() == 2 and not halves[~shown].any()


def test_cowley_210325_ceiling_equals_the_reliability_of_its_repeat_means(shared_data):
    """Session 210325 (50 units, 640 images, 6-10 repeats, the missing ones NaN). Independent estimate
    (method of moments, as Pospisil & Bair 2021's unbiased SNR in cowleygroup/V4_compact_models
    classes/class_neural_data.py compute_SNRs): reliability of a unit's repeat means = (var(means) - noise
    variance * mean(1 / n_i)) / var(means), median over units: 0.765. Splitting the repetition numbers globally
    gave 0.760 (halves of 5 and 1 repeats for the images shown 6 times)."""
    import xarray as xr

    raw = np.load(shared_data / "v4_cowley2023" / "responses_210325_raw.npy")  # (units, images, repeats)
    n = (~np.isnan(raw[0])).sum(axis=1)
    means = np.nanmean(raw, axis=2)
    noise = np.nansum((raw - means[:, :, None]) ** 2, axis=(1, 2)) / (n.sum() - len(n))
    variance = means.var(axis=1, ddof=1)
    expected = np.median((variance - noise * np.mean(1 / n)) / variance)
    assert abs(expected - 0.765) < 0.001

    image, repeat = np.nonzero(~np.isnan(raw[0]))
    assembly = xr.DataArray(raw[:, image, repeat].T[:, :, None], dims=("presentation", "neuroid", "time_bin"),
                            coords={"stimulus_id": ("presentation", image), "repetition": ("presentation", repeat)})
    ceiling = internal_consistency(assembly)
    assert abs(ceiling.value - expected) < 0.003 and ceiling.error < 0.003
