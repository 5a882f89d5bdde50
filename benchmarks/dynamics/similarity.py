"""Similarity of representations over time: RSA (rsatoolbox), linear and debiased CKA, and a Procrustes
shape similarity of trajectories (the dynamics).

Activity travels as an ``xarray.DataArray`` with dims (stimulus_id, time_bin, neuroid) and
``time_bin_start``/``time_bin_end`` coordinates in ms (see ``trajectories.condition_means``). Two systems
are compared on the stimuli they share, bin against bin: ``similarity_over_time`` returns the matrix
(time_bin_a, time_bin_b), whose diagonal is the per-bin similarity when the bins match.

CKA (Kornblith, Norouzi, Lee & Hinton 2019) is the cosine between centred Gram matrices; debiased CKA uses
U-centred Grams (the unbiased HSIC of Song et al. 2012), which removes the positive bias CKA has when there
are few stimuli per feature. Over time, each bin's Gram (or RDM) is computed once and all bin pairs
compared at once.

Procrustes similarity (Williams, Kunz, Kornblith & Linderman 2021): after centring and scaling to unit
Frobenius norm, max over orthogonal Q of tr(Q^T X^T Y) = ||X^T Y||_* (nuclear norm; widths may differ);
1 when Y is a rotated or reflected X. Rows are (condition, time) samples, so it compares whole
trajectories: how the population moves, not only where it is in one bin.
"""
from __future__ import annotations

from typing import Callable, Dict

import numpy as np
import xarray as xr

from neurozoo.datasets.text_table import plural

DIMS = ("stimulus_id", "time_bin", "neuroid")


