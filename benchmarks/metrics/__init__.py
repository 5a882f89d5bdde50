"""Metrics: cross-validated regression (PLS, ridge), correlations, split-half ceilings, temporal variants."""
from neurozoo.benchmarks.metrics.ceiling import Ceiling, internal_consistency, normalize
from neurozoo.benchmarks.metrics.correlation import pearson_columns, spearman_brown
from neurozoo.benchmarks.metrics.regression import FastPLS, RidgeCVMapping, RidgeMapping, brainscore_splits, pls_fit_predict_folds
from neurozoo.benchmarks.metrics.temporal import TemporalScore, regression_score

__all__ = [
    "Ceiling",
    "FastPLS",
    "RidgeCVMapping",
    "RidgeMapping",
    "TemporalScore",
    "brainscore_splits",
    "internal_consistency",
    "normalize",
    "pearson_columns",
    "pls_fit_predict_folds",
    "regression_score",
    "spearman_brown",
]
