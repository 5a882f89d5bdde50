"""Local recurrent cells of the published ConvRNNs: ``out, new_state = cell(x, state, feedback=None, res_input=None)``.

Every cell follows the equations of the original code, neuroailab/convrnns (Nayebi et al. 2018, 2022):

* ``rgc``: the median Reciprocal Gated Cell, ``utils/median_rgcell.py`` (``ReciprocalGateCell.__call__``, line 223
  on), with the median hyperparameters of ``configs/median_rgcell_cfg.py`` (lines 14-52) as defaults and the
  feedback entry of ``models/model_func.py`` (lines 131-135: 1x1 convolution with a bias of the feedback channels
  only, added to ``out_input``).
* ``timedecay``: ``utils/cell_utils.py`` ``memory`` (lines 1111-1125): ``state = decay * state + input`` (line
  1124), one scalar per layer, initialised at 0 (``memory_decay=0``, line 1111), unconstrained.
* ``ugrnn``, ``gru``, ``lstm``, ``intersectionrnn``, ``simplernn``: ``utils/cells.py`` ``ConvUGRNNCell`` (class
  line 637, ``__call__`` lines 723-749), ``ConvGRUCell`` (330, 401-447), ``ConvLSTMCell`` (450, 561-634),
  ``ConvIntersectionRNNCell`` (752, 838-883), ``ConvNormBasicCell`` (248, 289-327).

``x`` is the output of the layer's feedforward convolution (B, C, H, W); ``res_input`` is the layer's *input*
(before that convolution), used by the RGC's bypass (``out_residual``); ``feedback`` is the channel concatenation
of the resized feedback sources for cells that own their feedback convolution (``owns_feedback``), or an already
projected tensor of ``x``'s shape that the other cells add to ``x``.

Parameter names map one to one onto the original TensorFlow variables (see ``convrnn.weights``). Kernels are
initialised as the original initialises them (``kernel_initializer``): variance scaling with the median scale
0.639 for the RGC, Glorot uniform (TensorFlow's default) for the other cells; ``weight_decay`` is the L2 scale
the original applies to the cell's kernels (``decayed_parameters``).
"""
from __future__ import annotations

import inspect
import math
from typing import Callable, Dict, Iterator, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from neurozoo.datasets.errors import SpecError, did_you_mean
from neurozoo.datasets.registry import Registry, UnknownNameError
from neurozoo.datasets.text_table import plural

CELLS = Registry("cell", entry_point_group="neurozoo.convrnn_cells")

State = Tuple[torch.Tensor, ...]
Kernel = Union[int, float, Sequence[int]]

#: The median RGC's hyperparameters (configs/median_rgcell_cfg.py lines 14-52, median_config_dict["model_params"][
#: "cell_params"]).
MEDIAN_INIT_SCALE = 0.6393378386273998
MEDIAN_WEIGHT_DECAY = 0.0002033999204146308

ACTIVATIONS: Dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "elu": F.elu,
    "relu": F.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "gelu": F.gelu,
    "silu": F.silu,
    "leaky_relu": F.leaky_relu,
    "identity": lambda x: x,
}


def hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """TensorFlow's ``hard_sigmoid`` of the original's era (``tf.keras.backend.hard_sigmoid``, TF 1.x and 2.x to
    2.15): ``clip(0.2 x + 0.5, 0, 1)``, linear on [-2.5, 2.5]. Not torch's ``F.hardsigmoid`` (``clip(x / 6 + 0.5,
    0, 1)``, linear on [-3, 3], which Keras 3 adopted under the same name): that one is ``torch_hardsigmoid``."""
    return F.hardtanh(0.2 * x + 0.5, 0.0, 1.0)


#: Gate and tau nonlinearities by name. The original resolves a name through ``_get_func_from_kwargs``
#: (utils/main.py lines 13-33): convrnns' own modules, then ``tf.nn``, ``tf``, ``tf.contrib.layers``; its released
#: configs pass ``tf.nn.sigmoid`` and ``tf.nn.tanh`` themselves (configs/median_rgcell_cfg.py lines 23, 25).
#: ``hard_sigmoid`` is TensorFlow's (:func:`hard_sigmoid`); ``torch_hardsigmoid`` keeps torch's, which
#: ``hard_sigmoid`` meant here before.
GATE_NONLINEARITIES: Dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "hard_sigmoid": hard_sigmoid,
    "torch_hardsigmoid": F.hardsigmoid,
    "hard_tanh": F.hardtanh,
}
FEEDBACK_ENTRIES = ("out", "cell", "input")


