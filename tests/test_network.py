"""Timing and structure of the biologically unrolled ConvRNN."""
import re

import numpy as np
import pytest
import torch

from neurozoo import convrnn
from neurozoo.convrnn.spec import GraphSpec
from neurozoo.datasets.errors import SpecError
from neurozoo.datasets.registry import UnknownNameError

SIZE = 32


def tiny(name="rgc_intermediate", **overrides):
    torch.manual_seed(0)
    overrides.setdefault("width_multiplier", 1 / 16)
    overrides.setdefault("num_classes", 5)
    return convrnn.create_model(name, **overrides).eval()


def movie(steps, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(steps, batch, 3, SIZE, SIZE, generator=g)


def test_registry_has_the_required_models():
    names = convrnn.list_models()
    for required in ("rgc_intermediate", "rgc_shallow", "timedecay_intermediate", "ugrnn_intermediate",
                     "feedforward_intermediate", "rgc_resnet18"):
        assert required in names
    assert convrnn.list_models("rgc_*") == [n for n in names if n.startswith("rgc_")]


def test_rgc_intermediate_matches_the_published_graph():
    """models/rgc_intermediate_t22.json nodes (conv1 lines 3-80, conv1's 7x7 stride 2 lines 30-36, conv2-conv10
    lines 81-715, pools at conv1, conv4, conv6, conv7, conv10), configs/median_rgcell_cfg.py edges_5 (lines 4-10),
    models/model_func.py steps (set_imagepres lines 53-57: 17 steps, image_off 12)."""
    spec = convrnn.get_spec("rgc_intermediate")
    assert [l.channels for l in spec.layers] == [64, 128, 128, 128, 128, 256, 256, 256, 512, 512]
    assert [l.name for l in spec.layers if l.pool] == ["conv1", "conv4", "conv6", "conv7", "conv10"]
    assert all(l.pool == {"kernel": 2, "stride": 2} for l in spec.layers if l.pool)  # 2x2 SAME max pools
    assert [l.name for l in spec.layers if l.cell] == [f"conv{i}" for i in range(4, 11)]
    assert {(e.source, e.target) for e in spec.feedback} == {
        ("conv8", "conv5"), ("conv9", "conv6"), ("conv10", "conv7"), ("conv7", "conv6"), ("conv10", "conv9")}
    assert (spec.n_steps, spec.image_steps) == (17, 12)
    assert spec.layers[0].kernel == 7 and spec.layers[0].stride == 2
    assert spec.norm == "none" and spec.blank == 0.5


#: utils/loader.py MODEL_TO_KWARGS (lines 51-91): each variant's base_name and decoder_type (max_conf trainable,
#: lines 64-73; thresh not, lines 74-78).
RGC_INTERMEDIATE_VARIANTS = {"rgc_intermediate_tmaxconf": ("models/rgc_intermediate", "max_conf"),
                             "rgc_intermediate_dthresh": ("models/rgc_intermediate", "thresh"),
                             "rgc_intermediate_t22_tmaxconf": ("models/rgc_intermediate_t22", "max_conf")}


@pytest.mark.parametrize("variant", list(RGC_INTERMEDIATE_VARIANTS))
def test_rgc_intermediate_variants_are_its_released_graph(variant):
    """The loader builds every variant from rgc_intermediate's graph ("models/rgc_intermediate": that JSON is not in
    the released code, so all four are built from models/rgc_intermediate_t22.json, README) with the median cells and
    edges_5; only the decoder and the schedule differ: models/model_func.py set_imagepres unrolls 22 steps (lines
    149-153, 56-59) of a constant image (lines 67-69) when "t22" is in base_name, else 17 steps with the image for
    12 (lines 54-57)."""
    base_name, decoder = RGC_INTERMEDIATE_VARIANTS[variant]
    spec, base = convrnn.get_spec(variant).to_dict(), convrnn.get_spec("rgc_intermediate").to_dict()
    schedule = (22, 22) if "t22" in base_name else (17, 12)
    assert (spec.pop("decoder"), spec.pop("n_steps"), spec.pop("image_steps")) == (decoder, *schedule)
    for key in ("name", "description", "decoder", "n_steps", "image_steps"):
        spec.pop(key, None), base.pop(key, None)
    assert spec == base


def test_feedforward_and_readout_start_from_the_originals_initialisers():
    """models/rgc_intermediate_t22.json: every component_conv has "kernel_init": "variance_scaling" (conv1: lines
    38-42, with "bias": 0; utils/model_tool.py initializer, lines 12-20, makes it TensorFlow 1.13's
    tf.variance_scaling_initializer: scale 1, fan-in, truncated normal at 2 std, stddev sqrt(1 / fan_in) / 0.87962566)
    and "bias": 0; imnetds's fc (lines 748-757) has "kernel_init": "random_normal", "stddev": 0.01 and no bias
    given, so utils/model_tool.py fc's default ``bias=1`` (line 521)."""
    import math

    torch.manual_seed(0)
    model = convrnn.create_model("rgc_intermediate", width_multiplier=0.5)
    for name in ("conv2", "conv6", "conv9"):
        conv = model.layers[name].stage[0]
        fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
        bound = 2 * math.sqrt(1.0 / fan_in) / 0.87962566103423978
        assert conv.weight.abs().max().item() <= bound * (1 + 1e-6)
        assert conv.weight.std().item() == pytest.approx(math.sqrt(1.0 / fan_in), rel=0.03)  # truncation restores it
        assert torch.count_nonzero(conv.bias) == 0
    assert model.readout.weight.std().item() == pytest.approx(0.01, rel=0.03)
    assert model.readout.weight.abs().max().item() > 2 * 0.01  # a plain normal, not truncated
    assert torch.equal(model.readout.bias, torch.ones(1000))


#: neuroailab/convrnns models/ugrnn_intermediate.json, models/lstm_intermediate.json,
#: models/timedecay_intermediate.json and models/simplernn_intermediate.json, node by node (the same backbone;
#: ugrnn_intermediate.json and lstm_intermediate.json line for line: conv1 lines 3-80, conv2 81-150, conv3 151-221,
#: conv4 222-309 with its memory 270-276 and post_memory 277-308, conv10 702-789; timedecay_intermediate.json conv4
#: memory lines 270-274, "trainable": true line 273; simplernn_intermediate.json conv4 memory lines 270-278): the
#: component_conv's out_depth, ksize and stride, whether post_memory ends in a 2x2 max_pool, the memory's out_depth
#: and filter_size (ConvUGRNNCell, ConvLSTMCell, ConvNormBasicCell; the time decay has a trainable memory_decay only),
#: and the post_memory conv's ksize (followed by residual_add and elu in conv2-conv10). Every one of these JSONs' conv1
#: moves its elu from the component_conv ("activation": null, line 44) to post_memory, before the pool (lines 59-62):
#: the same node, the memory between being the identity (memory_decay 0, not trainable, lines 54-58).
INTERMEDIATE_RESBLOCK_JSON = [
    ("conv1", 64, 7, 2, True, None, None), ("conv2", 64, 3, 1, False, None, 3), ("conv3", 64, 3, 1, False, None, 3),
    ("conv4", 128, 3, 1, True, (128, 3), 3), ("conv5", 128, 3, 1, False, (128, 3), 3),
    ("conv6", 256, 3, 1, True, (256, 3), 3), ("conv7", 256, 3, 1, True, (256, 3), 3),
    ("conv8", 512, 3, 1, False, (512, 3), 3), ("conv9", 512, 3, 1, False, (512, 3), 3),
    ("conv10", 512, 3, 1, True, (512, 3), 3),
]


def assert_simplernn_memory(cell, in_depth, memory, layer_norm, name):
    """A ConvNormBasicCell memory {"out_depth", "filter_size", "layer_norm", "kernel_regularizer": 1e-4,
    "bias_regularizer": 1e-4} fed a convolution of ``in_depth`` channels."""
    out_depth, k = memory
    assert (cell.input_conv.in_channels, cell.input_conv.out_channels, cell.input_conv.kernel_size) == (
        in_depth, out_depth, (k, k)), name
    assert (cell.state_conv.in_channels, cell.state_conv.out_channels, cell.state_conv.kernel_size) == (
        out_depth, out_depth, (k, k)), name
    assert cell.state_channels == (out_depth,), name
    assert (cell.norm is not None) == layer_norm, name
    assert cell.weight_decay == 1e-4, name


@pytest.mark.parametrize("model_name, kind", [("ugrnn_intermediate", "ugrnn"), ("lstm_intermediate", "lstm"),
                                              ("timedecay_intermediate", "timedecay"),
                                              ("simplernn_intermediate", "simplernn")])
def test_intermediate_baselines_have_the_released_json_layers(model_name, kind):
    """The parity tests take every shape from our model; this checks the shapes themselves against the JSON."""
    with torch.device("meta"):  # shapes only
        model = convrnn.create_model(model_name)
    assert model.layer_names == [row[0] for row in INTERMEDIATE_RESBLOCK_JSON]
    for name, depth, ksize, stride, pool, memory, post in INTERMEDIATE_RESBLOCK_JSON:
        layer, spec = model.layers[name], model.spec.layer(name)
        conv = layer.stage[0]
        assert (conv.out_channels, conv.kernel_size, conv.stride) == (depth, (ksize, ksize), (stride, stride)), name
        assert (spec.pool == {"kernel": 2, "stride": 2}) if pool else not spec.pool, name
        if memory is None:
            assert spec.cell is None, name  # memory_decay 0, not trainable: no cell
        else:
            assert spec.cell["kind"] == kind, name
            if kind == "simplernn":  # ConvNormBasicCell: "i" = conv(inputs) + "s" = conv(state), no layer_norm
                assert_simplernn_memory(layer.cell, depth, memory, layer_norm=False, name=name)
            elif kind != "timedecay":  # one convolution of [input, h] to the UGRNN's 2 or the LSTM's 4 pre-activations
                gates = {"ugrnn": 2, "lstm": 4}[kind]
                assert (layer.cell.channels, layer.cell.conv.kernel_size) == (memory[0], (memory[1], memory[1])), name
                assert (layer.cell.conv.in_channels, layer.cell.conv.out_channels) == (
                    2 * memory[0], gates * memory[0]), name
        if post is None:
            assert layer.post is None, name
        else:
            assert (layer.post.conv.kernel_size, layer.post.conv.out_channels) == ((post, post), depth), name
            assert layer.post.residual is not None, name
    # imnetds: global_pool (avg), flatten, fc to 1000 (utils/model_tool.py fc: with a bias)
    readout = model.readout
    assert (type(readout), readout.in_features, readout.out_features) == (torch.nn.Linear, 512, 1000)
    assert readout.bias is not None


#: neuroailab/convrnns models/rgc_shallow.json: component_conv (out_depth, ksize, stride; ELU; conv1 lines 26-44), a
#: 2x2 max_pool after every node, and at conv3-conv5 a ReciprocalGateCell with cell_depth = out_depth and 3x3 tau,
#: gate and ff filters (conv3's memory lines 190-214; utils/cells.py lines 1769-1779: residual_to_out_gate uses
#: gate_filter_size); imnetds (lines 412-465): conv 2x2 VALID to 1000 (lines 437-448), then global_pool (456-459).
RGC_SHALLOW_JSON = [("conv1", 64, 7, 2, None), ("conv2", 128, 3, 1, None), ("conv3", 256, 3, 1, 256),
                    ("conv4", 256, 3, 1, 256), ("conv5", 512, 3, 1, 512)]


def test_rgc_shallow_has_the_released_json_layers():
    with torch.device("meta"):  # shapes only
        model = convrnn.create_model("rgc_shallow")
    assert model.layer_names == [row[0] for row in RGC_SHALLOW_JSON]
    previous = 3
    for name, depth, ksize, stride, cell_depth in RGC_SHALLOW_JSON:
        layer, spec = model.layers[name], model.spec.layer(name)
        conv = layer.stage[0]
        assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride) == (
            previous, depth, (ksize, ksize), (stride, stride)), name
        assert spec.pool == {"kernel": 2, "stride": 2}, name
        if cell_depth is None:
            assert spec.cell is None, name
        else:
            cell = layer.cell
            assert cell.cell_depth == cell_depth, name
            for part in (cell.input_to_cell_conv, cell.cell_tau, cell.cell_gate, cell.out_tau, cell.out_gate):
                assert part.kernel_size == (3, 3), name
            assert (cell.res_to_out_gate.in_channels, cell.res_to_out_gate.kernel_size) == (previous, (3, 3)), name
        previous = depth
    assert (model.readout.in_channels, model.readout.out_channels, model.readout.kernel_size) == (512, 1000, (2, 2))


