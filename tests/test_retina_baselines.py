"""The LN and GLM baselines against known cells and against independent references written from the published code.

* GLM: deep-retina scripts/glm.py (at 09c8449) fits ``PoissonGLM([f_stim, f_hist], ...)`` (line 47; imported from
  ``limo``, line 6) -- a stimulus filter over the 40-frame window (``stimhist = 40`` line 18, ``f_stim`` line 42) and
  a filter over the cell's own past counts (``f_hist``: 51-bin windows of the rates without their last bin,
  ``rolling_window(train.y, ratehist)[:, :-1, :]``, ``ratehist = 51``, lines 19 and 44), exponential link, Poisson
  likelihood (deep-retina's own deepretina/glms.py at 117ccd0: ``predict = exp(project(X))`` line 63, loss
  ``(rhat - y * u).mean()`` lines 89-93, L2 ``0.5 * l2[key] * ||theta[key]||^2`` per parameter group lines 75-77).
  The reference here is the same model fitted by scikit-learn's ``PoissonRegressor`` (exp link, Poisson deviance) on
  the stimulus projections and the history counts.
* LN: deep-retina models.py ``linear_nonlinear``: a linear filter over the window (``Dense`` on the flattened
  40x50x50 window) and a static nonlinearity (softplus by default). The reference is pyret's recipe for the
  nonlinearity (``Binterp``, pyret/nonlinearities.py at df03391 lines 96-147: ``fit``, lines 132-143, sorts the input
  into bins of equal counts, lines 133-137, and takes the mean output per bin, lines 138-139), in numpy, on the
  generator signal of our fitted filter (not pyret's spike-triggered average, pyret/filtertools.py ``sta`` at
  06b0590 lines 60-105, ``getsta`` in older releases: the filter is the fit's).
"""
import numpy as np
import pytest
import torch

from neurozoo.datasets.retina_h5 import Recording, firing_rates
from neurozoo.retina.fit import create_model, fit

HISTORY = 20
LAGS = np.arange(40)[::-1]  # lag of each window frame (the last frame has lag 0)
TEMPORAL = (LAGS / 3.0) ** 2 * np.exp(-LAGS / 3.0) - 0.5 * (LAGS / 6.0) ** 2 * np.exp(-LAGS / 6.0)
YY, XX = np.mgrid[:50, :50]
SPATIAL = np.exp(-((YY - 22) ** 2 + (XX - 27) ** 2) / (2 * 3.0 ** 2))
TRUE_POST_SPIKE = -2.0 * np.exp(-np.arange(HISTORY) / 3.0)  # lag 1 first: a refractory cell


def _checkers(rng, n):  # 5-pixel binary checkers: 100 independent squares per frame
    return np.repeat(np.repeat(rng.choice(np.array([-1, 1], np.float32), (n, 10, 10)), 5, 1), 5, 2)


def _projections(stimulus):
    """Each frame projected on the spatial profile, and the windows of those projections ending at 39 .. T-1."""
    frames = stimulus.reshape(len(stimulus), -1) @ SPATIAL.ravel()
    return frames, np.lib.stride_tricks.sliding_window_view(frames, 40)


def _recording(stimulus, counts):
    counts = counts[None].astype(np.float32)
    return Recording(path=None, split="train", cells=[0], time=np.arange(len(stimulus)) / 100.0,
                     responses={**firing_rates(counts), "binned": counts}, _stimulus=stimulus)


@pytest.fixture(scope="module")
def glm_cell():
    """A GLM cell: counts[t] ~ Poisson(exp(drive[t] + sum_k h[k] counts[t - k] + log 40 spikes/s) / 100)."""
    rng = np.random.default_rng(0)
    stimulus = _checkers(rng, 20000)
    _, windows = _projections(stimulus)
    drive = windows @ TEMPORAL
    drive = np.concatenate([np.zeros(39), 0.8 * drive / drive.std()])
    counts = np.zeros(len(stimulus))
    for t in range(len(stimulus)):
        past = counts[max(0, t - HISTORY):t][::-1]  # newest first, as TRUE_POST_SPIKE
        counts[t] = rng.poisson(np.exp(drive[t] + TRUE_POST_SPIKE[:len(past)] @ past + np.log(40.0)) / 100)
    return stimulus, counts


def _reference_glm(stimulus, counts):
    """scikit-learn's Poisson GLM on [40 stimulus lags, 20 history counts]: the post-spike filter, lag 1 first."""
    from sklearn.linear_model import PoissonRegressor

    _, windows = _projections(stimulus)
    first = 40
    history = np.lib.stride_tricks.sliding_window_view(counts, HISTORY)[first - HISTORY:len(counts) - HISTORY]
    design = np.hstack([windows[first - 39:] / windows.std(), history])  # counts of frames t-20 .. t-1 for target t
    reference = PoissonRegressor(alpha=0.0, max_iter=1000).fit(design, counts[first:])
    return reference.coef_[40:][::-1]


def test_glm_recovers_a_known_post_spike_filter_as_the_reference_glm_does(glm_cell):
    stimulus, counts = glm_cell
    reference = _reference_glm(stimulus, counts)
    np.testing.assert_allclose(reference[:4], TRUE_POST_SPIKE[:4], atol=0.15)  # the reference is right

    torch.manual_seed(0)
    model = create_model("glm", n_cells=1, rank=1, link="exp")  # the cell's link
    result = fit(model, _recording(stimulus, counts), epochs=8, progress=False, seed=0)  # the default stopping rules
    ours = model.post_spike.detach().numpy()[0][::-1]  # stored oldest first
    print("epochs", len(result.history), "best", result.best_epoch, "\nours", ours[:6].round(2),
          "\nreference", reference[:6].round(2), "\ntruth", TRUE_POST_SPIKE[:6].round(2))
    # measured: ours -1.92 -1.29 -0.87 at lags 1-3 (protocol 9: -1.88 -1.28 -0.83), reference -2.02 -1.44 -1.05, truth
    # -2.00 -1.43 -1.03
    # (before the fix early stopping kept the first epoch, before any history filter was learned: -0.03)
    np.testing.assert_allclose(ours[:3], TRUE_POST_SPIKE[:3], rtol=0.25)
    np.testing.assert_allclose(ours[:3], reference[:3], rtol=0.25)
    assert np.corrcoef(ours, reference)[0, 1] > 0.95
    # the stimulus filter is the cell's (up to what 5-pixel checkers can identify)
    temporal = model.filter.filters()[0].detach().numpy().reshape(40, -1) @ SPATIAL.ravel()
    assert abs(np.corrcoef(temporal, TEMPORAL)[0, 1]) > 0.95


def _ln_nonlinearity(generator):
    return 30 * np.log1p(np.exp(2 * generator - 1))


