"""The systems ``zoo dynamics`` analyses, by name: ground truths with known answers, trained examples, and
ConvRNN layers.

A :class:`Case` holds one state map per constant-input condition, the trajectories the system visited
(initial states for the search, and the PCA plots) and what is known about the answer.

Ground truths:
- ``linear``: x -> A x + b with A = V diag(eigenvalues) V^-1 (real and one complex pair); one fixed point
  x* = (I - A)^-1 b whose Jacobian eigenvalues are exactly the chosen ones.
- ``bistable``: the 2-D map (x, y) -> (x + dt (x - x^3), (1 - dt) y), dt = 0.1: fixed points (-1, 0) and
  (1, 0) stable with eigenvalues (0.8, 0.9), (0, 0) a saddle with (1.1, 0.9).
- ``flipflop-{rnn,gru,lstm}``: 8 stable fixed points with no input, one per 3-bit memory.
- ``integration-{rnn,gru,lstm}``: per context, an approximate line attractor of slow points.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from neurozoo.benchmarks.dynamics.adapters import ConvRNNCellMap, FunctionMap, linear_map
from neurozoo.benchmarks.dynamics.examples import ARCHITECTURES, train_example
from neurozoo.benchmarks.dynamics.tasks import ContextIntegration, FlipFlop
from neurozoo.datasets.provenance import sha256_array

LINEAR_EIGENVALUES = (0.95, 0.8, -0.5, 0.3, 0.9 * np.exp(0.4j), 0.9 * np.exp(-0.4j))
BISTABLE_DT = 0.1


@dataclass
class Case:
    name: str
    maps: Dict[str, object]  # condition -> state map under that condition's constant input
    states: Dict[str, torch.Tensor]  # condition -> (T, B, D) visited states
    labels: Dict[str, List[str]] = field(default_factory=dict)  # condition -> label per trajectory (colours)
    label_name: str = "input"  # what the labels are (the legend's title): the examples' are outcomes, not inputs
    expected: Dict = field(default_factory=dict)
    step_ms: float = 1.0  # one step of the map, in ``time_unit``
    time_unit: str = "steps"  # the examples have no time scale; a ConvRNN step is 10 ms
    model: Optional[torch.nn.Module] = None
    settings: Dict = field(default_factory=dict)
    finder: Dict = field(default_factory=dict)  # fixed-point finder settings suited to this system
    stimuli: Optional[tuple] = None  # ConvRNN: (images, stimulus ids, labels) for the layer-output trajectories
    data_sha256: Optional[str] = None  # of the data the system was made from and run on (see ``checksum``)

    def model_name(self, layer: str) -> str:
        return f"{self.name.split(':')[0]}:{layer}"


#: A line attractor is a continuum of slow points (q ~ 1e-5 along the line in the trained examples), sampled
#: at 1e-2 spacing.
LINE_ATTRACTOR_FINDER = {"slow_tol": 1e-4, "unique_tol": 1e-2}


def checksum(*parts) -> str:
    """One sha256 of arrays or tensors (values, shape and dtype) and of other data's checksums (hex strings), in
    order: the examples' data are generated from the seed, so equal seeds give equal checksums."""
    digests = [part if isinstance(part, str) else sha256_array(torch.as_tensor(part).numpy()) for part in parts]
    return sha256_array(np.array(digests))


def linear_system(eigenvalues: Sequence[complex] = LINEAR_EIGENVALUES, seed: int = 0):
    """(A, b): a real matrix with the given eigenvalues (complex ones in conjugate pairs) and a bias."""
    rng = np.random.default_rng(seed)
    blocks, values = [], list(eigenvalues)
    while values:
        value = values.pop(0)
        if abs(np.imag(value)) > 0:
            partner = min(range(len(values)), key=lambda i: abs(values[i] - np.conj(value)))
            values.pop(partner)
            blocks.append(np.array([[value.real, -value.imag], [value.imag, value.real]]))
        else:
            blocks.append(np.array([[float(np.real(value))]]))
    dim = sum(len(b) for b in blocks)
    block = np.zeros((dim, dim))
    offset = 0
    for b in blocks:
        block[offset: offset + len(b), offset: offset + len(b)] = b
        offset += len(b)
    basis = rng.standard_normal((dim, dim))
    return basis @ block @ np.linalg.inv(basis), rng.standard_normal(dim)


def _simulate(system, starts: torch.Tensor, steps: int) -> torch.Tensor:
    states = [starts]
    with torch.no_grad():
        for _ in range(steps):
            states.append(system(states[-1]))
    return torch.stack(states)


def linear_case(seed: int = 0) -> Case:
    matrix, bias = linear_system(seed=seed)
    system = linear_map(torch.tensor(matrix), torch.tensor(bias))
    starts = torch.as_tensor(np.random.default_rng(seed + 1).normal(0, 3, (16, len(bias))))
    point = np.linalg.solve(np.eye(len(bias)) - matrix, bias)
    return Case("linear", {"none": system}, {"none": _simulate(system, starts, 40)},
                expected={"points": point[None], "eigenvalues": np.array(LINEAR_EIGENVALUES)},
                data_sha256=checksum(matrix, bias, starts))


def bistable_map(dt: float = BISTABLE_DT) -> FunctionMap:
    return FunctionMap(lambda z: torch.stack([z[:, 0] + dt * (z[:, 0] - z[:, 0] ** 3), (1 - dt) * z[:, 1]], dim=-1), 2)