#: neuroailab/convrnns models/timedecay_shallow.json, models/ugrnn_shallow.json and models/simplernn_shallow.json (the
#: same backbone): component_conv (out_depth, ksize, stride, activation: elu at conv1-conv2, null at conv3-conv5;
#: ugrnn_shallow.json and simplernn_shallow.json lines 41 and 110 "elu", 179 null), a 2x2 max_pool after every node,
#: imnetds conv 2x2 VALID to 1000.
SHALLOW_JSON = [("conv1", 64, 7, 2, "elu"), ("conv2", 128, 3, 1, "elu"), ("conv3", 256, 3, 1, "identity"),
                ("conv4", 256, 3, 1, "identity"), ("conv5", 512, 3, 1, "identity")]

#: Their memories at conv3-conv5 (conv1-conv2: memory_decay 0, not trainable): timedecay_shallow.json a trainable
#: memory_decay (None: the convolution's depth passes); ugrnn_shallow.json ConvUGRNNCell out_depth and filter_size
#: (memories lines 190-196, 261-267, 332-338); simplernn_shallow.json ConvNormBasicCell out_depth and filter_size with
#: "layer_norm": true (memories lines 190-198, 263-271, 336-344), whose out_depth (128 at conv3, line 194; 256 at
#: conv5, line 340) is the node's output depth, the next component_conv's and imnetds's input.
SHALLOW_MEMORY_JSON = {
    "timedecay_shallow": ("timedecay", {"conv3": None, "conv4": None, "conv5": None}),
    "ugrnn_shallow": ("ugrnn", {"conv3": (256, 3), "conv4": (256, 3), "conv5": (512, 3)}),
    "simplernn_shallow": ("simplernn", {"conv3": (128, 3), "conv4": (256, 3), "conv5": (256, 3)}),
}


