"""Properties of the local recurrent cells: bypass, gating, decay, gradients through time, config errors.
The equations themselves are checked against the original code in tests/test_convrnn_parity.py."""
import math

import pytest
import torch
import torch.nn.functional as F

from neurozoo.convrnn.cells import CELLS, RecurrentCell, SameConv2d, TimeDecayCell, create_cell
from neurozoo.datasets.errors import SpecError

B, C, H, W = 2, 8, 6, 6
SMALL = {"rgc": {"cell_depth": 4}}  # keep the RGC cell state small in these tests
RGC_ALL_ON = dict(cell_depth=4, input_to_cell=True, input_to_out=True, cell_to_out=True, out_residual=True,
                  cell_residual=True, residual_to_cell_tau=True, residual_to_cell_gate=True, residual_to_out_tau=True,
                  residual_to_out_gate=True, input_to_tau=True, input_to_gate=True, layer_norm=True,
                  tau_nonlinearity="sigmoid", gate_nonlinearity="sigmoid")
KINDS = ["rgc", "timedecay", "ugrnn", "gru", "lstm", "intersectionrnn", "simplernn", "identity"]


pytestmark = pytest.mark.usefixtures("one_thread")


def make(kind, seed=0, **config):
    torch.manual_seed(seed)
    return create_cell(kind, C, **{**SMALL.get(kind, {}), **config})


