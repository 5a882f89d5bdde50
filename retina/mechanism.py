"""Mechanism recovery on the omitted-stimulus response (Tanaka et al. 2019, on a ground truth whose mechanism is
known by construction).

For each ground-truth OSR cell (the circuit's ON-OFF cells):

1. **Attribution around the post-omission response.** Integrated gradients (:mod:`retina.attribution`) of the
   model's output for that cell with respect to its first-layer units, over the windows ending in the
   ``window`` frames after the omitted flash of a ``period``-frame train; channels ranked by mean
   |attribution| over those windows.
2. **What each first-layer channel is.** Every channel's activation (mean over space) on the full-field OSR
   trains (all periods, concatenated) is correlated with the circuit's two pathways on the same stimulus
   (:meth:`datasets.synthetic_retina.GroundTruthRetina.osr_pathways`): the fast OFF bipolar (rectified) and
   the transient ON bipolar (rectified). A channel is ON-like (OFF-like) when its correlation with that pathway
   is at least ``min_correlation`` and above its correlation with the other.
3. **Reduction.** The model with only the top ``k`` channels, the others held at their baseline (grey-stimulus)
   activity (:func:`retina.reduction.reduce_model`), probed with the OSR protocol: does the reduced model keep
   the cell's OSR?

Per-cell score: 1 when the top ``k`` channels include an ON-like and an OFF-like channel (the mechanism
recovered), 0.5 when only one of the two pathways is among them, 0 otherwise.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np
import torch

from neurozoo.datasets.model_modes import eval_mode
from neurozoo.datasets.termination import SafePoint
from neurozoo.retina.attribution import integrated_gradients, layer_activation, rank_units
from neurozoo.datasets import retina_stimuli as stimuli
from neurozoo.retina.phenomena.osr import PERIODS, omitted_stimulus_response
from neurozoo.retina.phenomena.responder import as_responder
from neurozoo.retina.metrics import correlation
from neurozoo.retina.reduction import reduce_model

N_FRAMES = 40


def osr_movie(periods: Sequence[int] = PERIODS) -> np.ndarray:
    """The full-field OSR trains of every period, one after the other ``(T, 50, 50)``."""
    return np.concatenate([stimuli.flash_train(int(p))[0] for p in periods])


def channel_types(model, truth, periods: Sequence[int] = PERIODS, min_correlation: float = 0.5) -> Dict[str, np.ndarray]:
    """Correlation of each first-layer channel with the circuit's ON and OFF pathways on the OSR trains, and its
    type: ``"on"``, ``"off"`` or ``""`` (neither)."""
    movie = osr_movie(periods)
    pathways = truth.osr_pathways(movie)
    on, off = np.maximum(pathways["on"], 0).mean(1), pathways["off"].mean(1)  # full field: subunits alike
    padded = _as_model_input(model, np.concatenate([np.zeros((N_FRAMES - 1, 50, 50), np.float32), movie]))
    with eval_mode(model), torch.no_grad():
        activity = layer_activation(model, padded, 1).mean((2, 3)).double().cpu().numpy()  # (T, C)
    r_on = np.nan_to_num(correlation(activity.T, np.broadcast_to(on, activity.T.shape)))  # a silent channel: 0
    r_off = np.nan_to_num(correlation(activity.T, np.broadcast_to(off, activity.T.shape)))
    kind = np.where((r_on >= min_correlation) & (r_on > r_off), "on",
                    np.where((r_off >= min_correlation) & (r_off > r_on), "off", ""))
    return {"r_on": r_on, "r_off": r_off, "type": kind}


def post_omission_ranking(model, cell: int, period: int = 10, window: int = 40, steps: int = 16,
                          safe_point: Optional[SafePoint] = None) -> np.ndarray:
    """First-layer channels ranked by mean |integrated gradient| over the windows after the omitted flash;
    ``safe_point()`` called after each of the ``steps`` (``zoo score``'s, :data:`datasets.termination.SafePoint`)."""
    movie, _, omitted = stimuli.flash_train(period, post=period + window + 10)
    padded = np.concatenate([np.zeros((N_FRAMES - 1, 50, 50), np.float32), movie])
    # windows ending at frames omitted .. omitted + window - 1 of the movie
    chunk = _as_model_input(model, padded[omitted:omitted + window + N_FRAMES - 1])
    return rank_units(integrated_gradients(model, chunk, cell, layer=1, steps=steps, on_step=safe_point))


def _as_model_input(model, movie: np.ndarray) -> torch.Tensor:
    """``movie`` on the device and in the dtype of ``model``'s weights (a model fitted with ``--device cuda``, one in
    float64): the stimuli here are made as float32 arrays on the CPU."""
    weight = model.conv1.weight
    return torch.as_tensor(movie, dtype=weight.dtype, device=weight.device)


def mechanism_recovery(model, truth=None, k: int = 2, period: int = 10, cells: Optional[Sequence[int]] = None,
                       reduce: bool = True, safe_point: Optional[SafePoint] = None) -> Dict:
    """Per ground-truth OSR cell: the top ``k`` channels, their types, the score and whether the reduced model keeps
    the OSR; ``value``: mean score; ``channels``: each channel's correlations and type. Runs in eval mode and
    restores the model's mode. ``safe_point()`` (``zoo score``'s, :data:`datasets.termination.SafePoint`): called
    before and after the channels are typed, after each integrated-gradients step and before each stimulus of the
    OSR probes; the result is the same."""
    from neurozoo.datasets.synthetic_retina import default_retina

    truth = truth or default_retina()
    stoppable = (lambda system: system) if safe_point is None else (  # noqa: E731
        lambda system: as_responder(system, safe_point=safe_point))
    with eval_mode(model):
        if cells is None:
            cells = np.flatnonzero(omitted_stimulus_response(stoppable(truth)).is_osr)
        if safe_point is not None:
            safe_point()
        types = channel_types(model, truth)
        rows = []
        for cell in cells:
            if safe_point is not None:
                safe_point()
            top = post_omission_ranking(model, int(cell), period, safe_point=safe_point)[:k]
            kinds = {str(types["type"][c]) for c in top} - {""}
            row = {"cell": int(cell), "top_units": [int(c) for c in top],
                   "top_types": [str(types["type"][c]) for c in top], "score": len(kinds & {"on", "off"}) / 2}
            if reduce:
                reduced = reduce_model(model, 1, top, fill="baseline")
                result = omitted_stimulus_response(stoppable(reduced), cells=[int(cell)])
                row.update(reduced_osr=bool(result.is_osr[0]), reduced_slope=float(result.slope[0]))
            rows.append(row)
        return {"value": float(np.mean([r["score"] for r in rows])) if rows else float("nan"), "cells": rows,
                "channels": {"r_on": types["r_on"].round(3).tolist(), "r_off": types["r_off"].round(3).tolist(),
                             "type": types["type"].tolist()}}
