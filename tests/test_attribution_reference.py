"""Integrated gradients to hidden units checked against answers we did not derive from our own code: closed forms on
tiny models (Sundararajan et al. 2017's path integral done by hand) and captum's LayerConductance (Dhamdhere et al.
2018: the chain-rule split of the input-space integrated gradient over a hidden layer, which is what Tanaka et al. 2019
and baccuslab/torch-deep-retina's ``integrated_gradient(model, X, layer, gc_idx, alpha_steps)`` compute: the path
``alpha * X`` from the zero stimulus, the output's gradient w.r.t. the layer times the layer's change per step)."""
import math

import numpy as np

import pytest
import torch
from captum import attr as captum_attr  # a test dependency (setup.cfg [test]): never a silent skip
from torch import nn
import torch.nn.functional as F

from neurozoo.retina.attribution import integrated_gradients, rank_units
from neurozoo.retina.models.bncnn import RetinaCNN
from neurozoo.retina.reduction import reduce_model


class _FullField(nn.Module):
    """conv1 covers the whole 4x4 frame (one position per channel); layer 1 is ReLU(conv1); layer 2 passes it on;
    the readout is ``head(v . z)``. A RetinaCNN-shaped model small enough to integrate by hand."""

    def __init__(self, weight, bias, v, head):
        super().__init__()
        self.conv1 = nn.Conv2d(40, weight.shape[0], 4)
        with torch.no_grad():
            self.conv1.weight.copy_(weight)
            self.conv1.bias.copy_(bias)
        self.v, self.head = v, head
        self.n_cells = 1
        self.hidden_shapes = ((weight.shape[0], 1, 1), (weight.shape[0], 1, 1))

    def layer1(self, pre):
        return F.relu(pre)

    def layer2(self, z):
        return z

    def readout(self, z):
        return self.head(z.flatten(1) @ self.v)[:, None]

    def forward(self, x):
        return self.readout(self.layer2(self.layer1(self.conv1(x))))