@pytest.mark.parametrize("model_name", list(SHALLOW_MEMORY_JSON))
def test_shallow_baselines_have_the_released_json_layers(model_name):
    kind, memories = SHALLOW_MEMORY_JSON[model_name]
    with torch.device("meta"):  # shapes only
        model = convrnn.create_model(model_name)
    spec = model.spec
    assert spec.layer_names == [row[0] for row in SHALLOW_JSON]
    previous = 3
    for name, depth, ksize, stride, activation in SHALLOW_JSON:
        layer, conv = spec.layer(name), model.layers[name].stage[0]
        assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride) == (
            previous, depth, (ksize, ksize), (stride, stride)), name
        assert (layer.activation or spec.activation) == activation, name
        assert layer.pool == {"kernel": 2, "stride": 2}, name
        assert (layer.cell or {}).get("kind") == (kind if name in memories else None), name
        memory, cell = memories.get(name), model.layers[name].cell
        if memory is not None and kind == "ugrnn":  # one convolution of [input, h] to [g | c]
            assert (cell.channels, cell.conv.kernel_size) == (memory[0], (memory[1], memory[1])), name
            assert (cell.conv.in_channels, cell.conv.out_channels) == (depth + memory[0], 2 * memory[0]), name
        elif memory is not None and kind == "simplernn":
            assert_simplernn_memory(cell, depth, memory, layer_norm=True, name=name)
        elif name in memories:  # "memory_decay": 0.0, "trainable": true
            assert cell.memory_decay.requires_grad and cell.memory_decay.numel() == 1, name
        previous = memory[0] if memory else depth
    readout = model.readout
    assert (readout.in_channels, readout.out_channels, readout.kernel_size) == (previous, 1000, (2, 2))


def test_rgc_intermediate_has_the_original_parameter_count():
    """15,445,800: counted from models/rgc_intermediate_t22.json (backbone and readout 6,054,376), the median cell
    of configs/median_rgcell_cfg.py (lines 14-52; 8,603,840 in conv4-conv10), the residual_add projections
    (utils/median_rgcell.py line 769, utils/cell_utils.py lines 1161-1173: conv6 128 -> 256 and conv9 256 -> 512,
    163,840) and the
    feedback 1x1 convolutions of the five edges (623,744)."""
    model = convrnn.create_model("rgc_intermediate")
    counts = {"stage": 0, "cell": 0, "projection": 0, "feedback": 0, "readout": 0}
    for name, p in model.named_parameters():
        part = ("projection" if "residual.projection" in name else "feedback" if "feedback_conv" in name
                else "stage" if ".stage." in name else "cell" if ".cell." in name else "readout")
        counts[part] += p.numel()
    assert counts["stage"] + counts["readout"] == 6_054_376 == sum(
        p.numel() for p in convrnn.create_model("feedforward_intermediate").parameters())
    assert (counts["cell"], counts["projection"], counts["feedback"]) == (8_603_840, 163_840, 623_744)
    assert sum(counts.values()) == 15_445_800


def test_weight_decay_groups_follow_the_original_regularisers():
    """median cell kernels: l2_regularizer(2.034e-4) (configs/median_rgcell_cfg.py line 41; utils/median_rgcell.py,
    e.g. lines 297-310, and its separable kernels, utils/cell_utils.py _ds_conv lines 131-144); component_conv and fc
    weights and biases: 1e-4 (models/*.json; utils/cell_utils.py component_conv lines 1301 and 1330,
    utils/model_tool.py fc lines 555 and 565); residual_add projections and cell biases: none (utils/cell_utils.py
    lines 1165-1170; _ds_conv's bias lines 160-162; utils/median_rgcell.py e.g. lines 312-316)."""
    from neurozoo.convrnn.training.engine import TrainConfig
    from neurozoo.convrnn.training.optim import build_optimizer

    model = convrnn.create_model("rgc_intermediate")
    groups = {round(g["weight_decay"], 10): g["params"] for g in model.weight_decay_groups()}
    assert set(groups) == {round(0.0002033999204146308, 10), 1e-4, 0.0}
    count = lambda key: sum(p.numel() for p in groups[key])
    assert count(1e-4) == 6_054_376 and sum(count(k) for k in groups) == 15_445_800
    zero = {id(p) for p in groups[0.0]}
    assert id(model.layers["conv6"].cell.residual.projection.weight) in zero
    assert id(model.layers["conv6"].cell.out_tau.pointwise.bias) in zero
    assert id(model.layers["conv6"].cell.feedback_conv.weight) not in zero
    optimizer = build_optimizer(model, TrainConfig(model="rgc_intermediate", data=".", original_weight_decay=True))
    assert sorted(g["weight_decay"] for g in optimizer.param_groups) == [0.0, 1e-4, 0.0002033999204146308]


