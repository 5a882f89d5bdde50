"""Parameter counts and FLOPs of an unrolled ConvRNN (``zoo info MODEL``)."""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict

import torch
from torch.utils.flop_counter import FlopCounterMode

from neurozoo.datasets.model_modes import eval_mode


def parameter_counts(model: torch.nn.Module) -> "OrderedDict[str, int]":
    """Trainable parameters per part: each layer's feedforward stage and cell, feedback, readout."""
    counts: "OrderedDict[str, int]" = OrderedDict()
    for name, layer in model.layers.items():
        counts[f"{name}.stage"] = sum(p.numel() for p in layer.stage.parameters())
        cell = sum(p.numel() for p in layer.cell.parameters())
        if cell:
            counts[f"{name}.cell"] = cell
    for target, merge in model.feedback.items():
        counts[f"feedback->{target}"] = sum(p.numel() for p in merge.parameters())
    counts["readout"] = sum(p.numel() for p in model.readout.parameters())
    counts["total"] = sum(p.numel() for p in model.parameters())
    return counts


def _forward_flops(model, image_size: int, n_steps: int) -> int:
    x = torch.zeros(1, model.spec.input_channels, image_size, image_size)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x, n_steps=n_steps, image_steps=n_steps)
    return counter.get_total_flops()


def flops(model: torch.nn.Module, image_size: int = 224, n_steps: int = None) -> Dict[str, float]:
    """FLOPs (multiply-add = 2) per image of a forward pass.

    ``per_step`` is the steady-state cost of one step once every layer is active, measured as the
    difference between unrolling ``first_readout_step + 1`` and ``first_readout_step`` steps;
    ``total`` is the whole unrolled forward over ``n_steps`` (every layer runs at every step)."""
    n_steps = n_steps or model.n_steps
    warm = model.first_readout_step
    with eval_mode(model):
        per_step = _forward_flops(model, image_size, warm + 1) - _forward_flops(model, image_size, warm)
        total = _forward_flops(model, image_size, n_steps)
    return {"per_step": float(per_step), "total": float(total), "n_steps": n_steps, "image_size": image_size}
