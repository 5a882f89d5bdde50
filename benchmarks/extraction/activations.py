"""Activations of any torch model as (presentation, neuroid, time_bin) DataArrays.

* ConvRNNs (the ``convrnn`` contract: ``model(images, n_steps=26, image_steps=10, record=layers)`` returns
  ``out.recorded[layer]`` of shape (T, B, C, H, W)) are recorded at every step; steps map to 10 ms bins by
  :mod:`benchmarks.extraction.time_mapping` (step t -> [10t, 10t + 10) ms). The unroll is causal, so it
  stops after the last step the benchmark's bins need (Cowley's 70-170 ms window: 13 of 26 steps), and it
  runs through the model's fast path where the device supports it (:func:`inference_options`).
* Any other module (timm, torchvision, CORnet-like) is read through forward hooks on named submodules;
  each call of a hooked module is one model step, mapped to bins by a :class:`StepTable` (default: one
  step spanning the window, i.e. static features repeated in every bin).

Every layer is reduced to at most ``max_features`` units by a fixed seeded sparse random projection
(:mod:`benchmarks.extraction.reduction`) as each batch comes out of the model, one needed step at a time,
so memory holds one batch of layer outputs and images x reduced features x bins, never whole layer outputs
over time; the result is cached on disk (:mod:`benchmarks.extraction.cache`), each batch as it is finished, so an
extraction stopped between batches resumes after them.
"""
from __future__ import annotations

import inspect
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
import torch
import xarray as xr
from tqdm.auto import tqdm

from neurozoo.benchmarks.extraction.cache import ActivationCache, cache_key, resume_settings, stimuli_sha256
from neurozoo.datasets.provenance import module_sha256
from neurozoo.benchmarks.extraction.reduction import RandomProjection
from neurozoo.benchmarks.extraction.time_mapping import (NAYEBI_FITTING_BINS, Bin, StepBins, StepTable, bin_weights, convrnn,
                                                         model_timing, static)
from neurozoo.datasets import malloc
from neurozoo.datasets.activity import tell
from neurozoo.datasets.errors import DataError, SpecError, did_you_mean
from neurozoo.datasets.model_modes import eval_mode

Timing = Union[StepTable, Mapping[str, Union[StepTable, StepBins]], None]


@dataclass
class Stimuli:
    """Images (N, 3, H, W), already normalised for the model, with their stimulus ids."""

    ids: List[str]
    images: torch.Tensor
    object_name: Optional[np.ndarray] = None

    def __post_init__(self):
        self.images = torch.as_tensor(self.images)
        self._check(self.images.shape)

    def _check(self, shape) -> None:
        self.ids = [str(i) for i in self.ids]
        if len(shape) >= 1 and shape[0] == 0:
            raise DataError(f"stimuli: no images (got images {tuple(shape)} and {len(self.ids)} ids)")
        if len(shape) != 4 or len(self.ids) != shape[0]:
            raise DataError(f"stimuli: images must be (N, C, H, W) with one stimulus_id each; "
                            f"got images {tuple(shape)} and {len(self.ids)} ids")
        if len(set(self.ids)) != len(self.ids):
            raise DataError("stimuli: stimulus ids must be unique")

    def batch(self, start: int, stop: int) -> torch.Tensor:
        """Images ``start:stop``, as the model reads them."""
        return self.images[start:stop]

    def sha256(self) -> str:
        return stimuli_sha256(self.ids, self.images)


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
                raise SpecError(unknown_layer(model, layer)) from None
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


def last_needed_step(tables: Mapping[str, StepTable], bins: Sequence[Bin]) -> int:
    """Index of the last model step any layer's bins read: a causal unroll can stop after it."""
    return max(int(bin_weights(table, bins)[0].max()) for table in tables.values())


def _reduce_steps(steps: torch.Tensor, table: StepTable, bins: Sequence[Bin], layer: str,
                  projection: "RandomProjection", truncated: bool) -> torch.Tensor:
    """(S, B, ...) per-step outputs -> (B, features, len(bins)) reduced features, one needed step at a time."""
    _check_steps(steps.shape[0], table, bins, layer, truncated)
    needed, weights = bin_weights(table, bins)
    return _by_bin([projection(steps[step].reshape(steps.shape[1], -1)) for step in needed], weights)


