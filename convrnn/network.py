"""The biologically unrolled ConvRNN built from a GraphSpec.

Timing (REFERENCE.md section 1): the frame shown at step t is the output of position 0 at t.
Layer l (position l in the chain) at step t reads position l-1's output from step t-1, its own
cell state from step t-1, and each feedback source's output from step t-delay. The readout reads
the last layer at t-1. So layer l first outputs at t = l, the first logits that depend on the image
come at t = L + 1, and a feedback edge changes its target one step after its source changes.

A layer that has not been reached yet is *silent*: its output is exactly zero and it is not
computed (a convolution of zeros would otherwise emit its bias before any signal arrives).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from neurozoo.convrnn.cells import create_cell
from neurozoo.convrnn.spec import GraphSpec, LayerSpec
from neurozoo.datasets.errors import SpecError

#: Mean gray (0.5 in [0, 1] pixels) after ImageNet normalisation, per RGB channel.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class UnrollOutput:
    logits: torch.Tensor  # (T, B, num_classes)
    recorded: Dict[str, torch.Tensor] = field(default_factory=dict)  # layer -> (T, B, C, H, W)
    first_readout_step: int = 0

    @property
    def final_logits(self) -> torch.Tensor:
        return self.logits[-1]


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


class ConvStage(nn.Sequential):
    """The feedforward part of a layer: convolution, normalisation, activation."""

    def __init__(self, in_channels: int, spec: LayerSpec, norm: str, activation: str):
        super().__init__(
            nn.Conv2d(in_channels, spec.channels, spec.kernel, spec.stride, padding=spec.kernel // 2, bias=norm == "none"),
            _norm(norm, spec.channels),
            _activation(activation),
        )


class FeedbackMerge(nn.Module):
    """Long-range feedback into one target: sources resized to the target's size (bilinear,
    align corners), concatenated with the target's feedforward input, and a 1x1 convolution.
    Identity-projection edges are added instead (equal channels checked by the spec)."""

    def __init__(self, target_channels: int, conv_sources: Sequence[Tuple[str, int]], identity_sources: Sequence[str]):
        super().__init__()
        self.conv_sources = [name for name, _ in conv_sources]
        self.source_channels = dict(conv_sources)
        self.identity_sources = list(identity_sources)
        in_channels = target_channels + sum(c for _, c in conv_sources)
        self.project = nn.Conv2d(in_channels, target_channels, 1) if conv_sources else None

    def forward(self, x: torch.Tensor, sources: Dict[str, Optional[torch.Tensor]]) -> Optional[torch.Tensor]:
        size = x.shape[-2:]
        out = None
        if self.project is not None:
            parts = [x]
            any_signal = False
            for name in self.conv_sources:
                src = sources.get(name)
                if src is None:
                    parts.append(x.new_zeros(x.shape[0], self.source_channels[name], *size))
                else:
                    any_signal = True
                    parts.append(_resize(src, size))
            if any_signal:
                out = self.project(torch.cat(parts, dim=1))
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
    def __init__(self, name: str, stage: nn.Module, channels: int, cell_config: Optional[dict], pool: Optional[dict]):
        super().__init__()
        self.name = name
        self.stage = stage
        self.channels = channels
        config = dict(cell_config or {"kind": "identity"})
        kind = config.pop("kind")
        self.cell = create_cell(kind, channels, **config)
        self.recurrent = kind != "identity"
        self.pool = (
            nn.MaxPool2d(pool["kernel"], pool["stride"], padding=pool.get("padding", pool["kernel"] // 2))
            if pool
            else nn.Identity()
        )


class ConvRNN(nn.Module):
    def __init__(self, spec: GraphSpec, backbone_stages: Optional[Dict[str, Tuple[nn.Module, int]]] = None):
        super().__init__()
        spec.validate()
        self.spec = spec
        self.n_steps = spec.n_steps
        self.image_steps = spec.image_steps
        self.layer_names = spec.layer_names
        self.register_buffer("gray", _gray(spec.input_channels), persistent=False)
        layers = {}
        channels = spec.input_channels
        for layer_spec in spec.layers:
            if layer_spec.timm_stage is not None:
                if not backbone_stages or layer_spec.timm_stage not in backbone_stages:
                    raise SpecError(f"spec {spec.name!r}: no timm stage {layer_spec.timm_stage!r} in {spec.timm_backbone}")
                stage, out_channels = backbone_stages[layer_spec.timm_stage]
            else:
                stage, out_channels = ConvStage(channels, layer_spec, spec.norm, spec.activation), layer_spec.channels
            layers[layer_spec.name] = Layer(layer_spec.name, stage, out_channels, layer_spec.cell, layer_spec.pool)
            channels = out_channels
        self.layers = nn.ModuleDict(layers)
        self.feedback = nn.ModuleDict()
        for target in spec.layer_names:
            edges = [e for e in spec.feedback if e.target == target]
            if not edges:
                continue
            conv_sources = [(e.source, self.layers[e.source].channels) for e in edges if e.projection == "conv1x1"]
            identity_sources = [e.source for e in edges if e.projection == "identity"]
            self.feedback[target] = FeedbackMerge(self.layers[target].channels, conv_sources, identity_sources)
        self.readout = nn.Linear(channels, spec.num_classes)
        self._order = spec.compute_order()
        self._edges = {t: [(e.source, e.delay) for e in spec.feedback if e.target == t] for t in spec.layer_names}
        self._max_delay = max([e.delay for e in spec.feedback] + [1])
        self._fast = None  # a convrnn.fast.FastOptions once to_fast() was called; None: the reference path
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        for name, module in self.named_modules():
            if isinstance(module, nn.Conv2d) and name.startswith("layers.") and ".stage." in name and not self.spec.timm_backbone:
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        nn.init.normal_(self.readout.weight, std=0.01)
        nn.init.zeros_(self.readout.bias)

    # ------------------------------------------------------------------ timing facts
    @property
    def first_readout_step(self) -> int:
        """First step whose logits depend on the image: the readout is one edge after the last layer."""
        return len(self.layer_names) + 1

    def first_output_step(self, layer: str) -> int:
        return self.layer_names.index(layer) + 1

    # ------------------------------------------------------------------ forward
    def frames(self, images: torch.Tensor, n_steps: int, image_steps: int) -> List[Optional[torch.Tensor]]:
        """Per-step inputs: the image for steps < image_steps, mean gray after."""
        gray = self.gray.to(images.dtype).expand_as(images)
        return [images if t < image_steps else gray for t in range(n_steps)]

    def to_fast(self, **options) -> "ConvRNN":
        """Switch this model to the fast path in place (see ``convrnn.fast.make_fast``); returns it."""
        from neurozoo.convrnn.fast import make_fast

        return make_fast(self, **options)

    def forward(
        self,
        x: torch.Tensor,
        n_steps: Optional[int] = None,
        image_steps: Optional[int] = None,
        record: Union[Iterable[str], str, None] = None,
    ) -> UnrollOutput:
        if self._fast is not None:
            with self._fast.autocast(x):
                return self._unroll(self._fast.prepare_input(x), n_steps, image_steps, record)
        return self._unroll(x, n_steps, image_steps, record)

    def _unroll(self, x, n_steps, image_steps, record) -> UnrollOutput:
        if x.dim() == 5:
            frames = list(x.unbind(0))
            if n_steps is not None and n_steps != len(frames):
                raise ValueError(f"a movie of {len(frames)} frames was given with n_steps={n_steps}")
            n_steps = len(frames)
        elif x.dim() == 4:
            n_steps = self.n_steps if n_steps is None else n_steps
            image_steps = self.image_steps if image_steps is None else min(image_steps, n_steps)
            frames = self.frames(x, n_steps, image_steps)
        else:
            raise ValueError(f"expected images (B, C, H, W) or a movie (T, B, C, H, W), got shape {tuple(x.shape)}")
        record = [record] if isinstance(record, str) else list(record or [])
        for name in record:
            if name not in self.layers:
                raise SpecError(f"cannot record unknown layer {name!r}; layers: {', '.join(self.layer_names)}")

        names = self.layer_names
        batch = frames[0].shape[0]
        history: List[Dict[str, Optional[torch.Tensor]]] = []  # outputs at recent steps, newest last
        states: Dict[str, Optional[tuple]] = {n: None for n in names}
        logits, recorded = [], {n: [] for n in record}
        zero_logits = self.readout.bias.expand(batch, -1)
        previous: Dict[str, Optional[torch.Tensor]] = {n: None for n in names}
        previous_frame: Optional[torch.Tensor] = None
        for t in range(n_steps):
            current: Dict[str, Optional[torch.Tensor]] = {}
            for name in self._order:
                index = names.index(name)
                ff = previous_frame if index == 0 else previous[names[index - 1]]
                sources = {src: (current.get(src) if delay == 0 else _lookup(history, previous, delay, src))
                           for src, delay in self._edges[name]}
                current[name] = self._layer_step(name, ff, sources, states)
            last = previous[names[-1]]
            logits.append(zero_logits if last is None else self.readout(last.mean(dim=(-2, -1))))
            for name in record:
                recorded[name].append(current[name])
            history.append(previous)
            if len(history) > self._max_delay:
                history.pop(0)
            previous, previous_frame = current, frames[t]
        out = UnrollOutput(torch.stack(logits), first_readout_step=self.first_readout_step)
        for name in record:
            steps = recorded[name]
            template = next((s for s in steps if s is not None), None)
            if template is None:
                template = self._silent_output(name, frames[0])
            out.recorded[name] = torch.stack([s if s is not None else torch.zeros_like(template) for s in steps])
        return out

    def _layer_step(self, name, ff, sources, states) -> Optional[torch.Tensor]:
        layer = self.layers[name]
        has_feedback = any(s is not None for s in sources.values())
        if ff is None and states[name] is None and not has_feedback:
            return None  # silent: nothing has reached this layer yet
        if ff is None:
            raise SpecError(
                f"layer {name!r} receives feedback or skip input at a step before its feedforward input arrives; "
                "give that edge a longer delay"
            )
        update = self._fast.updates[name] if self._fast is not None else layer_update
        out, states[name] = update(layer, self.feedback[name] if name in self.feedback else None, ff, sources,
                                   states[name])
        return out

    @torch.no_grad()
    def _silent_output(self, name: str, frame: torch.Tensor) -> torch.Tensor:
        probe = self.forward(frame[:1], n_steps=self.first_output_step(name) + 1, image_steps=1, record=[name])
        return torch.zeros_like(probe.recorded[name][-1]).expand(frame.shape[0], *probe.recorded[name].shape[2:]).clone()


def layer_update(layer: Layer, merge: Optional[FeedbackMerge], ff: torch.Tensor,
                 sources: Dict[str, Optional[torch.Tensor]], state: Optional[tuple]):
    """One layer at one step: feedforward stage, feedback merge, cell, pool -> (output, new cell state).

    Branches only on which inputs exist (None), never on tensor values, so it compiles to one graph
    per pattern of present inputs (the fast path compiles it per layer)."""
    x = layer.stage(ff)
    feedback = merge(x, sources) if merge is not None else None
    out, new_state = layer.cell(x, state, feedback=feedback)
    return layer.pool(out), new_state


def _lookup(history, previous, delay, source):
    """Output of ``source`` ``delay`` steps before the current one (None if not yet produced)."""
    if delay == 1:
        return previous[source]
    if delay - 1 > len(history):
        return None
    return history[-(delay - 1)].get(source)


def _gray(channels: int) -> torch.Tensor:
    if channels == 3:
        values = [(0.5 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)]
    else:
        values = [0.0] * channels
    return torch.tensor(values).view(1, channels, 1, 1)


def max_confidence_decoder(logits: torch.Tensor, first_step: int = 0) -> torch.Tensor:
    """Per sample, the logits of the step whose softmax is most confident (steps >= first_step).

    logits: (T, B, K) -> (B, K)."""
    candidates = logits[first_step:]
    confidence = candidates.softmax(-1).amax(-1)  # (T', B)
    best = confidence.argmax(0)  # (B,)
    return candidates[best, torch.arange(candidates.shape[1], device=logits.device)]