def test_ln_recovers_a_known_nonlinearity_in_spikes_per_second_and_agrees_with_the_binned_reference():
    """An LN cell rate = 30 softplus(2 g - 1) spikes/s, g the filter output at unit sd. Our LN's parametric softplus
    after its fitted filter gives the cell's rate per decile of g within 15% (or 1.5 spikes/s) -- the scale and
    threshold, not only the shape -- and equals pyret's binned nonlinearity (the mean observed rate per bin of the
    same generator signal) within 15%."""
    rng = np.random.default_rng(1)
    stimulus = _checkers(rng, 10000)
    _, windows = _projections(stimulus)
    scale = (windows @ TEMPORAL).std()
    rate = _ln_nonlinearity(windows @ TEMPORAL / scale)
    counts = rng.poisson(np.concatenate([np.full(39, rate.mean()), rate]) / 100)
    torch.manual_seed(0)
    model = create_model("ln", n_cells=1, rank=1)
    fit(model, _recording(stimulus, counts), epochs=10, batch_size=500, lr=2e-2, progress=False, seed=0)

    from neurozoo.retina.fit import predict

    test = _checkers(rng, 2000)
    generator = _projections(test)[1] @ TEMPORAL / scale
    ours, truth = predict(model, test)[0], _ln_nonlinearity(generator)
    deciles = np.clip(np.searchsorted(np.quantile(generator, np.linspace(0, 1, 11)), generator) - 1, 0, 9)
    ours_binned = np.array([ours[deciles == b].mean() for b in range(10)])
    truth_binned = np.array([truth[deciles == b].mean() for b in range(10)])
    print("ours ", ours_binned.round(1), "\ntruth", truth_binned.round(1))  # measured: 0.5 .. 77.0 / 0.4 .. 83.0
    np.testing.assert_allclose(ours_binned, truth_binned, rtol=0.15, atol=1.5)

    # pyret's recipe on the training data, with our fitted filter: bin the generator signal, average the rate
    filt = model.filter.filters()[0].detach().numpy().reshape(40, -1)
    frames = stimulus.reshape(len(stimulus), -1) @ filt.T  # (T, 40): each frame through each lag's spatial filter
    ours_generator = sum(frames[k:len(frames) - 39 + k, k] for k in range(40))  # windows ending at 39 .. T-1
    observed = counts[39:] * 100.0
    bins = np.clip(np.searchsorted(np.quantile(ours_generator, np.linspace(0, 1, 11)), ours_generator) - 1, 0, 9)
    centres = np.array([ours_generator[bins == b].mean() for b in range(10)])
    binned = np.array([observed[bins == b].mean() for b in range(10)])
    with torch.no_grad():
        parametric = (model.alpha * torch.nn.functional.softplus(model.beta * torch.as_tensor(centres, dtype=torch.float32)
                                                                 + model.bias)).numpy()
    print("parametric", parametric.round(1), "\nbinned    ", binned.round(1))
    np.testing.assert_allclose(parametric, binned, rtol=0.15, atol=1.5)


def test_the_ln_and_glm_l2_acts_on_the_stored_filter_factors_not_on_the_full_filter_as_deep_retina():
    """deep-retina's LN model (deepretina/models.py ``linear_nonlinear(x, n_out, activation='softplus', l2_reg=0.01)``,
    the Keras 2 version: ``Dense(n_out, kernel_regularizer=l2(l2_reg))`` on the flattened window) puts Keras'
    ``l2(0.01)``, ``0.01 * sum(k^2)``, on its full-rank filter ``k``; scripts/fit_glms.py (64a39f3, lines 32-45 and 88)
    TensorFlow's ``1e-4 * sum(k^2) / 2`` on the GLM's full filter. Ours (the zoo protocol, a named deviation in the
    README): ``l2 * sum(p^2)`` on the parameters ``filter.spatial`` and ``filter.temporal``, which hold the filter's
    factors times 50 (the frame side) and sqrt(40) (``LowRankFilter.weights``: Adam's per-entry steps), i.e.
    ``l2 * (2500 |s|^2 + 40 |t|^2)`` in the factors' own units: not a function of the filter, and at its lowest over
    the factors' split 2 * 50 * sqrt(40) = 632 times ``l2 * sum_r |s_r| |t_r|`` (the filter's Frobenius norm at rank
    1), not ``l2 * |k|^2``."""
    from neurozoo.retina.fit import regularization

    for name in ("ln", "glm"):
        torch.manual_seed(0)
        model = create_model(name, n_cells=3)
        spatial, temporal = model.filter.weights()
        with torch.no_grad():
            penalty = float(regularization(model, torch.zeros(2, 3), l2=1.0, l1=0.0))
            factors = float(2500 * (spatial ** 2).sum() + 40 * (temporal ** 2).sum())
            if name == "glm":  # and its post-spike filter (post_spike_penalty="filter", the default)
                factors += float((model.post_spike ** 2).sum())
            filters = model.filter.filters().clone()
        assert penalty == pytest.approx(factors, rel=1e-5), name
        assert penalty > 1e4 * float((filters ** 2).sum()), name  # deep-retina's sum(k^2) is another penalty
        # the same filter, split otherwise between its factors, is penalised otherwise
        with torch.no_grad():
            model.filter.spatial.mul_(2.0)
            model.filter.temporal.div_(2.0)
            torch.testing.assert_close(model.filter.filters(), filters)
            moved = float(regularization(model, torch.zeros(2, 3), l2=1.0, l1=0.0))
        assert abs(moved - penalty) > 0.1 * penalty, name


def test_filter_l2_puts_the_penalty_on_the_assembled_filter_a_function_of_the_filter_alone():
    """``filter_l2`` (``zoo fit --filter-l2``): ``filter_l2 * sum(k^2)`` on the assembled filter ``k =
    LowRankFilter.filters()`` (deep-retina's ``linear_nonlinear``: 0.01) in place of ``l2`` on the stored factors, so
    the same filter split otherwise between its factors (``s * a``, ``t / a``) is penalised alike, which the default
    (pinned above, unchanged) is not. The GLM's post-spike filter stays under ``l2``."""
    from neurozoo.retina.fit import regularization

    rates = torch.rand(4, 3)
    for name in ("ln", "glm"):
        torch.manual_seed(1)
        model = create_model(name, n_cells=3, rank=2)
        with torch.no_grad():
            model.filter.spatial.normal_()  # factors of their own scales, not the start's
            model.filter.temporal.normal_()
        assembled = 0.01 * (model.filter.filters().double() ** 2).sum()
        rest = 1e-3 * float((model.post_spike ** 2).sum()) if name == "glm" else 0.0
        l1 = float(rates.abs().sum(1).mean()) * 1e-3
        penalty = regularization(model, rates, l2=1e-3, l1=1e-3, filter_l2=0.01)
        assert float(penalty) == pytest.approx(float(assembled) + rest + l1, rel=1e-5), name
        default = float(regularization(model, rates, l2=1e-3, l1=1e-3))
        assert default > 10 * float(penalty), name  # measured ~600x on these factors: another penalty
        # the gradient reaches the factors (through the Gram of the factors, not a detached number)
        penalty.backward()
        assert model.filter.spatial.grad.abs().max() > 0 and model.filter.temporal.grad.abs().max() > 0
        with torch.no_grad():
            for a in (3.0, 0.1):
                before = model.filter.filters().clone()
                model.filter.spatial.mul_(a)
                model.filter.temporal.div_(a)
                torch.testing.assert_close(model.filter.filters(), before)
                moved = float(regularization(model, rates, l2=1e-3, l1=1e-3, filter_l2=0.01))
                assert moved == pytest.approx(float(penalty), rel=1e-5), (name, a)
                assert abs(float(regularization(model, rates, l2=1e-3, l1=1e-3)) - default) > 0.1 * default
                model.filter.spatial.div_(a)
                model.filter.temporal.mul_(a)
        # l2 0 leaves the filter's own penalty; filter_l2 0 leaves the filter unpenalised, the rest under l2
        assert float(regularization(model, rates, l2=0.0, l1=0.0, filter_l2=0.01)) == pytest.approx(float(assembled),
                                                                                                   rel=1e-5)
        assert float(regularization(model, rates, l2=1e-3, l1=0.0, filter_l2=0.0)) == pytest.approx(rest, rel=1e-5)


