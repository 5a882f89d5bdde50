"""When a response is float rounding, not a measurement: the one rule of every in-silico analysis
(:mod:`retina.phenomena.analyses`, :mod:`retina.phenomena.adaptation`, :mod:`retina.phenomena.osr`)."""
from __future__ import annotations

import numpy as np

#: an index (a dimensionless ratio of rates: ``adaptation_index``, ``oms_index``, 1 - a paired flash's recovery,
#: log2 F2/F1) within this of 0 is 0 up to float32 rounding and has no sign. A system whose index is 0 by construction
#: (no memory beyond its window: the replayed windows, the second flash beyond it) computes the two rates it compares
#: from the same inputs at other positions of the movie, summed in another order: they differ by a few float32 eps
#: (1.19e-7) relative, and so does the index, whose terms are of order 1 (by more where a compared rate is a small
#: difference of large ones, as OMS's responses net of the grey screen's rate). Measured: the fitted BN-CNNs'
#: paired-flash indices below 1.2e-7 and 3.5e-7, their contrast-adaptation indices below 2e-8; float64 LN cells 2.2e-16.
#: 1e-6 is 8 eps, above that noise. Real indices as small come only from float64 toy cells, which a float32 model
#: could not resolve: fixed LN cells' OMS index without a surround, their centre's Gaussian tail beyond the object's
#: disc, 7e-7 to 9e-5 (the one below 1e-6 of the truth's opposite sign). The smallest of a fitted model: the converged
#: GLM's 2.5e-5 (contrast adaptation, its sampled spike history); of the circuit: 0.022.
ROUNDING_FLOOR = 1e-6


def above_rounding(amplitude, size) -> np.ndarray:
    """``amplitude`` (a difference of rates, a Fourier amplitude of them) is more than :data:`ROUNDING_FLOOR` times
    ``size``, the largest rate it was computed from: float32 rates of that size carry rounding errors of a few eps
    (1.19e-7) of it, so a smaller amplitude may be rounding alone, and a ratio with it in a numerator or a denominator
    is a number computed from noise (a linear cell's log2(F2/F1) was -39.9, a float64 F2 of 8e-17 against an F1 of
    4.2). The same floor as an index's, applied relative to the rates: an index is a ratio of terms of order 1, an
    amplitude is in the rates' units. A silent system (size 0) resolves nothing."""
    return np.asarray(amplitude, float) > ROUNDING_FLOOR * np.asarray(size, float)
