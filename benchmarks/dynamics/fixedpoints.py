"""Fixed and slow points of a state map F (Sussillo & Barak 2013), and the linearised dynamics around them.

q(x) = 1/2 ||F(x) - x||^2 is minimised from many initial states at once (one autograd graph for the batch;
each q depends on its own row only, so the gradient of sum(q) is every point's own gradient), with Adam
as in Golub & Sussillo's FixedPointFinder, then polished by Newton steps x <- x - (J - I)^-1 (F(x) - x),
each kept only where it lowers q (Newton runs on one point per cluster of Adam's results, the
``max_newton`` lowest in q, so its Jacobians stay few; above ``DENSE_LIMIT`` state dimensions the Newton
system is solved by GMRES on Jacobian-vector products instead, and only for points whose mean speed per dimension,
q / D, is already below ``krylov_below_per_dim``: far from a fixed point GMRES runs to its iteration cap for nothing,
and on a whole ConvRNN map that cost minutes a point. The bound was on q itself, a sum over the D dimensions, so it
asked more of a point the larger the state: a 4096-dimensional time-decay map at J = 0, one Newton step from its
fixed point, left most of Adam's points at q ~ 200 (RMS residual 0.3 a unit) and polished only those Adam had
already brought below q = 1; a run where none was there reported no fixed point). Points with q below ``fixed_tol``
are fixed points; between ``fixed_tol`` and ``slow_tol``, slow points (minima of q above zero, where the flow is slow
but not zero); the rest are dropped. Duplicates within ``unique_tol`` are merged, keeping the lowest q: by default
(``unique_norm="max"``) points whose coordinates all differ by at most ``unique_tol``, the criterion and default (1e-3)
of Golub & Sussillo's FixedPointFinder (``tol_unique``), which holds whatever the state size; ``"euclidean"``, the
distance used here until 2026-12-04, asks more the more dimensions a state has (sqrt(D) times more for a difference
spread evenly over them). ``fixed_tol`` (1e-12) is FixedPointFinder's ``tol_q`` on the same q, absolute as there.
Each point counts the searches (initial states) that ended there, ``n_searches`` (a search merged into a cluster ends
where the cluster's polished point does), and the settings ``n_converged`` of the ``n_initial`` searches: the
result named only what was found, so 3 points from 3 of 256 searches (the rest stalled or diverged) read as 3 points
from all 256.

F is a discrete-time map (one step of the model), so eigenvalue lambda of J = dF/dx at a point is
stable when |lambda| < 1 (a point counts as stable when no |lambda| exceeds 1 + 1e-6: marginal modes, as along
a line attractor, are not called unstable by rounding), and its time constant is tau = -dt / ln|lambda| (dt = the step length).

Units: a result carries ``dt`` and its ``time_unit``, and its table names the unit (``slowest_tau_ms``,
``slowest_tau_steps``). By default the step is the system's own (a state map's ``dt`` and ``time_unit`` attributes: a
ConvRNN cell's step is 10 ms, its biological unrolling, as ``zoo dynamics`` reports it), else one step. Called from
Python, time constants of a ConvRNN came out in steps unless ``dt=10`` was given, while ``zoo dynamics`` said ms,
and nothing in the result told which; a ``dt`` given without its ``time_unit`` is refused now.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from neurozoo.datasets.errors import SpecError, check_integer, check_number

DENSE_LIMIT = 2048  # above this state size, eigenvalues come from ARPACK (top ``n_eigenvalues`` by modulus)


def sample_states(trajectories, n: int, noise: float = 0.0, seed: int = 0) -> torch.Tensor:
    """``n`` states drawn from visited states (T, B, D) or (N, D), plus Gaussian noise of sd ``noise``
    times the states' overall sd (to reach slow regions the trajectories pass near)."""
    states = torch.as_tensor(trajectories).reshape(-1, torch.as_tensor(trajectories).shape[-1])
    generator = torch.Generator().manual_seed(seed)
    picks = states[torch.randint(0, states.shape[0], (n,), generator=generator)].clone()
    if noise:
        picks += noise * states.std() * torch.randn(picks.shape, generator=generator, dtype=picks.dtype)
    return picks