def _tiny(bias, head, n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(n, 40, 4, 4, generator=g, dtype=torch.float64) / 10
    v = torch.randn(n, generator=g, dtype=torch.float64)
    return _FullField(weight, bias, v, head).double().eval(), torch.randn(3, 40, 4, 4, generator=g, dtype=torch.float64)


def test_linear_readout_of_relu_units_is_attributed_by_hand_exactly():
    """F = v . ReLU(Wx + b): dF/dz_i = v_i everywhere, so A_i = v_i (z_i(x) - z_i(0)) for any number of steps."""
    bias = torch.tensor([0.3, -0.2, 0.0, 0.5, -0.4], dtype=torch.float64)
    model, x = _tiny(bias, lambda s: s)
    with torch.no_grad():
        z, z0 = F.relu(model.conv1(x)).flatten(1), F.relu(model.conv1.bias)[None]
    expected = model.v * (z - z0)
    assert (z - z0).abs().max() > 0.1 and ((z == 0) & (z0 == 0)).any()  # units that move, and a unit silent throughout
    for steps in (1, 7):
        attribution = integrated_gradients(model, x, cell=0, layer=1, steps=steps)
        torch.testing.assert_close(attribution.per_unit(), expected, rtol=1e-12, atol=1e-12)


def test_softplus_of_homogeneous_relu_units_matches_the_closed_form_and_converges():
    """b = 0: z(a x) = a z(x), so A_i = v_i z_i / (v . z) * (softplus(v . z) - softplus(0)) -- the integral
    int_0^1 softplus'(a v.z) v_i z_i da done by hand. The midpoint sum's error falls as 1/steps^2."""
    model, x = _tiny(torch.zeros(5, dtype=torch.float64), F.softplus, seed=2)
    with torch.no_grad():
        z = F.relu(model.conv1(x)).flatten(1)
    s = z @ model.v
    expected = model.v * z / s[:, None] * (F.softplus(s) - math.log(2.0))[:, None]
    assert s.abs().min() > 0.5
    errors = [(integrated_gradients(model, x, 0, 1, steps).per_unit() - expected).abs().max().item() for steps in (4, 16, 64)]
    assert errors[-1] < 1e-4, errors
    assert errors[0] / errors[1] > 10 and errors[1] / errors[2] > 10, errors  # ~16x per 4x steps: second order


class _Stimulus(nn.Module):
    """A RetinaCNN as one cell's rate with named modules for each hidden layer (for captum). Its input is the first
    convolution's linear part ``u = W * x`` (no bias): conv1 is affine, so captum's straight path ``alpha * u`` from
    ``u = 0`` is exactly the image of the stimulus path ``alpha * x`` from the zero stimulus, and captum need not run
    the 15 x 15 convolution forward and back at each of its 512 steps (20 s of the test's 21)."""

    class _Call(nn.Module):
        def __init__(self, fn):
            super().__init__()
            self.fn = fn

        def forward(self, x):
            return self.fn(x)

    def __init__(self, model, cell):
        super().__init__()
        self.model, self.cell = model, cell
        self.hidden1 = self._Call(lambda pre: model.layer1(pre))
        self.hidden2 = self._Call(lambda z: model.layer2(z))

    def forward(self, u):
        return self.model.readout(self.hidden2(self.hidden1(u + self.model.conv1.bias[:, None, None])))[:, self.cell]

    def linear_part(self, x):
        with torch.no_grad():
            return F.conv2d(x, self.model.conv1.weight)


def _retina_cnn():
    torch.manual_seed(0)
    model = RetinaCNN(n_cells=3, noise_std=0.0, frame_size=30).double()  # 16x16 and 6x6 hidden maps: fast
    with torch.no_grad():  # running statistics away from 0/1, so BatchNorm is not the identity
        for bn in (model.bn1, model.bn2):
            bn.running_mean.uniform_(-0.5, 0.5), bn.running_var.uniform_(0.5, 2.0)
        model.conv1.weight.mul_(5.0), model.dense.weight.mul_(10.0)
    return model.eval()


@pytest.mark.parametrize("layer", [1, 2])
def test_channel_attributions_match_captum_layer_conductance(layer):
    """captum's conductance is a left Riemann sum (first order: measured on this model its layer-1 error halves per
    doubling, 0.007 at 128 steps, 0.0017 at 512), ours a midpoint sum (0.001 at 128 steps); at 512 captum steps
    the two agree to 0.003 of the largest channel's attribution. (The ReLUs make the integrand jump, so neither is
    exact; both converge to the same integral.)"""
    model = _retina_cnn()
    x = torch.randn(1, 40, 30, 30, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    ours = integrated_gradients(model, x, cell=1, layer=layer, steps=256)
    wrapped = _Stimulus(model, cell=1)
    conductance = captum_attr.LayerConductance(wrapped, wrapped.hidden1 if layer == 1 else wrapped.hidden2)
    u = wrapped.linear_part(x)
    theirs = conductance.attribute(u, baselines=torch.zeros_like(u), n_steps=512, method="riemann_trapezoid",
                                   internal_batch_size=128).detach()
    difference = (ours.output - ours.baseline_output).abs()
    assert difference.min() > 1e-2
    per_unit_theirs = theirs.sum((2, 3))
    scale = per_unit_theirs.abs().max().item()
    assert scale > 1e-2 and (per_unit_theirs.abs() > 0.05 * scale).sum() >= 4  # several units matter
    torch.testing.assert_close(ours.per_unit(), per_unit_theirs, rtol=0, atol=3e-3 * scale)
    torch.testing.assert_close(ours.values, theirs, rtol=0, atol=1e-2 * theirs.abs().max().item())
    # and the sums: completeness, ours to the output difference
    torch.testing.assert_close(ours.values.flatten(1).sum(1), ours.output - ours.baseline_output, rtol=5e-3, atol=1e-6)


def test_reduction_on_units_that_do_not_matter_keeps_exactly_the_ones_that_do():
    """F = v . ReLU(Wx) with v zero on units 1 and 3: IG credits only 0, 2, 4; the model reduced to them is the full
    model; dropping unit 2 instead loses its share."""
    model, x = _tiny(torch.zeros(5, dtype=torch.float64), lambda s: s, seed=5)
    model.v = torch.tensor([1.0, 0.0, -2.0, 0.0, 1.5], dtype=torch.float64)
    attribution = integrated_gradients(model, x, 0, 1, steps=4)
    assert (attribution.per_unit()[:, [1, 3]] == 0).all()
    with torch.no_grad():
        kept = reduce_model(model, 1, [0, 2, 4], fill="zero")(x)
        torch.testing.assert_close(kept, model(x))
        z = F.relu(model.conv1(x)).flatten(1)
        torch.testing.assert_close(reduce_model(model, 1, [0, 4], fill="zero")(x)[:, 0], z[:, 0] + 1.5 * z[:, 4])


def test_variance_explained_counts_a_reduced_models_offset():
    """F = v . ReLU(Wx + b) with unit 0 tonic (W = 0, b = 1: it adds v_0 whatever the stimulus). IG credits it
    nothing, so it is ranked last; held at zero (fill="zero") the model reduced to the other units is the full model
    minus v_0, the right shape at the wrong rate. Variance explained was 1 - var(full - reduced) / var(full), blind
    to that: 1.0 beside r 1.0. It is 1 - mean((full - reduced)^2) / var(full), as FEVE counts an offset."""
    from neurozoo.retina.reduction import reduction_report

    model, _ = _tiny(torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0], dtype=torch.float64), lambda s: s, seed=5)
    with torch.no_grad():
        model.conv1.weight[0] = 0.0
    model.v = torch.tensor([3.0, 1.0, -1.0, 0.5, 1.5], dtype=torch.float64)
    x = torch.randn(40, 40, 4, 4, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    report = reduction_report(model, x, cell=0, layer=1, k=4, steps=4, fill="zero")
    full, reduced = report["full_rates"], report["reduced_rates"]
    assert report["ranking"][-1] == 0 and report["kept_units"] == [1, 2, 3, 4]
    np.testing.assert_allclose(full - reduced, 3.0, rtol=1e-12)  # the tonic unit's v_0 * 1, at every window
    assert report["correlation"] == pytest.approx(1.0, abs=1e-12)
    assert report["variance_explained"] == pytest.approx(1 - 9.0 / np.var(full), rel=1e-9)
    assert report["variance_explained"] < 0.1  # measured -0.015: the offset is as large as the response's sd
    # held at its baseline (grey-stimulus) activity instead, the tonic unit gives the full model back
    model.n_frames, model.frame_size = 40, 4
    assert reduction_report(model, x, cell=0, layer=1, k=4, steps=4)["variance_explained"] == pytest.approx(1.0)


# --- baccuslab/torch-deep-retina's own integrated gradient, transcribed (the code of Tanaka et al.'s lab) ----------
# Sources, read in the public repository through a code index (versions without a commit id are quoted, not numbered):
# * torchdeepretina/models.py (commit 00bb0ca), class BNCNN (lines 37-70): ``sequential`` (line 65) = [0 Conv2d
#   (line 44), 1 Flatten, 2 BatchNorm1d(C*H*W, eps=1e-3) (line 48), 3 GaussianNoise, 4 ReLU, 5 Reshape, 6 Conv2d
#   (line 52), 7 Flatten, 8 BatchNorm1d (line 56), 9 GaussianNoise, 10 ReLU, 11 Linear (line 59), 12
#   BatchNorm1d(n_units), 13 Softplus (line 62)]; so ``layer='sequential.2'`` (integrated_gradient's default) is
#   the first layer's BatchNorm output before the ReLU, ``'sequential.8'`` the second's.
# * torchdeepretina/utils.py, ``integrated_gradient(model, X, layer='sequential.2', chans=None, spat_idx=None,
#   alpha_steps=5|10, ...)``: ``for alpha in torch.linspace(0,1,alpha_steps): x = alpha*X[idx]``; ``response =
#   inspect(model, x, insp_keys=[layer])`` (a forward hook on the layer); ``if prev_response is not None:
#   grad = torch.autograd.grad(outs.sum(), ins)[0]`` with ``outs = response['outputs'][:,chans]``, ``act =
#   (response[l].data.cpu()-prev_response[l])``, ``intg_grad[idx] += grad*act``. The gradient is taken at the upper
#   end of each of the alpha_steps - 1 segments; the baseline is the zero stimulus; the result is (T, C, H, W).
# * torchdeepretina/pruning.py (commit 085c795), prune_channels, lines 149-159: ``intg_grad.reshape(T, C, -1)``, then
#   ``np.abs(intg_grad.sum(-1)).mean(0)`` (abssum False) or ``np.abs(intg_grad).sum(-1).mean(0)`` (abssum True), and
#   ``np.argsort`` (least important first); zero_chans (lines 11-40) drops a channel by zeroing its conv weights
#   (and, by default, its bias).


class _Flatten(nn.Module):
    def forward(self, x):
        return x.reshape(len(x), -1)


class _Reshape(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.shape = shape

    def forward(self, x):
        return x.reshape(len(x), *self.shape)


def _tdr_bncnn(model):
    """torch-deep-retina's BNCNN ``sequential`` (module for module, indices as there) with ``model``'s weights."""
    (c1, h1, w1), (c2, h2, w2) = model.hidden_shapes
    f64 = dict(dtype=torch.float64)
    conv1, conv2 = nn.Conv2d(40, c1, model.conv1.kernel_size, **f64), nn.Conv2d(c1, c2, model.conv2.kernel_size, **f64)
    bn1, bn2 = nn.BatchNorm1d(c1 * h1 * w1, eps=1e-3, **f64), nn.BatchNorm1d(c2 * h2 * w2, eps=1e-3, **f64)
    dense = nn.Linear(c2 * h2 * w2, model.n_cells, bias=False, **f64)
    bn3 = nn.BatchNorm1d(model.n_cells, eps=1e-3, **f64)
    for theirs, ours in ((conv1, model.conv1), (conv2, model.conv2), (bn1, model.bn1), (bn2, model.bn2),
                         (dense, model.dense), (bn3, model.bn3)):
        theirs.load_state_dict(ours.state_dict())
    sequential = nn.Sequential(conv1, _Flatten(), bn1, nn.Identity(), nn.ReLU(), _Reshape((c1, h1, w1)), conv2,
                               _Flatten(), bn2, nn.Identity(), nn.ReLU(), dense, bn3, nn.Softplus())
    sequential.shapes = {2: (c1, h1, w1), 8: (c2, h2, w2)}
    return sequential.eval().requires_grad_(False)


def _tdr_integrated_gradient(sequential, X, layer_index, chans, alpha_steps):
    """torchdeepretina/utils.py ``integrated_gradient``'s loop (one batch), on ``sequential``: -> (T, C, H, W)."""
    response = {}
    handle = sequential[layer_index].register_forward_hook(lambda module, inp, out: response.update(layer=out))
    shape = sequential.shapes[layer_index]
    intg_grad = torch.zeros(len(X), *shape, dtype=X.dtype)
    X = X.clone().requires_grad_(True)
    prev_response = None
    for alpha in torch.linspace(0, 1, alpha_steps, dtype=X.dtype):
        x = alpha * X
        outputs = sequential(x)
        if prev_response is not None:
            ins, outs = response["layer"], outputs[:, chans]
            grad = torch.autograd.grad(outs.sum(), ins)[0].reshape(len(X), *shape)
            act = (response["layer"].detach() - prev_response).reshape(grad.shape)
            intg_grad += grad * act
        prev_response = response["layer"].detach()
    handle.remove()
    return intg_grad, outputs[:, chans].detach()


def _tdr_ranking(intg_grad, abssum):
    """torchdeepretina/pruning.py prune_channels' channel score, most important first."""
    flat = intg_grad.reshape(*intg_grad.shape[:2], -1).numpy()
    score = np.abs(flat).sum(-1).mean(0) if abssum else np.abs(flat.sum(-1)).mean(0)
    return np.argsort(score)[::-1]


@pytest.mark.parametrize("layer,index", [(1, 2), (2, 8)])
def test_right_rule_at_the_batchnorm_output_is_torch_deep_retinas_integrated_gradient(layer, index):
    """Our ``rule="right", site="pre"`` with ``steps = alpha_steps - 1`` is torch-deep-retina's integrated_gradient to
    rounding, per unit and position; the graph transcribed from its BNCNN is our model's (same outputs); its pruning
    ranking is ours (``by="abs"``: abssum False; ``"abs_positions"``: abssum True)."""
    model = _retina_cnn()
    sequential = _tdr_bncnn(model)
    x = torch.randn(3, 40, 30, 30, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(sequential(x), model(x), rtol=1e-12, atol=1e-12)
    for alpha_steps in (5, 10):  # the two defaults torch-deep-retina has had
        theirs, activs = _tdr_integrated_gradient(sequential, x, index, [1], alpha_steps)
        ours = integrated_gradients(model, x, cell=1, layer=layer, steps=alpha_steps - 1, rule="right", site="pre")
        assert theirs.abs().max() > 1e-2
        torch.testing.assert_close(ours.values, theirs, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(ours.output, activs[:, 0], rtol=1e-12, atol=1e-12)
        for by, abssum in (("abs", False), ("abs_positions", True)):
            np.testing.assert_array_equal(rank_units(ours, by=by), _tdr_ranking(theirs, abssum))
    # the default (midpoint, after the ReLU) is another sum of the same integral, not the same numbers
    default = integrated_gradients(model, x, cell=1, layer=layer, steps=alpha_steps - 1)
    assert (default.values - theirs).abs().max() > 1e-6 * theirs.abs().max()


@pytest.mark.parametrize("layer,index", [(1, 2), (2, 8)])
def test_ours_and_torch_deep_retinas_converge_to_the_same_channel_attributions(layer, index):
    """The ReLU is elementwise, so integrating at its input or at its output is the same integral, and where a segment
    takes its gradient only changes the error: torch-deep-retina's sum (at its default 10 points, then 40) approaches
    our fine-grid answer (1024 midpoint steps after the ReLU; that one is checked against captum above), and ours at
    its default 32 steps is closer than torch-deep-retina's default."""
    model = _retina_cnn()
    sequential = _tdr_bncnn(model)
    x = torch.randn(1, 40, 30, 30, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    fine = integrated_gradients(model, x, cell=0, layer=layer, steps=1024).per_unit()
    scale = fine.abs().max().item()
    errors = {alpha_steps: (_tdr_integrated_gradient(sequential, x, index, [0], alpha_steps)[0].sum((2, 3)) - fine)
              .abs().max().item() / scale for alpha_steps in (10, 40)}
    ours = (integrated_gradients(model, x, cell=0, layer=layer).per_unit() - fine).abs().max().item() / scale
    assert scale > 1e-2 and errors[40] < 0.03 and errors[40] < errors[10], errors
    assert ours < errors[10], (ours, errors)


def _tdr_zero_chans(sequential, chan_dict, zero_bias):
    """torchdeepretina/pruning.py zero_chans (lines 11-40): a dropped channel's conv weights (and bias) set to 0."""
    for index, chans in chan_dict.items():
        for chan in chans:
            sequential[index].weight.data[chan] = 0
            if zero_bias:
                sequential[index].bias.data[chan] = 0
    return sequential


@pytest.mark.parametrize("layer,index", [(1, 0), (2, 6)])
def test_pruned_fill_is_torch_deep_retinas_zeroed_channels(layer, index):
    """``fill="pruned"`` is torch-deep-retina's zero_chans (weights and bias zeroed, its default) on the transcribed
    BNCNN; with the bias kept (``zero_bias=False``) layer 1 is our ``fill="baseline"``, layer 2 neither."""
    model = _retina_cnn()
    keep = [1, 4, 6]
    dropped = {index: [c for c in range(8) if c not in keep]}
    x = torch.randn(3, 40, 30, 30, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    with torch.no_grad():
        pruned = _tdr_zero_chans(_tdr_bncnn(model), dropped, zero_bias=True)(x)
        torch.testing.assert_close(reduce_model(model, layer, keep, fill="pruned")(x), pruned, rtol=1e-12, atol=1e-12)
        bias_kept = _tdr_zero_chans(_tdr_bncnn(model), dropped, zero_bias=False)(x)
        baseline = reduce_model(model, layer, keep, fill="baseline")(x)
        assert (pruned - model(x)).abs().max() > 1e-3 and (pruned - baseline).abs().max() > 1e-3
        if layer == 1:
            torch.testing.assert_close(baseline, bias_kept, rtol=1e-12, atol=1e-12)
        else:
            assert (baseline - bias_kept).abs().max() > 1e-3


# --- Tanaka's figure notebooks in torch-deep-retina (figs/integrated_gradient_notebooks/, commit 14ae568) -----------
# 4_OSR_Figure.ipynb (a notebook: cells, not lines; its figures are saved under 'Journal_Figures/'):
# * cell "# OSR": ``OSR(period)``: ``x_ = zeros([140, 50, 50])``; ``idxs = (89 - arange(0, 90, period))[::-1]``;
#   ``x_[sort(concatenate([idxs, idxs + 1]))] -= 2`` (2-frame dark flashes of -2 up to frame 90, none after);
#   windows ``x[i] = x_[i:i + 40]`` for i in range(100).
# * cell "# Data generation": for every ganglion cell j and periods 2..8, ``integrad, response =
#   tdrutils.integrated_gradient(model=model_n, X=x, layer="sequential.0", chans=j, alpha_steps=100)``: the hooked
#   layer is the first convolution's output (before its BatchNorm); summed over space (``torch.sum(integrad,
#   axis=(2,3))``, 5_Natural_Scene_Figure.ipynb ``plot_integrad``) it is each first-layer channel's contribution.
# * the reduced model (cells saving 'OSR_Full_vs_Reduced_Model.pdf', 'Reduced_Model_Trace.pdf') is set by hand on
#   that trained model: ``(3 max(m1 - 100, 0) + max(m3 - 100, 0) + max(m5 - 20, 0)) / 4`` with ``m_c`` channel c's
#   spatial mean of ``sequential.0`` (``tdrutils.inspect``); it is not a procedure to run on another model.
def _notebook_osr_movie(period, size=50):
    """4_OSR_Figure.ipynb ``OSR(period)``'s movie ``x_`` (140 frames), ``size`` pixels square (full field)."""
    movie = np.zeros([100 + 40, size, size])
    idxs = (89 - np.arange(0, 90, period))[::-1]
    movie[np.sort(np.concatenate([idxs, idxs + 1]))] -= 2
    return movie


@pytest.mark.parametrize("period", range(2, 9))
def test_our_flashes_and_windows_make_the_osr_notebooks_stimulus(period):
    """``stimuli.flashes`` at the notebook's onsets is its movie; ``movie_windows`` its 100 windows ``x_[i:i+40]``."""
    from neurozoo.datasets.retina_h5 import movie_windows
    from neurozoo.datasets.retina_stimuli import flashes

    theirs = _notebook_osr_movie(period)
    ours = flashes((89 - np.arange(0, 90, period))[::-1], 140)
    np.testing.assert_array_equal(ours, theirs)
    windows = movie_windows(torch.from_numpy(ours))[:100].numpy()
    np.testing.assert_array_equal(windows, np.stack([theirs[i:i + 40] for i in range(100)]))


def test_osr_notebooks_attribution_at_the_convolution_is_ours_at_the_batchnorm():
    """The notebook's ``integrated_gradient(layer="sequential.0", chans=j, alpha_steps=100)`` on its OSR windows, per
    channel summed over space (and per position), is ours with ``rule="right", site="pre", steps=99``: BatchNorm in
    eval mode is one affine map per unit, ``z = a u + b``, so ``dF/du (u_k - u_k-1) = dF/dz (z_k - z_k-1)`` segment by
    segment. Period 5, on 4 of its 100 windows (the omitted flash was due in window 55), for one cell."""
    model = _retina_cnn()
    sequential = _tdr_bncnn(model)
    sequential.shapes[0] = model.hidden_shapes[0]
    movie = torch.from_numpy(_notebook_osr_movie(5, size=30))
    x = torch.stack([movie[i:i + 40] for i in range(52, 56)])  # the notebook's windows 52..55
    theirs, activs = _tdr_integrated_gradient(sequential, x, 0, 1, 100)
    ours = integrated_gradients(model, movie[52:55 + 40], cell=1, layer=1, steps=99, rule="right", site="pre")
    contributions = theirs.sum((2, 3))
    assert contributions.abs().max() > 1e-2
    torch.testing.assert_close(ours.per_unit(), contributions, rtol=1e-9, atol=1e-12 * contributions.abs().max())
    torch.testing.assert_close(ours.values, theirs, rtol=1e-9, atol=1e-12 * theirs.abs().max())
    torch.testing.assert_close(ours.output, activs, rtol=1e-12, atol=1e-12)
