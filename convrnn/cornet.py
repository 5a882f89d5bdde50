"""A CORnet-S-like baseline (REFERENCE.md section 2), in the same style as the ConvRNNs.

Areas V1, V2, V4, IT, then global average pooling and a linear readout. V1 is two convolutions
(7x7 stride 2 and 3x3) around a max-pool; V2, V4 and IT are bottleneck blocks (1x1 -> 4x wider
3x3 -> 1x1, plus a skip) unrolled 2, 4 and 2 times with a separate BatchNorm per step; the first
step of an area downsamples (stride 2) and its input is projected by a 1x1 convolution. Unlike the
ConvRNNs, the areas are not biologically unrolled: each area finishes its steps before the next
starts, so one forward gives one readout (``logits`` has T = 1). The output is an
``UnrollOutput`` so the same training and speed code runs both families.
"""
from __future__ import annotations

from typing import Iterable, Sequence, Union

import torch
from torch import nn

from neurozoo.convrnn.network import UnrollOutput

SCALE = 4  # bottleneck expansion


def _bn_steps(channels: int, times: int) -> nn.ModuleList:
    return nn.ModuleList(nn.BatchNorm2d(channels) for _ in range(times))


class BottleneckArea(nn.Module):
    """One recurrent area: ``times`` steps of a bottleneck block with shared convolutions."""

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_input(x)
        for t in range(self.times):
            if t == 0:
                skip = self.norm_skip(self.skip(x))
                stride = 2
            else:
                skip, stride = x, 1
            h = self.act(self.norm1[t](self.conv1(x)))
            h = nn.functional.conv2d(h, self.conv2.weight, None, stride, 1)
            h = self.act(self.norm2[t](h))
            h = self.norm3[t](self.conv3(h))
            x = self.act(h + skip)
        return x


class CORnetS(nn.Module):
    layer_names = ("V1", "V2", "V4", "IT")
    first_readout_step = 0
    n_steps = 1

    def __init__(self, num_classes: int = 1000, width_multiplier: float = 1.0, times: Sequence[int] = (2, 4, 2),
                 input_channels: int = 3):
        super().__init__()
        widths = [max(1, int(round(c * width_multiplier))) for c in (64, 128, 256, 512)]
        self.V1 = nn.Sequential(
            nn.Conv2d(input_channels, widths[0], 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, padding=1),
            nn.Conv2d(widths[0], widths[0], 3, padding=1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True),
        )
        self.V2 = BottleneckArea(widths[0], widths[1], times[0])
        self.V4 = BottleneckArea(widths[1], widths[2], times[1])
        self.IT = BottleneckArea(widths[2], widths[3], times[2])
        self.readout = nn.Linear(widths[3], num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor, record: Union[Iterable[str], str, None] = None, **_) -> UnrollOutput:
        record = [record] if isinstance(record, str) else list(record or [])
        recorded = {}
        for name in self.layer_names:
            x = getattr(self, name)(x)
            if name in record:
                recorded[name] = x.unsqueeze(0)
        logits = self.readout(x.mean(dim=(-2, -1)))
        return UnrollOutput(logits.unsqueeze(0), recorded, first_readout_step=0)


def cornet_s(num_classes: int = 1000, width_multiplier: float = 1.0, times: Sequence[int] = (2, 4, 2)) -> CORnetS:
    return CORnetS(num_classes=num_classes, width_multiplier=width_multiplier, times=times)
