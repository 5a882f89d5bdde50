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
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np

Bin = Tuple[float, float]


RULES = ("midpoint", "nearest_start")


@dataclass(frozen=True)
class StepTable:
    start: float
    width: float
    steps: int
    rule: str = "midpoint"

    def __post_init__(self):
        if self.rule not in RULES:
            raise ValueError(f"StepTable rule must be one of {RULES}; got {self.rule!r}")

    def intervals(self) -> np.ndarray:
        starts = self.start + self.width * np.arange(self.steps)
        return np.stack([starts, starts + self.width], axis=1)

    def steps_for(self, bins: Sequence[Bin]) -> np.ndarray:
        """Index of the model step used for each bin."""
        if self.rule == "nearest_start":
            starts = self.start + self.width * np.arange(self.steps)
            return np.array([int(np.argmin(np.abs(starts - a))) for a, _ in bins], dtype=int)
        middle = np.array([(a + b) / 2.0 for a, b in bins], dtype=np.float64)
        index = np.floor((middle - self.start) / self.width).astype(int)
        return np.clip(index, 0, self.steps - 1)


def bins(start: float = 70, end: float = 260, width: float = 10) -> List[Bin]:
    """Consecutive bins ``[start, start + width), ...`` up to ``end`` (by default the ConvRNN papers' window)."""
    edges = np.arange(start, end, width)
    return [(float(a), float(a + width)) for a in edges]


#: The neural-fitting window of Nayebi et al. 2018/2022 (REFERENCE.md section 1): 19 bins of 10 ms from 70 to 260 ms.
#: (Brain-Score's MajajHong2015public temporal benchmarks cut 10 ms bins from 0 ms: majajhong2015/benchmark.py
#: ``load_assembly``.) The name is kept for the code that imports it.
BRAINSCORE_BINS = bins()

#: ConvRNN biological unrolling: 26 steps of 10 ms from stimulus onset.
CONVRNN = StepTable(0.0, 10.0, 26)

#: Brain-Score's CORnet-S mapping (REFERENCE.md section 2), per region, with Brain-Score's bin-to-step rule.
CORNET_S: Dict[str, StepTable] = {
    region: StepTable(start, width, steps, rule="nearest_start")
    for region, (start, width, steps) in {"V1": (50, 100, 1), "V2": (70, 100, 2), "V4": (90, 50, 4),
                                          "IT": (100, 100, 2)}.items()
}


def static(window: Sequence[Bin] = BRAINSCORE_BINS) -> StepTable:
    """A single step spanning ``window``: features repeated across all its bins."""
    return StepTable(window[0][0], window[-1][1] - window[0][0], 1)


def convrnn(n_steps: int = 26, step_ms: float = 10.0) -> StepTable:
    return StepTable(0.0, step_ms, n_steps)