def jacobians(system, x: torch.Tensor) -> torch.Tensor:
    """(B, D, D): dF/dx at each row of x (rows are independent, so the batch sum's Jacobian splits)."""
    x = x.detach()
    try:
        full = torch.autograd.functional.jacobian(lambda z: system(z).sum(0), x, vectorize=True)
    except RuntimeError:  # an op without a batching rule: one backward per output coordinate
        full = torch.autograd.functional.jacobian(lambda z: system(z).sum(0), x)
    return full.permute(1, 0, 2)


def speed(system, x: torch.Tensor) -> torch.Tensor:
    return 0.5 * ((system(x) - x) ** 2).sum(-1)


@dataclass
class Linearisation:
    """x_{t+1} - x* = J (x_t - x*) around a fixed point x*; around a slow point x_{t+1} - x* = F(x*) - x* + J (x_t - x*)
    (``drift``, zero at a fixed point: without it a slow point's linearisation stood still where the map drifts)."""

    point: np.ndarray
    jacobian: np.ndarray
    dt: float = 1.0
    time_unit: str = "steps"  # of dt, hence of the time constants
    drift: Optional[np.ndarray] = None  # F(x*) - x*

    @property
    def eigenvalues(self) -> np.ndarray:
        values = np.linalg.eigvals(self.jacobian)
        return values[np.argsort(-np.abs(values), kind="stable")]

    def modes(self):
        """Eigenvalues (by decreasing modulus) and right eigenvectors (columns)."""
        values, vectors = np.linalg.eig(self.jacobian)
        order = np.argsort(-np.abs(values), kind="stable")
        return values[order], vectors[:, order]

    def time_constants(self) -> np.ndarray:
        return time_constants(self.eigenvalues, self.dt)

    def slowest_mode(self):
        """(eigenvalue, right vector r, left vector l with l . r = 1) of the slowest mode, the one of largest |tau|
        (|lambda| nearest 1, as :meth:`FixedPoints.slowest_time_constants`; the largest modulus picked a saddle's
        fast growth mode): along a line attractor r is the line's direction and l the selection vector (Mante et
        al. 2013): an input pulse b moves the state along the line by l . b."""
        values, vectors = self.modes()
        slowest = int(np.argmax(np.abs(time_constants(values, self.dt))))
        left = np.linalg.inv(vectors)[slowest]
        return values[slowest], vectors[:, slowest], left

    def simulate(self, start: np.ndarray, steps: int) -> np.ndarray:
        """(steps + 1, D): the linearised trajectory from ``start``."""
        out = [np.asarray(start, dtype=float)]
        drift = 0.0 if self.drift is None else self.drift
        for _ in range(steps):
            out.append(self.point + drift + self.jacobian @ (out[-1] - self.point))
        return np.stack(out)


def input_jacobians(system, points: np.ndarray, dtype: torch.dtype = torch.float64) -> np.ndarray:
    """(N, D, I): dF/du at each point, for a map that holds its constant input in ``system.u`` (TorchRNNMap)."""
    system = system.to(dtype)

    def with_input(u):
        clone = copy.copy(system)
        clone.u = u
        return clone

    out = [torch.autograd.functional.jacobian(lambda u: with_input(u)(torch.as_tensor(p, dtype=dtype)[None])[0],
                                              system.u.detach()) for p in np.asarray(points)]
    return torch.stack(out).numpy() if out else np.zeros((0, system.dim, system.u.numel()))


def time_constants(eigenvalues: np.ndarray, dt: float = 1.0) -> np.ndarray:
    """tau = -dt / ln|lambda|: decay (|lambda| < 1) or growth (negative tau) time; inf at |lambda| = 1 (-dt / 0.0
    gave -inf there, so a perfect integrator's mode was the fastest, and the table's slowest_tau missed it)."""
    modulus = np.abs(np.asarray(eigenvalues))
    log = np.log(np.where(modulus == 0, np.finfo(float).tiny, modulus))
    with np.errstate(divide="ignore"):
        return np.where(log == 0, np.inf, -dt / log)


