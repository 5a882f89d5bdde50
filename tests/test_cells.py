"""Properties of the local recurrent cells: bypass, gating, decay, gradients through time, config errors."""
import math

import pytest
import torch
import torch.nn.functional as F

from neurozoo.convrnn.cells import CELLS, GateConv, RecurrentCell, SameConv2d, TimeDecayCell, create_cell
from neurozoo.datasets.errors import SpecError

B, C, H, W = 2, 8, 6, 6
SMALL = {"rgc": {"cell_depth": 4}}  # keep the RGC cell state small in these tests
RGC_ALL_ON = dict(cell_depth=4, input_to_cell=True, input_to_out=True, cell_to_out=True, residual=True,
                  tau_nonlinearity="sigmoid", gate_nonlinearity="sigmoid")
KINDS = ["rgc", "timedecay", "ugrnn", "gru", "lstm", "plain", "identity"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors gain nothing from intra-op threads; on a busy 2-core machine OpenMP spin-waiting makes
    two threads ~30x slower than one here."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


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


@pytest.mark.parametrize(
    "kind,config",
    [
        ("rgc", {}),
        ("rgc", {"input_to_out": True, "cell_to_out": True}),
        ("timedecay", {}),
        ("plain", {}),
        ("ugrnn", {"residual": True}),
        ("identity", {}),
    ],
)
def test_bypass_passes_input_unchanged_at_zero_state_at_init(kind, config):
    x = torch.randn(B, C, H, W) * 3
    out, _ = make(kind, **config)(x, None)
    assert torch.equal(out, x)


@pytest.mark.parametrize("kind,config", [
    ("rgc", {"input_to_out": False}),
    ("rgc", {"input_to_out": False, "cell_to_out": True, "gate_nonlinearity": "sigmoid", "out_activation": "tanh"}),
    ("timedecay", {}),
    ("plain", {"activation": "relu"}),
])
def test_bypass_holds_for_any_weights(kind, config):
    cell = randomize(make(kind, **config))
    x = torch.randn(B, C, H, W)
    out, _ = cell(x, None)
    assert torch.equal(out, x)
    out, _ = cell(x, cell.zero_state(x))
    assert torch.equal(out, x)


def test_bypass_is_not_trivial_once_state_is_nonzero():
    # the recurrent paths are really there: a non-zero state changes the output
    for kind, config in [("rgc", {}), ("plain", {}), ("timedecay", {}), ("ugrnn", {"residual": True})]:
        cell = randomize(make(kind, **config))
        x = torch.randn(B, C, H, W)
        _, state = cell(x, None)
        out, _ = cell(x, state)
        assert not torch.allclose(out, x, atol=1e-3), kind


def test_rgc_without_bypass_is_not_identity_and_zero_init_only_with_residual():
    x = torch.randn(B, C, H, W)
    cell = make("rgc", residual=False)
    assert cell.input_to_out_conv.weight.abs().sum() > 0
    assert not torch.allclose(cell(x)[0], x, atol=1e-3)
    assert make("rgc").input_to_out_conv.weight.abs().sum() == 0


def test_gru_and_lstm_do_not_bypass():
    x = torch.randn(B, C, H, W)
    for kind in ("gru", "lstm"):
        assert not torch.allclose(make(kind)(x)[0], x, atol=1e-2)


def _random_state(cell, x, scale=5.0):
    return tuple(torch.randn_like(z) * scale for z in cell.zero_state(x))


@pytest.mark.parametrize("kind,config,names", [
    ("rgc", {"tau_nonlinearity": "sigmoid", "gate_nonlinearity": "sigmoid", "cell_to_out": True},
     ("cell_tau", "cell_gate", "out_tau", "out_gate")),
    ("gru", {}, ("update", "reset")),
    ("lstm", {}, ("input", "forget", "output")),
    ("ugrnn", {}, ("gate",)),
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
    assert offset == pytest.approx(0.92193)
    for name in ("cell_tau_factor", "out_tau_factor"):
        f = cell.last_gates[name]
        assert f.min() >= 0 and f.max() <= offset
        expected = offset - offset * cell.last_gates[name.replace("_factor", "")]
        assert torch.allclose(f, expected)
    # at zero state the gate is the nonlinearity of the bias: sigmoid(4.1473) -> factor 0.92193 * (1 - 0.98445)
    cell = make("rgc")
    cell.keep_gates = True
    cell(x)
    expected_tau = 0.92193 * (1 - 1 / (1 + math.exp(-4.1473)))
    expected_gate = 0.70066 * (1 - math.tanh(2.7765))
    assert torch.allclose(cell.last_gates["out_tau_factor"], torch.tensor(expected_tau), atol=1e-6)
    assert torch.allclose(cell.last_gates["cell_gate_factor"], torch.tensor(expected_gate), atol=1e-6)


def test_rgc_follows_the_reference_update_equations():
    """Recompute one step from the gate values with the REFERENCE.md section 1 equations."""
    cell = randomize(make("rgc", cell_to_out=True, gate_depth_separable=False), scale=0.2)
    cell.keep_gates = True
    x = torch.randn(B, C, H, W)
    c_prev, h_prev = _random_state(cell, x, scale=1.0)
    fb = torch.randn(B, C, H, W)
    out, (c, h) = cell(x, (c_prev, h_prev), feedback=fb)
    g = cell.last_gates
    c_ref = F.elu(g["cell_tau_factor"] * c_prev + g["cell_gate_factor"] * cell.input_to_cell_conv(x))
    out_input = cell.input_to_out_conv(x) + cell.cell_to_out_conv(c_prev) + fb
    h_ref = x + F.elu(g["out_tau_factor"] * h_prev + g["out_gate_factor"] * out_input)
    assert torch.allclose(c, c_ref, atol=1e-6) and torch.allclose(h, h_ref, atol=1e-6)
    assert torch.equal(out, h)
    # reciprocal: the out gate reads c_{t-1} only, the cell gate reads h_{t-1} only
    cell(x, (c_prev, h_prev + 1.0))
    assert torch.equal(cell.last_gates["out_gate"], g["out_gate"])
    assert not torch.equal(cell.last_gates["cell_gate"], g["cell_gate"])
    cell(x, (c_prev + 1.0, h_prev))
    assert torch.equal(cell.last_gates["cell_gate"], g["cell_gate"])
    assert not torch.equal(cell.last_gates["out_gate"], g["out_gate"])


def test_timedecay_impulse_response_is_exact_power_of_decay():
    cell = make("timedecay")
    impulse = torch.randn(B, C, H, W)
    zeros = torch.zeros_like(impulse)
    with torch.no_grad():
        cell.decay_logit.zero_()  # sigmoid(0) = 0.5 exactly: powers of 1/2 are exact in floating point
        assert torch.equal(cell.decay, torch.full((C,), 0.5))
        out, state = cell(impulse, None)
        assert torch.equal(out, impulse)
        for t in range(1, 8):
            out, state = cell(zeros, state)
            assert torch.equal(out, impulse * 0.5 ** t)
        # per-channel decays: each channel decays at its own rate
        rates = torch.linspace(0.1, 0.95, C)
        cell.decay_logit.copy_(torch.logit(rates.double()).float())
        decay = cell.decay.view(1, C, 1, 1)
        assert torch.allclose(cell.decay, rates, atol=1e-6)
        out, state = cell(impulse, None)
        for t in range(1, 6):
            out, state = cell(zeros, state)
            assert torch.allclose(out, impulse * decay ** t, rtol=1e-5, atol=1e-7)


def test_timedecay_recovers_known_decay_by_gradient_descent():
    true = torch.tensor([0.2, 0.5, 0.8, 0.95])
    teacher = TimeDecayCell(4)
    with torch.no_grad():
        teacher.decay_logit.copy_(torch.logit(true))
    torch.manual_seed(0)
    xs = torch.randn(10, 3, 4, 2, 2)
    with torch.no_grad():
        targets = torch.stack(unroll(teacher, xs)[0])
    student = TimeDecayCell(4, decay_init=0.5)
    opt = torch.optim.Adam(student.parameters(), lr=0.1)
    for _ in range(300):
        opt.zero_grad()
        loss = F.mse_loss(torch.stack(unroll(student, xs)[0]), targets)
        loss.backward()
        opt.step()
    assert torch.allclose(student.decay.detach(), true, atol=1e-3), student.decay
    assert loss.item() < 1e-6


def test_timedecay_decay_stays_in_unit_interval():
    cell = make("timedecay")
    with torch.no_grad():
        cell.decay_logit.copy_(torch.tensor([-50.0, -5, 0, 5, 50, 1, 2, 3]))
    assert cell.decay.min() >= 0 and cell.decay.max() <= 1
    with pytest.raises(SpecError, match="decay_init"):
        create_cell("timedecay", C, decay_init=1.5)


@pytest.mark.parametrize("kind,config", [
    ("rgc", {}),
    ("rgc", RGC_ALL_ON),
    ("rgc", {**RGC_ALL_ON, "gate_depth_separable": False, "ff_kernel": 3, "gate_kernel": 2}),
    ("timedecay", {}),
    ("ugrnn", {}),
    ("ugrnn", {"residual": True}),
    ("gru", {}),
    ("lstm", {}),
    ("plain", {}),
])
def test_gradients_reach_every_parameter_through_time(kind, config):
    cell = make(kind, **config)
    torch.manual_seed(5)
    xs = torch.randn(4, B, C, H, W)

    def backward():
        cell.zero_grad()
        outs, _ = unroll(cell, xs)
        (outs[-1] ** 2).sum().backward()

    zero_init_branch = (kind == "rgc" and cell.residual and cell.input_to_out) or config.get("residual")
    if zero_init_branch:
        # a zero-initialised branch (RGC input-to-output conv, UGRNN candidate) blocks the gradient to the
        # parameters behind it until it has moved once, as in a ResNet with zero-initialised last layers
        backward()
        with torch.no_grad():
            for p in cell.parameters():
                p -= 0.1 * p.grad
    backward()
    params = dict(cell.named_parameters())
    assert params
    for name, p in params.items():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_gradient_reaches_early_input_through_the_state():
    for kind, config in [("rgc", {}), ("timedecay", {}), ("lstm", {}), ("gru", {}), ("ugrnn", {}), ("plain", {})]:
        cell = make(kind, **config)
        xs = torch.randn(4, B, C, H, W, requires_grad=True)
        outs, _ = unroll(cell, xs)
        outs[-1].sum().backward()
        assert xs.grad[0].abs().sum() > 0, kind


def test_feedback_enters_every_cell():
    x, fb = torch.randn(B, C, H, W), torch.randn(B, C, H, W)
    for kind in KINDS:
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


def test_fused_separable_gate_conv_equals_one_separable_conv_per_gate():
    torch.manual_seed(0)
    conv = GateConv(3, (4, 6), 3, separable=True, biases=(1.5, -2.0))
    z = torch.randn(2, 3, 5, 5)
    a, b = conv(z)
    assert a.shape == (2, 4, 5, 5) and b.shape == (2, 6, 5, 5)
    depth_w = conv.depthwise.weight  # (3 * 2, 1, 3, 3): channel i * 2 + j is gate j's filter for input i
    for j, (out, pw) in enumerate(zip((a, b), conv.pointwise)):
        d = F.conv2d(z, depth_w[j::2], padding=1, groups=3)
        expected = F.conv2d(d, pw[:, :, None, None], conv.bias.split((4, 6))[j])
        assert torch.allclose(out, expected, atol=1e-6)
    assert torch.equal(conv.bias.detach(), torch.tensor([1.5] * 4 + [-2.0] * 6))


def test_rgc_defaults_are_the_median_hyperparameters():
    cell = create_cell("rgc", C)
    assert cell.cell_depth == 64
    assert (cell.tau_offset, cell.tau_multiplier, cell.gate_offset, cell.gate_multiplier) == (
        0.92193, -0.92193, 0.70066, -0.70066)
    assert cell.tau_nonlinearity is torch.sigmoid and cell.gate_nonlinearity is torch.tanh
    assert cell.residual and cell.input_to_cell and cell.input_to_out and not cell.cell_to_out
    assert cell.from_cell.separable and cell.from_cell.depthwise.kernel_size == (7, 7)
    assert cell.input_to_cell_conv.kernel_size == (2, 2) and cell.input_to_out_conv.kernel_size == (3, 3)
    tau_b, gate_b = cell.from_out.bias.split((C, 64))
    assert torch.allclose(tau_b, torch.tensor(4.1473)) and torch.allclose(gate_b, torch.tensor(2.7765))


def test_rgc_switches_remove_their_paths():
    cell = make("rgc", input_to_cell=False, input_to_out=False, cell_to_out=False)
    assert cell.input_to_cell_conv is None and cell.input_to_out_conv is None and cell.cell_to_out_conv is None
    x = torch.randn(B, C, H, W)
    _, (c, _) = cell(x)
    assert torch.equal(c, torch.zeros_like(c))  # no input to the cell: c stays at zero


def test_unknown_kind_raises_spec_error_with_suggestions():
    with pytest.raises(SpecError, match=r"unknown cell 'rgcc'.*did you mean rgc"):
        create_cell("rgcc", C)


def test_unknown_config_key_raises_spec_error_listing_valid_keys():
    with pytest.raises(SpecError) as err:
        create_cell("rgc", C, tau_ofset=0.5)
    msg = str(err.value)
    assert "'tau_ofset'" in msg and "did you mean 'tau_offset'" in msg and "gate_depth_separable" in msg
    with pytest.raises(SpecError, match=r"'kernal'.*did you mean 'kernel'.*valid keys: kernel, forget_bias"):
        create_cell("lstm", C, kernel=3, kernal=5)
    with pytest.raises(SpecError, match="valid keys: none"):
        create_cell("identity", C, depth=3)


@pytest.mark.parametrize("config,key", [
    ({"tau_nonlinearity": "softmax"}, "tau_nonlinearity"),
    ({"out_activation": "sigmoid"}, "out_activation"),
    ({"gate_kernel": 0}, "gate_kernel"),
    ({"cell_depth": 2.5}, "cell_depth"),
])
def test_bad_config_values_name_the_key(config, key):
    with pytest.raises(SpecError, match=key):
        create_cell("rgc", C, **config)