def test_spatial_sizes_follow_tensorflow_same_pooling():
    """2x2 stride-2 SAME pools: 224 -> 112 (conv1) -> 56 -> 28 -> 14 -> 7 -> 4, not 57 / 29 / 5."""
    model = tiny(width_multiplier=1 / 32)
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 224, 224), n_steps=1, record=model.layer_names)
    sizes = {name: out.recorded[name].shape[-1] for name in model.layer_names}
    assert sizes == {"conv1": 56, "conv2": 56, "conv3": 56, "conv4": 28, "conv5": 28, "conv6": 14, "conv7": 7,
                     "conv8": 7, "conv9": 7, "conv10": 4}


def test_width_multiplier_scales_the_cell_depth():
    spec = convrnn.get_spec("rgc_intermediate").with_overrides(width_multiplier=0.125)
    assert spec.layer("conv5").cell["cell_depth"] == 8 and spec.layer("conv5").channels == 16
    assert convrnn.create_model("rgc_intermediate", width_multiplier=0.25).layers["conv9"].cell.cell_depth == 16


@pytest.mark.parametrize("perturbed_step", [0, 3])
def test_image_perturbation_reaches_layer_l_at_step_t_plus_l_minus_1(perturbed_step):
    """utils/main.py unroll (lines 190-258): conv1 reads frame t at step t (lines 235-236, 250-251); every other edge
    costs one step (line 253)."""
    model = tiny()
    steps = 14
    clean = movie(steps)
    dirty = clean.clone()
    dirty[perturbed_step] += 1.0
    layers = model.layer_names
    with torch.no_grad():
        a = model(clean, record=layers)
        b = model(dirty, record=layers)
    for position, name in enumerate(layers, start=1):
        first_change = perturbed_step + position - 1
        same = [torch.equal(a.recorded[name][t], b.recorded[name][t]) for t in range(steps)]
        assert all(same[:first_change]), f"{name} changed before step {first_change}"
        if first_change < steps:
            assert not same[first_change], f"{name} did not change at step {first_change}"
    first_logit_change = perturbed_step + len(layers)  # one edge after conv10
    for t in range(steps):
        assert torch.equal(a.logits[t], b.logits[t]) == (t < first_logit_change)


@pytest.mark.parametrize("edge, arrival", [
    ({"source": "conv1", "target": "conv4", "delay": 1}, [0, 1, 2, 1, 2]),  # skip: conv4 one step after conv1
    ({"source": "conv2", "target": "conv5", "delay": 0}, [0, 1, 2, 3, 1]),  # zero delay: conv5 with conv2
    ({"source": "conv1", "target": "conv5", "delay": 3}, [0, 1, 2, 3, 3]),  # 3 steps against the chain's 4
    ({"source": "conv1", "target": "conv5", "delay": 5}, [0, 1, 2, 3, 4]),  # longer than the chain: unchanged
    ({"source": "conv5", "target": "conv2", "delay": 1}, [0, 1, 2, 3, 4]),  # feedback: no shortcut
])
def test_the_timing_facts_follow_skip_and_zero_delay_edges(edge, arrival):
    """first_output_step / first_readout_step are the first steps whose outputs depend on the image, measured here
    by perturbing the image; they counted layers along the chain, so a skip edge (conv1 -> conv4) or a zero-delay
    edge left them too late (zoo info, the trainer's first readout step and --loss-steps all, imagenet's per-step
    rows)."""
    model = tiny("rgc_shallow", feedback=[edge], n_steps=8, image_steps=8)
    clean = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    layers = model.layer_names
    with torch.no_grad():
        a, b = model(clean, record=layers), model(clean + 1.0, record=layers)
    measured = [next(t for t in range(8) if not torch.equal(a.recorded[name][t], b.recorded[name][t]))
                for name in layers]
    assert measured == arrival
    assert [model.first_output_step(name) for name in layers] == arrival
    first_logits = next(t for t in range(8) if not torch.equal(a.logits[t], b.logits[t]))
    assert model.first_readout_step == first_logits == arrival[-1] + 1


def test_a_second_edge_between_the_same_layers_is_refused():
    """The unroll reads each feedback source once per target, so of conv5 -> conv3 at delays 1 and 3 only the
    delay 3 reached conv3 (through both of its projection's inputs), silently."""
    edges = [{"source": "conv5", "target": "conv3"}, {"source": "conv5", "target": "conv3", "delay": 3}]
    with pytest.raises(SpecError, match=r"feedback\[1\] conv5->conv3: a second edge from 'conv5' to 'conv3' "
                                        r"\(feedback\[0\] is the first\)"):
        GraphSpec.from_dict(_spec(feedback=edges))
    with pytest.raises(SpecError, match="a second edge"):
        convrnn.create_model("rgc_shallow", feedback=edges)


def test_layers_run_from_the_first_step_driven_by_their_biases():
    """utils/main.py unroll: at t = 0 every node runs on zero "standins" (lines 237-243), so its biases drive it."""
    model = tiny()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.add_(0.1)
        out = model(torch.zeros(2, 3, SIZE, SIZE), n_steps=12, image_steps=0, record=model.layer_names)
    for position, name in enumerate(model.layer_names):
        assert model.first_output_step(name) == position
        assert torch.count_nonzero(out.recorded[name][1]) > 0, name
    assert model.first_readout_step == 10 == out.first_readout_step
    # the logits change from step to step although no image was ever shown
    assert not torch.allclose(out.logits[1], out.logits[5])


def _perturb_output_at(model, layer, step):
    """Add a constant to ``layer``'s output at one step (the layer runs once per step from t = 0)."""
    calls = {"n": 0}

    def hook(module, inputs, output):
        t = calls["n"]
        calls["n"] += 1
        return output + 0.5 if t == step else output

    return model.layers[layer].pool.register_forward_hook(hook)


@pytest.mark.parametrize("delay", [1, 2, 3])
def test_feedback_changes_its_target_exactly_delay_steps_after_its_source(delay):
    model = tiny(feedback=[{"source": "conv8", "target": "conv5", "delay": delay}])
    steps, source_step = 16, 10
    x = movie(steps)
    with torch.no_grad():
        a = model(x, record=["conv5", "conv6", "conv8"])
        handle = _perturb_output_at(model, "conv8", source_step)
        b = model(x, record=["conv5", "conv6", "conv8"])
        handle.remove()
    changed = lambda name: [not torch.equal(a.recorded[name][t], b.recorded[name][t]) for t in range(steps)]
    assert changed("conv8").index(True) == source_step
    c5 = changed("conv5")
    assert c5.index(True) == source_step + delay and not any(c5[: source_step + delay])
    assert changed("conv6").index(True) == source_step + delay + 1


