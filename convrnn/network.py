"""The biologically unrolled ConvRNN built from a GraphSpec, timed as the original (convrnns utils/main.py, unroll,
lines 190-258).

Timing: every node runs at every step from t = 0. Layer 1 (conv1) reads the frame of step t at step t; layer l > 1
reads layer l-1's output of step t-1, its own state of step t-1, and each feedback source's output of step
t-delay. Before a source has produced anything (t = 0) the input is zeros (the original's ``input_init`` zeros
"standins"), so biases drive the layers from the first step. The readout reads the last layer at t-1. So the
image reaches layer l (counting from 1) at t = l-1, and the first logits that depend on it come at t = L
(``first_readout_step``; L = 10 for the intermediate models, whose 17 steps are the original's 17). A skip edge
(a lower source, any delay) or a zero-delay edge can bring it sooner (``GraphSpec.image_arrival``).

Within a layer (models/*.json: harbor, pre_memory, memory, post_memory; e.g. models/ugrnn_intermediate.json node
conv4, lines 222-309): the feedback sources are resized (bilinear, align corners: utils/cell_utils.py
input_aggregator line 475) to the size of the layer's input and concatenated (line 517, the feedforward input first,
lines 498-499) in the order of their names (utils/main.py line 252), the
feedforward convolution runs on the feedforward input only, the cell gets the convolution's output, the layer's
input (for the bypass) and the feedback, then an optional post block (convolution, residual add of the layer's
input, ELU) and a TensorFlow-SAME max pool.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from neurozoo.convrnn.cells import ResidualAdd, create_cell, variance_scaling_, zeros_as
from neurozoo.convrnn.spec import GraphSpec, LayerSpec, check_decoder_window
from neurozoo.datasets.errors import SpecError

#: ImageNet normalisation (the original's run_model.py normalize_ims, lines 8-21; mean and std lines 18-19).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class UnrollOutput:
    logits: torch.Tensor  # (T, B, num_classes)
    recorded: Dict[str, torch.Tensor] = field(default_factory=dict)  # layer -> (T, B, C, H, W)
    first_readout_step: int = 0
    decoded: Optional[torch.Tensor] = None  # (B, num_classes) from the model's temporal decoder, if any

    @property
    def final_logits(self) -> torch.Tensor:
        return self.decoded if self.decoded is not None else self.logits[-1]


def check_finite_images(x: torch.Tensor) -> None:
    """``ValueError`` for images (B, C, H, W) or a movie (T, B, C, H, W) holding NaN or inf, naming the images.

    A NaN pixel reaches every unit downstream of it (convolutions, ReLU, max-pools, norms, the cells and the
    decoders all propagate it: measured on every registered model, eager and fast, float32 and bfloat16), so it is not
    swallowed; but only the logits of the steps the image has reached are NaN: ``out.logits`` of the steps before
    ``first_readout_step`` read the empty start and stay finite, so a corrupt image could pass for a valid one where
    those steps were read. Refused here at the public entry instead. One check per call (a host sync on a GPU, none
    inside the unrolled loop), of the pixels' sum first: 64 images of 224 x 224 on one CPU thread 1.7 ms, where
    ``isfinite(x).all()`` took 68 ms (2026-12-05). Skipped while torch.compile traces or a CUDA graph captures, where
    it cannot branch, and for meta tensors (shapes and FLOP counts without values)."""
    if x.is_meta or torch.compiler.is_compiling() or (x.is_cuda and torch.cuda.is_current_stream_capturing()):
        return
    if not bool(may_hold_non_finite(x)):
        return
    bad = non_finite_images(x)  # or finite pixels whose sum overflowed (values near 1e38): none then
    if bad:
        raise ValueError(f"images: {len(bad)} of {x.shape[0 if x.dim() == 4 else 1]} hold NaN/inf values (batch index "
                         f"{bad[:3]}{' ...' if len(bad) > 3 else ''}); expected finite pixels")


def may_hold_non_finite(x: torch.Tensor) -> torch.Tensor:
    """A one-element bool tensor on ``x``'s device, not read back: whether the sum of ``x`` (in at least float32) is
    not finite, which any NaN or infinity in ``x`` makes it. One pass without a boolean tensor of ``x``'s size; finite
    values whose sum overflows (near 1e38) make it True as well, so :func:`non_finite_images` decides."""
    return torch.isfinite(x.sum(dtype=torch.promote_types(x.dtype, torch.float32))).logical_not()


def non_finite_images(x: torch.Tensor) -> List[int]:
    """The batch indices of the images (B, C, H, W) or movies (T, B, C, H, W) that hold a NaN or an infinity."""
    per_image = torch.isfinite(x if x.dim() != 5 else x.transpose(0, 1)).flatten(1).all(1)
    return (~per_image).nonzero()[:, 0].tolist()


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        # GroupNorm(32) as in CORnet-RT, with at least 4 channels per group for narrow test models
        groups = next(g for g in (32, 16, 8, 4, 2, 1) if channels % g == 0 and channels // g >= min(4, channels))
        return nn.GroupNorm(groups, channels)
    return nn.Identity()


def _activation(kind: str) -> nn.Module:
    return {"relu": nn.ReLU, "elu": nn.ELU, "gelu": nn.GELU, "identity": nn.Identity}[kind]()


def same_pads(size: int, kernel: int, stride: int) -> Tuple[int, int]:
    """TensorFlow 'SAME' padding (before, after) of one dimension: output ceil(size / stride)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class TFSameConv2d(nn.Conv2d):
    """A convolution with TensorFlow 'SAME' padding for any stride (conv1: 7x7 stride 2 pads 2 before, 3 after
    on 224 px)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1, bias: bool = True):
        super().__init__(in_channels, out_channels, kernel, stride, padding=0, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        top, bottom = same_pads(x.shape[-2], kh, sh)
        left, right = same_pads(x.shape[-1], kw, sw)
        if top == bottom and left == right:
            return F.conv2d(x, self.weight, self.bias, self.stride, (top, left))
        return super().forward(F.pad(x, (left, right, top, bottom)))


class SameMaxPool2d(nn.Module):
    """``tf.nn.max_pool(padding="SAME")``: padding never wins the max; 2x2 stride 2 gives 112->56->28->14->7->4.
    ``padding`` (an int) gives PyTorch's symmetric padding instead."""

    def __init__(self, kernel: int, stride: int, padding: Optional[int] = None):
        super().__init__()
        self.kernel, self.stride, self.padding = int(kernel), int(stride), padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding is not None:
            return F.max_pool2d(x, self.kernel, self.stride, self.padding)
        top, bottom = same_pads(x.shape[-2], self.kernel, self.stride)
        left, right = same_pads(x.shape[-1], self.kernel, self.stride)
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom), value=float("-inf"))
        return F.max_pool2d(x, self.kernel, self.stride)

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}, stride={self.stride}, padding={'SAME' if self.padding is None else self.padding}"