def memory_format(x: torch.Tensor) -> torch.memory_format:
    """``x``'s layout, for new maps made to match it: channels-last, or the default (channels-first)."""
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def zeros_as(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Zero maps of ``x``'s batch, size, dtype, device and layout, with ``channels`` channels."""
    b, _, h, w = x.shape
    return torch.empty(b, channels, h, w, dtype=x.dtype, device=x.device, memory_format=memory_format(x)).zero_()


def _choice(table: dict, key: str, value: str) -> Callable:
    if value not in table:
        raise SpecError(f"cell config {key!r}: unknown value {value!r} (expected one of {', '.join(table)})")
    return table[value]


def _kernel(key: str, value: Kernel) -> Tuple[int, int]:
    pair = (value, value) if _is_number(value) else tuple(value) if isinstance(value, (list, tuple)) else ()
    if len(pair) != 2 or not all(_is_number(k) and int(k) == k and k >= 1 for k in pair):
        raise SpecError(f"cell config {key!r}: expected a positive kernel size or (height, width), got {value!r}")
    return int(pair[0]), int(pair[1])


def _is_number(value) -> bool:
    """A finite int or float (YAML's ``true``, ``.nan``, ``null``, a list or a mapping are not)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# ----------------------------------------------------------------------------- initialisers (TensorFlow 1.13)
def fans(shape: Sequence[int]) -> Tuple[int, int]:
    """TensorFlow's (fan_in, fan_out) of a kernel given in PyTorch layout (out, in, kh, kw) or (out, in); a vector
    (a bias) of n has n and n."""
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = 1
    for k in shape[2:]:
        receptive *= k
    return shape[1] * receptive, shape[0] * receptive


def variance_scaling_(weight: torch.Tensor, scale: float = 1.0, fan_in: Optional[int] = None) -> torch.Tensor:
    """``tf.variance_scaling_initializer(scale)``: truncated normal (2 std), fan-in mode, std corrected for
    the truncation (``stddev = sqrt(scale / fan_in) / 0.87962566``)."""
    n = fan_in if fan_in is not None else fans(weight.shape)[0]
    std = math.sqrt(scale / max(1, n)) / 0.87962566103423978
    with torch.no_grad():
        return nn.init.trunc_normal_(weight, 0.0, std, -2 * std, 2 * std)


def tf_fan_in(conv: nn.Conv2d) -> int:
    """TensorFlow's fan-in of a convolution kernel; a depthwise kernel [kh, kw, in, 1] has kh * kw * in."""
    kh, kw = conv.kernel_size
    return kh * kw * conv.in_channels


def glorot_uniform_(weight: torch.Tensor, fan_in: Optional[int] = None, fan_out: Optional[int] = None) -> torch.Tensor:
    """``tf.glorot_uniform_initializer`` / ``xavier_initializer()`` with TensorFlow's fans."""
    fi, fo = fans(weight.shape)
    fi, fo = fan_in or fi, fan_out or fo
    limit = math.sqrt(6.0 / max(1, fi + fo))
    with torch.no_grad():
        return weight.uniform_(-limit, limit)


class SameConv2d(nn.Conv2d):
    """Stride-1 convolution with TensorFlow 'SAME' padding; even kernels get the extra row/column after."""

    def __init__(self, in_channels: int, out_channels: int, kernel: Kernel, *, groups: int = 1, bias: bool = True):
        kh, kw = _kernel("kernel", kernel)
        pads = [((k - 1) // 2, k - 1 - (k - 1) // 2) for k in (kh, kw)]
        symmetric = all(a == b for a, b in pads)
        super().__init__(in_channels, out_channels, (kh, kw), padding=(pads[0][0], pads[1][0]) if symmetric else 0,
                         groups=groups, bias=bias)
        self._pad = None if symmetric else (pads[1][0], pads[1][1], pads[0][0], pads[0][1])
        if bias:
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._pad is not None:
            x = F.pad(x, self._pad)
        return super().forward(x)


class SeparableConv2d(nn.Module):
    """``tf.nn.separable_conv2d`` as in ``_ds_conv`` (utils/cell_utils.py lines 87-163, the call lines 146-154): a
    k x k depthwise filter per input channel (channel multiplier 1, SAME padding), a 1x1 pointwise matrix, and an
    optional bias."""

    def __init__(self, in_channels: int, out_channels: int, kernel: Kernel, *, bias: bool = True):
        super().__init__()
        self.depthwise = SameConv2d(in_channels, in_channels, kernel, groups=in_channels, bias=False)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=bias)
        if bias:
            nn.init.zeros_(self.pointwise.bias)
        self.out_channels = out_channels

    @property
    def kernels(self) -> Tuple[torch.Tensor, ...]:
        return self.depthwise.weight, self.pointwise.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


def _conv(in_channels: int, out_channels: int, kernel: Kernel, separable: bool, bias: bool = True) -> nn.Module:
    if separable:
        return SeparableConv2d(in_channels, out_channels, kernel, bias=bias)
    return SameConv2d(in_channels, out_channels, kernel, bias=bias)


def _kernels(module: nn.Module) -> Iterator[torch.Tensor]:
    """The convolution kernels (not the biases) inside ``module``."""
    for name, p in module.named_parameters():
        if name.endswith("weight"):
            yield p


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


def fusable_separable(convs: Sequence[nn.Module]) -> bool:
    """Separable convolutions of one input that ``fused_separable_conv`` can run as one."""
    return (all(isinstance(c, SeparableConv2d) for c in convs)
            and len({c.depthwise.kernel_size for c in convs}) == 1
            and len({c.pointwise.bias is None for c in convs}) == 1)


def fused_separable_conv(x: torch.Tensor, convs: Sequence[SeparableConv2d]) -> Tuple[torch.Tensor, ...]:
    """Several separable convolutions of the same input as one depthwise (channel multiplier n) and one pointwise
    convolution (fast path; the RGC's two gates that read the same state). Returns one output per conv."""
    n, first = len(convs), convs[0].depthwise
    depthwise = torch.stack([c.depthwise.weight for c in convs], dim=1).flatten(0, 1)  # channel i * n + j: conv j
    d = F.conv2d(F.pad(x, first._pad) if first._pad is not None else x, depthwise, None, padding=first.padding,
                 groups=first.in_channels)
    rows = []
    for j, c in enumerate(convs):
        w = c.pointwise.weight.new_zeros(c.out_channels, first.in_channels, n)
        w[:, :, j] = c.pointwise.weight[:, :, 0, 0]
        rows.append(w.flatten(1))
    bias = None if convs[0].pointwise.bias is None else torch.cat([c.pointwise.bias for c in convs])
    out = F.conv2d(d, torch.cat(rows)[:, :, None, None], bias)
    return out.split([c.out_channels for c in convs], dim=1)


class ResidualAdd(nn.Module):
    """``residual_add`` (utils/cell_utils.py lines 1128-1233): ``out + res`` when shapes agree (lines 1158-1160);
    otherwise ``res`` is resized to ``out``'s size (bilinear, align corners; ``sp_resize=True``, lines 1196-1200)
    and goes through a bias-free 1x1 projection ("residual_add_weights", lines 1163-1173 and 1202-1211; Glorot
    uniform: ``kernel_init="xavier"``, line 1133, utils/model_tool.py lines 12-14). ``in_stride > 1``: the layer's
    convolution downsamples, so the projection exists even for equal channel counts (no released model has such a
    layer)."""

    def __init__(self, in_channels: int, out_channels: int, in_stride: int = 1):
        super().__init__()
        self.projection = None
        if in_channels != out_channels or in_stride > 1:
            self.projection = nn.Conv2d(in_channels, out_channels, 1, bias=False)
            glorot_uniform_(self.projection.weight)

    def forward(self, out: torch.Tensor, res: torch.Tensor) -> torch.Tensor:
        if res.shape[-2:] != out.shape[-2:]:
            if self.projection is None:
                raise SpecError(f"residual add: input of size {tuple(res.shape[-2:])} cannot be added to an output "
                                f"of size {tuple(out.shape[-2:])} without a projection")
            res = F.interpolate(res, size=tuple(out.shape[-2:]), mode="bilinear", align_corners=True)
        return out + (res if self.projection is None else self.projection(res))


class LayerNorm(nn.Module):
    """``tf.contrib.layers.layer_norm`` on NHWC: statistics over (H, W, C), gain and shift per channel."""

    def __init__(self, channels: int, gain: float = 1.0, shift: float = 0.0, eps: float = 1e-12):
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), float(gain)))
        self.bias = nn.Parameter(torch.full((channels,), float(shift)))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        var = x.var(dim=(1, 2, 3), keepdim=True, unbiased=False)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