def test_without_feedback_later_layers_never_change_earlier_ones():
    model = tiny("feedforward_intermediate")
    x = movie(14)
    with torch.no_grad():
        a = model(x, record=["conv5"])
        handle = _perturb_output_at(model, "conv8", 9)
        b = model(x, record=["conv5"])
        handle.remove()
    assert torch.equal(a.recorded["conv5"], b.recorded["conv5"])


def test_static_image_follows_the_schedule():
    """models/model_func.py make_movie (lines 41-44): the image for image_off steps, then the constant 0.5 (in the
    normalised input space, as run_model.py normalize_ims, lines 8-21, is applied before)."""
    model = tiny(n_steps=14, image_steps=4)
    images = torch.randn(2, 3, SIZE, SIZE)
    gray = model.gray.expand_as(images)
    frames = torch.stack([images if t < 4 else gray for t in range(14)])
    with torch.no_grad():
        a = model(images)
        b = model(frames)
        c = model(images, n_steps=26, image_steps=10, record=["conv6"])
    assert torch.equal(a.logits, b.logits)
    assert a.logits.shape == (14, 2, 5)
    assert c.logits.shape == (26, 2, 5) and c.recorded["conv6"].shape[:2] == (26, 2)
    assert torch.equal(gray[0, :, 0, 0], torch.full((3,), 0.5))
    # the named option "mean_gray": pixel value 0.5 after ImageNet normalisation
    gray = tiny(blank="mean_gray").gray[0, :, 0, 0]
    pixel = gray * torch.tensor([0.229, 0.224, 0.225]) + torch.tensor([0.485, 0.456, 0.406])
    assert torch.allclose(pixel, torch.full((3,), 0.5))


def test_a_layer_named_twice_is_recorded_once_per_step():
    """``record=["conv5", "conv5"]`` (or ``zoo dynamics --trajectory-layers conv5,conv5``) appended conv5 twice a
    step: a (2 T, B, ...) recording whose steps 2t and 2t + 1 were both step t, so every time bin after the first
    was another step's."""
    model = tiny(n_steps=6, image_steps=6)
    images = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        once = model(images, record=["conv5", "conv7"]).recorded
        twice = model(images, record=["conv5", "conv7", "conv5"]).recorded
    assert list(twice) == ["conv5", "conv7"] and twice["conv5"].shape[:2] == (6, 2)
    assert all(torch.equal(once[name], twice[name]) for name in once)


def test_gradients_reach_every_parameter_through_time():
    model = tiny("rgc_intermediate").train()  # 17 steps: enough for the last feedback edge to reach the readout
    out = model(torch.randn(2, 3, 64, 64))
    out.logits[-1].logsumexp(-1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing, f"no gradient reached {missing}"


def test_max_confidence_decoder_picks_the_most_confident_step():
    logits = torch.zeros(4, 2, 3)
    logits[1, 0] = torch.tensor([5.0, 0, 0])  # sample 0 most confident at step 1
    logits[3, 1] = torch.tensor([0, 0, 9.0])  # sample 1 most confident at step 3
    decoded = convrnn.max_confidence_decoder(logits)
    assert torch.equal(decoded[0], logits[1, 0]) and torch.equal(decoded[1], logits[3, 1])
    assert torch.equal(convrnn.max_confidence_decoder(logits, first_step=2)[0], logits[2, 0])


def test_released_decoders():
    """models/model_func.py (lines 192-209) + utils/decoders.py: max_conf (lines 116-129) with a trainable softmax
    beta (U[0, 1) at start, lines 10-11) and thresh (0.9, not trainable; lines 157-202) read the logits of steps
    [11, T) (model_func.py lines 196-203); rgc_intermediate reads the last step (lines 192-194)."""
    logits = torch.zeros(6, 2, 3)
    logits[2, 0] = torch.tensor([0.0, 0, 3.0])  # sample 0: softmax max 0.91 at step 2, 0.98 at step 4
    logits[4, 0] = torch.tensor([5.0, 0, 0])
    logits[3, 1] = torch.tensor([0.0, 1.0, 0])  # sample 1 never reaches 0.9: its most confident step
    from neurozoo.convrnn.network import threshold_decoder

    decoded = threshold_decoder(logits)
    assert torch.equal(decoded[0], logits[2, 0]) and torch.equal(decoded[1], logits[3, 1])
    assert torch.equal(convrnn.max_confidence_decoder(logits, beta=torch.tensor([1.0]))[0], logits[4, 0])
    tmaxconf = tiny("rgc_intermediate_tmaxconf", n_steps=13)
    assert tmaxconf.softmax_beta.requires_grad and 0 <= tmaxconf.softmax_beta.item() < 1
    with torch.no_grad():
        out = tmaxconf(torch.randn(2, 3, SIZE, SIZE))
    expected = convrnn.max_confidence_decoder(out.logits, 11, beta=tmaxconf.softmax_beta)
    assert torch.equal(out.final_logits, expected)
    plain = tiny(n_steps=13)
    with torch.no_grad():
        out = plain(torch.randn(2, 3, SIZE, SIZE))
    assert out.decoded is None and torch.equal(out.final_logits, out.logits[-1])
    t22 = convrnn.get_spec("rgc_intermediate_t22_tmaxconf")
    assert (t22.n_steps, t22.image_steps, t22.decoder) == (22, 22, "max_conf")


@pytest.mark.parametrize("name,decoder", [("rgc_intermediate_tmaxconf", "max_conf"),
                                          ("rgc_intermediate_dthresh", "thresh")])
def test_a_decoder_window_without_steps_is_refused_as_the_original_crashes(name, decoder):
    """model_func.py reads range(decoder_start, times) (lines 196-205) and tf.stack fails on the empty list
    (decoders.py temporal_decoder): n_steps <= 11 is refused, not answered from an image-blind step."""
    with pytest.raises(SpecError, match=rf"{name}.*'{decoder}' decoder reads steps 11 .*n_steps=8 leaves none"):
        tiny(name, n_steps=8, image_steps=8)
    model = tiny(name, n_steps=12)  # one step in the window: that step's logits
    with torch.no_grad():
        out = model(torch.randn(2, 3, SIZE, SIZE))
        assert torch.equal(out.final_logits, out.logits[11])
        with pytest.raises(SpecError, match=rf"model '{name}'.*n_steps=11 leaves none"):
            model(torch.randn(2, 3, SIZE, SIZE), n_steps=11)


def test_timm_backbone_variant_runs_and_has_cells_in_stages():
    model = convrnn.create_model("rgc_resnet18", num_classes=7).eval()
    assert [l.name for l in model.spec.layers if l.cell] == ["layer2", "layer3", "layer4"]
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64), record=["layer4"])
    assert out.logits.shape == (10, 1, 7)
    assert out.recorded["layer4"].shape[2] == 512
    thin = convrnn.create_model("rgc_resnet18", num_classes=7, width_multiplier=0.125).eval()
    assert thin.spec.timm_width == 0.125 and GraphSpec.from_dict(thin.spec.to_dict()).timm_width == 0.125
    with torch.no_grad():
        out = thin(torch.randn(1, 3, 64, 64), record=["layer2", "layer4"])
    assert out.recorded["layer2"].shape[2] == 16 and out.recorded["layer4"].shape[2] == 64  # 128 / 8, 512 / 8
    assert sum(p.numel() for p in thin.parameters()) < sum(p.numel() for p in model.parameters()) / 20


