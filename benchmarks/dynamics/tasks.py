"""Tasks whose solutions have known dynamics: the 3-bit flip-flop and context-dependent integration.

Both return ``(inputs, targets, mask)`` as (T, B, channels) float tensors, mask (T, B, 1) weighting the loss.

Flip-flop (Sussillo & Barak 2013): each input channel receives sparse pulses of +1 or -1; the matching
output channel must hold the sign of the last pulse (0 before the first). A solution stores 3 bits, so
it needs 2^3 = 8 stable fixed points with no input.

Context-dependent integration (Mante, Sussillo, Shenoy & Newsome 2013): two noisy evidence streams
("motion", "colour") with coherences c_m, c_c, plus a one-hot context input held for the trial; the output
at the end must report sign(c) of the stream the context names. A solution integrates the relevant
stream along a line attractor per context (one Jacobian eigenvalue near 1 along the line) and ignores
the other.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import torch

Batch = Tuple[torch.Tensor, torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class FlipFlop:
    n_bits: int = 3
    n_steps: int = 64
    pulse_probability: float = 0.08

    n_inputs = property(lambda self: self.n_bits)
    n_outputs = property(lambda self: self.n_bits)

    def batch(self, size: int, generator: torch.Generator) -> Batch:
        shape = (self.n_steps, size, self.n_bits)
        pulses = (torch.rand(shape, generator=generator) < self.pulse_probability).float()
        signs = torch.randint(0, 2, shape, generator=generator).float() * 2 - 1
        inputs = pulses * signs
        targets = torch.zeros(shape)
        held = torch.zeros(size, self.n_bits)
        for t in range(self.n_steps):
            held = torch.where(pulses[t] > 0, signs[t], held)
            targets[t] = held
        return inputs, targets, torch.ones(self.n_steps, size, 1)


@dataclass(frozen=True)
class ContextIntegration:
    n_steps: int = 30
    noise: float = 1.0
    coherences: Tuple[float, ...] = (0.05, 0.1, 0.2, 0.4)
    response_steps: int = 5  # the loss counts on the last steps only

    n_inputs = 4  # motion, colour, context-motion, context-colour
    n_outputs = 1
    CONTEXTS = ("motion", "colour")

    def batch(self, size: int, generator: torch.Generator, context: int = None, coherence=None) -> Batch:
        """``context`` (0 or 1) and ``coherence`` ((B, 2) tensor of (c_motion, c_colour)) fix the condition."""
        levels = torch.tensor(self.coherences)
        if coherence is None:
            picks = levels[torch.randint(0, len(levels), (size, 2), generator=generator)]
            coherence = picks * (torch.randint(0, 2, (size, 2), generator=generator).float() * 2 - 1)
        contexts = (torch.randint(0, 2, (size,), generator=generator) if context is None
                    else torch.full((size,), int(context)))
        evidence = coherence[None] + self.noise * torch.randn(self.n_steps, size, 2, generator=generator)
        cue = torch.nn.functional.one_hot(contexts, 2).float()[None].expand(self.n_steps, size, 2)
        inputs = torch.cat([evidence, cue], dim=-1)
        relevant = coherence.gather(1, contexts[:, None])
        targets = torch.sign(relevant)[None].expand(self.n_steps, size, 1).clone()
        mask = torch.zeros(self.n_steps, size, 1)
        mask[-self.response_steps:] = 1.0
        return inputs, targets, mask

    def constant_input(self, context: int) -> torch.Tensor:
        """The input with no evidence in one context: where the line attractors live."""
        u = torch.zeros(self.n_inputs)
        u[2 + int(context)] = 1.0
        return u


TASKS = {"flipflop": FlipFlop, "integration": ContextIntegration}
