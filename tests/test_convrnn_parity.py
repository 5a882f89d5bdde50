"""Parity of our ConvRNNs with an independent NumPy reference of the original code (tests/convrnn_reference.py).

Both implementations get the same random weights under the original's TensorFlow variable names (ours through
convrnn.weights, the name mapping that also loads the released checkpoints); outputs must agree in float64.
Citations name the original file (neuroailab/convrnns) and the statement."""
import os
import sys

import numpy as np
import pytest
import torch

from neurozoo import convrnn
from neurozoo.convrnn import weights as W
from neurozoo.convrnn.cells import create_cell

sys.path.insert(0, os.path.dirname(__file__))
import convrnn_reference as ref  # noqa: E402

B, H = 2, 6


pytestmark = pytest.mark.usefixtures("one_thread")


def random_arrays(entries, seed=0):
    """Random values for every variable, in the original's layout, scaled so that activations stay O(1)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, (param, layout) in sorted(entries.items()):
        shape = W.to_tf(param, layout).shape
        if layout == "vector":
            value = rng.uniform(0.2, 0.6, shape) if name.endswith("memory_decay") else rng.normal(0, 0.3, shape)
            if name.endswith("gamma"):
                value = 1 + value
        else:
            fan_in = int(np.prod(shape[:-1])) if layout != "depthwise" else int(np.prod(shape[:2]))
            value = rng.normal(0, 1.0 / np.sqrt(fan_in), shape)
        out[name] = value
    return out


def load_cell(cell, scope, seed=0):
    entries = W.cell_variables(scope, cell)
    arrays = random_arrays(entries, seed)
    with torch.no_grad():
        for name, (param, layout) in entries.items():
            param.copy_(W.to_torch(arrays[name], layout))
    return arrays


def nchw(a):
    return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))


def nhwc(t):
    return t.detach().numpy().transpose(0, 2, 3, 1)


def run_both(cell, reference, arrays, channels, state_channels, steps=3, feedback=0, res=0, seed=1):
    rng = np.random.default_rng(seed)
    state_t, state_r = None, tuple(np.zeros((B, H, H, c)) for c in state_channels)
    for _ in range(steps):
        x = rng.normal(size=(B, H, H, channels))
        fb = rng.normal(size=(B, H, H, feedback)) if feedback else None
        r = rng.normal(size=(B, H, H, res)) if res else None
        out_t, state_t = cell(nchw(x), state_t, feedback=None if fb is None else nchw(fb),
                              res_input=None if r is None else nchw(r))
        out_r, state_r = reference(arrays, x, state_r, fb, r)
        np.testing.assert_allclose(nhwc(out_t), out_r, rtol=1e-9, atol=1e-10)
        for a, b in zip(state_t, state_r):
            np.testing.assert_allclose(nhwc(a), b, rtol=1e-9, atol=1e-10)


# configs/median_rgcell_cfg.py median_config_dict cell_params (lines 14-52), with the feedback entry and activation
# models/model_func.py sets (lines 131-135)
MEDIAN = dict(tau_depth_separable=True, gate_depth_separable=True, tau_nonlinearity="sigmoid",
              gate_nonlinearity="tanh", tau_offset=0.9219348064291611, tau_multiplier=-0.9219348064291611,
              tau_bias=4.147336708899556, gate_offset=0.7006566684988862, gate_multiplier=-0.7006566684988862,
              gate_bias=2.776542926439013, input_activation="elu", feedback_activation="identity",
              cell_activation="elu", out_activation="elu", input_to_cell=True, input_to_out=True, cell_to_out=False,
              out_residual=True, feedback_entry="out")


@pytest.mark.parametrize("change, in_channels, feedback", [
    ({}, 8, 5),  # the median cell; bypass without projection; feedback entry "out"
    ({}, 6, 0),  # bypass through the 1x1 residual_add projection (channel counts differ)
    ({"tau_depth_separable": False, "gate_depth_separable": False}, 8, 5),  # tau_bias / gate_bias added
    ({"cell_to_out": True}, 8, 0),  # the output gate's pre-activation zeroed
    ({"cell_to_out": True, "gate_depth_separable": False}, 8, 0),
    ({"feedback_entry": "input"}, 8, 5),
    # the searched median's feedback activation (elu; the release sets identity, under which every case above
    # would pass a cell that left the activation out)
    ({"feedback_activation": "elu"}, 8, 5),
    ({"feedback_entry": "input", "feedback_activation": "elu"}, 8, 5),
    # into the cell: the convolution alone (5 feedback channels, cell depth 4: utils/cells.py's sum would not fit)
    ({"feedback_entry": "cell", "feedback_activation": "elu"}, 8, 5),
    ({"feedback_entry": "cell", "feedback_depth_separable": True}, 8, 5),
    ({"input_to_out": False, "out_residual": False}, 8, 0),
])
def test_median_rgc_matches_the_original_equations(change, in_channels, feedback):
    """utils/median_rgcell.py ReciprocalGateCell.__call__ (lines 223-1001); defaults from configs/median_rgcell_cfg.py
    (lines 14-52)."""
    torch.manual_seed(0)
    cfg = {**MEDIAN, **change}
    config = {k: v for k, v in cfg.items()}
    cell = create_cell("rgc", 8, in_channels=in_channels, feedback_channels=feedback, cell_depth=4,
                       tau_filter_size=3, gate_filter_size=3, **config).double()
    arrays = load_cell(cell, "tnn_model/conv5")
    reference = lambda w, x, s, fb, r: ref.median_rgc(w, "tnn_model/conv5", cfg, x, s, fb, r)
    run_both(cell, reference, arrays, 8, (4, 8), feedback=feedback, res=in_channels)


def test_shallow_rgc_matches_utils_cells_reciprocal_gate_cell():
    """utils/cells.py ReciprocalGateCell.__call__ (lines 1459-1813) as configured by models/rgc_shallow.json
    (conv4's memory, lines 279-303: residual_to_out_gate, sigmoid gates, offsets 1, multipliers -1, biases 0; no
    bias variables: _conv, utils/cells.py lines 1137-1238, never creates one)."""
    spec = convrnn.get_spec("rgc_shallow").layer("conv4").cell
    config = {k: v for k, v in spec.items() if k not in ("kind", "cell_depth")}
    cell = create_cell("rgc", 8, in_channels=6, cell_depth=5, **config).double()
    arrays = load_cell(cell, "tnn_model/conv4")
    cfg = {**config, "residual_to_out_gate": True}
    reference = lambda w, x, s, fb, r: ref.cells_rgc(w, "tnn_model/conv4", cfg, x, s, fb, r)
    run_both(cell, reference, arrays, 8, (5, 8), res=6)
    assert not any(n.endswith("bias") for n in arrays)  # _conv never creates one


@pytest.mark.parametrize("change, feedback", [
    ({"tau_depth_separable": True}, 0),
    ({"gate_depth_separable": True}, 0),  # cell gate, out gate and residual_to_out_gate
    ({"ff_depth_separable": True}, 0),
    ({"input_to_out": True}, 0),  # the kernel alone: input_to_out_bias (lines 1650-1655) is never added
    ({"input_to_out": True, "in_out_depth_separable": True}, 0),
    ({"cell_to_out": True, "gate_depth_separable": True}, 0),
    ({}, 5),  # non-separable feedback into "out": no bias
    ({"feedback_depth_separable": True}, 5),
    ({"feedback_depth_separable": True, "feedback_entry": "input"}, 5),
    # entry "cell": the feedback plus its convolution (lines 1543-1554; feedback depth = cell_depth 5, or 1 broadcast)
    ({"feedback_entry": "cell"}, 5),
    ({"feedback_entry": "cell", "feedback_depth_separable": True}, 5),
    ({"feedback_entry": "cell", "feedback_activation": "elu"}, 1),
])
def test_shallow_rgc_separable_ops_keep_their_bias(change, feedback):
    """utils/cells.py ReciprocalGateCell with depthwise-separable ops (a searched or user-built cell; no released
    model has one): _ds_conv (lines 1240-1363) adds its "bias" whenever use_bias (lines 1357-1361), whatever _conv
    does, so conv_bias=false removes only the non-separable ops' biases; input_to_out separable is a _ds_conv with
    use_bias=True (lines 1614-1633), non-separable its kernel alone (lines 1657-1663)."""
    torch.manual_seed(0)
    spec = convrnn.get_spec("rgc_shallow").layer("conv4").cell
    config = {**{k: v for k, v in spec.items() if k not in ("kind", "cell_depth")}, **change}
    cell = create_cell("rgc", 8, in_channels=6, cell_depth=5, feedback_channels=feedback, **config).double()
    arrays = load_cell(cell, "tnn_model/conv4")
    reference = lambda w, x, s, fb, r: ref.cells_rgc(w, "tnn_model/conv4", config, x, s, fb, r)
    run_both(cell, reference, arrays, 8, (5, 8), feedback=feedback, res=6)
    separable = [k for k, v in change.items() if k.endswith("_separable") and v]
    assert any(n.endswith("/bias") for n in arrays) == bool(separable)
    # every parameter is one of the original's variables (a bias the original lacks would stay unloaded)
    mapped = {id(p) for p, _ in W.cell_variables("tnn_model/conv4", cell).values()}
    assert mapped == {id(p) for p in cell.parameters()}


def test_shallow_rgc_separable_bias_initialisation():
    """utils/cells.py _ds_conv's bias_initializer defaults to xavier (lines 1296-1297) and _apply_temporal_op (lines
    1394-1457) passes none: Glorot uniform over a vector of n (TensorFlow's fans n and n), limit sqrt(3 / n);
    input_to_out passes the cell's bias_initializer, tf.zeros_initializer (line 937, used at line 1622)."""
    torch.manual_seed(0)
    spec = convrnn.get_spec("rgc_shallow").layer("conv4").cell
    config = {k: v for k, v in spec.items() if k not in ("kind", "cell_depth")}
    config.update(tau_depth_separable=True, input_to_out=True, in_out_depth_separable=True)
    cell = create_cell("rgc", 300, cell_depth=300, **config)
    bias = cell.out_tau.pointwise.bias.detach()
    limit = (3.0 / 300) ** 0.5
    assert bias.abs().max().item() <= limit and bias.abs().max().item() > 0.9 * limit
    assert torch.count_nonzero(cell.input_to_out_conv.pointwise.bias) == 0


@pytest.mark.parametrize("kind, reference, states", [
    ("ugrnn", ref.ugrnn, 1), ("gru", ref.gru, 1), ("lstm", ref.lstm, 2), ("intersectionrnn", ref.intersection_rnn, 1),
    ("simplernn", ref.simple_rnn, 1), ("timedecay", None, 1),
])
def test_other_cells_match_utils_cells(kind, reference, states):
    """utils/cells.py ConvUGRNNCell (__call__ lines 723-749), ConvGRUCell (401-447), ConvLSTMCell (561-634),
    ConvIntersectionRNNCell (838-883), ConvNormBasicCell (289-327); utils/cell_utils.py memory (time decay, lines
    1111-1125)."""
    torch.manual_seed(0)
    cell = create_cell(kind, 8).double()
    arrays = load_cell(cell, "tnn_model/conv6")
    if kind == "timedecay":
        run = lambda w, x, s, fb, r: ref.memory(w, "tnn_model/conv6", x, s)
    else:
        run = lambda w, x, s, fb, r: reference(w, "tnn_model/conv6", x, s)
    run_both(cell, run, arrays, 8, (8,) * states)


def test_original_cell_initialisation():
    """UGRNN: "g = sigmoid(g_act + forget_bias)" with forget_bias 1 and a zero bias; GRU: "bias_ones =
    constant_initializer(1.0)" on the gates plus forget_bias 1 on r; time decay: "memory_decay": 0 trainable."""
    ugrnn = create_cell("ugrnn", 4)
    assert torch.count_nonzero(ugrnn.conv.bias) == 0 and ugrnn.forget_bias == 1.0
    gru = create_cell("gru", 4)
    assert torch.equal(gru.gates.bias, torch.ones(8)) and torch.count_nonzero(gru.candidates.bias) == 0
    decay = create_cell("timedecay", 4)
    assert decay.memory_decay.shape == (1,) and decay.memory_decay.item() == 0.0 and decay.memory_decay.requires_grad
    rgc = create_cell("rgc", 16)
    # at initialisation (zero state, zero biases) the median factors are 0.46 (tau) and 0.70 (gate), as in the
    # original; with the old 4.147 / 2.777 gate biases they would be 0.014 and 0.005
    rgc.keep_gates = True
    rgc(torch.zeros(1, 16, 7, 7))
    assert rgc.last_gates["cell_tau_factor"].mean().item() == pytest.approx(0.9219348 * 0.5, abs=1e-6)
    assert rgc.last_gates["out_gate_factor"].mean().item() == pytest.approx(0.7006567, abs=1e-6)
    old = create_cell("rgc", 16, separable_gate_bias=True)
    old.keep_gates = True
    old(torch.zeros(1, 16, 7, 7))
    assert old.last_gates["cell_tau_factor"].mean().item() == pytest.approx(0.014, abs=1e-3)
    assert old.last_gates["out_gate_factor"].mean().item() == pytest.approx(0.005, abs=1e-3)


# ----------------------------------------------------------------------------- whole networks
def _median_node(name, ff, post):
    cfg = dict(MEDIAN)
    return ref.Node(name, ff, cell=lambda w, scope, x, s, fb, r: ref.median_rgc(w, scope, cfg, x, s, fb, r),
                    zero_state=None, post=post, split_feedback=True)


def rgc_intermediate_nodes(cell_depth):
    """models/rgc_intermediate_t22.json nodes + models/model_func.py (median cells at conv4-conv10, lines 124-137;
    edges_5 added, lines 179-180; configs/median_rgcell_cfg.py lines 4-10)."""
    pools = {"conv1", "conv4", "conv6", "conv7", "conv10"}
    nodes = [ref.Node("conv1", None, stride=2, post=["elu", "pool"]),
             ref.Node("conv2", "conv1", post=["elu"]), ref.Node("conv3", "conv2", post=["elu"])]
    for i in range(4, 11):
        node = _median_node(f"conv{i}", f"conv{i - 1}", ["pool"] if f"conv{i}" in pools else [])
        node.zero_state = lambda shape: (np.zeros(shape[:-1] + (cell_depth,)), np.zeros(shape))
        nodes.append(node)
    return nodes


RESBLOCK_CELLS = {
    "timedecay": lambda w, scope, x, s, fb, r: ref.memory(w, scope, x, s),
    "ugrnn": lambda w, scope, x, s, fb, r: ref.ugrnn(w, scope, x, s),
    "lstm": lambda w, scope, x, s, fb, r: ref.lstm(w, scope, x, s),
    "simplernn": lambda w, scope, x, s, fb, r: ref.simple_rnn(w, scope, x, s, layer_norm_on=False),
    "simplernn_ln": lambda w, scope, x, s, fb, r: ref.simple_rnn(w, scope, x, s, layer_norm_on=True),
}


def resblock_nodes(kind):
    """models/{timedecay,ugrnn}_intermediate.json: conv+elu (pre_0), memory / cell, conv (post_0), residual_add
    (post_1), elu, max_pool."""
    pools = {"conv4", "conv6", "conv7", "conv10"}
    nodes = [ref.Node("conv1", None, stride=2, post=["elu", "pool"])]
    for i in range(2, 11):
        name = f"conv{i}"
        cell = RESBLOCK_CELLS[kind] if i >= 4 else None
        two = kind == "lstm"  # (c, h)
        nodes.append(ref.Node(name, f"conv{i - 1}", pre_activation="elu", cell=cell,
                              zero_state=(lambda shape: (np.zeros(shape), np.zeros(shape))) if two else None,
                              post=["conv", "residual", "elu"] + (["pool"] if name in pools else [])))
    return nodes


def rgc_shallow_nodes():
    cfg = {k: v for k, v in convrnn.get_spec("rgc_shallow").layer("conv3").cell.items()}
    nodes = [ref.Node("conv1", None, stride=2, pre_activation="elu", post=["pool"]),
             ref.Node("conv2", "conv1", pre_activation="elu", post=["pool"])]
    for i in range(3, 6):
        node = ref.Node(f"conv{i}", f"conv{i - 1}", pre_activation="elu", post=["pool"],
                        cell=lambda w, scope, x, s, fb, r: ref.cells_rgc(w, scope, cfg, x, s, fb, r),
                        zero_state=lambda shape: (np.zeros(shape), np.zeros(shape)))  # cell_depth = out_depth
        nodes.append(node)
    return nodes


def shallow_nodes(kind, out_depths=None):
    """models/{timedecay,ugrnn}_shallow.json: conv1, conv2 with ELU and pools; conv3-conv5 convolution without
    activation, the cell, a pool (ugrnn_shallow.json: "activation" lines 41, 110 "elu", 179, 250, 321 null)."""
    nodes = [ref.Node("conv1", None, stride=2, pre_activation="elu", post=["pool"]),
             ref.Node("conv2", "conv1", pre_activation="elu", post=["pool"])]
    for i, depth in zip(range(3, 6), out_depths or (None,) * 3):
        zero = (lambda shape, d=depth: (np.zeros(shape[:-1] + (d,)),)) if depth else None
        nodes.append(ref.Node(f"conv{i}", f"conv{i - 1}", cell=RESBLOCK_CELLS[kind], zero_state=zero, post=["pool"]))
    return nodes


def compare_network(name, nodes, steps, size, readout=ref.readout_fc, feedback=(), **overrides):
    torch.manual_seed(0)
    model = convrnn.create_model(name, width_multiplier=1 / 16, num_classes=7, **overrides).double().eval()
    entries = W.tf_variables(model)
    arrays = random_arrays(entries, seed=3)
    assert W.load_tf_variables(model, arrays) == []
    frames = np.random.default_rng(4).normal(size=(steps, 1, size, size, 3))
    image = torch.from_numpy(frames.transpose(0, 1, 4, 2, 3).copy())
    with torch.no_grad():
        out = model(image, record=model.layer_names)
    logits, outputs = ref.unroll(nodes, arrays, list(frames), feedback=feedback, readout=readout)
    np.testing.assert_allclose(out.logits.numpy(), logits, rtol=1e-8, atol=1e-9)
    for layer in model.layer_names:
        ours = out.recorded[layer].numpy().transpose(0, 1, 3, 4, 2)
        np.testing.assert_allclose(ours, np.stack(outputs[layer]), rtol=1e-8, atol=1e-9)
    return model, out, logits


def test_rgc_intermediate_unrolls_like_the_original():
    """A whole unroll (utils/main.py unroll, lines 190-258; models/model_func.py lines 165-189, median cells, five
    feedback edges, 2x2 SAME
    pools, bypass of the layer input, feedback entry at out_input) on shared random weights."""
    depth = convrnn.create_model("rgc_intermediate", width_multiplier=1 / 16).layers["conv4"].cell.cell_depth
    edges = [("conv8", "conv5"), ("conv9", "conv6"), ("conv10", "conv7"), ("conv7", "conv6"), ("conv10", "conv9")]
    model, out, logits = compare_network("rgc_intermediate", rgc_intermediate_nodes(depth), 12, 64, feedback=edges)
    assert depth == 4  # width_multiplier scales cell_depth (64 / 16)
    # the logits move at every step: biases drive every layer from t = 0 (no silent layers)
    assert all(not np.allclose(logits[t], logits[t + 1]) for t in range(3))


@pytest.mark.parametrize("name", ["ugrnn_intermediate", "timedecay_intermediate", "lstm_intermediate",
                                  "simplernn_intermediate"])
def test_resblock_baselines_unroll_like_the_original(name):
    compare_network(name, resblock_nodes(name.split("_")[0]), 8, 48)


@pytest.mark.parametrize("name", ["timedecay_shallow", "ugrnn_shallow"])
def test_shallow_baselines_unroll_like_the_original(name):
    compare_network(name, shallow_nodes(name.split("_")[0]), 6, 128, readout=ref.readout_conv)


def test_simplernn_shallow_unrolls_like_the_original():
    """models/simplernn_shallow.json: the cell's out_depth (half the convolution's at conv3 and conv5) is the layer's
    depth; layer norm on (utils/cells.py ConvNormBasicCell, lines 248-327; tnn_ConvNormBasicCell passes
    "layer_norm" from the JSON, lines 2110-2117)."""
    model = compare_network("simplernn_shallow", shallow_nodes("simplernn_ln", (8, 16, 16)), 6, 128,
                            readout=ref.readout_conv)[0]
    assert [model.layers[n].channels for n in ("conv3", "conv4", "conv5")] == [8, 16, 16]  # 128, 256, 256 / 16


def test_rgc_shallow_unrolls_like_the_original():
    compare_network("rgc_shallow", rgc_shallow_nodes(), 7, 128, readout=ref.readout_conv)


def test_the_parity_check_rejects_the_old_behaviours():
    """The reference tells right from wrong: the named legacy options fail it."""
    torch.manual_seed(0)
    cell = create_cell("rgc", 8, feedback_channels=5, cell_depth=4, tau_filter_size=3, gate_filter_size=3,
                       separable_gate_bias=True, **MEDIAN).double()  # gate biases 4.147 / 2.777 in the separable branch
    arrays = load_cell(cell, "tnn_model/conv5")
    reference = lambda w, x, s, fb, r: ref.median_rgc(w, "tnn_model/conv5", MEDIAN, x, s, fb, r)
    with pytest.raises(AssertionError):
        run_both(cell, reference, arrays, 8, (4, 8), feedback=5, res=8)
    # and a cell without the bypass of the layer input
    plain = create_cell("rgc", 8, cell_depth=4, tau_filter_size=3, gate_filter_size=3,
                        **{**MEDIAN, "out_residual": False}).double()
    arrays = load_cell(plain, "tnn_model/conv5")
    with pytest.raises(AssertionError):
        run_both(plain, reference, arrays, 8, (4, 8), res=8)
