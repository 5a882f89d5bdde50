"""Activations of any torch model as (presentation, neuroid, time_bin) DataArrays.

* ConvRNNs (the ``convrnn`` contract: ``model(images, n_steps=26, image_steps=10, record=layers)`` returns
  ``out.recorded[layer]`` of shape (T, B, C, H, W)) are recorded at every step; steps map to 10 ms bins by
  :mod:`benchmarks.extraction.time_mapping` (step t -> [10t, 10t + 10) ms).
* Any other module (timm, torchvision, CORnet-like) is read through forward hooks on named submodules;
  each call of a hooked module is one model step, mapped to bins by a :class:`StepTable` (default: one
  step spanning the window, i.e. static features repeated in every bin).

Every layer is reduced to at most ``max_features`` units by a fixed seeded sparse random projection
(:mod:`benchmarks.extraction.reduction`) batch by batch, and cached on disk
(:mod:`benchmarks.extraction.cache`).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
import torch
import xarray as xr
from tqdm.auto import tqdm

from neurozoo.benchmarks.extraction.cache import ActivationCache, cache_key, stimuli_sha256
from neurozoo.datasets.provenance import module_sha256
from neurozoo.benchmarks.extraction.reduction import RandomProjection
from neurozoo.benchmarks.extraction.time_mapping import BRAINSCORE_BINS, Bin, StepTable, convrnn, static
from neurozoo.datasets.errors import DataError, SpecError

Timing = Union[StepTable, Mapping[str, StepTable], None]


@dataclass
class Stimuli:
    """Images (N, 3, H, W), already normalised for the model, with their stimulus ids."""

    ids: List[str]
    images: torch.Tensor
    object_name: Optional[np.ndarray] = None

    def __post_init__(self):
        self.ids = [str(i) for i in self.ids]
        self.images = torch.as_tensor(self.images)
        if self.images.ndim != 4 or len(self.ids) != self.images.shape[0]:
            raise DataError(f"stimuli: images must be (N, C, H, W) with one stimulus_id each; "
                            f"got images {tuple(self.images.shape)} and {len(self.ids)} ids")
        if len(set(self.ids)) != len(self.ids):
            raise DataError("stimuli: stimulus ids must be unique")


def is_convrnn(model: torch.nn.Module) -> bool:
    """True for models that follow the ConvRNN recording contract (``record=`` and ``layer_names``)."""
    try:
        parameters = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False
    return hasattr(model, "layer_names") and "record" in parameters and "n_steps" in parameters


def _model_device(model: torch.nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    return torch.device("cpu")


class _Hooks:
    """Collects every output of the named submodules during one forward pass."""

    def __init__(self, model: torch.nn.Module, layers: Sequence[str]):
        self.outputs: Dict[str, List[torch.Tensor]] = {layer: [] for layer in layers}
        self.handles = []
        for layer in layers:
            try:
                module = model.get_submodule(layer)
            except AttributeError:
                names = [n for n, _ in model.named_modules() if n]
                raise SpecError(f"model has no layer {layer!r}; named modules include: {', '.join(names[:30])}") from None
            self.handles.append(module.register_forward_hook(self._hook(layer)))

    def _hook(self, layer):
        def hook(_module, _inputs, output):
            if isinstance(output, (tuple, list)):
                output = output[0]
            self.outputs[layer].append(output.detach())
        return hook

    def clear(self):
        for value in self.outputs.values():
            value.clear()

    def remove(self):
        for handle in self.handles:
            handle.remove()


def _select_steps(steps: torch.Tensor, table: StepTable, bins: Sequence[Bin], layer: str) -> torch.Tensor:
    """(S, B, ...) per-step outputs -> (len(bins), B, ...) by the step table."""
    if steps.shape[0] != table.steps:
        raise SpecError(f"layer {layer!r} produced {steps.shape[0]} steps but its time mapping has {table.steps}")
    return steps[torch.as_tensor(table.steps_for(bins))]


def extract(model: torch.nn.Module, stimuli: Stimuli, layers: Sequence[str], *, bins: Sequence[Bin] = BRAINSCORE_BINS,
            timing: Timing = None, n_steps: int = 26, image_steps: int = 10, max_features: int = 1000, seed: int = 0,
            batch_size: int = 32, cache: Union[bool, ActivationCache] = True, progress: bool = True,
            model_hash: Optional[str] = None) -> Dict[str, xr.DataArray]:
    """Features per layer, (presentation, neuroid, time_bin), for ``bins`` (10 ms, 70..260 ms by default)."""
    layers = list(layers)
    recurrent = is_convrnn(model)
    if timing is None:
        timing = convrnn(n_steps) if recurrent else static(bins)
    tables = {layer: timing[layer] if isinstance(timing, Mapping) else timing for layer in layers}
    settings = {"kind": "convrnn" if recurrent else "hooks", "bins": [list(b) for b in bins],
                "timing": {layer: [t.start, t.width, t.steps] for layer, t in tables.items()},
                "reduction": {"method": "sparse_random_projection", "max_features": max_features, "seed": seed},
                "dtype": "float32"}
    if recurrent:
        settings.update(n_steps=n_steps, image_steps=image_steps)
    store = (ActivationCache() if cache is True else cache) or None
    keys, result = {}, {}
    if store is not None:
        model_hash = model_hash or module_sha256(model)
        stimuli_hash = stimuli_sha256(stimuli.ids, stimuli.images)
        for layer in layers:
            keys[layer] = cache_key(model_hash, stimuli_hash, settings, layer)
            cached = store.load(keys[layer])
            if cached is not None:
                result[layer] = cached
    missing = [layer for layer in layers if layer not in result]
    if missing:
        computed = _run(model, stimuli, missing, tables, bins, recurrent, n_steps, image_steps, max_features, seed,
                        batch_size, progress)
        for layer, array in computed.items():
            array.attrs.update(model_sha256=model_hash or "", reduction="sparse_random_projection",
                               max_features=max_features, seed=seed)
            if store is not None:
                store.save(keys[layer], array)
            result[layer] = array
    return {layer: result[layer] for layer in layers}


@torch.inference_mode()
def _run(model, stimuli: Stimuli, layers, tables, bins, recurrent, n_steps, image_steps, max_features, seed,
         batch_size, progress) -> Dict[str, xr.DataArray]:
    was_training = model.training
    model.eval()
    device = _model_device(model)
    hooks = None if recurrent else _Hooks(model, layers)
    projections: Dict[str, RandomProjection] = {}
    chunks: Dict[str, List[torch.Tensor]] = {layer: [] for layer in layers}
    try:
        for start in tqdm(range(0, len(stimuli.ids), batch_size), desc="activations", unit="batch", disable=not progress):
            images = stimuli.images[start:start + batch_size].to(device)
            if recurrent:
                steps = model(images, n_steps=n_steps, image_steps=image_steps, record=layers).recorded
            else:
                hooks.clear()
                model(images)
                steps = {layer: torch.stack(hooks.outputs[layer]) for layer in layers}
            for layer in layers:
                selected = _select_steps(steps[layer], tables[layer], bins, layer)  # (T, B, ...)
                T, B = selected.shape[:2]
                flat = selected.reshape(T * B, -1)
                if layer not in projections:
                    projections[layer] = RandomProjection(flat.shape[1], max_features, seed)
                reduced = projections[layer](flat).reshape(T, B, -1)
                chunks[layer].append(reduced.permute(1, 2, 0).contiguous())  # (B, F, T)
    finally:
        if hooks is not None:
            hooks.remove()
        model.train(was_training)
    out = {}
    for layer in layers:
        values = torch.cat(chunks[layer]).numpy()
        coords = {"stimulus_id": ("presentation", np.array(stimuli.ids)),
                  "neuroid_id": ("neuroid", np.array([f"{layer}.{i}" for i in range(values.shape[1])])),
                  "layer": ("neuroid", np.array([layer] * values.shape[1])),
                  "time_bin_start": ("time_bin", np.array([b[0] for b in bins])),
                  "time_bin_end": ("time_bin", np.array([b[1] for b in bins]))}
        if stimuli.object_name is not None:
            coords["object_name"] = ("presentation", np.asarray(stimuli.object_name).astype(str))
        out[layer] = xr.DataArray(values, dims=("presentation", "neuroid", "time_bin"), coords=coords, name="activations")
    return out
