"""Our CORnet family (convrnn.cornet) against references written from the originals (REFERENCE.md section 2):
dicarlolab/CORnet cornet/cornet_s.py at commit f037fa9 (``CORblock_S`` lines 29-89, ``CORnet_S`` lines 92-128), cornet/cornet_z.py at commit
4577028 (``CORblock_Z`` lines 28-43, ``CORnet_Z`` lines 46-70) and cornet/cornet_rt.py at commit c04c1c0
(``CORblock_RT`` lines 29-70, ``CORnet_RT`` lines 73-115). The references keep the original's module names, so every
parameter is matched by name and shape (our names mapped by convrnn.cornet_weights.original_name, the mapping that
reads the released weights: a wrong mapping fails the name and shape comparison against the references), and the
weights are loaded from ours."""
from collections import OrderedDict

import pytest
import torch
from torch import nn

from neurozoo.convrnn.cornet import cornet_rt, cornet_s, cornet_z
from neurozoo.convrnn.cornet_weights import original_name


class _CORblockS(nn.Module):
    """cornet_s.py ``CORblock_S`` (lines 29-89): conv_input 1x1 (line 38); at t = 0 the skip is norm_skip(skip(x))
    (1x1, stride 2) and conv2 has stride 2, later the skip is x and stride 1 (lines 67-72); conv1 (1x1, x4) ->
    norm1_t -> ReLU -> conv2 (3x3, padding 1) -> norm2_t -> ReLU -> conv3 (1x1) -> norm3_t, plus the skip, ReLU
    (lines 74-87). One BatchNorm per step (lines 58-61)."""

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
        self.output = nn.Identity()  # called at every step: Brain-Score's V2.output-t0, -t1, ...

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
            x = self.output(torch.relu(x + skip))
        return x


def _reference(widths, times=(2, 4, 2), num_classes=1000):
    """cornet_s.py ``CORnet_S`` (lines 92-128): V1 = conv 7x7/2 (padding 3) -> BN -> ReLU -> max-pool 3/2 (padding 1) -> conv 3x3 ->
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


@pytest.mark.parametrize("train", [False, True])
def test_cornet_s_equals_the_original_graph(train):
    torch.manual_seed(0)
    ours = cornet_s(num_classes=10, width_multiplier=0.125)
    reference = _reference([8, 16, 32, 64], num_classes=10)
    mine = {original_name(k): v for k, v in ours.state_dict().items()}
    theirs = reference.state_dict()
    assert {k: tuple(v.shape) for k, v in mine.items()} == {k: tuple(v.shape) for k, v in theirs.items()}
    with torch.no_grad():  # running statistics away from 0 / 1, so eval mode tests them too
        for name, value in ours.state_dict().items():
            if value.is_floating_point() and "running_var" in name:
                value.uniform_(0.5, 2.0)
            elif value.is_floating_point() and "running_mean" in name or name.endswith("norm_skip.bias"):
                value.normal_(0, 0.1)
    reference.load_state_dict({original_name(k): v for k, v in ours.state_dict().items()})
    ours.train(train), reference.train(train)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad(), _steps_of(reference, ["V2", "V4", "IT"]) as steps:
        out = ours(x, record=["V2", "V4", "IT"])
        expected_logits = reference(x)
    torch.testing.assert_close(out.logits[0], expected_logits, rtol=1e-5, atol=1e-5)
    for area, times in (("V2", 2), ("V4", 4), ("IT", 2)):  # every step of every area, as Brain-Score reads them
        assert out.recorded[area].shape[0] == times
        torch.testing.assert_close(out.recorded[area], torch.stack(steps[area]), rtol=1e-5, atol=1e-5)
    if train:  # the same batch statistics went into the same running averages, step by step
        for name, value in ours.state_dict().items():
            torch.testing.assert_close(value, reference.state_dict()[original_name(name)], rtol=1e-5, atol=1e-6)


def test_cornet_s_has_the_published_parameter_count():
    """REFERENCE.md section 2: 53.4 M parameters (the original's CORnet_S(): 53,416,616)."""
    with torch.device("meta"):  # shapes only
        ours, original = cornet_s(), _reference([64, 128, 256, 512])
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in original.parameters()) == 53_416_616


class _steps_of:
    """Collects every call's output of each reference area's ``output`` Identity (the original's per-step outputs)."""

    def __init__(self, model, areas):
        self.model, self.areas = model, areas
        self.steps = {area: [] for area in areas}

    def __enter__(self):
        self.handles = [self.model.get_submodule(f"{area}.output").register_forward_hook(
            lambda _m, _i, out, area=area: self.steps[area].append(out.clone())) for area in self.areas]
        return self.steps

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()


