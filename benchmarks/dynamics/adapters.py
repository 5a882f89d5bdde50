"""State maps: ``F(x)`` for a constant input, on flat states x of shape (B, D).

The fixed-point finder needs only ``system(x) -> F(x)``, ``system.dim`` and ``system.to(dtype)``:

- :class:`FunctionMap`: any differentiable callable (analytic systems, linear RNNs);
- :class:`TorchRNNMap`: ``torch.nn.RNN``/``GRU``/``LSTM`` (any number of layers) or ``RNNCell``/``GRUCell``/
  ``LSTMCell`` under a constant input u; LSTM states are h then c, layer by layer (h of ``proj_size`` when set);
- :class:`ConvRNNCellMap`: one recurrent layer of a ConvRNN under a constant image, at chosen spatial
  positions or over the whole map.

ConvRNN has no single-step state function in its public API, so the ConvRNN adapter drives one cell: it
runs the public ``forward`` with the image held for every step, captures that layer's cell calls with a
forward hook (feedforward drive, feedback, the bypassed layer input, state before and after), and then maps a state to the cell's
new state with the drive, feedback and bypass frozen at their values at ``reference_step``. It needs only the
cell contract ``out, new_state = cell(x, state, feedback=..., res_input=...)`` and a module named ``layers.<layer>.cell``.
"""
from __future__ import annotations

import copy
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch import nn

from neurozoo.benchmarks.dynamics.trajectories import STEP_MS
from neurozoo.datasets.model_modes import eval_mode


class FunctionMap:
    def __init__(self, function: Callable[[torch.Tensor], torch.Tensor], dim: int):
        self.function, self.dim = function, int(dim)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.function(x)

    def to(self, dtype: torch.dtype) -> "FunctionMap":
        return self


def linear_map(matrix: torch.Tensor, bias: Optional[torch.Tensor] = None) -> FunctionMap:
    """x -> A x + b."""
    matrix = torch.as_tensor(matrix)
    bias = torch.zeros(matrix.shape[0], dtype=matrix.dtype) if bias is None else torch.as_tensor(bias)
    return FunctionMap(lambda x: x @ matrix.to(x.dtype).T + bias.to(x.dtype), matrix.shape[0])


class TorchRNNMap:
    CELLS = (nn.RNNCell, nn.GRUCell, nn.LSTMCell)
    MODULES = (nn.RNN, nn.GRU, nn.LSTM)

    def __init__(self, module: nn.Module, u: torch.Tensor):
        if not isinstance(module, self.CELLS + self.MODULES):
            raise TypeError(f"TorchRNNMap takes torch.nn RNN/GRU/LSTM modules or cells, got {type(module).__name__}")
        self.module = module  # run in eval mode call by call (no dropout between layers); its own mode is kept
        self.u = torch.as_tensor(u).reshape(-1)
        if self.u.numel() != module.input_size:
            raise ValueError(f"constant input has {self.u.numel()} entries; the module expects {module.input_size}")
        self.is_cell = isinstance(module, self.CELLS)
        self.layers = 1 if self.is_cell else module.num_layers * (2 if module.bidirectional else 1)
        self.lstm = isinstance(module, (nn.LSTM, nn.LSTMCell))
        self.hidden = module.hidden_size
        # widths of the state's parts: h (proj_size when an LSTM projects it), then c for an LSTM
        self.widths = ([getattr(module, "proj_size", 0) or self.hidden, self.hidden] if self.lstm else [self.hidden])
        self.dim = self.layers * sum(self.widths)

    def to(self, dtype: torch.dtype) -> "TorchRNNMap":
        return TorchRNNMap(copy.deepcopy(self.module).to(dtype), self.u.to(dtype))

    @staticmethod
    def flatten(state) -> torch.Tensor:
        """A module's state ((L, B, H) tensor, or a (h, c) pair) as (B, D); a cell's (B, H) state likewise."""
        parts = state if isinstance(state, tuple) else (state,)
        if parts[0].dim() == 2:
            return torch.cat(parts, dim=-1)
        return torch.cat([p.transpose(0, 1).reshape(p.shape[1], -1) for p in parts], dim=-1)

    def _unflatten(self, x: torch.Tensor):
        parts = x.split([self.layers * width for width in self.widths], dim=-1)
        if not self.is_cell:
            parts = [p.reshape(x.shape[0], self.layers, width).transpose(0, 1).contiguous()
                     for p, width in zip(parts, self.widths)]
        return tuple(parts) if self.lstm else parts[0]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        u = self.u.to(x.dtype).expand(x.shape[0], -1)
        state = self._unflatten(x)
        with eval_mode(self.module):
            if self.is_cell:
                return self.flatten(self.module(u, state))
            _, new_state = self.module(u[:, None] if self.module.batch_first else u[None], state)
        return self.flatten(new_state)