@dataclass
class FixedPoints:
    points: np.ndarray  # (N, D)
    q: np.ndarray  # (N,)
    kind: np.ndarray  # (N,) "fixed" or "slow"
    eigenvalues: np.ndarray  # (N, K) complex, by decreasing modulus (K = D when dense)
    jacobians: Optional[np.ndarray] = None  # (N, D, D) when dense
    dt: float = 1.0
    time_unit: str = "steps"  # of dt, hence of the time constants (the table's slowest_tau_<unit>)
    settings: Dict = field(default_factory=dict)
    drifts: Optional[np.ndarray] = None  # (N, D) F(x) - x at each point
    n_searches: Optional[np.ndarray] = None  # (N,) initial states whose search ended at each point

    def __len__(self) -> int:
        return len(self.q)

    @property
    def spectral_radius(self) -> np.ndarray:
        return np.abs(self.eigenvalues).max(axis=1) if len(self) else np.zeros(0)

    @property
    def n_unstable(self) -> np.ndarray:
        """Number of unstable modes (|lambda| > 1 + 1e-6) per point: 0 stable, 1 saddle with one unstable mode..."""
        return (np.abs(self.eigenvalues) > 1 + 1e-6).sum(axis=1) if len(self) else np.zeros(0, int)

    @property
    def n_unstable_is_lower_bound(self) -> np.ndarray:
        """True where ``n_unstable`` is only a lower bound: the spectrum is partial (above the dense limit only the
        top ``n_eigenvalues`` by modulus are computed) and every computed eigenvalue is unstable, so the uncomputed
        ones may be too. Elsewhere the count is exact, since the uncomputed eigenvalues are no larger in modulus than
        a stable one. A 2100-dimensional map with 30 unstable modes read n_unstable 20 (and 1, a "saddle with one
        unstable mode", with ``n_eigenvalues=1``)."""
        if not len(self) or self.eigenvalues.shape[1] >= self.points.shape[1]:
            return np.zeros(len(self), bool)
        return self.n_unstable == self.eigenvalues.shape[1]

    @property
    def stable(self) -> np.ndarray:
        return self.n_unstable == 0

    def subset(self, mask) -> "FixedPoints":
        mask = np.asarray(mask)
        return FixedPoints(self.points[mask], self.q[mask], self.kind[mask], self.eigenvalues[mask],
                           None if self.jacobians is None else self.jacobians[mask], self.dt, self.time_unit,
                           self.settings, None if self.drifts is None else self.drifts[mask],
                           None if self.n_searches is None else self.n_searches[mask])

    def linearise(self, index: int) -> Linearisation:
        if self.jacobians is None:
            raise ValueError("no dense Jacobians kept (state larger than the dense limit)")
        return Linearisation(self.points[index], self.jacobians[index], self.dt, self.time_unit,
                             None if self.drifts is None else self.drifts[index])

    def time_constants(self) -> np.ndarray:
        """(N, K): tau of every eigenvalue, in ``time_unit``."""
        return time_constants(self.eigenvalues, self.dt)

    def slowest_time_constants(self) -> np.ndarray:
        """(N,): per point the tau of largest |tau| (|lambda| nearest 1), signed: negative for a growth mode. The
        largest signed tau left a saddle's growth out (|lambda| 1.1 and 0.5 gave the decay's 1.44 steps, not the
        growth's -10.5); as in the fixed-point literature the slowest mode is the one nearest |lambda| = 1 whichever
        side, and a growth and a decay equally slow give the growth (the eigenvalues are by decreasing modulus)."""
        tau = self.time_constants()
        if not len(self):
            return np.zeros(0)
        return tau[np.arange(len(tau)), np.argmax(np.abs(tau), axis=1)]

    def table(self) -> pd.DataFrame:
        """One row per point; the slowest time constant's column names its unit (``slowest_tau_ms``) and is
        :meth:`slowest_time_constants`: negative where the slowest mode grows."""
        return pd.DataFrame({
            "kind": self.kind, "q": self.q, "stable": self.stable, "n_unstable": self.n_unstable,
            "n_unstable_is_lower_bound": self.n_unstable_is_lower_bound,
            "spectral_radius": self.spectral_radius,
            f"slowest_tau_{self.time_unit}": self.slowest_time_constants(),
            "norm": np.linalg.norm(self.points, axis=1) if len(self) else [],
            **({} if self.n_searches is None else {"n_searches": self.n_searches}),
        })

    def summary(self) -> Dict:
        """Counts of points; ``n_saddles_1`` counts only fixed points known to have exactly one unstable mode, and
        ``n_unstable_lower_bound`` the unstable fixed points whose number of unstable modes the computed spectrum
        cannot decide (:attr:`n_unstable_is_lower_bound`)."""
        fixed, bound = self.kind == "fixed", self.n_unstable_is_lower_bound
        return {"n_fixed": int(fixed.sum()), "n_slow": int((self.kind == "slow").sum()),
                "n_stable_fixed": int((fixed & self.stable).sum()),
                "n_saddles_1": int((fixed & (self.n_unstable == 1) & ~bound).sum()),
                "n_unstable_fixed": int((fixed & ~self.stable).sum()),
                "n_unstable_lower_bound": int((fixed & bound).sum())}


