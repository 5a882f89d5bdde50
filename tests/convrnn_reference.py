"""An independent NumPy reference of the original ConvRNN equations (neuroailab/convrnns, TensorFlow 1.13).

Written from the original code, not from ours: NHWC tensors, HWIO kernels, weights looked up by the original's
TensorFlow variable names (scopes as the original opens them). Each function names the original file and the
statement it reproduces (the repository at commit cab32bb; "file: function / statement").
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

Weights = Dict[str, np.ndarray]


# ----------------------------------------------------------------------------- TensorFlow ops
def same_pads(size: int, kernel: int, stride: int) -> Tuple[int, int]:
    """tf.nn.conv2d / max_pool padding="SAME": output ceil(size / stride), the extra row after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def conv2d(x: np.ndarray, w: np.ndarray, stride: int = 1, padding: str = "SAME") -> np.ndarray:
    """tf.nn.conv2d(x, w, strides=[1, s, s, 1], padding): x (N, H, W, I), w (kh, kw, I, O)."""
    kh, kw, _, o = w.shape
    if padding == "SAME":
        (t, b), (l, r) = same_pads(x.shape[1], kh, stride), same_pads(x.shape[2], kw, stride)
        x = np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)))
    n, h, wd, _ = x.shape
    oh, ow = (h - kh) // stride + 1, (wd - kw) // stride + 1
    out = np.zeros((n, oh, ow, o), dtype=np.float64)
    for a in range(kh):
        for c in range(kw):
            patch = x[:, a:a + stride * (oh - 1) + 1:stride, c:c + stride * (ow - 1) + 1:stride, :]
            out += patch @ w[a, c]
    return out


def depthwise_conv2d(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """tf.nn.depthwise_conv2d, channel multiplier 1, SAME: w (kh, kw, C, 1)."""
    kh, kw = w.shape[:2]
    (t, b), (l, r) = same_pads(x.shape[1], kh, 1), same_pads(x.shape[2], kw, 1)
    xp = np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)))
    out = np.zeros(x.shape, dtype=np.float64)
    for a in range(kh):
        for c in range(kw):
            out += xp[:, a:a + x.shape[1], c:c + x.shape[2], :] * w[a, c, :, 0]
    return out


def separable_conv2d(x, depthwise, pointwise) -> np.ndarray:
    """tf.nn.separable_conv2d: depthwise, then the 1x1 pointwise kernel."""
    return depthwise_conv2d(x, depthwise) @ pointwise[0, 0]


def max_pool_same(x: np.ndarray, k: int = 2, s: int = 2) -> np.ndarray:
    """tf.nn.max_pool(ksize=[1, k, k, 1], strides=[1, s, s, 1], padding="SAME"): padding never wins."""
    (t, b), (l, r) = same_pads(x.shape[1], k, s), same_pads(x.shape[2], k, s)
    xp = np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)), constant_values=-np.inf)
    oh, ow = (xp.shape[1] - k) // s + 1, (xp.shape[2] - k) // s + 1
    out = np.full((x.shape[0], oh, ow, x.shape[3]), -np.inf)
    for a in range(k):
        for c in range(k):
            out = np.maximum(out, xp[:, a:a + s * (oh - 1) + 1:s, c:c + s * (ow - 1) + 1:s, :])
    return out