def check_layers(model: torch.nn.Module, layers: Union[str, Sequence[str]], where: str = "") -> List[str]:
    """``layers`` as a list, each refused (:func:`unknown_layer`, after ``where``) unless the model has it: a ConvRNN
    records the names in its ``layer_names``, any other model is hooked at a submodule's path (``""``: the model
    itself). Run before any work: a ConvRNN refused a name only inside its first forward pass, under the progress
    bar, after the stimuli were loaded and hashed. A layer named twice is refused too: computed, its batches were
    stacked twice (xarray's "conflicting sizes for dimension 'presentation'"); read from the cache, a neural
    benchmark took ``conv6,conv6`` for two candidates, held 20 % of the stimuli out to choose between them and scored
    the rest, where ``conv6`` alone is scored on all."""
    layers = [layers] if isinstance(layers, str) else list(layers)  # one name, not its letters
    twice = next((layer for k, layer in enumerate(layers) if layer in layers[:k]), None)
    if twice is not None:
        raise SpecError(f"{where}layer {twice!r} is named more than once ({', '.join(layers)}); name each layer once")
    recurrent = is_convrnn(model)
    for layer in layers:
        if recurrent:
            known = layer in model.layer_names
        else:
            try:
                known = model.get_submodule(layer) is not None
            except AttributeError:
                known = False
        if not known:
            raise SpecError(where + unknown_layer(model, layer))
    return layers


def unknown_layer(model: torch.nn.Module, layer: str) -> str:
    """The error for a layer name the model lacks: the closest names (difflib) and the valid ones -- a ConvRNN's
    ``layer_names``, another model's top-level modules (a list of the first 30 named modules of a deep model rarely
    held the layer meant)."""
    if is_convrnn(model):
        names = list(model.layer_names)
        return f"model has no layer {layer!r}{did_you_mean([layer], names, n=3)} (its layers: {', '.join(names)})"
    names = [name for name, _ in model.named_modules() if name]
    nested = next((name for name in names if "." in name), None)
    top = [name for name, _ in model.named_children()]
    return (f"model has no layer {layer!r}{did_you_mean([layer], names, n=3)} (its top-level modules: "
            f"{', '.join(top[:30]) + (', ...' if len(top) > 30 else '') or 'none'}"
            f"{f'; a nested layer is named by its path, e.g. {nested!r}' if nested else ''})")


def _check_steps(produced: int, table: StepTable, bins: Sequence[Bin], layer: str, truncated: bool) -> None:
    if produced != table.steps and not (truncated and produced > bin_weights(table, bins)[0].max()):
        raise SpecError(steps_mismatch(layer, produced, table, bins))


def steps_mismatch(layer: str, produced: int, table: StepTable, bins: Sequence[Bin]) -> str:
    """The error for a layer called another number of times per image than its time mapping has steps; for a
    recurrent model given no mapping (one static step), how to declare one, with a mapping spreading its calls over
    the bins as an example."""
    start, width = bins[0][0], (bins[-1][1] - bins[0][0]) / produced
    example = f"{{{layer!r}: [{start:g}, {width:g}, {produced}]}}"
    hint = " (one step: what a model that declares no time mapping gets)" if table.steps == 1 else ""
    return (f"layer {layer!r} produced {produced} steps (it ran {produced} times on each image) but its time mapping "
            f"has {table.steps}{hint}; declare which time each call stands for, [start_ms, width_ms, steps] (call k "
            f"covers start + k * width ms): in a submission, model.py's create_model returns (model, {example}) (this "
            f"one spreads the calls over the bins, {bins[0][0]:g}-{bins[-1][1]:g} ms); in Python, timing={{{layer!r}: "
            f"StepTable(start_ms, width_ms, {produced})}} to extract()")