def _minimise(system, x: torch.Tensor, steps: int, lr: float, fixed_tol: float, progress: bool = False) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    optimiser = torch.optim.Adam([x], lr=lr)
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimiser, gamma=(1e-2) ** (1 / max(steps, 1)))
    bar = tqdm(total=steps, desc="fixed points: minimising q", disable=not progress, leave=False)
    for _ in range(steps):
        q = speed(system, x)
        bar.update()
        if float(q.detach().max()) < fixed_tol:
            break
        optimiser.zero_grad()
        q.sum().backward()
        optimiser.step()
        schedule.step()
    bar.close()
    return x.detach()


def _newton_steps(matrices: np.ndarray, residuals: np.ndarray) -> np.ndarray:
    """Least-squares solutions of matrices[i] d = residuals[i] by LAPACK gelsy (QR with column pivoting), through
    SciPy: torch.linalg.lstsq's CPU gelsy passes LAPACK an uninitialised pivot array (nonzero entries fix columns
    in front), so its answer followed leftover memory and a ConvRNN dynamics record moved by ~1e-15 run to run
    (pytorch/pytorch#187411); SciPy zeroes it. rcond as torch's default, eps * max(m, n)."""
    from scipy.linalg import lstsq

    cond = np.finfo(matrices.dtype).eps * max(matrices.shape[1:])
    return np.stack([lstsq(m, r, cond=cond, lapack_driver="gelsy")[0] for m, r in zip(matrices, residuals)])


#: points whose Jacobians are formed at once: all of them at once held (points, D, D) floats, 17 GB for 512 points at
#: the dense limit, and the polish ran for minutes without a sign of progress (a 1280-dimensional ConvRNN map: ~10 s
#: a point and Newton step on 2 cores)
JACOBIAN_CHUNK = 16


def _chunked_jacobians(system, x: torch.Tensor, bar) -> Iterator[torch.Tensor]:
    """dF/dx at the rows of x, ``JACOBIAN_CHUNK`` rows at a time, counted on ``bar``."""
    for start in range(0, len(x), JACOBIAN_CHUNK):
        chunk = jacobians(system, x[start: start + JACOBIAN_CHUNK])
        bar.update(len(chunk))
        yield chunk


def _newton(system, x: torch.Tensor, steps: int, progress: bool = False) -> torch.Tensor:
    identity = torch.eye(x.shape[1], dtype=x.dtype)
    q = speed(system, x).detach()
    bar = tqdm(total=steps * len(x), desc="fixed points: Newton polish (points x steps)", disable=not progress,
               leave=False)
    for _ in range(steps):
        with torch.no_grad():
            residual = system(x) - x
        try:
            deltas, start = [], 0
            for matrices in _chunked_jacobians(system, x, bar):
                rows = residual[start: start + len(matrices)]
                deltas.append(_newton_steps((matrices - identity).numpy(), rows.numpy()))
                start += len(matrices)
            delta = torch.as_tensor(np.concatenate(deltas))
        except (RuntimeError, ValueError):  # LinAlgError is a ValueError, as is a non-finite Jacobian
            break
        candidate = x - delta
        with torch.no_grad():
            q_new = speed(system, candidate)
        better = torch.isfinite(q_new) & (q_new < q)
        x = torch.where(better[:, None], candidate, x)
        q = torch.where(better, q_new, q)
    bar.close()
    return x