def _check_cell_input(cell: "RecurrentCell", args: tuple) -> None:
    x = args[0] if args else None
    if isinstance(x, torch.Tensor) and (x.dim() != 4 or x.shape[1] != cell.channels):
        raise ValueError(f"{type(cell).__name__}: expected input (B, {cell.channels}, H, W), got shape {tuple(x.shape)}")


class RecurrentCell(nn.Module):
    """Base class: ``forward(x, state=None, feedback=None, res_input=None) -> (output, new_state)``.

    ``state_channels`` lists the channel count of each state tensor (same spatial size as ``x``). Set
    ``keep_gates = True`` to keep the most recent gate values (detached) in ``last_gates``.
    ``owns_feedback``: the cell convolves the concatenated feedback itself (else the network projects it).
    """

    state_channels: Tuple[int, ...] = ()
    owns_feedback = False
    weight_decay = 0.0

    def __init__(self, channels: int):
        super().__init__()
        if int(channels) != channels or channels < 1:
            raise SpecError(f"cell 'channels': expected a positive integer, got {channels!r}")
        self.channels = int(channels)
        self.keep_gates = False
        self.last_gates: Dict[str, torch.Tensor] = {}
        self.register_forward_pre_hook(_check_cell_input)

    def zero_state(self, x: torch.Tensor) -> State:
        """Zeros in ``x``'s memory format: a channels-first state would make every later step's state and output
        channels-first too (elementwise results follow their first operand), which on a GPU sent the fast path's
        feedback resizes and depthwise gates to PyTorch's slow NCHW kernels (half of a training step)."""
        return tuple(zeros_as(x, c) for c in self.state_channels)

    def _state(self, x: torch.Tensor, state: Optional[State]) -> State:
        return self.zero_state(x) if state is None else tuple(state)

    def _keep(self, **gates: torch.Tensor) -> None:
        if self.keep_gates:
            self.last_gates = {k: v.detach() for k, v in gates.items()}

    def decayed_parameters(self) -> Iterator[torch.Tensor]:
        """Parameters the original puts an L2 regulariser of scale ``weight_decay`` on (the kernels)."""
        return _kernels(self)

    def extra_repr(self) -> str:
        return f"channels={self.channels}"


