"""Cross-validated linear mappings from model features to neural responses.

PLS as Brain-Score runs it (REFERENCE.md section 3): ``PLSRegression(n_components=25, scale=False)``
fitted on the training presentations of each of 10 ``StratifiedShuffleSplit(train_size=0.9,
random_state=1)`` splits stratified on ``object_name``; predictions on the held-out presentations are
compared with the data by a Pearson r per neuroid (see :mod:`benchmarks.metrics.temporal`).

Fast PLS
--------
sklearn's NIPALS finds each component's weight vector ``w_k`` with a power iteration whose fixed point is
the first left singular vector of ``X_k^T Y_k`` (``X_k``, ``Y_k`` the deflated data); that loop is where
Brain-Score spends its time. This module computes the fixed point exactly instead and runs the whole
algorithm in the space of the sufficient statistics ``C = X^T X`` (features x features) and
``S = X^T Y`` (features x targets) of the centred training data:

* regression-mode deflation keeps ``X_k = X G_k`` with ``G_k = I - sum_{j<k} r_j p_j^T``, so
  ``X_k^T Y_k = X_k^T Y = M_k`` with the rank-one update ``M_{k+1} = M_k - p_k (w_k^T M_k)``;
* ``w_k`` = top eigenvector of ``H_k = M_k^T M_k`` (targets x targets, LAPACK ``?syevx`` for that one
  vector) mapped back through ``M_k`` (or of ``M_k M_k^T`` when there are more targets than features);
  the deflation changes ``H`` by a rank-one term, so it is updated, not recomputed (recomputed once
  ``M`` has shrunk by 1e-4, where the updates would lose relative precision); the sign is irrelevant;
* rotation ``r_k = G_k w_k = w_k - R_{<k} P_{<k}^T w_k``, score norm ``t_k.t_k = r_k^T C r_k``,
  x-loading ``p_k = C r_k / t_k.t_k`` (scores are mutually orthogonal), y-loading
  ``c_k = S^T r_k / t_k.t_k``; the regression coefficients are ``sum_k r_k c_k^T`` -- the same
  ``x_rotations_ @ y_loadings_.T`` sklearn builds. Predictions go through the factors
  (``(X R) L^T``: 25 columns, not the targets').

Folds (span-time: the presentation x bin samples stacked). One streamed pass over the features builds the
Gram ``X^T X`` and the cross-covariance ``X^T Y`` of all samples (centred on the global means); each fold's
training moments are these *downdated* by the moments of its test presentations (10 % of the samples) and
a rank-one mean correction, so 10 folds cost about two passes over the data, and the folds' PLS problems
are solved together as a batch. float32 features (what the extraction produces) are multiplied in float32
block by block and summed in float64; float64 features stay float64. The responses are centred (in float64, then
cast) before the products, and each split's prediction is the centred one plus its training mean; where that mean
dwarfs the prediction (responses hundreds of sd from zero) the sum is taken in float64 (:func:`_add_training_means`).
Memory: the features, one block of samples, one fold's test samples and ``folds x F x (F + Q)`` moments; no copy of
features x bins x folds.

One feature 1e8 or more times the others is beyond the moments: the rounding of its entries (1e-16 of that feature)
outweighs the other features, and the later components' scores lose their orthogonality. Each fold's rotations are
checked for that (:func:`orthogonality_lost`, never true on ordinary features) and a fold that fails it is fitted again
by NIPALS on its float64 training samples (:func:`nipals_components`, sklearn's deflation of the data).

Against Brain-Score. sklearn's NIPALS stops a component's power iteration once the squared change of the
weight vector falls below ``tol=1e-6``, so its weights carry errors of order 1e-3; per-bin scores differ
from the exact solution by a few 1e-4 (``benchmarks/perf/metric_speed.py``, 300 and 1000 features), and
sklearn run to ``tol=1e-12`` closes the gap (``--explain``).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit

from neurozoo.datasets.errors import DataError, SpecError

Split = Tuple[np.ndarray, np.ndarray]

#: Brain-Score's PLS components: ``PLSRegression(n_components=25, scale=False)`` (REFERENCE.md section 3; the module
#: docstring).
BRAINSCORE_PLS_COMPONENTS = 25

#: Brain-Score's cross-validation: 10 stratified 90/10 splits, seed 1.
N_SPLITS, TRAIN_SIZE, SPLIT_SEED = 10, 0.9, 1


def brainscore_splits(object_names: Optional[Sequence], n_splits: int = N_SPLITS, train_size: float = TRAIN_SIZE,
                      random_state: int = SPLIT_SEED, n_presentations: Optional[int] = None,
                      name: str = "assembly") -> List[Split]:
    """(train, test) index arrays over presentations, stratified on ``object_names`` (None: plain shuffle split
    over ``n_presentations``). ``name``: how a refusal names the data (``assembly.assembly_name`` of the assembly the
    names come from: its stimulus set and/or file)."""
    if n_presentations is None:
        if object_names is None:
            raise TypeError("brainscore_splits: pass object_names or n_presentations")
        n_presentations = len(object_names)
    n = n_presentations
    if object_names is None or len(set(object_names)) < 2:
        splitter = ShuffleSplit(n_splits=n_splits, train_size=train_size, random_state=random_state)
        try:
            return [(np.sort(a), np.sort(b)) for a, b in splitter.split(np.zeros(n))]
        except ValueError as error:  # sklearn's: too few stimuli for a train and a test part, or a bad train_size
            raise DataError(f"{name}: {n} stimuli cannot be split into {n_splits} splits of {train_size:g} train "
                            f"and the rest test ({error})") from None
    splitter = StratifiedShuffleSplit(n_splits=n_splits, train_size=train_size, random_state=random_state)
    try:
        return [(np.sort(a), np.sort(b)) for a, b in splitter.split(np.zeros(n), np.asarray(object_names))]
    except ValueError as error:  # sklearn's: a class with one member, or more classes than test stimuli
        raise DataError(
            f"{name}: coordinate 'object_name' along 'presentation' gives " + unsplittable_objects(
                object_names, f"{n_splits} splits stratified on objects, {1 - train_size:.0%} of the stimuli tested, "
                f"cannot hold ({error}); expected {stratifiable(object_names, train_size)}, or one value for every "
                "stimulus (e.g. 'unlabelled') for plain shuffle splits")) from None


def stratifiable(object_names, train_size: float) -> str:
    """What a split stratified on ``object_names`` needs that they lack: two stimuli of every object, and a train and
    a test part that each hold one stimulus of every object (sklearn's StratifiedShuffleSplit: the train part
    floor(train_size * n) stimuli, the test part the rest). "Several stimuli per object" alone misled: 4 objects of 6
    stimuli each are refused, their 24 stimuli testing 3 in a split."""
    counts = np.unique(np.asarray(object_names).astype(str), return_counts=True)[1]
    n_objects = len(counts)
    if counts.min() < 2:
        return "at least 2 stimuli of every object"
    n = len(object_names)
    parts = lambda m: (math.floor(train_size * m), m - math.floor(train_size * m))  # noqa: E731
    if min(parts(n)) >= n_objects:
        return "several stimuli per object"
    needed = next(m for m in range(n, 1000 * n_objects + n) if min(parts(m)) >= n_objects)
    return (f"a train and a test part of at least one stimulus per object ({n_objects} objects; {n} stimuli give "
            f"{'/'.join(map(str, parts(n)))}): {needed} stimuli or more, or fewer objects")


def unsplittable_objects(object_names, why: str) -> str:
    """The count of objects and stimuli, the fewest stimuli an object has and which, then ``why`` a stratified
    split cannot be made of them: the shared part of the errors of splits stratified on ``object_name``."""
    names, counts = np.unique(np.asarray(object_names).astype(str), return_counts=True)
    return (f"{len(names)} objects over {len(object_names)} stimuli (fewest stimuli per object: {counts.min()}, "
            f"e.g. {names[np.argsort(counts, kind='stable')[:3]].tolist()}), which {why}")


# --------------------------------------------------------------------------------------------- PLS core
def pls_coefficients(C: np.ndarray, S: np.ndarray, n_components: int) -> np.ndarray:
    """PLS-regression (NIPALS, regression deflation) coefficients from centred moments.

    C: (..., F, F) = X^T X and S: (..., F, Q) = X^T Y of centred training data, batched over leading axes.
    Returns B (..., F, Q) such that predictions are (X - x_mean) @ B + y_mean.
    """
    rotations, loadings = pls_components(C, S, n_components)
    return rotations @ np.swapaxes(loadings, -1, -2)


def pls_components(C: np.ndarray, S: np.ndarray, n_components: int,
                   tolerance: float = 1e-12) -> Tuple[np.ndarray, np.ndarray]:
    """x-rotations R (..., F, k) and y-loadings L (..., Q, k) of PLS; the coefficients are ``R @ L^T``.

    Predicting through the factors, ``((X - x_mean) @ R) @ L^T``, costs k/Q of the product with B.
    A fold stops once its deflated cross-covariance, each feature's row weighed by 1 / that feature's norm
    (``C``'s diagonal), is below ``tolerance`` times the initial one: the training samples are exhausted (fewer samples
    than components); past that, components would fit the rounding noise of the moments (float32 products leave it
    near 1e-7 of each feature's own magnitude, so their callers pass 1e-5).
    """
    from threadpoolctl import threadpool_limits

    # the loop is many small eigendecompositions and matrix-vector products: BLAS threads only add
    # synchronisation (and stall badly on a busy machine), so it runs single-threaded
    with threadpool_limits(limits=1, user_api="blas"):
        return _pls_components(C, S, n_components, tolerance)


def _top_eigenvectors(H: np.ndarray) -> np.ndarray:
    """(K, n) eigenvector of the largest eigenvalue of each symmetric (K, n, n) matrix (LAPACK ?syevx, one value)."""
    from scipy.linalg import eigh

    n = H.shape[-1]
    return np.stack([eigh(h, subset_by_index=[n - 1, n - 1], driver="evx", check_finite=False)[1][:, 0] for h in H])


def _pls_components(C: np.ndarray, S: np.ndarray, n_components: int, tolerance: float) -> Tuple[np.ndarray, np.ndarray]:
    C = np.asarray(C, dtype=np.float64)
    S = np.asarray(S, dtype=np.float64)
    batch, F, Q = S.shape[:-2], S.shape[-2], S.shape[-1]
    C = C.reshape((-1, F, F))
    S = S.reshape((-1, F, Q))
    K = S.shape[0]
    n_components = int(min(n_components, F))
    M = S.copy()
    R = np.zeros((K, F, n_components))
    P = np.zeros((K, F, n_components))
    L = np.zeros((K, Q, n_components))
    targets_first = Q <= F  # w from the smaller Gram: M^T M (Q x Q) mapped back through M, or M M^T (F x F)
    gram = lambda: M.transpose(0, 2, 1) @ M if targets_first else M @ M.transpose(0, 2, 1)  # noqa: E731
    H = gram()
    # the exhaustion test weighs each feature's row by 1 / its norm: rounding leaves each moment an error relative to
    # its own features' magnitudes, so a feature of 1 beside one of 1e6 is not rounding noise (one plain norm over all
    # stopped such a fit after the large feature's component: r off by up to 1.7, a score of 0.22 for sklearn's 0.75)
    diagonal = np.einsum("kff->kf", C)
    weight = np.where(diagonal > 0, 1.0 / np.where(diagonal > 0, diagonal, 1.0), 0.0)
    scale = np.sqrt(np.einsum("kfq,kfq->k", S, S)) + 1e-300
    scale_weighted = np.sqrt(np.einsum("kfq,kfq,kf->k", S, S, weight)) + 1e-300
    active = np.ones(K, dtype=bool)
    for k in range(n_components):
        # stop a fold once its cross-covariance is exhausted (sklearn: "y residual is constant")
        rows = np.einsum("kfq,kfq->kf", M, M)
        norm = np.sqrt(rows.sum(axis=1))
        active &= np.sqrt(np.einsum("kf,kf->k", rows, weight)) > tolerance * scale_weighted
        if not active.any():
            break
        if np.any(active & (norm < 1e-4 * scale)):
            H = gram()  # the rank-one updates below lose relative precision once M has shrunk a lot
        top = _top_eigenvectors(H)
        w = np.einsum("kfq,kq->kf", M, top) if targets_first else top
        w /= np.linalg.norm(w, axis=1, keepdims=True) + 1e-300
        if k:
            w_proj = np.einsum("kfj,kf->kj", P[..., :k], w)
            r = w - np.einsum("kfj,kj->kf", R[..., :k], w_proj)
        else:
            r = w
        Cr = np.einsum("kfg,kg->kf", C, r)
        tt = np.einsum("kf,kf->k", r, Cr)
        ok = active & (tt > 1e-300)
        inv = np.where(ok, 1.0 / np.where(ok, tt, 1.0), 0.0)
        p = Cr * inv[:, None]
        R[..., k] = r * ok[:, None]
        P[..., k] = p
        L[..., k] = np.einsum("kfq,kf->kq", S, r) * inv[:, None]
        # deflation M <- M - p v^T with v = M^T w, and the same rank-one change of the Gram H
        v = np.einsum("kf,kfq->kq", w, M)
        if targets_first:
            a = np.einsum("kfq,kf->kq", M, p)
            pp = np.einsum("kf,kf->k", p, p)
            H -= a[:, :, None] * v[:, None, :] + v[:, :, None] * a[:, None, :] - pp[:, None, None] * v[:, :, None] * v[:, None, :]
        else:
            b = np.einsum("kfq,kq->kf", M, v)
            vv = np.einsum("kq,kq->k", v, v)
            H -= b[:, :, None] * p[:, None, :] + p[:, :, None] * b[:, None, :] - vv[:, None, None] * p[:, :, None] * p[:, None, :]
        M -= p[:, :, None] * v[:, None, :]
    return R.reshape(batch + (F, n_components)), L.reshape(batch + (Q, n_components))


#: the largest |r_i^T C r_j| / sqrt(r_i^T C r_i r_j^T C r_j) (i != j) of a fold's rotations that is taken for rounding:
#: exactly 0 in theory, 1e-14 on ordinary features and 1e-11 with one feature 1e7 times the others; 1 where the
#: moment space has lost the components' orthogonality (one feature 1e8 or more times the others)
ORTHOGONALITY_TOLERANCE = 1e-6


def orthogonality_lost(C: np.ndarray, R: np.ndarray) -> np.ndarray:
    """(K,) bool: the folds whose x-scores ``X r_k`` are not mutually orthogonal, measured in ``C = X^T X``.

    C (K, F, F) and R (K, F, k) as :func:`pls_components` takes and returns them. PLS's scores are orthogonal by
    construction; with one feature 1e8 or more times the others the rounding of the moments' large entries (1e-16 of
    that feature's magnitude) outweighs the other features, the components past about the 13th pick the large feature
    back up, and the fit scores 0.4-0.7 where sklearn's data-space NIPALS scores 0.84. Costs ``F^2 k`` per fold, a
    fraction of the moments' ``samples x F^2``."""
    G = np.swapaxes(R, -1, -2) @ (C @ R)
    norms = np.sqrt(np.abs(np.einsum("kii->ki", G)))
    cosines = np.abs(G) / (norms[:, :, None] * norms[:, None, :] + 1e-300)
    cosines[:, np.arange(G.shape[1]), np.arange(G.shape[1])] = 0.0
    return cosines.max(axis=(1, 2), initial=0.0) > ORTHOGONALITY_TOLERANCE


def nipals_components(X: np.ndarray, Y: np.ndarray, n_components: int, tolerance: float = 1e-12,
                      overwrite: bool = False) -> Tuple[np.ndarray, np.ndarray]:
    """x-rotations R (F, n_components) and y-loadings L (Q, n_components) of PLS on the centred float64 data X (n, F)
    and Y (n, Q) themselves (sklearn's algorithm, each weight vector the exact top singular vector of ``X_k^T Y_k``):
    the data-space deflation ``X_{k+1} = X_k - t_k p_k^T`` keeps the scores orthogonal where the moments cannot (see
    :func:`orthogonality_lost`), at the price of a pass over the data per component. Stops as
    :func:`pls_components` does (columns past the stop are 0). ``overwrite``: deflate float64 X and Y in place (no copy
    of the samples)."""
    X = np.array(X, dtype=np.float64, copy=not overwrite)
    Y = np.array(Y, dtype=np.float64, copy=not overwrite)
    F, Q = X.shape[1], Y.shape[1]
    n_components = int(min(n_components, F))
    W, P, L = np.zeros((F, n_components)), np.zeros((F, n_components)), np.zeros((Q, n_components))
    diagonal = np.einsum("nf,nf->f", X, X)
    weight = np.where(diagonal > 0, 1.0 / np.where(diagonal > 0, diagonal, 1.0), 0.0)
    start = None
    fitted = 0
    for k in range(n_components):
        M = X.T @ Y
        size = np.sqrt(np.einsum("fq,fq,f->", M, M, weight))
        start = size if start is None else start
        if not size > tolerance * start + 1e-300:
            break
        w = np.linalg.svd(M, full_matrices=False)[0][:, 0]
        t = X @ w
        tt = t @ t
        if not tt > 1e-300:
            break
        W[:, k], P[:, k], L[:, k] = w, X.T @ t / tt, Y.T @ t / tt
        X -= np.outer(t, P[:, k])
        Y -= np.outer(t, L[:, k])
        fitted = k + 1
    R = np.zeros((F, n_components))
    if fitted:
        R[:, :fitted] = W[:, :fitted] @ np.linalg.pinv(P[:, :fitted].T @ W[:, :fitted])  # sklearn's x_rotations_
    return R, L


@dataclass
class FastPLS:
    """Drop-in for ``sklearn.cross_decomposition.PLSRegression(n_components, scale=False)`` (fit/predict).

    ``n_components`` is clipped to the number of features (sklearn raises instead). Inputs are checked as sklearn's
    estimators check them (``check_X_y``, ``check_array``: a 2-D X with as many rows as Y, finite numbers, at least 2
    samples, the features it was fitted on, fitted before predict), with sklearn's messages; they failed in numpy (a
    1-D X, rows that do not match, a predict before fit) or fitted NaN.
    """

    n_components: int = BRAINSCORE_PLS_COMPONENTS

    def fit(self, X, Y):
        from sklearn.utils.validation import check_X_y

        check_n_components(self.n_components)
        X, Y = check_X_y(X, Y, dtype=np.float64, multi_output=True, y_numeric=True, ensure_min_samples=2,
                         estimator=self)
        self._y_1d = Y.ndim == 1
        Y = Y.reshape(len(Y), -1)
        self.x_mean_, self.y_mean_ = X.mean(0), Y.mean(0)
        Xc, Yc = X - self.x_mean_, Y - self.y_mean_
        C = Xc.T @ Xc
        rotations, loadings = pls_components(C, Xc.T @ Yc, self.n_components)
        if orthogonality_lost(C[None], rotations[None])[0]:
            rotations, loadings = nipals_components(Xc, Yc, self.n_components)
        self.coef_ = rotations @ loadings.T
        return self

    def predict(self, X):
        from sklearn.exceptions import NotFittedError
        from sklearn.utils.validation import check_array

        if not hasattr(self, "coef_"):  # sklearn's check_is_fitted needs its estimator tags, which this class has not
            raise NotFittedError("This FastPLS instance is not fitted yet. Call 'fit' with appropriate arguments "
                                 "before using this estimator.")
        X = check_array(X, dtype=np.float64, estimator=self)
        if X.shape[1] != len(self.x_mean_):
            raise ValueError(f"X has {X.shape[1]} features, but FastPLS is expecting {len(self.x_mean_)} features as "
                             "input")
        prediction = (X - self.x_mean_) @ self.coef_ + self.y_mean_
        return prediction[:, 0] if self._y_1d else prediction


# ----------------------------------------------------------------------------- folds over stacked samples
def _rows(presentations: np.ndarray, n_presentations: int, n_bins: int) -> np.ndarray:
    """Row indices in a bin-major stack (row = bin * n_presentations + presentation)."""
    return (np.arange(n_bins)[:, None] * n_presentations + presentations[None, :]).ravel()


#: presentations per block when streaming the moments (a block is presentations x bins rows)
BLOCK_ROWS = 4096
#: memory for the folds' F x F Gram matrices solved together (float64)
FOLD_MEMORY = 256 * 2 ** 20


def _columns(A: np.ndarray, presentations, dtype, offset, scale: float = 1.0) -> np.ndarray:
    """(D, n * T) samples of A[presentations] (n, D, T) as columns (presentation-major), times ``scale`` (a power of
    two: exact), minus ``offset``, in ``dtype``.

    Moving the presentation axis keeps the bins' contiguous runs, which copies (and multiplies) faster
    than rows of features."""
    block = A[presentations]  # a view for a slice, a gathered copy of only these presentations otherwise
    n, D, T = block.shape
    columns = np.empty((D, n, T), dtype=dtype)
    if scale == 1.0:
        np.subtract(block.transpose(1, 0, 2), offset.astype(dtype)[:, None, None], out=columns, casting="unsafe")
    else:
        np.multiply(block.transpose(1, 0, 2), scale, out=columns, casting="unsafe")
        columns -= offset.astype(dtype)[:, None, None]
    return columns.reshape(D, n * T)


def unit_scale(X: np.ndarray, dtype=np.float32) -> float:
    """The power of two that brings the largest magnitude of ``X`` into [0.5, 1) (1 for zero or non-finite ``X``),
    clipped to the normal numbers of ``dtype``, the type it multiplies in.

    PLS with ``scale=False`` (Brain-Score's) is equivariant to a common factor on the features: the predictions, and
    so every score, are the same for ``X`` and ``c X`` (sklearn computes in float64, where features of 1e-30 are as
    good as features of 1). The fast path multiplies in float32, whose products underflow below about 1e-19 and
    overflow above about 1e18: features of 1e-30 gave a Gram matrix of zeros and a score of 0. Scaled by a power of
    two (exact in floating point, no rounding added) the products stay in range at any magnitude float32 holds.
    Subnormal float32 features (below 1.2e-38) are brought up by at most 2^125: the power that brings them to 1 (2^128
    and above) is infinite in float32, and multiplied every feature into inf and every prediction into NaN."""
    if not X.size:
        return 1.0
    largest = max(abs(float(np.max(X))), abs(float(np.min(X))))  # no |X| copy of the whole features
    if not np.isfinite(largest) or largest == 0.0:
        return 1.0
    exponent = max(int(np.frexp(largest)[1]), np.finfo(dtype).minexp + 1)
    return float(np.ldexp(1.0, -exponent))


def check_n_components(n_components) -> int:
    """PLS's ``n_components``: an integer >= 1 (0 fitted nothing and scored 0, a negative number failed in numpy, 2.5
    was fitted as 2 and recorded as 2.5)."""
    if not (isinstance(n_components, numbers.Integral) and n_components >= 1):
        raise SpecError(f"n_components: expected an integer >= 1 (PLS components), got {n_components!r}")
    return int(n_components)


def check_finite(array: np.ndarray, name: str) -> None:
    """``DataError`` naming ``name`` when ``array`` holds NaN or inf, with how many and the first one's index.

    One float64 sum first (no copy of the array; a NaN or inf anywhere makes it non-finite), the element-wise test
    only when that sum is not finite (then an overflowing sum of finite numbers is told apart from a bad value)."""
    array = np.asarray(array)
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow (or inf - inf) is what the test below tells apart
        total = np.sum(array, dtype=np.float64)
    if np.isfinite(total):
        return
    bad = ~np.isfinite(array)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise DataError(f"{name}: {int(bad.sum())} NaN/inf values of {array.size} (the first at index {first}, "
                        f"{array[first]}); expected finite numbers")


def check_fold_inputs(X: np.ndarray, Y: np.ndarray, splits: Sequence[Split], n_components: Optional[int] = None,
                      complement: bool = False) -> None:
    """``DataError`` for fold inputs a mapping cannot use, naming the argument: X (P, F, T) and Y (P, Q, T) of finite
    numbers with the same presentations and bins (a NaN or inf made every fold's predictions NaN without a word);
    ``splits`` at least one (train, test) pair of integer presentation indices in [0, P), disjoint, neither empty
    (``complement``: the train part every presentation outside the test part, which the fast PLS takes it to be from its
    downdated moments; another train part was ignored without a word); PLS's ``n_components`` an integer >= 1. They
    failed inside numpy (a shape mismatch, an index out of range) or scored nonsense (0 components scored 0; a split's
    test presentations trained on)."""
    for name, array, axes in (("X", X, "(presentations, features, time bins)"),
                              ("Y", Y, "(presentations, targets, time bins)")):
        array = np.asarray(array)
        if array.ndim != 3 or 0 in array.shape or array.dtype.kind not in "biuf":
            raise DataError(f"{name}: expected numbers of shape {axes}, none of them 0; got {array.dtype} of shape "
                            f"{array.shape}")
    for name, array in (("X", X), ("Y", Y)):
        check_finite(array, name)
    P, T = np.shape(X)[0], np.shape(X)[2]
    if (np.shape(Y)[0], np.shape(Y)[2]) != (P, T):
        raise DataError(f"X of shape {np.shape(X)} and Y of shape {np.shape(Y)}: expected the same presentations and "
                        "time bins (axes 0 and 2)")
    if n_components is not None:
        check_n_components(n_components)
    if not len(splits):
        raise DataError("splits: expected at least one (train, test) pair of presentation indices, got none")
    for k, split in enumerate(splits):
        parts = [np.asarray(part) for part in split] if len(split) == 2 else []
        if not parts or any(part.ndim != 1 or not len(part) or part.dtype.kind not in "iu" for part in parts):
            raise DataError(f"splits[{k}]: expected a (train, test) pair of non-empty 1-D integer arrays of "
                            "presentation indices")
        train, test = parts
        outside = [int(i) for part in parts for i in part[(part < 0) | (part >= P)][:3]]
        if outside:
            raise DataError(f"splits[{k}]: presentation indices {outside} outside [0, {P}) ({P} presentations)")
        shared = np.intersect1d(train, test)
        if len(shared):
            raise DataError(f"splits[{k}]: presentations {shared[:3].tolist()} are in both train and test "
                            f"({len(shared)} in all); a test presentation must not be trained on")
        if complement and len(np.unique(train)) + len(np.unique(test)) != P:
            raise DataError(f"splits[{k}]: train ({len(train)}) and test ({len(test)}) leave out "
                            f"{P - len(np.union1d(train, test))} of the {P} presentations; PLS fits each split on "
                            "every presentation outside its test part (the fast moments), so train must be exactly "
                            "the rest")


def pls_fit_predict_folds(X: np.ndarray, Y: np.ndarray, splits: Sequence[Split],
                          n_components: int = BRAINSCORE_PLS_COMPONENTS) -> List[np.ndarray]:
    """Fit PLS on each split's training presentations, predict its test presentations.

    X: (P, F, T) features and Y: (P, Q, T) responses; the T time bins are stacked into the sample axis
    (span-time: one mapping shared by all bins). Pass T = 1 for a plain (single-bin) fit.
    Returns per split the predictions (n_test, Q, T) for that split's test presentations: float32 for float32 (and
    float16) X, float64 where a target's training mean dwarfs its prediction (:func:`_add_training_means`).

    Products run in float32 when X is float32 (the extraction's dtype) and are summed in float64 block
    by block; float64 features keep float64 throughout. Memory: the features, one block of rows, and
    the folds' moments (folds x F x (F + Q)) -- nothing of size presentations x bins x folds. A fold that fails
    :func:`orthogonality_lost` (one feature 1e8 or more times the others) adds a float64 copy of its training samples.
    """
    check_fold_inputs(X, Y, splits, n_components, complement=True)
    X = np.asarray(X)
    dtype = np.float32 if X.dtype in (np.float16, np.float32) else np.float64
    P, F, T = X.shape
    Q = Y.shape[1]
    # centring on the means of all samples keeps the downdated moments free of cancellation
    # the features in units of their largest magnitude (a power of two): the same predictions, and float32 products
    # that neither underflow (features of 1e-30 scored 0) nor overflow
    scale = unit_scale(X, dtype)
    x_mean = X.mean(axis=(0, 2), dtype=np.float64) * scale
    y_mean = np.asarray(Y).mean(axis=(0, 2), dtype=np.float64)
    moments = lambda rows: _moments(X, Y, rows, x_mean, y_mean, dtype, scale)  # noqa: E731
    # a target constant over a split's training presentations has a centred training response of exactly 0, so its
    # PLS loadings are 0 and its prediction that constant (Brain-Score's sklearn: r NaN, dropped from the median);
    # its downdated cross-covariance is rounding noise instead, which the fit turned into a prediction with an
    # arbitrary r of up to +-1. Told apart exactly, per split, by the least and largest training response, of the
    # targets that can be constant over a split's training part only: those whose first bin is alike on all but
    # 2 x (test presentations) pairs of neighbouring presentations (none in ordinary data: no cost there)
    Y_values = np.asarray(Y)
    first = Y_values[:, :, 0]
    alike = np.count_nonzero(first[1:] == first[:-1], axis=0)
    candidates = np.flatnonzero(alike >= P - 1 - 2 * max(len(np.asarray(test)) for _, test in splits))
    y_low, y_high = Y_values[:, candidates].min(axis=2), Y_values[:, candidates].max(axis=2)  # (P, candidates)
    step = max(1, BLOCK_ROWS // T)
    gram, cross, x_sum, y_sum = (0.0,) * 4
    for start in range(0, P, step):
        block = moments(slice(start, start + step))
        gram, cross, x_sum, y_sum = (total + part for total, part in zip((gram, cross, x_sum, y_sum), block))
    predictions: List[np.ndarray] = []
    fold_batch = max(1, FOLD_MEMORY // (8 * F * (F + Q)))
    for first in range(0, len(splits), fold_batch):
        chunk = [np.asarray(test) for _, test in splits[first:first + fold_batch]]
        C = np.empty((len(chunk), F, F))
        S = np.empty((len(chunk), F, Q))
        means = []
        for i, test in enumerate(chunk):
            test_gram, test_cross, test_x, test_y = moments(test)
            n_train = T * (P - len(test))
            mx, my = (x_sum - test_x) / n_train, (y_sum - test_y) / n_train
            np.subtract(gram, test_gram, out=C[i])
            C[i] -= n_train * np.outer(mx, mx)
            np.subtract(cross, test_cross, out=S[i])
            S[i] -= n_train * np.outer(mx, my)
            if len(candidates):
                train = np.ones(P, dtype=bool)
                train[test] = False
                S[i][:, candidates[y_low[train].min(axis=0) == y_high[train].max(axis=0)]] = 0.0
            means.append((mx, my))
        rotations, loadings = pls_components(C, S, n_components, tolerance=1e-5 if dtype == np.float32 else 1e-12)
        # a fold whose moments lost the scores' orthogonality (one feature 1e8 or more times the others; never on
        # ordinary features, whose numbers this leaves as they are) is fitted again on its float64 training samples
        for i in np.flatnonzero(orthogonality_lost(C, rotations)):
            train = np.setdiff1d(np.arange(P), chunk[i])
            mx, my = means[i]
            features, targets = _columns(X, train, np.float64, x_mean, scale), _columns(Y, train, np.float64, y_mean)
            features -= mx[:, None]
            targets -= my[:, None]
            rotations[i], loadings[i] = nipals_components(features.T, targets.T, n_components, overwrite=True)
            del features, targets
        del C, S
        for i, test in enumerate(chunk):
            mx, my = means[i]
            scores = rotations[i].T.astype(dtype) @ _columns(X, test, dtype, x_mean, scale)  # (k, n_test * T)
            scores -= (mx @ rotations[i]).astype(dtype)[:, None]
            prediction = _add_training_means(loadings[i].astype(dtype) @ scores, my, y_mean, dtype)  # (Q, n_test * T)
            predictions.append(prediction.reshape(Q, len(test), T).transpose(1, 0, 2))
    if any(prediction.dtype != predictions[0].dtype for prediction in predictions):  # one dtype for every split
        predictions = [prediction.astype(np.float64, copy=False) for prediction in predictions]
    return predictions


#: a target whose training mean is more than this many times its centred prediction's largest magnitude gets its mean
#: added in float64 (:func:`_add_training_means`); at or below it the float32 sum rounds the centred values by at
#: most 2^-17 (8e-6) of the largest, less than the float32 products leave (up to 4e-5 of the responses' sd)
MEAN_TO_PREDICTION = 2.0 ** 6


def _add_training_means(centred: np.ndarray, my: np.ndarray, y_mean: np.ndarray, dtype) -> np.ndarray:
    """The (Q, n) prediction: ``centred`` (in ``dtype``) plus each target's training mean, ``my + y_mean`` (``my`` the
    fold's mean of the targets centred on ``y_mean`` as ``dtype`` rounds it).

    A float32 prediction keeps the mean's digits, not the signal's, once the mean dwarfs the variation: a neuroid at
    1e4 sd + signal was predicted 1.4e-3 sd off sklearn's float64 (3e-5 without the offset), its r 3.5e-4 off; at
    1e6 sd, 9e-2 sd and 2.9e-2. Where a
    target's mean is more than :data:`MEAN_TO_PREDICTION` times its centred prediction, the split's prediction is
    the float64 sum instead, with the mean the targets were centred on (``y_mean`` rounded to ``dtype``: the float64
    ``y_mean`` put that rounding, up to 3e-2 sd at 1e6 sd, into every prediction). Elsewhere (ordinary responses)
    the float32 sum is kept: the same numbers as before, bit for bit."""
    if dtype == np.float32 and np.any(np.abs(my + y_mean) > MEAN_TO_PREDICTION * np.abs(centred).max(axis=1)):
        return centred + (my + y_mean.astype(dtype))[:, None]  # float32 + float64: float64
    centred += (my + y_mean).astype(dtype)[:, None]
    return centred


def _moments(X, Y, presentations, x_mean, y_mean, dtype, scale: float = 1.0):
    """Float64 (X^T X, X^T Y, column sums of X, of Y) of the centred rows of ``presentations``, all bins (X times
    ``scale``)."""
    features = _columns(X, presentations, dtype, x_mean, scale)
    targets = _columns(Y, presentations, dtype, y_mean)
    return ((features @ features.T).astype(np.float64), (features @ targets.T).astype(np.float64),
            features.sum(1, dtype=np.float64), targets.sum(1, dtype=np.float64))


# -------------------------------------------------------------------------------------------------- ridge
# Brain-Score's ridge (brain-score/vision brainscore_vision/metrics/regression_correlation/metric.py at 0197a60):
# ``ridge_regression`` (lines 120-126) is ``sklearn.linear_model.Ridge(alpha=1)``, the regression of the metrics
# 'ridge' (= 'ridge_cv', __init__.py at 17ba73a lines 9-10 and 33) and 'spantime_ridge' (lines 43-44);
# ``ridge_cv_regression`` (lines 137-145) is ``RidgeCV(alphas=ALPHA_LIST)`` (lines 128-136), efficient leave-one-out
# over the training samples, which Brain-Score uses only on a fixed train/test split ('ridgecv_split', lines 27-28).
# Both fit an intercept on the raw features.
BRAINSCORE_RIDGE_ALPHA = 1.0
BRAINSCORE_ALPHAS = (0.01, 0.1, 0.5, 1.0, *np.linspace(1e1, 1e2, 4, endpoint=False),
                     *np.linspace(1e2, 1e3, 18, endpoint=False), *np.linspace(1e3, 1e4, 18, endpoint=False),
                     *np.linspace(1e4, 1e5, 18, endpoint=False), *np.linspace(1e5, 1e6, 18, endpoint=False),
                     *np.linspace(1e6, 1e7, 19))


def _sklearn_fit_predict_folds(make_model, X: np.ndarray, Y: np.ndarray, splits: Sequence[Split]) -> List[np.ndarray]:
    """Same contract as :func:`pls_fit_predict_folds` for an sklearn regressor ``make_model()``, fitted per fold on
    the training presentations' (presentation, bin) samples stacked; each fold's rows are gathered once."""
    check_fold_inputs(X, Y, splits)
    P, F, T = np.shape(X)
    Q = Y.shape[1]
    Xs = np.moveaxis(np.asarray(X, dtype=np.float64), 2, 0).reshape(T * P, F)
    Ys = np.moveaxis(np.asarray(Y, dtype=np.float64), 2, 0).reshape(T * P, Q)
    out = []
    for train, test in splits:
        rows = _rows(np.asarray(train), P, T)
        prediction = make_model().fit(Xs[rows], Ys[rows]).predict(Xs[_rows(np.asarray(test), P, T)])
        out.append(prediction.reshape(T, len(test), Q).transpose(1, 2, 0))
    return out


@dataclass
class RidgeMapping:
    """Brain-Score's ridge, mapping ``"ridge"``: ``sklearn.linear_model.Ridge(alpha=1)`` on the stacked training
    samples."""

    alpha: float = BRAINSCORE_RIDGE_ALPHA

    def fit_predict_folds(self, X: np.ndarray, Y: np.ndarray, splits: Sequence[Split]) -> List[np.ndarray]:
        from sklearn.linear_model import Ridge

        return _sklearn_fit_predict_folds(lambda: Ridge(alpha=self.alpha), X, Y, splits)


@dataclass
class RidgeCVMapping:
    """Mapping ``"ridgecv"``: ridge with the penalty chosen per fold by sklearn's efficient leave-one-out
    ``RidgeCV`` over Brain-Score's ``ALPHA_LIST``."""

    alphas: Tuple[float, ...] = BRAINSCORE_ALPHAS

    def fit_predict_folds(self, X: np.ndarray, Y: np.ndarray, splits: Sequence[Split]) -> List[np.ndarray]:
        from sklearn.linear_model import RidgeCV

        # a list: sklearn's RidgeCV writes a single alpha back into ``alphas`` (a one-alpha tuple: TypeError)
        return _sklearn_fit_predict_folds(lambda: RidgeCV(alphas=list(self.alphas)), X, Y, splits)


#: the mappings :func:`fit_predict_folds` takes
MAPPINGS = ("pls", "ridge", "ridgecv")


def fit_predict_folds(mapping: str, X: np.ndarray, Y: np.ndarray, splits: Sequence[Split],
                      n_components: Optional[int] = None, alphas: Optional[Tuple[float, ...]] = None) -> List[np.ndarray]:
    """Per fold of ``splits``, the mapping ``mapping`` (one of :data:`MAPPINGS`) fitted on the training presentations
    and its prediction of the test ones. ``n_components``: the components ``"pls"`` fits (default Brain-Score's
    :data:`BRAINSCORE_PLS_COMPONENTS`); ``alphas`` are the penalties ``"ridgecv"`` searches (default Brain-Score's
    ``ALPHA_LIST``). A mapping refuses the one it does not use (``"ridge"`` is Brain-Score's ``Ridge(alpha=1)``):
    ignoring it would report a fit other than the one asked for."""
    if mapping not in MAPPINGS:
        raise SpecError(f"unknown mapping {mapping!r}; expected one of {', '.join(map(repr, MAPPINGS))}")
    what = " (Brain-Score's Ridge(alpha=1))" if mapping == "ridge" else ""
    if alphas is not None and mapping != "ridgecv":
        raise SpecError(f"alphas: mapping {mapping!r}{what} does not use them; mapping 'ridgecv' searches alphas")
    if n_components is not None and mapping != "pls":
        raise SpecError(f"n_components: mapping {mapping!r}{what} does not use them; mapping 'pls' fits n_components")
    if mapping == "pls":
        return pls_fit_predict_folds(X, Y, splits, n_components=BRAINSCORE_PLS_COMPONENTS if n_components is None else n_components)
    if mapping == "ridge":
        return RidgeMapping().fit_predict_folds(X, Y, splits)
    return RidgeCVMapping(**({"alphas": alphas} if alphas is not None else {})).fit_predict_folds(X, Y, splits)