def test_the_glm_l2_penalty_acts_on_the_post_spike_filter_with_the_option_as_deep_retina_does():
    """deep-retina's GLMs penalise the history filter's own coefficients (deepretina/glms.py ``train_on_batch``:
    ``0.5 * l2[key] * ||theta[key]||^2`` for every parameter group, lines 75-77 at 117ccd0; key ``'history'``; scripts/glm.py at 09c8449:
    ``Feature(..., l2=l2_hist_params)`` line 44, ``l2_hist_params = 1.0`` line 28), so
    the penalty pulls the filter towards 0. Ours stores ``post_spike_raw`` with filter ``-softplus(raw)``, and by
    default (protocol 8's cached fits) penalises the raw parameter: towards raw 0, a filter of -softplus(0) = -0.69
    per lag. ``post_spike_penalty="filter"`` penalises the filter; the default is unchanged to the bit."""
    from neurozoo.retina.fit import regularization

    rates = torch.ones(4, 3)
    for mode, towards_zero in (("raw", False), ("filter", True)):
        torch.manual_seed(0)
        model = create_model("glm", n_cells=3, post_spike_penalty=mode)
        penalty = regularization(model, rates, l2=1e-3, l1=0.0)
        weights = [model.post_spike if mode == "filter" else model.post_spike_raw, model.filter.spatial,
                   model.filter.temporal]
        assert torch.equal(penalty, 1e-3 * sum((w ** 2).sum() for w in weights))
        if mode == "raw":  # the rule every other model follows (parameters with ndim > 1, no bias): the same sum
            generic = sum((p ** 2).sum() for name, p in model.named_parameters() if p.dim() > 1 and "bias" not in name)
            assert torch.equal(penalty, 1e-3 * generic)
        before = model.post_spike.detach().abs().sum()
        penalty.backward()
        with torch.no_grad():  # one descent step on the penalty alone
            model.post_spike_raw -= 100.0 * model.post_spike_raw.grad
        assert (model.post_spike.detach().abs().sum() < before) == towards_zero, mode
    with pytest.raises(ValueError, match="post_spike_penalty"):
        create_model("glm", n_cells=3, post_spike_penalty="weights")


def _glm_cell_10px(rng, n, filt, post_spike, base=20.0):
    """Counts of a GLM cell under 10x10 Gaussian white noise, and its true expected counts per frame."""
    stimulus = rng.standard_normal((n, 10, 10)).astype(np.float32)
    windows = np.lib.stride_tricks.sliding_window_view(stimulus.reshape(n, -1), 40, axis=0)  # (n - 39, 100, 40)
    drive = np.concatenate([np.zeros(39), np.einsum("tpl,lp->t", windows, filt)])
    counts, expected = np.zeros(n), np.zeros(n)
    for t in range(n):
        past = counts[max(0, t - HISTORY):t][::-1]  # newest first, as post_spike
        expected[t] = np.exp(drive[t] + post_spike[:len(past)] @ past + np.log(base)) / 100
        counts[t] = rng.poisson(expected[t])
    return stimulus, counts, expected


def test_glm_default_stopping_reaches_the_known_cells_likelihood_where_the_old_rule_stopped_short():
    """Fitting protocol 10. The correlation with binned counts is noise-limited and Adam at 1e-3 raises it a little
    per epoch, so the other models' stopping rule (a gain of 0.01 within 2 epochs) ended the GLM's fit after 3 of the
    ~24 epochs its validation correlation rose for on the embedded recording (held-out r 0.440 against 0.517). Here a
    cell generated by a known GLM (rank-1 filter, refractory post-spike filter): on fresh data with the observed
    history, the default fit gains at least 85% of the true model's log-likelihood gain over a constant rate (the
    known optimum; scikit-learn's Poisson GLM knowing the spatial profile gains 98%), and recovers the filters;
    the old rule does not."""
    filt, stimulus, counts, y, expected, windows, history = _refractory_cell(n_test=10000)

    def nll(mean):  # Poisson negative log-likelihood per frame, up to the constant log(y!)
        return float(np.mean(mean - y * np.log(mean)))

    null, optimum = nll(np.full(len(y), counts.mean())), nll(expected)
    fits = {}
    for rule, settings in (("old", {"min_delta": 0.01, "patience": 2}), ("default", {})):
        torch.manual_seed(0)
        model = create_model("glm", n_cells=1, rank=1, frame_size=10, link="exp")  # the cell's link
        result = fit(model, _recording(stimulus, counts), progress=False, seed=0, **settings)
        with torch.no_grad():
            mean = model(windows, history=history)[:, 0].double().numpy() / 100  # spikes/s -> counts per frame
        fits[rule] = {"epochs": len(result.history), "gain": (null - nll(mean)) / (null - optimum),
                      "filter": np.corrcoef(model.filter.filters()[0].detach().numpy().ravel(), filt.ravel())[0, 1],
                      "post_spike": model.post_spike.detach().numpy()[0][::-1][:3]}
    print(fits)
    # measured: old 5 epochs, 0.80 of the gain, filter r 0.90, post-spike -1.67 -1.09 -0.56; default 30 epochs, 0.91,
    # 0.96, -1.94 -1.37 -0.92 (true -2.00 -1.43 -1.03)
    assert fits["default"]["epochs"] > fits["old"]["epochs"]
    assert fits["default"]["gain"] > 0.85 > fits["old"]["gain"]
    assert fits["default"]["filter"] > 0.94 > fits["old"]["filter"]
    np.testing.assert_allclose(fits["default"]["post_spike"], TRUE_POST_SPIKE[:3], atol=0.2)
    assert np.abs(fits["old"]["post_spike"] - TRUE_POST_SPIKE[:3]).max() > 0.3


