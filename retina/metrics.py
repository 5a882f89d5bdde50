"""Held-out metrics per ganglion cell (McIntosh et al. 2016; REFERENCE.md section 4).

All functions take ``prediction`` ``(C, T)`` and ``repeats`` ``(C, R, T)`` (single-trial firing rates), of any float
type, and compute in float64: float32 rates far from zero (1e4 + signal) keep their signal's digits (the trial
average of float32 repeats is taken in float64 for a cell whose rates are over :data:`FAR_FROM_ZERO` times their range
from 0; ordinary rates' float32 average is kept bit for bit, so that scores recorded before reproduce exactly).

* ``correlation``: Pearson r between prediction and the trial average (the headline number); NaN where either is
  constant. :func:`heldout_metrics` counts a prediction constant over the test movie as r = 0 where the cell's trial
  average varies (as the neural metric's default counts a constant prediction): a NaN was left out of the median over
  cells, so a model that predicted nothing for some cells was ranked on the others alone.
* ``noise_variance``: mean over time of the across-trial variance (unbiased, ddof=1).
* ``feve``: ``1 - (MSE - noise_var) / (total_var - noise_var)`` with MSE and total variance over single
  trials, so a prediction equal to the true rate scores about 1 whatever the trial noise; NaN where
  ``total_var - noise_var`` is not positive (no explainable variance). The total variance is
  over all single-trial values with ddof=1, as sinzlab's ``compute_FEV`` computes it (nnvision
  nnvision/utility/measures.py, lines 153-158; tests/test_retina_metrics.py).
* ``explainable_fraction``: ``(total_var - noise_var) / total_var``; cells below ``min_explainable``
  (0.15) are excluded from summaries.
* ``oracle_correlation``: leave-one-out jackknife -- each trial against the mean of the others, averaged
  (``estimator="per_trial"``, the default). ``estimator="pooled"`` is sinzlab's ``compute_oracle_corr`` (nnvision
  nnvision/utility/measures.py, lines 90-104): one correlation over every (trial, frame) value of the cell; it
  counts trial-to-trial changes of the mean rate as noise, so it comes out slightly lower (0.002 in the median on
  the embedded recordings).
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import pandas as pd

from neurozoo.datasets.cell_names import cell_name
from neurozoo.datasets.text_table import counted

MIN_EXPLAINABLE = 0.15


def _pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(-1, keepdims=True)
    b = b - b.mean(-1, keepdims=True)
    denom = np.sqrt((a * a).sum(-1) * (b * b).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (a * b).sum(-1) / denom, np.nan)


def correlation(prediction, target) -> np.ndarray:
    """Per-cell Pearson r of ``(C, T)`` arrays."""
    return _pearson(np.asarray(prediction, np.float64), np.asarray(target, np.float64))


def noise_variance(repeats) -> np.ndarray:
    return np.asarray(repeats, np.float64).var(axis=1, ddof=1).mean(-1)


def total_variance(repeats) -> np.ndarray:
    """Variance of every single-trial value of a cell (ddof=1, as nnvision's ``compute_FEV`` line 153)."""
    r = np.asarray(repeats, np.float64)
    return r.reshape(r.shape[0], -1).var(-1, ddof=1)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """NaN where the denominator is 0: a cell silent in every repeat has no variance to explain."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator != 0, numerator / denominator, np.nan)


def explainable_fraction(repeats) -> np.ndarray:
    total = total_variance(repeats)
    return _ratio(total - noise_variance(repeats), total)


def feve(prediction, repeats) -> np.ndarray:
    """``1 - (MSE - noise_var) / (total_var - noise_var)`` per cell (REFERENCE.md section 4); NaN where the
    explainable variance ``total_var - noise_var`` is not positive: a cell whose trial-to-trial noise is as large as
    its whole variance (on a short recording) has nothing to explain, and the ratio by a near-zero or negative
    denominator was a meaningless number (FEVE 282.6 printed for a cell excluded from the medians). Such a cell's
    explainable fraction is below ``MIN_EXPLAINABLE``, so the medians, over passing cells only, are unchanged."""
    r = np.asarray(repeats, np.float64)
    mse = ((r - np.asarray(prediction, np.float64)[:, None, :]) ** 2).mean(axis=(1, 2))
    noise, total = noise_variance(r), total_variance(r)
    explainable = total - noise
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(explainable > 0, 1.0 - (mse - noise) / explainable, np.nan)


ORACLE_ESTIMATORS = ("per_trial", "pooled")


def oracle_correlation(repeats, estimator: str = "per_trial") -> np.ndarray:
    """Leave-one-out oracle per cell of ``repeats`` ``(C, R, T)``: each trial against the mean of the other trials,
    averaged over trials (``"per_trial"``) or as one correlation over all trials' values (``"pooled"``)."""
    if estimator not in ORACLE_ESTIMATORS:
        raise ValueError(f"estimator must be one of {ORACLE_ESTIMATORS}, got {estimator!r}")
    r = np.asarray(repeats, np.float64)
    n = r.shape[1]
    others = (r.sum(1, keepdims=True) - r) / (n - 1)
    if estimator == "pooled":
        return _pearson(r.reshape(len(r), -1), others.reshape(len(r), -1))
    per_trial = _pearson(r, others)  # NaN for a silent trial
    counted = np.isfinite(per_trial).sum(1)
    return _ratio(np.nansum(per_trial, axis=1), counted)


#: a cell's trial average is taken in float64 where its largest magnitude exceeds this many times its range (a constant
#: cell's too, whose r is undefined either way)
FAR_FROM_ZERO = 16


def heldout_metrics(prediction, repeats, cells: Optional[Sequence[str]] = None,
                    min_explainable: float = MIN_EXPLAINABLE) -> pd.DataFrame:
    """One row per cell (index ``cell``): correlation, feve, oracle, explainable_fraction, noise_var, passes."""
    prediction, repeats = np.asarray(prediction), np.asarray(repeats)
    if repeats.ndim != 3 or prediction.shape != (repeats.shape[0], repeats.shape[2]):
        raise ValueError(f"prediction (C, T) and repeats (C, R, T) must agree; got {prediction.shape} and {repeats.shape}")
    if repeats.shape[1] < 2:  # no noise variance: FEVE, the oracle and the explainable fraction NaN, with warnings
        raise ValueError(f"repeats (C, R, T): {counted(repeats.shape[1], 'repeat')}; the noise variance, FEVE and the "
                         "leave-one-out oracle need at least 2 repeats of the test stimulus")
    for name, values in (("prediction", prediction), ("repeats", repeats)):
        finite = np.isfinite(values) if values.dtype.kind in "fc" else np.ones(values.shape, dtype=bool)
        if not finite.all():  # every metric of those cells NaN: left out of the medians without a word
            bad = np.flatnonzero(~finite.reshape(len(values), -1).all(axis=1))
            raise ValueError(f"{name}: {int((~finite).sum())} NaN/inf values, in {len(bad)} of {len(values)} cells "
                             f"(e.g. cell index {bad[:3].tolist()}); expected finite firing rates")
    cells = list(cells) if cells is not None else [cell_name(i) for i in range(len(prediction))]
    explainable = explainable_fraction(repeats)
    average = repeats.mean(1).astype(np.float64)  # as correlation() casts it
    far = np.abs(average).max(1) > FAR_FROM_ZERO * np.ptp(average, axis=1)
    if repeats.dtype != np.float64 and far.any():
        # in float32 it lost the digits of rates far from 0 (module docstring); the other cells keep their float32
        # average, bit for bit, so that records scored before reproduce at --tolerance 0
        average[far] = repeats[far].mean(1, dtype=np.float64)
    flat = (np.ptp(prediction, axis=1) == 0) & (np.ptp(average, axis=1) > 0)  # a constant prediction of a varying rate
    frame = pd.DataFrame({
        "correlation": np.where(flat, 0.0, correlation(prediction, average)),
        "feve": feve(prediction, repeats),
        "oracle": oracle_correlation(repeats),
        "explainable_fraction": explainable,
        "noise_var": noise_variance(repeats),
        "passes": explainable >= min_explainable,
    }, index=pd.Index(cells, name="cell"))
    return frame


def summary(frame: pd.DataFrame) -> dict:
    """Medians over the cells that pass the explainable-variance filter."""
    kept = frame[frame["passes"]]
    return {"median_correlation": float(kept["correlation"].median()) if len(kept) else float("nan"),
            "median_feve": float(kept["feve"].median()) if len(kept) else float("nan"),
            "median_oracle": float(kept["oracle"].median()) if len(kept) else float("nan"),
            "n_cells": int(len(frame)), "n_passing": int(len(kept))}