def _centred_gram(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    x = x - x.mean(axis=0)
    return x @ x.T


def _u_centred_gram(x: np.ndarray) -> np.ndarray:
    """U-centred Gram matrix (Szekely & Rizzo 2014): <U(K), U(L)> / (n (n - 3)) is the unbiased HSIC of
    Song et al. (2012)."""
    x = np.asarray(x, dtype=float)
    n = len(x)
    if n < 4:
        raise ValueError(f"debiased CKA needs at least 4 stimuli, got {n}")
    gram = x @ x.T
    np.fill_diagonal(gram, 0.0)
    rows = gram.sum(0) / (n - 2)
    gram = gram - rows[:, None] - rows[None, :] + gram.sum() / ((n - 1) * (n - 2))
    np.fill_diagonal(gram, 0.0)
    return gram


def _cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rows of a against rows of b: <a_i, b_j> / (|a_i| |b_j|)."""
    return (a @ b.T) / np.sqrt(np.outer((a * a).sum(1), (b * b).sum(1)))


def _paired(x, y, metric: str):
    """``x`` and ``y`` as float (stimuli, features) matrices of the same stimuli, or a ``ValueError`` naming the
    metric and both shapes: rows that differ failed inside numpy's matmul (or rsatoolbox), a 1-D vector was taken as
    one row per value and scored 1.0, and NaN gave NaN."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
        raise ValueError(f"{metric}: expected two (stimuli, features) matrices of the same stimuli, got shapes "
                         f"{x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError(f"{metric}: NaN/inf values in the {'first' if not np.isfinite(x).all() else 'second'} "
                         "matrix; expected finite activity")
    return x, y


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of (stimuli, features) matrices with the same stimuli in the same order."""
    x, y = _paired(x, y, "linear_cka")
    return float(_cosine_matrix(_centred_gram(x).reshape(1, -1), _centred_gram(y).reshape(1, -1))[0, 0])


def debiased_cka(x: np.ndarray, y: np.ndarray) -> float:
    x, y = _paired(x, y, "debiased_cka")
    return float(_cosine_matrix(_u_centred_gram(x).reshape(1, -1), _u_centred_gram(y).reshape(1, -1))[0, 0])


def rdm(x: np.ndarray, method: str = "correlation"):
    """rsatoolbox RDMs object of a (stimuli, features) matrix, or of a list of them (one RDM each)."""
    from rsatoolbox.data import Dataset
    from rsatoolbox.rdm import calc_rdm

    if isinstance(x, (list, tuple)):
        return calc_rdm([Dataset(np.asarray(m, dtype=float)) for m in x], method=method)
    return calc_rdm(Dataset(np.asarray(x, dtype=float)), method=method)


def rsa(x: np.ndarray, y: np.ndarray, rdm_method: str = "correlation", compare: str = "spearman") -> float:
    """Similarity of the two RDMs (rsatoolbox ``compare``: spearman, corr, cosine, kendall tau-a...)."""
    from rsatoolbox.rdm import compare as compare_rdms

    x, y = _paired(x, y, "rsa")
    return float(compare_rdms(rdm(x, rdm_method), rdm(y, rdm_method), method=compare)[0, 0])


def procrustes_similarity(x: np.ndarray, y: np.ndarray) -> float:
    x, y = _paired(x, y, "procrustes_similarity")
    x, y = x - x.mean(axis=0), y - y.mean(axis=0)
    norms = np.linalg.norm(x), np.linalg.norm(y)
    if not min(norms) > 0:  # a representation constant over its rows has no shape to compare
        return float("nan")
    x, y = x / norms[0], y / norms[1]
    return float(np.linalg.svd(x.T @ y, compute_uv=False).sum())


METRICS: Dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "rsa": rsa, "cka": linear_cka, "debiased_cka": debiased_cka, "procrustes": procrustes_similarity}


def align(a: xr.DataArray, b: xr.DataArray):
    """Both restricted to their shared stimuli, in one order; each checked first: an xarray.DataArray of dims
    :data:`DIMS` with ``stimulus_id`` and ``time_bin_start`` coordinates and finite numbers (NaN or inf made every
    similarity NaN without a word; a numpy array, or no ``time_bin_start``, failed inside xarray)."""
    for name, array in (("a", a), ("b", b)):
        if not isinstance(array, xr.DataArray):
            raise ValueError(f"activity {name}: expected an xarray.DataArray with dims {DIMS} "
                             f"(trajectories.condition_means), got {type(array).__name__}")
        if tuple(array.dims) != DIMS:
            raise ValueError(f"activity {name}: expected dims {DIMS}, got {tuple(array.dims)}")
        missing = [coord for coord in ("stimulus_id", "time_bin_start") if coord not in array.coords]
        if missing:
            raise ValueError(f"{array.name or name}: missing {plural(len(missing), 'coordinate')} {missing} "
                             f"(coords: {sorted(array.coords)})")
        if array.dtype.kind not in "biuf":
            raise ValueError(f"{array.name or name}: holds {array.dtype} values; expected numbers")
        finite = np.isfinite(array.values)
        if not finite.all():
            first = np.argwhere(~finite)[0]
            where = (f"stimulus_id {array['stimulus_id'].values[first[0]]}, time bin "
                     f"{array['time_bin_start'].values[first[1]]:g} ms, neuroid {first[2]}")
            raise ValueError(f"{array.name or name}: {int((~finite).sum())} NaN/inf values, the first at {where}; "
                             "expected finite activity (drop or fill the missing responses)")
        ids, counts = np.unique(array["stimulus_id"].values, return_counts=True)
        if (counts > 1).any():  # failed inside pandas' reindexing, naming neither the system nor the id
            repeated = ", ".join(f"{i} ({c} rows)" for i, c in zip(ids[counts > 1], counts[counts > 1]))
            raise ValueError(f"{array.name or name}: stimulus ids repeated: {repeated}; one row per stimulus expected "
                             "(condition_means averages repetitions)")
    shared = [s for s in a["stimulus_id"].values if s in set(b["stimulus_id"].values)]
    if len(shared) < 4:
        raise ValueError(f"{a.name or 'a'} and {b.name or 'b'} share {len(shared)} stimuli; at least 4 are needed")
    return a.sel(stimulus_id=shared), b.sel(stimulus_id=shared)


def similarity_over_time(a: xr.DataArray, b: xr.DataArray, metric: str = "cka") -> xr.DataArray:
    """(time_bin_a, time_bin_b) similarity of the per-bin representations of the shared stimuli; NaN where a bin
    carries no information (constant over stimuli, or a pattern constant over units)."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
    a, b = align(a, b)
    bins_a = [a.values[:, i] for i in range(a.sizes["time_bin"])]
    bins_b = [b.values[:, j] for j in range(b.sizes["time_bin"])]
    valid_a = np.array([_informative(x, metric) for x in bins_a])
    valid_b = np.array([_informative(y, metric) for y in bins_b])
    values = np.full((len(bins_a), len(bins_b)), np.nan)
    if valid_a.any() and valid_b.any():
        inner = _bin_matrix([x for x, ok in zip(bins_a, valid_a) if ok], [y for y, ok in zip(bins_b, valid_b) if ok],
                            metric)
        values[np.ix_(valid_a, valid_b)] = inner
    return xr.DataArray(values, dims=("time_bin_a", "time_bin_b"), name=metric,
                        attrs={"metric": metric, "n_stimuli": a.sizes["stimulus_id"]},
                        coords={"time_bin_a": a["time_bin_start"].values, "time_bin_b": b["time_bin_start"].values})


def _informative(x: np.ndarray, metric: str) -> bool:
    """A bin whose representation varies over stimuli (else its centred Gram is zero: e.g. a ConvRNN layer before
    the signal reaches it) and, for RSA, whose every pattern varies over units (else its correlation distances are
    0 / 0). The second condition held for every metric: a bin where one stimulus's pattern was flat (a layer silent
    for one image) or a single-unit system was NaN for CKA and Procrustes too, where they are defined."""
    varies = bool(np.ptp(x, axis=0).max() > 0)
    return varies and (metric != "rsa" or bool(np.ptp(x, axis=1).min() > 0))


def _bin_matrix(bins_a, bins_b, metric: str) -> np.ndarray:
    if metric == "rsa":
        from rsatoolbox.rdm import compare as compare_rdms

        return compare_rdms(rdm(bins_a), rdm(bins_b), method="spearman")
    if metric in ("cka", "debiased_cka"):
        gram = _centred_gram if metric == "cka" else _u_centred_gram
        return _cosine_matrix(np.stack([gram(x).ravel() for x in bins_a]), np.stack([gram(y).ravel() for y in bins_b]))
    return np.array([[METRICS[metric](x, y) for y in bins_b] for x in bins_a])


def trajectory_similarity(a: xr.DataArray, b: xr.DataArray, window: int = None) -> xr.DataArray:
    """Procrustes similarity of whole trajectories (rows: stimulus x time) in sliding windows of ``window``
    bins (all bins when None); both must have the same number of bins."""
    a, b = align(a, b)
    if a.sizes["time_bin"] != b.sizes["time_bin"]:
        raise ValueError(f"trajectories of {a.sizes['time_bin']} and {b.sizes['time_bin']} bins; resample to one grid")
    bins = a.sizes["time_bin"]
    if window is not None and not 1 <= window <= bins:  # longer gave an empty result, and 0 meant all bins
        raise ValueError(f"window {window}: expected 1..{bins} bins (None: all {bins})")
    window = window or bins
    starts = range(0, a.sizes["time_bin"] - window + 1)
    values = [procrustes_similarity(a.values[:, s: s + window].reshape(-1, a.sizes["neuroid"]),
                                    b.values[:, s: s + window].reshape(-1, b.sizes["neuroid"])) for s in starts]
    return xr.DataArray(values, dims=("window",), coords={"window": a["time_bin_start"].values[list(starts)]},
                        name="procrustes", attrs={"window_bins": window})