def test_ln_at_rank_40_is_deep_retinas_ln():
    """deep-retina deepretina/models.py at 60cb3a3 (Keras 1, beside ``nips_conv``), ``ln(input_shape, nout)``
    (lines 46-67): ``Flatten(input_shape=input_shape)`` -> ``Dense(nout)`` (bias) -> ``ParametricSoftplus()``
    (lines 64-66; Keras 1's ``alphas * softplus(betas * x)``, one alpha and beta per cell). Written out as torch
    modules (Keras's Dense ``x @ W + b`` is ``nn.Linear`` with ``weight = W.T``). The later functional
    ``linear_nonlinear`` (``Flatten`` -> ``Dense(n_out)`` -> ``Activation('softplus')``) is the case alpha = beta = 1.
    Our LN at ``rank=40`` (a 40 x 2500 filter has rank <= 40) computes that graph for any weights, loaded by an SVD of
    each cell's filter (its bias outside the beta: ``bias = beta * b``): on windows and on a contiguous movie."""
    from neurozoo.retina.models.bncnn import windows

    torch.manual_seed(0)
    n_cells = 3
    dense = torch.nn.Linear(40 * 50 * 50, n_cells).double()
    alphas, betas = torch.rand(n_cells, dtype=torch.float64) + 0.5, torch.rand(n_cells, dtype=torch.float64) + 0.5
    with torch.no_grad():
        dense.weight.normal_(0.0, 0.01)
        dense.bias.uniform_(-0.5, 0.5)

    def reference(x):
        return alphas * torch.nn.functional.softplus(betas * dense(x.flatten(1)))

    model = create_model("ln", n_cells=n_cells, rank=40).double()
    low_rank = model.filter
    with torch.no_grad():
        for c in range(n_cells):
            u, s, vh = torch.linalg.svd(dense.weight[c].view(40, 50 * 50), full_matrices=False)
            rows = slice(c * 40, (c + 1) * 40)
            low_rank.temporal[rows] = (u * s).T / low_rank.temporal_scale
            low_rank.spatial[rows] = vh / low_rank.spatial_scale
        model.alpha.copy_(alphas)
        model.beta.copy_(betas)
        model.bias.copy_(betas * dense.bias)
        x = 2.0 * torch.randn(6, 40, 50, 50, dtype=torch.float64)
        torch.testing.assert_close(model(x), reference(x), rtol=1e-9, atol=1e-12)
        movie = 2.0 * torch.randn(39 + 5, 50, 50, dtype=torch.float64)
        torch.testing.assert_close(model.forward_movie(movie), reference(windows(movie)), rtol=1e-9, atol=1e-12)


def _white_noise_filter_10px():
    """A unit-norm rank-1 filter on 10x10 frames (drive sd 1 under unit white noise): this file's kinetics."""
    spatial = np.exp(-((np.mgrid[:10, :10] - np.array([4.5, 5.0])[:, None, None]) ** 2).sum(0) / (2 * 1.5 ** 2))
    filt = np.outer(TEMPORAL, spatial.ravel())
    return filt / np.linalg.norm(filt)


def _refractory_cell(n_test: int):
    """A refractory cell (this file's kinetics and post-spike filter) on 10x10 white noise: its filter, 20000 training
    frames and counts, and ``n_test`` fresh frames set for one-frame-ahead prediction from the observed past spikes:
    the counts from the first target with a full window and history on, their true means, windows and histories."""
    filt = _white_noise_filter_10px()
    rng = np.random.default_rng(0)
    stimulus, counts, _ = _glm_cell_10px(rng, 20000, filt, TRUE_POST_SPIKE)
    test, test_counts, expected = _glm_cell_10px(rng, n_test, filt, TRUE_POST_SPIKE)
    first = 40
    windows = torch.as_tensor(test).unfold(0, 40, 1).permute(0, 3, 1, 2)[first - 39:]
    history = torch.as_tensor(test_counts, dtype=torch.float32).unfold(0, HISTORY, 1)[first - HISTORY:-1, None]
    return filt, stimulus, counts, test_counts[first:], expected[first:], windows, history


def _ln_cell_10px(rng, n, filt):
    """An LN cell without spike history: counts ~ Poisson(20 softplus(1.5 g - 1) spikes/s), g = filter output (sd 1)."""
    stimulus = rng.standard_normal((n, 10, 10)).astype(np.float32)
    windows = np.lib.stride_tricks.sliding_window_view(stimulus.reshape(n, -1), 40, axis=0)  # (n - 39, 100, 40)
    generator = np.concatenate([np.zeros(39), np.einsum("tpl,lp->t", windows, filt)])
    rate = 20.0 * np.log1p(np.exp(1.5 * generator - 1.0))
    return stimulus, rng.poisson(rate / 100), rate


def test_glm_on_an_ln_cell_comes_within_the_ln_models_own_error():
    """Fitting protocol 11. A cell generated by an LN process is a GLM whose post-spike filter is zero, so the GLM
    should predict it about as well as the LN model. Asserted margin, from the data and not tuned: the GLM's held-out
    correlation with the true rate falls short of the LN model's by less than the LN model's own shortfall from the
    truth (1 - r_LN: what the finite, noisy training set costs a fit of the right model class). Before protocol 11
    (exp link, the L2 penalty pulling the post-spike filter towards -0.69 per lag) it did not: the exponential cannot
    follow the cell's softplus, and the counts' noise was fitted as refractoriness."""
    filt = _white_noise_filter_10px()
    rng = np.random.default_rng(0)
    stimulus, counts, _ = _ln_cell_10px(rng, 20000, filt)
    test, _, truth = _ln_cell_10px(rng, 3000, filt)
    from neurozoo.retina.fit import predict

    r, recovered = {}, {}
    for name in ("ln", "glm"):
        torch.manual_seed(0)
        model = create_model(name, n_cells=1, rank=1, frame_size=10)
        fit(model, _recording(stimulus, counts), progress=False, seed=0)  # the models' default protocols
        r[name] = np.corrcoef(predict(model, test)[0], truth[39:])[0, 1]
        recovered[name] = np.corrcoef(model.filter.filters()[0].detach().numpy().ravel(), filt.ravel())[0, 1]
    print(r, recovered)
    # measured (protocol 11): LN r 0.955, filter 0.965; GLM 0.934, 0.949 (protocol 10: 0.904, 0.931)
    assert r["glm"] > r["ln"] - (1.0 - r["ln"])
    assert recovered["glm"] > 0.94 and recovered["ln"] > 0.94


def test_on_a_refractory_cell_the_glm_beats_the_ln_model_which_fails():
    """The wrong model class fails. A cell with real refractoriness (this file's post-spike filter, -2.0 at lag 1):
    on fresh data, predicted one frame ahead from the observed past spikes, the GLM's log-likelihood beats the LN
    model's by more than 3 standard errors of the paired per-frame difference, and the LN model (no history) gains
    less than 85% of the true model's log-likelihood gain over a constant rate, the GLM more."""
    _, stimulus, counts, y, expected, windows, history = _refractory_cell(n_test=5000)

    def nll(mean):  # Poisson negative log-likelihood per frame, up to the constant log(y!)
        return mean - y * np.log(mean)

    null, optimum = nll(np.full(len(y), counts.mean())).mean(), nll(expected).mean()
    frames, gain = {}, {}
    for name in ("ln", "glm"):
        torch.manual_seed(0)
        model = create_model(name, n_cells=1, rank=1, frame_size=10)
        fit(model, _recording(stimulus, counts), progress=False, seed=0)
        with torch.no_grad():
            rates = model(windows, history=history) if name == "glm" else model(windows)
        frames[name] = nll(rates[:, 0].double().numpy() / 100)  # spikes/s -> counts per frame
        gain[name] = (null - frames[name].mean()) / (null - optimum)
    difference = frames["ln"] - frames["glm"]
    z = difference.mean() / (difference.std(ddof=1) / np.sqrt(len(difference)))
    print(gain, z)
    # measured: LN 0.43 of the gain, GLM 0.89, z 10.3 (the GLM ignoring its history, a planted bug: fails)
    assert z > 3
    assert gain["ln"] < 0.85 < gain["glm"]


