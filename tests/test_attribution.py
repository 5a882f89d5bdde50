import re

import numpy as np
import pytest
import torch

from neurozoo.retina.attribution import integrated_gradients, layer_activation, rank_units
from neurozoo.retina.models.bncnn import RetinaCNN
from neurozoo.retina.reduction import reduce_model, reduction_report


def _model(important=(2, 5)):
    """A BN-CNN in which only the layer-1 channels ``important`` reach layer 2 (a known answer)."""
    torch.manual_seed(0)
    model = RetinaCNN(n_cells=3, noise_std=0.0)
    with torch.no_grad():
        others = [c for c in range(8) if c not in important]
        model.conv2.weight[:, others] = 0.0
        model.conv1.weight.mul_(5.0)
        model.conv2.weight.mul_(3.0)
        model.dense.weight.mul_(10.0)
    return model.eval()


def _movie(n=12, seed=1):
    """A movie with ``n`` 40-frame windows (attribution and reduced models take movies or windows)."""
    return torch.randn(n + 39, 50, 50, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("layer", [1, 2])
def test_completeness_axiom(layer):
    model, x = _model(), torch.randn(4, 40, 50, 50, generator=torch.Generator().manual_seed(1))
    attribution = integrated_gradients(model, x, cell=1, layer=layer, steps=24)
    with torch.no_grad():
        full, zero = model(x)[:, 1], model(torch.zeros_like(x))[:, 1]
    difference = full - zero
    assert torch.allclose(attribution.output, full, atol=1e-5)
    assert difference.abs().min() > 1e-3  # a non-trivial check
    gap = attribution.completeness_gap()
    assert (gap.abs() <= 0.01 * difference.abs() + 1e-4).all(), (gap, difference)
    # coarse paths are less exact: the integral is real, not a tautology
    coarse = integrated_gradients(model, x, cell=1, layer=layer, steps=1).completeness_gap().abs().mean()
    assert gap.abs().mean() < coarse


@pytest.mark.parametrize("rule,site,by", [("midpoint", "post", "abs"),  # ours
                                         ("right", "pre", "abs"), ("right", "pre", "abs_positions")])  # torch-deep-retina
def test_ranking_recovers_the_units_that_matter_and_reduction_keeps_the_response(rule, site, by):
    """Ours and torch-deep-retina's variants (gradient at each segment's upper end, at the BatchNorm output before the
    ReLU, 9 segments = its alpha_steps 10; both of its pruning scores) credit only the units that reach the output."""
    model, x = _model(important=(2, 5)), _movie(12)
    attribution = integrated_gradients(model, x, cell=0, layer=1, steps=16 if rule == "midpoint" else 9, rule=rule,
                                       site=site)
    per_unit = attribution.per_unit()
    assert set(rank_units(attribution, by=by)[:2].tolist()) == {2, 5}
    assert per_unit[:, [0, 1, 3, 4, 6, 7]].abs().max() == 0.0 and per_unit[:, [2, 5]].abs().min() > 0

    report = reduction_report(model, x, cell=0, layer=1, k=2, steps=16, rule=rule, site=site, by=by)
    assert report["kept_units"] == [2, 5] and (report["rule"], report["site"], report["by"]) == (rule, site, by)
    # the kept units' contributions alone are the response, up to the discretisation (measured VE 0.9998, 0.9985)
    assert report["contribution_variance_explained"] > 0.99 and report["contribution_correlation"] > 0.999
    one = reduction_report(model, x, cell=0, layer=1, k=1, steps=9, rule=rule, site=site, by=by)
    assert one["contribution_variance_explained"] < 0.8  # one of the two: part of it (measured 0.58-0.60)
    assert report["correlation"] > 0.9999 and report["variance_explained"] > 0.9999
    wrong = reduce_model(model, 1, [0, 1])
    with torch.no_grad():
        r_wrong = wrong(x)[:, 0].numpy()
        assert torch.allclose(reduce_model(model, 1, [2, 5])(x), model.forward_movie(x), rtol=1e-4, atol=1e-5)
    # without the units that matter the response is lost (layer 2 sees nothing: a constant output)
    assert np.std(r_wrong) < 1e-3 * np.std(report["full_rates"])


def test_reduction_with_one_unit_keeps_part_of_the_response_and_mean_fill():
    model, x = _model(important=(2, 5)), _movie(16, seed=3)
    one = reduction_report(model, x, cell=2, layer=1, k=1, steps=8, fill="mean")
    assert one["kept_units"][0] in (2, 5)
    # the reduced model by hand, through the model's own layers: every other channel held at its mean over x
    with torch.no_grad():
        z = layer_activation(model, x, 1)
        held = z.mean((0, 2, 3), keepdim=True).expand_as(z).clone()
        held[:, one["kept_units"]] = z[:, one["kept_units"]]
        expected = model.readout(model.layer2(held))[:, 2].double().numpy()
    np.testing.assert_allclose(one["reduced_rates"], expected, rtol=1e-4, atol=1e-5)
    # one of the two units that matter keeps part of the response, not all of it (measured r 0.80, VE 0.64)
    assert 0.5 < one["correlation"] < 0.95 and 0.3 < one["variance_explained"] < 0.9
    reduced = reduce_model(model, 2, range(8))  # keeping all units changes nothing
    with torch.no_grad():
        assert torch.allclose(reduced(x), model.forward_movie(x), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="layer must be 1 or 2"):
        layer_activation(model, x, 3)
    for bad, match in ((dict(rule="left"), "rule must be"), (dict(site="input"), "site must be")):
        with pytest.raises(ValueError, match=match):
            integrated_gradients(model, x, cell=0, steps=1, **bad)
    with pytest.raises(ValueError, match="by must be"):
        rank_units(integrated_gradients(model, x[:40], cell=0, steps=1), by="max")


def test_a_cell_the_model_keeps_silent_has_no_reduction_numbers():
    """A cell whose full-model rate is flat (a lab's cell with a handful of spikes, fitted to near 0 spikes/s) has no
    variance for a reduced model to explain: its r and VE were ratios of rounding noise (VE -4e24 printed by zoo
    probe reduction on such a cell), now NaN, said in the report."""
    from neurozoo.retina.reduction import FLAT_RESPONSE_SD

    model, x = _model(important=(2, 5)), _movie(12)
    with torch.no_grad():
        model.bn3.bias[1] = -40.0  # softplus(-40): about 4e-18 spikes/s whatever the stimulus
    silent, active = (reduction_report(model, x, cell=cell, layer=1, k=[1, 2], steps=4) for cell in (1, 0))
    for report in silent:
        assert report["flat"] and 0 < report["full_response_sd"] < FLAT_RESPONSE_SD
        for key in ("correlation", "variance_explained", "contribution_correlation", "contribution_variance_explained"):
            assert np.isnan(report[key]), (key, report[key])
    assert not active[1]["flat"] and active[1]["correlation"] > 0.9999  # the other cells as before


def test_baseline_fill_holds_dropped_units_at_their_resting_activity():
    """On the grey stimulus a reduced model with baseline fill is the full model, whatever it keeps; silencing
    (zero fill) is not -- the dropped units' resting activity reaches the output."""
    model = _model(important=(2, 5))
    grey, x = torch.zeros(2 + 39, 50, 50), _movie(6, seed=4)
    with torch.no_grad():
        full = model.forward_movie(grey)
        baseline = reduce_model(model, 1, [0])
        assert tuple(baseline.fill.shape) == (1, 8, 36, 36) and baseline.fill.abs().sum() > 0
        # float32 through another path (the reduced model's fill): last-bit differences only, on any CPU's kernels
        torch.testing.assert_close(baseline(grey), full, rtol=1e-4, atol=1e-5)
        assert (reduce_model(model, 1, [0], fill="zero")(grey) - full).abs().max() > 1e-3
        # the kept unit still carries its stimulus-dependent part
        assert not torch.allclose(reduce_model(model, 1, [2])(x), baseline(x))


def test_reduction_leaves_the_model_in_the_mode_it_was_in():
    """Like integrated_gradients, the reduction's analyses run in eval mode and hand the model back as they found it
    (a model analysed mid-training must keep training with batch statistics and noise)."""
    from neurozoo.retina.reduction import baseline_activity

    model, x = _model(important=(2, 5)), _movie(4)
    model.train()
    baseline_activity(model, 1)
    assert model.training
    report = reduction_report(model, x, cell=0, layer=1, k=2, steps=4)
    assert model.training and report["kept_units"] == [2, 5]
    model.eval()
    reduction_report(model, x, cell=0, layer=1, k=2, steps=4)
    assert not model.training


@pytest.mark.parametrize("by", ["abs", "abs_positions", "signed"])
def test_the_reports_importances_are_the_rankings_own_scores(by):
    """The report's importances were mean |per-unit attribution| whatever ``by`` ranked with, so with
    ``abs_positions`` or ``signed`` they could disagree with the ranking beside them."""
    from neurozoo.retina.attribution import unit_scores

    model, x = _model(important=(0, 1, 2, 3, 4, 5, 6, 7)), _movie(6)
    report = reduction_report(model, x, cell=0, layer=1, k=2, steps=4, by=by)
    importance = np.array(report["importance"])
    assert np.abs(importance).sum() == pytest.approx(1.0)
    # ranked by the importances, highest first: the report's ranking
    assert np.argsort(-importance, kind="stable").tolist() == report["ranking"]
    scores = unit_scores(integrated_gradients(model, x, cell=0, layer=1, steps=4), by).double().numpy()
    np.testing.assert_allclose(importance, scores / np.abs(scores).sum(), rtol=1e-9)


@pytest.mark.parametrize("option,message", [({"by": "absolute"}, "by must be one of"),
                                            ({"fill": "grey"}, "fill must be one of")])
def test_a_bad_ranking_or_fill_is_refused_before_the_attribution(option, message, monkeypatch):
    import neurozoo.retina.reduction as reduction

    def attribution_started(*args, **kwargs):
        raise AssertionError("the attribution ran before the options were checked")

    monkeypatch.setattr(reduction, "integrated_gradients", attribution_started)
    with pytest.raises(ValueError, match=message):
        reduction_report(_model(), _movie(4), cell=0, layer=1, **option)


def _same_reports(a, b):
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], np.ndarray):
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)  # bit for bit
        else:
            assert a[key] == b[key] or (a[key] != a[key] and b[key] != b[key]), key  # NaN alike