def test_yaml_round_trip_and_create_from_file(tmp_path):
    spec = convrnn.get_spec("rgc_intermediate").with_overrides(width_multiplier=0.0625, num_classes=3)
    path = tmp_path / "mine.yaml"
    spec.to_yaml(str(path))
    again = GraphSpec.from_yaml(str(path))
    assert again.to_dict() == spec.to_dict()
    model = convrnn.create_model(str(path))
    assert model.readout.out_features == 3


# ----------------------------------------------------------------------------- bad input
def _spec(**changes):
    data = convrnn.get_spec("rgc_shallow").to_dict()
    data.update(changes)
    return data


def test_unknown_model_name_suggests_close_names():
    with pytest.raises(UnknownNameError, match="rgc_intermediate"):
        convrnn.create_model("rgc_intermediat")


def test_unknown_override_is_named():
    with pytest.raises(SpecError, match="colour"):
        convrnn.create_model("rgc_shallow", colour="blue")


@pytest.mark.parametrize("width", [0, -1])
def test_a_width_multiplier_that_is_not_positive_is_refused(width):
    with pytest.raises(SpecError, match=rf"spec 'rgc_shallow': width_multiplier must be > 0, got {width}$"):
        convrnn.create_model("rgc_shallow", width_multiplier=width)


def test_images_with_the_wrong_number_of_channels_are_named():
    model = tiny("rgc_shallow")
    with pytest.raises(ValueError, match=r"expected 3-channel images \(B, 3, H, W\) or a movie of them, got shape \(2, 1, 32, 32\)"):
        model(torch.zeros(2, 1, SIZE, SIZE))
    with pytest.raises(ValueError, match=r"got shape \(4, 2, 1, 32, 32\)"):
        model(torch.zeros(4, 2, 1, SIZE, SIZE))


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("call, error, message", [
    # an AttributeError, "'numpy.ndarray' object has no attribute 'dim'" (on the fast path, inside its input step)
    (lambda m: m(np.zeros((2, 3, SIZE, SIZE), np.float32)), TypeError,
     r"^expected images as a torch\.Tensor \(B, 3, H, W\) or a movie of them, got ndarray$"),
    # "'float' object cannot be interpreted as an integer" from inside the frame schedule
    (lambda m: m(torch.zeros(2, 3, SIZE, SIZE), n_steps=2.5), ValueError, r"^n_steps: expected an integer, got 2\.5$"),
    (lambda m: m(torch.zeros(2, 3, SIZE, SIZE), n_steps=3, image_steps=1.5), ValueError,
     r"^image_steps: expected an integer, got 1\.5$"),
])
def test_inputs_that_are_not_images_or_step_counts_are_named(fast, call, error, message):
    model = tiny("rgc_shallow")
    if fast:
        model.to_fast(dtype=None, compile="none")
    with pytest.raises(error, match=message):
        call(model)


@pytest.mark.parametrize("fast", [False, True])
def test_images_holding_nan_or_inf_are_refused_naming_them(fast):
    """NaN pixels propagate through every layer, but the logits of the steps before the image reaches the readout
    read the empty start and stay finite: a corrupt image passed where those steps were read. Refused at forward."""
    model = tiny("rgc_shallow")
    if fast:
        model.to_fast(dtype=None, compile="none")
    images = torch.zeros(3, 3, SIZE, SIZE)
    images[1, 0, 5, 5] = float("nan")
    images[2, 2, 0, 0] = float("inf")
    with pytest.raises(ValueError, match=r"^images: 2 of 3 hold NaN/inf values \(batch index \[1, 2\]\); expected "
                                         r"finite pixels$"):
        model(images)
    movie = torch.zeros(4, 2, 3, SIZE, SIZE)  # (T, B, C, H, W): counted per image of the batch, not per frame
    movie[3, 1, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"^images: 1 of 2 hold NaN/inf values \(batch index \[1\]\)"):
        model(movie)
    assert torch.isfinite(model(torch.zeros(2, 3, SIZE, SIZE)).logits).all()


def test_the_finiteness_check_reads_the_pixels_sum_first_and_tells_an_overflow_from_a_bad_value():
    """check_finite_images sums first (one pass, no boolean tensor of the batch's size): an infinity and a minus
    infinity cancel to NaN, which it still refuses; finite pixels whose float32 sum overflows are not refused."""
    from neurozoo.convrnn.network import check_finite_images

    images = torch.zeros(3, 3, SIZE, SIZE)
    images[0, 0, 0, 0], images[2, 0, 0, 0] = float("inf"), float("-inf")
    with pytest.raises(ValueError, match=r"^images: 2 of 3 hold NaN/inf values \(batch index \[0, 2\]\)"):
        check_finite_images(images)
    with pytest.raises(ValueError, match=r"^images: 1 of 3 hold NaN/inf values \(batch index \[2\]\)"):
        check_finite_images(torch.zeros(3, 3, SIZE, SIZE, dtype=torch.bfloat16).index_fill_(0, torch.tensor([2]),
                                                                                             float("nan")))
    huge = torch.full((2, 3, SIZE, SIZE), 3e38)
    assert not torch.isfinite(huge.sum())
    check_finite_images(huge)