def test_glm_weights_of_the_exp_link_are_refused_by_a_softplus_glm(tmp_path):
    """Weights of a GLM fitted before protocol 11 have no ``rate_scale`` and were fitted through the exponential link.
    Read into the default GLM (softplus since protocol 11: ``zoo probe --checkpoint`` builds it so) they had been
    filled with rate_scale 1 and scored as another model, unsaid; an exp-link GLM still reads them."""
    from neurozoo.datasets.errors import DataError
    from neurozoo.retina.embedded_fit import load_checkpoint

    old = create_model("glm", n_cells=2, link="exp", post_spike_penalty="raw")
    with torch.no_grad():
        old.bias.fill_(1.5)
    state = {k: v for k, v in old.state_dict().items() if k != "rate_scale"}  # as protocol 10 saved them
    torch.save(state, tmp_path / "model.pt")
    with pytest.raises(DataError, match=r"model\.pt: .*before fitting protocol 11, with the exponential link"):
        load_checkpoint(create_model("glm", n_cells=2), tmp_path / "model.pt")
    again = load_checkpoint(create_model("glm", n_cells=2, link="exp", post_spike_penalty="raw"), tmp_path / "model.pt")
    x = torch.randn(3, 40, 50, 50)
    with torch.no_grad():
        assert torch.equal(again(x), old.eval()(x))


@pytest.mark.parametrize("saved_link, loading_link", [("exp", "softplus"), ("softplus", "exp")])
def test_glm_weights_say_their_link_and_another_links_glm_refuses_them(tmp_path, saved_link, loading_link):
    """The link was not in a GLM's state dict: weights fitted through one link loaded into a GLM of the other and were
    scored as another model, unsaid. They carry their link now; a GLM of the other link refuses them, naming both."""
    from neurozoo.datasets.errors import DataError
    from neurozoo.retina.embedded_fit import load_checkpoint

    torch.save(create_model("glm", n_cells=2, link=saved_link).state_dict(), tmp_path / "model.pt")
    with pytest.raises(DataError, match=rf"model\.pt: .*weights of a GLM with the {saved_link} link; this GLM's link is "
                                        rf"{loading_link} \(load them into GLM\(link='{saved_link}'\)"):
        load_checkpoint(create_model("glm", n_cells=2, link=loading_link), tmp_path / "model.pt")
    load_checkpoint(create_model("glm", n_cells=2, link=saved_link), tmp_path / "model.pt")  # its own link reads them


def test_a_protocol_10_glm_checkpoint_is_not_resumed_by_the_softplus_glm(tmp_path):
    """A zoo fit folder holding a GLM checkpoint of protocol 10 (exp link, no rate_scale): the rerun under protocol 11
    resumed it through the softplus link as if it were its own; it is refused now, naming the file and what to do,
    as a checkpoint of other settings is (a DataError, not a traceback)."""
    from neurozoo.datasets.errors import DataError
    from neurozoo.datasets.synthetic_retina import load_embedded_retina

    data = load_embedded_retina("whitenoise", n_train=2500, n_test=200, n_repeats=2)
    out = tmp_path / "fit"
    torch.manual_seed(0)
    fit(create_model("glm", n_cells=12), data, out=out, epochs=1, max_steps_per_epoch=2, progress=False)
    saved = torch.load(out / "checkpoint.pt", weights_only=False)
    for state in (saved["model"], saved.get("best_state") or {}):
        state.pop("rate_scale", None)  # as protocol 10 saved them
    torch.save(saved, out / "checkpoint.pt")
    with pytest.raises(DataError, match=r"checkpoint\.pt: weights without rate_scale: a GLM fitted before fitting "
                                        r"protocol 11.*start afresh \(resume=False / --no-resume\)"):
        fit(create_model("glm", n_cells=12), data, out=out, epochs=2, max_steps_per_epoch=2, progress=False)


def _fit_glms_open_loop(model, stimulus, binned):
    """deep-retina scripts/fit_glms.py (64a39f3) scoring its GLM on the test split: the test feed carries the split's
    ``spkhist`` (lines 136-138, ``datafeed`` lines 67-71), which loadexpt builds as ``rolling_window(binned, history)``
    beside ``resp[history:]`` (torchdeepretina/datas.py ``loadexpt``, the ``spk_hist`` lines, and its
    ``rolling_window``): row i holds the counts of frames i .. i+H-1 and predicts frame i+H. The prediction is the
    link of the stimulus drive plus the history filter's dot product plus the intercept (``GLM._build`` lines 30-51);
    our link (``rate_scale * softplus``) and our filters, in float64 NumPy. Targets 39 .. T-1, as ours."""
    H = model.history
    array = np.asarray(binned, np.float64).T  # rolling_window(binned (T, C), H, time_axis=0): over the transpose
    shape = array.shape[:-1] + (array.shape[-1] - H, H)
    arr = np.lib.stride_tricks.as_strided(array, shape=shape, strides=array.strides + (array.strides[-1],))
    spkhist = np.rollaxis(arr.T, 1, 0)  # (T - H, H, C): row i = frames i .. i+H-1
    spkhist = spkhist.transpose(0, 2, 1)  # (T - H, C, H), as our filter's (cells, lags)
    with torch.no_grad():
        windows = np.lib.stride_tricks.sliding_window_view(stimulus, 40, axis=0).copy()
        windows = torch.as_tensor(windows).permute(0, 3, 1, 2)  # (T - 39, 40, 50, 50)
        drive = model.filter(windows.float()).double().numpy()  # targets 39 .. T-1
    h = model.post_spike.detach().double().numpy()
    b, scale = model.bias.detach().double().numpy(), model.rate_scale.double().numpy()
    rows = spkhist[np.arange(39, stimulus.shape[0]) - H]  # the row predicting frame t starts at t - H
    u = drive + (rows * h[None]).sum(-1) + b
    return (scale * np.logaddexp(0.0, u)).T


