"""From model steps to 10 ms neural time bins.

A model's temporal code is described by a step table ``(start, width, steps)``: step ``k`` covers
``[start + k * width, start + (k + 1) * width)`` ms after stimulus onset (CORnet's Brain-Score tables in
REFERENCE.md section 2 have this form).

* ConvRNNs (REFERENCE.md section 1): one step per 10 ms from onset, ``StepTable(0, 10, 26)``: step t is
  bin ``[10t, 10t + 10)``; the 70..260 ms fitting window of Nayebi et al. is steps 7..25 (19 bins).
* Static (feed-forward) models: one step covering the whole window; the same features are repeated in
  every bin.

Each neural bin takes the step whose interval contains the bin's midpoint (``rule="midpoint"``, ours); bins before
the first step take the first step and bins after the last take the last (the model's state is held).
``rule="nearest_start"`` is Brain-Score's CORnet rule (brain-score/vision
brainscore_vision/models/cornet_s/helpers/helpers.py, ``CORnetCommitment.look_at_cached`` with ``find_nearest``):
the step whose start is nearest the bin's start, the earlier step on a tie. The two agree when bins and steps are
aligned (the ConvRNN table on 10 ms bins); on coarser steps they differ (CORnet-S V4's 50 ms steps: the bin
[120, 130) ms is step 0 by its midpoint, step 1 by its start), so :data:`CORNET_S` uses Brain-Score's rule.
``rule="portion"`` is Brain-Score's rule for any other model with a time dimension: the overlap-weighted average of
the steps in the bin (:func:`bin_weights`); on bins that are steps it equals the other two.

The CORnets (convrnn.cornet) carry their Brain-Score mapping: :data:`CORNET_S`, :data:`CORNET_Z` (one step per
region) and :data:`CORNET_RT` (partly irregular steps, a :class:`StepBins`), found by :func:`model_timing` from the
model's ``brainscore_identifier``; the extraction uses them when it is given no timing.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

Bin = Tuple[float, float]


RULES = ("midpoint", "nearest_start", "portion")


@dataclass(frozen=True)
class StepTable:
    start: float
    width: float
    steps: int
    rule: str = "midpoint"

    def __post_init__(self):
        if self.rule not in RULES:
            raise ValueError(f"StepTable rule must be one of {RULES}; got {self.rule!r}")
        # a zero width read every bin at step 0 (the midpoint's index was +-inf, clipped), no steps at step -1
        if not (np.isfinite(self.start) and np.isfinite(self.width) and self.width > 0):
            raise ValueError(f"StepTable: start must be finite and width positive (ms); got start {self.start!r}, "
                             f"width {self.width!r}")
        if isinstance(self.steps, (bool, str)) or int(self.steps) != self.steps or self.steps < 1:
            raise ValueError(f"StepTable: steps must be a whole number of at least 1; got {self.steps!r}")
        object.__setattr__(self, "steps", int(self.steps))  # 4.0 -> 4: one description (and cache key) per table

    def intervals(self) -> np.ndarray:
        starts = self.start + self.width * np.arange(self.steps)
        return np.stack([starts, starts + self.width], axis=1)

    def describe(self) -> list:
        """For the extraction settings (the activation cache key) and a zoo job's key: [start, width, steps], and the
        rule unless it is the default "midpoint" (so the keys of the tables of before stay)."""
        return [self.start, self.width, self.steps] + ([self.rule] if self.rule != "midpoint" else [])

    def steps_for(self, bins: Sequence[Bin]) -> np.ndarray:
        """Index of the model step used for each bin (rules "midpoint" and "nearest_start"; "portion" reads several
        steps per bin: :func:`bin_weights`)."""
        if self.rule == "portion":
            raise ValueError("StepTable rule 'portion' averages several steps per bin: use time_mapping.bin_weights")
        if self.rule == "nearest_start":
            return _nearest_start(self.intervals()[:, 0], bins)
        return np.clip(self.midpoint_steps(bins), 0, self.steps - 1)

    def midpoint_steps(self, bins: Sequence[Bin]) -> np.ndarray:
        """The step each bin's midpoint falls in, before clipping: -1 and below before the first step, ``steps``
        and above after the last."""
        middle = np.array([(a + b) / 2.0 for a, b in bins], dtype=np.float64)
        return np.floor((middle - self.start) / self.width).astype(int)

    def unreached(self, bins: Sequence[Bin]) -> Tuple[List[Bin], List[Bin]]:
        """``(early, late)``: the bins whose midpoint lies before the first step or after the last, which the
        midpoint rule reads at the first or last step."""
        index = self.midpoint_steps(bins)
        return ([b for b, i in zip(bins, index) if i < 0], [b for b, i in zip(bins, index) if i >= self.steps])


def _nearest_start(starts: np.ndarray, bins: Sequence[Bin]) -> np.ndarray:
    """For each bin, the index of the step start nearest the bin's start (the earlier step on a tie: Brain-Score's
    ``find_nearest``)."""
    return np.array([int(np.argmin(np.abs(starts - a))) for a, _ in bins], dtype=int)


def bin_weights(table, bins: Sequence[Bin]) -> Tuple[np.ndarray, np.ndarray]:
    """``(needed, weights)``: the steps any bin reads, ascending, and the (bins, needed) weights whose rows sum to 1,
    so that bin t's features are ``sum_n weights[t, n] * features of step needed[n]``.

    Rules "midpoint" and "nearest_start" read one step per bin (a row with a single 1). ``rule="portion"`` is
    Brain-Score's alignment of any model with a time dimension (``TemporalAligned.look_at`` ->
    ``assembly_time_align(..., mode="portion")``, brainscore_vision/model_helpers/brain_transformation/temporal.py
    at 0dbf122): each step overlapping the bin, weighted by the fraction of the step inside the bin, the weights
    normalised; a bin the steps do not cover from its start to its end is refused (Brain-Score asserts), where the
    one-step rules hold the first or last step."""
    if getattr(table, "rule", None) != "portion":
        weights = np.zeros((len(bins), table.steps))
        weights[np.arange(len(bins)), table.steps_for(bins)] = 1.0
    else:
        steps = table.intervals()
        starts, ends = (np.array([b[i] for b in bins], dtype=np.float64)[:, None] for i in (0, 1))
        overlap = np.clip(np.minimum(ends, steps[None, :, 1]) - np.maximum(starts, steps[None, :, 0]), 0, None)
        weights = overlap / (steps[:, 1] - steps[:, 0])[None, :]
        uncovered = (starts[:, 0] < steps[0, 0]) | (ends[:, 0] > steps[-1, 1]) | ~(weights.sum(1) > 0)
        if uncovered.any():
            (a, b), = [bins[int(np.flatnonzero(uncovered)[0])]]
            raise ValueError(f"StepTable rule 'portion': time bin [{a:g}, {b:g}) ms is not covered by the model's steps "
                             f"[{steps[0, 0]:g}, {steps[-1, 1]:g}) ms (Brain-Score's assembly_time_align refuses it "
                             f"too); record bins inside the steps, or use rule 'midpoint'")
    needed = np.flatnonzero(weights.any(axis=0))
    weights = weights[:, needed]
    return needed, weights / weights.sum(axis=1, keepdims=True)


def bins(start: float = 70, end: float = 260, width: float = 10) -> List[Bin]:
    """Consecutive bins ``[start, start + width), ...`` up to ``end`` (by default the ConvRNN papers' window)."""
    edges = np.arange(start, end, width)
    return [(float(a), float(a + width)) for a in edges]


#: The neural-fitting window of Nayebi et al. 2018/2022 (REFERENCE.md section 1): 19 bins of 10 ms from 70 to 260 ms.
#: Not Brain-Score's bins: its MajajHong2015public temporal benchmarks cut 10 ms bins from 0 ms (majajhong2015/
#: benchmark.py ``load_assembly``). Formerly ``BRAINSCORE_BINS``, a name that said otherwise; that name still imports
#: (with a DeprecationWarning), as it was exported by ``benchmarks.extraction``.
NAYEBI_FITTING_BINS = bins()

#: ConvRNN biological unrolling: 26 steps of 10 ms from stimulus onset.
CONVRNN = StepTable(0.0, 10.0, 26)

#: Brain-Score's CORnet-S mapping (REFERENCE.md section 2), per region, with Brain-Score's bin-to-step rule.
CORNET_S: Dict[str, StepTable] = {
    region: StepTable(start, width, steps, rule="nearest_start")
    for region, (start, width, steps) in {"V1": (50, 100, 1), "V2": (70, 100, 2), "V4": (90, 50, 4),
                                          "IT": (100, 100, 2)}.items()
}


#: Brain-Score's CORnet-Z mapping: feed-forward, one step per region (brain-score/candidate_models
#: candidate_models/model_commitments/cornets.py ``cornet_z_brainmodel``, commit 0d645e5: V1 (50, 150), V2 (70, 170),
#: V4 (90, 190), IT (100, 200)); every bin reads that step.
CORNET_Z: Dict[str, StepTable] = {
    region: StepTable(start, 100, 1, rule="nearest_start")
    for region, start in {"V1": 50, "V2": 70, "V4": 90, "IT": 100}.items()
}

@dataclass(frozen=True)
class StepBins:
    """A step table given step by step, as Brain-Score's CORnet commitments write theirs: ``bins[k]`` is step k's
    (start, end) ms, or None for a step the mapping leaves out (never read). Bins are read by
    ``rule="nearest_start"`` among the mapped steps (``CORnetCommitment.look_at_cached`` drops the unmapped ones)."""

    bins: Tuple[Optional[Bin], ...]
    rule: str = "nearest_start"

    def __post_init__(self):
        if self.rule != "nearest_start" or not any(b is not None for b in self.bins):
            raise ValueError(f"StepBins: rule 'nearest_start' and at least one mapped step; got {self.rule!r}, "
                             f"{self.bins!r}")

    @property
    def steps(self) -> int:
        return len(self.bins)

    def intervals(self) -> np.ndarray:
        return np.array([b if b is not None else (np.nan, np.nan) for b in self.bins], dtype=np.float64)

    def steps_for(self, bins: Sequence[Bin]) -> np.ndarray:
        mapped = np.array([k for k, b in enumerate(self.bins) if b is not None])
        return mapped[_nearest_start(self.intervals()[mapped, 0], bins)]

    def describe(self) -> list:
        """For the extraction settings (and so the activation cache key)."""
        return [list(b) if b is not None else None for b in self.bins] + [self.rule]


#: CORnet-RT (biologically unrolled, 5 steps): Brain-Score commits no CORnet-RT, so this is its commitment for the
#: 5-step recurrent CORnet it scored, CORnet-R (brain-score/candidate_models candidate_models/model_commitments/
#: cornets.py ``cornet_r_brainmodel``, commit 0d645e5): V1 steps 0..4 at 50 + 30k ms; V2, V4 and IT leave step 0
#: out (no image has reached them yet) and their steps 1..4 start at 60, 110, 140, 170 ms (V2) and 70, 140, 170,
#: 200 ms (V4, IT).
CORNET_RT: Dict[str, Union[StepTable, StepBins]] = {
    "V1": StepTable(50, 30, 5, rule="nearest_start"),
    "V2": StepBins((None, (60, 110), (110, 140), (140, 170), (170, 200))),
    "V4": StepBins((None, (70, 110), (140, 170), (170, 200), (200, 250))),
    "IT": StepBins((None, (70, 110), (140, 170), (170, 200), (200, 250))),
}

#: The step tables of models that carry a Brain-Score time mapping, by their ``brainscore_identifier``
#: (convrnn.cornet): :func:`model_timing`.
CORNET_TIMING: Dict[str, Dict[str, Union[StepTable, StepBins]]] = {"CORnet-S": CORNET_S, "CORnet-Z": CORNET_Z, "CORnet-RT": CORNET_RT}


def model_timing(model) -> Optional[Dict[str, Union[StepTable, StepBins]]]:
    """The per-layer step tables of a model with a committed time mapping (a CORnet: layer = region), else None."""
    identifier = getattr(model, "brainscore_identifier", "")
    return CORNET_TIMING.get(identifier) if identifier else None


def static(window: Sequence[Bin] = NAYEBI_FITTING_BINS) -> StepTable:
    """A single step spanning ``window``: features repeated across all its bins."""
    return StepTable(window[0][0], window[-1][1] - window[0][0], 1)


def convrnn(n_steps: int = 26, step_ms: float = 10.0) -> StepTable:
    return StepTable(0.0, step_ms, n_steps)


_RENAMED = {"BRAINSCORE_BINS": "NAYEBI_FITTING_BINS"}


def __getattr__(name: str):
    """The former names, for code that imports them: the object under its new name, with a DeprecationWarning."""
    if name in _RENAMED:
        import warnings

        warnings.warn(f"time_mapping.{name} is renamed {_RENAMED[name]} (the 70-260 ms fitting window of Nayebi et al., "
                      f"not Brain-Score's bins)", DeprecationWarning, stacklevel=2)
        return globals()[_RENAMED[name]]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