def test_a_cornet_refuses_images_holding_nan():
    model = convrnn.create_model("cornet_z", width_multiplier=1 / 16, num_classes=5).eval()
    with pytest.raises(ValueError, match=r"^images: 1 of 1 hold NaN/inf values \(batch index \[0\]\)"):
        model(torch.full((1, 3, SIZE, SIZE), float("nan")))


def test_edge_to_missing_layer():
    with pytest.raises(SpecError, match="missing layer 'conv99'"):
        GraphSpec.from_dict(_spec(feedback=[{"source": "conv99", "target": "conv3"}]))


def test_cycle_with_no_delay():
    edges = [{"source": "conv5", "target": "conv3", "delay": 0}, {"source": "conv3", "target": "conv5", "delay": 0}]
    with pytest.raises(SpecError, match="cycle with no delay: conv3 -> conv5 -> conv3|cycle with no delay: conv5 -> conv3 -> conv5"):
        GraphSpec.from_dict(_spec(feedback=edges))
    # with a delay on one edge the same graph is fine
    edges[0]["delay"] = 1
    GraphSpec.from_dict(_spec(feedback=edges))


def test_channel_mismatch():
    data = _spec()
    data["layers"][2]["in_channels"] = 99
    with pytest.raises(SpecError, match="channel mismatch.*in_channels=99.*conv2.*128"):
        GraphSpec.from_dict(data)
    with pytest.raises(SpecError, match="channel mismatch"):
        GraphSpec.from_dict(_spec(feedback=[{"source": "conv5", "target": "conv3", "projection": "identity"}]))


