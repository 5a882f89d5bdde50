"""Neural benchmarks: a model's features against recorded responses, per time bin, with a ceiling.

Layer selection. For ConvRNNs the candidate layers of a region come from the layer-to-area map of
REFERENCE.md section 1 (conv5-conv6 -> V4, conv7-conv10 -> IT); for other models they must be given.
With one candidate, it is scored on all stimuli. With several, the best is chosen on a held-out
*selection* set (``selection_fraction`` of the stimuli, stratified on object_name, seeded) and the winner is
scored with the standard 10-split cross-validation on the remaining stimuli only, so the choice never sees
the stimuli it is scored on. The choice is by the benchmark's own score on the selection set: the normalised
summary (r²/ceiling, ceiling-weighted over the bins with a ceiling above 0) against that set's ceiling, as
Brain-Score's ``LayerSelection`` takes the argmax of the (ceiled) scores its region benchmark returns for each
layer (brainscore_vision/model_helpers/brain_transformation/neural.py at commit 2169179: ``LayerScores._call``
line 135 ``score = benchmark(layer_model)``, ``LayerSelection._call`` line 106 the argmax of those; the unceiled
``.raw`` is only logged). A bin whose ceiling is at or below 0 on the selection set therefore does not steer the
choice, as it does not enter the score. The per-layer selection scores go into the provenance (``layer_selection``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np
import torch
import xarray as xr

from neurozoo.benchmarks.extraction import Stimuli, extract, is_convrnn
from neurozoo.benchmarks.extraction.activations import check_layers
from neurozoo.benchmarks.metrics import internal_consistency, regression_score
from neurozoo.benchmarks.metrics.ceiling import check_repetitions, check_silent
from neurozoo.benchmarks.metrics.regression import brainscore_splits, unsplittable_objects
from neurozoo.benchmarks.metrics.temporal import TemporalScore
from neurozoo.benchmarks.metrics.assembly import assembly_name, average_repetitions, check_assembly, coord, time_bins
from neurozoo.datasets.json_files import json_safe
from neurozoo.datasets.provenance import code_version, device_name, git_commit, sha256_array
from neurozoo.benchmarks.score import Score
from neurozoo.datasets.errors import DataError, SpecError, UserFacingError

#: ConvRNN layer-to-area maps (REFERENCE.md section 1; neuroailab/convrnns README, "Extracting Model Features"): the
#: intermediate models' conv5-conv6 -> V4, conv7-conv8 -> pIT, conv9-conv10 -> cIT/aIT; the shallow models' conv3 ->
#: V4, conv4 -> pIT, conv5 -> cIT/aIT. pIT and cIT/aIT together form "IT".
CONVRNN_REGION_LAYERS: Dict[str, List[str]] = {
    "V4": ["conv5", "conv6"],
    "IT": ["conv7", "conv8", "conv9", "conv10"],
}
CONVRNN_SHALLOW_REGION_LAYERS: Dict[str, List[str]] = {
    "V4": ["conv3"],
    "IT": ["conv4", "conv5"],
}


def convrnn_region_layers(layer_names: Sequence[str], region: str) -> List[str]:
    """The layers of a ConvRNN with ``layer_names`` that the released map gives ``region`` (empty if none): the
    shallow map for the original's 6-node graphs (conv1-conv5), the intermediate map otherwise."""
    names = set(layer_names)
    table = CONVRNN_SHALLOW_REGION_LAYERS if names == {f"conv{i}" for i in range(1, 6)} else CONVRNN_REGION_LAYERS
    return [layer for layer in table.get(region, []) if layer in names]


def committed_layers(model: torch.nn.Module, region: str) -> List[str]:
    """The layers a model commits to ``region`` by itself (empty if none): its layer of that name (the embedded
    teacher, the CORnets), else for a ConvRNN the released map's (:func:`convrnn_region_layers`)."""
    names = list(getattr(model, "layer_names", ()))
    if region in names:
        return [region]
    return convrnn_region_layers(names, region) if is_convrnn(model) else []