def _by_bin(reduced: Sequence[torch.Tensor], weights: np.ndarray) -> torch.Tensor:
    """The needed steps' (B, F) features -> (B, F, bins): each bin the ``weights``-weighted sum of its steps
    (:func:`time_mapping.bin_weights`; a bin reading one step takes it as it is). The projection is linear, so this
    is the projection of the weighted average of the steps' outputs."""
    stacked = torch.stack(list(reduced))
    columns = []
    for row in weights:
        (read,) = np.nonzero(row)
        if len(read) == 1:
            columns.append(stacked[read[0]])
        else:
            columns.append(sum(float(row[n]) * stacked[n] for n in read))
    return torch.stack(columns).permute(1, 2, 0).contiguous()


class _StepReducer:
    """``on_step`` consumer of a ConvRNN unroll: projects each needed step of each layer as soon as the model
    produces it, so a batch never holds a layer's outputs over time (the model keeps only its current state)."""

    def __init__(self, tables: Mapping[str, StepTable], bins: Sequence[Bin], projections: Dict[str, "RandomProjection"],
                 max_features: int, seed: int):
        self.tables, self.bins, self.projections = tables, bins, projections
        self.max_features, self.seed = max_features, seed
        self.needed = {layer: bin_weights(table, bins) for layer, table in tables.items()}
        self.reduced: Dict[str, Dict[int, torch.Tensor]] = {layer: {} for layer in tables}
        self.produced = 0

    def __call__(self, step: int, outputs: Mapping[str, torch.Tensor]) -> None:
        self.produced = step + 1
        for layer, output in outputs.items():
            if step in self.needed[layer][0]:
                if layer not in self.projections:
                    self.projections[layer] = RandomProjection(output[0].numel(), self.max_features, self.seed)
                self.reduced[layer][step] = self.projections[layer](output.reshape(output.shape[0], -1))

    def features(self, layer: str) -> torch.Tensor:
        """This batch's (B, F, bins) features of ``layer``; resets for the next batch."""
        _check_steps(self.produced, self.tables[layer], self.bins, layer, truncated=True)
        needed, weights = self.needed[layer]
        reduced = self.reduced[layer]
        self.reduced[layer] = {}
        return _by_bin([reduced[int(step)] for step in needed], weights)


def _takes(runner, argument: str) -> bool:
    """True when the model's forward takes ``argument`` (``convrnn.network.ConvRNN``: ``on_step``, each step
    handed over as it is computed instead of stacked over time; ``readout``, False skips the logits and the
    layer steps no recorded output depends on)."""
    try:
        return argument in inspect.signature(runner.forward).parameters
    except (TypeError, ValueError, AttributeError):
        return False


def inference_options(model: torch.nn.Module, fast: Union[bool, None, dict] = None) -> Optional[dict]:
    """``model.to_fast`` options for extraction, or None for the reference path.

    ``fast=None`` (default): the fast path where the device supports it, eager on both --
    :data:`GPU_FAST` on a GPU, :data:`CPU_FAST` on a CPU: float32 with channels-last weights, fused input
    convolutions, the image-free first steps of each layer computed once for the batch, not compiled
    (compiling costs minutes per shape; bfloat16 on a CPU changes activations by ~1e-2), and the separable
    gates not fused (``to_fast``'s default: a depthwise convolution with channel multiplier 2 is 3-5 times
    slower than two with multiplier 1 in oneDNN, 3.8 times on an H200; with them fused the CPU fast path was
    slower than the reference path).
    ``False``: the reference path. ``True``: ``to_fast()``'s defaults (bfloat16, not compiled). A dict: those
    ``to_fast`` options.
    """
    if fast is False or not hasattr(model, "to_fast"):
        return None
    return device_fast_options(_model_device(model), fast)


def inference_settings(inference: Optional[dict]) -> dict:
    """How :func:`inference_options`' result is described in the cache key and in a score's record:
    ``{"path": "fast", <option>: str(value), ...}``, or ``{"path": "reference"}``."""
    if inference is None:
        return {"path": "reference"}
    return {"path": "fast", **{k: str(v) for k, v in sorted(inference.items())}}