@CELLS.register("rgc", description="median Reciprocal Gated Cell (utils/median_rgcell.py): gating and bypassing")
class ReciprocalGatedCell(RecurrentCell):
    owns_feedback = True

    def __init__(
        self,
        channels: int,
        *,
        in_channels: Optional[int] = None,
        in_stride: int = 1,
        feedback_channels: int = 0,
        cell_depth: int = 64,
        tau_filter_size: Kernel = 7,
        gate_filter_size: Kernel = 7,
        cell_tau_filter_size: Optional[Kernel] = None,
        ff_filter_size: Kernel = 2,
        in_out_filter_size: Kernel = 3,
        feedback_filter_size: Kernel = 1,
        tau_depth_separable: bool = True,
        gate_depth_separable: bool = True,
        ff_depth_separable: bool = False,
        in_out_depth_separable: bool = False,
        feedback_depth_separable: bool = False,
        feedback_entry: str = "out",
        tau_nonlinearity: str = "sigmoid",
        gate_nonlinearity: str = "tanh",
        tau_bias: float = 4.147336708899556,
        gate_bias: float = 2.776542926439013,
        tau_multiplier: float = -0.9219348064291611,
        gate_multiplier: float = -0.7006566684988862,
        tau_offset: float = 0.9219348064291611,
        gate_offset: float = 0.7006566684988862,
        input_activation: str = "elu",
        feedback_activation: str = "identity",
        cell_activation: str = "elu",
        out_activation: str = "elu",
        cell_residual: bool = False,
        out_residual: bool = True,
        residual_to_cell_tau: bool = False,
        residual_to_cell_gate: bool = False,
        residual_to_out_tau: bool = False,
        residual_to_out_gate: bool = False,
        input_to_tau: bool = False,
        input_to_gate: bool = False,
        input_to_cell: bool = True,
        input_to_out: bool = True,
        cell_to_out: bool = False,
        layer_norm: bool = False,
        init_scale: float = MEDIAN_INIT_SCALE,
        kernel_initializer: str = "variance_scaling",
        weight_decay: float = MEDIAN_WEIGHT_DECAY,
        conv_bias: bool = True,
        separable_gate_bias: bool = False,
    ):
        super().__init__(channels)
        if int(cell_depth) != cell_depth or cell_depth < 1:
            raise SpecError(f"cell config 'cell_depth': expected a positive integer, got {cell_depth!r}")
        if feedback_entry not in FEEDBACK_ENTRIES:
            raise SpecError(f"cell config 'feedback_entry': unknown value {feedback_entry!r} "
                            f"(expected one of {', '.join(FEEDBACK_ENTRIES)})")
        if not (cell_residual or input_to_cell):
            raise SpecError("cell config: the RGC needs 'input_to_cell' or 'cell_residual' (its cell has no input "
                            "otherwise; utils/median_rgcell.py line 345 asserts the same)")
        C, D = self.channels, int(cell_depth)
        R = int(in_channels) if in_channels else C
        self.cell_depth, self.in_channels = D, R
        self.feedback_channels = int(feedback_channels)
        self.state_channels = (D, C)  # (c, h)
        self.feedback_entry = feedback_entry
        self.cell_residual, self.out_residual = bool(cell_residual), bool(out_residual)
        self.input_to_cell, self.input_to_out, self.cell_to_out = bool(input_to_cell), bool(input_to_out), bool(cell_to_out)
        self.input_to_tau, self.input_to_gate = bool(input_to_tau), bool(input_to_gate)
        self.tau_offset, self.tau_multiplier, self.tau_bias = float(tau_offset), float(tau_multiplier), float(tau_bias)
        self.gate_offset, self.gate_multiplier, self.gate_bias = float(gate_offset), float(gate_multiplier), float(gate_bias)
        self.weight_decay = float(weight_decay)
        self.init_scale = float(init_scale)
        self.tau_nonlinearity = _choice(GATE_NONLINEARITIES, "tau_nonlinearity", tau_nonlinearity)
        self.gate_nonlinearity = _choice(GATE_NONLINEARITIES, "gate_nonlinearity", gate_nonlinearity)
        self.input_activation = _choice(ACTIVATIONS, "input_activation", input_activation)
        self.feedback_activation = _choice(ACTIVATIONS, "feedback_activation", feedback_activation)
        self.cell_activation = _choice(ACTIVATIONS, "cell_activation", cell_activation)
        self.out_activation = _choice(ACTIVATIONS, "out_activation", out_activation)
        tau_k = _kernel("tau_filter_size", tau_filter_size)
        cell_tau_k = _kernel("cell_tau_filter_size", cell_tau_filter_size) if cell_tau_filter_size else tau_k
        gate_k = _kernel("gate_filter_size", gate_filter_size)
        ff_k = _kernel("ff_filter_size", ff_filter_size)
        io_k = _kernel("in_out_filter_size", in_out_filter_size)
        fb_k = _kernel("feedback_filter_size", feedback_filter_size)
        tau_sep, gate_sep = bool(tau_depth_separable), bool(gate_depth_separable)
        if kernel_initializer not in ("variance_scaling", "xavier"):
            raise SpecError(f"cell config 'kernel_initializer': unknown value {kernel_initializer!r} "
                            "(expected one of variance_scaling, xavier)")
        # conv_bias=False: utils/cells.py's ReciprocalGateCell (rgc_shallow). Every temporal op goes through
        # _apply_temporal_op (lines 1394-1457): _conv (lines 1137-1238) never creates a bias (bias_initializer set at
        # lines 1199-1200, so the "is None" branch holding the bias, lines 1230-1236, never runs), while _ds_conv
        # (lines 1240-1363) adds one whenever use_bias (lines 1357-1361), Glorot-initialised (lines 1296-1297): a
        # separable op keeps its bias. __call__ (lines 1459-1813) never adds tau_bias / gate_bias.
        bias = self.conv_bias = bool(conv_bias)
        if not bias:
            tau_bias = gate_bias = 0.0
        # the original adds the constants tau_bias / gate_bias only in the non-separable branch
        self.tau_constant = self.tau_bias if (not tau_sep or separable_gate_bias) else 0.0
        self.gate_constant = self.gate_bias if (not gate_sep or separable_gate_bias) else 0.0

        def op(cin: int, cout: int, k, separable: bool) -> nn.Module:
            return _conv(cin, cout, k, separable, bias or separable)

        ff_sep, io_sep, fb_sep = bool(ff_depth_separable), bool(in_out_depth_separable), bool(feedback_depth_separable)
        # "cell" scope
        self.input_to_cell_conv = op(C, D, ff_k, ff_sep) if self.input_to_cell else None
        self.res_to_cell = op(R, D, ff_k, ff_sep) if self.cell_residual else None
        self.cell_tau = op(D, D, cell_tau_k, tau_sep)
        self.cell_gate = op(C, D, gate_k, gate_sep)  # "out_to_cell": the output gates the cell
        self.input_to_cell_tau = SameConv2d(C, D, cell_tau_k, bias=False) if self.input_to_tau else None
        self.res_to_cell_tau = SameConv2d(R, D, cell_tau_k, bias=False) if residual_to_cell_tau else None
        self.input_to_cell_gate = SameConv2d(C, D, gate_k, bias=False) if self.input_to_gate else None
        self.res_to_cell_gate = SameConv2d(R, D, gate_k, bias=False) if residual_to_cell_gate else None
        self.cell_norm = LayerNorm(D) if layer_norm else None
        # "out" scope. input_to_out, utils/cells.py: separable, _ds_conv(use_bias=True) (lines 1614-1633, bias_initializer zeros,
        # line 937); else the
        # kernel alone: "input_to_out_bias" is created (lines 1650-1655) but never added (lines 1657-1663)
        self.input_to_out_conv = op(C, C, io_k, io_sep) if self.input_to_out else None
        self.cell_to_out_conv = op(D, C, gate_k, gate_sep) if self.cell_to_out else None
        self.residual = ResidualAdd(R, C, int(in_stride)) if self.out_residual else None
        self.out_tau = op(C, C, tau_k, tau_sep)
        self.out_gate = None if self.cell_to_out else op(D, C, gate_k, gate_sep)  # the cell gates the output
        self.input_to_out_tau = SameConv2d(C, C, tau_k, bias=False) if self.input_to_tau else None
        self.res_to_out_tau = SameConv2d(R, C, tau_k, bias=False) if residual_to_out_tau else None
        self.input_to_out_gate = SameConv2d(C, C, gate_k, bias=False) if self.input_to_gate else None
        self.res_to_out_gate = (_conv(R, C, gate_k, gate_sep, bias=not bias and gate_sep)
                                if residual_to_out_gate else None)
        self.out_norm = LayerNorm(C) if layer_norm else None
        # feedback: only the feedback channels are convolved, into the entry point's depth (the median: with a bias,
        # models/model_func.py; utils/cells.py: a temporal op, scope "feedback")
        entry_depth = {"out": C, "cell": D, "input": C}[feedback_entry]
        # utils/cells.py (conv_bias=False) with entry "cell" adds the feedback to its own convolution before the
        # cell takes it ("fb_input += self._apply_temporal_op(fb_input, ...)", lines 1543-1554); the median
        # (utils/median_rgcell.py) adds the convolution alone. The sum needs the feedback's depth to be cell_depth
        # (or 1, which TensorFlow and torch broadcast).
        self.feedback_plus_conv = feedback_entry == "cell" and not conv_bias
        if self.feedback_plus_conv and self.feedback_channels not in (0, 1, D):
            raise SpecError(f"cell config 'feedback_entry': 'cell' with conv_bias false (utils/cells.py, lines "
                            f"1543-1554) adds the feedback to its convolution, so the feedback's "
                            f"{self.feedback_channels} channels must equal 'cell_depth' ({D})")
        self.feedback_conv = (_conv(self.feedback_channels, entry_depth, fb_k, fb_sep, bias=bias or fb_sep)
                              if self.feedback_channels else None)
        self.fuse_inputs = False  # fast path (convrnn.fast): both non-separable convolutions of the input as one
        self.fuse_gates = False  # fast path: the separable gates that read the same state as one (fused_separable_conv)
        for module in self.modules():
            if isinstance(module, nn.Conv2d) and module is not getattr(self.residual, "projection", None):
                if kernel_initializer == "xavier":
                    glorot_uniform_(module.weight)
                else:
                    variance_scaling_(module.weight, self.init_scale, fan_in=tf_fan_in(module))
        if not bias:  # utils/cells.py: a separable temporal op's bias is Glorot-initialised (lines 1296-1297)
            temporal = (self.input_to_cell_conv, self.res_to_cell, self.cell_tau, self.cell_gate, self.cell_to_out_conv,
                        self.out_tau, self.out_gate, self.res_to_out_gate, self.feedback_conv)
            for module in temporal:
                if isinstance(module, SeparableConv2d):
                    glorot_uniform_(module.pointwise.bias)

    def decayed_parameters(self) -> Iterator[torch.Tensor]:
        projection = getattr(self.residual, "projection", None)  # residual_add has no regulariser
        skip = {id(projection.weight)} if projection is not None else set()
        return (p for p in _kernels(self) if id(p) not in skip)

    def forward(self, x: torch.Tensor, state: Optional[State] = None, feedback: Optional[torch.Tensor] = None,
                res_input: Optional[torch.Tensor] = None):
        c_prev, h_prev = self._state(x, state)
        fb = feedback if self.feedback_conv is not None else None
        if fb is not None and self.feedback_entry == "input":
            x = x + self.feedback_activation(self.feedback_conv(fb))
        inputs = self.input_activation(x)
        del x
        # each intermediate map is deleted once used (``del``): the values are the same, the memory of a step is
        # a few maps instead of all of them (full-width conv2 at batch 32: 51 MB a map)

        # cell
        cell_input = None
        if res_input is not None and self.res_to_cell is not None:
            cell_input = self.res_to_cell(res_input)
        fused = (self.fuse_inputs and isinstance(self.input_to_cell_conv, SameConv2d)
                 and isinstance(self.input_to_out_conv, SameConv2d))
        if fused:
            cell_drive, out_drive = fused_same_conv(inputs, (self.input_to_cell_conv, self.input_to_out_conv))
        else:
            cell_drive = self.input_to_cell_conv(inputs) if self.input_to_cell_conv is not None else None
            out_drive = self.input_to_out_conv(inputs) if self.input_to_out_conv is not None else None
        cell_input = _add(cell_input, cell_drive)
        if fb is not None and self.feedback_entry == "cell":
            drive = self.feedback_conv(fb)
            if self.feedback_plus_conv:  # utils/cells.py lines 1543-1554: "fb_input += ...(fb_input)"
                drive = drive + fb
            cell_input = _add(cell_input, self.feedback_activation(drive))
            del drive
        from_cell = (self.cell_tau, self.out_gate)  # the gates that read c_{t-1}, and those that read h_{t-1}
        from_out = (self.out_tau, self.cell_gate)
        # without autograd (and without kept gates) the gate arithmetic runs in place on the maps this step
        # created (never on the state or the input): the same operations in the same order, so the same values,
        # with a few fresh maps a step instead of a dozen (a fresh map is paged in: ~24 ms for 51 MB)
        inplace = not (torch.is_grad_enabled() or self.keep_gates)
        fuse_gates = self.fuse_gates and fusable_separable(from_cell + from_out)
        if fuse_gates:
            cell_tau, out_gate_pre = fused_separable_conv(c_prev, from_cell)
            out_tau_pre, cell_gate = fused_separable_conv(h_prev, from_out)
            cell_tau = _plus(cell_tau, self.tau_constant, inplace)
            cell_gate = _plus(cell_gate, self.gate_constant, inplace)
        else:
            cell_tau = _plus(self.cell_tau(c_prev), self.tau_constant, inplace)
            cell_gate = _plus(self.cell_gate(h_prev), self.gate_constant, inplace)
        if self.input_to_cell_tau is not None:
            cell_tau = _plus(cell_tau, self.input_to_cell_tau(inputs), inplace)
        if res_input is not None and self.res_to_cell_tau is not None:
            cell_tau = _plus(cell_tau, self.res_to_cell_tau(res_input), inplace)
        if self.input_to_cell_gate is not None:
            cell_gate = _plus(cell_gate, self.input_to_cell_gate(inputs), inplace)
        if res_input is not None and self.res_to_cell_gate is not None:
            cell_gate = _plus(cell_gate, self.res_to_cell_gate(res_input), inplace)
        cell_tau = _apply(self.tau_nonlinearity, cell_tau, inplace)
        cell_gate = _apply(self.gate_nonlinearity, cell_gate, inplace)
        gates = dict(cell_tau=cell_tau, cell_gate=cell_gate) if self.keep_gates else {}
        cell_tau_factor = _affine(cell_tau, self.tau_multiplier, self.tau_offset, inplace)
        cell_gate_factor = _affine(cell_gate, self.gate_multiplier, self.gate_offset, inplace)
        c = _plus(_times(cell_tau_factor, c_prev, inplace), _times(cell_gate_factor, cell_input, inplace), inplace)
        if self.keep_gates:
            gates.update(cell_tau_factor=cell_tau_factor, cell_gate_factor=cell_gate_factor)
        del cell_tau, cell_gate, cell_tau_factor, cell_gate_factor, cell_input, cell_drive
        if self.cell_norm is not None:
            c = self.cell_norm(c)
        c = _apply(self.cell_activation, c, inplace)

        # out
        out_input = out_drive if out_drive is not None else inputs
        if self.cell_to_out_conv is not None:
            out_input = out_input + self.cell_to_out_conv(c_prev) + self.gate_constant
        if res_input is not None and self.residual is not None:
            out_input = self.residual(out_input, res_input)
        if fb is not None and self.feedback_entry == "out":
            out_input = out_input + self.feedback_activation(self.feedback_conv(fb))
        out_tau = _plus(out_tau_pre if fuse_gates else self.out_tau(h_prev), self.tau_constant, inplace)
        if self.out_gate is not None:
            out_gate = _plus(out_gate_pre if fuse_gates else self.out_gate(c_prev), self.gate_constant, inplace)
            if fuse_gates:
                del out_tau_pre, out_gate_pre  # views of the fused gate convolutions' outputs
        else:  # cell_to_out: the original sets the output gate's pre-activation to zero
            out_gate = torch.zeros_like(out_input)
        if self.input_to_out_tau is not None:
            out_tau = _plus(out_tau, self.input_to_out_tau(inputs), inplace)
        if res_input is not None and self.res_to_out_tau is not None:
            out_tau = _plus(out_tau, self.res_to_out_tau(res_input), inplace)
        if self.input_to_out_gate is not None:
            out_gate = _plus(out_gate, self.input_to_out_gate(inputs), inplace)
        if res_input is not None and self.res_to_out_gate is not None:
            out_gate = _plus(out_gate, self.res_to_out_gate(res_input), inplace)
        del inputs
        out_tau = _apply(self.tau_nonlinearity, out_tau, inplace)
        out_gate = _apply(self.gate_nonlinearity, out_gate, inplace)
        if self.keep_gates:
            gates.update(out_tau=out_tau, out_gate=out_gate)
        out_tau_factor = _affine(out_tau, self.tau_multiplier, self.tau_offset, inplace)
        out_gate_factor = _affine(out_gate, self.gate_multiplier, self.gate_offset, inplace)
        self._keep(**gates, out_tau_factor=out_tau_factor, out_gate_factor=out_gate_factor)
        del out_tau, out_gate
        h = _plus(_times(out_tau_factor, h_prev, inplace), _times(out_gate_factor, out_input, inplace), inplace)
        del out_tau_factor, out_gate_factor, out_input, out_drive
        if self.out_norm is not None:
            h = self.out_norm(h)
        h = _apply(self.out_activation, h, inplace)
        return h, (c, h)

    def extra_repr(self) -> str:
        switches = [k for k in ("input_to_cell", "input_to_out", "cell_to_out", "out_residual", "cell_residual")
                    if getattr(self, k)]
        return (f"channels={self.channels}, cell_depth={self.cell_depth}, feedback_channels={self.feedback_channels}, "
                f"{'+'.join(switches) or 'no switches'}")