class ConvStage(nn.Sequential):
    """The feedforward part of a layer: convolution (TensorFlow SAME), normalisation, activation."""

    def __init__(self, in_channels: int, spec: LayerSpec, norm: str, activation: str):
        super().__init__(
            TFSameConv2d(in_channels, spec.channels, spec.kernel, spec.stride, bias=norm == "none"),
            _norm(norm, spec.channels),
            _activation(activation),
        )


class PostBlock(nn.Module):
    """post_memory of the time-decay / UGRNN backbones (models/ugrnn_intermediate.json, e.g. node conv4 lines
    277-291): a 3x3 convolution (lines 279-284), ``residual_add`` of the layer's input (lines 286-288), ELU (lines
    289-291)."""

    def __init__(self, in_channels: int, channels: int, kernel: int = 3, residual: bool = True, activation: str = "elu",
                 stride: int = 1):
        super().__init__()
        self.conv = TFSameConv2d(channels, channels, kernel)
        self.residual = ResidualAdd(in_channels, channels, stride) if residual else None
        self.activation = _activation(activation)

    def forward(self, out: torch.Tensor, res_input: torch.Tensor) -> torch.Tensor:
        out = self.conv(out)
        if self.residual is not None:
            out = self.residual(out, res_input)
        return self.activation(out)


