"""On-disk activation cache keyed by what determines the activations.

key = sha256(model weights and buffers) + sha256(stimulus ids and pixels) + extraction settings + layer.
A changed weight changes the model hash, so a changed model can never read a stale cache.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import xarray as xr

from neurozoo.benchmarks.paths import cache_dir


def stimuli_sha256(stimulus_ids, images: torch.Tensor) -> str:
    digest = hashlib.sha256("\x1f".join(map(str, stimulus_ids)).encode())
    images = images.detach().to("cpu").contiguous()
    digest.update(f"{images.dtype}:{tuple(images.shape)}".encode())
    digest.update(images.view(torch.uint8).numpy())  # the buffer itself: no copy of every pixel
    return digest.hexdigest()


def cache_key(model_hash: str, stimuli_hash: str, settings: dict, layer: str) -> str:
    payload = json.dumps({"model": model_hash, "stimuli": stimuli_hash, "settings": settings, "layer": layer},
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


class ActivationCache:
    def __init__(self, root: Optional[Path] = None):
        self.root = Path(root) if root is not None else cache_dir() / "activations"

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.nc"

    def load(self, key: str) -> Optional[xr.DataArray]:
        path = self.path(key)
        if not path.is_file():
            return None
        with xr.open_dataarray(path) as array:
            array = array.load()
        for name in ("stimulus_id", "neuroid_id", "layer", "object_name"):
            if name in array.coords:
                array = array.assign_coords({name: (array[name].dims, np.asarray(array[name].values).astype(str))})
        return array

    def save(self, key: str, array: xr.DataArray) -> Path:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        array.to_netcdf(temporary)
        os.replace(temporary, path)  # atomic: readers never see a half-written file
        return path