@dataclass
class NeuralBenchmark:
    """Span-time (or per-bin) PLS regression of model features onto one region's responses."""

    scale = "ceiled"  # its value is r² / ceiling: what a plugin built on it declares (leaderboard.aggregate.declared)

    identifier: str
    region: str
    load_assembly: Callable[[], xr.DataArray]
    load_stimuli: Callable[[], Stimuli]
    temporal: str = "span"
    mapping: str = "pls"
    data_sha256: Optional[str] = None
    description: str = ""
    selection_fraction: float = 0.2
    seed: int = 0
    extraction: dict = field(default_factory=dict)  # defaults for benchmarks.extraction.extract
    # a unit silent in one half of the repeats (ceiling), or over a split's test stimuli (score): r = 0, or "drop" it
    # from that median as Brain-Score does (internal_consistency/ceiling.py, regression_correlation/metric.py)
    ceiling_silent: str = "zero"

    def __post_init__(self):
        check_silent(self.ceiling_silent)

    @cached_property
    def assembly(self) -> xr.DataArray:
        return check_assembly(self.load_assembly(), self.identifier, require=("stimulus_id", "object_name"))

    @cached_property
    def stimuli(self) -> Stimuli:
        stimuli = self.load_stimuli()
        if not isinstance(stimuli, Stimuli):  # a StimulusSet failed deep in the extraction with an AttributeError
            raise SpecError(f"{self.identifier}: load_stimuli returned a {type(stimuli).__name__}; expected the images "
                            "as the model reads them, a benchmarks.extraction.Stimuli: for a stimulus set (datasets."
                            "stimuli.load_stimulus_set) return benchmarks.extraction.images.load_stimulus_set("
                            "stimulus_set, image_size=224), as benchmarks.neural.dataset_benchmark does")
        return stimuli

    @cached_property
    def stimuli_sha256(self) -> str:
        """sha256 of the stimulus ids and the images as the model reads them: the record's ``data_sha256`` is the
        responses', so a change to the images alone showed in a rerun only as other numbers."""
        return self.stimuli.sha256()

    @cached_property
    def responses_sha256(self) -> str:
        """The record's ``data_sha256``: the one the benchmark was registered with, else of the responses' values and
        coordinates."""
        return self.data_sha256 or sha256_array(self.assembly)

    @cached_property
    def ceiling(self):
        check_repetitions(self.assembly, benchmark=self.identifier)  # refused naming the benchmark and what it needs
        return internal_consistency(self.assembly, silent=self.ceiling_silent)

    @property
    def bins(self):
        start, end = time_bins(self.assembly)
        return [(float(a), float(b)) for a, b in zip(start, end)]

    def candidate_layers(self, model: torch.nn.Module, layers: Optional[Sequence[str]] = None) -> List[str]:
        if layers:  # checked before the stimuli are loaded and any extraction starts
            return check_layers(model, layers, where=f"{self.identifier}: ")
        mapped = committed_layers(model, self.region)
        if mapped:
            return mapped
        if is_convrnn(model) and self.region not in CONVRNN_REGION_LAYERS:
            raise SpecError(f"no ConvRNN layer map for region {self.region!r}; pass layers explicitly")
        # named for the command line too, with the model's own layers (the example 'layer3' was none of a ConvRNN's)
        names = list(getattr(model, "layer_names", ()))
        raise SpecError(f"{self.identifier}: the model commits no layer to region {self.region} (none named so, none on "
                        f"the released ConvRNN layer map): name the layers to score (zoo score --layers A,B; "
                        f"layers=[...] in Python)" + (f"; its layers: {', '.join(names)}" if names else ""))

    def extract(self, model: torch.nn.Module, layers: Sequence[str], **kwargs) -> Dict[str, xr.DataArray]:
        options = {**self.extraction, **kwargs}
        return extract(model, self.stimuli, layers, bins=self.bins, **options)

    def score(self, model: torch.nn.Module, layers: Optional[Sequence[str]] = None, **extract_kwargs) -> Score:
        """Extract the candidate layers, pick one (see module docstring), return its :class:`Score`. Data without a
        ceiling (repeat means: no repetitions to split) is refused after the layers are checked, before the
        extraction: the score is a fraction of the ceiling (``scale``), never a raw r."""
        started = time.perf_counter()
        layers = self.candidate_layers(model, layers)  # checked first: no data is loaded for a layer the model lacks
        check_repetitions(self.assembly, benchmark=self.identifier)
        features = self.extract(model, layers, **extract_kwargs)
        selection = {}
        if len(layers) == 1:
            chosen, stimuli = layers[0], None
        else:
            selection_ids, scoring_ids = self.selection_split()
            selection_set = self._subset(selection_ids)
            splits = selection_splits(selection_set)
            ceiling = internal_consistency(selection_set, silent=self.ceiling_silent)
            scores = {layer: regression_score(features[layer], selection_set, self.mapping, self.temporal,
                                              ceiling=ceiling, splits=splits, silent=self.ceiling_silent)
                      for layer in layers}
            chosen = best_layer(scores, self.identifier)
            selection = {layer: score.value for layer, score in scores.items()}
            stimuli = scoring_ids
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        extra = {"layer": chosen, "candidate_layers": layers, "layer_selection": selection,
                 "selection_fraction": self.selection_fraction if selection else 0.0,
                 "model_class": type(model).__name__, "stimuli_sha256": self.stimuli_sha256,
                 "extraction": extraction_settings({**self.extraction, **extract_kwargs}, model)}
        try:
            return self.score_features(features[chosen], stimulus_ids=stimuli, settings=extra, started=started,
                                       device=device_name(device))
        except DataError as error:  # e.g. too few stimuli per object for the splits: the count it names is not the data's
            if stimuli is None:
                raise
            raise DataError(f"{error} (scored on the {len(stimuli)} stimuli left after the {len(selection_ids)} held out "
                            f"to choose among layers {', '.join(layers)}; one layer, zoo score --layers "
                            f"{chosen} or layers=[{chosen!r}], is scored on all)") from None

    def score_features(self, features: xr.DataArray, stimulus_ids: Optional[Sequence[str]] = None,
                       settings: Optional[dict] = None, started: Optional[float] = None, device: Optional[str] = None) -> Score:
        """Score precomputed features (presentation, neuroid, time_bin) against this benchmark's data."""
        started = time.perf_counter() if started is None else started
        assembly = self.assembly if stimulus_ids is None else self._subset(stimulus_ids)
        ceiling = self.ceiling if stimulus_ids is None else internal_consistency(assembly, silent=self.ceiling_silent)
        temporal = regression_score(features, assembly, self.mapping, self.temporal, ceiling=ceiling,
                                    silent=self.ceiling_silent)
        provenance = {
            "code_version": code_version(), "git_commit": git_commit(),
            "data_sha256": self.responses_sha256, "seed": self.seed,
            "device": device or "cpu", "duration_s": time.perf_counter() - started,
        }
        score = Score.from_temporal(temporal, provenance)
        score.provenance["settings"].update({"benchmark": self.identifier, "region": self.region,
                                             "n_stimuli": int(len(np.unique(coord(assembly, "stimulus_id")))),
                                             "extraction": self.extraction, **(settings or {})})
        if self.ceiling_silent != "zero":  # the default is left out, so earlier records keep their settings
            score.provenance["settings"]["ceiling_silent"] = self.ceiling_silent
        return score

    def selection_split(self):
        from sklearn.model_selection import StratifiedShuffleSplit

        target = average_repetitions(self.assembly)
        ids, objects = coord(target, "stimulus_id"), coord(target, "object_name")
        splitter = StratifiedShuffleSplit(n_splits=1, test_size=self.selection_fraction, random_state=self.seed)
        try:
            scoring, selection = next(splitter.split(np.zeros(len(ids)), objects))
        except ValueError as error:  # sklearn's: an object with one stimulus, or more objects than held-out stimuli
            raise DataError(f"{self.identifier}: coordinate 'object_name' gives " + unsplittable_objects(
                objects, f"the layer-selection hold-out ({self.selection_fraction:.0%} of the stimuli, stratified on "
                f"objects) cannot split ({error}); expected several stimuli per object, or score one layer on all "
                "stimuli (zoo score --layers LAYER, layers=[LAYER])")) from None
        return ids[np.sort(selection)], ids[np.sort(scoring)]

    def _subset(self, stimulus_ids) -> xr.DataArray:
        """The assembly's presentations of ``stimulus_ids``; ids it does not hold are refused (``isin`` passed them
        over, so a typo or another benchmark's ids scored a smaller subset than asked, without a word)."""
        ids = coord(self.assembly, "stimulus_id")
        wanted = np.asarray(stimulus_ids)
        unknown = [str(i) for i in dict.fromkeys(wanted[~np.isin(wanted, ids)].tolist())]
        if unknown:
            shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
            raise DataError(f"{self.identifier}: {len(unknown)} of the {len(set(wanted.tolist()))} stimulus ids asked "
                            f"for are not in its data ({shown}); expected ids of its stimulus_id coordinate")
        keep = np.isin(ids, wanted)
        return self.assembly.isel(presentation=np.flatnonzero(keep))


