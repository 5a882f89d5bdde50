"""Brain-Score's model interface over the harness's own extraction: ``start_recording`` then ``look_at``.

``BrainModel(model)`` wraps anything a neural benchmark extracts from -- a ConvRNN registry name (or ``timm:<name>``),
resolved as ``zoo score`` resolves it, or a torch module: a ConvRNN, or any module read through forward hooks with
an optional time mapping (``timing``: a :class:`~neurozoo.benchmarks.extraction.StepTable`, or one per layer, as a
submission gives it). Its commitment of layers to regions is explicit (``region_layers``); by default a region takes
the model's layer of that name (the embedded teacher, CORnet-like models), else the last layer the released ConvRNN
map gives the region, the layer ``zoo run`` scores (``neural.convrnn_region_layers``: V4 conv6, IT conv10 for the
intermediate models, V4 conv3, IT conv5 for the shallow ones). Several layers for a region are concatenated along
the neuroid dim, each neuroid labelled with its ``layer``.

``look_at`` calls :func:`~neurozoo.benchmarks.extraction.extract` with the same settings a benchmark uses (bins,
steps per bin, the seeded random projection to ``max_features`` per layer, the activation cache), so a metric on
its assembly gives the benchmark's score for the same layer (``tests/test_brain_model.py``). Stimuli are resized to
fill the model's input (``image_size``), as everywhere in the harness: no placement by visual degrees.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import xarray as xr

from neurozoo.benchmarks.extraction import Stimuli, extract
from neurozoo.benchmarks.extraction.activations import Timing, check_layers
from neurozoo.benchmarks.neural import committed_layers
from neurozoo.datasets.assembly import check_time_bins, make_assembly
from neurozoo.datasets.errors import DataError, SpecError

#: ``max_features=None``: no projection (a layer with at most this many units is kept as it is)
FULL_FEATURES = 2 ** 62


class RecordingTarget:
    """Brain-Score's region names (``BrainModel.RecordingTarget``)."""

    V1, V2, V4, IT = "V1", "V2", "V4", "IT"


class Task:
    """Brain-Score's task names (``BrainModel.Task``); only ``passive`` is implemented here."""

    passive, label, probabilities, odd_one_out = "passive", "label", "probabilities", "odd_one_out"


