"""Local recurrent cells for ConvRNNs: ``out, new_state = cell(x, state, feedback=None)``.

Every cell maps a feedforward input ``x`` (B, C, H, W) and its previous state (a tuple of tensors, or None
for the zero state) to an output of the same shape as ``x`` and a new state. ``create_cell(kind, channels,
**config)`` builds one from the ``CELLS`` registry and rejects unknown kinds and config keys with a
``SpecError`` that lists the valid ones.

The two principles of Nayebi et al. (2018, 2022) are gating (multiplication by an input-dependent tensor in
[0, 1]) and bypassing (with a zero recurrent state the input passes unchanged).

Bypass design of the Reciprocal Gated Cell ("rgc"). The reference cell adds the layer input to ``out_input``
*inside* the output gate and the output activation, so even with zero state its output is
``elu(g * (conv(x) + x))``, not ``x``. Here the residual is a true bypass, added after the activation::

    h_t = x + act_h(tau_h (.) h_{t-1} + gate_h (.) out_input),
    out_input = conv_io(x) [input_to_out] + conv_co(c_{t-1}) [cell_to_out] + feedback

Every path into the output other than the residual add is either multiplied by a recurrent state
(``tau_h (.) h_{t-1}``, the bias-free ``conv_co(c_{t-1})``) or is a convolution of ``x``. The input-to-output
convolution is zero-initialised (as ResNets zero-initialise the last layer of a residual branch), so at
initialisation, with zero state and ``residual=True``, the cell is exactly the identity; with
``input_to_out=False`` it is the identity at zero state for any weights. All output activations satisfy
act(0) = 0. The output ``h_t`` is also the output state fed back at the next step, as in the reference.
With ``residual=False`` the input enters only through ``out_input`` (``x`` itself when ``input_to_out`` is
off, as in the reference). With ``input_to_cell=False`` the cell state receives no input and stays zero.

The gates that share an input are computed by one convolution: ``(cell_tau, out_gate)`` from ``c_{t-1}``
and ``(out_tau, cell_gate)`` from ``h_{t-1}`` (the reciprocal part: the cell gates the output, the output
gates the cell). A depthwise-separable gate convolution keeps one depthwise filter per gate (channel
multiplier 2) and one pointwise matrix per gate, applied as a single block-diagonal 1x1 convolution.

The other cells add ``feedback`` to ``x``; "ugrnn" with ``residual=True`` zero-initialises its candidate
convolution for the same exact identity at initialisation, and keeps the un-bypassed ``h`` as its state.
"""
from __future__ import annotations

import difflib
import inspect
import math
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from neurozoo.datasets.errors import SpecError
from neurozoo.datasets.registry import Registry, UnknownNameError

CELLS = Registry("cell", entry_point_group="neurozoo.convrnn_cells")

State = Tuple[torch.Tensor, ...]
Kernel = Union[int, Sequence[int]]

# Output/cell activations: all satisfy act(0) == 0 exactly, which the bypass relies on.
ACTIVATIONS: Dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "elu": F.elu,
    "relu": F.relu,
    "tanh": torch.tanh,
    "gelu": F.gelu,
    "silu": F.silu,
    "leaky_relu": F.leaky_relu,
    "identity": lambda x: x,
}
GATE_NONLINEARITIES: Dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "hard_sigmoid": F.hardsigmoid,
    "hard_tanh": F.hardtanh,
}


def _choice(table: dict, key: str, value: str) -> Callable:
    if value not in table:
        raise SpecError(f"cell config {key!r}: unknown value {value!r} (expected one of {', '.join(table)})")
    return table[value]


def _kernel(key: str, value: Kernel) -> Tuple[int, int]:
    pair = (value, value) if isinstance(value, (int, float)) else tuple(value)
    if len(pair) != 2 or any(int(k) != k or k < 1 for k in pair):
        raise SpecError(f"cell config {key!r}: expected a positive kernel size or (height, width), got {value!r}")
    return int(pair[0]), int(pair[1])