def extraction_settings(options: Mapping, model: Optional[torch.nn.Module] = None) -> dict:
    """The options :func:`benchmarks.extraction.extract` was given, as a score's record keeps them: a time mapping
    by its tables (``describe()``, as the activation cache key has it); those that change no feature
    (:data:`UNRECORDED`: the cache, whose entries are keyed by all the rest, and the progress bar) left out, so that
    a rerun without the cache (``zoo reproduce``) records the same. The record kept the benchmark's defaults only (``{}`` for every
    registered one), so ``score(model, max_features=200, n_steps=30)`` was recorded as a default extraction.

    Beside them, what ``extract`` took by default, as it resolved it: :data:`RECORDED_DEFAULTS` (the projection's
    size and seed, the batch size), and for a ConvRNN ``model`` the unroll (``n_steps``, ``image_steps``) and the
    inference path (``inference``: :func:`~benchmarks.extraction.activations.inference_settings`, the fast path's
    options on the model's device, or the reference path); until 2026-12-05 a default changed since showed in a
    rerun as other numbers only. Without ``model`` (a submission, extracted in its sandbox) the scalar defaults
    only."""
    import inspect

    from neurozoo.benchmarks.extraction.activations import inference_options, inference_settings

    recorded = {key: value for key, value in options.items() if key not in UNRECORDED}
    describe = lambda table: table.describe() if hasattr(table, "describe") else table  # noqa: E731
    timing = recorded.get("timing")
    if isinstance(timing, Mapping):
        recorded["timing"] = {layer: describe(table) for layer, table in timing.items()}
    elif timing is not None:
        recorded["timing"] = describe(timing)
    defaults = {name: parameter.default for name, parameter in inspect.signature(extract).parameters.items()}
    recurrent = model is not None and is_convrnn(model)
    for name in RECORDED_DEFAULTS + (("n_steps", "image_steps") if recurrent else ()):
        recorded.setdefault(name, defaults[name])
    if recurrent:
        recorded["inference"] = inference_settings(inference_options(model, options.get("fast")))
    return json_safe(recorded)