def test_bad_yaml_files_name_the_file(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("layers: [\n")
    with pytest.raises(SpecError, match="broken.yaml: not valid YAML"):
        GraphSpec.from_yaml(str(broken))
    # PyYAML's text was four lines (naming the file twice more); a command's error is one, with the problem and where
    cut = tmp_path / "cut short.yaml"
    cut.write_text("name: x\nlayers:\n  - {name: conv1, channels: 8, kernel: 3, stride: 2}\n  - {name: con")
    with pytest.raises(SpecError) as error:
        GraphSpec.from_yaml(str(cut))
    assert str(error.value) == (f"{cut}: not valid YAML: expected ',' or '}}', but got '<stream end>' at line 4, "
                                "column 15 (while parsing a flow mapping at line 4, column 5)")
    from neurozoo.convrnn.search.space import SearchSpace

    with pytest.raises(SpecError) as error:
        SearchSpace.from_yaml(cut)
    assert str(error.value).startswith(f"{cut}: not valid YAML: expected ',' or '}}'") and "\n" not in str(error.value)
    typo = tmp_path / "typo.yaml"
    typo.write_text("layers:\n  - {name: conv1, chanels: 3}\n")
    with pytest.raises(SpecError, match="typo.yaml: layers\\[0\\] has unknown field.*chanels"):
        GraphSpec.from_yaml(str(typo))
    with pytest.raises(SpecError, match="no such spec file"):
        GraphSpec.from_yaml(str(tmp_path / "absent.yaml"))


@pytest.mark.parametrize("fields, said", [("chanels: 3", "field ['chanels']"),
                                          ("chanels: 3, kernal: 3", "fields ['chanels', 'kernal']")])
def test_a_spec_files_unknown_fields_and_a_models_unknown_overrides_are_counted_in_words(tmp_path, fields, said):
    """The refusals said "unknown field(s)" and "unknown override(s)", of one name as of several."""
    typo = tmp_path / "typo.yaml"
    typo.write_text(f"layers:\n  - {{name: conv1, {fields}}}\n")
    with pytest.raises(SpecError, match=rf"^{re.escape(str(typo))}: layers\[0\] has unknown {re.escape(said)}; "
                                        r"allowed: "):
        GraphSpec.from_yaml(str(typo))
    overrides = {"n_step": 10} if said.startswith("field ") else {"n_step": 10, "widht": 1.0}
    with pytest.raises(SpecError) as error:
        convrnn.create_model("rgc_shallow", **overrides)
    assert str(error.value).startswith(f"spec 'rgc_shallow': unknown override{'s' * (len(overrides) > 1)} "
                                       f"{sorted(overrides)}; did you mean n_steps?; valid: ")


@pytest.mark.parametrize("kwargs, message", [
    ({"n_steps": 0}, r"need n_steps >= 1 \(frames of a movie\) and image_steps >= 0, got n_steps=0, image_steps=\d+"),
    ({"n_steps": -1}, r"got n_steps=-1"),
    ({"image_steps": -3}, r"got n_steps=16, image_steps=-3"),
])
def test_a_schedule_without_steps_is_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny("rgc_shallow")(torch.zeros(2, 3, SIZE, SIZE), **kwargs)


def test_an_empty_movie_and_integer_images_are_named():
    model = tiny("rgc_shallow")
    with pytest.raises(ValueError, match=r"got n_steps=0"):
        model(torch.zeros(0, 2, 3, SIZE, SIZE))
    with pytest.raises(ValueError, match=r"expected floating-point \(ImageNet-normalised\) images, got dtype torch.uint8"):
        model(torch.zeros(2, 3, SIZE, SIZE, dtype=torch.uint8))


@pytest.mark.parametrize("override, message", [
    ({"width_multiplier": "abc"}, r"spec 'rgc_shallow': width_multiplier must be > 0, got 'abc'$"),
    ({"cell": "ugrnn"}, r"override 'cell' must be a mapping of cell config keys .*got 'ugrnn'; to change the cell type use cell_kind"),
    ({"n_steps": 2.5}, r"need integers n_steps >= 1 and 0 <= image_steps <= n_steps, got n_steps=2.5, image_steps=2"),
    ({"num_classes": "abc"}, r"field 'num_classes' must be an integer >= 1, got 'abc'$"),  # was a TypeError
    ({"name": [1]}, r"field 'name' must be non-empty text, got \[1\]$"),  # was create_model()'s TypeError
    ({"feedback": "conv5"}, r"override 'feedback' must be a list of edges \[\{source: conv8, target: conv5\}, "
                            r"\.\.\.\], got 'conv5'$"),  # was a ValueError from dict()
])
def test_an_override_of_the_wrong_type_is_named(override, message):
    with pytest.raises(SpecError, match=message):
        convrnn.create_model("rgc_shallow", **{"image_steps": 2, **override} if "n_steps" in override else override)


def test_fewer_steps_than_the_image_is_shown_says_to_set_image_steps_too():
    """``n_steps`` alone below the spec's ``image_steps`` (``--set n_steps=8`` of a released model, a spec of one's own
    without ``image_steps``, which is then 12) was refused naming both values and the rule only: nothing said that
    image_steps is a field of its own to set, nor where its 12 came from."""
    with pytest.raises(SpecError, match=r"got n_steps=8, image_steps=12 \(the steps the image is shown, \[0, "
                                        r"image_steps\): 12 unless the spec or an override gives it\); set image_steps "
                                        r"<= n_steps too, e\.g\. image_steps=8$"):
        convrnn.create_model("rgc_shallow", n_steps=8)


def test_the_name_override_renames_the_model():
    # create_model(name, **overrides) took name=... as its own argument: "got multiple values for argument 'name'"
    assert convrnn.create_model("rgc_shallow", name="mine", width_multiplier=1 / 16).spec.name == "mine"


def _with(change):
    data = _spec()
    change(data)
    return data


@pytest.mark.parametrize("change, message", [
    (lambda d: d["layers"][0].update(kernel="7"), r"layer 'conv1': field 'kernel' must be an integer >= 1, got '7'"),
    (lambda d: d["layers"][0].update(stride=2.0), r"layer 'conv1': field 'stride' must be an integer >= 1, got 2.0"),
    (lambda d: d.update(num_classes="1000"), r"field 'num_classes' must be an integer >= 1, got '1000'"),
    (lambda d: d.update(readout_kernel=-1), r"field 'readout_kernel' must be an integer >= 0, got -1"),
    (lambda d: d["layers"][0].update(pool={"kernel": "2", "stride": 2}), r"field 'pool.kernel' must be an integer >= 1"),
    (lambda d: d["layers"][0].update(pool={"kernel": 2}), r"field 'pool' must be a mapping with 'kernel' and 'stride'"),
    (lambda d: d["layers"][2].update(cell=["rgc"]), r"layers\[2\] \('conv3'\): field 'cell' must be a mapping"),
    # each a TypeError traceback before (from the validation's join, the cell registry's lookup, torch.empty, a loop)
    (lambda d: d["layers"][1].update(name=None), r"layers\[1\]: field 'name' must be non-empty text, got None"),
    (lambda d: d["layers"][2]["cell"].update(kind=None), r"layer 'conv3': field 'cell.kind' must be a cell's name"),
    (lambda d: d["layers"][0].update(channels=True), r"layer 'conv1': field 'channels' must be a positive integer, "
                                                     r"got True"),
    (lambda d: d.update(feedback=1), r"spec.yaml: field 'feedback' must be a list of edges"),
    (lambda d: d.update(cell_defaults=[1]), r"spec.yaml: field 'cell_defaults' must be a mapping"),
])
def test_spec_fields_of_the_wrong_type_are_named_not_a_type_error(change, message):
    # YAML reads `kernel: "7"` as text: it used to reach `layer.kernel < 1` and fail with a bare TypeError
    with pytest.raises(SpecError, match=message):
        GraphSpec.from_dict(_with(change), source="spec.yaml")


def test_an_unknown_cell_kind_at_a_feedback_target_names_the_layer():
    # the feedback wiring looked the kind up first: the registry's error, naming neither spec nor layer
    data = _with(lambda d: d["layers"][2]["cell"].update(kind="rgcc"))
    data["feedback"] = [{"source": "conv5", "target": "conv3"}]
    with pytest.raises(SpecError, match=r"spec 'rgc_shallow': layer 'conv3': cell 'kind': unknown cell 'rgcc'"):
        convrnn.create_model(data, width_multiplier=1 / 16)


def test_a_cell_config_value_of_the_wrong_type_names_the_file_layer_and_key(tmp_path):
    import yaml

    path = tmp_path / "typed.yaml"
    for key, value, expected in (("tau_offset", "abc", "a number"), ("tau_depth_separable", "no", "true or false"),
                                 # a TypeError or ValueError traceback from inside the cell before
                                 ("cell_depth", None, "a number"), ("gate_offset", [1], "a number"),
                                 ("tau_filter_size", None, r"a number or \(height, width\)"),
                                 ("tau_filter_size", float("nan"), r"a number or \(height, width\)"),
                                 ("tau_nonlinearity", 1, r"text \(e\.g\. 'sigmoid'\)")):
        path.write_text(yaml.safe_dump(_with(lambda d: d["layers"][2]["cell"].update({key: value}))))
        with pytest.raises(SpecError, match=rf"typed.yaml: spec 'rgc_shallow': layer 'conv3': cell 'rgc': config "
                                            rf"'{key}' must be {expected}, got {re.escape(repr(value))}"):
            convrnn.create_model(str(path), width_multiplier=1 / 16)


@pytest.mark.parametrize("name", ["rgc_intermediate", "rgc_shallow", "ugrnn_shallow", "padded pools"])
def test_layer_sides_from_the_spec_are_the_models_output_sizes(name):
    """GraphSpec.layer_sides (what check_image_size refuses from) against one forward's recorded outputs, from the
    smallest image each spec takes; TensorFlow-SAME layers keep a position at 1 px (rgc_intermediate's conv10 is
    1x1 there), a PyTorch-padded pool does not."""
    from neurozoo.convrnn.spec import check_image_size

    pool = {"kernel": 3, "stride": 2, "padding": 0}
    model = tiny(name, n_steps=3, image_steps=3) if name != "padded pools" else convrnn.ConvRNN(GraphSpec.from_dict(
        {"name": "padpool", "n_steps": 3, "image_steps": 3, "num_classes": 2,
         "layers": [{"name": "conv1", "channels": 4, "kernel": 3, "stride": 2, "pool": pool},
                    {"name": "conv2", "channels": 4, "kernel": 3, "pool": pool}]})).eval()
    smallest = model.spec.min_image_size()
    assert smallest == (13 if name == "padded pools" else 1)
    for size in (smallest, smallest + 1, 40):
        with torch.no_grad():
            recorded = model(torch.zeros(1, 3, size, size), record=model.layer_names).recorded
        assert {layer: out.shape[-1] for layer, out in recorded.items()} == model.spec.layer_sides(size)
        check_image_size(model, size)
    if name == "padded pools":
        assert model.spec.layer_sides(12) == {"conv1": 2, "conv2": 0}
        with pytest.raises(SpecError, match=r"^--image-size 12: padpool needs at least 13 px \(its conv2 output "
                                            r"would be 0x0\)$"):
            check_image_size(model, 12)