def _randomize_norms(model, generator):
    """Affine norm parameters away from 1 / 0: a zero input through a GroupNorm then gives its bias, not 0."""
    with torch.no_grad():
        for name, value in model.named_parameters():
            if ".norm" in name:
                value.copy_(torch.randn(value.shape, generator=generator) * 0.5 + (1.0 if name.endswith("weight") else 0.0))


# ------------------------------------------------------------------------------------------------ CORnet-Z
class _CORblockZ(nn.Module):
    """cornet_z.py ``CORblock_Z`` (lines 28-43): conv (kernel_size, stride, padding kernel_size // 2, with bias; lines
    32-33) -> ReLU (line 34) -> max-pool 3/2, padding 1 (line 35) -> output (line 36), in that order (lines 38-43)."""

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=kernel_size, stride=stride,
                              padding=kernel_size // 2)
        self.nonlin = nn.ReLU()
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.output = nn.Identity()

    def forward(self, inp):
        return self.output(self.pool(self.nonlin(self.conv(inp))))


def _reference_z(widths, num_classes=1000):
    """cornet_z.py ``CORnet_Z`` (lines 46-58): V1 = CORblock_Z(3, 64, kernel_size=7, stride=2) (line 48), V2/V4/IT =
    CORblock_Z with 3x3 convolutions, stride 1 (lines 49-51), decoder = adaptive average pool, flatten, linear 512 ->
    1000 (lines 52-57)."""
    return nn.Sequential(OrderedDict([
        ("V1", _CORblockZ(3, widths[0], kernel_size=7, stride=2)),
        ("V2", _CORblockZ(widths[0], widths[1])), ("V4", _CORblockZ(widths[1], widths[2])),
        ("IT", _CORblockZ(widths[2], widths[3])),
        ("decoder", nn.Sequential(OrderedDict([
            ("avgpool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()),
            ("linear", nn.Linear(widths[3], num_classes))]))),
    ]))


def test_cornet_z_equals_the_original_graph():
    torch.manual_seed(0)
    ours, reference = cornet_z(num_classes=10, width_multiplier=0.125), _reference_z([8, 16, 32, 64], num_classes=10)
    mine = {original_name(k): v for k, v in ours.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in mine.items()} == {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    with torch.no_grad():
        for value in ours.state_dict().values():
            if value.ndim == 1:
                value.normal_(0, 0.1)  # biases away from the original's zero initialisation
    reference.load_state_dict({original_name(k): v for k, v in ours.state_dict().items()})
    x = torch.randn(2, 3, 48, 48, generator=torch.Generator().manual_seed(1))
    with torch.no_grad(), _steps_of(reference, ["V1", "V2", "V4", "IT"]) as steps:
        out = ours(x, record=list(ours.layer_names))
        expected = reference(x)
    torch.testing.assert_close(out.logits[0], expected, rtol=1e-5, atol=1e-5)
    for area in ours.layer_names:  # one step per area
        torch.testing.assert_close(out.recorded[area], torch.stack(steps[area]), rtol=1e-5, atol=1e-6)
    # the original's initialisation: Xavier-uniform weights (bound sqrt(6 / (fan_in + fan_out))), zero biases
    fresh = cornet_z()
    bound = (6 / (3 * 49 + 64 * 49)) ** 0.5
    assert fresh.V1.conv.weight.abs().max() <= bound and fresh.V1.conv.weight.abs().max() > 0.9 * bound
    assert all(not m.bias.detach().any() for m in fresh.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


def _initialise_z(model):
    """cornet_z.py ``CORnet_Z``'s weight initialisation (lines 60-68): every Conv2d and Linear in ``modules()`` order,
    Xavier-uniform weight (line 63), bias set to 0 (lines 64-65); no BatchNorm in CORnet-Z (lines 66-68 unused)."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
    return model


@pytest.mark.parametrize("width, classes", [(0.125, 10), (1.0, 1000)])
def test_cornet_z_initialises_as_the_original_under_one_seed(width, classes):
    """The same seed gives the same initial weights, bit for bit: the modules are created in the original's order
    (each constructor draws its default initialisation from the generator) and then re-initialised by its rule. A
    different rule (e.g. Kaiming, as CORnet-S has; a Xavier gain; a bias left at its default draw) fails this."""
    widths = [max(1, round(c * width)) for c in (64, 128, 256, 512)]
    torch.manual_seed(3)
    ours = cornet_z(num_classes=classes, width_multiplier=width)
    torch.manual_seed(3)
    reference = _initialise_z(_reference_z(widths, num_classes=classes))
    theirs = reference.state_dict()
    mine = {original_name(k): v for k, v in ours.state_dict().items()}
    assert list(mine) == list(theirs)  # the same parameters in the same (creation) order
    for name, value in mine.items():
        assert torch.equal(value, theirs[name]), name
    assert theirs["V2.conv.weight"].abs().max() > 0 and not theirs["decoder.linear.bias"].any()


# ------------------------------------------------------------------------------------------------ CORnet-RT
class _CORblockRT(nn.Module):
    """cornet_rt.py ``CORblock_RT``: without an input (areas above V1 at t = 0) a zero input of out_shape, else
    conv_input (with bias, padding kernel_size // 2) -> GroupNorm(32) -> ReLU; state 0 at t = 0; then
    conv1 (3x3, no bias) of input + state -> GroupNorm(32) -> ReLU; the output is also the new state."""

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, out_shape=None):
        super().__init__()
        self.out_channels, self.out_shape = out_channels, out_shape
        self.conv_input = nn.Conv2d(in_channels, out_channels, kernel_size=kernel_size, stride=stride,
                                    padding=kernel_size // 2)
        self.norm_input = nn.GroupNorm(32, out_channels)
        self.nonlin_input = nn.ReLU()
        self.conv1 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(32, out_channels)
        self.nonlin1 = nn.ReLU()
        self.output = nn.Identity()

    def forward(self, inp=None, state=None, batch_size=None):
        if inp is None:
            inp = torch.zeros([batch_size, self.out_channels, self.out_shape, self.out_shape])
        else:
            inp = self.nonlin_input(self.norm_input(self.conv_input(inp)))
        if state is None:
            state = 0
        x = self.nonlin1(self.norm1(self.conv1(inp + state)))
        state = self.output(x)
        return state, state


class _ReferenceRT(nn.Module):
    """cornet_rt.py ``CORnet_RT``: V1 = CORblock_RT(3, 64, kernel_size=7, stride=4), V2/V4/IT stride 2. t = 0: V1
    reads the image, the others no input; t = 1..times-1: every area reads the output the area below gave at t - 1
    (``outputs`` is replaced only after all areas ran) and its own state; decoder on IT's last output.
    ``out_shapes``: the original's 56, 28, 14, 7 are those of 224 px images; here those of the test's images."""

    def __init__(self, widths, out_shapes, times=5, num_classes=1000):
        super().__init__()
        self.times = times
        self.V1 = _CORblockRT(3, widths[0], kernel_size=7, stride=4, out_shape=out_shapes[0])
        self.V2 = _CORblockRT(widths[0], widths[1], stride=2, out_shape=out_shapes[1])
        self.V4 = _CORblockRT(widths[1], widths[2], stride=2, out_shape=out_shapes[2])
        self.IT = _CORblockRT(widths[2], widths[3], stride=2, out_shape=out_shapes[3])
        self.decoder = nn.Sequential(OrderedDict([
            ("avgpool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()),
            ("linear", nn.Linear(widths[3], num_classes))]))

    def forward(self, inp):
        outputs, states, blocks = {"inp": inp}, {}, ["inp", "V1", "V2", "V4", "IT"]
        for block in blocks[1:]:
            this_inp = outputs["inp"] if block == "V1" else None
            outputs[block], states[block] = getattr(self, block)(this_inp, batch_size=len(inp))
        for _ in range(1, self.times):
            new_outputs = {"inp": inp}
            for block in blocks[1:]:
                prev_output = outputs[blocks[blocks.index(block) - 1]]
                new_outputs[block], states[block] = getattr(self, block)(prev_output, states[block])
            outputs = new_outputs
        return self.decoder(outputs["IT"])


def test_cornet_rt_equals_the_original_graph_step_by_step():
    torch.manual_seed(0)
    ours = cornet_rt(num_classes=10, width_multiplier=0.5)  # the narrowest width GroupNorm(32) allows
    reference = _ReferenceRT([32, 64, 128, 256], out_shapes=[16, 8, 4, 2], num_classes=10)
    mine = {original_name(k): v for k, v in ours.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in mine.items()} == {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    _randomize_norms(ours, torch.Generator().manual_seed(2))
    reference.load_state_dict({original_name(k): v for k, v in ours.state_dict().items()})
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad(), _steps_of(reference, list(ours.layer_names)) as steps:
        out = ours(x, record=list(ours.layer_names))
        expected = reference(x)
    torch.testing.assert_close(out.logits[0], expected, rtol=1e-5, atol=1e-5)
    for area in ours.layer_names:  # 5 steps of every area, t = 0 included
        assert out.recorded[area].shape[0] == 5
        torch.testing.assert_close(out.recorded[area], torch.stack(steps[area]), rtol=1e-5, atol=1e-5)
    # the unrolling is biological: at t = 0 the areas above V1 do not depend on the image
    with torch.no_grad():
        other = ours(torch.randn(2, 3, 64, 64), record=["V2", "IT"])
    torch.testing.assert_close(other.recorded["V2"][0], out.recorded["V2"][0])
    assert not torch.allclose(other.recorded["V2"][1], out.recorded["V2"][1])
    torch.testing.assert_close(other.recorded["IT"][2], out.recorded["IT"][2])  # IT first sees the image at t = 3
    assert not torch.allclose(other.recorded["IT"][3], out.recorded["IT"][3])


def test_cornet_rt_refuses_widths_groupnorm_cannot_split():
    from neurozoo.datasets.errors import SpecError

    with pytest.raises(SpecError, match=r"GroupNorm\(32\).*16"):
        cornet_rt(width_multiplier=0.25)


@pytest.mark.parametrize("name", ["cornet_z", "cornet_s", "cornet_rt"])
def test_a_cornet_refuses_an_override_it_does_not_take(name):
    """`zoo score cornet_z BENCHMARK --set n_steps=10` ended in a TypeError traceback; a ConvRNN's unknown override is
    a SpecError naming the valid ones (exit 2, one line). The registry checks them, as it checks every registry's
    factory (datasets.registry.forwards_keywords), not a check of the CORnets' own beside it."""
    from neurozoo import convrnn
    from neurozoo.datasets.errors import SpecError
    from neurozoo.datasets.registry import accepted_keywords

    takes = ["num_classes", "width_multiplier", *([] if name == "cornet_z" else ["times"])]
    assert accepted_keywords(convrnn.MODELS.get(name).factory) == takes
    with pytest.raises(SpecError, match=rf"^ConvRNN model '{name}': unknown override \['n_steps'\]; it takes: "
                                        rf"{', '.join(takes)}$"):
        convrnn.create_model(name, n_steps=10)
    assert convrnn.create_model(name, width_multiplier=0.5, num_classes=3).readout.out_features == 3


def test_a_cornet_is_refused_where_a_graph_spec_is_needed():
    """A search space with `base: cornet_s` (or a wiring taken from a CORnet) ended in AttributeError: 'CORnetS'
    object has no attribute 'spec'."""
    from neurozoo.convrnn.models import get_spec
    from neurozoo.convrnn.search.space import _load_base
    from neurozoo.datasets.errors import SpecError

    with pytest.raises(SpecError, match=r"model 'cornet_s' \(CORnetS\) is not built from a graph spec"):
        _load_base("cornet_s", "space.yaml", None)
    assert get_spec("rgc_resnet18").layer_names  # a ConvRNN built from timm still has its spec


def test_cornet_z_and_rt_have_the_originals_parameter_counts():
    """The original's full-size CORnet_Z() and CORnet_RT() (1000 classes): their parameter counts, built from the
    references at the original's widths (the repository states none)."""
    with torch.device("meta"):
        pairs = {"Z": (cornet_z(), _reference_z([64, 128, 256, 512])),
                 "RT": (cornet_rt(), _ReferenceRT([64, 128, 256, 512], out_shapes=[56, 28, 14, 7]))}
    counts = {name: [sum(p.numel() for p in m.parameters()) for m in pair] for name, pair in pairs.items()}
    assert counts == {"Z": [2_071_656, 2_071_656], "RT": [5_208_936, 5_208_936]}


def test_the_full_size_rt_keeps_the_originals_zero_input_shapes():
    """At 224 px the original's zero inputs at t = 0 are 56, 28, 14, 7 pixels: ours are computed, and equal."""
    model = cornet_rt(num_classes=3)
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 224, 224), record=list(model.layer_names))
    assert [tuple(out.recorded[a].shape[-2:]) for a in model.layer_names] == [(56, 56), (28, 28), (14, 14), (7, 7)]
