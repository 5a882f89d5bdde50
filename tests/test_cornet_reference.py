"""Our CORnet-S (convrnn.cornet, the baseline of the training-speed comparison) against a reference written from the
original: dicarlolab/CORnet cornet/cornet_s.py at commit f037fa9 (``CORblock_S`` and ``CORnet_S``; REFERENCE.md
section 2). The reference keeps the original's module names, so every parameter is matched by name and shape."""
from collections import OrderedDict

import pytest
import torch
from torch import nn

from neurozoo.convrnn.cornet import cornet_s


class _CORblockS(nn.Module):
    """cornet_s.py ``CORblock_S``: conv_input 1x1; at t = 0 the skip is norm_skip(skip(x)) (1x1, stride 2) and conv2
    has stride 2, later the skip is x and stride 1; conv1 (1x1, x4) -> norm1_t -> ReLU -> conv2 (3x3, padding 1) ->
    norm2_t -> ReLU -> conv3 (1x1) -> norm3_t, plus the skip, ReLU. One BatchNorm per step."""

    scale = 4

    def __init__(self, in_channels, out_channels, times):
        super().__init__()
        self.times = times
        self.conv_input = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
        self.skip = nn.Conv2d(out_channels, out_channels, kernel_size=1, stride=2, bias=False)
        self.norm_skip = nn.BatchNorm2d(out_channels)
        self.conv1 = nn.Conv2d(out_channels, out_channels * self.scale, kernel_size=1, bias=False)
        self.conv2 = nn.Conv2d(out_channels * self.scale, out_channels * self.scale, kernel_size=3, stride=2,
                               padding=1, bias=False)
        self.conv3 = nn.Conv2d(out_channels * self.scale, out_channels, kernel_size=1, bias=False)
        for t in range(times):
            setattr(self, f"norm1_{t}", nn.BatchNorm2d(out_channels * self.scale))
            setattr(self, f"norm2_{t}", nn.BatchNorm2d(out_channels * self.scale))
            setattr(self, f"norm3_{t}", nn.BatchNorm2d(out_channels))

    def forward(self, inp):
        x = self.conv_input(inp)
        for t in range(self.times):
            if t == 0:
                skip = self.norm_skip(self.skip(x))
                self.conv2.stride = (2, 2)
            else:
                skip = x
                self.conv2.stride = (1, 1)
            x = torch.relu(getattr(self, f"norm1_{t}")(self.conv1(x)))
            x = torch.relu(getattr(self, f"norm2_{t}")(self.conv2(x)))
            x = getattr(self, f"norm3_{t}")(self.conv3(x))
            x = torch.relu(x + skip)
        return x


def _reference(widths, times=(2, 4, 2), num_classes=1000):
    """cornet_s.py ``CORnet_S``: V1 = conv 7x7/2 (padding 3) -> BN -> ReLU -> max-pool 3/2 (padding 1) -> conv 3x3 ->
    BN -> ReLU; V2, V4, IT = CORblock_S with times 2, 4, 2; decoder = adaptive average pool, flatten, linear."""
    return nn.Sequential(OrderedDict([
        ("V1", nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(3, widths[0], kernel_size=7, stride=2, padding=3, bias=False)),
            ("norm1", nn.BatchNorm2d(widths[0])), ("nonlin1", nn.ReLU()),
            ("pool", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
            ("conv2", nn.Conv2d(widths[0], widths[0], kernel_size=3, stride=1, padding=1, bias=False)),
            ("norm2", nn.BatchNorm2d(widths[0])), ("nonlin2", nn.ReLU())]))),
        ("V2", _CORblockS(widths[0], widths[1], times[0])),
        ("V4", _CORblockS(widths[1], widths[2], times[1])),
        ("IT", _CORblockS(widths[2], widths[3], times[2])),
        ("decoder", nn.Sequential(OrderedDict([
            ("avgpool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()),
            ("linear", nn.Linear(widths[3], num_classes))]))),
    ]))


def _original_name(ours: str) -> str:
    """Our parameter or buffer name -> the original's."""
    v1 = {"V1.0.": "V1.conv1.", "V1.1.": "V1.norm1.", "V1.4.": "V1.conv2.", "V1.5.": "V1.norm2."}
    for prefix, name in v1.items():
        if ours.startswith(prefix):
            return name + ours[len(prefix):]
    if ours.startswith("readout."):
        return "decoder.linear." + ours[len("readout."):]
    area, module, rest = ours.split(".", 2)
    if module.startswith("norm") and module[4:].isdigit() and rest.split(".")[0].isdigit():  # norm1.0.weight
        step, rest = rest.split(".", 1)
        return f"{area}.{module}_{step}.{rest}"
    return ours


@pytest.mark.parametrize("train", [False, True])
def test_cornet_s_equals_the_original_graph(train):
    torch.manual_seed(0)
    ours = cornet_s(num_classes=10, width_multiplier=0.125)
    reference = _reference([8, 16, 32, 64], num_classes=10)
    mine = {_original_name(k): v for k, v in ours.state_dict().items()}
    theirs = reference.state_dict()
    assert {k: tuple(v.shape) for k, v in mine.items()} == {k: tuple(v.shape) for k, v in theirs.items()}
    with torch.no_grad():  # running statistics away from 0 / 1, so eval mode tests them too
        for name, value in ours.state_dict().items():
            if value.is_floating_point() and "running_var" in name:
                value.uniform_(0.5, 2.0)
            elif value.is_floating_point() and "running_mean" in name or name.endswith("norm_skip.bias"):
                value.normal_(0, 0.1)
    reference.load_state_dict({_original_name(k): v for k, v in ours.state_dict().items()})
    ours.train(train), reference.train(train)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = ours(x, record=["V4", "IT"])
        expected_logits = reference(x)
    torch.testing.assert_close(out.logits[0], expected_logits, rtol=1e-5, atol=1e-5)
    if train:  # the same batch statistics went into the same running averages, step by step
        for name, value in ours.state_dict().items():
            torch.testing.assert_close(value, reference.state_dict()[_original_name(name)], rtol=1e-5, atol=1e-6)


def test_cornet_s_has_the_published_parameter_count():
    """REFERENCE.md section 2: 53.4 M parameters (the original's CORnet_S(): 53,416,616)."""
    with torch.device("meta"):  # shapes only
        ours, original = cornet_s(), _reference([64, 128, 256, 512])
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in original.parameters()) == 53_416_616
