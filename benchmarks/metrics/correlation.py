"""Pearson correlation per neuroid (column), vectorised over any leading batch axes."""
from __future__ import annotations

import numpy as np


def pearson_columns(a: np.ndarray, b: np.ndarray, axis: int = -2) -> np.ndarray:
    """Pearson r between ``a`` and ``b`` along ``axis`` (the stimulus axis), one value per remaining entry.

    With the default ``axis=-2`` and inputs (..., stimuli, neuroids) the result is (..., neuroids).
    A column with zero variance gives r = 0 (not NaN): a constant prediction carries no information,
    and a NaN would silently drop the neuroid from the median.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a = a - a.mean(axis=axis, keepdims=True)
    b = b - b.mean(axis=axis, keepdims=True)
    numerator = (a * b).sum(axis=axis)
    denominator = np.sqrt((a * a).sum(axis=axis) * (b * b).sum(axis=axis))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = numerator / denominator
    return np.where(denominator > 0, r, 0.0)


def spearman_brown(r, n: float = 2.0):
    """Reliability of the average of ``n`` parallel measurements given the reliability ``r`` of one: nr/(1+(n-1)r)."""
    r = np.asarray(r, dtype=np.float64)
    return n * r / (1.0 + (n - 1.0) * r)