def test_glm_heldout_observed_history_is_deep_retinas_open_loop_prediction(tmp_path):
    """``evaluate(heldout_history="observed")`` / ``predict(observed_history=)`` score a GLM as deep-retina's
    scripts/fit_glms.py does (its test counts as history, one frame ahead), against a reference written from it; the
    default simulates the model on its own spikes and gives another number."""
    from neurozoo.datasets.errors import DataError
    from neurozoo.datasets.retina_h5 import read_experiment
    from neurozoo.datasets.synthetic_retina import generate_recording
    from neurozoo.retina.fit import evaluate, predict

    path = generate_recording(tmp_path / "wn.h5", n_train=200, n_test=160, n_repeats=3)
    test = read_experiment(path, "test")
    torch.manual_seed(0)
    model = create_model("glm", n_cells=len(test.cells)).eval()
    with torch.no_grad():  # a history filter that matters, an intercept and a rate scale away from their defaults
        model.post_spike_raw.copy_(torch.randn(model.post_spike_raw.shape))
        model.bias.normal_(0, 0.5)
        model.rate_scale.uniform_(5, 20)
        model.filter.spatial.mul_(30)
    binned = test.response("binned")
    assert binned.any()
    ours = predict(model, test.stimulus, observed_history=binned)
    np.testing.assert_allclose(ours, _fit_glms_open_loop(model, test.stimulus.astype(np.float32), binned.T),
                               rtol=2e-5, atol=1e-5)
    observed = evaluate(model, path, heldout_history="observed")
    simulated = evaluate(model, path)
    assert (observed.correlation - simulated.correlation).abs().max() > 1e-3
    with pytest.raises(DataError, match="heldout_history must be one of"):
        evaluate(model, path, heldout_history="open")
    with pytest.raises(DataError, match=r"observed_history: expected binned counts \(n_cells, T\)"):
        predict(model, test.stimulus, observed_history=binned[:, 1:])


@pytest.mark.filterwarnings("ignore:.*the validation r is noise at this size")
def test_zoo_fit_heldout_history_observed_scores_as_evaluate_and_records_it(tmp_path, capsys):
    """``zoo fit glm --heldout-history observed``: the held-out metrics written are ``evaluate(...,
    heldout_history="observed")``'s of the fitted weights, and summary.json says which mode produced them (the
    default, simulated, gives another number). A model without spike history is refused, naming it, before a fit."""
    import json

    import pandas as pd

    from neurozoo.datasets.synthetic_retina import generate_recording
    from neurozoo.leaderboard.cli import main as zoo
    from neurozoo.datasets.errors import DataError
    from neurozoo.retina.fit import evaluate

    path = generate_recording(tmp_path / "wn.h5", n_train=2000, n_test=160, n_repeats=3)
    argv = ["fit", "glm", "--data", str(path), "--epochs", "1", "--quiet"]
    assert zoo([*argv, "--out", str(tmp_path / "observed"), "--heldout-history", "observed"]) == 0
    assert zoo([*argv, "--out", str(tmp_path / "simulated")]) == 0
    written = {mode: pd.read_csv(tmp_path / mode / "heldout_metrics.csv", index_col="cell")
               for mode in ("observed", "simulated")}
    model = create_model("glm", n_cells=len(written["observed"]))
    model.load_state_dict(torch.load(tmp_path / "observed" / "model.pt"))
    expected = evaluate(model, path, heldout_history="observed")
    pd.testing.assert_frame_equal(written["observed"], expected, check_names=False, rtol=1e-6)
    # the same weights (same seed and settings), scored on their own spikes: another number
    assert (written["observed"].correlation - written["simulated"].correlation).abs().max() > 1e-3
    for mode in ("observed", "simulated"):
        assert json.loads((tmp_path / mode / "summary.json").read_text())["heldout_history"] == mode
    capsys.readouterr()
    assert zoo(["fit", "ln", "--data", str(path), "--epochs", "1", "--quiet", "--out", str(tmp_path / "ln"),
                "--heldout-history", "observed"]) == 2
    assert "--heldout-history observed: the retina model 'ln' has no spike history" in capsys.readouterr().err
    assert not (tmp_path / "ln").exists()  # refused before its folder was made
    assert zoo(["fit", "ln", "--data", str(path), "--epochs", "1", "--quiet", "--out", str(tmp_path / "ln")]) == 0
    assert json.loads((tmp_path / "ln" / "summary.json").read_text())["heldout_history"] is None
    # the API too: evaluate scored such a model simulated while the caller asked for (and recorded) observed
    with pytest.raises(DataError, match=r"^heldout_history='observed': the retina model LN has no spike history"):
        evaluate(create_model("ln", n_cells=len(written["observed"])), path, heldout_history="observed")


def _fit_glms_objective(filters, post_spike, bias, pred, rate):
    """deep-retina scripts/fit_glms.py at 64a39f3, in float64 NumPy, one cell at a time as it fits them, summed over
    the cells: ``GLM(l2_filter=1e-4, l2_hist=1e-2)`` (line 88) with ``tf.contrib.layers.l2_regularizer(l2_filter)`` on
    the stimulus filter's weights (line 32) and ``l2_regularizer(l2_hist)`` on the history weights ``'w'`` and the
    intercept ``'b'`` (lines 38-45); TensorFlow's ``l2_regularizer(scale)(w)`` is ``scale * tf.nn.l2_loss(w)`` and
    ``l2_loss(w) = sum(w ** 2) / 2``; ``opt.minimize(loss + reg_total)`` (lines 98-100), ``reg_total`` the sum of the
    REGULARIZATION_LOSSES collection; ``loss = dt * tf.reduce_mean(pred - rate * tf.log(pred + epsilon))`` with
    ``epsilon = 1e-6``, ``dt = 1e-2`` (lines 91-94). No penalty on the rates."""
    def l2_loss(w):
        return np.sum(np.asarray(w, np.float64) ** 2) / 2

    total = 0.0
    for c in range(len(bias)):
        reg_total = 1e-4 * l2_loss(filters[c]) + 1e-2 * l2_loss(post_spike[c]) + 1e-2 * l2_loss(bias[c])
        p, r = pred[:, c].astype(np.float64), rate[:, c].astype(np.float64)
        total += 1e-2 * np.mean(p - r * np.log(p + 1e-6)) + reg_total
    return total


def test_the_glms_deep_retina_objective_is_fit_glms_loss_and_penalties():
    """``objective="deep-retina"`` minimises deep-retina's scripts/fit_glms.py objective (its loss with dt, TensorFlow's
    halved L2 at 1e-4 on the stimulus filter and 1e-2 on the history weights and the intercept, no L1): against a
    reference written from its lines, for a GLM with known weights (rank 2, a full filter that is not one factor's
    norm times the other's). The zoo's penalty on the same weights is another number (1e-3 * sum(w^2) on the factors
    and the post-spike filter, the intercept free, L1 on the rates)."""
    from neurozoo.retina.fit import deep_retina_objective, regularization

    torch.manual_seed(0)
    model = create_model("glm", n_cells=3, rank=2)
    with torch.no_grad():
        model.post_spike_raw.copy_(torch.randn(model.post_spike_raw.shape))
        model.bias.copy_(torch.tensor([0.5, -1.0, 2.0]))
        model.filter.spatial.normal_(0, 30.0)  # a filter term of the size of the others
    rng = np.random.default_rng(0)
    pred = rng.uniform(0.5, 80, (64, 3)).astype(np.float32)
    rate = (rng.poisson(0.3, (64, 3)) * 100.0).astype(np.float32)  # binned counts in spikes/s, zeros among them
    filters = model.filter.filters().detach().double().numpy().reshape(3, -1)  # the full (40, 50, 50) filter per cell
    raw = model.post_spike_raw.detach().double().numpy()
    post_spike = -np.logaddexp(0.0, raw)  # -softplus(raw), the history weights
    expected = _fit_glms_objective(filters, post_spike, model.bias.detach().double().numpy(), pred, rate)
    ours = deep_retina_objective(model, torch.as_tensor(pred), torch.as_tensor(rate)).detach()
    np.testing.assert_allclose(float(ours), expected, rtol=1e-5)
    penalty = model.deep_retina_penalty().item()  # the penalty alone, as TensorFlow's reg_total
    reg_total = sum(1e-4 * np.sum(filters[c] ** 2) / 2 + 1e-2 * (np.sum(post_spike[c] ** 2) + model.bias[c].item() ** 2)
                    / 2 for c in range(3))
    np.testing.assert_allclose(penalty, reg_total, rtol=1e-5)
    assert penalty > 0.05 * abs(expected)  # the penalty is not lost in the loss: the comparison above sees it
    zoo_penalty = regularization(model, torch.as_tensor(pred), l2=1e-3, l1=1e-3).item()
    assert abs(zoo_penalty - penalty) > 0.1 * penalty