def _newton_krylov(system, x: torch.Tensor, steps: int, progress: bool = False) -> torch.Tensor:
    """Newton without the Jacobian matrix, for large states: (J - I) d = F(x) - x solved by GMRES on
    Jacobian-vector products, point by point; a step is kept only where it lowers q."""
    from scipy.sparse.linalg import LinearOperator, gmres

    dim = x.shape[1]
    rows = []
    for point in tqdm(x, desc="fixed points: Newton-GMRES", disable=not progress, leave=False):
        point = point[None]
        q = float(speed(system, point).detach())
        for _ in range(steps):
            def product(v, at=point):
                v = torch.as_tensor(np.asarray(v).reshape(1, dim), dtype=at.dtype)
                return (torch.autograd.functional.jvp(system, at, v)[1] - v).reshape(dim).numpy()

            with torch.no_grad():
                residual = (system(point) - point).reshape(dim).numpy()
            delta, _ = gmres(LinearOperator((dim, dim), matvec=product, dtype=float), residual, rtol=1e-12,
                             restart=min(dim, 50), maxiter=20)
            candidate = point - torch.as_tensor(delta, dtype=point.dtype)[None]
            q_new = float(speed(system, candidate).detach())
            if not np.isfinite(q_new) or q_new >= q:
                break
            point, q = candidate, q_new
        rows.append(point)
    return torch.cat(rows).detach()


def _candidates(system, x: torch.Tensor, tol: float, unique_tol: float, unique_norm: str = "max"):
    """Rows with finite q below ``tol``, one per cluster (the lowest q), as numpy arrays by increasing q, and per row
    of x the index of its cluster's row in them (-1 for a row above ``tol``)."""
    with torch.no_grad():
        q = speed(system, x).numpy()
    points = x.numpy()
    keep = np.flatnonzero(np.isfinite(q) & (q < tol))
    kept, owner = _unique(points[keep], q[keep], unique_tol, unique_norm)
    owners = np.full(len(points), -1)
    owners[keep] = owner
    return points[keep[kept]], q[keep[kept]], owners


#: distances between two points for merging duplicates (``unique_norm``): "max", the largest coordinate difference
#: (FixedPointFinder's tol_unique), or "euclidean"
UNIQUE_NORMS = {"max": lambda d: float(np.abs(d).max(initial=0.0)), "euclidean": lambda d: float(np.linalg.norm(d))}


def _unique(points: np.ndarray, q: np.ndarray, tol: float, norm: str = "max"):
    """(rows kept, by increasing q: none within ``tol`` of another, by ``norm`` (:data:`UNIQUE_NORMS`); per row the
    position in them of its nearest kept row within ``tol``, itself for a kept one)."""
    distance = UNIQUE_NORMS[norm]
    kept: List[int] = []
    owner = np.full(len(points), -1)
    for index in np.argsort(q, kind="stable"):
        distances = [distance(points[index] - points[k]) for k in kept]
        if all(d > tol for d in distances):
            owner[index] = len(kept)
            kept.append(int(index))
        else:
            owner[index] = int(np.argmin(distances))
    return kept, owner


ARPACK_MAXITER = 300  # Arnoldi restarts; ARPACK's default, 10 x the dimension, ran for many minutes before it failed


def _top_eigenvalues(system, point: torch.Tensor, k: int) -> np.ndarray:
    """The ``k`` eigenvalues of dF/dx at ``point`` largest in modulus, by ARPACK on Jacobian-vector products; where
    ARPACK fails, from the Jacobian matrix. It fails where the Krylov space collapses (J = 0, a time-decay cell at its
    initial decay 0: "starting vector is zero") or where the leading moduli tie (a scaled rotation: no convergence),
    and ``zoo dynamics`` ended there with its traceback after the minimisation."""
    from scipy.sparse.linalg import ArpackError, LinearOperator, eigs

    dim = point.numel()
    k = min(k, dim - 2)

    def product(v):
        v = torch.as_tensor(np.real_if_close(v).reshape(1, dim), dtype=point.dtype)
        _, jv = torch.autograd.functional.jvp(system, point[None], v)
        return jv.reshape(dim).numpy()

    try:
        values = eigs(LinearOperator((dim, dim), matvec=product, dtype=float), k=k, which="LM",
                      maxiter=ARPACK_MAXITER, return_eigenvectors=False)
    except ArpackError:  # ArpackNoConvergence too
        values = np.linalg.eigvals(jacobians(system, point[None])[0].numpy())
    return values[np.argsort(-np.abs(values), kind="stable")][:k]