@pytest.mark.parametrize("layer,fill", [(1, "baseline"), (2, "mean")])
def test_one_attribution_for_several_k_gives_the_per_k_reports_bit_for_bit(layer, fill, monkeypatch):
    """``k=[...]`` and a precomputed attribution reuse the integrated gradients (the expensive part) across numbers
    of kept units: every number of every report is the one a call per k gives, and the attribution runs once."""
    import neurozoo.retina.reduction as reduction

    model, x = _model(important=(0, 2, 3, 5, 7)), _movie(10, seed=5)
    ks = [1, 2, 4, 8]
    fresh = [reduction_report(model, x, cell=1, layer=layer, k=k, steps=6, fill=fill) for k in ks]
    assert len({r["correlation"] for r in fresh}) == len(ks)  # the ks give different numbers: a real comparison
    calls = []
    original = reduction.integrated_gradients
    monkeypatch.setattr(reduction, "integrated_gradients", lambda *a, **kw: calls.append(1) or original(*a, **kw))
    several = reduction_report(model, x, cell=1, layer=layer, k=ks, steps=6, fill=fill)
    assert len(calls) == 1 and [r["k"] for r in several] == ks
    attribution = original(model, x, cell=1, layer=layer, steps=6)
    given = reduction_report(model, x, cell=1, layer=layer, k=ks[::-1], steps=6, fill=fill, attribution=attribution)
    assert len(calls) == 1  # the precomputed one, not a new one
    for one, many, reused in zip(fresh, several, given[::-1]):
        _same_reports(one, many)
        _same_reports(one, reused)