#: in-place forms of the activations and gate nonlinearities (same kernels, so the same values)
INPLACE: Dict[Callable, Callable] = {F.elu: F.elu_, F.relu: F.relu_, torch.tanh: torch.tanh_, torch.sigmoid: torch.sigmoid_,
                                     F.hardtanh: F.hardtanh_, F.leaky_relu: F.leaky_relu_}


def _apply(function: Callable, x: torch.Tensor, inplace: bool) -> torch.Tensor:
    """``function(x)``, in place on ``x`` when allowed and the function has an in-place form."""
    return INPLACE[function](x) if inplace and function in INPLACE else function(x)


def _plus(x: torch.Tensor, y: Union[torch.Tensor, float], inplace: bool) -> torch.Tensor:
    """``x + y``, in place on ``x`` when allowed and ``x`` has the result's shape."""
    if inplace and (not torch.is_tensor(y) or torch.broadcast_shapes(x.shape, y.shape) == x.shape):
        return x.add_(y)
    return x + y


def _times(x: torch.Tensor, y: torch.Tensor, inplace: bool) -> torch.Tensor:
    """``x * y``, in place on ``x`` when allowed and ``x`` has the result's shape."""
    return x.mul_(y) if inplace and torch.broadcast_shapes(x.shape, y.shape) == x.shape else x * y


