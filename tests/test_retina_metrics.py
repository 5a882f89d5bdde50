import numpy as np
import pandas as pd
import pytest

from neurozoo.retina.metrics import (correlation, explainable_fraction, feve, heldout_metrics, noise_variance,
                            oracle_correlation, summary)


def _trials(C=4, R=8, T=4000, noise_sd=1.0, seed=0):
    rng = np.random.default_rng(seed)
    truth = rng.standard_normal((C, T)).cumsum(-1)
    truth = (truth - truth.mean(-1, keepdims=True)) / truth.std(-1, keepdims=True)  # unit signal variance
    sd = np.asarray(noise_sd, float).reshape(-1, 1, 1) if np.ndim(noise_sd) else noise_sd
    return truth, truth[:, None, :] + sd * rng.standard_normal((C, R, T))


def test_noise_variance_recovered_and_true_rate_has_feve_one():
    noise = np.array([0.5, 1.0, 2.0, 0.25])
    truth, repeats = _trials(noise_sd=np.sqrt(noise))
    np.testing.assert_allclose(noise_variance(repeats), noise, rtol=0.03)
    np.testing.assert_allclose(explainable_fraction(repeats), 1 / (1 + noise), rtol=0.03)
    np.testing.assert_allclose(feve(truth, repeats), 1.0, atol=0.03)
    # a prediction that explains half the signal variance: FEVE = 1 - var(residual) / var(signal)
    half = truth * (1 - np.sqrt(0.5))  # residual (sqrt(.5) * truth) has variance 0.5
    np.testing.assert_allclose(feve(half, repeats), 0.5, atol=0.04)


def test_correlation_and_oracle_known_values():
    noise = 1.0
    truth, repeats = _trials(R=6, noise_sd=np.sqrt(noise))
    # the trial mean of R trials has noise var 1/R: r(truth, mean) = 1 / sqrt(1 + 1/R)
    np.testing.assert_allclose(correlation(truth, repeats.mean(1)), 1 / np.sqrt(1 + 1 / 6), atol=0.01)
    # leave-one-out: one trial (noise 1) against the mean of 5 others (noise 1/5)
    expected = 1 / np.sqrt((1 + 1) * (1 + 1 / 5))
    np.testing.assert_allclose(oracle_correlation(repeats), expected, atol=0.015)
    assert np.isnan(correlation(np.ones((1, 10)), np.arange(10.0)[None]))[0]


def test_heldout_metrics_frame_filter_and_summary():
    truth, repeats = _trials(C=3)
    repeats[2] = np.random.default_rng(1).standard_normal(repeats[2].shape)  # a cell with no signal
    frame = heldout_metrics(truth, repeats, cells=["a", "b", "c"])
    assert isinstance(frame, pd.DataFrame) and list(frame.index) == ["a", "b", "c"] and frame.index.name == "cell"
    assert list(frame["passes"]) == [True, True, False]
    assert frame.loc["c", "explainable_fraction"] < 0.15
    assert frame.to_xarray()["correlation"].dims == ("cell",)
    stats = summary(frame)
    assert stats["n_passing"] == 2
    assert stats["median_correlation"] == pytest.approx(frame.loc[["a", "b"], "correlation"].median())
    with pytest.raises(ValueError, match="must agree"):
        heldout_metrics(truth[:, :10], repeats)


def test_a_cell_silent_in_every_repeat_gets_nan_metrics_without_warnings():
    """Real recordings have cells that never fire during the test movie: FEVE was -inf and numpy printed
    'invalid value encountered in divide' and 'Mean of empty slice' to stderr for each."""
    import warnings

    rng = np.random.default_rng(0)
    repeats = rng.poisson(3.0, (3, 5, 200)).astype(float)
    repeats[1] = 0.0
    prediction = repeats.mean(1) + 0.1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frame = heldout_metrics(prediction, repeats)
    assert frame.loc["cell02", ["feve", "oracle", "explainable_fraction", "correlation"]].isna().all()
    assert not frame.loc["cell02", "passes"]
    kept = frame.drop("cell02")
    np.testing.assert_allclose(kept["feve"], feve(prediction[[0, 2]], repeats[[0, 2]]))
    np.testing.assert_allclose(kept["oracle"], oracle_correlation(repeats[[0, 2]]))
    assert np.isfinite(kept.values.astype(float)).all()


def test_the_heldout_benchmarks_error_is_the_bootstrap_standard_error_of_the_median():
    """The retina held-out score's error bar (retina.benchmark): the standard error of the median correlation over
    cells, by bootstrap. Against scipy.stats.bootstrap's standard error of np.median on the same values (its own
    resamples, so within a few percent); the standard error of the mean (0.66 of it here) or of the values
    themselves would not pass. Fewer than 2 cells: no error (NaN); equal values: 0."""
    import scipy.stats

    from neurozoo.retina.benchmark import _bootstrap_median_se

    values = np.random.default_rng(0).standard_normal(401)
    reference = scipy.stats.bootstrap((values,), np.median, n_resamples=20000, random_state=0).standard_error
    mean_se = scipy.stats.bootstrap((values,), np.mean, n_resamples=20000, random_state=0).standard_error
    assert mean_se < 0.7 * reference
    assert _bootstrap_median_se(values) == pytest.approx(reference, rel=0.05)
    assert np.isnan(_bootstrap_median_se(values[:1])) and _bootstrap_median_se(np.full(12, 0.4)) == pytest.approx(0.0, abs=1e-15)