def recurrent_layers(model: nn.Module) -> List[str]:
    """The layers of a ConvRNN whose cell keeps a state (``state_channels``), in order."""
    modules = dict(model.named_modules())
    names = getattr(model, "layer_names", None) or [n[len("layers."):-len(".cell")] for n in modules
                                                    if n.startswith("layers.") and n.endswith(".cell")]
    return [n for n in names if getattr(modules.get(f"layers.{n}.cell"), "state_channels", ())]


class ConvRNNCellMap:
    """F(state) of one ConvRNN layer's cell under a constant image (see the module docstring).

    ``positions``: None for the whole map (D = sum(state channels) * H * W), or a list of (row, column):
    then only the state at those positions varies (D = sum(state channels) * len(positions)) and the rest
    of the map stays at the reference state, the dynamics of those columns given their surround.
    ``trajectory`` (T, B, D): the states the layer visited for every image in ``images`` (initial states
    for the search); the constant input is image ``image_index``. One step of the map is one ConvRNN step, 10 ms
    (``dt``, ``time_unit``: the time constants' unit, which the fixed-point finder takes from them).
    """

    dt, time_unit = float(STEP_MS), "ms"

    def __init__(self, model: nn.Module, layer: str, images: torch.Tensor, n_steps: Optional[int] = None,
                 positions: Optional[Sequence[Tuple[int, int]]] = None, image_index: int = 0,
                 reference_step: int = -1):
        cell = dict(model.named_modules()).get(f"layers.{layer}.cell")
        if cell is None:
            raise ValueError(f"model has no recurrent cell for layer {layer!r} (no module 'layers.{layer}.cell'); "
                             f"recurrent layers: {', '.join(recurrent_layers(model))}")
        if getattr(model, "_fast", None) is not None:
            # its image-free steps run once for the batch, its inputs fused and autocast: the cell's calls are not
            # the reference's (a stack of batch-1 and batch-B states failed with torch's "stack expects ...")
            raise ValueError(f"model is on the fast path (to_fast()); the dynamics of layer {layer!r} are read from "
                             f"the reference path's cell: call model.to_reference() first (to_fast() again after)")
        calls: List[tuple] = []

        def hook(module, args, kwargs, output):
            res_input = kwargs.get("res_input", args[3] if len(args) > 3 else None)
            calls.append((args[0].detach(), args[1] if len(args) > 1 else kwargs.get("state"),
                          kwargs.get("feedback", args[2] if len(args) > 2 else None), output[1],
                          None if res_input is None else res_input.detach()))

        n_steps = n_steps or getattr(model, "n_steps", 10)
        handle = cell.register_forward_hook(hook, with_kwargs=True)
        try:
            with torch.no_grad(), eval_mode(model):
                model(images, n_steps=n_steps, image_steps=n_steps)
        finally:
            handle.remove()
        if not calls:
            raise ValueError(f"layer {layer!r} never ran in {n_steps} steps; give more steps")
        # past the steps run it was an IndexError; past the images (or -1) an empty drive slice, drive[-1:0], on which
        # the map failed at its first call with torch's "expanded size"
        if not -len(calls) <= reference_step < len(calls):
            raise ValueError(f"reference_step {reference_step}: layer {layer!r} ran {len(calls)} steps "
                             f"(n_steps={n_steps}); expected {-len(calls)}..{len(calls) - 1}")
        n_images = calls[0][0].shape[0]
        if not -n_images <= image_index < n_images:
            raise ValueError(f"image_index {image_index}: expected {-n_images}..{n_images - 1}, an index among the "
                             f"{n_images} images")
        image_index %= n_images
        if not calls[reference_step][3]:
            raise ValueError(f"layer {layer!r} has no recurrent state (its cell keeps none); "
                             f"recurrent layers: {', '.join(recurrent_layers(model))}")
        # every layer runs from t = 0 (on zeros before the image reaches it), one call a step: before the image's
        # arrival the frozen drive is the same for every image, and the map was labelled with an image it never saw
        arrival = model.first_output_step(layer) if hasattr(model, "first_output_step") else 0
        reference_index = reference_step % len(calls)
        if reference_index < arrival:
            raise ValueError(f"the image reaches layer {layer!r} at step {arrival}; the drive at step "
                             f"{reference_index} (of n_steps={n_steps}) is the same for every image: give more than "
                             f"{arrival} steps")
        self.cell = cell
        drive, _, feedback, _, res_input = calls[reference_step]
        self.drive = drive[image_index: image_index + 1]
        self.res_input = None if res_input is None else res_input[image_index: image_index + 1]
        self.feedback = None if feedback is None else feedback.detach()[image_index: image_index + 1]
        self.shapes = [tuple(s.shape[1:]) for s in calls[reference_step][3]]
        self.reference = tuple(s.detach()[image_index: image_index + 1] for s in calls[reference_step][3])
        height, width = self.shapes[0][1:]
        given = None if positions is None else [tuple(map(int, p)) for p in positions]
        if given == []:
            raise ValueError(f"positions: an empty list (None analyses the whole {height}x{width} map of layer "
                             f"{layer!r})")
        for row, column in given or []:
            if not (-height <= row < height and -width <= column < width):
                raise ValueError(f"position ({row}, {column}) outside the {height}x{width} map of layer {layer!r}")
        # negative indices count from the end, as in Python: (-1, 0) is the last row's first column
        self.positions = None if given is None else [(row % height, column % width) for row, column in given]
        # a site given twice (0,0 and -1,-1 on a 1x1 map) entered D twice, and only its last copy reached the cell: the
        # other was a dead copy of its coordinates (eigenvalues 0), and a 1x1 map's fixed point was not found
        first = {}
        for asked, site in zip(given or [], self.positions or []):
            if site in first:
                raise ValueError(f"positions {first[site]} and {asked} are the same site {site} of the {height}x{width} "
                                 f"map of layer {layer!r}: give each site once")
            first[site] = asked
        self.channels = [s[0] for s in self.shapes]
        per_site = sum(self.channels)
        self.dim = per_site * (len(self.positions) if self.positions else height * width)
        self.trajectory = torch.stack([self.select(tuple(s.detach() for s in c[3])) for c in calls])
        self.steps_run = len(calls)

    def to(self, dtype: torch.dtype) -> "ConvRNNCellMap":
        other = copy.copy(self)
        other.cell = copy.deepcopy(self.cell).to(dtype)
        other.drive = self.drive.to(dtype)
        other.feedback = None if self.feedback is None else self.feedback.to(dtype)
        other.res_input = None if self.res_input is None else self.res_input.to(dtype)
        other.reference = tuple(r.to(dtype) for r in self.reference)
        other.trajectory = self.trajectory.to(dtype)
        return other

    def select(self, state: Tuple[torch.Tensor, ...]) -> torch.Tensor:
        """A cell state tuple -> flat (B, D)."""
        if self.positions is None:
            return torch.cat([s.flatten(1) for s in state], dim=1)
        rows = torch.tensor([p[0] for p in self.positions])
        columns = torch.tensor([p[1] for p in self.positions])
        return torch.cat([s[:, :, rows, columns].flatten(1) for s in state], dim=1)

    def _expand(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        batch = x.shape[0]
        if self.positions is None:
            parts = x.split([c * self.shapes[0][1] * self.shapes[0][2] for c in self.channels], dim=1)
            return tuple(p.reshape(batch, *shape) for p, shape in zip(parts, self.shapes))
        rows = torch.tensor([p[0] for p in self.positions])
        columns = torch.tensor([p[1] for p in self.positions])
        parts = x.split([c * len(self.positions) for c in self.channels], dim=1)
        state = []
        for part, reference, channels in zip(parts, self.reference, self.channels):
            full = reference.to(x.dtype).expand(batch, *reference.shape[1:]).clone()
            full[:, :, rows, columns] = part.reshape(batch, channels, len(self.positions))
            state.append(full)
        return tuple(state)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        drive = self.drive.to(x.dtype).expand(batch, *self.drive.shape[1:])
        feedback = None if self.feedback is None else self.feedback.to(x.dtype).expand(batch, *self.feedback.shape[1:])
        res_input = (None if self.res_input is None
                     else self.res_input.to(x.dtype).expand(batch, *self.res_input.shape[1:]))
        with eval_mode(self.cell):  # the cell stays in the user's model, in the mode the user left it
            _, new_state = self.cell(drive, self._expand(x), feedback=feedback, res_input=res_input)
        return self.select(tuple(new_state))