#: extract()'s defaults that a score's record states where they were not given (:func:`extraction_settings`)
RECORDED_DEFAULTS = ("max_features", "seed", "batch_size")


#: the extraction options a score's record leaves out (:func:`extraction_settings`)
UNRECORDED = ("cache", "model_hash", "progress", "safe_point", "cache_progress")


class DataOnlyBenchmark:
    """A benchmark with recordings but no images: it scores no image-computable model."""

    identifier = ""

    def score(self, model=None, *args, **kwargs) -> Score:
        raise UserFacingError(
            f"{self.identifier} has no stimulus images, so it scores no image-computable model; "
            f"its data-only analysis is neurozoo.benchmarks.load({self.identifier!r}).analyze() in Python "
            "(docs/benchmarks.md, Real-data benchmarks)")


# ------------------------------------------------------------------------------------- registered data sets
def _recording(dataset: str, **kwargs):
    """``datasets.load(dataset)``, loaded once per process."""
    key = (dataset, tuple(sorted(kwargs.items())))
    if key not in _RECORDINGS:
        from neurozoo import datasets

        _RECORDINGS[key] = datasets.load(dataset, **kwargs)
    return _RECORDINGS[key]


_RECORDINGS: dict = {}


def dataset_benchmark(identifier: str, dataset: str, region: str, image_size: Optional[int] = 224, temporal: str = "span",
                      load_kwargs: Optional[dict] = None, description: str = "",
                      ceiling_silent: str = "zero") -> NeuralBenchmark:
    """A :class:`NeuralBenchmark` on a registered data set (assembly + stimulus set with images).

    ``image_size``: images are resized to it (224: ImageNet models); None keeps the stimulus set's own size.
    ``ceiling_silent``: ``internal_consistency``'s and ``regression_score``'s ``silent`` ("zero", or Brain-Score's
    "drop").
    """
    from neurozoo.benchmarks.extraction.images import load_stimulus_set

    load_kwargs = load_kwargs or {}
    return NeuralBenchmark(
        identifier, region,
        load_assembly=lambda: _recording(dataset, **load_kwargs).assembly,
        load_stimuli=lambda: load_stimulus_set(_recording(dataset, **load_kwargs).stimulus_set, image_size),
        temporal=temporal, description=description, ceiling_silent=ceiling_silent)


