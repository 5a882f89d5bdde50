"""``retina_embedded.contrast-adaptation``, ``.oms``, ``.paired-flash`` and ``.frequency-doubling``: does a retina
model fitted to the embedded ground-truth retina adapt to contrast, is it object-motion sensitive, is its response to
a second flash depressed, and does it answer a reversing grating at twice its frequency, cell by cell as the circuit
that generated the recording?

Analyses (:mod:`retina.phenomena.adaptation`, :mod:`retina.phenomena.analyses`), run on the model and on the ground-truth circuit
(``datasets.synthetic_retina.default_retina()``; for OMS the object-motion circuit, ``datasets.oms_retina``) with
the same stimuli:

* contrast adaptation: white noise switching between sd 0.3 and 1.0 every 200 frames, 12 cycles (the
  ``zoo probe adaptation`` defaults); index = ``adaptation_index``: the mean rate in frames 40-70 after the switch
  up vs the block's last 30 frames, whose stimulus replays theirs, so that a model without memory beyond its
  40-frame window (LN, GLM, BN-CNN) scores 0 (``index_version`` 4 in the settings; version 1, frames 10-40 vs the
  block's second half, gave such models up to 0.145: :func:`retina.phenomena.contrast_adaptation`; version 3 keeps
  version 2's windows and gives a cell without a rate above rounding level in them, a silent cell, no index where
  version 2 read 0: its per-cell ``model_index`` is null, its score 0 as before; version 4 gives an index whose
  windows differ by rounding alone 0, where version 3 divided the rounding: a per-cell ``model_index`` of -2e-8 is
  0);
* OMS (``protocol_version`` 2): a jittered grating disc (radius 12 px, 4-px bars, contrast 0.3) centred on each cell's
  receptive field, global vs differential jitter, 400 frames per movie (the first 100 settle); index = ``oms_index``,
  each condition's response the mean over four movies (``balanced``: both jitter paths in each role, the background's
  grating and its contrast inverse). Scored on the six OMS cells of the object-motion circuit
  (:mod:`datasets.oms_retina`, after Olveczky, Baccus & Meister 2003: transient OFF subunits in the centre, inhibited
  at once by a polyaxonal amacrine pooling rectified ON-OFF transient subunits over an annulus 14-24 px around the
  cell), which is its ground truth and records ``embedded:oms-whitenoise``, the recording its models are fitted on.
  Its index is 0.82-0.88 (jitter seed 0), and agrees with itself at seeds 1-5 (0.90-0.97); without the annulus
  inhibition, or with it linear, it is 0 (score 0); fixed LN cells with a linear centre-surround and any static
  nonlinearity score at most 0.003. Version 1 (one movie per condition, the default circuit's ON and OFF cells) was a
  known false positive: that circuit has no coherence-specific suppression (its index, 0.02-0.06, followed the jitter
  seed: 0.027 against itself at another seed) and a sigmoid LN cell with a linear surround scored 0.48; with one
  movie per condition such a cell still scores 0.18 against the new circuit (docs/retina.md, "OMS").
* paired flash (``protocol_version`` 2): two 2-frame bright flashes (intensity 2) 45 frames apart
  (:func:`retina.phenomena.paired_flash`); index = 1 - the second response's recovery: the depression of the ON-OFF
  cells' ON terminal, whose pool refills over 150 frames (``osr_terminal_recovery``); held full, the index is -0.015
  to -0.006. ON-OFF cells only (the ON cells' recovery at 45 frames is 1.00-1.01, the OFF cells are not excited). The
  gap is longer than any model window of up to 44 frames, so that a model without memory beyond its 40-frame window
  (LN, BN-CNN; fixed LN cells with any static nonlinearity) answers the second flash exactly as the first: index 0 up
  to rounding. Version 1, two dark flashes 4 frames apart on the OFF cells, measured a depression that was over
  within 8 frames, inside such a window, where saturating fixed LN cells summed the flashes sublinearly too and
  scored 0.27-0.78 (docs/retina.md, "Wrong model classes on the phenomenon benchmarks").
* frequency doubling: a contrast-reversing grating of 8 px bars (:func:`retina.phenomena.reversing_grating`);
  index = log2(F2/F1): positive when a cell answers every reversal more than the grating's own frequency
  (nonlinear subunits), negative for a nearly linear receptive field, so the sign term of the score is the doubling
  call (F2/F1 itself is never negative, and a linear model's 0.35 would earn a third of the credit). ON and OFF
  cells (the ON-OFF cells carry the OSR circuit). Undefined (NaN, scored 0) where F2 or F1 is at rounding level
  (:func:`retina.phenomena.rounding.above_rounding`; ``index_version`` 2 in the settings): a linear cell, whose F2
  is float rounding, had been given log2 of the ratio's 1e-12 floor, -39.9, and a full-wave LN cell, whose F1 is,
  52.5-53.0 (``raw`` 1, now 0).

  Both need their mechanism in the circuit: with the ON terminal's pool held full the depression index is -0.015 to
  -0.006 (score 0; tests/test_phenomena_benchmarks.py), with linear subunits F2/F1 falls from 0.99-1.51 to 0.14-0.26
  (tests/test_phenomena_circuit.py). On this benchmark's grating the circuit's doubling is carried by its subunits'
  depleting terminals: without them (rectification kept) log2(F2/F1) is negative in every cell, and so is every
  fixed LN cell's (tests/test_phenomena_benchmarks.py). Step transience and
  latency coding are not scored: a linear filter reproduces them here (docs/retina.md, "Phenomena on the ground truth").

Score: mean over the cells whose ground-truth index is defined (finite) of
``same_sign * clip(1 - |model - truth| / |truth|, 0, 1)``; a cell whose model index is undefined (no motion
response) counts 0. 1 = every cell's index reproduced exactly; 0 = no cell with the truth's sign within 100 %
of its size. ``raw``: fraction of those cells whose model index has the truth's sign. A model index within 1e-6
of 0 has no sign (:data:`retina.phenomena.rounding.ROUNDING_FLOOR`: a model whose index is 0 by construction gets a
few float32 eps; a fitted model's smallest real index measured is 2.5e-5, the circuit's 0.022) and counts as not
matching, in ``raw`` and in the score: ``score_version`` 2 in the settings; version 1 counted the sign of rounding
noise (the BN-CNN's paired-flash raw 0.83, its score ~0). Per-cell rows (cell, model index, truth index, agreement)
go to ``per_bin``. The model is a ``retina.MODELS`` name (fitted here
exactly as in :mod:`benchmarks.osr`, so the fit is shared with the OSR and held-out benchmarks) or any system
:func:`retina.phenomena.responder.as_responder` accepts (a fitted module, the circuit, a callable).

Measured scores of converged fits: docs/retina.md ("Measured").

The known false positives of OMS (version 1: 0.48 for a sigmoid LN cell with a linear surround) and paired flash
(version 1: 0.27-0.78 for saturating LN cells) are gone with their protocol versions 2 (docs/retina.md, "Wrong model
classes on the phenomenon benchmarks"; tests/test_phenomena_benchmarks.py).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from typing import Optional

import numpy as np

from neurozoo.benchmarks import BENCHMARKS
from neurozoo.benchmarks.retina import fitted_or_given, ground_truth, phenomenon_provenance, probed_device, stoppable
from neurozoo.benchmarks.score import Score
from neurozoo.datasets.registry import forwards_keywords
from neurozoo.datasets.termination import SafePoint
from neurozoo.datasets.torch_devices import auto_device

# index_version: retina.phenomena.adaptation.INDEX_VERSION, written out (importing it loads scipy on every zoo start);
# contrast_adaptation refuses any other, so the two cannot drift apart unnoticed
ADAPTATION = {"low": 0.3, "high": 1.0, "block": 200, "cycles": 12, "seed": 0, "index_version": 4}
# protocol_version 2: the balanced protocol on the object-motion circuit's cells (embedded:oms-whitenoise; version 1:
# the default circuit's ON and OFF cells, one movie per condition: a known false positive); _oms refuses any other
OMS = {"n_frames": 400, "radius": 12.0, "seed": 0, "min_response": 1.0, "protocol_version": 2}
# protocol_version 2: the ON-OFF cells' depression 45 frames on, beyond a 40-frame model window (version 1: dark
# flashes 4 frames apart, OFF cells; a known false positive); _paired_flash refuses any other
PAIRED_FLASH = {"gap": 45, "flash_frames": 2, "intensity": 2.0, "protocol_version": 2}
# index_version 2: log2(F2/F1) undefined (NaN, scored 0) where F2 or F1 is at rounding level (version 1, before it was
# recorded: log2 of rounding, -39.9 for a linear cell, 52.5-53.0 for a full-wave LN cell, raw 1 there);
# _frequency_doubling refuses any other
FREQUENCY_DOUBLING = {"bar_width": 8, "half_period": 25, "n_reversals": 10, "index_version": 2}


# The score's own version (how indices are compared, :func:`agreement`), recorded in every score's settings
# (``score_version``) and part of each benchmark's registered version (below). 2: a model index within
# retina.phenomena.rounding.ROUNDING_FLOOR (1e-6) of 0 has no sign, so it matches no truth; version 1 counted the
# sign of float32 rounding noise in ``raw`` (the BN-CNN's paired flash: raw 0.83 at a score of ~0)
SCORE_VERSION = 2

#: What each score version changed, as ``zoo reproduce`` tells a record of an earlier version whose numbers differ
SCORE_VERSION_CHANGES = {2: "a model index within 1e-6 of 0 has no sign since; version 1 counted the sign of float32 "
                            "rounding noise in raw"}


def agreement(model, truth) -> dict:
    """Per-cell ``same_sign * clip(1 - |model - truth| / |truth|, 0, 1)`` over the cells with a finite truth
    index (a NaN model index scores 0; ``same_sign``: :func:`retina.phenomena.adaptation.has_truths_sign`, so a model
    index within 1e-6 of 0, rounding noise, has no sign and scores 0): ``value`` (mean), ``same_sign`` (fraction) and
    per-cell ``cells`` rows."""
    from neurozoo.retina.phenomena.adaptation import has_truths_sign

    model, truth = np.asarray(model, float), np.asarray(truth, float)
    rows, scores, signs = [], [], []
    for cell, (m, t) in enumerate(zip(model, truth)):
        row = {"cell": cell, "model_index": float(m) if np.isfinite(m) else None,
               "truth_index": float(t) if np.isfinite(t) else None, "agreement": None}
        if np.isfinite(t):
            same = bool(has_truths_sign(m, t))
            a = float(same * np.clip(1 - abs(m - t) / max(abs(t), 1e-12), 0, 1)) if same else 0.0
            row["agreement"] = a
            scores.append(a)
            signs.append(same)
        rows.append(row)
    return {"value": float(np.mean(scores)) if scores else 0.0,
            "same_sign": float(np.mean(signs)) if signs else 0.0, "cells": rows}


def _adaptation(system, settings):
    from neurozoo.retina.phenomena.adaptation import contrast_adaptation

    return contrast_adaptation(system, **settings)["adaptation_index"]


def oms_arguments(settings: dict) -> dict:
    """:func:`retina.phenomena.adaptation.object_motion_sensitivity`'s keywords for the OMS benchmark's ``settings``
    (:data:`OMS` and its overrides): the object-motion circuit's cell positions as the centres, the balanced protocol
    and the settings without ``protocol_version``, which must be :data:`OMS`'s (the one definition of the protocol,
    which ``zoo probe oms`` runs too)."""
    from neurozoo.datasets.errors import SpecError
    from neurozoo.datasets.oms_retina import oms_retina

    settings = dict(settings)
    version = settings.pop("protocol_version")
    if version != OMS["protocol_version"]:
        raise SpecError(f"retina_embedded.oms: protocol_version {version!r}: only {OMS['protocol_version']} is "
                        "measured (version 1, one movie per condition on the default circuit's cells, scored fixed LN "
                        "cells with a linear surround 0.48 and its truth changed with the jitter seed)")
    return {"centres": oms_retina().positions, "balanced": True, **settings}


def _oms(system, settings):
    from neurozoo.retina.phenomena.adaptation import object_motion_sensitivity

    return object_motion_sensitivity(system, **oms_arguments(settings))["oms_index"]


def _cells_of(*kinds) -> np.ndarray:
    from neurozoo.datasets.synthetic_retina import default_retina

    return np.isin(np.array(default_retina().cell_types), kinds)


def _paired_flash(system, settings):
    from neurozoo.datasets.errors import SpecError
    from neurozoo.retina.phenomena.analyses import paired_flash

    if settings["protocol_version"] != PAIRED_FLASH["protocol_version"]:
        raise SpecError(f"retina_embedded.paired-flash: protocol_version {settings['protocol_version']!r}: only "
                        f"{PAIRED_FLASH['protocol_version']} is measured (version 1, dark flashes 4 frames apart on "
                        "the OFF cells, scored saturating fixed LN cells up to 0.78)")
    recovery = paired_flash(system, gaps=(settings["gap"],), flash_frames=settings["flash_frames"],
                            intensity=settings["intensity"])["recovery"][:, 0]
    return np.where(_cells_of("onoff"), 1.0 - recovery, np.nan)


def _frequency_doubling(system, settings):
    from neurozoo.datasets.errors import SpecError
    from neurozoo.retina.phenomena.analyses import reversing_grating

    settings = dict(settings)
    version = settings.pop("index_version")
    if version != FREQUENCY_DOUBLING["index_version"]:
        raise SpecError(f"retina_embedded.frequency-doubling: index_version {version!r}: only "
                        f"{FREQUENCY_DOUBLING['index_version']} is measured (version 1 gave F2 or F1 at rounding level "
                        "a log2 of noise: -39.9 for a linear cell)")
    ratio = reversing_grating(system, **settings)["f2_f1"]  # > 0, or NaN where F1 or F2 is at rounding level
    return np.where(_cells_of("on", "off"), np.log2(ratio), np.nan)


# phenomenon -> (analysis, its default settings, the registered benchmark's description)
PHENOMENA = {
    "contrast-adaptation": (_adaptation, ADAPTATION, "contrast adaptation of a retina model fitted to the embedded "
                            "ground-truth retina: per-cell adaptation index (early vs late rate after a switch to "
                            "high contrast) vs the ground truth's"),
    "oms": (_oms, OMS, "object-motion sensitivity of a retina model fitted to the embedded object-motion circuit "
            "(embedded:oms-whitenoise): per-cell OMS index (differential vs global jitter, each the mean of both "
            "jitter paths in each role and of the background's grating and its inverse) vs the ground truth's (its "
            "annulus amacrine's rectified, transient inhibition; protocol version 2)"),
    "paired-flash": (_paired_flash, PAIRED_FLASH, "paired-flash depression of a retina model fitted to the embedded "
                     "ground-truth retina: per-ON-OFF-cell depression of the response to a second bright flash 45 "
                     "frames after the first (beyond a 40-frame model window) vs the ground truth's (the ON terminal's "
                     "slowly refilling pool; protocol version 2)"),
    "frequency-doubling": (_frequency_doubling, FREQUENCY_DOUBLING, "frequency doubling of a retina model fitted to "
                           "the embedded ground-truth retina: per-cell log2(F2/F1) to a contrast-reversing grating "
                           "(ON and OFF cells) vs the ground truth's (its nonlinear subunits)"),
}


#: the embedded recording a phenomenon's models are fitted on, whose circuit is its ground truth (the others':
#: ``whitenoise``, the default circuit)
KIND = {"oms": "oms-whitenoise"}


def _truth(phenomenon: str, settings: tuple, safe_point: Optional[SafePoint] = None,
           kind: Optional[str] = None) -> np.ndarray:
    """The index of the ground-truth circuit that recorded ``kind`` (default: the phenomenon's, :data:`KIND`)
    (deterministic; computed once per process, phenomenon, kind and settings, ``safe_point()`` called before each
    stimulus: :func:`benchmarks.retina.stoppable`; a stop while the circuit is built is taken at once:
    :func:`benchmarks.retina.ground_truth`)."""
    kind = kind or KIND.get(phenomenon, "whitenoise")
    key = (phenomenon, kind, settings)
    if key not in _TRUTHS:
        if len(_TRUTHS) >= 8:
            _TRUTHS.pop(next(iter(_TRUTHS)))
        _TRUTHS[key] = PHENOMENA[phenomenon][0](stoppable(ground_truth(safe_point, kind), safe_point), dict(settings))
    return _TRUTHS[key]


_TRUTHS: dict = {}  # _truth's, by phenomenon and settings (at most 8, the oldest dropped first)


@dataclass
class PhenomenonBenchmark:
    phenomenon: str
    kind: Optional[str] = None  # the phenomenon's recording (KIND; else whitenoise)
    analysis: dict = field(default_factory=dict)
    sizes: dict = field(default_factory=dict)
    fit_settings: dict = field(default_factory=dict)

    def __post_init__(self):
        expected = KIND.get(self.phenomenon, "whitenoise")
        if self.kind is None:
            self.kind = expected
        from neurozoo.datasets.synthetic_retina import OMS_KINDS

        if (self.kind in OMS_KINDS) != (expected in OMS_KINDS):
            from neurozoo.datasets.errors import SpecError

            raise SpecError(f"{self.identifier}: kind {self.kind!r}: its models are fitted on a recording of the "
                            f"circuit whose cells it compares them with, embedded:{expected}'s")

    @property
    def identifier(self) -> str:
        return f"retina_embedded.{self.phenomenon}"

    def settings(self) -> dict:
        return {**PHENOMENA[self.phenomenon][1], **self.analysis}

    def score(self, model, seed: int = 0, device: str = "cpu", progress: bool = True,
              safe_point: Optional[SafePoint] = None, **fit_overrides) -> Score:
        """``safe_point()``: called before each stimulus the circuit and the model are probed with, and between the
        chunks of a long one the model answers (``zoo score``'s, :data:`datasets.termination.SafePoint`; the score is
        the same)."""
        started = time.perf_counter()
        device = auto_device(device)  # "auto": the device it gives, which the fit uses and the score records
        name, module, info = fitted_or_given(self, model, seed, device, progress, fit_overrides)
        analysis = self.settings()
        truth = _truth(self.phenomenon, tuple(sorted(analysis.items())), safe_point, self.kind)
        fitted = PHENOMENA[self.phenomenon][0](stoppable(module, safe_point), analysis)
        result = agreement(fitted, truth)
        plain = [None if not np.isfinite(v) else float(v) for v in fitted]
        provenance_ = phenomenon_provenance(self, name, info, seed, probed_device(model, module, device), started,
                                            phenomenon=self.phenomenon, analysis=analysis, score_version=SCORE_VERSION,
                                            model_index=plain,
                                            truth_index=[None if not np.isfinite(v) else float(v) for v in truth])
        return Score(value=result["value"], raw=result["same_sign"], per_bin=result["cells"], provenance=provenance_)


def _factory(phenomenon: str):
    @forwards_keywords(lambda: partial(PhenomenonBenchmark, phenomenon))  # keywords checked against the class's
    def create(**kwargs) -> PhenomenonBenchmark:
        return PhenomenonBenchmark(phenomenon, **kwargs)

    return create


def registered_version(settings: dict) -> int:
    """The benchmark's version in zoo run's job key (:func:`leaderboard.zoo.benchmark_version`: a score of another
    version is outdated, not ranked beside current ones): one number, 1 plus every change of its definition, the
    measure's (``index_version`` / ``protocol_version`` in its settings, 1 where it has none) and the score's
    (:data:`SCORE_VERSION`). Summed rather than replacing the measure's versions, which keep their meaning in the
    settings (index version 2 is the replayed windows whatever the score's version): paired flash and OMS 3 (measure
    2, score 2), contrast adaptation 5 (index version 4: a silent cell's index is undefined, one of windows that
    differ by rounding alone 0), frequency doubling 3
    (index version 2: F2 or F1 at rounding level gives no index; unversioned before the score's version 2)."""
    measure = next((settings[key] for key in ("index_version", "protocol_version") if key in settings), 1)
    return measure + SCORE_VERSION - 1


for _phenomenon, (_, _settings, _description) in PHENOMENA.items():
    # scale None: no ceiling, a fraction of cells, not averaged with ceiled scores (leaderboard.aggregate)
    BENCHMARKS.add(f"retina_embedded.{_phenomenon}", _factory(_phenomenon), description=_description, family="retina",
                   region="phenomena", embedded=True, scale=None, version=registered_version(_settings))
