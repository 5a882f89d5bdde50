"""Small trainable RNNs (vanilla tanh RNN, GRU, LSTM) for the tasks in ``tasks``, trained on the CPU.

``train_example("flipflop", "gru", hidden=16, steps=600, seed=0)`` returns a trained :class:`TaskRNN`,
its loss history and the sha256 of the training batches it saw (all drawn from the seed).
``TaskRNN.states(inputs)`` gives the full state at every step (for the LSTM, h and c concatenated), the state
that ``adapters.TorchRNNMap`` maps.
"""
from __future__ import annotations

import hashlib
from typing import List, NamedTuple

import torch
from torch import nn

from neurozoo.benchmarks.dynamics.tasks import TASKS
from neurozoo.datasets.provenance import sha256_array

ARCHITECTURES = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


class TaskRNN(nn.Module):
    def __init__(self, architecture: str, n_inputs: int, n_hidden: int, n_outputs: int):
        super().__init__()
        if architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {architecture!r}; expected one of {', '.join(ARCHITECTURES)}")
        self.architecture = architecture
        self.rnn = ARCHITECTURES[architecture](n_inputs, n_hidden)
        self.readout = nn.Linear(n_hidden, n_outputs)

    @property
    def n_hidden(self) -> int:
        return self.rnn.hidden_size

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.rnn(inputs)
        return self.readout(hidden)

    def states(self, inputs: torch.Tensor) -> torch.Tensor:
        """(T, B, D): the state after every step (D = hidden, or 2 * hidden for the LSTM: h then c)."""
        from neurozoo.benchmarks.dynamics.adapters import TorchRNNMap

        out = []
        state = None
        for u in inputs:
            _, state = self.rnn(u[None], state)
            out.append(TorchRNNMap.flatten(state))
        return torch.stack(out)

    def read(self, states: torch.Tensor) -> torch.Tensor:
        """Readout of flat states (h is the first ``n_hidden`` entries)."""
        return self.readout(states[..., : self.n_hidden])

    def state_map(self, u: torch.Tensor):
        from neurozoo.benchmarks.dynamics.adapters import TorchRNNMap

        return TorchRNNMap(self.rnn, u)


class Trained(NamedTuple):
    model: TaskRNN
    losses: List[float]
    data_sha256: str  # of every training batch's inputs, targets and mask, in order


def train_example(task: str, architecture: str, hidden: int = 16, steps: int = 600, batch: int = 64,
                  lr: float = 1e-2, seed: int = 0, **task_options) -> Trained:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    spec = TASKS[task](**task_options)
    torch.manual_seed(seed)
    model = TaskRNN(architecture, spec.n_inputs, hidden, spec.n_outputs)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)
    generator = torch.Generator().manual_seed(seed)
    losses, digest = [], hashlib.sha256()
    for _ in range(steps):
        inputs, targets, mask = spec.batch(batch, generator)
        for tensor in (inputs, targets, mask):
            digest.update(sha256_array(tensor.numpy()).encode())
        loss = (((model(inputs) - targets) ** 2) * mask).sum() / (mask.sum() * spec.n_outputs)
        optimiser.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        schedule.step()
        losses.append(float(loss.detach()))
    return Trained(model.eval(), losses, digest.hexdigest())  # a model of its own, made for analysis: eval
