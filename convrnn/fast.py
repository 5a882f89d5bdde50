"""The fast path of a ConvRNN: same weights, same function, less time per image.

``model.to_fast()`` (or ``make_fast(model)``) switches a built model in place to

* bfloat16 autocast around the whole unroll (``dtype``; parameters stay float32 for the optimizer),
* channels-last memory format for weights and inputs (cuDNN's fast layout for bf16 convolutions),
* fused convolutions: the RGC's two convolutions of its input run as one (``fuse_inputs``); ``fuse_gates=True``
  (off by default) runs each pair of separable gate convolutions that read the same state (c: cell tau and
  output gate; h: output tau and cell gate) as one depthwise and one pointwise convolution: fewer launches, but
  a depthwise convolution with channel multiplier 2 is slower than two with multiplier 1 on both devices
  measured (oneDNN on a CPU: 3-5x; on an H200, bf16 channels-last, rgc_intermediate's gate shapes at 224 px,
  batch 64: 509 ms a training step against 133 ms, PyTorch's generic depthwise kernels instead of cuDNN's;
  ``benchmarks/perf/depthwise_conv_speed.py``),
* shared image-free steps (``share_image_free_steps``, off by default): a layer's steps before the image
  reaches it (layer l, counting from 0, at steps t < l) depend only on the biases and the blank standins, so
  they are computed for one image and broadcast to the batch (on rgc_intermediate at 13 steps about a third
  of the work; the values agree with the per-image computation to float rounding; the shared one-image steps
  run eagerly, also with ``compile="step"``),
* ``torch.compile`` of the per-layer step update (``convrnn.network.layer_update``) with ``compile="step"``: one
  compiled function per layer, each with its own code object, compiled only for the steady step (state and every
  feedback source present); the first steps (no state, zero standin, feedback not yet arrived) and shared
  one-image steps run eagerly, and the blank frame is materialised in the image's layout. One graph per layer and
  grad mode: rgc_intermediate at width 0.25 on a CPU went from 20 graphs to 10 and its first training step (64 px,
  batch 2, 17 steps, Inductor, cold cache) from 133 s to 74 s; the next steps are as fast as eager ones (0.27 s).
  Not the default (``compile="none"``): the compiled steps gained nothing wherever measured, on that CPU and on an
  H200 (137 training images/s against 157-205 eager, after 88 s of compiling; the step is host-bound, with 170
  compiled calls a forward each checking its guards). ``compile="model"`` compiles the whole unroll instead (longer
  compile, one graph),
* CUDA graphs through ``mode="reduce-overhead"`` (``cudagraphs=True``; GPU only). Not for training with
  ``compile="step"``: the per-layer graphs cannot replay while the earlier steps' backward is pending (PyTorch
  falls off its CUDA-graph fast path), and rgc_intermediate trained at 5 images/s on an H200 against 193 eager.
  What removes the host's launch overhead in training is capturing the whole eager training step in one graph
  (``benchmarks/perf/convrnn_gpu_speed.py --cuda-graph``: 255 images/s at batch 64, 1.33x eager).

Nothing in the time loop synchronises with the host: layers start on step indices (which layers
have received input), never on tensor values, and there is no ``.item()``. ``model.to_reference()``
turns the fast path off again. The reference path stays the default of ``create_model``.
"""
from __future__ import annotations

import contextlib
import types
import warnings
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional

import torch

from neurozoo.convrnn.cells import ReciprocalGatedCell
from neurozoo.convrnn.network import ConvRNN, layer_update

SCOPES = ("step", "model", "none")


@dataclass
class FastOptions:
    dtype: Optional[torch.dtype] = torch.bfloat16
    channels_last: bool = True
    fuse_inputs: bool = True
    fuse_gates: bool = False
    share_image_free_steps: bool = False
    compile: str = "none"  # none | step | model
    mode: Optional[str] = None  # torch.compile mode; "reduce-overhead" adds CUDA graphs
    updates: Dict[str, Callable] = field(default_factory=dict)

    def autocast(self, x: torch.Tensor):
        if self.dtype is None or self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(x.device.type, dtype=self.dtype)

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x