def _affine(x: torch.Tensor, multiplier: float, offset: float, inplace: bool) -> torch.Tensor:
    """``offset + multiplier * x`` (the gates' factors), in place on ``x`` when allowed."""
    return x.mul_(multiplier).add_(offset) if inplace else offset + multiplier * x


def _add(a: Optional[torch.Tensor], b: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    if a is None:
        return b
    return a if b is None else a + b


def _with_feedback(x: torch.Tensor, feedback: Optional[torch.Tensor]) -> torch.Tensor:
    return x if feedback is None else x + feedback


class _GlorotCell(RecurrentCell):
    """Cells of utils/cells.py: kernels Glorot uniform (``kernel_initializer=None``: TensorFlow's default), biases
    zero unless stated (``_conv_linear``, utils/cell_utils.py lines 8-75, bias constant 0 at lines 66-67), L2 scale
    ``weight_decay`` (the released JSONs give 1e-4, e.g. models/ugrnn_intermediate.json line 275)."""

    def __init__(self, channels: int, weight_decay: float):
        super().__init__(channels)
        self.weight_decay = float(weight_decay)

    def _init(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                glorot_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)


@CELLS.register("timedecay", description="memory (utils/cell_utils.py): state = decay * state + input, scalar decay")
class TimeDecayCell(RecurrentCell):
    def __init__(self, channels: int, *, memory_decay: float = 0.0, trainable: bool = True):
        super().__init__(channels)
        self.state_channels = (self.channels,)
        self.memory_decay = nn.Parameter(torch.tensor([float(memory_decay)]), requires_grad=bool(trainable))

    def decayed_parameters(self) -> Iterator[torch.Tensor]:
        return iter(())

    def forward(self, x: torch.Tensor, state: Optional[State] = None, feedback: Optional[torch.Tensor] = None,
                res_input: Optional[torch.Tensor] = None):
        drive = _with_feedback(x, feedback)
        (s,) = self._state(x, state)
        s = s * self.memory_decay + drive
        return s, (s,)


@CELLS.register("ugrnn", description="ConvUGRNNCell (utils/cells.py): h = g h + (1 - g) tanh(c), g = sig(. + 1)")
class UGRNNCell(_GlorotCell):
    def __init__(self, channels: int, *, filter_size: Kernel = 3, forget_bias: float = 1.0, weight_decay: float = 1e-4):
        super().__init__(channels, weight_decay)
        self.state_channels = (self.channels,)
        self.forget_bias = float(forget_bias)
        self.conv = SameConv2d(2 * self.channels, 2 * self.channels, _kernel("filter_size", filter_size))  # [g | c]
        self._init()

    def forward(self, x, state=None, feedback=None, res_input=None):
        x = _with_feedback(x, feedback)
        (h_prev,) = self._state(x, state)
        g, c = self.conv(torch.cat([x, h_prev], dim=1)).chunk(2, dim=1)
        g = torch.sigmoid(g + self.forget_bias)
        h = g * h_prev + (1 - g) * torch.tanh(c)
        self._keep(gate=g)
        return h, (h,)


@CELLS.register("gru", description="ConvGRUCell (utils/cells.py): reset gate sig(. + 1), gate biases start at 1")
class ConvGRUCell(_GlorotCell):
    def __init__(self, channels: int, *, filter_size: Kernel = 3, forget_bias: float = 1.0, weight_decay: float = 1e-4):
        super().__init__(channels, weight_decay)
        self.state_channels = (self.channels,)
        self.forget_bias = float(forget_bias)
        k = _kernel("filter_size", filter_size)
        self.gates = SameConv2d(2 * self.channels, 2 * self.channels, k)  # [r | u]
        self.candidates = SameConv2d(2 * self.channels, self.channels, k)
        self._init()
        nn.init.ones_(self.gates.bias)  # "We start with bias of 1.0 to not reset and not update."

    def forward(self, x, state=None, feedback=None, res_input=None):
        x = _with_feedback(x, feedback)
        (h_prev,) = self._state(x, state)
        r, u = self.gates(torch.cat([x, h_prev], dim=1)).chunk(2, dim=1)
        r, u = torch.sigmoid(r + self.forget_bias), torch.sigmoid(u)
        c = torch.tanh(self.candidates(torch.cat([x, r * h_prev], dim=1)))
        h = u * h_prev + (1 - u) * c
        self._keep(update=u, reset=r)
        return h, (h,)


@CELLS.register("lstm", description="ConvLSTMCell (utils/cells.py): gates [i | j | f | o], forget sig(f + 1)")
class ConvLSTMCell(_GlorotCell):
    def __init__(self, channels: int, *, filter_size: Kernel = 3, forget_bias: float = 1.0, weight_decay: float = 1e-4):
        super().__init__(channels, weight_decay)
        self.state_channels = (self.channels, self.channels)  # (c, h)
        self.forget_bias = float(forget_bias)
        self.conv = SameConv2d(2 * self.channels, 4 * self.channels, _kernel("filter_size", filter_size))
        self._init()

    def forward(self, x, state=None, feedback=None, res_input=None):
        x = _with_feedback(x, feedback)
        c_prev, h_prev = self._state(x, state)
        i, j, f, o = self.conv(torch.cat([x, h_prev], dim=1)).chunk(4, dim=1)
        c = c_prev * torch.sigmoid(f + self.forget_bias) + torch.sigmoid(i) * torch.tanh(j)
        h = torch.tanh(c) * torch.sigmoid(o)
        self._keep(input=torch.sigmoid(i), forget=torch.sigmoid(f + self.forget_bias), output=torch.sigmoid(o))
        return h, (c, h)


@CELLS.register("intersectionrnn", description="ConvIntersectionRNNCell (utils/cells.py): gated through time and depth")
class ConvIntersectionRNNCell(_GlorotCell):
    def __init__(self, channels: int, *, filter_size: Kernel = 3, forget_bias: float = 1.0, weight_decay: float = 1e-4):
        super().__init__(channels, weight_decay)
        self.state_channels = (self.channels,)
        self.forget_bias = float(forget_bias)
        self.conv = SameConv2d(2 * self.channels, 4 * self.channels, _kernel("filter_size", filter_size))
        self._init()

    def forward(self, x, state=None, feedback=None, res_input=None):
        x = _with_feedback(x, feedback)
        (s_prev,) = self._state(x, state)
        gh, h, gy, y = self.conv(torch.cat([x, s_prev], dim=1)).chunk(4, dim=1)
        gh, gy = torch.sigmoid(gh + self.forget_bias), torch.sigmoid(gy + self.forget_bias)
        s = gh * s_prev + (1 - gh) * torch.tanh(h)  # passed through time
        out = gy * x + (1 - gy) * F.relu(y)  # passed through depth
        self._keep(time_gate=gh, depth_gate=gy)
        return out, (s,)


@CELLS.register("simplernn", description="ConvNormBasicCell (utils/cells.py): h = elu(LN(conv(x) + conv(h)))")
class ConvSimpleRNNCell(_GlorotCell):
    def __init__(self, channels: int, *, filter_size: Kernel = 3, out_depth: Optional[int] = None,
                 layer_norm: bool = True, activation: str = "elu", weight_decay: float = 5e-4):
        super().__init__(channels, weight_decay)
        if out_depth is not None and (int(out_depth) != out_depth or out_depth < 1):
            raise SpecError(f"cell config 'out_depth': expected a positive integer, got {out_depth!r}")
        self.out_channels = int(out_depth or self.channels)  # the output (and state) depth, as the JSON's out_depth
        self.state_channels = (self.out_channels,)
        self.activation = _choice(ACTIVATIONS, "activation", activation)
        k = _kernel("filter_size", filter_size)
        self.state_conv = SameConv2d(self.out_channels, self.out_channels, k)  # scope "s"
        self.input_conv = SameConv2d(self.channels, self.out_channels, k)  # scope "i"
        self.norm = LayerNorm(self.out_channels, eps=1e-12) if layer_norm else None
        self._init()

    def decayed_parameters(self) -> Iterator[torch.Tensor]:  # kernel and bias regularisers, 5e-4 by default
        return iter([self.state_conv.weight, self.state_conv.bias, self.input_conv.weight, self.input_conv.bias])

    def forward(self, x, state=None, feedback=None, res_input=None):
        x = _with_feedback(x, feedback)
        (h_prev,) = self._state(x, state)
        z = self.input_conv(x) + self.state_conv(h_prev)
        h = self.activation(self.norm(z) if self.norm is not None else z)
        return h, (h,)


@CELLS.register("identity", description="no recurrence: out = x (+ feedback)")
class IdentityCell(RecurrentCell):
    def forward(self, x, state=None, feedback=None, res_input=None):
        return _with_feedback(x, feedback), ()


#: Keys the network passes to every cell that accepts them (not config keys of a spec).
STRUCTURAL_KEYS = ("in_channels", "in_stride", "feedback_channels")


def cell_config_keys(kind: str) -> Optional[Tuple[str, ...]]:
    """Config keys accepted by ``kind`` (None when its factory takes arbitrary keyword arguments)."""
    params = _parameters(kind)
    if params is None:
        return None
    return tuple(p for p in params if p not in STRUCTURAL_KEYS)


def _parameters(kind: str) -> Optional[Tuple[str, ...]]:
    factory = cell_entry(kind).resolve()
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        params = list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return tuple(p.name for p in params if p.name not in ("self", "channels")
                 and p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD))