def test_a_precomputed_attribution_of_another_cell_or_path_and_a_bad_k_are_refused():
    model, x = _model(), _movie(4)
    attribution = integrated_gradients(model, x, cell=0, layer=1, steps=3)
    for option, message in ((dict(cell=1), "attribution.cell is 0, not the 1 asked for"),
                            (dict(layer=2), "attribution.layer is 1, not the 2 asked for"),
                            (dict(steps=4), "attribution.steps is 3, not the 4 asked for"),
                            (dict(site="pre"), "attribution.site is 'post', not the 'pre' asked for"),
                            (dict(x=_movie(5)), "attribution: 4 windows; x has 5"),
                            (dict(k=9), r"k must be between 1 and 8 \(layer 1's units\); got 9"),
                            (dict(k=[2, 0]), r"k must be between 1 and 8 \(layer 1's units\); got 0")):
        arguments = {**dict(x=x, cell=0, layer=1, k=2, steps=3, attribution=attribution), **option}
        with pytest.raises(ValueError, match=message):
            reduction_report(model, **arguments)


@pytest.mark.parametrize("option, error, message", [
    (dict(steps=0), ValueError, r"^steps: expected an integer >= 1, got 0$"),  # an AttributeError on None
    (dict(steps=2.5), ValueError, r"^steps: expected an integer >= 1, got 2\.5$"),  # torch.linspace's TypeError
    (dict(cell=3), ValueError, r"^cell: expected a cell of the model's 3, from 0 to 2; got 3$"),  # an IndexError
    (dict(cell=-1), ValueError, r"^cell: expected an integer >= 0, got -1$"),  # the last cell, without a word
    (dict(x=torch.zeros(2, 30, 50, 50)), ValueError,  # conv1's channel error
     r"^x: expected windows \(B, 40, 50, 50\) or a movie of at least 40 frames \(T \+ 39, 50, 50\), got shape "
     r"\(2, 30, 50, 50\)$"),
    (dict(x=np.zeros((43, 50, 50), np.float32)), TypeError, r"^x: expected a torch.Tensor .* got ndarray$"),
    (dict(baseline=torch.zeros(3, 50, 50)), ValueError,  # torch's expand error
     r"^baseline: expected a tensor that broadcasts to x's shape \(43, 50, 50\), got \(3, 50, 50\)$"),
])
def test_integrated_gradients_refuses_bad_arguments_naming_them(option, error, message):
    model = _model()
    with pytest.raises(error, match=message):
        integrated_gradients(model, **{**dict(x=_movie(4), cell=0, layer=1, steps=2), **option})


@pytest.mark.parametrize("keep", [[0, 99], [-1], [0.5], [1, 1]])
def test_a_reduced_model_refuses_units_the_layer_does_not_have(keep):
    """99: an IndexError; -1 kept the last unit and 0.5 the first, without a word; a repeat counted once."""
    with pytest.raises(ValueError, match=rf"^keep: expected distinct indices of layer 1's 8 units, from 0 to 7; got "
                                         rf"{re.escape(str(keep))}$"):
        reduce_model(_model(), 1, keep, fill="zero")


def test_a_fractional_number_of_kept_units_is_refused():
    """k=[2.5] was kept and reported as 2 units."""
    with pytest.raises(ValueError, match=r"^k must be between 1 and 8 \(layer 1's units\); got 2\.5$"):
        reduction_report(_model(), _movie(4), cell=0, layer=1, k=[2.5], steps=2)


def test_a_pruned_fill_of_a_layer_the_model_does_not_have_names_the_layer():
    """It said the model (a RetinaCNN) had no 'bn3' and that fill='pruned' needs a RetinaCNN."""
    from neurozoo.retina.reduction import pruned_activity

    with pytest.raises(ValueError, match=r"^layer must be 1 or 2; got 3$"):
        pruned_activity(_model(), 3)