def randomize(cell, seed=1, scale=0.3):
    """Random non-zero weights everywhere (including zero-initialised branches), as after training."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in cell.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * scale)
    return cell


def unroll(cell, xs, state=None):
    outs = []
    for x in xs:
        out, state = cell(x, state)
        outs.append(out)
    return outs, state


def test_registry_lists_every_kind():
    assert set(KINDS) <= set(CELLS.names())
    for kind in KINDS:
        assert isinstance(make(kind), RecurrentCell)


@pytest.mark.parametrize("kind", KINDS)
def test_shapes_zero_state_and_determinism(kind):
    cell = make(kind)
    x = torch.randn(B, C, H, W)
    out, state = cell(x, None)
    assert out.shape == x.shape
    zero = cell.zero_state(x)
    assert isinstance(state, tuple) and len(state) == len(zero)
    assert all(s.shape == z.shape for s, z in zip(state, zero))
    assert all(z.abs().sum() == 0 for z in zero)
    # state=None is exactly the zero state
    out_zero, state_zero = cell(x, zero)
    assert torch.equal(out, out_zero) and all(torch.equal(a, b) for a, b in zip(state, state_zero))
    # determinism: the same inputs and state give the same outputs, and a second step has the same shape
    out2, state2 = cell(x, state)
    out2b, _ = cell(x, state)
    assert out2.shape == x.shape and torch.equal(out2, out2b)
    # same seed -> same weights -> same output
    assert torch.equal(make(kind)(x)[0], out)


def test_rgc_state_shapes_follow_cell_depth():
    cell = make("rgc", cell_depth=5)
    c, h = cell.zero_state(torch.zeros(3, C, 4, 7))
    assert c.shape == (3, 5, 4, 7) and h.shape == (3, C, 4, 7)


def test_rgc_bypass_adds_the_layer_input_inside_the_gate_and_elu():
    """utils/median_rgcell.py line 769: "out_input = residual_add(out_input, res_input)" before the gate and the ELU
    (lines 985-994):
    with every kernel and bias zero and zero state, the output is elu(g * res_input), g the gate factor at 0."""
    cell = make("rgc", input_to_out=False, input_activation="identity")
    with torch.no_grad():
        for p in cell.parameters():
            p.zero_()
    x, res = torch.randn(B, C, H, W), torch.randn(B, C, H, W)
    out, _ = cell(x, None, res_input=res)
    gate = 0.7006566684988862  # offset + multiplier * tanh(0)
    assert torch.allclose(out, F.elu(gate * (x + res)), atol=1e-6)
    # without the bypass the layer input has no path into the output
    no_bypass = make("rgc", input_to_out=False, out_residual=False, input_activation="identity")
    with torch.no_grad():
        for p in no_bypass.parameters():
            p.zero_()
    assert torch.allclose(no_bypass(x, None, res_input=res)[0], F.elu(gate * x), atol=1e-6)


def test_rgc_bypass_projects_the_input_when_channel_counts_differ():
    cell = create_cell("rgc", C, in_channels=3, cell_depth=4)
    assert cell.residual.projection.weight.shape == (C, 3, 1, 1) and cell.residual.projection.bias is None
    assert create_cell("rgc", C, in_channels=C, cell_depth=4).residual.projection is None
    out, _ = cell(torch.randn(B, C, H, W), None, res_input=torch.randn(B, 3, H, W))
    assert out.shape == (B, C, H, W)


def test_rgc_feedback_convolves_only_the_feedback_channels():
    """models/model_func.py lines 131-135: feedback_entry "out", feedback_filter_size 1: a 1x1 convolution with a bias
    from the feedback channels to out_depth (utils/median_rgcell.py lines 784-817; the feedforward input is not part
    of it: tnn_median_ReciprocalGateCell splits the harbor's feedforward channels off first, lines 1102-1105)."""
    cell = create_cell("rgc", C, feedback_channels=12, cell_depth=4)
    assert cell.feedback_conv.weight.shape == (C, 12, 1, 1) and cell.feedback_conv.bias.shape == (C,)
    x, fb = torch.randn(B, C, H, W), torch.randn(B, 12, H, W)
    assert not torch.allclose(cell(x, None, feedback=fb)[0], cell(x, None, feedback=torch.zeros_like(fb))[0])
    assert create_cell("rgc", C, cell_depth=4).feedback_conv is None


def test_cells_without_bypass_do_not_pass_their_input():
    x = torch.randn(B, C, H, W)
    for kind in ("gru", "lstm", "ugrnn", "simplernn"):
        assert not torch.allclose(make(kind)(x)[0], x, atol=1e-2), kind


def _random_state(cell, x, scale=5.0):
    return tuple(torch.randn_like(z) * scale for z in cell.zero_state(x))


@pytest.mark.parametrize("kind,config,names", [
    ("rgc", {"tau_nonlinearity": "sigmoid", "gate_nonlinearity": "sigmoid"},
     ("cell_tau", "cell_gate", "out_tau", "out_gate")),
    ("gru", {}, ("update", "reset")),
    ("lstm", {}, ("input", "forget", "output")),
    ("ugrnn", {}, ("gate",)),
    ("intersectionrnn", {}, ("time_gate", "depth_gate")),
])
def test_sigmoid_gates_lie_in_unit_interval(kind, config, names):
    cell = randomize(make(kind, **config), scale=1.0)
    cell.keep_gates = True
    torch.manual_seed(3)
    for _ in range(3):
        x = torch.randn(B, C, H, W) * 5
        cell(x, _random_state(cell, x))
        assert set(names) <= set(cell.last_gates)
        for name in names:
            g = cell.last_gates[name]
            assert g.min() >= 0 and g.max() <= 1, name
            assert g.max() - g.min() > 0.1, f"{name} should vary over random inputs"
            assert not g.requires_grad


def test_gates_are_only_kept_when_asked():
    cell = make("rgc")
    cell(torch.randn(B, C, H, W))
    assert cell.last_gates == {}


def test_rgc_default_tau_factor_stays_within_zero_and_offset():
    cell = randomize(make("rgc"), scale=1.0)
    cell.keep_gates = True
    x = torch.randn(B, C, H, W) * 5
    cell(x, _random_state(cell, x, scale=20.0))
    offset = cell.tau_offset
    assert offset == pytest.approx(0.92193, abs=1e-5)
    for name in ("cell_tau_factor", "out_tau_factor"):
        f = cell.last_gates[name]
        assert f.min() >= 0 and f.max() <= offset
        expected = offset - offset * cell.last_gates[name.replace("_factor", "")]
        assert torch.allclose(f, expected)


def test_rgc_gates_are_reciprocal():
    """The out gate reads c_{t-1} only, the cell gate reads h_{t-1} only."""
    cell = randomize(make("rgc"), scale=0.2)
    cell.keep_gates = True
    x = torch.randn(B, C, H, W)
    c_prev, h_prev = _random_state(cell, x, scale=1.0)
    cell(x, (c_prev, h_prev))
    g = dict(cell.last_gates)
    cell(x, (c_prev, h_prev + 1.0))
    assert torch.equal(cell.last_gates["out_gate"], g["out_gate"])
    assert not torch.equal(cell.last_gates["cell_gate"], g["cell_gate"])
    cell(x, (c_prev + 1.0, h_prev))
    assert torch.equal(cell.last_gates["cell_gate"], g["cell_gate"])
    assert not torch.equal(cell.last_gates["out_gate"], g["out_gate"])


def test_rgc_cell_to_out_zeroes_the_output_gate():
    """utils/median_rgcell.py lines 880-885: with cell_to_out the output gate's pre-activation is tf.zeros, so its
    factor is gate_offset + gate_multiplier * tanh(0) = gate_offset whatever the state."""
    cell = randomize(make("rgc", cell_to_out=True), scale=0.5)
    cell.keep_gates = True
    x = torch.randn(B, C, H, W)
    cell(x, _random_state(cell, x))
    assert torch.equal(cell.last_gates["out_gate"], torch.zeros(B, C, H, W))
    assert torch.allclose(cell.last_gates["out_gate_factor"], torch.tensor(cell.gate_offset))
    assert cell.out_gate is None and cell.cell_to_out_conv is not None


def test_timedecay_impulse_response_is_exact_power_of_decay():
    cell = make("timedecay")
    assert cell.memory_decay.shape == (1,) and cell.memory_decay.item() == 0.0  # "memory_decay": 0, trainable
    impulse = torch.randn(B, C, H, W)
    zeros = torch.zeros_like(impulse)
    with torch.no_grad():
        out, state = cell(impulse, None)
        assert torch.equal(out, impulse)
        assert torch.equal(cell(zeros, state)[0], zeros)  # decay 0 at initialisation: no memory
        cell.memory_decay.fill_(0.5)  # powers of 1/2 are exact in floating point
        out, state = cell(impulse, None)
        for t in range(1, 8):
            out, state = cell(zeros, state)
            assert torch.equal(out, impulse * 0.5 ** t)
        cell.memory_decay.fill_(-1.5)  # unconstrained, as in the original (no sigmoid; cell_utils.py lines 1111-1125)
        out, state = cell(impulse, None)
        out, state = cell(zeros, state)
        assert torch.equal(out, impulse * -1.5)


def test_timedecay_recovers_known_decay_by_gradient_descent():
    teacher = TimeDecayCell(4, memory_decay=0.8)
    torch.manual_seed(0)
    xs = torch.randn(10, 3, 4, 2, 2)
    with torch.no_grad():
        targets = torch.stack(unroll(teacher, xs)[0])
    student = TimeDecayCell(4)
    opt = torch.optim.Adam(student.parameters(), lr=0.05)
    for _ in range(300):
        opt.zero_grad()
        loss = F.mse_loss(torch.stack(unroll(student, xs)[0]), targets)
        loss.backward()
        opt.step()
    assert student.memory_decay.item() == pytest.approx(0.8, abs=1e-3)
    assert loss.item() < 1e-6
    frozen = TimeDecayCell(4, trainable=False)
    assert not frozen.memory_decay.requires_grad


@pytest.mark.parametrize("kind,config", [
    ("rgc", {}),
    ("rgc", RGC_ALL_ON),
    ("rgc", {**RGC_ALL_ON, "gate_depth_separable": False, "ff_filter_size": 3, "gate_filter_size": 2}),
    ("rgc", {**RGC_ALL_ON, "cell_to_out": False, "feedback_entry": "cell"}),
    ("timedecay", {}),
    ("ugrnn", {}),
    ("gru", {}),
    ("lstm", {}),
    ("intersectionrnn", {}),
    ("simplernn", {}),
])
def test_gradients_reach_every_parameter_through_time(kind, config):
    cell = make(kind, **config)
    torch.manual_seed(5)
    xs = torch.randn(4, B, C, H, W)

    if kind == "rgc":  # a cell with every switch on, fed its input, feedback and the layer input
        cell = create_cell("rgc", C, in_channels=5, feedback_channels=3, **{**SMALL["rgc"], **config})
        res, fb = torch.randn(B, 5, H, W), torch.randn(B, 3, H, W)
    else:
        res = fb = None

    def backward():
        cell.zero_grad()
        state, outs = None, []
        for x in xs:
            out, state = cell(x, state, feedback=fb, res_input=res)
            outs.append(out)
        (outs[-1] ** 2).sum().backward()

    backward()
    params = dict(cell.named_parameters())
    assert params
    for name, p in params.items():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_gradient_reaches_early_input_through_the_state():
    for kind, config in [("rgc", {}), ("timedecay", {"memory_decay": 0.5}), ("lstm", {}), ("gru", {}), ("ugrnn", {}),
                         ("intersectionrnn", {}), ("simplernn", {})]:
        cell = make(kind, **config)
        xs = torch.randn(4, B, C, H, W, requires_grad=True)
        outs, _ = unroll(cell, xs)
        outs[-1].sum().backward()
        assert xs.grad[0].abs().sum() > 0, kind


def test_feedback_enters_every_cell():
    x, fb = torch.randn(B, C, H, W), torch.randn(B, C, H, W)
    for kind in KINDS:
        if kind == "rgc":
            cell = randomize(create_cell("rgc", C, feedback_channels=C, cell_depth=4))
        else:
            cell = randomize(make(kind)) if kind != "identity" else make(kind)
        assert not torch.allclose(cell(x, None, feedback=fb)[0], cell(x, None)[0]), kind
    assert torch.equal(make("identity")(x, feedback=fb)[0], x + fb)


def test_same_conv_pads_like_tensorflow_same_for_even_kernels():
    conv = SameConv2d(1, 1, 2, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
    x = torch.arange(16.0).view(1, 1, 4, 4)
    y = conv(x)
    assert y.shape == x.shape
    # TF 'SAME' with an even kernel puts the extra zero row/column after: y[i, j] = sum of x[i:i+2, j:j+2]
    padded = F.pad(x, (0, 1, 0, 1))[0, 0]
    expected = torch.stack([torch.stack([padded[i:i + 2, j:j + 2].sum() for j in range(4)]) for i in range(4)])
    assert torch.equal(y[0, 0], expected)
    assert SameConv2d(3, 5, (2, 3))(torch.randn(1, 3, 7, 5)).shape == (1, 5, 7, 5)
    assert SameConv2d(3, 5, 7)(torch.randn(1, 3, 6, 6)).shape == (1, 5, 6, 6)


def _tf_hard_sigmoid(x: float) -> float:
    """tf.keras.backend.hard_sigmoid as TensorFlow 1.x-2.15 documents it: 0 if x < -2.5, 1 if x > 2.5, else 0.2 x + 0.5."""
    return 0.0 if x < -2.5 else 1.0 if x > 2.5 else 0.2 * x + 0.5


@pytest.mark.parametrize("key", ["tau_nonlinearity", "gate_nonlinearity"])
def test_hard_sigmoid_is_tensorflows_and_torchs_keeps_a_name_of_its_own(key):
    """The original is TensorFlow code: its hard sigmoid is clip(0.2 x + 0.5, 0, 1). The name had mapped to torch's
    F.hardsigmoid, clip(x / 6 + 0.5, 0, 1): 0.667 instead of 0.7 at x = 1, 0.917 instead of 1 at x = 2.5."""
    x = torch.linspace(-4, 4, 321, dtype=torch.float64)
    f = getattr(make("rgc", **{key: "hard_sigmoid"}), key)
    assert torch.allclose(f(x), torch.tensor([_tf_hard_sigmoid(v) for v in x.tolist()], dtype=torch.float64))
    # the example of the TensorFlow documentation (tf.keras.activations.hard_sigmoid, r2.7-r2.15)
    assert f(torch.tensor([-3.0, -1.0, 0.0, 1.0, 3.0])).tolist() == pytest.approx([0.0, 0.3, 0.5, 0.7, 1.0])
    g = getattr(make("rgc", **{key: "torch_hardsigmoid"}), key)
    assert torch.allclose(g(x), torch.tensor([min(1.0, max(0.0, v / 6 + 0.5)) for v in x.tolist()],
                                             dtype=torch.float64))


def test_rgc_defaults_are_the_median_hyperparameters():
    """neuroailab/convrnns configs/median_rgcell_cfg.py at cab32bb, median_config_dict's cell_params (lines 14-52:
    cell_depth line 44, tau_offset/multiplier/bias lines 37-39, gate_offset/multiplier/bias lines 47-49), with
    models/model_func.py's feedback settings (lines 131-135)."""
    cell = create_cell("rgc", C)
    assert cell.cell_depth == 64
    assert (cell.tau_offset, cell.tau_multiplier, cell.tau_bias) == (0.9219348064291611, -0.9219348064291611,
                                                                     4.147336708899556)
    assert (cell.gate_offset, cell.gate_multiplier, cell.gate_bias) == (0.7006566684988862, -0.7006566684988862,
                                                                        2.776542926439013)
    assert cell.tau_nonlinearity is torch.sigmoid and cell.gate_nonlinearity is torch.tanh
    assert cell.out_residual and cell.input_to_cell and cell.input_to_out and not cell.cell_to_out
    assert not cell.cell_residual and cell.cell_norm is None and cell.feedback_entry == "out"
    assert cell.cell_tau.depthwise.kernel_size == (7, 7) and cell.out_gate.depthwise.kernel_size == (7, 7)
    assert cell.input_to_cell_conv.kernel_size == (2, 2) and cell.input_to_out_conv.kernel_size == (3, 3)
    # depth-separable gates: tau_bias / gate_bias are not used; the gate biases start at zero
    assert (cell.tau_constant, cell.gate_constant) == (0.0, 0.0)
    assert all(torch.count_nonzero(m.pointwise.bias) == 0 for m in (cell.cell_tau, cell.cell_gate, cell.out_tau,
                                                                      cell.out_gate))
    assert cell.weight_decay == pytest.approx(2.034e-4, rel=1e-3) and cell.init_scale == pytest.approx(0.6393, rel=1e-3)


def test_rgc_kernels_start_from_variance_scaling_0639():
    """kernel_initializer "variance_scaling", scale 0.639: truncated normal, std sqrt(0.639 / fan_in) / 0.8796."""
    torch.manual_seed(0)
    cell = create_cell("rgc", 256, cell_depth=64)
    w = cell.input_to_out_conv.weight  # 3x3, 256 -> 256: fan_in 2304
    std = math.sqrt(0.6393378386273998 / 2304) / 0.87962566103423978
    assert w.std().item() == pytest.approx(std * 0.87962566, rel=0.02)  # truncation at 2 std shrinks it
    assert w.abs().max().item() <= 2 * std + 1e-6
    depthwise = cell.out_tau.depthwise.weight  # TensorFlow's fan-in of a depthwise kernel: 7 * 7 * 256
    assert depthwise.abs().max().item() <= 2 * math.sqrt(0.6393378386273998 / (49 * 256)) / 0.8796256 + 1e-6


def test_rgc_switches_remove_their_paths():
    cell = make("rgc", input_to_cell=False, cell_residual=True, input_to_out=False, cell_to_out=False)
    assert cell.input_to_cell_conv is None and cell.input_to_out_conv is None and cell.cell_to_out_conv is None
    with pytest.raises(SpecError, match="input_to_cell"):
        make("rgc", input_to_cell=False, cell_residual=False)


def test_unknown_kind_raises_spec_error_with_suggestions():
    with pytest.raises(SpecError, match=r"unknown cell 'rgcc'.*did you mean rgc"):
        create_cell("rgcc", C)


def test_unknown_config_key_raises_spec_error_listing_valid_keys():
    with pytest.raises(SpecError) as err:
        create_cell("rgc", C, tau_ofset=0.5)
    msg = str(err.value)
    assert "'tau_ofset'" in msg and "did you mean 'tau_offset'" in msg and "gate_depth_separable" in msg
    with pytest.raises(SpecError, match=r"'kernel'.*valid keys: filter_size, forget_bias"):
        create_cell("lstm", C, kernel=3)
    with pytest.raises(SpecError, match="valid keys: none"):
        create_cell("identity", C, depth=3)


@pytest.mark.parametrize("config,key", [
    ({"tau_nonlinearity": "softmax"}, "tau_nonlinearity"),
    ({"out_activation": "softplus"}, "out_activation"),
    ({"gate_filter_size": 0}, "gate_filter_size"),
    ({"feedback_entry": "harbor"}, "feedback_entry"),
    ({"cell_depth": 2.5}, "cell_depth"),
])
def test_bad_config_values_name_the_key(config, key):
    with pytest.raises(SpecError, match=key):
        create_cell("rgc", C, **config)


def test_feedback_into_the_cell_of_utils_cells_needs_the_cell_depth():
    """utils/cells.py (conv_bias false) adds the feedback to its own convolution into the cell (lines 1543-1554), a
    sum of feedback_channels and cell_depth channels; the median (conv_bias true) adds the convolution alone."""
    with pytest.raises(SpecError, match=r"feedback_entry.*6 channels must equal 'cell_depth' \(4\)"):
        create_cell("rgc", C, cell_depth=4, feedback_channels=6, feedback_entry="cell", conv_bias=False)
    for channels, conv_bias in ((4, False), (1, False), (6, True)):
        cell = create_cell("rgc", C, cell_depth=4, feedback_channels=channels, feedback_entry="cell",
                           conv_bias=conv_bias)
        cell(torch.zeros(2, C, 5, 5), feedback=torch.ones(2, channels, 5, 5))


@pytest.mark.parametrize("kind", KINDS)
def test_a_cell_input_of_the_wrong_shape_names_the_expected_one(kind):
    cell = create_cell(kind, 8, in_channels=8)
    with pytest.raises(ValueError, match=r"expected input \(B, 8, H, W\), got shape \(2, 5, 4, 4\)"):
        cell(torch.zeros(2, 5, 4, 4))
    with pytest.raises(ValueError, match=r"expected input \(B, 8, H, W\), got shape \(8, 4, 4\)"):
        cell(torch.zeros(8, 4, 4))
    assert cell(torch.zeros(2, 8, 5, 3))[0].shape[-2:] == (5, 3)