class BrainModel:
    """A model as Brain-Score's ``BrainModel``: ``start_recording(region, time_bins)``, ``look_at(stimuli)``.

    ``model``: a ConvRNN registry name or ``timm:<name>`` (built by ``named_models.resolve_model``, as ``zoo score`` builds
    it: weights drawn after ``torch.manual_seed(model_seed)`` or read from ``checkpoint``; ``overrides`` such as
    ``{"width_multiplier": 0.125}``), or a ``torch.nn.Module``. ``region_layers``: ``{region: layer or [layers]}``.
    ``timing``: steps per bin for a hooked module (default: one static step); ConvRNNs map step t to
    [10t, 10t + 10) ms. ``image_size``: pixels of the model's input (None: the stimulus set's own size).
    ``max_features``: units per layer after the random projection (None: every unit).
    ``weights_conversion``: where ``checkpoint`` was a CORnet's released file in dicarlolab/CORnet's format, converted
    to our names, what was converted (``convrnn.cornet_weights.release_record``, as ``zoo score`` keeps it in a score's
    settings); None otherwise. ``look_at``'s assembly then carries ``attrs["weights"]`` (the record's label) and
    ``attrs["weights_conversion"]`` (the record as JSON, which a netCDF file keeps).
    ``stochastic``: whether the model's responses vary between presentations of one image in eval mode (noise,
    dropout kept at inference); then ``look_at(stimuli, number_of_trials)`` presents the stimuli that many times,
    without the activation cache, and returns the mean (Brain-Score's meaning of ``number_of_trials``). Default
    False: one presentation, as Brain-Score's own commitments run neural recordings (see :meth:`look_at`).
    """

    RecordingTarget, Task = RecordingTarget, Task  # as Brain-Score's code names them: model.Task.passive

    def __init__(self, model: Union[str, torch.nn.Module], region_layers: Optional[Mapping[str, Union[str, Sequence[str]]]] = None,
                 *, identifier: Optional[str] = None, timing: Timing = None, image_size: Optional[int] = 224,
                 visual_degrees: float = 8, max_features: Optional[int] = 1000, seed: int = 0, batch_size: int = 32,
                 cache=True, progress: bool = False, fast=None, n_steps: int = 26, image_steps: int = 10,
                 model_seed: int = 0, checkpoint=None, device: str = "cpu", overrides: Optional[dict] = None,
                 stochastic: bool = False):
        if isinstance(model, str):
            from neurozoo.benchmarks.named_models import resolve_model_and_weights  # `zoo score`'s lookup

            self.model, self.weights_conversion = resolve_model_and_weights(model, checkpoint, device, seed=model_seed,
                                                                            overrides=overrides)
            settings = "".join(f",{k}={v}" for k, v in sorted((overrides or {}).items()))
            default_identifier = model + (f"@{Path(checkpoint).name}" if checkpoint else "") + (f"({settings[1:]})" if settings else "")
        elif isinstance(model, torch.nn.Module):
            if checkpoint is not None or overrides:
                raise SpecError("BrainModel: checkpoint= and overrides= apply to a model given by name, not to a module")
            self.model, default_identifier = model, type(model).__name__
            self.weights_conversion = None
        else:
            raise SpecError(f"BrainModel: model must be a registry name or a torch.nn.Module, got {type(model).__name__}")
        self.identifier = identifier or default_identifier
        self.stochastic = bool(stochastic)
        self._visual_degrees = visual_degrees
        self.image_size = image_size
        self.extraction = dict(timing=timing, n_steps=n_steps, image_steps=image_steps, seed=seed,
                               max_features=FULL_FEATURES if max_features is None else max_features,
                               batch_size=batch_size, cache=cache, progress=progress, fast=fast)
        self._explicit = {region: self._check_layers(region, [layers] if isinstance(layers, str) else list(layers))
                          for region, layers in (region_layers or {}).items()}
        self._recording: Optional[Tuple[str, List[str], List[Tuple[float, float]]]] = None

    # ------------------------------------------------------------------------------------ the commitment
    def layers(self, region: str) -> List[str]:
        """The layers committed to ``region``: the explicit map, else the model's layer of that name, else the last
        of the released ConvRNN map's layers for it (``zoo run``'s)."""
        if region in self._explicit:
            return list(self._explicit[region])
        mapped = committed_layers(self.model, region)
        if mapped:
            return [mapped[-1]]
        names = list(getattr(self.model, "layer_names", ()))
        raise SpecError(f"BrainModel {self.identifier}: no layer committed to region {region!r}; pass "
                        f"region_layers={{{region!r}: 'layer name'}}" + (f" (layers: {', '.join(names)})" if names else ""))

    @property
    def region_layer_map(self) -> Dict[str, List[str]]:
        """Every committed region's layers (the explicit ones, and V1/V2/V4/IT where a default exists)."""
        result = {}
        for region in dict.fromkeys([*self._explicit, "V1", "V2", "V4", "IT"]):
            try:
                result[region] = self.layers(region)
            except SpecError:
                continue
        return result

    def _check_layers(self, region: str, layers: List[str]) -> List[str]:
        if not layers:
            raise SpecError(f"BrainModel: region_layers[{region!r}] names no layer")
        return check_layers(self.model, layers, where=f"BrainModel {self.identifier}: region_layers[{region!r}]: ")

    def visual_degrees(self) -> float:
        """The field Brain-Score would place stimuli in (its models' default, 8). ``look_at`` itself places nothing:
        each image is resized to fill the input, which equals Brain-Score's placement for a stimulus set shown over
        this many degrees (MajajHong2015's 8)."""
        return self._visual_degrees

    # ------------------------------------------------------------------------------------ Brain-Score's calls
    def start_task(self, task: str, fitting_stimuli=None) -> None:
        if task == Task.passive:
            return
        raise NotImplementedError(
            f"BrainModel {self.identifier}: task {task!r} needs a behavioural read-out this adapter does not have "
            "(label: a mapping of the model's outputs to the task's labels; probabilities and odd_one_out: a read-out "
            "layer committed to behaviour and, for probabilities, a classifier fitted on fitting_stimuli); only "
            "'passive' (neural recordings) is implemented")

    def start_recording(self, recording_target: str, time_bins: Sequence[Tuple[int, int]]) -> None:
        """Record ``recording_target``'s layers in ``time_bins``: ``[(start_ms, end_ms), ...]``, whole ms, in order."""
        layers = self.layers(recording_target)
        self._recording = (recording_target, layers, _check_bins(time_bins))

    def look_at(self, stimuli, number_of_trials: int = 1) -> xr.DataArray:
        """A NeuroidAssembly (presentation, neuroid, time_bin) of the recorded region for ``stimuli``, in their order.

        ``stimuli``: a ``datasets.stimuli.StimulusSet`` (its images are read and resized to ``image_size``; every
        column becomes a presentation coordinate, as in Brain-Score) or the harness's ``Stimuli``.

        ``number_of_trials``: Brain-Score's "number of repeated trials of the stimuli that the model should average
        over ... Non-stochastic models can likely ignore this parameter" (brainscore_vision/model_interface.py,
        ``BrainModel.look_at`` docstring). A model built with ``stochastic=True`` is presented the stimuli that many
        times (fresh draws: the activation cache is not used) and the features are averaged, in float64. Otherwise
        the model runs once -- eval mode, a fixed projection: every trial would be that one -- as Brain-Score's
        ``ModelCommitment`` does for neural benchmarks (``LayerMappedModel.look_at`` passes the number on, but
        ``ActivationsExtractorHelper.__call__`` in model_helpers/activations/core.py uses it only with
        ``require_variance=True``, microsaccades for behavioural benchmarks). ``attrs["trials_averaged"]`` says which."""
        if self._recording is None:
            raise SpecError(f"BrainModel {self.identifier}: call start_recording(region, time_bins) before look_at")
        if isinstance(number_of_trials, bool) or not isinstance(number_of_trials, (int, np.integer)) or number_of_trials < 1:
            raise SpecError(f"look_at: number_of_trials must be a positive integer, got {number_of_trials!r}")
        region, layers, bins = self._recording
        images, presentation, identifier = self._stimuli(stimuli)
        trials = int(number_of_trials) if self.stochastic else 1
        settings = {**self.extraction, "cache": False} if self.stochastic else self.extraction
        features = extract(self.model, images, layers, bins=bins, **settings)
        if trials > 1:
            total = {layer: array.values.astype(np.float64) for layer, array in features.items()}
            for _ in range(trials - 1):
                for layer, array in extract(self.model, images, layers, bins=bins, **settings).items():
                    total[layer] += array.values
            features = {layer: array.copy(data=(total[layer] / trials).astype(array.dtype))
                        for layer, array in features.items()}
        for layer, array in features.items():  # the extraction keeps the stimuli's order; a mismatch is a bug
            if list(array["stimulus_id"].values) != images.ids:
                raise DataError(f"look_at: layer {layer}'s features are not in the stimuli's order")
        neuroid_ids = np.concatenate([features[layer]["neuroid_id"].values for layer in layers])
        layer_of = np.concatenate([features[layer]["layer"].values for layer in layers])
        return make_assembly(
            np.concatenate([features[layer].values for layer in layers], axis=1), presentation,
            neuroid={"neuroid_id": neuroid_ids, "region": np.full(len(neuroid_ids), region), "layer": layer_of},
            time_bin={"time_bin_start": [int(a) for a, _ in bins], "time_bin_end": [int(b) for _, b in bins]},
            attrs={"stimulus_set_identifier": identifier or "", "model": self.identifier, "region": region,
                   "layers": ",".join(layers), "max_features": self.extraction["max_features"],
                   "number_of_trials": int(number_of_trials), "trials_averaged": trials, **self._weights_attrs()})

    def _weights_attrs(self) -> Dict[str, str]:
        """The converted release's label and record (JSON: netCDF attributes hold no dicts), none for other weights."""
        if self.weights_conversion is None:
            return {}
        return {"weights": self.weights_conversion["label"],
                "weights_conversion": json.dumps(self.weights_conversion, sort_keys=True)}

    def _stimuli(self, stimuli) -> Tuple[Stimuli, Dict[str, np.ndarray], Optional[str]]:
        """(the images as the model reads them, presentation coordinates, stimulus set identifier)."""
        if isinstance(stimuli, Stimuli):
            presentation = {"stimulus_id": np.asarray(stimuli.ids)}
            if stimuli.object_name is not None:
                presentation["object_name"] = np.asarray(stimuli.object_name).astype(str)
            return stimuli, presentation, None
        if not hasattr(stimuli, "get_stimulus") or "stimulus_id" not in getattr(stimuli, "columns", ()):
            raise DataError(f"look_at: stimuli must be a StimulusSet (datasets.stimuli: a table with stimulus_id and "
                            f"image files) or Stimuli; got {type(stimuli).__name__}")
        from neurozoo.benchmarks.extraction.images import load_stimulus_set

        images = load_stimulus_set(stimuli, self.image_size)
        presentation = {column: stimuli[column].to_numpy() for column in stimuli.columns}
        presentation["stimulus_id"] = np.asarray(images.ids)  # as strings, the ids the features carry
        return images, presentation, getattr(stimuli, "identifier", None)


def _check_bins(time_bins) -> List[Tuple[float, float]]:
    """Brain-Score's ``[(start_ms, end_ms), ...]``, checked (``datasets.assembly.check_time_bins``, whole ms), as the
    float pairs the benchmarks extract with."""
    try:
        pairs = [(float(a), float(b)) for a, b in time_bins]
    except (TypeError, ValueError):
        raise SpecError(f"start_recording: time_bins must be a list of (start_ms, end_ms) pairs, got {time_bins!r}") from None
    check_time_bins([a for a, _ in pairs], [b for _, b in pairs], "start_recording: time_bins", SpecError, whole_ms=True)
    return pairs
