"""The optimizer and its learning-rate schedule of ``zoo train``: SGD or AdamW over weight-decay groups (biases and
normalisation parameters undecayed, or the original's per-part L2 scales), and a linear warmup followed by a cosine,
step or constant schedule, counted in optimizer steps."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn as nn

from neurozoo.datasets.errors import UserFacingError

if TYPE_CHECKING:
    from neurozoo.convrnn.training.engine import TrainConfig


@dataclass
class LRFactor:
    """Multiplier of the base learning rate at optimizer step ``step`` (linear warmup, then the schedule).

    A callable object rather than a closure so that ``LambdaLR.state_dict`` records it."""
    kind: str
    total_steps: int
    warmup_steps: int = 0
    step_every: int = 1
    gamma: float = 0.1
    min_factor: float = 0.0

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.kind == "constant":
            return 1.0
        if self.kind == "step":
            return self.gamma ** (step // max(1, self.step_every))
        progress = min(1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
        return self.min_factor + (1 - self.min_factor) * 0.5 * (1 + math.cos(math.pi * progress))


def schedule_changes(before: dict, after: dict, steps_per_epoch: int) -> str:
    """What differs between two :class:`LRFactor`'s fields (``vars`` of each: a checkpoint's, this run's), in the
    options' words: ``the schedule's epochs 1 -> 2 (2 -> 4 optimizer steps)``. A resume's warning printed the two
    dictionaries of steps."""
    def epochs(steps) -> str:
        return f"{steps / steps_per_epoch:g}"

    words = {"kind": ("--schedule", str),
             "total_steps": ("the schedule's epochs", epochs),
             "warmup_steps": ("--warmup-epochs", epochs),
             "step_every": ("--step-epochs", epochs),
             "gamma": ("--gamma", lambda value: f"{value:g}"),
             "min_factor": ("--min-lr / --lr", lambda value: f"{value:g}")}
    changes = []
    for key in [*words, *sorted((set(before) | set(after)) - set(words))]:
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        name, shown = words.get(key, (key, str))
        steps = (f" ({old} -> {new} optimizer steps)" if key in ("total_steps", "warmup_steps", "step_every")
                 and old is not None and new is not None else "")
        changes.append(f"{name} {'?' if old is None else shown(old)} -> {'?' if new is None else shown(new)}{steps}")
    return ", ".join(changes)


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    if config.original_weight_decay and not hasattr(model, "weight_decay_groups"):
        raise UserFacingError(f"--original-weight-decay: {config.model} has no original per-part L2 scales "
                              f"(weight_decay_groups); use --weight-decay")
    if config.original_weight_decay:
        groups = [{"params": [p for p in g["params"] if p.requires_grad], "weight_decay": g["weight_decay"]}
                  for g in model.weight_decay_groups()]
        groups = [g for g in groups if g["params"]]
    else:
        decay, no_decay = [], []
        for param in model.parameters():
            if param.requires_grad:
                (decay if param.ndim > 1 else no_decay).append(param)
        groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum)
    return torch.optim.AdamW(groups, lr=config.lr)


def build_scheduler(optimizer, config: TrainConfig, steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    factor = LRFactor(config.schedule, total_steps=config.epochs * steps_per_epoch,
                      warmup_steps=int(round(config.warmup_epochs * steps_per_epoch)),
                      step_every=config.step_epochs * steps_per_epoch, gamma=config.gamma,
                      min_factor=config.min_lr / config.lr)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
