"""``retina_embedded.osr``: does a retina model fitted to the embedded ground-truth retina show the
omitted-stimulus response, with the ground truth's latency-vs-period slope?

Protocol (:mod:`retina.phenomena.osr`): 2-frame dark flashes of intensity -2, 8 per train, then one omitted;
periods 6-16 frames; latency = centroid of the response after the last flash; a cell shows an OSR when the
slope of latency against period is within 1 +- 0.25 with R^2 >= 0.8 and the post-omission peak is at least
twice the train's per-flash peak at every period (a cell the train evoked nothing in shows no OSR: call
version 2; a rise at float32 rounding level, not above 1e-6 of the cell's rate, has no latency: call version 3; nor
does a train's per-flash peak at that level count as a response to it: call version 4; that floor is relative alone,
without version 4's absolute 1e-12 spikes/s beside it: call version 5; recorded in the settings). The
same analysis runs on the circuit that generated the recording, whose six ON-OFF cells show the OSR by construction (a
summed, high-threshold rectified ON pathway vetoed by a rectified OFF pathway through a depressing amacrine synapse;
:mod:`datasets.synthetic_retina`).

Score: mean, over the cells in which the ground truth shows an OSR, of ``called * clip(1 - |slope_model -
slope_truth| / |slope_truth|, 0, 1)`` (``called``: the model shows an OSR in that cell). 1 = every OSR
cell reproduced with the right slope; 0 = no OSR anywhere. ``raw``: fraction of those cells with a model
OSR. Per-cell rows go to ``per_bin``. The model is a ``retina.MODELS`` name (fitted here on the
recording's training split, cached and shared with the held-out benchmark) or an already fitted module.
Measured scores: docs/retina.md ("Measured").
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional

from neurozoo.benchmarks import BENCHMARKS
from neurozoo.benchmarks.retina import fitted_or_given, ground_truth, phenomenon_provenance, probed_device, stoppable
from neurozoo.benchmarks.score import Score
from neurozoo.datasets.termination import SafePoint
from neurozoo.datasets.torch_devices import auto_device


@dataclass
class OSRBenchmark:
    kind: str = "whitenoise"
    periods: tuple = (6, 8, 10, 12, 14, 16)
    sizes: dict = field(default_factory=dict)
    fit_settings: dict = field(default_factory=dict)

    identifier = "retina_embedded.osr"

    def score(self, model, seed: int = 0, device: str = "cpu", progress: bool = True,
              safe_point: Optional[SafePoint] = None, **fit_overrides) -> Score:
        """``safe_point()``: called before each flash train the circuit and the model are probed with (``zoo
        score``'s, :data:`datasets.termination.SafePoint`; the score is the same)."""
        from neurozoo.retina.phenomena.osr import compare_to_ground_truth, omitted_stimulus_response

        started = time.perf_counter()
        device = auto_device(device)  # "auto": the device it gives, which the fit uses and the score records
        name, module, info = fitted_or_given(self, model, seed, device, progress, fit_overrides)
        truth = omitted_stimulus_response(stoppable(ground_truth(safe_point), safe_point), periods=self.periods)
        fitted = omitted_stimulus_response(stoppable(module, safe_point), periods=self.periods)
        result = compare_to_ground_truth(fitted, truth)
        provenance_ = phenomenon_provenance(self, name, info, seed, probed_device(model, module, device), started,
                                            osr=fitted.settings,
                                            model_osr=fitted.summary(), truth_osr=truth.summary(),
                                            model_shows_osr=result["model_shows_osr"])
        return Score(value=result["value"], raw=result["osr_fraction"], per_bin=result["cells"], provenance=provenance_)


BENCHMARKS.add("retina_embedded.osr", OSRBenchmark,
               description="omitted-stimulus response of a retina model fitted to the embedded ground-truth retina: "
                           "OSR call and latency-vs-period slope match per ground-truth OSR cell", family="retina",
               # version: retina.phenomena.osr.CALL_VERSION (not imported: scipy at zoo start); scale None: no ceiling,
               # not averaged with ceiled scores (leaderboard.aggregate)
               region="phenomena", version=5, embedded=True, scale=None)


@dataclass
class OSRMechanismBenchmark:
    """``retina_embedded.osr-mechanism``: are a fitted model's most important first-layer units, for the
    post-omission response of each ground-truth OSR cell, the circuit's ON-like and OFF-like pathways?
    (:mod:`retina.mechanism`: integrated gradients around the post-omission response, channels typed by their
    correlation with the circuit's pathways, reduction with the other units at their baseline activity.)
    Score: mean per-cell score (1: both pathways among the top 2 units; 0.5: one; 0: none). A model without
    first-layer units (LN, GLM) has no pathway to recover and scores 0. ``raw``: fraction of cells whose
    reduced model (top 2 units) keeps the OSR, called by :func:`retina.phenomena.osr.omitted_stimulus_response`,
    whose call version is in the settings (``osr_call_version``) and counts in the registered version (below)."""

    kind: str = "whitenoise"
    k: int = 2
    sizes: dict = field(default_factory=dict)
    fit_settings: dict = field(default_factory=dict)

    identifier = "retina_embedded.osr-mechanism"

    def score(self, model, seed: int = 0, device: str = "cpu", progress: bool = True,
              safe_point: Optional[SafePoint] = None, **fit_overrides) -> Score:
        """``safe_point()``: called between the stages of the analysis, down to each integrated-gradients step and
        each probe stimulus (``zoo score``'s, :data:`datasets.termination.SafePoint`; the score is the same:
        :func:`retina.mechanism.mechanism_recovery`)."""
        from neurozoo.retina.mechanism import mechanism_recovery
        from neurozoo.retina.phenomena.osr import CALL_VERSION

        started = time.perf_counter()
        device = auto_device(device)  # "auto": the device it gives, which the fit uses and the score records
        name, module, info = fitted_or_given(self, model, seed, device, progress, fit_overrides)
        if all(hasattr(module, a) for a in ("conv1", "layer1", "layer2", "readout")):
            result = mechanism_recovery(module, ground_truth(safe_point), k=self.k, safe_point=safe_point)
            raw = float(sum(r.get("reduced_osr", False) for r in result["cells"]) / max(len(result["cells"]), 1))
        else:
            result = {"value": 0.0, "cells": [], "channels": {}, "note": "no first-layer units to attribute"}
            raw = 0.0
        provenance_ = phenomenon_provenance(self, name, info, seed, probed_device(model, module, device), started,
                                            k=self.k,
                                            osr_call_version=CALL_VERSION, mechanism=result)
        return Score(value=result["value"], raw=raw, per_bin=result["cells"], provenance=provenance_)


BENCHMARKS.add("retina_embedded.osr-mechanism", OSRMechanismBenchmark,
               description="mechanism recovery on the omitted-stimulus response: are a fitted model's top first-layer "
                           "units (integrated gradients after the omission) the ground truth's ON and OFF pathways",
               # version 2: the reduced model's OSR under call version 4 (a latency or a train's peak at float32
               # rounding level is no response; unversioned (1) before, under call version 2), which can change raw
               # and the per-cell reduced_osr and reduced_slope (not the score, from the ranking alone); 3: under call
               # version 5 (the latency's floor relative alone, without an absolute 1e-12 spikes/s)
               family="retina", region="phenomena", version=3, embedded=True, scale=None)
