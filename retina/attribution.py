"""Integrated gradients of a ganglion output with respect to hidden units (Tanaka et al. 2019).

The path is the straight line in stimulus space from the zero stimulus (the grey baseline) to the
stimulus, ``x(a) = baseline + a (x - baseline)``. A hidden unit ``z_i`` (a layer-1 or layer-2
activation) is credited with

    A_i = integral_0^1  dF/dz_i (z(x(a)))  dz_i(x(a))/da  da,

the chain-rule split of the stimulus-space integrated gradient over the hidden layer. By the
fundamental theorem of calculus the attributions sum to ``F(x) - F(baseline)`` (completeness). The
integral is a midpoint sum over ``steps`` segments with the exact activation differences
``z(a_{k+1}) - z(a_k)``: the quantity of baccuslab/torch-deep-retina's ``torchdeepretina/utils.py``
``integrated_gradient``, which takes the gradient at the upper end of each segment (``rule="right"``) and
attributes the BatchNorm output before the ReLU (``site="pre"``), and of captum's ``LayerConductance`` (lower end).
Those choices change the discretisation, not the integral (tests/test_attribution_reference.py). The error is O(1/steps^2)
only where the rest of the network is smooth along the path (layer 2 under the softplus readout: completeness
gap 3.7e-3, 2.0e-4, 8.8e-6 of F(x) - F(baseline) at 4, 16, 64 steps). For layer 1 the layer-2 ReLUs switch
inside segments, the gradient jumps there, and the error is first order and not monotone (12.6%, 4.4%, 0.16%,
0.23% at 4, 16, 64, 256 steps on a random BN-CNN); check :meth:`Attribution.completeness_gap`.

Works on any model exposing ``conv1``, ``layer1``, ``layer2`` and ``readout`` (:class:`retina.models.bncnn.RetinaCNN`).
A "unit" is a channel (a cell type): attributions are summed over its spatial positions.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from neurozoo.datasets.errors import check_integer
from neurozoo.datasets.model_modes import eval_mode
from neurozoo.retina.fast_conv import conv_first_layer


def first_layer_input(model, x: torch.Tensor) -> torch.Tensor:
    """conv1 pre-activations of windows ``x`` ``(B, 40, 50, 50)``, or of every window of a movie ``(T + 39, 50, 50)``."""
    if x.dim() == 3:
        return conv_first_layer(x, model.conv1.weight, model.conv1.bias)
    return model.conv1(x)


def _from_pre(model, pre: torch.Tensor, layer: int) -> torch.Tensor:
    z = model.layer1(pre)
    return model.layer2(z) if layer == 2 else z


def layer_activation(model, x: torch.Tensor, layer: int) -> torch.Tensor:
    """Hidden activations ``(B, C, H, W)`` of ``layer`` (1 or 2, after the ReLU) for windows ``x`` (or a movie)."""
    check_layer(model, layer)
    return _from_pre(model, first_layer_input(model, x), layer)


def layer_head(model, layer: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """The rest of the network: ``layer`` activations -> rates ``(B, n_cells)``."""
    check_layer(model, layer)
    if layer == 1:
        return lambda z: model.readout(model.layer2(z))
    return model.readout


def check_windows(model, x) -> None:
    """``x`` as :func:`integrated_gradients` takes it: a tensor of windows ``(B, n_frames, size, size)`` or a movie
    ``(T + n_frames - 1, size, size)`` of the model's frame size (a ValueError naming the shape expected; a numpy
    array failed with an AttributeError, another window length inside conv1)."""
    frames, size = getattr(model, "n_frames", None), getattr(model, "frame_size", None)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x: expected a torch.Tensor of windows (B, {frames}, {size}, {size}) or a movie "
                        f"(T + {frames and frames - 1}, {size}, {size}), got {type(x).__name__}")
    windows = x.dim() == 4 and (frames is None or x.shape[1] == frames)
    movie = x.dim() == 3 and (frames is None or x.shape[0] >= frames)
    if not (windows or movie) or (size is not None and tuple(x.shape[-2:]) != (size, size)):
        raise ValueError(f"x: expected windows (B, {frames}, {size}, {size}) or a movie of at least {frames} frames "
                         f"(T + {frames and frames - 1}, {size}, {size}), got shape {tuple(x.shape)}")


def _broadcasts_to(shape, target) -> bool:
    try:
        return torch.broadcast_shapes(shape, target) == target
    except RuntimeError:
        return False


def check_layer(model, layer):
    if layer not in (1, 2):
        raise ValueError(f"layer must be 1 or 2; got {layer!r}")
    for name in ("conv1", "layer1", "layer2", "readout"):
        if not hasattr(model, name):
            raise TypeError(f"{type(model).__name__} has no {name!r}; attribution needs a RetinaCNN-like model")


@dataclass
class Attribution:
    values: torch.Tensor          # (B, C, H, W): per hidden unit and position, per window
    output: torch.Tensor          # (B,): F(x) of the attributed cell
    baseline_output: torch.Tensor  # (B,): F(baseline)
    cell: int
    layer: int
    steps: Optional[int] = None   # the path it was integrated along (integrated_gradients' arguments)
    rule: Optional[str] = None
    site: Optional[str] = None

    def per_unit(self) -> torch.Tensor:
        """``(B, C)``: attribution of each channel, summed over space."""
        return self.values.sum((2, 3))

    def completeness_gap(self) -> torch.Tensor:
        """``sum of attributions - (F(x) - F(baseline))`` per window (zero up to discretisation)."""
        return self.values.flatten(1).sum(1) - (self.output - self.baseline_output)


RULES = ("midpoint", "right")
SITES = ("post", "pre")


def _site(model, layer: int, site: str):
    """``(to_site, head)``: conv1 pre-activations -> the attributed tensor ``(B, C, H, W)``, and that tensor -> rates.

    ``site="post"``: the layer's activations (after the ReLU). ``"pre"``: its BatchNorm output before the ReLU, the
    tensor torch-deep-retina attributes (``integrated_gradient(layer='sequential.2')`` hooks ``BNCNN.sequential[2]``,
    the first layer's ``BatchNorm1d``; ``'sequential.8'`` the second's: torchdeepretina/models.py at 00bb0ca lines 48
    and 56, ``sequential`` line 65). The noise layers are the identity in eval mode.
    """
    check_layer(model, layer)
    if site == "post":
        return (lambda pre: _from_pre(model, pre, layer)), layer_head(model, layer)
    if site != "pre":
        raise ValueError(f"site must be one of {SITES}; got {site!r}")
    for name in ("bn1", "conv2", "bn2"):
        if not hasattr(model, name):
            raise TypeError(f"{type(model).__name__} has no {name!r}; site='pre' needs a RetinaCNN (BatchNorm before the ReLU)")
    if layer == 1:
        return model.bn1, lambda u: model.readout(model.layer2(torch.relu(u)))
    return (lambda pre: model.bn2(model.conv2(model.layer1(pre)))), lambda u: model.readout(torch.relu(u))


def integrated_gradients(model, x: torch.Tensor, cell: int, layer: int = 1, steps: int = 32,
                         baseline: Optional[torch.Tensor] = None, rule: str = "midpoint",
                         site: str = "post", on_step: Optional[Callable[[], None]] = None) -> Attribution:
    """Attribution of ``model``'s output ``cell`` to the units of ``layer`` for each window of ``x``
    (windows ``(B, 40, 50, 50)`` or a movie ``(T + 39, 50, 50)``, whose T windows are then attributed).

    ``rule``: where each of the ``steps`` segments takes the gradient -- ``"midpoint"`` (ours, second order where the
    head is smooth) or ``"right"`` (its upper end: torch-deep-retina ``utils.integrated_gradient``, whose
    ``alpha_steps`` points ``linspace(0, 1, alpha_steps)`` are ``steps + 1`` here). ``site``: ``"post"`` (the ReLU
    output, default) or ``"pre"`` (the BatchNorm output before it, torch-deep-retina's hooked layer). Both rules and
    both sites converge to the same integral (the ReLU is elementwise, so ``dF/du du = dF/dz dz`` along the path);
    they differ by discretisation only. Runs the model in eval mode (BatchNorm running statistics, no noise) and
    restores its mode. ``on_step``: called after each of the ``steps`` segments (a progress bar's update).
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}; got {rule!r}")
    check_integer(steps, "steps", least=1)  # 0 or fewer: an AttributeError on no attribution; 2.5: torch's TypeError
    check_integer(cell, "cell", least=0)
    check_windows(model, x)
    if baseline is not None and not (isinstance(baseline, torch.Tensor) and _broadcasts_to(baseline.shape, x.shape)):
        raise ValueError(f"baseline: expected a tensor that broadcasts to x's shape {tuple(x.shape)}, got "
                         f"{tuple(baseline.shape) if isinstance(baseline, torch.Tensor) else type(baseline).__name__}")
    with eval_mode(model):
        x = x.detach()
        baseline = torch.zeros_like(x) if baseline is None else baseline.detach().expand_as(x)
        to_site, head = _site(model, layer, site)
        with torch.no_grad():  # conv1 is affine: the path is a straight line in its pre-activations too
            pre0 = first_layer_input(model, baseline)
            delta = first_layer_input(model, x) - pre0
        alphas = torch.linspace(0.0, 1.0, steps + 1, dtype=pre0.dtype, device=pre0.device)
        total = None
        with torch.no_grad():
            z_prev = to_site(pre0)
            rates = head(z_prev)
            if cell >= rates.shape[1]:  # an IndexError from inside the head's output
                raise ValueError(f"cell: expected a cell of the model's {rates.shape[1]}, from 0 to "
                                 f"{rates.shape[1] - 1}; got {cell}")
            out0 = rates[:, cell]
        for k in range(steps):
            with torch.no_grad():
                z_next = to_site(pre0 + alphas[k + 1] * delta)
                point = z_next.clone() if rule == "right" else \
                    to_site(pre0 + 0.5 * (alphas[k] + alphas[k + 1]) * delta)
            point.requires_grad_(True)
            grad, = torch.autograd.grad(head(point)[:, cell].sum(), point)
            step = grad * (z_next - z_prev)
            total = step if total is None else total + step
            z_prev = z_next
            if on_step is not None:
                on_step()
        with torch.no_grad():
            out1 = head(z_prev)[:, cell]
        return Attribution(total.detach(), out1, out0, cell, layer, steps, rule, site)


RANKINGS = ("abs", "abs_positions", "signed")


def check_ranking(by: str) -> None:
    if by not in RANKINGS:
        raise ValueError(f"by must be one of {RANKINGS}; got {by!r}")


def unit_scores(attribution: Attribution, by: str = "abs") -> torch.Tensor:
    """Each channel's score over all windows, ``(C,)``.

    ``by="abs"``: mean over windows of |channel attribution summed over space| (a unit that both excites and inhibits
    counts); torch-deep-retina ``pruning.prune_channels`` (pruning.py at 085c795, from line 42; the ranking lines
    149-159) with ``abssum=False``. ``"abs_positions"``: mean over windows of the sum over positions of |attribution| (``abssum=True``: positions that cancel each other still count).
    ``"signed"``: mean attribution (most excitatory first)."""
    check_ranking(by)
    if by == "abs":
        return attribution.per_unit().abs().mean(0)
    if by == "abs_positions":
        return attribution.values.abs().sum((2, 3)).mean(0)
    return attribution.per_unit().mean(0)


def rank_units(attribution: Attribution, by: str = "abs") -> np.ndarray:
    """Channels ordered from most to least important over all windows (:func:`unit_scores`)."""
    return torch.argsort(unit_scores(attribution, by), descending=True).cpu().numpy()


def unit_importance(attribution: Attribution, by: str = "abs") -> np.ndarray:
    """:func:`unit_scores` as shares, ``(C,)``: divided by the sum of their magnitudes (for ``"signed"``, an inhibitory
    unit's share is negative)."""
    score = unit_scores(attribution, by).double().cpu().numpy()
    total = np.abs(score).sum()
    return score / total if total > 0 else score
