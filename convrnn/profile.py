"""Parameter counts and FLOPs of an unrolled ConvRNN (``zoo info MODEL``)."""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict

import torch
from torch.utils.flop_counter import FlopCounterMode

from neurozoo.datasets.model_modes import eval_mode


def parameter_counts(model: torch.nn.Module) -> "OrderedDict[str, int]":
    """Trainable parameters per part, which sum to ``total``: each layer's feedforward stage, cell and post block
    (convolution + residual after the cell), the feedback into each target (the network's projection, or the
    feedback convolution of a cell that owns it, the RGC's, which is not counted in the cell), the readout and the
    max-confidence decoder's ``softmax_beta``."""
    counts: "OrderedDict[str, int]" = OrderedDict()
    feedback = {target: sum(p.numel() for p in merge.parameters()) for target, merge in model.feedback.items()}
    for name, layer in model.layers.items():
        counts[f"{name}.stage"] = _count(layer.stage)
        owned = _count(getattr(layer.cell, "feedback_conv", None))
        if owned:
            feedback[name] = feedback.get(name, 0) + owned
        cell = _count(layer.cell) - owned
        if cell:
            counts[f"{name}.cell"] = cell
        if layer.post is not None:
            counts[f"{name}.post"] = _count(layer.post)
    for target in model.feedback:
        counts[f"feedback->{target}"] = feedback[target]
    counts["readout"] = _count(model.readout)
    if getattr(model, "softmax_beta", None) is not None:
        counts["decoder"] = model.softmax_beta.numel()
    counts["total"] = sum(p.numel() for p in model.parameters())
    return counts


def _count(module) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def flops(model: torch.nn.Module, image_size: int = 224, n_steps: int = None) -> Dict[str, float]:
    """FLOPs (multiply-add = 2) per image of a forward pass, counted in one unrolled forward (the image at every
    step; an image and the blank frame cost the same).

    ``per_step`` is the steady-state cost of one step once every layer is active: that of step
    ``first_readout_step``, the first whose readout reads the last layer, read off the running count as each step
    ends (``on_step``); ``total`` is the whole unrolled forward over ``n_steps`` (every layer runs at every step)."""
    n_steps = n_steps or model.n_steps
    warm = model.first_readout_step
    counted = max(n_steps, warm + 1)
    ends = []  # the running count as each step ends
    x = torch.zeros(1, model.spec.input_channels, image_size, image_size)
    with eval_mode(model), FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x, n_steps=counted, image_steps=counted, on_step=lambda t, outputs: ends.append(counter.get_total_flops()))
    per_step = ends[warm] - (ends[warm - 1] if warm else 0)
    return {"per_step": float(per_step), "total": float(ends[n_steps - 1]), "n_steps": n_steps,
            "image_size": image_size}