class SameConv2d(nn.Conv2d):
    """Stride-1 convolution with TensorFlow 'SAME' padding; even kernels get the extra row/column after."""

    def __init__(self, in_channels: int, out_channels: int, kernel: Kernel, *, groups: int = 1, bias: bool = True):
        kh, kw = _kernel("kernel", kernel)
        pads = [((k - 1) // 2, k - 1 - (k - 1) // 2) for k in (kh, kw)]
        symmetric = all(a == b for a, b in pads)
        super().__init__(in_channels, out_channels, (kh, kw), padding=(pads[0][0], pads[1][0]) if symmetric else 0,
                         groups=groups, bias=bias)
        self._pad = None if symmetric else (pads[1][0], pads[1][1], pads[0][0], pads[0][1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._pad is not None:
            x = F.pad(x, self._pad)
        return super().forward(x)


def _same_offsets(k: int) -> Tuple[int, int]:
    """First and last input offset that a SAME-padded kernel of size k reads around an output pixel."""
    return -((k - 1) // 2), k - 1 - (k - 1) // 2


def fused_same_conv(x: torch.Tensor, convs: Sequence["SameConv2d"]) -> Tuple[torch.Tensor, ...]:
    """Several ungrouped SAME convolutions of the same input as one convolution (fast path).

    Each kernel is placed in the union of their windows at its own offset, so a 2x2 and a 3x3 kernel
    become one 3x3 convolution with exactly the outputs of the two. Returns one output per conv."""
    windows = [[_same_offsets(k) for k in conv.kernel_size] for conv in convs]
    lo = [min(w[d][0] for w in windows) for d in range(2)]
    hi = [max(w[d][1] for w in windows) for d in range(2)]
    size = (hi[0] - lo[0] + 1, hi[1] - lo[1] + 1)
    weights, biases = [], []
    for conv, window in zip(convs, windows):
        top, left = window[0][0] - lo[0], window[1][0] - lo[1]
        bottom, right = size[0] - top - conv.kernel_size[0], size[1] - left - conv.kernel_size[1]
        weights.append(F.pad(conv.weight, (left, right, top, bottom)))
        biases.append(conv.bias if conv.bias is not None else conv.weight.new_zeros(conv.out_channels))
    if lo[0] == -hi[0] and lo[1] == -hi[1]:
        out = F.conv2d(x, torch.cat(weights), torch.cat(biases), padding=(hi[0], hi[1]))
    else:
        out = F.conv2d(F.pad(x, (-lo[1], hi[1], -lo[0], hi[0])), torch.cat(weights), torch.cat(biases))
    return out.split([conv.out_channels for conv in convs], dim=1)


class GateConv(nn.Module):
    """Several gate pre-activations from one input in one convolution, split by ``out_channels``.

    ``biases[j]`` initialises gate j's bias (the reference's b_tau / b_g). Depthwise-separable: one
    depthwise filter per gate and input channel, then one pointwise matrix per gate.
    """

    def __init__(self, in_channels: int, out_channels: Sequence[int], kernel: Kernel, separable: bool,
                 biases: Sequence[float]):
        super().__init__()
        self.out_channels = tuple(out_channels)
        n = len(self.out_channels)
        self.separable = separable
        if separable:
            self.depthwise = SameConv2d(in_channels, in_channels * n, kernel, groups=in_channels, bias=False)
            self.pointwise = nn.ParameterList(
                nn.Parameter(torch.empty(c, in_channels)) for c in self.out_channels
            )
            for w in self.pointwise:
                nn.init.kaiming_uniform_(w, a=math.sqrt(5))
            # depthwise output channel i*n + j belongs to gate j; block_diag columns are gate-major (j*in + i)
            order = torch.arange(n * in_channels).view(n, in_channels).t().reshape(-1)
            self.register_buffer("_column_order", order, persistent=False)
            self.bias = nn.Parameter(torch.empty(sum(self.out_channels)))
        else:
            self.conv = SameConv2d(in_channels, sum(self.out_channels), kernel)
            self.bias = self.conv.bias
        with torch.no_grad():
            for chunk, value in zip(self.bias.split(self.out_channels), biases):
                chunk.fill_(value)

    def forward(self, z: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        if self.separable:
            weight = torch.block_diag(*self.pointwise)[:, self._column_order]
            out = F.conv2d(self.depthwise(z), weight[:, :, None, None], self.bias)
        else:
            out = self.conv(z)
        return out.split(self.out_channels, dim=1)


class RecurrentCell(nn.Module):
    """Base class: ``forward(x, state=None, feedback=None) -> (output, new_state)``.

    ``state_channels`` lists the channel count of each state tensor (same spatial size as ``x``). Set
    ``keep_gates = True`` to keep the most recent gate values (detached) in ``last_gates``.
    """

    state_channels: Tuple[int, ...] = ()

    def __init__(self, channels: int):
        super().__init__()
        if int(channels) != channels or channels < 1:
            raise SpecError(f"cell 'channels': expected a positive integer, got {channels!r}")
        self.channels = int(channels)
        self.keep_gates = False
        self.last_gates: Dict[str, torch.Tensor] = {}

    def zero_state(self, x: torch.Tensor) -> State:
        b, _, h, w = x.shape
        return tuple(x.new_zeros(b, c, h, w) for c in self.state_channels)

    def _state(self, x: torch.Tensor, state: Optional[State]) -> State:
        return self.zero_state(x) if state is None else tuple(state)

    def _keep(self, **gates: torch.Tensor) -> None:
        if self.keep_gates:
            self.last_gates = {k: v.detach() for k, v in gates.items()}

    def extra_repr(self) -> str:
        return f"channels={self.channels}"


@CELLS.register("rgc", description="Reciprocal Gated Cell: gating and bypassing, cell and output gate each other")
class ReciprocalGatedCell(RecurrentCell):
    def __init__(
        self,
        channels: int,
        *,
        cell_depth: int = 64,
        input_to_cell: bool = True,
        input_to_out: bool = True,
        cell_to_out: bool = False,
        residual: bool = True,
        tau_offset: float = 0.92193,
        tau_multiplier: float = -0.92193,
        tau_bias: float = 4.1473,
        gate_offset: float = 0.70066,
        gate_multiplier: float = -0.70066,
        gate_bias: float = 2.7765,
        tau_nonlinearity: str = "sigmoid",
        gate_nonlinearity: str = "tanh",
        cell_activation: str = "elu",
        out_activation: str = "elu",
        gate_kernel: Kernel = 7,
        gate_depth_separable: bool = True,
        ff_kernel: Kernel = 2,
        input_to_out_kernel: Kernel = 3,
        cell_to_out_kernel: Kernel = 3,
    ):
        super().__init__(channels)
        if int(cell_depth) != cell_depth or cell_depth < 1:
            raise SpecError(f"cell config 'cell_depth': expected a positive integer, got {cell_depth!r}")
        cell_depth = int(cell_depth)
        self.cell_depth = cell_depth
        self.state_channels = (cell_depth, self.channels)  # (c, h)
        self.input_to_cell, self.input_to_out = bool(input_to_cell), bool(input_to_out)
        self.cell_to_out, self.residual = bool(cell_to_out), bool(residual)
        self.tau_offset, self.tau_multiplier = float(tau_offset), float(tau_multiplier)
        self.gate_offset, self.gate_multiplier = float(gate_offset), float(gate_multiplier)
        self.tau_nonlinearity = _choice(GATE_NONLINEARITIES, "tau_nonlinearity", tau_nonlinearity)
        self.gate_nonlinearity = _choice(GATE_NONLINEARITIES, "gate_nonlinearity", gate_nonlinearity)
        self.cell_activation = _choice(ACTIVATIONS, "cell_activation", cell_activation)
        self.out_activation = _choice(ACTIVATIONS, "out_activation", out_activation)
        gate_kernel = _kernel("gate_kernel", gate_kernel)
        separable = bool(gate_depth_separable)
        # gates read from the cell state: (cell_tau, out_gate); from the output state: (out_tau, cell_gate)
        self.from_cell = GateConv(cell_depth, (cell_depth, channels), gate_kernel, separable, (tau_bias, gate_bias))
        self.from_out = GateConv(channels, (channels, cell_depth), gate_kernel, separable, (tau_bias, gate_bias))
        self.input_to_cell_conv = (
            SameConv2d(channels, cell_depth, _kernel("ff_kernel", ff_kernel)) if self.input_to_cell else None
        )
        self.input_to_out_conv = None
        if self.input_to_out:
            self.input_to_out_conv = SameConv2d(channels, channels, _kernel("input_to_out_kernel", input_to_out_kernel))
            if self.residual:
                nn.init.zeros_(self.input_to_out_conv.weight)
                nn.init.zeros_(self.input_to_out_conv.bias)
        # fast path (convrnn.fast): both convolutions of the input as one, same result
        self.fuse_inputs = False
        # bias-free: at zero cell state this path contributes exactly nothing to the output
        self.cell_to_out_conv = (
            SameConv2d(cell_depth, channels, _kernel("cell_to_out_kernel", cell_to_out_kernel), bias=False)
            if self.cell_to_out
            else None
        )

    def forward(self, x: torch.Tensor, state: Optional[State] = None, feedback: Optional[torch.Tensor] = None):
        c_prev, h_prev = self._state(x, state)
        cell_tau, out_gate = self.from_cell(c_prev)
        out_tau, cell_gate = self.from_out(h_prev)
        cell_tau, out_tau = self.tau_nonlinearity(cell_tau), self.tau_nonlinearity(out_tau)
        cell_gate, out_gate = self.gate_nonlinearity(cell_gate), self.gate_nonlinearity(out_gate)
        cell_tau_factor = self.tau_offset + self.tau_multiplier * cell_tau
        out_tau_factor = self.tau_offset + self.tau_multiplier * out_tau
        cell_gate_factor = self.gate_offset + self.gate_multiplier * cell_gate
        out_gate_factor = self.gate_offset + self.gate_multiplier * out_gate

        if self.fuse_inputs and self.input_to_cell_conv is not None and self.input_to_out_conv is not None:
            cell_drive, out_drive = fused_same_conv(x, (self.input_to_cell_conv, self.input_to_out_conv))
        else:
            cell_drive = self.input_to_cell_conv(x) if self.input_to_cell_conv is not None else None
            out_drive = self.input_to_out_conv(x) if self.input_to_out_conv is not None else None

        c = cell_tau_factor * c_prev
        if cell_drive is not None:
            c = c + cell_gate_factor * cell_drive
        c = self.cell_activation(c)

        if out_drive is not None:
            out_input = out_drive
        else:
            out_input = None if self.residual else x
        if self.cell_to_out_conv is not None:
            out_input = _add(out_input, self.cell_to_out_conv(c_prev))
        out_input = _add(out_input, feedback)
        h = out_tau_factor * h_prev
        if out_input is not None:
            h = h + out_gate_factor * out_input
        h = self.out_activation(h)
        if self.residual:
            h = x + h

        self._keep(cell_tau=cell_tau, cell_gate=cell_gate, out_tau=out_tau, out_gate=out_gate,
                   cell_tau_factor=cell_tau_factor, cell_gate_factor=cell_gate_factor,
                   out_tau_factor=out_tau_factor, out_gate_factor=out_gate_factor)
        return h, (c, h)

    def extra_repr(self) -> str:
        switches = [k for k in ("input_to_cell", "input_to_out", "cell_to_out", "residual") if getattr(self, k)]
        return f"channels={self.channels}, cell_depth={self.cell_depth}, {'+'.join(switches) or 'no switches'}"


def _add(a: Optional[torch.Tensor], b: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    if a is None:
        return b
    return a if b is None else a + b


def _with_feedback(x: torch.Tensor, feedback: Optional[torch.Tensor]) -> torch.Tensor:
    return x if feedback is None else x + feedback


@CELLS.register("timedecay", description="state = decay * state + input, one trainable decay in (0, 1) per channel")
class TimeDecayCell(RecurrentCell):
    def __init__(self, channels: int, *, decay_init: float = 0.5):
        super().__init__(channels)
        if not 0.0 < decay_init < 1.0:
            raise SpecError(f"cell config 'decay_init': expected a value in (0, 1), got {decay_init!r}")
        self.state_channels = (self.channels,)
        self.decay_logit = nn.Parameter(torch.full((self.channels,), math.log(decay_init / (1 - decay_init))))

    @property
    def decay(self) -> torch.Tensor:
        return torch.sigmoid(self.decay_logit)

    def forward(self, x: torch.Tensor, state: Optional[State] = None, feedback: Optional[torch.Tensor] = None):
        drive = _with_feedback(x, feedback)
        (s,) = self._state(x, state)
        s = self.decay.view(1, -1, 1, 1) * s + drive
        return s, (s,)


@CELLS.register("ugrnn", description="UGRNN: h = g h + (1 - g) tanh(c), c and g from [x, h]; optional bypass")
class UGRNNCell(RecurrentCell):
    def __init__(self, channels: int, *, kernel: Kernel = 3, residual: bool = False):
        super().__init__(channels)
        self.state_channels = (self.channels,)
        self.residual = bool(residual)
        self.conv = SameConv2d(2 * self.channels, 2 * self.channels, _kernel("kernel", kernel))  # [candidate | gate]
        if self.residual:  # zero candidate at init: with zero state the output is exactly x
            with torch.no_grad():
                self.conv.weight[: self.channels].zero_()
                self.conv.bias[: self.channels].zero_()

    def forward(self, x: torch.Tensor, state: Optional[State] = None, feedback: Optional[torch.Tensor] = None):
        x = _with_feedback(x, feedback)
        (h_prev,) = self._state(x, state)
        c, g = self.conv(torch.cat([x, h_prev], dim=1)).chunk(2, dim=1)
        g = torch.sigmoid(g)
        h = g * h_prev + (1 - g) * torch.tanh(c)
        self._keep(gate=g)
        return (x + h if self.residual else h), (h,)


@CELLS.register("gru", description="convolutional GRU (gating, no bypass)")
class ConvGRUCell(RecurrentCell):
    def __init__(self, channels: int, *, kernel: Kernel = 3):
        super().__init__(channels)
        self.state_channels = (self.channels,)
        k = _kernel("kernel", kernel)
        self.gates = SameConv2d(2 * self.channels, 2 * self.channels, k)  # [update | reset]
        self.candidate = SameConv2d(2 * self.channels, self.channels, k)

    def forward(self, x: torch.Tensor, state: Optional[State] = None, feedback: Optional[torch.Tensor] = None):
        x = _with_feedback(x, feedback)
        (h_prev,) = self._state(x, state)
        z, r = torch.sigmoid(self.gates(torch.cat([x, h_prev], dim=1))).chunk(2, dim=1)
        n = torch.tanh(self.candidate(torch.cat([x, r * h_prev], dim=1)))
        h = z * h_prev + (1 - z) * n
        self._keep(update=z, reset=r)
        return h, (h,)


@CELLS.register("lstm", description="convolutional LSTM (gating, no bypass); output h")
class ConvLSTMCell(RecurrentCell):
    def __init__(self, channels: int, *, kernel: Kernel = 3, forget_bias: float = 1.0):
        super().__init__(channels)
        self.state_channels = (self.channels, self.channels)  # (c, h)
        self.conv = SameConv2d(2 * self.channels, 4 * self.channels, _kernel("kernel", kernel))  # [i | f | g | o]
        with torch.no_grad():
            self.conv.bias[self.channels: 2 * self.channels].add_(float(forget_bias))

    def forward(self, x: torch.Tensor, state: Optional[State] = None, feedback: Optional[torch.Tensor] = None):
        x = _with_feedback(x, feedback)
        c_prev, h_prev = self._state(x, state)
        i, f, g, o = self.conv(torch.cat([x, h_prev], dim=1)).chunk(4, dim=1)
        i, f, o = torch.sigmoid(i), torch.sigmoid(f), torch.sigmoid(o)
        c = f * c_prev + i * torch.tanh(g)
        h = o * torch.tanh(c)
        self._keep(input=i, forget=f, output=o)
        return h, (c, h)


@CELLS.register("plain", description="vanilla recurrent convolution with bypass: out = x + act(conv(h))")
class PlainRecurrentCell(RecurrentCell):
    def __init__(self, channels: int, *, kernel: Kernel = 3, activation: str = "elu"):
        super().__init__(channels)
        self.state_channels = (self.channels,)
        self.activation = _choice(ACTIVATIONS, "activation", activation)
        self.conv = SameConv2d(self.channels, self.channels, _kernel("kernel", kernel), bias=False)

    def forward(self, x: torch.Tensor, state: Optional[State] = None, feedback: Optional[torch.Tensor] = None):
        x = _with_feedback(x, feedback)
        if state is None:  # conv(0) = 0 and act(0) = 0
            return x, (x,)
        (h_prev,) = state
        out = x + self.activation(self.conv(h_prev))
        return out, (out,)


@CELLS.register("identity", description="no recurrence: out = x (+ feedback)")
class IdentityCell(RecurrentCell):
    def forward(self, x: torch.Tensor, state: Optional[State] = None, feedback: Optional[torch.Tensor] = None):
        return _with_feedback(x, feedback), ()


def cell_config_keys(kind: str) -> Optional[Tuple[str, ...]]:
    """Config keys accepted by ``kind`` (None when its factory takes arbitrary keyword arguments)."""
    factory = _entry(kind).factory
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        params = list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return tuple(p.name for p in params if p.name not in ("self", "channels")
                 and p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD))


def _entry(kind: str):
    try:
        return CELLS.get(kind)
    except UnknownNameError as err:
        raise SpecError(f"cell 'kind': {err}") from None


def create_cell(kind: str, channels: int, **config) -> RecurrentCell:
    """Build a registered cell; unknown kinds or config keys raise ``SpecError`` listing the valid ones."""
    entry = _entry(kind)
    valid = cell_config_keys(kind)
    if valid is not None:
        unknown = sorted(set(config) - set(valid))
        if unknown:
            close = [m for key in unknown for m in difflib.get_close_matches(key, valid, n=1)]
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise SpecError(
                f"cell {kind!r}: unknown config key(s) {', '.join(map(repr, unknown))}{hint} "
                f"(valid keys: {', '.join(valid) or 'none'})"
            )
    return entry.factory(channels=channels, **config)