def cell_entry(kind: str):
    """The registry entry of a cell kind; an unknown kind is a ``SpecError`` naming the spec's ``kind`` key."""
    try:
        return CELLS.get(kind)
    except UnknownNameError as err:
        raise SpecError(f"cell 'kind': {err}") from None


def create_cell(kind: str, channels: int, *, in_channels: Optional[int] = None, in_stride: int = 1,
                feedback_channels: int = 0, **config) -> RecurrentCell:
    """Build a registered cell; unknown kinds or config keys raise ``SpecError`` listing the valid ones.

    ``in_channels`` / ``in_stride`` (the layer's input channels and convolution stride, for the bypass) and
    ``feedback_channels`` (the concatenated
    feedback sources) are passed to cells that accept them."""
    entry = cell_entry(kind)
    valid = cell_config_keys(kind)
    if valid is not None:
        unknown = sorted(set(config) - set(valid))
        if unknown:
            raise SpecError(
                f"cell {kind!r}: unknown {plural(len(unknown), 'config key')} {', '.join(map(repr, unknown))}"
                f"{did_you_mean(unknown, valid)} "
                f"(valid keys: {', '.join(valid) or 'none'})"
            )
    accepted = _parameters(kind)
    structural = {"in_channels": in_channels, "in_stride": in_stride, "feedback_channels": feedback_channels}
    for key, value in structural.items():
        if accepted is None or key in accepted:
            config[key] = value
    factory = entry.resolve()
    wrong = _mistyped(factory, config)
    if wrong:
        raise SpecError(f"cell {kind!r}: " + "; ".join(wrong))
    return factory(channels=channels, **config)


def _mistyped(factory, config) -> list:
    """Values of another type than the factory's default: a flag must be ``true``/``false``, a number a finite number
    (a kernel size also a (height, width) pair), a name text. YAML reads ``tau_offset: "0.9"`` and ``no`` in quotes
    as strings, and ``cell_depth:`` with nothing after it as null: one failed inside the cell with a bare ValueError,
    another silently counted as true, the last was a TypeError traceback."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        parameters = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return []
    wrong = []
    for key, value in config.items():
        parameter = parameters.get(key)
        default = parameter.default if parameter is not None else None
        if isinstance(default, bool):
            if not isinstance(value, bool):
                wrong.append(f"config {key!r} must be true or false, got {value!r}")
        elif isinstance(default, (int, float)):
            kernel = "Kernel" in str(parameter.annotation)
            if not (_is_number(value) or kernel and isinstance(value, (list, tuple))):
                expected = "a number" + (" or (height, width)" if kernel else "")
                wrong.append(f"config {key!r} must be {expected}, got {value!r}")
        elif isinstance(default, str) and not isinstance(value, str):
            wrong.append(f"config {key!r} must be text (e.g. {default!r}), got {value!r}")
    return wrong
