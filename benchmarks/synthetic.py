"""Synthetic neural assemblies with a known answer, for tests and speed scripts.

Responses are ``signal[stimulus, neuroid, bin] + noise`` with unit-variance signal and independent
Gaussian noise of standard deviation ``noise`` per repetition, so the split-half Spearman-Brown
ceiling is ``1 / (1 + noise**2 / n_repetitions)`` and a model predicting the signal exactly reaches
``r = sqrt(ceiling)``.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
import xarray as xr


def expected_ceiling(noise: float, n_repetitions: int) -> float:
    return 1.0 / (1.0 + noise ** 2 / n_repetitions)


def synthetic_assembly(n_stimuli: int = 200, n_neuroids: int = 20, n_bins: int = 3, n_repetitions: int = 4,
                       n_objects: int = 8, noise: float = 1.0, bin_ms: int = 10, first_bin_ms: int = 70,
                       latent: int = 0, seed: int = 0, dtype=np.float64) -> Tuple[xr.DataArray, xr.DataArray]:
    """Return (assembly with repetitions, noiseless signal per stimulus), both (presentation, neuroid, time_bin).

    ``latent = 0``: independent unit-variance signal per stimulus, neuroid and bin. ``latent > 0``: the signal
    is a random linear mixture of ``latent`` stimulus factors with a smooth time course (realistic,
    low-dimensional), rescaled to unit variance per neuroid and bin.
    """
    rng = np.random.default_rng(seed)
    if latent:
        factors = rng.standard_normal((n_stimuli, latent))
        loadings = rng.standard_normal((latent, n_neuroids))
        course = np.sin(np.linspace(0.3, 2.8, n_bins))[None, None, :] * rng.uniform(0.5, 1.5, (1, n_neuroids, 1))
        drift = rng.standard_normal((latent, n_neuroids, n_bins)) * 0.3
        signal = np.einsum("sl,ln->sn", factors, loadings)[:, :, None] * course + np.einsum("sl,lnt->snt", factors, drift)
    else:
        signal = rng.standard_normal((n_stimuli, n_neuroids, n_bins))
    signal = (signal - signal.mean(0)) / signal.std(0)
    signal = signal.astype(dtype)
    ids = np.array([f"s{i:05d}" for i in range(n_stimuli)])
    objects = np.array([f"object{i % n_objects}" for i in range(n_stimuli)])
    starts = first_bin_ms + bin_ms * np.arange(n_bins)
    neuroid_coords = {"neuroid_id": ("neuroid", np.array([f"n{i:04d}" for i in range(n_neuroids)])),
                      "region": ("neuroid", np.array(["IT"] * n_neuroids))}
    time_coords = {"time_bin_start": ("time_bin", starts), "time_bin_end": ("time_bin", starts + bin_ms)}
    values = np.empty((n_repetitions * n_stimuli, n_neuroids, n_bins), dtype=dtype)
    for r in range(n_repetitions):
        values[r * n_stimuli:(r + 1) * n_stimuli] = signal + noise * rng.standard_normal(signal.shape).astype(dtype)
    assembly = xr.DataArray(values, dims=("presentation", "neuroid", "time_bin"), coords={
        "stimulus_id": ("presentation", np.tile(ids, n_repetitions)),
        "object_name": ("presentation", np.tile(objects, n_repetitions)),
        "repetition": ("presentation", np.repeat(np.arange(n_repetitions), n_stimuli)),
        **neuroid_coords, **time_coords})
    clean = xr.DataArray(signal, dims=("presentation", "neuroid", "time_bin"), coords={
        "stimulus_id": ("presentation", ids), "object_name": ("presentation", objects),
        **neuroid_coords, **time_coords})
    return assembly, clean


def as_features(values: np.ndarray, like: xr.DataArray) -> xr.DataArray:
    """Wrap a (stimulus, feature, bin) array as features with ``like``'s stimulus ids and bins."""
    return xr.DataArray(values, dims=("presentation", "neuroid", "time_bin"), coords={
        "stimulus_id": ("presentation", like["stimulus_id"].values),
        "neuroid_id": ("neuroid", np.arange(values.shape[1])),
        "time_bin_start": ("time_bin", like["time_bin_start"].values[:values.shape[2]]),
        "time_bin_end": ("time_bin", like["time_bin_end"].values[:values.shape[2]])})