class DecodingBenchmark(DataOnlyBenchmark):
    """Object decoding accuracy over time and the split-half ceiling per bin, from recordings without images."""

    def __init__(self, identifier: str, dataset: str, n_splits: int = 10, ceiling_silent: str = "zero"):
        self.identifier = identifier
        self.dataset = dataset
        self.n_splits = n_splits
        self.ceiling_silent = check_silent(ceiling_silent)

    @cached_property
    def assembly(self) -> xr.DataArray:
        return check_assembly(_recording(self.dataset).assembly, self.identifier, require=("stimulus_id", "object_name"))

    def analyze(self):
        """Per-bin table: time_bin_start, time_bin_end, accuracy, accuracy_error, chance, ceiling, ceiling_error."""
        import pandas as pd

        from neurozoo.benchmarks.metrics.decoding import decoding_time_course

        course = decoding_time_course(self.assembly, n_splits=self.n_splits)
        ceiling = internal_consistency(self.assembly, silent=self.ceiling_silent)
        return pd.DataFrame({"time_bin_start": course.bin_start, "time_bin_end": course.bin_end,
                             "accuracy": course.accuracy, "accuracy_error": course.error, "chance": course.chance,
                             "ceiling": ceiling.per_bin, "ceiling_error": ceiling.error_per_bin})


def best_layer(scores: Mapping[str, TemporalScore], benchmark: str = "benchmark") -> str:
    """The layer whose score on the selection set (:attr:`TemporalScore.value`: normalised when the score has a
    ceiling) is highest; a layer without one (NaN) is passed over. First in order on a tie."""
    values = {layer: score.value for layer, score in scores.items()}
    candidates = [layer for layer, value in values.items() if np.isfinite(value)]
    if not candidates:
        raise DataError(f"{benchmark}: no candidate layer ({', '.join(values)}) has a score on the layer-selection "
                        "stimuli (no time bin there has a ceiling above 0); pass the one layer to score")
    return max(candidates, key=values.get)


def selection_splits(assembly: xr.DataArray):
    """Brain-Score's stratified splits over a (small) layer-selection set, with a test share large enough
    to hold every object at least once (a 10 % test share of 58 stimuli cannot hold 8 objects)."""
    target = average_repetitions(assembly)
    objects = coord(target, "object_name")
    n, k = target.sizes["presentation"], len(set(objects)) if objects is not None else 1
    test_share = min(0.5, max(0.1, np.ceil(k * 1.0) / n))
    return brainscore_splits(objects, train_size=1.0 - test_share, n_presentations=n, name=assembly_name(assembly))