def resize_bilinear_align_corners(x: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """tf.image.resize_images(x, size, align_corners=True): utils/cell_utils.py input_aggregator line 475 (the branch
    of spatial_op "resize", harbor's default, line 1019)."""
    def axis(n_in, n_out):
        if n_out == 1:
            pos = np.zeros(1)
        else:
            pos = np.arange(n_out) * (n_in - 1) / (n_out - 1)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, pos - lo

    (y0, y1, fy), (x0, x1, fx) = axis(x.shape[1], size[0]), axis(x.shape[2], size[1])
    top = x[:, y0][:, :, x0] * (1 - fx)[None, None, :, None] + x[:, y0][:, :, x1] * fx[None, None, :, None]
    bottom = x[:, y1][:, :, x0] * (1 - fx)[None, None, :, None] + x[:, y1][:, :, x1] * fx[None, None, :, None]
    return top * (1 - fy)[None, :, None, None] + bottom * fy[None, :, None, None]


def elu(x):
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def relu(x):
    return np.maximum(x, 0)


def identity(x):
    return x


FUNCTIONS: Dict[str, Callable] = {"elu": elu, "sigmoid": sigmoid, "tanh": np.tanh, "relu": relu,
                                  "identity": identity}


def layer_norm(x, gamma, beta, eps=1e-12):
    """tf.contrib.layers.layer_norm (begin_norm_axis=1): moments over H, W, C; gain and shift over C."""
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    var = x.var(axis=(1, 2, 3), keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


# ----------------------------------------------------------------------------- cells
def residual_add(inp, res_inp, kernel: Optional[np.ndarray]):
    """utils/cell_utils.py residual_add (lines 1128-1233): "if inp.shape.as_list() == res_inp.shape.as_list():
    return tf.add(...)" (lines 1158-1160), else a 1x1 "residual_add_weights" projection of res_inp, no bias (lines
    1161-1195). The branch for a spatial mismatch (res_inp resized first, lines 1196-1233) is not reproduced: no
    node built here has one, and the shapes would not broadcast if one did."""
    if inp.shape == res_inp.shape:
        return inp + res_inp
    return inp + conv2d(res_inp, kernel)


def median_rgc(w: Weights, scope: str, cfg: dict, inputs, state, fb_input, res_input):
    """utils/median_rgcell.py: ReciprocalGateCell.__call__ (lines 223-1001; scope "<node>/ReciprocalGateCell",
    line 242).

    ``cfg``: the constructor arguments (configs/median_rgcell_cfg.py median_config_dict, lines 14-52;
    feedback_entry "out", feedback_activation identity, feedback_filter_size 1 set in models/model_func.py lines
    131-135)."""
    s = scope + "/ReciprocalGateCell/"
    f = lambda name: FUNCTIONS[cfg[name]]
    prev_cell, prev_out = state

    def ds(x, name):  # utils/cell_utils.py _ds_conv(..., bias=True), lines 87-163: separable_conv2d + "bias"
        return separable_conv2d(x, w[name + "/depthwise_weights"], w[name + "/pointwise_weights"]) + w[name + "/bias"]

    # "input" scope (lines 244-290): feedback_entry == "input" (lines 246-288), then
    # "inputs = self._input_activation(inputs)" (line 290)
    if cfg["feedback_entry"] == "input" and fb_input is not None:
        inputs = inputs + f("feedback_activation")(conv2d(fb_input, w[s + "input/feedback_to_input_weights"])
                                                   + w[s + "input/feedback_to_input_bias"])
    inputs = f("input_activation")(inputs)
    # "cell" scope (lines 293-644)
    cell_input = np.zeros_like(prev_cell)  # lines 342-344
    if cfg["input_to_cell"]:  # lines 391-433; ff_depth_separable False: "input_to_cell_weights" + "input_to_cell_bias"
        cell_input = cell_input + conv2d(inputs, w[s + "cell/input_to_cell_weights"]) + w[s + "cell/input_to_cell_bias"]
    if cfg["feedback_entry"] == "cell" and fb_input is not None:  # after input_to_cell, before the cell tau (line
        # 497): the convolution alone, "_ds_conv(fb_input, ..., scope='feedback')" or "feedback_to_cell_weights" +
        # "feedback_to_cell_bias", through the feedback activation
        if cfg.get("feedback_depth_separable", False):
            drive = ds(fb_input, s + "cell/feedback")
        else:
            drive = conv2d(fb_input, w[s + "cell/feedback_to_cell_weights"]) + w[s + "cell/feedback_to_cell_bias"]
        cell_input = cell_input + f("feedback_activation")(drive)
    if cfg["tau_depth_separable"]:  # "cell_tau = _ds_conv(prev_cell, ..., scope='tau')": no tau_bias (lines 497-507)
        cell_tau = ds(prev_cell, s + "cell/tau")
    else:  # "... + cell_to_cell_bias + self._tau_bias" (lines 508-518)
        cell_tau = conv2d(prev_cell, w[s + "cell/cell_to_cell_weights"]) + w[s + "cell/cell_to_cell_bias"] + cfg["tau_bias"]
    if cfg["gate_depth_separable"]:  # "cell_gate = _ds_conv(prev_out, ..., scope='out_to_cell')": no gate_bias
        # (lines 520-530; else lines 531-542, "+ out_to_cell_bias + self._gate_bias")
        cell_gate = ds(prev_out, s + "cell/out_to_cell")
    else:
        cell_gate = conv2d(prev_out, w[s + "cell/out_to_cell_weights"]) + w[s + "cell/out_to_cell_bias"] + cfg["gate_bias"]
    cell_tau, cell_gate = f("tau_nonlinearity")(cell_tau), f("gate_nonlinearity")(cell_gate)
    # "next_cell = (tau_offset + tau_k * cell_tau) * prev_cell + (gate_offset + gate_k * cell_gate) * cell_input"
    # (lines 631-638; cell_activation line 644)
    next_cell = ((cfg["tau_offset"] + cfg["tau_multiplier"] * cell_tau) * prev_cell
                 + (cfg["gate_offset"] + cfg["gate_multiplier"] * cell_gate) * cell_input)
    next_cell = f("cell_activation")(next_cell)
    # "out" scope (lines 646-1001)
    if cfg["input_to_out"]:  # lines 695-738 (non-separable: conv + "input_to_out_bias"), else identity (line 740)
        out_input = conv2d(inputs, w[s + "out/input_to_out_weights"]) + w[s + "out/input_to_out_bias"]
    else:
        out_input = inputs
    if cfg["cell_to_out"]:  # lines 742-766
        if cfg["gate_depth_separable"]:
            out_input = out_input + ds(prev_cell, s + "out/cell_to_out")
        else:
            out_input = (out_input + conv2d(prev_cell, w[s + "out/cell_to_out_weights"]) + w[s + "out/cell_to_out_bias"]
                         + cfg["gate_bias"])
    if res_input is not None and cfg["out_residual"]:  # "out_input = residual_add(out_input, res_input)", line 769
        out_input = residual_add(out_input, res_input, w.get(s + "out/residual_add_weights"))
    if fb_input is not None and cfg["feedback_entry"] == "out":  # lines 771-817: "feedback_to_out_weights" + bias,
        # same size: SAME (lines 805-817)
        out_input = out_input + f("feedback_activation")(conv2d(fb_input, w[s + "out/feedback_to_out_weights"])
                                                         + w[s + "out/feedback_to_out_bias"])
    if cfg["tau_depth_separable"]:  # lines 833-854
        out_tau = ds(prev_out, s + "out/tau")
    else:
        out_tau = conv2d(prev_out, w[s + "out/out_to_out_weights"]) + w[s + "out/out_to_out_bias"] + cfg["tau_bias"]
    if not cfg["cell_to_out"]:  # lines 856-879
        if cfg["gate_depth_separable"]:
            out_gate = ds(prev_cell, s + "out/gate")
        else:
            out_gate = conv2d(prev_cell, w[s + "out/cell_to_out_weights"]) + w[s + "out/cell_to_out_bias"] + cfg["gate_bias"]
    else:  # "out_gate = tf.zeros(shape=out_input.shape.as_list(), ...)" (lines 880-885)
        out_gate = np.zeros_like(out_input)
    out_tau, out_gate = f("tau_nonlinearity")(out_tau), f("gate_nonlinearity")(out_gate)
    next_out = ((cfg["tau_offset"] + cfg["tau_multiplier"] * out_tau) * prev_out
                + (cfg["gate_offset"] + cfg["gate_multiplier"] * out_gate) * out_input)
    next_out = f("out_activation")(next_out)  # lines 985-994
    return next_out, (next_cell, next_out)


def cells_rgc(w: Weights, scope: str, cfg: dict, inputs, state, fb_input, res_input):
    """utils/cells.py: ReciprocalGateCell.__call__ (lines 1459-1813; rgc_shallow). Each temporal op is
    ``_apply_temporal_op`` (lines 1394-1457, its scope under "input", "cell" or "out"): non-separable, ``_conv``
    (lines 1137-1238), which never adds a bias (its bias_initializer is set to xavier at lines 1199-1200, before
    "if bias_initializer is None" at line 1230 that holds the bias); separable, ``_ds_conv`` (lines 1240-1363),
    separable_conv2d (lines 1334-1341) plus a "bias" whenever use_bias (lines 1357-1361; _apply_temporal_op's
    default use_bias=True). The constants tau_bias / gate_bias are never used. Feedback: entry "input" lines
    1496-1507, "cell" lines 1543-1554 (the feedback plus its convolution), "out" lines 1710-1722 (same spatial
    size). input_to_out (lines 1612-1680): separable, _ds_conv with
    use_bias=True (lines 1615-1633); else the kernel "input_to_out_weights" alone (conv2d lines 1657-1663; the
    "input_to_out_bias" of lines 1650-1655 is never added); off: "out_input = tf.identity(inputs)" (line 1680).
    Cell lines 1511-1608, cell_to_out lines 1682-1691, out gate lines 1751-1779 (scope "residual_to_out_gate" line
    1775), next_out lines 1784-1786. Flags default as in __init__ (lines 903-933: every one False, entry "out")."""
    s = scope + "/ReciprocalGateCell/"
    f = lambda name: FUNCTIONS[cfg[name]]

    def op(x, path, separable_flag):
        if cfg.get(separable_flag, False):
            return separable_conv2d(x, w[s + path + "/depthwise_weights"], w[s + path + "/pointwise_weights"]) \
                + w[s + path + "/bias"]
        return conv2d(x, w[s + path + "/weights"])

    entry = cfg.get("feedback_entry", "out")
    fb_act = FUNCTIONS[cfg.get("feedback_activation", "identity")]
    prev_cell, prev_out = state
    if fb_input is not None and entry == "input":
        inputs = inputs + fb_act(op(fb_input, "input/feedback", "feedback_depth_separable"))
    inputs = f("input_activation")(inputs)
    cell_input = op(inputs, "cell/input_to_cell", "ff_depth_separable")
    if fb_input is not None and entry == "cell":  # lines 1543-1554: "fb_input += <temporal op of fb_input>", then
        # "cell_input += self._feedback_activation(fb_input)": the feedback plus its convolution
        cell_input = cell_input + fb_act(fb_input + op(fb_input, "cell/feedback", "feedback_depth_separable"))
    cell_tau = f("tau_nonlinearity")(op(prev_cell, "cell/tau", "tau_depth_separable"))
    cell_gate = f("gate_nonlinearity")(op(prev_out, "cell/gate", "gate_depth_separable"))
    next_cell = ((cfg["tau_offset"] + cfg["tau_multiplier"] * cell_tau) * prev_cell
                 + (cfg["gate_offset"] + cfg["gate_multiplier"] * cell_gate) * cell_input)
    next_cell = f("cell_activation")(next_cell)
    if not cfg.get("input_to_out", False):
        out_input = inputs
    elif cfg.get("in_out_depth_separable", False):
        out_input = op(inputs, "out/input_to_out", "in_out_depth_separable")
    else:
        out_input = conv2d(inputs, w[s + "out/input_to_out_weights"])
    if cfg.get("cell_to_out", False):
        out_input = out_input + op(prev_cell, "out/gate", "gate_depth_separable")
    if fb_input is not None and entry == "out":
        out_input = out_input + fb_act(op(fb_input, "out/feedback", "feedback_depth_separable"))
    out_tau = op(prev_out, "out/tau", "tau_depth_separable")
    out_gate = 0.0 if cfg.get("cell_to_out", False) else op(prev_cell, "out/gate", "gate_depth_separable")
    if res_input is not None and cfg.get("residual_to_out_gate", False):  # scope "residual_to_out_gate"
        out_gate = out_gate + op(res_input, "out/residual_to_out_gate", "gate_depth_separable")
    out_tau, out_gate = f("tau_nonlinearity")(out_tau), f("gate_nonlinearity")(out_gate)
    next_out = ((cfg["tau_offset"] + cfg["tau_multiplier"] * out_tau) * prev_out
                + (cfg["gate_offset"] + cfg["gate_multiplier"] * out_gate) * out_input)
    next_out = f("out_activation")(next_out)
    return next_out, (next_cell, next_out)


def memory(w: Weights, scope: str, inputs, state):
    """utils/cell_utils.py memory (lines 1111-1125): "state = tf.add(state * mem, inp)" (line 1124) with the
    scalar "memory_decay" (lines 1117-1123)."""
    decay = w.get(scope + "/memory_decay", np.zeros(1))
    state = state[0] if state is not None else np.zeros_like(inputs)
    new = state * decay[0] + inputs
    return new, (new,)


def ugrnn(w: Weights, scope: str, inputs, state, forget_bias=1.0):
    """utils/cells.py ConvUGRNNCell.__call__ (lines 723-749): "g_act, c_act = tf.split(concat)" (line 738),
    "g = sigmoid(g_act + forget_bias)" (line 745), "new_state = g * state + (1.0 - g) * c" (line 746)."""
    s = scope + "/ConvUGRNNCell/"
    h = state[0]
    concat = conv2d(np.concatenate([inputs, h], -1), w[s + "weights"]) + w[s + "bias"]
    g_act, c_act = np.split(concat, 2, axis=-1)
    g = sigmoid(g_act + forget_bias)
    new = g * h + (1 - g) * np.tanh(c_act)
    return new, (new,)


def gru(w: Weights, scope: str, inputs, state, forget_bias=1.0):
    """utils/cells.py ConvGRUCell.__call__ (lines 401-447): "r = sigmoid(r_pre + forget_bias)", "u = sigmoid(u_pre)"
    (lines 426-427), candidates from [inputs, r * state] (lines 429-444), "new_h = u * state + (1 - u) * c" (line
    446)."""
    s = scope + "/ConvGRUCell/"
    h = state[0]
    value = conv2d(np.concatenate([inputs, h], -1), w[s + "gates/weights"]) + w[s + "gates/bias"]
    r_pre, u_pre = np.split(value, 2, axis=-1)
    r, u = sigmoid(r_pre + forget_bias), sigmoid(u_pre)
    c = np.tanh(conv2d(np.concatenate([inputs, r * h], -1), w[s + "candidates/weights"]) + w[s + "candidates/bias"])
    new = u * h + (1 - u) * c
    return new, (new,)


def lstm(w: Weights, scope: str, inputs, state, forget_bias=1.0):
    """utils/cells.py ConvLSTMCell.__call__ (lines 561-634): "i, j, f, o = tf.split(concat)" (line 582),
    "new_c = c * sigmoid(f + forget_bias) + sigmoid(i) * tanh(j)" (lines 618-620), "new_h = tanh(new_c) *
    sigmoid(o)" (line 628)."""
    s = scope + "/ConvLSTMCell/"
    c, h = state
    concat = conv2d(np.concatenate([inputs, h], -1), w[s + "weights"]) + w[s + "bias"]
    i, j, f, o = np.split(concat, 4, axis=-1)
    new_c = c * sigmoid(f + forget_bias) + sigmoid(i) * np.tanh(j)
    new_h = np.tanh(new_c) * sigmoid(o)
    return new_h, (new_c, new_h)


def intersection_rnn(w: Weights, scope: str, inputs, state, forget_bias=1.0):
    """utils/cells.py ConvIntersectionRNNCell.__call__ (lines 838-883): "gh_act, h_act, gy_act, y_act =
    tf.split(...)" (lines 865-867), "new_state = gh * state + (1.0 - gh) * h" (line 880), "new_y = gy * inputs +
    (1.0 - gy) * y" (line 881; y = relu, line 876)."""
    s = scope + "/ConvIntersectionRNNCell/"
    st = state[0]
    concat = conv2d(np.concatenate([inputs, st], -1), w[s + "weights"]) + w[s + "bias"]
    gh_act, h_act, gy_act, y_act = np.split(concat, 4, axis=-1)
    gh, gy = sigmoid(gh_act + forget_bias), sigmoid(gy_act + forget_bias)
    new_state = gh * st + (1 - gh) * np.tanh(h_act)
    new_y = gy * inputs + (1 - gy) * relu(y_act)
    return new_y, (new_state,)


def simple_rnn(w: Weights, scope: str, inputs, state, layer_norm_on=True):
    """utils/cells.py ConvNormBasicCell.__call__ (lines 289-327): "s" = conv(state), "i" = conv(inputs), both with
    bias (lines 293-315); "new_state = layer_norm(i + s, activation_fn=elu)" (or elu(i + s); lines 317-325)."""
    s = scope + "/ConvNormBasicCell/"
    h = state[0]
    z = conv2d(inputs, w[s + "i/weights"]) + w[s + "i/bias"] + conv2d(h, w[s + "s/weights"]) + w[s + "s/bias"]
    if layer_norm_on:
        z = layer_norm(z, w[s + "layer_norm/gamma"], w[s + "layer_norm/beta"])
    new = elu(z)
    return new, (new,)


# ----------------------------------------------------------------------------- nodes and unrolling
class Node:
    """One node of the original graph (utils/cells.py GenFuncCell.__call__, lines 80-188;
    utils/median_rgcell.py tnn_median_ReciprocalGateCell.__call__, lines 1057-1154): harbor (resize + concat,
    feedforward first: utils/cell_utils.py lines 475, 498-501, 517), pre_memory conv (scope ``pre_0``, cells.py
    line 115; cell_utils.py component_conv, lines 1236-1369: "weights_basenet" line 1302 + "bias",
    optional activation), memory (the cell), post_memory ops (scope ``post_<i>``, cells.py line 161)."""

    def __init__(self, name: str, ff: Optional[str], stride: int = 1, pre_activation: Optional[str] = None,
                 cell: Optional[Callable] = None, zero_state: Optional[Callable] = None, post: Sequence[str] = (),
                 split_feedback: bool = False):
        self.name, self.ff, self.stride, self.pre_activation = name, ff, stride, pre_activation
        self.cell, self.post, self.split_feedback = cell, list(post), split_feedback
        self.zero_state = zero_state or (lambda shape: (np.zeros(shape),))

    def __call__(self, w: Weights, harbor: np.ndarray, ff_depth: int, state):
        scope = "tnn_model/" + self.name
        fb = None
        if self.split_feedback and harbor.shape[-1] > ff_depth:  # tnn_median: "output, fb_input = tf.split(...)"
            # (utils/median_rgcell.py lines 1102-1105)
            harbor, fb = harbor[..., :ff_depth], harbor[..., ff_depth:]
        res_input = harbor  # component_conv(return_input=True) returns its input (cell_utils.py lines 1366-1367)
        x = conv2d(harbor, w[scope + "/pre_0/weights_basenet"], self.stride) + w[scope + "/pre_0/bias"]
        if self.pre_activation:
            x = FUNCTIONS[self.pre_activation](x)
        if self.cell is None:  # memory with memory_decay 0, not trainable: the identity
            out, new_state = x, None
        else:
            out, new_state = self.cell(w, scope, x, state, fb, res_input)
        for op in self.post:
            if op == "elu":
                out = elu(out)
            elif op == "pool":
                out = max_pool_same(out)
            elif op == "conv":  # model_tool.conv (utils/model_tool.py lines 176-283) in scope post_0
                out = conv2d(out, w[scope + "/post_0/weights"]) + w[scope + "/post_0/bias"]
            elif op == "residual":  # residual_add in scope post_1
                out = residual_add(out, res_input, w.get(scope + "/post_1/residual_add_weights"))
        return out, new_state


def readout_fc(w: Weights, x: np.ndarray) -> np.ndarray:
    """imnetds: global_pool(avg), dropout, flatten, fc ("pre_3/weights", "pre_3/bias"; models/*_intermediate.json,
    e.g. rgc_intermediate_t22.json lines 734-758)."""
    return x.mean(axis=(1, 2)) @ w["tnn_model/imnetds/pre_3/weights"] + w["tnn_model/imnetds/pre_3/bias"]


def readout_conv(w: Weights, x: np.ndarray) -> np.ndarray:
    """rgc_shallow imnetds: conv 2x2 VALID ("pre_1", after the dropout "pre_0"; models/rgc_shallow.json lines
    430-449), then global average pooling (lines 455-464)."""
    y = conv2d(x, w["tnn_model/imnetds/pre_1/weights"], padding="VALID") + w["tnn_model/imnetds/pre_1/bias"]
    return y.mean(axis=(1, 2))


def unroll(nodes: List[Node], w: Weights, frames: Sequence[np.ndarray], feedback: Sequence[Tuple[str, str]] = (),
           readout: Callable = readout_fc) -> Tuple[np.ndarray, Dict[str, List[np.ndarray]]]:
    """utils/main.py unroll (lines 190-258): at t = 0 every input is a zero "standin" of its predecessor's output
    shape (lines 237-243) and the input node reads input_seq[conv1][0] (lines 235-236); at t > 0 a node reads
    "G.node[pred]['outputs'][t - 1]" (line 253) for every predecessor in ``sorted(G.predecessors(node))`` (line 252); the harbor (cell_utils.input_aggregator) resizes them to the
    feedforward input's size and concatenates them, the feedforward input first. ``imnetds`` is a node too.

    Returns logits (T, N, K) and every node's outputs per step."""
    preds = {n.name: ([n.ff] if n.ff else []) + [s for s, t in feedback if t == n.name] for n in nodes}
    # output shapes: one pass on zeros, layer by layer (init_nodes)
    shapes: Dict[str, Tuple[int, ...]] = {}
    for n in nodes:
        inp = np.zeros_like(frames[0]) if n.ff is None else np.zeros(shapes[n.ff])
        out, _ = n(w, inp, inp.shape[-1], None if n.cell is None else _zero_state(n, w, inp))
        shapes[n.name] = out.shape
    outputs: Dict[str, List[np.ndarray]] = {n.name: [] for n in nodes}
    states: Dict[str, object] = {}
    logits = []
    for t in range(len(frames)):
        for n in nodes:
            if n.ff is None:
                ff = frames[t]
                others = []
            else:
                get = (lambda p: np.zeros(shapes[p])) if t == 0 else (lambda p: outputs[p][t - 1])
                ff = get(n.ff)
                others = [get(p) for p in sorted(preds[n.name]) if p != n.ff]
            size = ff.shape[1:3]
            harbor = np.concatenate([ff] + [resize_bilinear_align_corners(o, size) for o in others], -1)
            state = states.get(n.name)
            if state is None and n.cell is not None:
                state = _zero_state(n, w, ff)
            out, states[n.name] = n(w, harbor, ff.shape[-1], state)
            outputs[n.name].append(out)
        last = np.zeros(shapes[nodes[-1].name]) if t == 0 else outputs[nodes[-1].name][t - 1]
        logits.append(readout(w, last))
    return np.stack(logits), outputs


def _zero_state(n: Node, w: Weights, inp: np.ndarray):
    """The cell's zero state, sized from its kernels and the pre_memory conv's output."""
    x = conv2d(inp, w[f"tnn_model/{n.name}/pre_0/weights_basenet"], n.stride)
    return n.zero_state(x.shape)


# ----------------------------------------------------------------------------- temporal decoders
def softmax_beta(x: np.ndarray, axis: int, beta: float = 1.0) -> np.ndarray:
    """utils/decoders.py softmax (lines 8-26): exp(beta (x - max)) / sum exp(beta (x - max)) along ``axis``."""
    e = np.exp(beta * (x - x.max(axis=axis, keepdims=True)))
    return e / e.sum(axis=axis, keepdims=True)


def max_confidence_decode(logits: np.ndarray, beta: float) -> Tuple[np.ndarray, np.ndarray]:
    """utils/decoders.py max_confidence_decoder (lines 116-129): logits (B, T, K) -> (the gathered unscaled
    logits (B, K), the chosen step per sample). probs = softmax over categories with the trainable beta (line 120;
    utils/loader.py lines 64-68 give rgc_intermediate_tmaxconf ``decoder_trainable: True``, so decoders.softmax draws
    beta from ``random_uniform``, lines 10-11),
    step = argmax over time of the top probability (line 122), gather_nd of the logits, not of probs (line 129)."""
    probs = softmax_beta(logits, axis=2, beta=beta)
    steps = np.argmax(probs.max(axis=2), axis=1)
    return logits[np.arange(logits.shape[0]), steps], steps


def threshold_decode(logits: np.ndarray, threshold: float = 0.9) -> Tuple[np.ndarray, np.ndarray]:
    """utils/decoders.py threshold_decoder (lines 157-202), not trainable (beta 1, threshold 0.9; utils/loader.py
    lines 74-78 give rgc_intermediate_dthresh ``decoder_trainable: False``): the first step
    whose top probability is >= threshold (lines 188-194), else the step of the largest top probability (lines
    179-184); the logits of that step (line 202)."""
    top = softmax_beta(logits, axis=2).max(axis=2)  # (B, T)
    steps = []
    for row in top:
        crossed = [t for t, p in enumerate(row) if p >= threshold]
        steps.append(crossed[0] if crossed else int(np.argmax(row)))
    steps = np.asarray(steps)
    return logits[np.arange(logits.shape[0]), steps], steps


def model_func_logits(step_logits: np.ndarray, decoder_type: str, num_nodes: int, beta: float = 1.0):
    """models/model_func.py lines 192-209: "last" -> the last step's logits; otherwise the decoder over the
    imnetds outputs of steps range(decoder_start, decoder_end) with decoder_start = num_layers (the graph's node
    count: 11 for the intermediate models, the 10 convolutions and imnetds) and decoder_end = times.
    step_logits: (T, B, K) as the unroll's imnetds outputs. Returns (logits (B, K), chosen step per sample)."""
    times = step_logits.shape[0]
    if decoder_type == "last":
        return step_logits[-1], np.full(step_logits.shape[1], times - 1)
    window = np.transpose(step_logits[num_nodes:times], (1, 0, 2))  # tf.stack(logits_list, axis=1): (B, T', K)
    decoded, steps = (max_confidence_decode(window, beta) if decoder_type == "max_conf" else threshold_decode(window))
    return decoded, steps + num_nodes
