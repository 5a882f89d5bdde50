"""The CORnet family (Kubilius et al. 2018/2019; dicarlolab/CORnet; REFERENCE.md section 2), in the style of the
ConvRNNs.

Every model has the areas V1, V2, V4, IT (its ``layer_names``, the original's output names), then global average
pooling and a linear readout, and returns an ``UnrollOutput`` (so the training and speed code runs both families).

* CORnet-Z (cornet_z.py): each area is one convolution -> ReLU -> 3x3/2 max-pool; feed-forward.
* CORnet-S (cornet_s.py): V1 is two convolutions around a max-pool; V2, V4, IT are bottleneck blocks unrolled 2, 4
  and 2 times with a separate BatchNorm per step. Each area finishes its steps before the next starts (the
  original's non-biological unrolling); ``logits`` has T = 1.
* CORnet-RT (cornet_rt.py): biologically unrolled over 5 steps. At step t an area reads the *previous* step's
  output of the area below (V1 reads the image at every step) and its own previous output as state; at t = 0 the
  areas above V1 have no input yet and see zeros.

An area's ``forward`` is one step of it: a forward hook on ``V2`` etc. sees every step (what the extraction reads
through its step tables, as Brain-Score's ``V2.output-t{k}`` layers), and ``record=`` returns each recorded area's
steps stacked, (T_area, B, C, H, W).
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Sequence, Union

import torch
from torch import nn

from neurozoo.convrnn.network import UnrollOutput, check_finite_images
from neurozoo.datasets.errors import SpecError

SCALE = 4  # CORnet-S bottleneck expansion
WIDTHS = (64, 128, 256, 512)  # the areas' channels at width_multiplier 1
GROUPS = 32  # CORnet-RT's GroupNorm groups


def scaled_widths(width_multiplier: float) -> List[int]:
    return [max(1, int(round(c * width_multiplier))) for c in WIDTHS]


def _conv_size(size: int, conv: nn.Conv2d) -> int:
    return (size + 2 * conv.padding[0] - conv.kernel_size[0]) // conv.stride[0] + 1


def _bn_steps(channels: int, times: int) -> nn.ModuleList:
    return nn.ModuleList(nn.BatchNorm2d(channels) for _ in range(times))


class _CORnet(nn.Module):
    """Readout and recording shared by the family; subclasses build the areas and ``_areas`` (name -> steps)."""

    layer_names = ("V1", "V2", "V4", "IT")
    first_readout_step = 0
    n_steps = 1
    #: the model's name in Brain-Score: its time mapping (benchmarks.extraction.time_mapping.CORNET_TIMING)
    brainscore_identifier = ""

    def _recorder(self, record: Union[Iterable[str], str, None]) -> Dict[str, List[torch.Tensor]]:
        """An empty list of steps per recorded area (only those are kept: not every step of every area)."""
        record = [record] if isinstance(record, str) else list(record or [])
        unknown = [name for name in record if name not in self.layer_names]
        if unknown:
            raise SpecError(f"{type(self).__name__}: no layer {unknown[0]!r} to record (layers: {self.layer_names})")
        return {name: [] for name in record}

    def _readout(self, x: torch.Tensor, steps: Dict[str, List[torch.Tensor]]) -> UnrollOutput:
        logits = self.readout(x.mean(dim=(-2, -1)))
        return UnrollOutput(logits.unsqueeze(0), {name: torch.stack(s) for name, s in steps.items()},
                            first_readout_step=0)


# ------------------------------------------------------------------------------------------------ CORnet-Z
class ZArea(nn.Module):
    """cornet_z.py ``CORblock_Z``: convolution (with bias, 'same' padding) -> ReLU -> max-pool 3/2."""

    def __init__(self, in_channels: int, channels: int, kernel_size: int = 3, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, channels, kernel_size, stride=stride, padding=kernel_size // 2)
        self.act = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.act(self.conv(x)))


class CORnetZ(_CORnet):
    brainscore_identifier = "CORnet-Z"

    def __init__(self, num_classes: int = 1000, width_multiplier: float = 1.0, input_channels: int = 3):
        super().__init__()
        w = scaled_widths(width_multiplier)
        self.V1 = ZArea(input_channels, w[0], kernel_size=7, stride=2)
        self.V2, self.V4, self.IT = ZArea(w[0], w[1]), ZArea(w[1], w[2]), ZArea(w[2], w[3])
        self.readout = nn.Linear(w[3], num_classes)
        for module in self.modules():  # the original's initialisation: Xavier-uniform weights, zero biases
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor, record: Union[Iterable[str], str, None] = None, **_) -> UnrollOutput:
        check_finite_images(x)
        steps = self._recorder(record)
        for name in self.layer_names:
            x = getattr(self, name)(x)
            if name in steps:
                steps[name].append(x)
        return self._readout(x, steps)


# ------------------------------------------------------------------------------------------------ CORnet-S
class BottleneckArea(nn.Module):
    """cornet_s.py ``CORblock_S``, one step per call: ``times`` steps of a bottleneck block (1x1 -> 4x wider 3x3 ->
    1x1, plus a skip) with shared convolutions and a BatchNorm per step. Step 0 projects the input (1x1 conv),
    downsamples (stride 2) and takes its skip through a strided 1x1 conv; later steps keep the size, skip = x."""

    def __init__(self, in_channels: int, channels: int, times: int):
        super().__init__()
        self.times = times
        self.conv_input = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.skip = nn.Conv2d(channels, channels, 1, stride=2, bias=False)
        self.norm_skip = nn.BatchNorm2d(channels)
        wide = channels * SCALE
        self.conv1 = nn.Conv2d(channels, wide, 1, bias=False)
        self.conv2 = nn.Conv2d(wide, wide, 3, stride=2, padding=1, bias=False)  # stride 1 after the first step
        self.conv3 = nn.Conv2d(wide, channels, 1, bias=False)
        self.norm1, self.norm2, self.norm3 = _bn_steps(wide, times), _bn_steps(wide, times), _bn_steps(channels, times)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor, step: int) -> torch.Tensor:
        if step == 0:
            x = self.conv_input(x)
            skip, stride = self.norm_skip(self.skip(x)), 2
        else:
            skip, stride = x, 1
        h = self.act(self.norm1[step](self.conv1(x)))
        h = nn.functional.conv2d(h, self.conv2.weight, None, stride, 1)
        h = self.act(self.norm2[step](h))
        h = self.norm3[step](self.conv3(h))
        return self.act(h + skip)


class CORnetS(_CORnet):
    brainscore_identifier = "CORnet-S"

    def __init__(self, num_classes: int = 1000, width_multiplier: float = 1.0, times: Sequence[int] = (2, 4, 2),
                 input_channels: int = 3):
        super().__init__()
        w = scaled_widths(width_multiplier)
        self.V1 = nn.Sequential(
            nn.Conv2d(input_channels, w[0], 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(w[0]),
            nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, padding=1),
            nn.Conv2d(w[0], w[0], 3, padding=1, bias=False), nn.BatchNorm2d(w[0]), nn.ReLU(inplace=True),
        )
        self.V2 = BottleneckArea(w[0], w[1], times[0])
        self.V4 = BottleneckArea(w[1], w[2], times[1])
        self.IT = BottleneckArea(w[2], w[3], times[2])
        self.readout = nn.Linear(w[3], num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor, record: Union[Iterable[str], str, None] = None, **_) -> UnrollOutput:
        check_finite_images(x)
        steps = self._recorder(record)
        x = self.V1(x)
        steps.get("V1", []).append(x)
        for name in self.layer_names[1:]:
            area = getattr(self, name)
            for step in range(area.times):
                x = area(x, step)
                steps.get(name, []).append(x)
        return self._readout(x, steps)


# ------------------------------------------------------------------------------------------------ CORnet-RT
class RTArea(nn.Module):
    """cornet_rt.py ``CORblock_RT``, one step: input = ReLU(GroupNorm(conv_input(x))) (zeros when the area has no
    input yet), output = ReLU(GroupNorm(conv1(input + state))), and the output is the next step's state."""

    def __init__(self, in_channels: int, channels: int, kernel_size: int = 3, stride: int = 1):
        super().__init__()
        if channels % GROUPS:
            raise SpecError(f"CORnet-RT: GroupNorm({GROUPS}) needs channels divisible by {GROUPS}; an area has "
                            f"{channels} (choose a width_multiplier that keeps 64 x it a multiple of {GROUPS})")
        self.channels = channels
        self.conv_input = nn.Conv2d(in_channels, channels, kernel_size, stride=stride, padding=kernel_size // 2)
        self.norm_input = nn.GroupNorm(GROUPS, channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(GROUPS, channels)
        self.act = nn.ReLU(inplace=True)

    def output_size(self, size: int) -> int:
        return _conv_size(size, self.conv_input)

    def forward(self, x: Optional[torch.Tensor], state: Optional[torch.Tensor], empty_like: torch.Tensor,
                size: Sequence[int] = ()) -> torch.Tensor:
        """``x=None``: no input yet, a zero input of ``size`` (H, W) on ``empty_like``'s batch, dtype and device;
        ``state=None``: a zero state."""
        if x is None:
            inp = empty_like.new_zeros(empty_like.shape[0], self.channels, *size)
        else:
            inp = self.act(self.norm_input(self.conv_input(x)))
        if state is not None:
            inp = inp + state
        return self.act(self.norm1(self.conv1(inp)))


class CORnetRT(_CORnet):
    brainscore_identifier = "CORnet-RT"

    def __init__(self, num_classes: int = 1000, width_multiplier: float = 1.0, times: int = 5,
                 input_channels: int = 3):
        super().__init__()
        w = scaled_widths(width_multiplier)
        self.times = times  # n_steps stays 1: one readout, after the last step
        self.V1 = RTArea(input_channels, w[0], kernel_size=7, stride=4)
        self.V2, self.V4, self.IT = RTArea(w[0], w[1], stride=2), RTArea(w[1], w[2], stride=2), RTArea(w[2], w[3], stride=2)
        self.readout = nn.Linear(w[3], num_classes)

    def forward(self, x: torch.Tensor, record: Union[Iterable[str], str, None] = None, **_) -> UnrollOutput:
        check_finite_images(x)
        sizes, size = {}, tuple(x.shape[-2:])
        for name in self.layer_names:  # each area's output size, for its zero input at t = 0
            size = tuple(getattr(self, name).output_size(s) for s in size)
            sizes[name] = size
        steps = self._recorder(record)
        previous: Dict[str, torch.Tensor] = {}
        for t in range(self.times):
            current = {}
            for i, name in enumerate(self.layer_names):
                below = x if i == 0 else previous.get(self.layer_names[i - 1])  # None at t = 0 above V1
                current[name] = getattr(self, name)(below, previous.get(name), x, sizes[name])
                steps.get(name, []).append(current[name])
            previous = current
        return self._readout(previous["IT"], steps)


def cornet_z(num_classes: int = 1000, width_multiplier: float = 1.0) -> CORnetZ:
    return CORnetZ(num_classes=num_classes, width_multiplier=width_multiplier)


def cornet_s(num_classes: int = 1000, width_multiplier: float = 1.0, times: Sequence[int] = (2, 4, 2)) -> CORnetS:
    return CORnetS(num_classes=num_classes, width_multiplier=width_multiplier, times=times)


def cornet_rt(num_classes: int = 1000, width_multiplier: float = 1.0, times: int = 5) -> CORnetRT:
    return CORnetRT(num_classes=num_classes, width_multiplier=width_multiplier, times=times)
