"""Pearson correlation per neuroid (column), vectorised over any leading batch axes."""
from __future__ import annotations

import numpy as np

#: The fewest stimuli a Pearson r measures anything over: it is undefined over 1 and +-1 over 2, whatever the values
#: (the score's test stimuli of a split, the ceiling's stimuli).
MIN_SAMPLES = 3


def pearson_columns(a: np.ndarray, b: np.ndarray, axis: int = -2, constant: float = 0.0) -> np.ndarray:
    """Pearson r between ``a`` and ``b`` along ``axis`` (the stimulus axis), one value per remaining entry.

    With the default ``axis=-2`` and inputs (..., stimuli, neuroids) the result is (..., neuroids).
    A column constant along ``axis`` in either input (all its values equal, as scipy.stats.pearsonr tests it)
    gives r = ``constant``: by default 0, not NaN, since a constant prediction carries no information and a NaN
    would silently drop the neuroid from the median; ``constant=np.nan`` gives scipy's (and Brain-Score's) NaN.
    NaN entries (missing recordings) are left out pairwise; a column with fewer than 3 finite pairs gives NaN
    (dropped by the nan-median). ``a`` and ``b`` must have the same shape (``ValueError`` naming both).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:  # numpy broadcast them (a (5, 1) against a (5, 3) correlated one column with three) or
        # failed with an operands error
        raise ValueError(f"a of shape {a.shape} and b of shape {b.shape}: expected the same shape (stimuli along "
                         f"axis {axis}, one r per remaining entry)")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return _pearson_nan(a, b, axis, constant)
    degenerate = _is_constant(a, axis) | _is_constant(b, axis)
    a = a - a.mean(axis=axis, keepdims=True)
    b = b - b.mean(axis=axis, keepdims=True)
    numerator = (a * b).sum(axis=axis)
    denominator = np.sqrt((a * a).sum(axis=axis) * (b * b).sum(axis=axis))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = numerator / denominator
    return np.where(degenerate | ~(denominator > 0), constant, r)


def _is_constant(x: np.ndarray, axis: int) -> np.ndarray:
    """Whether all entries along ``axis`` are equal, NaN (missing) entries ignored."""
    with np.errstate(invalid="ignore"):
        return np.fmax.reduce(x, axis=axis) == np.fmin.reduce(x, axis=axis)


def spearman_brown(r, n: float = 2.0):
    """Reliability of the average of ``n`` parallel measurements given the reliability ``r`` of one: nr/(1+(n-1)r)."""
    r = np.asarray(r, dtype=np.float64)
    return n * r / (1.0 + (n - 1.0) * r)


def _pearson_nan(a: np.ndarray, b: np.ndarray, axis: int, constant: float) -> np.ndarray:
    """Pearson r over the entries where both are finite (pairwise deletion); NaN with fewer than 3 pairs."""
    a, b = np.broadcast_arrays(a, b)
    valid = np.isfinite(a) & np.isfinite(b)
    degenerate = _is_constant(np.where(valid, a, np.nan), axis) | _is_constant(np.where(valid, b, np.nan), axis)
    n = valid.sum(axis=axis, keepdims=True)
    a = np.where(valid, a, 0.0)
    b = np.where(valid, b, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        a = np.where(valid, a - a.sum(axis=axis, keepdims=True) / n, 0.0)
        b = np.where(valid, b - b.sum(axis=axis, keepdims=True) / n, 0.0)
        numerator = (a * b).sum(axis=axis)
        denominator = np.sqrt((a * a).sum(axis=axis) * (b * b).sum(axis=axis))
        r = np.where(degenerate | ~(denominator > 0), constant, numerator / denominator)
    return np.where(np.squeeze(n, axis=axis) >= 3, r, np.nan)
