"""Time course of object decoding from population responses.

Per time bin, over ``StratifiedShuffleSplit(n_splits, train_size, random_state=1)`` splits of the trials
(stratified on ``object_name``), a linear decoder is trained on single-trial population vectors and its
accuracy measured on the held-out trials (mean over splits, error std/sqrt(n)). Features are z-scored with
the training trials' mean and standard deviation. Two decoders, both closed form and vectorised over bins:

* ``"max_correlation"`` (default): the maximum-correlation-coefficient classifier of Meyers' Neural
  Decoding Toolbox, used in Zhang et al. (2011): one template per object (mean training vector); a test
  trial gets the object whose template has the highest Pearson correlation with it across neuroids.
* ``"nearest_mean"``: the object whose template is closest in Euclidean distance. For Gaussian classes with
  identity covariance and Mahalanobis distance d this is the Bayes-optimal rule, accuracy Phi(d / 2).

Chance is the largest class fraction. Missing responses (NaN) are imputed at the training mean (see ``_predict``).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import xarray as xr
from sklearn.model_selection import StratifiedShuffleSplit

from neurozoo.benchmarks.metrics.assembly import assembly_name, check_assembly, coord, time_bins
from neurozoo.datasets.errors import DataError

DECODERS = ("max_correlation", "nearest_mean")


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


def _predict(train_x, train_y, test_x, classes, decoder):
    """train_x (n, N, T), test_x (m, N, T) -> predicted class index (m, T).

    A missing response (NaN: a unit without that trial in a pseudo-population) is imputed at the training mean,
    i.e. 0 after z-scoring, so it pulls no template and no test trial towards any class."""
    with warnings.catch_warnings():  # a unit missing from every training trial: mean 0, std 1 below
        warnings.simplefilter("ignore", RuntimeWarning)
        mean, std = np.nanmean(train_x, 0), np.nanstd(train_x, 0)
    mean = np.nan_to_num(mean)
    std = np.where(std > 0, std, 1.0)
    train_x, test_x = np.nan_to_num((train_x - mean) / std), np.nan_to_num((test_x - mean) / std)
    templates = np.stack([train_x[train_y == c].mean(0) for c in range(len(classes))])  # (C, N, T)
    if decoder == "nearest_mean":
        distance = ((test_x[:, None] - templates[None]) ** 2).sum(2)  # (m, C, T)
        return distance.argmin(1)
    a = test_x - test_x.mean(1, keepdims=True)
    b = templates - templates.mean(1, keepdims=True)
    a /= np.linalg.norm(a, axis=1, keepdims=True) + 1e-12
    b /= np.linalg.norm(b, axis=1, keepdims=True) + 1e-12
    return np.einsum("mnt,cnt->mct", a, b).argmax(1)


def decoding_time_course(assembly: xr.DataArray, n_splits: int = 10, train_size: float = 0.8,
                         random_state: int = 1, decoder: str = "max_correlation") -> DecodingTimeCourse:
    """Cross-validated object decoding accuracy per time bin from trials (presentations) x neuroids."""
    if decoder not in DECODERS:
        raise ValueError(f"unknown decoder {decoder!r}; expected one of {DECODERS}")
    assembly = check_assembly(assembly, require=("object_name",))
    classes, labels = np.unique(coord(assembly, "object_name").astype(str), return_inverse=True)
    if len(classes) < 2:
        raise DataError(f"{assembly_name(assembly)}: decoding needs at least 2 distinct values of 'object_name'")
    values = np.asarray(assembly.values, dtype=np.float64)
    splitter = StratifiedShuffleSplit(n_splits=n_splits, train_size=train_size, random_state=random_state)
    per_split = np.stack([
        (_predict(values[train], labels[train], values[test], classes, decoder) == labels[test][:, None]).mean(0)
        for train, test in splitter.split(np.zeros(len(labels)), labels)])
    start, end = time_bins(assembly)
    return DecodingTimeCourse(start, end, per_split, float(np.bincount(labels).max() / len(labels)))