class ConvReadout(nn.Conv2d):
    """models/rgc_shallow.json "imnetds" (lines 412-465): a k x k VALID convolution (lines 437-448), then global
    average pooling (lines 456-459). An input
    smaller than the kernel (images under 224 px) is zero-padded after to the kernel's size, where the original
    would fail."""

    def __init__(self, channels: int, num_classes: int, kernel: int):
        super().__init__(channels, num_classes, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        short_h, short_w = (max(0, k - n) for k, n in zip(self.kernel_size, x.shape[-2:]))
        if short_h or short_w:
            x = F.pad(x, (0, short_w, 0, short_h))
        return super().forward(x).mean(dim=(-2, -1))


class FeedbackMerge(nn.Module):
    """Long-range feedback into one target: each source resized to the target's input size (bilinear, align
    corners) and concatenated in sorted-name order (the original's ``sorted(G.predecessors(node))``). A cell that
    owns its feedback convolution (the RGC) gets the concatenation; for other cells a 1x1 convolution with a bias
    projects it onto the layer's channels, to be added to the cell's input. Identity-projection edges are added
    (equal channels checked by the spec)."""

    def __init__(self, target_channels: int, conv_sources: Sequence[Tuple[str, int]], identity_sources: Sequence[str],
                 project: bool):
        super().__init__()
        ordered = sorted(conv_sources)
        self.conv_sources = [name for name, _ in ordered]
        self.source_channels = dict(ordered)
        self.identity_sources = list(identity_sources)
        self.concat_channels = sum(c for _, c in ordered)
        self.project = nn.Conv2d(self.concat_channels, target_channels, 1) if (project and ordered) else None
        if self.project is not None:
            nn.init.zeros_(self.project.bias)

    def forward(self, x: torch.Tensor, sources: Dict[str, Optional[torch.Tensor]]) -> Optional[torch.Tensor]:
        size = x.shape[-2:]
        out = None
        if self.conv_sources:
            parts = []
            for name in self.conv_sources:
                src = sources.get(name)
                parts.append(zeros_as(x, self.source_channels[name]) if src is None else _resize(src, size))
            out = torch.cat(parts, dim=1)
            if self.project is not None:
                out = self.project(out)
        for name in self.identity_sources:
            src = sources.get(name)
            if src is not None:
                out = _resize(src, size) if out is None else out + _resize(src, size)
        return out


def _resize(x: torch.Tensor, size) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)


class Layer(nn.Module):
    def __init__(self, name: str, stage: nn.Module, in_channels: int, channels: int, cell_config: Optional[dict],
                 pool: Optional[dict], post: Optional[dict] = None, feedback_channels: int = 0, stride: int = 1):
        super().__init__()
        self.name = name
        self.stage = stage
        self.channels = channels
        config = dict(cell_config or {"kind": "identity"})
        kind = config.pop("kind")
        self.cell = create_cell(kind, channels, in_channels=in_channels, in_stride=stride,
                                feedback_channels=feedback_channels, **config)
        self.recurrent = kind != "identity"
        self.channels = getattr(self.cell, "out_channels", channels)
        self.post = PostBlock(in_channels, channels, stride=stride, **post) if post else None
        self.pool = SameMaxPool2d(pool["kernel"], pool["stride"], pool.get("padding")) if pool else nn.Identity()