def check_finder_settings(*, steps, lr, fixed_tol, slow_tol, unique_tol, newton_steps, n_eigenvalues, max_newton,
                          krylov_below_per_dim, dtype) -> None:
    """``SpecError`` (a ``ValueError``; ``zoo dynamics`` prints it without a traceback) naming the first of
    :func:`find_fixed_points`' settings out of range. They ran as given: steps=-1 or newton_steps=-1 as 0 (with the
    first, no search at all), lr=inf found nothing, fixed_tol=-1 or NaN called nothing fixed, slow_tol below fixed_tol
    dropped points it called fixed, unique_tol=NaN merged every point into one, max_newton=-1 dropped the last
    cluster; a float count or an integer dtype failed in torch."""
    for name, value in (("steps", steps), ("newton_steps", newton_steps)):
        check_integer(value, name, least=0, error=SpecError)
    for name, value in (("n_eigenvalues", n_eigenvalues), ("max_newton", max_newton)):
        check_integer(value, name, least=1, error=SpecError)
    for name, value in (("lr", lr), ("fixed_tol", fixed_tol), ("krylov_below_per_dim", krylov_below_per_dim)):
        check_number(value, name, above=0, error=SpecError)
    check_number(unique_tol, "unique_tol", least=0, error=SpecError)
    if check_number(slow_tol, "slow_tol", least=0, error=SpecError) < fixed_tol:
        raise SpecError(f"slow_tol: expected a number >= fixed_tol ({fixed_tol:g}; a slow point's q lies between the "
                         f"two), got {slow_tol!r}")
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise SpecError(f"dtype: expected a torch floating-point dtype (torch.float64, torch.float32), got {dtype!r}")