def _fits_with_and_without(tmp_path, capsys, model, options, setting, values, folders):
    """The shared part of a fit setting's test: ``zoo fit <model>`` on one synthetic recording with ``options`` (the
    setting ``setting`` at ``values[0]``) into ``tmp_path / folders[0]``, and without them (its default, ``values[1]``)
    into ``tmp_path / folders[1]``, same seed and steps. Each fit records its value (summary.json's provenance
    settings, history.json's config); the default's settings into the other's folder are a fit with other settings,
    not resumed; and the default's checkpoint written before the setting (without it: read as the default) is not
    resumed with the setting. Returns the recording's path, the command's arguments before ``--out`` and the two
    folders' weights (``model.pt``), by folder."""
    import json

    from neurozoo.datasets.synthetic_retina import generate_recording
    from neurozoo.leaderboard.cli import main as zoo
    from neurozoo.retina.fit import ResumeRefused

    path = generate_recording(tmp_path / "wn.h5", n_train=2000, n_test=160, n_repeats=3)
    argv = ["fit", model, "--data", str(path), "--epochs", "1", "--batch-size", "64", "--quiet"]
    assert zoo([*argv, "--out", str(tmp_path / folders[0]), *options]) == 0
    assert zoo([*argv, "--out", str(tmp_path / folders[1])]) == 0
    weights = {name: torch.load(tmp_path / name / "model.pt") for name in folders}
    for name, value in zip(folders, values):
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        assert summary["provenance"]["settings"][setting] == value
        assert json.loads((tmp_path / name / "history.json").read_text())["config"][setting] == value
    capsys.readouterr()
    assert zoo([*argv, "--out", str(tmp_path / folders[0])]) == 2
    assert f"a fit with other settings ({setting} {values[0]} -> {values[1]})" in capsys.readouterr().err
    checkpoint = tmp_path / folders[1] / "checkpoint.pt"
    saved = torch.load(checkpoint, weights_only=False)
    del saved["config"][setting]
    torch.save(saved, checkpoint)
    with pytest.raises(ResumeRefused, match=f"{setting} {values[1]} -> {values[0]}"):
        fit(create_model(model, n_cells=weights[folders[1]]["bias"].shape[0]), str(path), out=tmp_path / folders[1],
            epochs=1, batch_size=64, progress=False, **{setting: values[0]})
    return path, argv, weights


@pytest.mark.filterwarnings("ignore:.*the validation r is noise at this size")
def test_a_glm_fit_with_the_deep_retina_objective_differs_records_it_and_never_shares_a_fit(tmp_path, capsys):
    """``zoo fit glm --objective deep-retina``: fitted by that objective (other weights than the default's, same seed
    and steps), recorded (summary.json's provenance.settings, history.json's config, the checkpoint), a resume by the
    other objective refused either way (a checkpoint written before the setting is the zoo's), and another folder of
    the fit cache; refused for a model without the GLM's penalty groups and beside --l2 / --l1, before a fit."""
    from neurozoo.datasets.errors import SpecError
    from neurozoo.leaderboard.cli import main as zoo
    from neurozoo.retina.embedded_fit import fit_dir

    # a checkpoint written before the objective was a setting is the zoo's
    path, argv, weights = _fits_with_and_without(tmp_path, capsys, "glm", ["--objective", "deep-retina"],
                                                 "objective", ("deep-retina", "zoo"), ("deep-retina", "zoo"))
    assert (weights["deep-retina"]["bias"] - weights["zoo"]["bias"]).abs().max() > 1e-3  # measured 6.6e-3
    assert (weights["deep-retina"]["filter.spatial"] - weights["zoo"]["filter.spatial"]).abs().max() > 1e-3  # 0.022

    def folder(name, **settings):
        return fit_dir(path, name, "whitenoise", 0, settings)

    assert folder("glm", objective="deep-retina") != folder("glm") == folder("glm", objective="zoo")
    # the model's name as given and the models the objective applies to, not the class (RetinaCNN) and the glm alone
    for name in ("ln", "bncnn"):
        with pytest.raises(SpecError, match=rf"^fit settings: --objective deep-retina .* applies to glm only, .*; "
                                            rf"{name} names none$"):
            folder(name, objective="deep-retina")
    with pytest.raises(SpecError, match=r"applies to glm only, .*; RetinaCNN names none$"):  # the API: a model, no name
        fit(create_model("bncnn", n_cells=2), str(path), epochs=1, objective="deep-retina", progress=False)
    with pytest.raises(SpecError, match=r"l2 is the zoo objective's .* \(got 0.01\)"):
        folder("glm", objective="deep-retina", l2=0.01)
    with pytest.raises(SpecError, match=r"objective must be one of \('zoo', 'deep-retina'\)"):
        folder("glm", objective="tf")
    assert zoo([*argv, "--out", str(tmp_path / "l1"), "--objective", "deep-retina", "--l1", "0"]) == 2
    assert "--l1: the zoo objective's penalties; --objective deep-retina has its own" in capsys.readouterr().err
    assert not (tmp_path / "l1").exists()