class ConvRNN(nn.Module):
    def __init__(self, spec: GraphSpec, backbone_stages: Optional[Dict[str, Tuple[nn.Module, int]]] = None):
        super().__init__()
        spec.validate()
        self.spec = spec
        self.n_steps = spec.n_steps
        self.image_steps = spec.image_steps
        self.layer_names = spec.layer_names
        self.register_buffer("gray", _blank(spec), persistent=False)
        out_channels: Dict[str, int] = {}
        channels = spec.input_channels
        stages = {}
        for layer_spec in spec.layers:
            if layer_spec.timm_stage is not None:
                if not backbone_stages or layer_spec.timm_stage not in backbone_stages:
                    raise SpecError(f"spec {spec.name!r}: no timm stage {layer_spec.timm_stage!r} in {spec.timm_backbone}")
                stages[layer_spec.name] = backbone_stages[layer_spec.timm_stage]
            else:
                activation = layer_spec.activation or spec.activation
                stages[layer_spec.name] = (ConvStage(channels, layer_spec, spec.norm, activation), layer_spec.channels)
            # a cell may change the depth (utils/cells.py ConvNormBasicCell's out_depth in simplernn_shallow, passed
            # from the JSON by tnn_ConvNormBasicCell, lines 2110-2117)
            channels = (layer_spec.cell or {}).get("out_depth") or stages[layer_spec.name][1]
            out_channels[layer_spec.name] = channels
        layers, merges = {}, {}
        previous = spec.input_channels
        for layer_spec in spec.layers:
            name = layer_spec.name
            edges = [e for e in spec.feedback if e.target == name]
            conv_sources = [(e.source, out_channels[e.source]) for e in edges if e.projection == "conv1x1"]
            identity_sources = [e.source for e in edges if e.projection == "identity"]
            stage, width = stages[name]
            kind = (layer_spec.cell or {}).get("kind", "identity")
            try:
                owns = bool(conv_sources) and create_cell_owns_feedback(kind)
                feedback_channels = sum(c for _, c in conv_sources) if owns else 0
                layers[name] = Layer(name, stage, previous, width, layer_spec.cell, layer_spec.pool, layer_spec.post,
                                     feedback_channels, stride=layer_spec.stride if layer_spec.timm_stage is None else 2)
            except SpecError as error:  # a cell's config is checked as the cell is built: name the layer
                raise SpecError(f"spec {spec.name!r}: layer {name!r}: {error}") from None
            if edges:
                merges[name] = FeedbackMerge(width, conv_sources, identity_sources, project=not owns)
            previous = out_channels[name]
        self.layers = nn.ModuleDict(layers)
        self.feedback = nn.ModuleDict(merges)
        self.readout = (nn.Linear(channels, spec.num_classes) if not spec.readout_kernel
                        else ConvReadout(channels, spec.num_classes, spec.readout_kernel))
        self.softmax_beta = None
        if spec.decoder == "max_conf":  # decoders.softmax(trainable=True): beta ~ U[0, 1)
            self.softmax_beta = nn.Parameter(torch.rand(1))
        self._order = spec.compute_order()
        self._edges = {t: [(e.source, e.delay) for e in spec.feedback if e.target == t] for t in spec.layer_names}
        self._max_delay = max([e.delay for e in spec.feedback] + [1])
        self._arrival = spec.image_arrival()  # first image-dependent step of each layer
        self._fast = None  # a convrnn.fast.FastOptions once to_fast() was called; None: the reference path
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        """The original's initialisers: feedforward convolutions variance scaling (scale 1, biases 0), the
        readout normal(0.01) with bias 1 (models/rgc_intermediate_t22.json imnetds fc, lines 748-757, gives no bias:
        utils/model_tool.py fc's default ``bias=1``, line 521); cells initialise themselves."""
        if not self.spec.timm_backbone:
            for layer in self.layers.values():
                for module in list(layer.stage.modules()) + (list(layer.post.conv.modules()) if layer.post else []):
                    if isinstance(module, nn.Conv2d):
                        variance_scaling_(module.weight, 1.0)
                        if module.bias is not None:
                            nn.init.zeros_(module.bias)
        for merge in self.feedback.values():
            if merge.project is not None:
                variance_scaling_(merge.project.weight, 1.0)
        if not self.readout.weight.is_meta:  # a meta tensor holds no values; its normal_ has no meta kernel but a
            # Python one whose first call imports torch._dynamo (1-4 s, in `zoo train SPEC.yaml`'s check_spec_builds)
            nn.init.normal_(self.readout.weight, std=0.01)
        nn.init.constant_(self.readout.bias, self.spec.readout_bias)

    def weight_decay_groups(self) -> List[dict]:
        """Optimizer parameter groups with the original's L2 scales: the cells' own (``cell.weight_decay`` on
        ``cell.decayed_parameters()``; 2.03e-4 for the median RGC), ``spec.backbone_weight_decay`` (1e-4 in the
        released JSONs) on the feedforward, post and readout weights and biases, none elsewhere."""
        groups: Dict[float, List[nn.Parameter]] = {}
        seen = set()

        def add(params, decay):
            for p in params:
                if id(p) not in seen:
                    seen.add(id(p))
                    groups.setdefault(float(decay), []).append(p)

        backbone = self.spec.backbone_weight_decay
        for layer in self.layers.values():
            add(layer.cell.decayed_parameters(), layer.cell.weight_decay)
            if not self.spec.timm_backbone:
                add(layer.stage.parameters(), backbone)
            if layer.post is not None:
                add(layer.post.conv.parameters(), backbone)
        add(self.readout.parameters(), backbone)
        add(self.parameters(), 0.0)
        return [{"params": params, "weight_decay": decay} for decay, params in groups.items() if params]

    # ------------------------------------------------------------------ timing facts
    @property
    def first_readout_step(self) -> int:
        """First step whose logits depend on the image: the readout reads the last layer one step after it
        (the last layer's :meth:`first_output_step` + 1; 10 for the intermediate models)."""
        return self._arrival[self.layer_names[-1]] + 1

    def first_output_step(self, layer: str) -> int:
        """First step at which ``layer``'s output depends on the image (it runs, on zeros, from t = 0): the
        shortest path from the image in steps (``GraphSpec.image_arrival``), through the chain and through
        feedback or skip edges of any delay (a skip conv1 -> conv3 of delay 1 brings it to conv3 at step 1)."""
        if layer not in self._arrival:
            raise SpecError(f"no layer named {layer!r}; layers: {', '.join(self.layer_names)}")
        return self._arrival[layer]

    # ------------------------------------------------------------------ forward
    def frames(self, images: torch.Tensor, n_steps: int, image_steps: int) -> List[Optional[torch.Tensor]]:
        """Per-step inputs: the image for steps < image_steps, the blank frame after (model_func.make_movie)."""
        gray = self.gray.to(images.dtype).expand_as(images)
        if self._fast is not None:  # one dense blank frame in the images' layout: a compiled step guards on strides
            gray = torch.empty_like(images).copy_(gray)
        return [images if t < image_steps else gray for t in range(n_steps)]

    def to_fast(self, **options) -> "ConvRNN":
        """Switch this model to the fast path in place (see ``convrnn.fast.make_fast``); returns it."""
        from neurozoo.convrnn.fast import make_fast

        return make_fast(self, **options)

    def to_reference(self) -> "ConvRNN":
        """Switch this model back to the reference path in place (see ``convrnn.fast.to_reference``); returns it."""
        from neurozoo.convrnn.fast import to_reference

        return to_reference(self)

    def forward(
        self,
        x: torch.Tensor,
        n_steps: Optional[int] = None,
        image_steps: Optional[int] = None,
        record: Union[Iterable[str], str, None] = None,
        on_step: Optional[Callable[[int, Dict[str, torch.Tensor]], None]] = None,
        readout: bool = True,
    ) -> UnrollOutput:
        """Unroll over ``n_steps``; ``out.recorded[layer]`` holds the ``record`` layers' outputs, (T, B, C, H, W).

        ``on_step(t, {layer: output})`` instead receives the ``record`` layers' outputs of each step as soon as
        the step is computed, and nothing is kept in ``out.recorded``: a consumer that reduces each step (the
        feature extraction) then never holds the layers' outputs over time.

        ``readout=False``: no logits (``out.logits`` is empty), and only the layer steps that a recorded output
        depends on are computed (:meth:`needed_layers`; the last steps skip the layers the recording no longer
        reads); the recorded values are the same."""
        if not isinstance(x, torch.Tensor):  # an AttributeError ("'numpy.ndarray' object has no attribute 'dim'")
            raise TypeError(f"expected images as a torch.Tensor (B, {self.spec.input_channels}, H, W) or a movie of "
                            f"them, got {type(x).__name__}")
        for name, steps in (("n_steps", n_steps), ("image_steps", image_steps)):
            if steps is not None and not isinstance(steps, numbers.Integral):  # a TypeError inside frames()
                raise ValueError(f"{name}: expected an integer, got {steps!r}")
        if self._fast is not None:
            with self._fast.autocast(x):
                return self._unroll(self._fast.prepare_input(x), n_steps, image_steps, record, on_step, readout)
        return self._unroll(x, n_steps, image_steps, record, on_step, readout)

    def _unroll(self, x, n_steps, image_steps, record, on_step=None, readout=True) -> UnrollOutput:
        if x.dim() in (4, 5) and x.shape[-3] != self.spec.input_channels:
            raise ValueError(f"expected {self.spec.input_channels}-channel images (B, {self.spec.input_channels}, H, W) "
                             f"or a movie of them, got shape {tuple(x.shape)}")
        if x.dim() == 5:
            frames = list(x.unbind(0))
            if n_steps is not None and n_steps != len(frames):
                raise ValueError(f"a movie of {len(frames)} frames was given with n_steps={n_steps}")
            n_steps = len(frames)
        elif x.dim() == 4:
            n_steps = self.n_steps if n_steps is None else n_steps
            image_steps = self.image_steps if image_steps is None else image_steps
            frames = self.frames(x, n_steps, min(image_steps, n_steps))
        else:
            raise ValueError(f"expected images (B, C, H, W) or a movie (T, B, C, H, W), got shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"expected floating-point (ImageNet-normalised) images, got dtype {x.dtype}")
        check_finite_images(x)
        if n_steps < 1 or (image_steps is not None and image_steps < 0):
            raise ValueError(f"need n_steps >= 1 (frames of a movie) and image_steps >= 0, got n_steps={n_steps}, "
                             f"image_steps={image_steps}")
        # once each: a layer named twice was appended twice a step, so its recording had 2 T steps, interleaved
        record = [record] if isinstance(record, str) else list(dict.fromkeys(record or []))
        for name in record:
            if name not in self.layers:
                raise SpecError(f"cannot record unknown layer {name!r}; layers: {', '.join(self.layer_names)}")

        names = self.layer_names
        batch = frames[0].shape[0]
        # fast path option: a layer's steps before the image reaches it are the same for every image, so they
        # are computed for one image and broadcast
        share = self._fast is not None and getattr(self._fast, "share_image_free_steps", False) and batch > 1
        needed = None if readout else self.needed_layers(record, n_steps)
        history: List[Dict[str, torch.Tensor]] = []  # outputs of steps t-2 .. t-max_delay, newest last
        states: Dict[str, Optional[tuple]] = {n: None for n in names}
        logits, recorded = [], {n: [] for n in record}
        previous: Dict[str, Optional[torch.Tensor]] = {n: None for n in names}
        release = self._last_reads() if self._max_delay == 1 else {}
        for t in range(n_steps):
            current: Dict[str, torch.Tensor] = {}
            for name in self._order:
                if needed is not None and name not in needed[t]:
                    continue
                index = names.index(name)
                ff = frames[t] if index == 0 else self._feedforward(names[index - 1], previous, current, share)
                sources = {src: (current.get(src) if delay == 0 else _lookup(history, previous, delay, src))
                           for src, delay in self._edges[name]}
                if share:
                    ff, sources, states[name] = _common_batch(ff, sources, states[name], self._fast.prepare_input)
                # shared (one-image) steps run eagerly: compiling them would add graphs for the one-image shapes
                current[name] = self._layer_step(name, ff, sources, states, eager=share and ff.shape[0] < batch)
                del ff, sources
                for source in release.get(name, ()):  # no later layer of this step reads it: free it now
                    previous.pop(source, None)
            if readout:
                last = previous[names[-1]]
                if last is None:
                    last = torch.zeros_like(current[names[-1]])
                step_logits = self.readout(last) if self.spec.readout_kernel else self.readout(last.mean(dim=(-2, -1)))
                logits.append(_to_batch(step_logits, batch))
            outputs = {name: _to_batch(current[name], batch) for name in record}
            if on_step is not None:
                on_step(t, outputs)
            else:
                for name in record:
                    recorded[name].append(outputs[name])
            del outputs
            if self._max_delay > 1:  # delay d reads history[-(d - 1)]: keep max_delay - 1 steps, not one more
                history.append(previous)
                if len(history) > self._max_delay - 1:
                    history.pop(0)
            previous = current
        out = UnrollOutput(torch.stack(logits) if logits else x.new_zeros(0, batch, self.spec.num_classes),
                           first_readout_step=self.first_readout_step)
        out.decoded = self.decode(out.logits) if readout else None
        if on_step is None:
            for name in record:
                out.recorded[name] = torch.stack(recorded[name])
        return out

    def needed_layers(self, record: Sequence[str], n_steps: int) -> List[set]:
        """Per step, the layers that the ``record`` layers' outputs (at every step up to ``n_steps - 1``) depend
        on: a layer at step t is needed if a needed layer reads it -- its own state and the next layer at t + 1,
        a feedback target at t + delay, a zero-delay target at t."""
        names = self.layer_names
        needed: List[set] = [set() for _ in range(n_steps)]
        for t in reversed(range(n_steps)):
            need = set(record)
            for target in needed[t + 1] if t + 1 < n_steps else ():  # its own state, and the layer below
                need.add(target)
                index = names.index(target)
                if index > 0:
                    need.add(names[index - 1])
            for target in names:
                for source, delay in self._edges[target]:
                    if delay >= 1 and t + delay < n_steps and target in needed[t + delay]:
                        need.add(source)
            grown = True
            while grown:  # zero-delay edges, and at t = 0 the feedforward source (its shape makes the zero standin)
                before = len(need)
                for target in list(need):
                    index = names.index(target)
                    need.update(source for source, delay in self._edges[target] if delay == 0)
                    if t == 0 and index > 0:
                        need.add(names[index - 1])
                grown = len(need) > before
            needed[t] = need
        return needed

    def _last_reads(self) -> Dict[str, List[str]]:
        """Layer -> the layers whose previous-step output no layer computed after it (in this step) reads.

        Without delays above one step, the unroll frees each previous output once its last reader has run,
        so a step holds about one set of layer outputs, not two (the last layer's stays for the readout)."""
        last_reader = {}
        for name in self._order:
            index = self.layer_names.index(name)
            if index > 0:
                last_reader[self.layer_names[index - 1]] = name
            for source, delay in self._edges[name]:
                if delay == 1:
                    last_reader[source] = name
        release: Dict[str, List[str]] = {}
        for source, reader in last_reader.items():
            if source != self.layer_names[-1]:
                release.setdefault(reader, []).append(source)
        return release

    @staticmethod
    def _feedforward(source: str, previous, current, share: bool = False) -> torch.Tensor:
        if previous.get(source) is not None:
            return previous[source]
        if source not in current:
            raise SpecError(f"layer {source!r} must be computed before the layer it feeds at t = 0 "
                            "(a zero-delay edge reorders the layers)")
        # t = 0: the original's zero standin (the same for every image: one image's when shared)
        return torch.zeros_like(current[source][:1] if share else current[source])

    def _layer_step(self, name, ff, sources, states, eager: bool = False) -> torch.Tensor:
        layer = self.layers[name]
        update = self._fast.updates[name] if self._fast is not None and not eager else layer_update
        out, states[name] = update(layer, self.feedback[name] if name in self.feedback else None, ff, sources,
                                   states[name])
        return out

    def decode(self, logits: torch.Tensor) -> Optional[torch.Tensor]:
        """The spec's temporal decoder (models/model_func.py lines 192-209, utils/decoders.py): None for "last" (the
        last step's logits); "max_conf" / "thresh" read steps [decoder_start, T)."""
        if self.spec.decoder == "last":
            return None
        check_decoder_window(self.spec, logits.shape[0], f"model {self.spec.name!r}")
        start = self.spec.decoder_first_step
        if self.spec.decoder == "max_conf":
            return max_confidence_decoder(logits, start, beta=self.softmax_beta)
        return threshold_decoder(logits, start)


def create_cell_owns_feedback(kind: str) -> bool:
    from neurozoo.convrnn.cells import cell_entry

    return bool(getattr(cell_entry(kind).resolve(), "owns_feedback", False))  # an unknown kind: a SpecError naming it


def layer_update(layer: Layer, merge: Optional[FeedbackMerge], ff: torch.Tensor,
                 sources: Dict[str, Optional[torch.Tensor]], state: Optional[tuple]):
    """One layer at one step: feedforward stage, feedback merge, cell (with the layer input for the bypass),
    post block, pool -> (output, new cell state).

    Branches only on which inputs exist (None), never on tensor values, so it compiles to one graph
    per pattern of present inputs (the fast path compiles only the steady one, per layer)."""
    x = layer.stage(ff)
    feedback = merge(x, sources) if merge is not None else None
    out, new_state = layer.cell(x, state, feedback=feedback, res_input=ff)
    if layer.post is not None:
        out = layer.post(out, ff)
    return layer.pool(out), new_state


def _to_batch(x: torch.Tensor, batch: int) -> torch.Tensor:
    """A shared (one-image) output broadcast to the batch (a view); other outputs unchanged."""
    return x.expand(batch, *x.shape[1:]) if x.shape[0] != batch else x


def _common_batch(ff: torch.Tensor, sources: Dict[str, Optional[torch.Tensor]], state: Optional[tuple],
                  prepare: Callable[[torch.Tensor], torch.Tensor]):
    """A layer's inputs with shared (one-image) and per-image tensors mixed: the shared ones repeated to the batch
    (in the fast path's memory format), so that the cell sees one batch size; unmixed inputs unchanged."""
    tensors = [ff, *(s for s in sources.values() if s is not None), *(state or ())]
    batch = max(x.shape[0] for x in tensors)
    if all(x.shape[0] == batch for x in tensors):
        return ff, sources, state

    def full(x):
        if x is None or x.shape[0] == batch:
            return x
        x = prepare(x.expand(batch, *x.shape[1:]))
        return x.contiguous() if x.stride(0) == 0 else x

    return full(ff), {k: full(v) for k, v in sources.items()}, None if state is None else tuple(full(s) for s in state)


def _lookup(history, previous, delay, source):
    """Output of ``source`` ``delay`` steps before the current one (None if not yet produced)."""
    if delay == 1:
        return previous.get(source)
    if delay - 1 > len(history):
        return None
    return history[-(delay - 1)].get(source)


def _blank(spec: GraphSpec) -> torch.Tensor:
    """The frame shown after ``image_steps``: the constant ``spec.blank`` in the model's (normalised) input space,
    as model_func.make_movie (0.5), or "mean_gray": pixel value 0.5 after ImageNet normalisation."""
    channels = spec.input_channels
    if spec.blank == "mean_gray":
        values = ([(0.5 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)] if channels == 3 else [0.0] * channels)
    else:
        values = [float(spec.blank)] * channels
    return torch.tensor(values).view(1, channels, 1, 1)


def _pick(candidates: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    return candidates[steps, torch.arange(candidates.shape[1], device=candidates.device)]


def max_confidence_decoder(logits: torch.Tensor, first_step: int = 0, beta: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Per sample, the logits of the step whose softmax(beta * logits) is most confident (steps >= first_step);
    utils/decoders.py max_confidence_decoder, lines 116-129 (beta: the trainable "softmax_beta", 1 when None).

    logits: (T, B, K) -> (B, K)."""
    candidates = logits[first_step:]
    scaled = candidates if beta is None else beta * candidates
    confidence = scaled.softmax(-1).amax(-1)  # (T', B)
    return _pick(candidates, confidence.argmax(0))


def threshold_decoder(logits: torch.Tensor, first_step: int = 0, threshold: float = 0.9) -> torch.Tensor:
    """utils/decoders.py threshold_decoder, lines 157-202 (not trainable): the first step whose top softmax
    probability reaches ``threshold``, else the most confident step."""
    candidates = logits[first_step:]
    top = candidates.softmax(-1).amax(-1)  # (T', B)
    steps = torch.arange(top.shape[0], device=logits.device).unsqueeze(1).expand_as(top)
    best = top.argmax(0).unsqueeze(0).expand_as(top)
    return _pick(candidates, torch.where(top >= threshold, steps, best).amin(0))