def device_fast_options(device: torch.device, fast: Union[bool, None, dict] = None) -> dict:
    """The ``to_fast`` options :func:`inference_options` picks for a model on ``device`` (``fast`` not False)."""
    if isinstance(fast, dict):
        return dict(fast)
    if fast is True:
        return {}
    return dict(GPU_FAST if torch.device(device).type == "cuda" else CPU_FAST)


#: ``to_fast`` options of the CPU extraction's fast path (``fast=None`` on a CPU)
CPU_FAST = {"dtype": None, "compile": "none", "fuse_gates": False, "share_image_free_steps": True}

#: ``to_fast`` options of the GPU extraction's fast path (``fast=None`` on a GPU): the CPU's, for reasons of its own.
#: Not compiled: on an H200 (torch 2.11.0+cu130, 2026-12-04) the reference path scored full-width
#: ``rgc_intermediate`` on all 640 ``cowley2023.V4`` images in 18.9 s, while ``to_fast()``'s compiled steps had not
#: finished compiling 130 s later. float32, not bfloat16: extraction must give the reference path's score to 1e-3;
#: float32 features agree with the reference to ~1e-6, bfloat16 ones differ by ~1e-2 (relative) and moved the score
#: by 1.7e-4 on 64 images (CPU, 2026-12-04), a sixth of that budget. Measured on the H200 (second session): 19.1 s
#: against the reference path's 19.7 s, the same score to 1.2e-7 (docs/performance.md, GPU figures).
GPU_FAST = dict(CPU_FAST)


