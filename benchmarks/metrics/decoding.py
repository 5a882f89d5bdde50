"""Time course of linear object decoding from population responses.

Per time bin: shrinkage LDA (``LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")``, Ledoit-Wolf) trained
to classify ``object_name`` from single-trial population vectors, accuracy on held-out trials, over
``StratifiedShuffleSplit(n_splits, train_size, random_state=1)`` splits (mean and std/sqrt(n) error). For two
Gaussian classes with shared covariance and Mahalanobis distance d, the Bayes-optimal accuracy is
Phi(d / 2), which this decoder approaches with enough trials; chance is 1 / n_objects.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.model_selection import StratifiedShuffleSplit

from benchmarks.metrics.assembly import check_assembly, coord, time_bins
from datasets.errors import DataError


@dataclass
class DecodingTimeCourse:
    bin_start: np.ndarray
    bin_end: np.ndarray
    per_split: np.ndarray  # (K, T) accuracies
    chance: float

    @property
    def accuracy(self) -> np.ndarray:
        return self.per_split.mean(0)

    @property
    def error(self) -> np.ndarray:
        return self.per_split.std(0) / np.sqrt(len(self.per_split))


def decoding_time_course(assembly: xr.DataArray, n_splits: int = 10, train_size: float = 0.8,
                         random_state: int = 1) -> DecodingTimeCourse:
    """Cross-validated object decoding accuracy per time bin from trials (presentations) x neuroids."""
    assembly = check_assembly(assembly, require=("object_name",))
    labels = coord(assembly, "object_name").astype(str)
    if len(np.unique(labels)) < 2:
        raise DataError("assembly: decoding needs at least 2 distinct values of 'object_name'")
    values = np.asarray(assembly.values, dtype=np.float64)
    splitter = StratifiedShuffleSplit(n_splits=n_splits, train_size=train_size, random_state=random_state)
    splits = list(splitter.split(np.zeros(len(labels)), labels))
    per_split = np.empty((n_splits, values.shape[2]))
    for t in range(values.shape[2]):
        X = np.nan_to_num(values[:, :, t])
        for k, (train, test) in enumerate(splits):
            decoder = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto").fit(X[train], labels[train])
            per_split[k, t] = np.mean(decoder.predict(X[test]) == labels[test])
    start, end = time_bins(assembly)
    counts = np.unique(labels, return_counts=True)[1]
    return DecodingTimeCourse(start, end, per_split, float(counts.max() / counts.sum()))
