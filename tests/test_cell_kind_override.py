"""The ``cell_kind`` model override wires the new cells as the kind's published model (convrnn/wiring.py), as a
search trial does: a UGRNN in the RGC model's layers (no activation after the convolution, no post block) went
dead, conv10 output sd ~1e-6 and the same logits for every image."""
import pytest
import torch

from neurozoo import convrnn
from neurozoo.datasets.errors import SpecError
from neurozoo.leaderboard.cli import main


def _wiring(layer):
    return layer.activation, layer.post, {k: v for k, v in layer.cell.items() if k != "kind"}


def test_cell_kind_takes_the_published_models_layer_wiring():
    base, published = convrnn.get_spec("rgc_intermediate"), convrnn.get_spec("ugrnn_intermediate")
    spec = base.with_overrides(cell_kind="ugrnn")
    cell_layers = [l.name for l in base.layers if l.cell]
    assert cell_layers == [f"conv{i}" for i in range(4, 11)]
    for name in cell_layers:
        layer = spec.layer(name)
        assert layer.cell["kind"] == "ugrnn"
        assert _wiring(layer) == _wiring(published.layer(name))
        # models/ugrnn_intermediate.json conv4-conv10 (lines 222-789): pre_memory elu (conv4 line 259); post_memory
        # conv 3x3, residual_add, elu (conv4 lines 277-291)
        assert (layer.activation or spec.activation, layer.post) == ("elu", {"kernel": 3, "residual": True})
        # the model keeps its own backbone
        assert (layer.channels, layer.kernel, layer.stride, layer.pool) == (
            base.layer(name).channels, base.layer(name).kernel, base.layer(name).stride, base.layer(name).pool)
    assert [l.name for l in spec.layers if l.post] == cell_layers
    assert spec.description.endswith("every cell ugrnn, wired as in ugrnn_intermediate")
    # a published cell configuration comes along, the 'cell' override on top, in any order of the overrides
    simple = base.with_overrides(cell={"filter_size": 5}, cell_kind="simplernn")
    assert simple.layer("conv9").cell == {"kind": "simplernn", "filter_size": 5, "layer_norm": False,
                                          "weight_decay": 1e-4}  # simplernn_intermediate's, filter size 5
    # the shallow family: ugrnn_shallow's layers have no activation after the convolution and no post block
    shallow = convrnn.get_spec("rgc_shallow").with_overrides(cell_kind="ugrnn")
    assert _wiring(shallow.layer("conv4")) == _wiring(convrnn.get_spec("ugrnn_shallow").layer("conv4"))
    # width_multiplier scales the new cells' depth whatever the order of the overrides (it was dropped before)
    for overrides in ({"width_multiplier": 0.5, "cell_kind": "rgc"}, {"cell_kind": "rgc", "width_multiplier": 0.5}):
        assert base.with_overrides(**overrides).layer("conv8").cell == {"kind": "rgc", "cell_depth": 32}


def test_a_ugrnn_override_carries_the_image_only_with_its_own_wiring():
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    measured = {}
    for wiring in (None, "base"):  # published (the default), then the RGC model's layers (the former behaviour)
        torch.manual_seed(0)
        model = convrnn.create_model("rgc_intermediate", cell_kind="ugrnn", wiring=wiring, width_multiplier=0.125,
                                     num_classes=4, n_steps=12)
        with torch.no_grad():
            out = model(x, record=["conv10"])
        measured[wiring] = out.recorded["conv10"][-1].std().item(), out.logits[-1].std(0).mean().item()
    sd, spread = measured[None]
    assert 0.2 < sd < 5 and spread > 1e-3  # measured 0.67 and 1.0e-2
    sd, spread = measured["base"]
    assert sd < 1e-4 and spread < 1e-6  # measured 4.4e-8 and 0.0


def test_a_kind_without_a_published_model_needs_a_named_wiring():
    base = convrnn.get_spec("rgc_intermediate")
    with pytest.raises(SpecError, match=r"^spec 'rgc_intermediate': no published model of cell 'gru' has the layers "
                                        r"of 'rgc_intermediate'.* override wiring=MODEL \(e\.g\. ugrnn_intermediate"
                                        r".* or override wiring=base "):
        base.with_overrides(cell_kind="gru")
    lent = base.with_overrides(cell_kind="gru", wiring="ugrnn_intermediate").layer("conv8")
    assert (lent.activation, lent.post, lent.cell) == (None, {"kernel": 3, "residual": True}, {"kind": "gru"})
    kept = base.with_overrides(cell_kind="gru", wiring="base").layer("conv8")
    assert (kept.activation, kept.post, kept.cell) == ("identity", None, {"kind": "gru"})
    # rgc_resnet18's timm stages: no released model has them, a wiring must be named
    with pytest.raises(SpecError, match=r"no published model of cell 'ugrnn' has the layers of 'rgc_resnet18'"):
        convrnn.models.timm_convrnn_spec("resnet18", name="rgc_resnet18").with_overrides(cell_kind="ugrnn")
    for overrides, message in [
        ({"wiring": "base"}, r"override wiring='base' says how the cells of cell_kind are wired; give cell_kind too"),
        ({"cell_kind": "gru", "wiring": "nope"}, r"override wiring=nope: unknown model 'nope'; expected a registered "
                                                 r"model or 'base' \(known: base, cornet_rt, "),
        # the registries' one refusal (datasets.registry.lookup): a misspelt name had no close names
        ({"cell_kind": "gru", "wiring": "ugrnn_intermediat"}, r"wiring=ugrnn_intermediat: unknown model "
                                                              r"'ugrnn_intermediat'; expected a registered model or "
                                                              r"'base'; did you mean ugrnn_intermediate, "),
        ({"cell_kind": "gru", "wiring": "bse"}, r"did you mean base\? \(known: "),
        ({"cell_kind": "nope"}, r"override cell_kind='nope' is not a cell kind \(gru, identity, "),
    ]:
        with pytest.raises(SpecError, match=message):
            base.with_overrides(**overrides)
    with pytest.raises(SpecError, match=r"^spec 'feedforward_intermediate': override cell_kind='ugrnn', but the "
                                        r"model has no cell to replace$"):  # was silently ignored
        convrnn.get_spec("feedforward_intermediate").with_overrides(cell_kind="ugrnn")


def test_zoo_info_set_cell_kind(capsys):
    args = ["info", "rgc_shallow", "--image-size", "32", "--set", "width_multiplier=0.125"]
    assert main(args + ["--set", "cell_kind=ugrnn"]) == 0
    assert "every cell ugrnn, wired as in ugrnn_shallow" in capsys.readouterr().out
    assert main(args + ["--set", "cell_kind=gru"]) == 2
    assert "no published model of cell 'gru' has the layers of 'rgc_shallow'" in capsys.readouterr().err