def find_fixed_points(system, initial_states: torch.Tensor, *, steps: int = 3000, lr: float = 1e-2,
                      fixed_tol: float = 1e-12, slow_tol: float = 1e-6, unique_tol: float = 1e-3,
                      unique_norm: str = "max",
                      newton_steps: int = 6, dt: Optional[float] = None, time_unit: Optional[str] = None,
                      dtype: torch.dtype = torch.float64,
                      n_eigenvalues: int = 20, max_newton: int = 512, krylov_below_per_dim: float = 1e-2,
                      progress: bool = False) -> FixedPoints:
    """Fixed and slow points of ``system`` from ``initial_states`` (N, D); see the module docstring. ``dt`` (the
    length of one step of the map, in ``time_unit``): give both or neither; neither takes the system's own step
    (:func:`step_of`)."""
    dt, time_unit = step_of(system, dt, time_unit)
    check_finder_settings(steps=steps, lr=lr, fixed_tol=fixed_tol, slow_tol=slow_tol, unique_tol=unique_tol,
                          newton_steps=newton_steps, n_eigenvalues=n_eigenvalues, max_newton=max_newton,
                          krylov_below_per_dim=krylov_below_per_dim, dtype=dtype)
    if unique_norm not in UNIQUE_NORMS:
        raise ValueError(f"unique_norm={unique_norm!r}: expected one of {', '.join(UNIQUE_NORMS)}")
    initial_states = torch.as_tensor(initial_states)
    if initial_states.dim() != 2 or initial_states.shape[1] != system.dim:
        raise ValueError(f"initial_states: expected shape (N, {system.dim}), got {tuple(initial_states.shape)}")
    if not len(initial_states):  # a RuntimeError from a reshape inside the map
        raise ValueError(f"initial_states: no states, shape {tuple(initial_states.shape)}; expected at least one")
    if not torch.isfinite(initial_states).all():  # the searches found no point (0 points, as if there were none)
        bad = int((~torch.isfinite(initial_states).all(1)).sum())
        raise ValueError(f"initial_states: {bad} of {len(initial_states)} states hold NaN/inf values; expected finite "
                         "states (e.g. sample_states of the model's trajectories)")
    system = system.to(dtype)
    x = _minimise(system, initial_states.to(dtype), steps, lr, fixed_tol, progress)
    dense = system.dim <= DENSE_LIMIT
    points, q, owners = _candidates(system, x, np.inf if dense else krylov_below_per_dim * system.dim, unique_tol,
                                    unique_norm)
    if newton_steps and len(points):
        points, q = points[:max_newton], q[:max_newton]
        owners = np.where(owners < max_newton, owners, -1)  # clusters past max_newton are not polished: dropped
        polished = (_newton(system, torch.as_tensor(points), newton_steps, progress) if dense
                    else _newton_krylov(system, torch.as_tensor(points), newton_steps, progress))
        points, q, final = _candidates(system, polished, slow_tol, unique_tol, unique_norm)
    else:
        final = np.where(q < slow_tol, np.cumsum(q < slow_tol) - 1, -1)
        points, q = points[q < slow_tol], q[q < slow_tol]
    ends = np.where(owners >= 0, np.append(final, -1)[owners], -1)  # per search, the index of its point (-1: none)
    n_searches = np.bincount(ends[ends >= 0], minlength=len(points))
    kind = np.where(q < fixed_tol, "fixed", "slow")
    if dense:
        with tqdm(total=len(points), desc="fixed points: Jacobians", disable=not progress, leave=False) as bar:
            J = (torch.cat(list(_chunked_jacobians(system, torch.as_tensor(points), bar))).numpy() if len(points)
                 else np.zeros((0, system.dim, system.dim)))
        values = [np.linalg.eigvals(j) for j in tqdm(J, desc="fixed points: eigenvalues", disable=not progress,
                                                      leave=False)]
        eigenvalues = np.array([v[np.argsort(-np.abs(v), kind="stable")] for v in values]).reshape(len(J), system.dim)
    else:
        J = None
        eigenvalues = (np.array([_top_eigenvalues(system, torch.as_tensor(p), n_eigenvalues)
                                 for p in tqdm(points, desc="fixed points: eigenvalues (ARPACK)", disable=not progress,
                                               leave=False)])
                       if len(points) else np.zeros((0, min(n_eigenvalues, system.dim - 2)), dtype=complex))
    settings = {"n_initial": int(initial_states.shape[0]), "steps": steps, "lr": lr, "fixed_tol": fixed_tol,
                "slow_tol": slow_tol, "unique_tol": unique_tol, "unique_norm": unique_norm, "newton_steps": newton_steps, "dim": system.dim,
                "dense": dense, **({} if dense else {"krylov_below_per_dim": krylov_below_per_dim}),
                "n_converged": int(n_searches.sum()),
                "n_converged_fixed": int(n_searches[q < fixed_tol].sum())}
    with torch.no_grad():
        drifts = (system(torch.as_tensor(points)) - torch.as_tensor(points)).numpy() if len(points) else points
    return FixedPoints(points, q, kind, eigenvalues, J, dt=dt, time_unit=time_unit, settings=settings, drifts=drifts,
                       n_searches=n_searches)


def step_of(system, dt: Optional[float] = None, time_unit: Optional[str] = None):
    """(dt, time_unit) of one step of ``system``: the ones given (both, or neither), else the system's own (its
    ``dt`` and ``time_unit`` attributes: a ConvRNN cell's 10 ms), else one step."""
    if (dt is None) != (time_unit is None):
        given = f"dt={dt!r}" if time_unit is None else f"time_unit={time_unit!r}"
        own = getattr(system, "time_unit", None)
        default = f"{system.dt:g} {own}" if own else "1 step"
        raise ValueError(f"{given} given alone: give dt and time_unit together (e.g. dt=10, time_unit='ms'), or "
                         f"neither for the system's own step ({default})")
    if dt is not None:
        if not dt > 0:
            raise ValueError(f"dt={dt!r}: expected a positive step length")
        return float(dt), str(time_unit)
    if getattr(system, "time_unit", None):
        return float(system.dt), system.time_unit
    return 1.0, "steps"
