"""Population activity over time as (stimulus_id, time_bin, neuroid) arrays, and its PCA trajectories.

Sources: a ConvRNN's recorded layer outputs (public ``forward(..., record=[...])``, one bin per 10 ms step),
the states of a small RNN, or a neural assembly (presentations averaged per stimulus).
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np
import torch
import xarray as xr

from neurozoo.benchmarks.dynamics.similarity import DIMS
from neurozoo.benchmarks.metrics.assembly import average_repetitions
from neurozoo.datasets.errors import check_integer
from neurozoo.datasets.model_modes import eval_mode

STEP_MS = 10  # one ConvRNN step (REFERENCE.md section 1)


def activity(values: np.ndarray, stimulus_ids: Sequence[str], bin_starts: Sequence[float], bin_ms: float,
             name: str = "", time_unit: str = "ms", rows: str = "stimuli") -> xr.DataArray:
    """(stimuli, bins, neuroids) values as a labelled array; ``time_unit`` of the bins: "ms", or "steps" for a
    model without a time scale (the examples), and ``rows``: what a row is ("stimuli", or "trials" for the
    examples' task trials), kept in ``attrs`` for the figures' axes and titles."""
    values = np.asarray(values, dtype=float)
    if values.ndim != 3 or values.shape[:2] != (len(stimulus_ids), len(bin_starts)):
        raise ValueError(f"activity {name!r}: expected (stimuli={len(stimulus_ids)}, bins={len(bin_starts)}, "
                         f"neuroids), got {values.shape}")
    starts = np.asarray(bin_starts, dtype=float)
    return xr.DataArray(values, dims=DIMS, name=name, attrs={"time_unit": time_unit, "rows": rows}, coords={
        "stimulus_id": np.asarray(stimulus_ids, dtype=str), "time_bin_start": ("time_bin", starts),
        "time_bin_end": ("time_bin", starts + bin_ms)})


def from_states(states: torch.Tensor, stimulus_ids: Sequence[str], step_ms: float = 1.0, name: str = "",
                time_unit: str = "ms", rows: str = "stimuli") -> xr.DataArray:
    """(T, B, D) states of an RNN -> (stimulus_id, time_bin, neuroid); ``step_ms``: one step's length in
    ``time_unit``; ``rows``: what the batch's rows are (see ``activity``)."""
    values = torch.as_tensor(states).detach().double().numpy().transpose(1, 0, 2)
    return activity(values, stimulus_ids, np.arange(values.shape[1]) * step_ms, step_ms, name, time_unit, rows)


def record_convrnn(model, images: torch.Tensor, stimulus_ids: Sequence[str], layers: Sequence[str],
                   n_steps: Optional[int] = None, image_steps: Optional[int] = None, pool: Optional[int] = 2,
                   batch_size: int = 32) -> Dict[str, xr.DataArray]:
    """Each layer's output at every step (bin [10 t, 10 t + 10) ms); ``pool``: average-pool the map to at most
    pool x pool positions first (None keeps every unit)."""
    layers = list(dict.fromkeys(layers))  # a layer named twice (--trajectory-layers conv4,conv4) got two batches a batch
    outputs: Dict[str, list] = {layer: [] for layer in layers}
    with torch.no_grad(), eval_mode(model):
        for start in range(0, len(images), batch_size):
            recorded = model(images[start: start + batch_size], n_steps=n_steps, image_steps=image_steps,
                             record=list(layers)).recorded
            for layer in layers:
                out = recorded[layer]  # (T, B, C, H, W)
                if pool:
                    steps, batch = out.shape[:2]
                    out = torch.nn.functional.adaptive_avg_pool2d(out.flatten(0, 1), pool).unflatten(0, (steps, batch))
                outputs[layer].append(out.flatten(2))
    result = {}
    for layer, chunks in outputs.items():
        states = torch.cat(chunks, dim=1)
        result[layer] = from_states(states, stimulus_ids, STEP_MS, name=layer)
    return result


def condition_means(assembly: xr.DataArray, name: str = "") -> xr.DataArray:
    """A (presentation, neuroid, time_bin) assembly averaged over repetitions of each stimulus, as (stimulus_id,
    time_bin, neuroid) activity: the benchmarks' repetition means (``metrics.assembly.average_repetitions``: NaN
    skipped, stimuli in stimulus_id order, an infinite value or a presentation coordinate that varies within a
    stimulus or is NaN refused, naming the file). Until 2026-12-05 an xarray groupby of its own, which averaged over a
    per-trial coordinate and an inf without a word; its means differed from these by rounding alone (at most 4e-15 on
    the embedded V4/IT and Zhang-Desimone assemblies)."""
    means = average_repetitions(assembly)
    starts, ends = means["time_bin_start"].values, means["time_bin_end"].values
    values = means.values.transpose(0, 2, 1)
    return activity(values, means["stimulus_id"].values, starts, float(np.median(ends - starts)), name or assembly.name or "")


def pca_trajectories(activity_: xr.DataArray, n_components: int = 3):
    """Project every (stimulus, bin) onto the top principal components of all of them.

    Returns (projection (stimulus_id, time_bin, pc), explained variance ratio per component, the fitted PCA
    (``.transform`` projects other states, e.g. fixed points, onto the same axes)).

    ``n_components``: an integer from 1 to min(stimuli x bins, neuroids), else a ``ValueError`` naming it and the
    activity's shape (0 gave a projection of no component; more than the data hold gave fewer, without a word, which
    the 2-D trajectory figures then failed on with an IndexError)."""
    from sklearn.decomposition import PCA

    if not (isinstance(activity_, xr.DataArray) and activity_.dims == DIMS):  # an AttributeError, or the PCA of
        # another axis's samples
        dims = f" with dims {activity_.dims}" if isinstance(activity_, xr.DataArray) else ""
        raise ValueError(f"activity_: expected an xarray.DataArray with dims {DIMS} (trajectories.activity), got "
                         f"{type(activity_).__name__}{dims}")
    stimuli, bins, neuroids = activity_.shape
    flat = activity_.values.reshape(stimuli * bins, neuroids)
    most = min(flat.shape)
    check_integer(n_components, "n_components", least=1)
    if n_components > most:
        raise ValueError(f"n_components: expected at most {most} (min(stimuli x bins, neuroids) of the activity of "
                         f"shape {activity_.shape}), got {n_components}")
    pca = PCA(n_components=n_components, svd_solver="full").fit(flat)
    projected = pca.transform(flat).reshape(stimuli, bins, n_components)
    out = xr.DataArray(projected, dims=("stimulus_id", "time_bin", "pc"),
                       coords={"stimulus_id": activity_["stimulus_id"].values,
                               "time_bin_start": ("time_bin", activity_["time_bin_start"].values),
                               "pc": np.arange(1, n_components + 1)}, name=activity_.name, attrs=activity_.attrs)
    return out, pca.explained_variance_ratio_, pca
