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
* ``w_k`` = top eigenvector of ``M_k^T M_k`` (targets x targets) mapped back through ``M_k`` (or of
  ``M_k M_k^T`` when there are more targets than features); the sign is irrelevant to predictions;
* rotation ``r_k = G_k w_k = w_k - R_{<k} P_{<k}^T w_k``, score norm ``t_k.t_k = r_k^T C r_k``,
  x-loading ``p_k = C r_k / t_k.t_k`` (scores are mutually orthogonal), y-loading
  ``c_k = S^T r_k / t_k.t_k``; the regression coefficients are ``sum_k r_k c_k^T`` -- the same
  ``x_rotations_ @ y_loadings_.T`` sklearn builds.

Each fold's statistics are the full-data statistics minus those of its (small) test part, so the 10 folds
cost one pass over the features plus 10 passes over 10 % of them, and are solved together as a batch.
For span-time fits the stacked (presentation x time bin) samples are never copied per fold. Memory is
bounded by the features and ``folds x features^2``; nothing scales with bins x folds.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit

Split = Tuple[np.ndarray, np.ndarray]

#: Brain-Score's cross-validation: 10 stratified 90/10 splits, seed 1.
N_SPLITS, TRAIN_SIZE, SPLIT_SEED = 10, 0.9, 1


def brainscore_splits(object_names: Sequence, n_splits: int = N_SPLITS, train_size: float = TRAIN_SIZE,
                      random_state: int = SPLIT_SEED) -> List[Split]:
    """(train, test) index arrays over presentations, stratified on ``object_names`` (None: plain shuffle split)."""
    n = len(object_names)
    if object_names is None or len(set(object_names)) < 2:
        splitter = ShuffleSplit(n_splits=n_splits, train_size=train_size, random_state=random_state)
        return [(np.sort(a), np.sort(b)) for a, b in splitter.split(np.zeros(n))]
    splitter = StratifiedShuffleSplit(n_splits=n_splits, train_size=train_size, random_state=random_state)
    return [(np.sort(a), np.sort(b)) for a, b in splitter.split(np.zeros(n), np.asarray(object_names))]


# --------------------------------------------------------------------------------------------- PLS core
def pls_coefficients(C: np.ndarray, S: np.ndarray, n_components: int) -> np.ndarray:
    """PLS-regression (NIPALS, regression deflation) coefficients from centred moments.

    C: (..., F, F) = X^T X and S: (..., F, Q) = X^T Y of centred training data, batched over leading axes.
    Returns B (..., F, Q) such that predictions are (X - x_mean) @ B + y_mean.
    """
    from threadpoolctl import threadpool_limits

    # the loop is many small eigendecompositions and matrix-vector products: BLAS threads only add
    # synchronisation (and stall badly on a busy machine), so it runs single-threaded
    with threadpool_limits(limits=1, user_api="blas"):
        return _pls_coefficients(C, S, n_components)


def _pls_coefficients(C: np.ndarray, S: np.ndarray, n_components: int) -> np.ndarray:
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
    B = np.zeros((K, F, Q))
    scale = np.sqrt(np.einsum("kfq,kfq->k", S, S)) + 1e-300
    active = np.ones(K, dtype=bool)
    for k in range(n_components):
        # stop a fold once its cross-covariance is exhausted (sklearn: "y residual is constant")
        norm = np.sqrt(np.einsum("kfq,kfq->k", M, M))
        active &= norm > 1e-12 * scale
        if not active.any():
            break
        if Q <= F:
            gram = M.transpose(0, 2, 1) @ M  # (K, Q, Q)
            _, vectors = np.linalg.eigh(gram)
            w = np.einsum("kfq,kq->kf", M, vectors[..., -1])
        else:
            gram = M @ M.transpose(0, 2, 1)  # (K, F, F)
            _, vectors = np.linalg.eigh(gram)
            w = vectors[..., -1]
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
        c = np.einsum("kfq,kf->kq", S, r) * inv[:, None]
        r = r * ok[:, None]
        R[..., k] = r
        P[..., k] = p
        B += r[:, :, None] * c[:, None, :]
        M -= p[:, :, None] * np.einsum("kf,kfq->kq", w, M)[:, None, :]
    return B.reshape(batch + (F, Q))


@dataclass
class FastPLS:
    """Drop-in for ``sklearn.cross_decomposition.PLSRegression(n_components, scale=False)`` (fit/predict).

    ``n_components`` is clipped to the number of features (sklearn raises instead).
    """

    n_components: int = 25

    def fit(self, X, Y):
        X = np.asarray(X, dtype=np.float64)
        Y = np.asarray(Y, dtype=np.float64)
        self._y_1d = Y.ndim == 1
        Y = Y.reshape(len(Y), -1)
        self.x_mean_, self.y_mean_ = X.mean(0), Y.mean(0)
        Xc, Yc = X - self.x_mean_, Y - self.y_mean_
        self.coef_ = pls_coefficients(Xc.T @ Xc, Xc.T @ Yc, self.n_components)
        return self

    def predict(self, X):
        prediction = (np.asarray(X, dtype=np.float64) - self.x_mean_) @ self.coef_ + self.y_mean_
        return prediction[:, 0] if self._y_1d else prediction