def make_fast(model: ConvRNN, *, dtype: Optional[torch.dtype] = torch.bfloat16, channels_last: bool = True,
              fuse_inputs: bool = True, fuse_gates: bool = False, share_image_free_steps: bool = False,
              compile: str = "none", mode: Optional[str] = None,
              cudagraphs: bool = False, backend: str = "inductor", fullgraph: bool = True) -> ConvRNN:
    """Switch ``model`` to the fast path in place and return it.

    ``dtype=None`` keeps float32 (for exact comparisons with the reference path); ``compile`` is ``"none"``
    (the default), ``"step"`` (per-layer step update), ``"model"`` (the whole module: returns the compiled wrapper,
    ``model`` itself is switched too); ``cudagraphs=True`` is ``mode="reduce-overhead"`` (with a compiled scope).
    ``fullgraph=True`` makes a graph break an error: a step that needed the host would break the graph."""
    if compile not in SCOPES:
        raise ValueError(f"compile={compile!r}: expected one of {SCOPES}")
    if cudagraphs:
        if compile == "step":
            warnings.warn("cudagraphs=True with compile='step' records one CUDA graph per layer's step, which cannot "
                          "replay while the earlier steps' backward is pending: training rgc_intermediate this way ran "
                          "at 5 images/s on an H200 against 193 eager. For training, capture the whole eager step in "
                          "one graph instead (benchmarks/perf/convrnn_gpu_speed.py --cuda-graph)", stacklevel=2)
        if not any(p.is_cuda for p in model.parameters()):
            raise ValueError("cudagraphs=True needs the model on a GPU: move it with .to('cuda') before to_fast()")
        if compile == "none":
            raise ValueError("cudagraphs=True records the compiled steps' CUDA graphs: pass compile='step' or 'model'")
        mode = "reduce-overhead"
    to_reference(model)
    options = FastOptions(dtype=dtype, channels_last=channels_last, fuse_inputs=fuse_inputs, fuse_gates=fuse_gates,
                          share_image_free_steps=share_image_free_steps, compile=compile, mode=mode)
    for module in model.modules():
        if isinstance(module, ReciprocalGatedCell):
            module.fuse_inputs, module.fuse_gates = fuse_inputs, fuse_gates
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if compile == "step":
        for name in model.layer_names:
            options.updates[name] = _per_layer(name, dynamic=False, mode=mode, backend=backend, fullgraph=fullgraph)
    else:
        options.updates = {name: layer_update for name in model.layer_names}
    model._fast = options
    if compile == "model":
        return torch.compile(model, dynamic=False, mode=mode, backend=backend)
    return model


def _update(layer, merge, ff, sources, state):
    return layer_update(layer, merge, ff, sources, state)


def _per_layer(name: str, **compile_options) -> Callable:
    """Layer ``name``'s step update: compiled for the steady pattern (state and every feedback source present),
    eager for the first steps (no state yet, the zero standin input, feedback not yet arrived).

    The compiled function gets its own code object: dynamo caches graphs per code object, so with one shared
    code object every layer's graphs formed one guard chain (and counted against one recompile limit)."""
    code = _update.__code__.replace(co_name=f"layer_update_{name}", co_qualname=f"layer_update_{name}")
    steady = torch.compile(types.FunctionType(code, _update.__globals__, code.co_name), **compile_options)

    def update(layer, merge, ff, sources, state):
        if state is None or any(source is None for source in sources.values()):
            return layer_update(layer, merge, ff, sources, state)
        return steady(layer, merge, ff, sources, state)

    return update


def to_reference(model: ConvRNN) -> ConvRNN:
    """Back to the reference path (float32 autocast off, separate input convolutions, eager)."""
    model._fast = None
    for module in model.modules():
        if isinstance(module, ReciprocalGatedCell):
            module.fuse_inputs = module.fuse_gates = False
    return model