def extract(model: torch.nn.Module, stimuli: Stimuli, layers: Sequence[str], *, bins: Sequence[Bin] = NAYEBI_FITTING_BINS,
            timing: Timing = None, n_steps: int = 26, image_steps: int = 10, max_features: int = 1000, seed: int = 0,
            batch_size: int = 32, cache: Union[bool, ActivationCache] = True, progress: bool = True,
            model_hash: Optional[str] = None, fast: Union[bool, None, dict] = None,
            safe_point: Optional[Callable[[int, int], None]] = None,
            cache_progress: Optional[Callable[[int, int, int, int], None]] = None) -> Dict[str, xr.DataArray]:
    """Features per layer, (presentation, neuroid, time_bin), for ``bins`` (10 ms, 70..260 ms by default).

    ``fast``: see :func:`inference_options` (ConvRNNs only; the model is switched back afterwards).
    ``safe_point(done, total)``: called before each batch (``zoo score``'s safe point for a SIGTERM, which raises
    there: :data:`datasets.termination.SafePoint`; the one before the first ends its setup's stretch where a stop is
    taken at once, :func:`datasets.termination.stopping_at_once`, before the first batch is kept). A layer's final cache entry is written
    once all its batches are extracted; with a cache, each batch is kept in a partial entry as it is finished
    (:mod:`.cache`), and an extraction stopped between batches resumes after those it finished when run again, with
    the same features bit for bit (the same batches through the same model; the projection depends only on the
    layer's size, ``max_features`` and ``seed``). ``cache_progress(batches, total, saved, layers)``: what the cache holds of this extraction, once it is
    read and after each batch kept and each layer saved: ``batches`` of the ``total`` batches of the layers not yet
    saved, and ``saved`` of the ``layers`` layers saved whole (``zoo score``'s stop line says what a rerun reuses);
    never called without a cache."""
    layers = check_layers(model, layers)
    for name, value in (("max_features", max_features), ("batch_size", batch_size)):
        if value < 1:
            raise SpecError(f"extraction: {name} must be at least 1, got {value}")
    recurrent = is_convrnn(model)
    if timing is None and recurrent:
        check_unroll_covers(bins, convrnn(n_steps))
    if timing is None:  # a CORnet's layers are its areas: Brain-Score's tables for them (time_mapping.model_timing)
        timing = convrnn(n_steps) if recurrent else model_timing(model) or static(bins)
    if isinstance(timing, Mapping):
        missing = [layer for layer in layers if layer not in timing]
        if missing:
            raise SpecError(missing_step_table(missing[0], timing))
    tables = {layer: timing[layer] if isinstance(timing, Mapping) else timing for layer in layers}
    settings = {"kind": "convrnn" if recurrent else "hooks", "bins": [list(b) for b in bins],
                "timing": {layer: t.describe() for layer, t in tables.items()},
                "reduction": {"method": "sparse_random_projection", "max_features": max_features, "seed": seed},
                "dtype": "float32"}
    inference = inference_options(model, fast) if recurrent else None
    if recurrent:
        settings.update(n_steps=n_steps, image_steps=image_steps)
        spec = getattr(model, "spec", None)
        if hasattr(spec, "to_dict"):  # a cell constant (gate offset, nonlinearity) is no weight: the graph is keyed too
            from neurozoo.convrnn import spec_graph  # the package's export (tests/test_layers.py REGISTRIES)

            settings["graph"] = spec_graph(spec.to_dict())
        if inference is not None:  # the fast path's features equal the reference's to float (or bf16) precision
            settings["inference"] = inference_settings(inference)
    store = (ActivationCache() if cache is True else cache) or None
    keys, result = {}, {}
    if store is not None:
        model_hash = model_hash or module_sha256(model)
        stimuli_hash = stimuli.sha256()
        keys = {layer: cache_key(model_hash, stimuli_hash, settings, layer) for layer in layers}
    # held from before the entries are read until they are saved: zoo cache clear leaves them alone meanwhile
    with store.in_use(keys.values()) if store is not None else nullcontext():
        for layer, key in keys.items():
            cached = store.load(key)
            if cached is not None:
                result[layer] = cached
        missing = [layer for layer in layers if layer not in result]
        n_batches = -(-len(stimuli.ids) // batch_size)

        def report(batches: int) -> None:
            if store is not None and cache_progress is not None:
                cache_progress(batches, n_batches, len(result), len(layers))

        if not missing:
            report(n_batches)
        else:
            kept, keep = {layer: [] for layer in missing}, None
            if store is not None:  # an interrupted extraction's finished batches (cache.py, partial entries)
                kept, keep_batch = _partial_batches(store, {layer: keys[layer] for layer in missing}, len(stimuli.ids),
                                                    batch_size, _model_device(model))
                report(len(kept[missing[0]]))

                def keep(batch: int, features: Mapping[str, torch.Tensor]) -> None:
                    keep_batch(batch, features)
                    report(batch + 1)

            computed = _run(model, stimuli, missing, tables, bins, recurrent, n_steps, image_steps, max_features, seed,
                            batch_size, progress, inference, safe_point, kept, keep)
            for layer, array in computed.items():
                array.attrs.update(model_sha256=model_hash or "", reduction="sparse_random_projection",
                                   max_features=max_features, seed=seed)
                if store is not None:
                    store.save(keys[layer], array)
                result[layer] = array
                report(n_batches)
    return {layer: result[layer] for layer in layers}


def _partial_batches(store: ActivationCache, keys: Mapping[str, str], n_images: int, batch_size: int,
                     device: torch.device):
    """``(kept, keep)``: each layer's batches kept by an interrupted extraction, as many for every layer (the fewest
    any kept: the model computes all layers of a batch at once), and ``keep(batch, features)``, which keeps a
    finished batch's ``{layer: (B, F, T)}`` for the next run."""
    resume = resume_settings(batch_size, device)
    rows = [min(batch_size, n_images - start) for start in range(0, n_images, batch_size)]
    loaded = {layer: store.load_partial(key, resume, rows) for layer, key in keys.items()}
    done = min(len(batches) for batches in loaded.values())
    kept = {layer: [torch.from_numpy(values) for values in batches[:done]] for layer, batches in loaded.items()}

    def keep(batch: int, features: Mapping[str, torch.Tensor]) -> None:
        for layer, values in features.items():
            store.save_partial(keys[layer], batch, resume, values.numpy())

    return kept, keep


def check_unroll_covers(bins: Sequence[Bin], table: StepTable) -> None:
    """Refuse a bin a ConvRNN's unroll (``time_mapping.convrnn(n_steps)``: step t = [10 t, 10 t + 10) ms) does not
    reach: its midpoint after the last step, or before onset. The step table clips such a bin to the last (or first)
    step, so a bin at 300 ms was read at 250-260 ms, and a baseline bin before onset at step 0, when conv1 already
    sees the image."""
    early, late = table.unreached(bins)
    end_ms = table.start + table.steps * table.width
    if late:
        needed = max(table.midpoint_steps(late)) + 1
        raise SpecError(f"extraction: time bin [{late[0][0]:g}, {late[0][1]:g}) ms lies after the ConvRNN's unroll of "
                        f"{table.steps} steps ({table.start:g}-{end_ms:g} ms, one step per {table.width:g} ms), where "
                        f"it would read the last step; unroll n_steps >= {needed} (extract(n_steps=...), "
                        f"NeuralBenchmark.score(model, n_steps=...), BrainModel(..., n_steps=...))")
    if early:
        raise SpecError(f"extraction: time bin [{early[0][0]:g}, {early[0][1]:g}) ms lies before stimulus onset; a "
                        f"ConvRNN has no step there (step 0 is [{table.start:g}, {table.start + table.width:g}) ms, "
                        f"when conv1 already reads the image): leave the bins before 0 ms out of the recording or "
                        f"the time_bins")


def missing_step_table(layer: str, timing: Mapping) -> str:
    """The error for a hooked layer the per-layer time mapping has no table for (e.g. a layer inside a CORnet area),
    naming the two ways to give one: ``timing=`` in Python, or a submission's time mapping."""
    return (f"extraction: no step table for layer {layer!r} (the time mapping has {', '.join(timing) or 'none'}); "
            f"give one for every extracted layer: in Python timing={{{layer!r}: StepTable(start_ms, width_ms, steps)}} "
            f"to extract(), NeuralBenchmark.score() or BrainModel() (neurozoo.benchmarks.extraction.StepTable; steps: "
            f"the calls of the layer per image; a layer called once per step of its area can take the area's table, "
            f"time_mapping.model_timing(model)[area]); in a submission, model.py's create_model returns "
            f"(model, {{{layer!r}: [start_ms, width_ms, steps]}}). zoo score has no option for it")


#: the mmap threshold the CPU extraction sets (glibc's own dynamic threshold stops there too)
MMAP_THRESHOLD = 32 << 20


def set_malloc_thresholds(mmap_threshold: int = MMAP_THRESHOLD) -> bool:
    """Serve blocks of ``mmap_threshold`` bytes and more by mmap (returned to the system when freed), smaller
    ones from the heap, where freed blocks are reused without being paged in again (process-wide, from now on;
    False where the C library is not glibc). The values are unchanged.

    Torch's CPU tensors come straight from malloc. By default glibc raises its mmap threshold up to 32 MB
    each time a mapped block is freed: a ConvRNN unroll's per-step maps (1-51 MB at batch 32) then either
    land on the heap, where freed ones stay resident and fragment it (the full-width Cowley V4 scoring, 32
    images, batch 32, peaked at 2.31 GB), or, above 32 MB, are mapped afresh each time: every 4 kB page of a
    fresh 51 MB map faults on first touch, ~24 ms a map, more than the elementwise operation that fills it.
    Measured on the first 96 images (batch 32, one thread, :func:`datasets.malloc.release_free_heap` after each
    batch): at 1 MB (the previous setting) every map is paged in afresh (on 32 images: 1.24 GB peak, 38 CPU-s
    against 33 at 32 MB); with no mmap at all 80 CPU-s but a peak of 1.69-1.86 GB (the heap's fragments; 1.98 GB at 64 MB),
    too close to the 2 GB target; at 32 MB 90 CPU-s and 1.60 GB."""
    return malloc.set_thresholds(mmap_threshold, 2 * mmap_threshold)


@torch.inference_mode()
def _run(model, stimuli: Stimuli, layers, tables, bins, recurrent, n_steps, image_steps, max_features, seed,
         batch_size, progress, inference=None, safe_point=None, kept=None, keep=None) -> Dict[str, xr.DataArray]:
    """``kept``: each layer's first batches, already extracted (the model starts after them); ``keep(batch,
    {layer: features})``: called as each batch is finished."""
    with eval_mode(model):
        device = _model_device(model)
        if device.type == "cpu":
            set_malloc_thresholds()
        hooks = None if recurrent else _Hooks(model, layers)
        projections: Dict[str, RandomProjection] = {}
        chunks: Dict[str, List[torch.Tensor]] = {layer: list((kept or {}).get(layer, [])) for layer in layers}
        first = len(chunks[layers[0]])
        switched = recurrent and inference is not None and getattr(model, "_fast", None) is None
        runner = model.to_fast(**inference) if switched else model  # to_fast(compile="model") returns a wrapper
        # the unroll is causal: steps after the last one the bins read cannot change the recorded ones
        run_steps = min(n_steps, last_needed_step({layer: tables[layer] for layer in layers}, bins) + 1) if recurrent else None
        # a compiled wrapper (to_fast(compile="model")) would break its graph at a callback: it records stacked steps
        reducer = (_StepReducer({layer: tables[layer] for layer in layers}, bins, projections, max_features, seed)
                   if recurrent and runner is model and _takes(model, "on_step") else None)
        unroll = dict(n_steps=run_steps, image_steps=min(image_steps, run_steps)) if recurrent else {}
        if recurrent and _takes(runner, "readout"):
            unroll["readout"] = False  # no logits: the unroll computes only what the recorded layers need
        try:
            starts = range(0, len(stimuli.ids), batch_size)
            tell("extracting activations", begins=True)  # zoo run's job bar (datasets.activity): display only
            for done in tqdm(range(first, len(starts)), desc="activations", unit="batch", disable=not progress,
                             initial=first, total=len(starts)):
                if safe_point is not None:  # the first too: the work, and the cache's writes, begin after it
                    safe_point(done, len(starts))
                tell(f"batch {done + 1} of {len(starts)}")
                images = stimuli.batch(starts[done], starts[done] + batch_size).to(device)
                if reducer is not None:
                    runner(images, record=layers, on_step=reducer, **unroll)
                    del images
                    for layer in layers:
                        chunks[layer].append(reducer.features(layer))  # (B, F, T)
                    if keep is not None:
                        keep(done, {layer: chunks[layer][-1] for layer in layers})
                    if device.type == "cpu":
                        malloc.release_free_heap()  # the heap's fragments do not pile up batch by batch
                    continue
                if recurrent:
                    steps = runner(images, record=layers, **unroll).recorded
                else:
                    hooks.clear()
                    model(images)
                    steps = {layer: torch.stack(hooks.outputs[layer]) for layer in layers}
                for layer in layers:
                    if layer not in projections:
                        projections[layer] = RandomProjection(steps[layer][0, 0].numel(), max_features, seed)
                    chunks[layer].append(_reduce_steps(steps[layer], tables[layer], bins, layer, projections[layer],
                                                       truncated=recurrent))  # (B, F, T)
                if keep is not None:
                    keep(done, {layer: chunks[layer][-1] for layer in layers})
                del steps, images  # free this batch's layer outputs before the next forward pass
                if hooks is not None:
                    hooks.clear()
        finally:
            if hooks is not None:
                hooks.remove()
            if switched:
                model.to_reference()
                model.to(memory_format=torch.contiguous_format)
    return {layer: activation_array(torch.cat(chunks[layer]).numpy(), stimuli, bins, layer) for layer in layers}


def activation_array(values: np.ndarray, stimuli, bins, layer: str) -> xr.DataArray:
    """(presentation, neuroid, time_bin) features of one layer, labelled by the stimuli and the time bins."""
    coords = {"stimulus_id": ("presentation", np.array(stimuli.ids)),
              "neuroid_id": ("neuroid", np.array([f"{layer}.{i}" for i in range(values.shape[1])])),
              "layer": ("neuroid", np.array([layer] * values.shape[1])),
              "time_bin_start": ("time_bin", np.array([b[0] for b in bins])),
              "time_bin_end": ("time_bin", np.array([b[1] for b in bins]))}
    if stimuli.object_name is not None:
        coords["object_name"] = ("presentation", np.asarray(stimuli.object_name).astype(str))
    return xr.DataArray(values, dims=("presentation", "neuroid", "time_bin"), coords=coords, name="activations")