def bistable_case(seed: int = 0) -> Case:
    system = bistable_map()
    starts = torch.as_tensor(np.random.default_rng(seed).uniform(-1.5, 1.5, (24, 2)))
    trajectory = _simulate(system, starts, 60)
    labels = ["x>0" if x > 0 else "x<0" for x in trajectory[-1, :, 0].tolist()]
    return Case("bistable", {"none": system}, {"none": trajectory}, {"none": labels}, "final state",
                expected={"points": np.array([[-1.0, 0.0], [0.0, 0.0], [1.0, 0.0]]),
                          "eigenvalues": np.array([[1 - 2 * BISTABLE_DT, 1 - BISTABLE_DT],
                                                   [1 + BISTABLE_DT, 1 - BISTABLE_DT],
                                                   [1 - 2 * BISTABLE_DT, 1 - BISTABLE_DT]])},
                data_sha256=checksum(starts))


def flipflop_case(architecture: str, hidden: int = 16, steps: int = 500, seed: int = 0, trials: int = 32) -> Case:
    model, losses, training_sha = train_example("flipflop", architecture, hidden=hidden, steps=steps, seed=seed)
    inputs, targets, _ = FlipFlop().batch(trials, torch.Generator().manual_seed(seed + 1000))
    with torch.no_grad():
        states = model.states(inputs)
        memory = torch.sign(model.read(states[-1]))
        held = targets != 0  # a bit is held once its first pulse came
        accuracy = float((torch.sign(model.read(states)) == targets)[held].float().mean())
    labels = ["".join("+" if v > 0 else "-" for v in row) for row in memory.tolist()]
    return Case(f"flipflop-{architecture}", {"no input": model.state_map(torch.zeros(3))}, {"no input": states},
                {"no input": labels}, "memory at the end", expected={"n_stable": 8}, model=model, data_sha256=checksum(training_sha, inputs),
                settings={"hidden": hidden, "train_steps": steps, "final_loss": float(np.mean(losses[-20:])),
                          "accuracy": accuracy})


#: Training settings per architecture with which the integration examples learn the task in seconds (a GRU of
#: 32 units at lr 5e-3 settled in one context on a single fixed point instead of integrating; the vanilla RNN at
#: lr 5e-3 became a different network on each CPU's float32 kernels, with 3 to 13 slow points in a context, and at
#: 2e-3 is the same line attractor on each, 72 and 6 points).
INTEGRATION_TRAINING = {"rnn": {"hidden": 32, "steps": 800, "lr": 2e-3}, "lstm": {"hidden": 32, "steps": 800, "lr": 5e-3},
                        "gru": {"hidden": 16, "steps": 500, "lr": 1e-2}}


def integration_case(architecture: str, hidden: Optional[int] = None, steps: Optional[int] = None, seed: int = 0,
                     trials: int = 64, lr: Optional[float] = None) -> Case:
    task = ContextIntegration()
    defaults = INTEGRATION_TRAINING[architecture]
    hidden, steps, lr = hidden or defaults["hidden"], steps or defaults["steps"], lr or defaults["lr"]
    model, losses, training_sha = train_example("integration", architecture, hidden=hidden, steps=steps, seed=seed,
                                                lr=lr)
    maps, states, labels, trial_inputs, correct, ideal = {}, {}, {}, [], [], []
    for context, name in enumerate(task.CONTEXTS):
        inputs, targets, _ = task.batch(trials, torch.Generator().manual_seed(seed + 1000 + context), context=context)
        trial_inputs.append(inputs)
        with torch.no_grad():
            states[name] = model.states(inputs)
            correct.append(torch.sign(model.read(states[name][-1])) == targets[-1])
        ideal.append(torch.sign(inputs[:, :, context].sum(0)) == targets[-1, :, 0])  # the summed relevant evidence
        maps[name] = model.state_map(task.constant_input(context))
        labels[name] = ["choice +" if t > 0 else "choice -" for t in targets[-1, :, 0].tolist()]
    return Case(f"integration-{architecture}", maps, states, labels, "target choice",
                expected={"line_attractor": True}, model=model, finder=dict(LINE_ATTRACTOR_FINDER),
                data_sha256=checksum(training_sha, *trial_inputs),
                settings={"hidden": hidden, "train_steps": steps, "lr": lr, "final_loss": float(np.mean(losses[-20:])),
                          "accuracy": float(torch.cat(correct).float().mean()),
                          "ideal_accuracy": float(torch.cat(ideal).float().mean())})


def convrnn_case(model, name: str, layer: str, images: torch.Tensor, stimulus_ids: Sequence[str],
                 positions: Optional[Sequence] = None, n_steps: Optional[int] = None, image_index: int = 0,
                 labels: Optional[Sequence[str]] = None, trajectory_layers: Optional[Sequence[str]] = None) -> Case:
    """A ConvRNN layer's cell under image ``image_index`` held constant; all images' trajectories seed the search."""
    system = ConvRNNCellMap(model, layer, images, n_steps=n_steps, positions=positions, image_index=image_index)
    condition = f"{stimulus_ids[image_index]}"
    return Case(f"{name}:{layer}", {condition: system}, {condition: system.trajectory},
                {condition: [str(s) for s in (labels or stimulus_ids)]}, step_ms=system.dt, time_unit=system.time_unit,
                model=model,
                stimuli=(images, list(stimulus_ids), list(labels or stimulus_ids)),
                data_sha256=sha256_array(images.numpy()),
                settings={"layer": layer, "image_index": image_index, "positions": system.positions, "dim": system.dim,
                          "steps_run": system.steps_run, "trajectory_layers": list(trajectory_layers or [layer])})


EXAMPLES = {"linear": linear_case, "bistable": bistable_case,
            **{f"flipflop-{a}": (lambda a: lambda **kw: flipflop_case(a, **kw))(a) for a in ARCHITECTURES},
            **{f"integration-{a}": (lambda a: lambda **kw: integration_case(a, **kw))(a) for a in ARCHITECTURES}}