@pytest.mark.filterwarnings("ignore:.*the validation r is noise at this size")
def test_a_fit_with_filter_l2_differs_records_it_and_never_shares_a_fit(tmp_path, capsys):
    """``zoo fit ln --filter-l2 0.01``: other weights than the default's (same seed and steps), recorded
    (summary.json's settings, history.json's config), a resume by the other setting refused either way (a checkpoint
    written before the setting is the default's), its own folder of the fit cache while the default keeps its
    folder; refused for a model without a low-rank filter, beside --objective deep-retina and below 0."""
    from neurozoo.datasets.errors import SpecError
    from neurozoo.retina.embedded_fit import fit_dir, fit_settings_key

    # a checkpoint written before the setting put the penalty on the stored factors
    path, _, weights = _fits_with_and_without(tmp_path, capsys, "ln", ["--filter-l2", "0.01"], "filter_l2",
                                              (0.01, None), ("assembled", "factors"))
    assert (weights["assembled"]["filter.spatial"] - weights["factors"]["filter.spatial"]).abs().max() > 1e-4

    def folder(name, **settings):
        return fit_dir(path, name, "whitenoise", 0, settings)

    assert folder("ln", filter_l2=0.01) != folder("ln") == folder("ln", filter_l2=None)
    assert "filter_l2" not in fit_settings_key(create_model("ln", n_cells=2), 0)  # the default's key, as before
    with pytest.raises(SpecError, match=r"--filter-l2 .* applies to models with a LowRankFilter \(ln, glm\); bncnn has "
                                        r"none$"):
        folder("bncnn", filter_l2=0.01)
    with pytest.raises(SpecError, match=r"filter_l2 is the zoo objective's .* \(got 0.01\)"):
        folder("glm", objective="deep-retina", filter_l2=0.01)
    with pytest.raises(SpecError, match=r"filter_l2 must be None or a finite number >= 0 \(got -1.0\)"):
        folder("ln", filter_l2=-1.0)


@pytest.mark.filterwarnings("ignore:.*the validation r is noise at this size")
def test_the_deep_retina_objectives_models_are_listed_without_building_them(monkeypatch):
    """The refusal of --objective deep-retina for another model named the models it applies to by building every
    registered model (a plugin's included) to look for deep_retina_penalty(). Their classes say it now, read from
    the factories' return annotations; a factory that does not say its class is still built to see, so the listed
    models are the same."""
    from neurozoo import retina
    from neurozoo.retina import fit as fit_module

    built, make = [], fit_module.create_model
    monkeypatch.setattr(fit_module, "create_model", lambda name, **kw: built.append(name) or make(name, **kw))
    assert fit_module.deep_retina_objective_models() == ["glm"] and built == []
    assert fit_module.made_class(retina.MODELS.get("bncnn").resolve()).__name__ == "RetinaCNN"
    retina.MODELS.add("unsaid_glm", lambda n_cells=5: retina.create_model("glm", n_cells=n_cells), family="retina")
    try:
        assert fit_module.deep_retina_objective_models() == ["glm", "unsaid_glm"] and built == ["unsaid_glm"]
    finally:
        retina.MODELS._entries.pop("unsaid_glm")


def test_a_deep_retina_objective_fit_records_the_penalty_it_used_not_l2_and_l1(tmp_path, capsys):
    """A fit with ``objective="deep-retina"`` recorded ``l2`` 1e-3 and ``l1`` 1e-3 in summary.json's
    provenance.settings (and a benchmark score's settings), penalties it never used. Its record now states the
    penalty it did use (``objective_penalty``: deep-retina's scales) and no ``l2`` / ``l1``; the zoo objective's
    recorded settings are every setting as before; and ``zoo reproduce`` fits the summary again to the bit. So do its
    history.json and checkpoint, which a resume compares: a checkpoint with l2 and l1 (written before) resumes, one
    fitted under another penalty does not."""
    import dataclasses
    import json

    from neurozoo.datasets.synthetic_retina import generate_recording
    from neurozoo.leaderboard.cli import main as zoo
    from neurozoo.retina.fit import FitConfig, ResumeRefused, recorded_settings

    path = generate_recording(tmp_path / "wn.h5", n_train=2000, n_test=160, n_repeats=3)
    out = tmp_path / "deep-retina"
    assert zoo(["fit", "glm", "--data", str(path), "--epochs", "1", "--batch-size", "64", "--quiet", "--out", str(out),
                "--objective", "deep-retina"]) == 0
    settings = json.loads((out / "summary.json").read_text())["provenance"]["settings"]
    assert "l2" not in settings and "l1" not in settings and settings["objective"] == "deep-retina"
    assert settings["objective_penalty"] == {"form": "scale * sum(w^2) / 2", "stimulus_filter": 1e-4,
                                             "post_spike_filter": 1e-2, "intercept": 1e-2, "rates_l1": 0.0}
    glm = create_model("glm", n_cells=2)
    every = {k: v for k, v in dataclasses.asdict(FitConfig()).items() if k != "cells"}  # all cells: not stated
    assert recorded_settings(FitConfig(), glm) == every  # the zoo objective's: unchanged
    capsys.readouterr()
    assert zoo(["reproduce", str(out / "summary.json")]) == 0
    assert "reproduced: bit-identical" in capsys.readouterr().out
    # history.json and the checkpoint listed l2 and l1 too (until 2026-12-05), which a resume compared
    checkpoint = out / "checkpoint.pt"
    saved = torch.load(checkpoint, weights_only=False)
    assert json.loads((out / "history.json").read_text())["config"] == saved["config"] == settings
    n_cells = saved["model"]["bias"].shape[0]

    def resume():
        return fit(create_model("glm", n_cells=n_cells), str(path), out=out, epochs=1, batch_size=64,
                   objective="deep-retina", progress=False)

    # a checkpoint written before: l2 and l1 at their defaults, no objective_penalty; resumed (a finished fit, read)
    old = {**{k: v for k, v in settings.items() if k != "objective_penalty"}, "l2": 1e-3, "l1": 1e-3}
    torch.save({**saved, "config": old}, checkpoint)
    assert resume().best_epoch == saved["best_epoch"]
    # one fitted under another penalty (the code's scales changed since) is a fit with other settings
    other = {**settings["objective_penalty"], "stimulus_filter": 1e-3}
    torch.save({**saved, "config": {**settings, "objective_penalty": other}}, checkpoint)
    with pytest.raises(ResumeRefused, match=r"objective_penalty \{.*'stimulus_filter': 0\.001.*\} -> \{.*"
                                            r"'stimulus_filter': 0\.0001"):
        resume()


@pytest.mark.filterwarnings("ignore:.*the validation r is noise at this size")
@pytest.mark.parametrize("options", [["--l2", "0.001"], ["--l1", "0.001"], ["--l2", "0.01", "--l1", "0"]])
def test_zoo_fit_refuses_l2_and_l1_beside_the_deep_retina_objective_even_at_their_default(tmp_path, capsys, options):
    """``--l2 1e-3`` (the default's value) beside ``--objective deep-retina`` was fitted, the penalty asked for
    silently ignored: the README and --help say both options are refused with it. Refused by name, before a fit."""
    from neurozoo.datasets.synthetic_retina import generate_recording
    from neurozoo.leaderboard.cli import main as zoo

    path = generate_recording(tmp_path / "wn.h5", n_train=2000, n_test=160, n_repeats=3)
    out = tmp_path / "fit"
    assert zoo(["fit", "glm", "--data", str(path), "--epochs", "1", "--batch-size", "64", "--quiet", "--out",
                str(out), "--objective", "deep-retina", *options]) == 2
    err = capsys.readouterr().err
    named = " and ".join(option for option in options if option.startswith("--"))
    assert f"zoo fit: error: {named}: the zoo objective's penalties; --objective deep-retina has its own" in err
    assert "leave them out" in err
    assert not out.exists() and not out.with_name("fit.lock").exists()