# ----------------------------------------------------------------------------- folds over stacked samples
def _rows(presentations: np.ndarray, n_presentations: int, n_bins: int) -> np.ndarray:
    """Row indices in a bin-major stack (row = bin * n_presentations + presentation)."""
    return (np.arange(n_bins)[:, None] * n_presentations + presentations[None, :]).ravel()


def pls_fit_predict_folds(X: np.ndarray, Y: np.ndarray, splits: Sequence[Split], n_components: int = 25,
                          fold_batch: int = 10) -> List[np.ndarray]:
    """Fit PLS on each split's training presentations, predict its test presentations.

    X: (P, F, T) features and Y: (P, Q, T) responses; the T time bins are stacked into the sample axis
    (span-time: one mapping shared by all bins). Pass T = 1 for a plain (single-bin) fit.
    Returns per split the predictions (n_test, Q, T) for that split's test presentations.
    """
    P, F, T = X.shape
    Q = Y.shape[1]
    # one bin-major copy of each (bounded by the data), globally centred to avoid cancellation in the moments
    Xs = np.ascontiguousarray(np.moveaxis(np.asarray(X, dtype=np.float64), 2, 0).reshape(T * P, F))
    Ys = np.ascontiguousarray(np.moveaxis(np.asarray(Y, dtype=np.float64), 2, 0).reshape(T * P, Q))
    Xs -= Xs.mean(0)
    y_offset = Ys.mean(0)
    Ys -= y_offset
    XtX, XtY = Xs.T @ Xs, Xs.T @ Ys
    x_sum, y_sum = Xs.sum(0), Ys.sum(0)
    predictions: List[np.ndarray] = []
    for start in range(0, len(splits), fold_batch):
        chunk = splits[start:start + fold_batch]
        C = np.empty((len(chunk), F, F))
        S = np.empty((len(chunk), F, Q))
        means = []
        for i, (_, test) in enumerate(chunk):
            rows = _rows(np.asarray(test), P, T)
            Xt, Yt = Xs[rows], Ys[rows]
            n_train = T * P - len(rows)
            mx = (x_sum - Xt.sum(0)) / n_train
            my = (y_sum - Yt.sum(0)) / n_train
            C[i] = XtX - Xt.T @ Xt - n_train * np.outer(mx, mx)
            S[i] = XtY - Xt.T @ Yt - n_train * np.outer(mx, my)
            means.append((mx, my, Xt))
        B = pls_coefficients(C, S, n_components)
        for i, (mx, my, Xt) in enumerate(means):
            prediction = (Xt - mx) @ B[i] + my  # (T * n_test, Q), bin-major
            n_test = len(chunk[i][1])
            predictions.append(prediction.reshape(T, n_test, Q).transpose(1, 2, 0))
    return [p + y_offset[None, :, None] for p in predictions]  # undo the global centring of Y


# -------------------------------------------------------------------------------------------------- ridge
DEFAULT_ALPHAS = tuple(np.logspace(-3, 7, 21))


@dataclass
class RidgeMapping:
    """Ridge regression with the penalty chosen by sklearn's efficient leave-one-out ``RidgeCV`` on the training set."""

    alphas: Tuple[float, ...] = DEFAULT_ALPHAS

    def fit_predict_folds(self, X: np.ndarray, Y: np.ndarray, splits: Sequence[Split]) -> List[np.ndarray]:
        """Same contract as :func:`pls_fit_predict_folds`; each fold's training rows are gathered once (one fold at a time)."""
        from sklearn.linear_model import RidgeCV

        P, F, T = X.shape
        Q = Y.shape[1]
        Xs = np.moveaxis(np.asarray(X, dtype=np.float64), 2, 0).reshape(T * P, F)
        Ys = np.moveaxis(np.asarray(Y, dtype=np.float64), 2, 0).reshape(T * P, Q)
        out = []
        for train, test in splits:
            model = RidgeCV(alphas=self.alphas).fit(Xs[_rows(np.asarray(train), P, T)], Ys[_rows(np.asarray(train), P, T)])
            prediction = model.predict(Xs[_rows(np.asarray(test), P, T)])
            out.append(prediction.reshape(T, len(test), Q).transpose(1, 2, 0))
        return out


def fit_predict_folds(mapping: str, X: np.ndarray, Y: np.ndarray, splits: Sequence[Split],
                      n_components: int = 25, alphas: Optional[Tuple[float, ...]] = None) -> List[np.ndarray]:
    if mapping == "pls":
        return pls_fit_predict_folds(X, Y, splits, n_components=n_components)
    if mapping == "ridge":
        return RidgeMapping(**({"alphas": alphas} if alphas is not None else {})).fit_predict_folds(X, Y, splits)
    raise ValueError(f"unknown mapping {mapping!r}; expected 'pls' or 'ridge'")
