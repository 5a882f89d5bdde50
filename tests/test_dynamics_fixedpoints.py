"""Fixed-point finder on systems with known answers, and the state-map adapters against the models' own steps."""
import numpy as np
import pytest
import torch

from neurozoo.benchmarks.dynamics.adapters import FunctionMap, TorchRNNMap, linear_map
from neurozoo.benchmarks.dynamics.cases import LINEAR_EIGENVALUES, bistable_case, linear_case, linear_system
from neurozoo.benchmarks.dynamics.fixedpoints import find_fixed_points, jacobians, sample_states


def _sorted(values):
    values = np.asarray(values)
    return values[np.lexsort((np.round(values.imag, 8), np.round(values.real, 8)))]


def test_linear_rnn_fixed_point_and_eigenvalues():
    case = linear_case()
    system = case.maps["none"]
    found = find_fixed_points(system, sample_states(case.states["none"], 64, noise=0.5), steps=300)
    assert len(found) == 1 and found.kind[0] == "fixed"
    np.testing.assert_allclose(found.points[0], case.expected["points"][0], atol=1e-9)
    np.testing.assert_allclose(_sorted(found.eigenvalues[0]), _sorted(LINEAR_EIGENVALUES), atol=1e-9)
    assert found.stable[0]
    np.testing.assert_allclose(found.time_constants()[0, 0], -1 / np.log(0.95), rtol=1e-9)  # 19.5 steps
    # the linearisation of a linear system is the system itself
    linear = found.linearise(0)
    start = np.random.default_rng(3).normal(size=6)
    exact = [torch.as_tensor(start)[None]]
    for _ in range(5):
        exact.append(system(exact[-1]))
    np.testing.assert_allclose(linear.simulate(start, 5), torch.cat(exact).numpy(), atol=1e-9)


def test_an_unstable_linear_rnn_is_reported_unstable():
    matrix, bias = linear_system(eigenvalues=(1.2, 0.5, 0.3))
    found = find_fixed_points(linear_map(torch.tensor(matrix), torch.tensor(bias)), torch.randn(16, 3), steps=50)
    assert len(found) == 1 and found.n_unstable.tolist() == [1]
    assert found.time_constants()[0, 0] < 0  # growth


def test_a_marginal_mode_of_a_line_attractor_has_an_infinite_time_constant():
    """x -> diag(1, 0.5) x + (0, 1): every (s, 2) is a fixed point, with an exact eigenvalue 1 along the line. Its
    time constant was -inf (-1 / 0.0), so the table's slowest_tau was the decaying mode's 1/ln 2 = 1.44 steps."""
    system = linear_map(torch.tensor([[1.0, 0.0], [0.0, 0.5]]), torch.tensor([0.0, 1.0]))
    starts = torch.tensor([[-1.0, 0.0], [0.5, 3.0], [2.0, 1.0]], dtype=torch.float64)
    found = find_fixed_points(system, starts, steps=20)
    assert len(found) == 3 and found.stable.all()
    np.testing.assert_allclose(found.points[:, 1], 2.0, atol=1e-12)
    np.testing.assert_allclose(found.time_constants(), [[np.inf, 1 / np.log(2)]] * 3, rtol=1e-12)
    assert found.table()["slowest_tau_steps"].tolist() == [np.inf] * 3


def test_the_slowest_time_constant_of_a_saddle_is_its_growth_mode():
    """x -> diag(1.1, 0.5) x + (0.1, 1): a saddle at (-1, 2). The table took the largest signed tau, the decay's
    1/ln 2 = 1.44 steps, and left out the growth mode, |tau| = 1/ln 1.1 = 10.5 steps: the slowest mode is the one of
    largest |tau|, reported negative (a growth)."""
    matrix, bias = torch.tensor([[1.1, 0.0], [0.0, 0.5]], dtype=torch.float64), torch.tensor([0.1, 1.0], dtype=torch.float64)
    system = linear_map(matrix, bias)
    found = find_fixed_points(system, torch.tensor([[-0.5, 0.0]], dtype=torch.float64), steps=20)
    np.testing.assert_allclose(found.points, [[-1.0, 2.0]], atol=1e-12)
    assert found.n_unstable.tolist() == [1]
    np.testing.assert_allclose(found.table()["slowest_tau_steps"], [-1 / np.log(1.1)], rtol=1e-12)  # -10.49
    np.testing.assert_allclose(found.slowest_time_constants(), [-10.4921], rtol=1e-5)


def test_the_slowest_mode_of_a_saddle_is_the_one_nearest_the_unit_circle_not_the_largest():
    """x -> diag(2, 0.99, 0.5) x: the growth mode (|tau| = 1/ln 2 = 1.44 steps) is fast, the 0.99 decay (99.5 steps)
    slow. slowest_mode took the largest modulus, so at a saddle it gave the fast growth and its selection vector."""
    system = linear_map(torch.diag(torch.tensor([2.0, 0.99, 0.5], dtype=torch.float64)),
                        torch.zeros(3, dtype=torch.float64))
    found = find_fixed_points(system, torch.tensor([[0.0, 0.1, 0.1]], dtype=torch.float64), steps=20)
    value, right, left = found.linearise(0).slowest_mode()
    assert value == pytest.approx(0.99)
    np.testing.assert_allclose(np.abs(right), [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(left @ right, 1, atol=1e-12)
    np.testing.assert_allclose(found.slowest_time_constants(), [-1 / np.log(0.99)], rtol=1e-12)  # the same mode


def test_a_slow_points_linearisation_drifts_as_the_map_does():
    """x -> diag(1, 0.5) x + (1e-3, 1) has no fixed point; its slow points are the line y = 2 (q = 5e-7), along which
    the map drifts by 1e-3 a step. The linearisation there stood still (x* + J (x - x*)); an affine map is its own
    linearisation, so it must give the map's trajectory: x = 1e-3 t, y = 2 + 0.5^t from (0, 3)."""
    system = linear_map(torch.tensor([[1.0, 0.0], [0.0, 0.5]]), torch.tensor([1e-3, 1.0]))
    found = find_fixed_points(system, torch.tensor([[0.0, 3.0]], dtype=torch.float64), steps=20)
    assert found.kind.tolist() == ["slow"] and found.q[0] == pytest.approx(5e-7, rel=1e-9)
    np.testing.assert_allclose(found.drifts[0], [1e-3, 0.0], atol=1e-12)
    t = np.arange(11)
    np.testing.assert_allclose(found.linearise(0).simulate([0.0, 3.0], 10), np.stack([1e-3 * t, 2 + 0.5 ** t], 1),
                               atol=1e-12)


def test_the_dense_polish_forms_few_jacobians_at_once_and_shows_its_progress(monkeypatch, capsys):
    """The Newton polish formed every point's Jacobian at once ((points, D, D): 17 GB for 512 points at 2048
    dimensions) and, like the final Jacobians and eigenvalues, ran without progress (`zoo dynamics rgc_intermediate
    --width 0.25 --layer conv7 --points 64 --steps 20`: over 10 minutes silent after a 3 s minimisation)."""
    from neurozoo.benchmarks.dynamics import fixedpoints

    sizes = []
    monkeypatch.setattr(fixedpoints, "JACOBIAN_CHUNK", 2)
    monkeypatch.setattr(fixedpoints, "jacobians", lambda system, x: sizes.append(len(x)) or jacobians(system, x))
    case = bistable_case()
    starts = torch.tensor([[-1.2, 0.3], [-0.1, 0.2], [0.2, -0.1], [0.9, 0.4], [1.3, -0.2]], dtype=torch.float64)
    found = find_fixed_points(case.maps["none"], starts, steps=3, newton_steps=4, progress=True)
    np.testing.assert_allclose(found.points[np.argsort(found.points[:, 0])], case.expected["points"], atol=1e-12)
    assert max(sizes) == 2
    err = capsys.readouterr().err
    assert "fixed points: Newton polish (points x steps)" in err and "fixed points: eigenvalues" in err


def test_bistable_system_three_fixed_points_with_known_stability():
    case = bistable_case()
    found = find_fixed_points(case.maps["none"], sample_states(case.states["none"], 100, noise=0.3), steps=400)
    order = np.argsort(found.points[:, 0])
    np.testing.assert_allclose(found.points[order], case.expected["points"], atol=1e-9)
    assert found.stable[order].tolist() == [True, False, True]
    assert found.n_unstable[order].tolist() == [0, 1, 0]
    np.testing.assert_allclose(np.sort(found.eigenvalues[order].real, axis=1),
                               np.sort(case.expected["eigenvalues"], axis=1), atol=1e-9)


@pytest.mark.parametrize("eps, kinds", [(1e-2, ["slow"]), (-1e-2, ["fixed", "fixed"])])
def test_slow_point_of_a_saddle_node_ghost_is_not_a_fixed_point(eps, kinds):
    """x -> x + 0.1 (x^2 + eps): for eps > 0 there is no fixed point, only a slow point at 0 with
    q = (0.1 eps)^2 / 2 = 5e-7; for eps < 0 two fixed points at +-sqrt(-eps)."""
    system = FunctionMap(lambda x: x + 0.1 * (x ** 2 + eps), 1)
    found = find_fixed_points(system, torch.linspace(-0.5, 0.5, 21)[:, None], steps=2000, lr=1e-2, unique_tol=1e-2)
    assert sorted(found.kind.tolist()) == kinds
    if eps > 0:
        np.testing.assert_allclose(found.points[0], [0.0], atol=1e-3)
        np.testing.assert_allclose(found.q[0], 0.5 * (0.1 * eps) ** 2, rtol=1e-3)
    else:
        np.testing.assert_allclose(np.sort(found.points[:, 0]), [-0.1, 0.1], atol=1e-9)
        assert found.stable[np.argsort(found.points[:, 0])].tolist() == [True, False]


def test_jacobian_of_a_vanilla_rnn_is_the_analytic_one():
    torch.manual_seed(0)
    cell = torch.nn.RNNCell(3, 5).double()
    u = torch.randn(3, dtype=torch.float64)
    system = TorchRNNMap(cell, u)
    x = torch.randn(4, 5, dtype=torch.float64)
    h = system(x)
    expected = (1 - h ** 2)[:, :, None] * cell.weight_hh[None]
    torch.testing.assert_close(jacobians(system, x), expected)


@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
def test_torch_module_map_reproduces_the_module_step(kind):
    torch.manual_seed(0)
    module = getattr(torch.nn, kind)(3, 4, num_layers=2)
    inputs = torch.randn(6, 2, 3)
    _, state = module(inputs[:5])
    _, after = module(inputs[5:6], state)
    system = TorchRNNMap(module, inputs[5, 0])
    flat = TorchRNNMap.flatten(state)
    assert system.dim == flat.shape[1] == 4 * 2 * (2 if kind == "LSTM" else 1)
    torch.testing.assert_close(system(flat)[0], TorchRNNMap.flatten(after)[0])


def test_projected_lstm_map_reproduces_the_module_step():
    """An LSTM with proj_size has h of proj_size and c of hidden_size; the map split the state as two hidden_size
    halves and torch refused the call ("Expected hidden[0] size (1, 1, 2), got [1, 1, 5]")."""
    torch.manual_seed(0)
    module = torch.nn.LSTM(3, 5, num_layers=2, proj_size=2)
    inputs = torch.randn(6, 2, 3)
    _, state = module(inputs[:5])
    _, after = module(inputs[5:6], state)
    system = TorchRNNMap(module, inputs[5, 0])
    flat = TorchRNNMap.flatten(state)
    assert system.dim == flat.shape[1] == 2 * (2 + 5)
    torch.testing.assert_close(system(flat)[0], TorchRNNMap.flatten(after)[0])


@pytest.mark.parametrize("kind", ["GRUCell", "LSTMCell"])
def test_gated_cell_jacobian_equals_central_differences(kind):
    torch.manual_seed(0)
    cell = getattr(torch.nn, kind)(3, 5).double()
    system = TorchRNNMap(cell, torch.randn(3, dtype=torch.float64))
    x = torch.randn(1, system.dim, dtype=torch.float64)
    step = 1e-6 * torch.eye(system.dim, dtype=torch.float64)
    with torch.no_grad():
        differences = ((system(x + step) - system(x - step)) / 2e-6).T
    torch.testing.assert_close(jacobians(system, x)[0], differences, atol=1e-8, rtol=0)


def test_bad_initial_states_are_rejected_with_the_expected_shape():
    with pytest.raises(ValueError, match=r"expected shape \(N, 2\)"):
        find_fixed_points(bistable_case().maps["none"], torch.zeros(5, 3))


def test_large_states_get_the_leading_eigenvalues_from_jacobian_vector_products(monkeypatch):
    from neurozoo.benchmarks.dynamics import fixedpoints

    monkeypatch.setattr(fixedpoints, "DENSE_LIMIT", 8)  # the ARPACK path, on a small system
    values = (0.9, -0.85, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.15, 0.1, 0.05, 0.01)
    matrix, bias = linear_system(eigenvalues=values, seed=2)
    point = np.linalg.solve(np.eye(12) - matrix, bias)
    starts = torch.as_tensor(point + 0.01 * np.random.default_rng(0).standard_normal((4, 12)))
    found = find_fixed_points(linear_map(torch.tensor(matrix), torch.tensor(bias)), starts, steps=200, lr=1e-3,
                              n_eigenvalues=5)
    assert len(found) == 1 and found.jacobians is None and found.eigenvalues.shape == (1, 5)
    np.testing.assert_allclose(found.points[0], point, atol=1e-9)  # the GMRES-Newton polish
    np.testing.assert_allclose(found.eigenvalues[0].real, values[:5], atol=1e-8)


@pytest.mark.parametrize("matrix, modulus", [
    (np.zeros((60, 60)), 0.0),  # a time-decay cell at its initial decay 0: ARPACK error -9, "starting vector is zero"
    (0.9 * np.linalg.qr(np.random.default_rng(4).standard_normal((60, 60)))[0], 0.9),  # all moduli tie: no convergence
])
def test_large_states_whose_spectrum_arpack_cannot_resolve_get_it_from_the_jacobian(monkeypatch, matrix, modulus):
    """ARPACK's failures ended the analysis with its traceback once the points were found (`zoo dynamics
    timedecay_shallow --width 0.125 --image-size 256`); the eigenvalues now come from the Jacobian matrix there."""
    from neurozoo.benchmarks.dynamics import fixedpoints

    monkeypatch.setattr(fixedpoints, "DENSE_LIMIT", 8)
    monkeypatch.setattr(fixedpoints, "ARPACK_MAXITER", 20)
    bias = np.random.default_rng(5).standard_normal(60)
    point = np.linalg.solve(np.eye(60) - matrix, bias)
    starts = torch.as_tensor(point + 1e-3 * np.random.default_rng(6).standard_normal((2, 60)))
    found = find_fixed_points(linear_map(torch.tensor(matrix), torch.tensor(bias)), starts, steps=5, n_eigenvalues=5)
    assert len(found) == 1 and found.eigenvalues.shape == (1, 5) and found.stable.all()
    np.testing.assert_allclose(found.points[0], point, atol=1e-9)
    np.testing.assert_allclose(np.abs(found.eigenvalues[0]), modulus, atol=1e-12)


def test_a_large_contracting_map_is_polished_to_its_fixed_point():
    """x -> a * x + b over 4096 dimensions (above the dense limit), a in [0, 0.5] and three leading 0.9, 0.8, 0.7:
    x* = b / (1 - a). From x* + noise (sd 0.1) q is ~12, a mean speed of 3e-3 a dimension; the Krylov polish took
    only points with q below 1 whatever the state size, so none was polished and no point was found, where one
    Newton step lands on x*."""
    dim = 4096
    rng = np.random.default_rng(7)
    a = np.concatenate([[0.9, 0.8, 0.7], np.linspace(0.0, 0.5, dim - 3)])
    b = rng.standard_normal(dim)
    point = b / (1 - a)
    a_t, b_t = torch.as_tensor(a), torch.as_tensor(b)
    system = FunctionMap(lambda x: a_t * x + b_t, dim)
    starts = torch.as_tensor(point + 0.1 * rng.standard_normal((2, dim)))
    found = find_fixed_points(system, starts, steps=2, lr=1e-4, n_eigenvalues=3)
    assert found.settings["dense"] is False and found.settings["krylov_below_per_dim"] == 1e-2
    assert len(found) == 1 and found.kind.tolist() == ["fixed"]
    np.testing.assert_allclose(found.points[0], point, atol=1e-9)
    np.testing.assert_allclose(found.eigenvalues[0].real, [0.9, 0.8, 0.7], atol=1e-9)
    # both searches end there (the two starts are 9 apart: two clusters, both polished onto x*, then merged)
    assert found.n_searches.tolist() == [2] and found.settings["n_converged_fixed"] == 2


def test_large_states_far_from_any_fixed_point_skip_the_krylov_polish(monkeypatch):
    """A map with no fixed point (a constant drift) on the GMRES path: nothing is polished (GMRES would run to its
    cap for nothing) and the answer is an empty set, not an error. q / D = 0.5 here, above the 1e-2 bound."""
    from neurozoo.benchmarks.dynamics import fixedpoints

    monkeypatch.setattr(fixedpoints, "DENSE_LIMIT", 8)
    calls = []
    monkeypatch.setattr(fixedpoints, "_newton_krylov", lambda *args, **kwargs: calls.append(args) or args[1])
    drift = FunctionMap(lambda x: x + 1.0, dim=12)  # q = 6 everywhere
    found = find_fixed_points(drift, torch.randn(8, 12, dtype=torch.float64), steps=20, n_eigenvalues=5)
    assert len(found) == 0 and found.eigenvalues.shape == (0, 5) and not calls
    assert (found.settings["n_initial"], found.settings["n_converged"]) == (8, 0)
    assert found.settings["krylov_below_per_dim"] == 1e-2


def test_newton_polish_is_bit_identical_whatever_memory_it_finds():
    """torch.linalg.lstsq's CPU gelsy read an uninitialised pivot array, so the same Newton step from the same
    points gave a different last bit after other tensors had used (and freed) that memory: a ConvRNN dynamics
    record moved by ~2.5e-15 run to run. Every repeat must now be bit-identical."""
    from neurozoo.benchmarks.dynamics import fixedpoints

    generator = torch.Generator().manual_seed(0)
    weights = torch.randn(48, 48, generator=generator, dtype=torch.float64) / 48 ** 0.5
    system = FunctionMap(lambda x: torch.tanh(x @ weights.T + 0.1), 48)
    start = torch.randn(4, 48, generator=generator, dtype=torch.float64)
    results = set()
    for fill in range(1, 9):
        dirty = [torch.full((fill * 7,), fill * 1001, dtype=torch.int32) for _ in range(4)]
        del dirty  # freed memory with nonzero contents, as a run's other tensors leave it
        results.add(fixedpoints._newton(system, start, 2).numpy().tobytes())
    assert len(results) == 1


@pytest.mark.parametrize("steps, newton_steps", [(200, 6), (0, 0)])
def test_each_point_counts_the_searches_that_reached_it_and_the_settings_how_many_converged(steps, newton_steps):
    """The bistable map from 5 starts near (1, 0), 3 near (-1, 0), 1 near the saddle (0, 0) and 1 at x = 100, which
    neither Adam (steps of ~lr) nor 6 Newton steps (x shrinks by about 2/3 a step) bring near a fixed point. The
    result named only the 3 points: that 9 of the 10 searches reached them, and which how often, was not told."""
    case = bistable_case()
    offsets = 1e-5 * np.arange(5)
    starts = np.concatenate([np.stack([1 + offsets, offsets], 1), np.stack([-1 - offsets[:3], offsets[:3]], 1),
                             [[1e-6, 0.0], [100.0, 0.0]]])
    found = find_fixed_points(case.maps["none"], torch.as_tensor(starts), steps=steps, newton_steps=newton_steps,
                              slow_tol=1e-6 if newton_steps else 1e-9)
    order = np.argsort(found.points[:, 0])
    np.testing.assert_allclose(found.points[order], case.expected["points"], atol=1e-5)
    assert found.n_searches[order].tolist() == [3, 1, 5]
    assert found.table()["n_searches"].iloc[order].tolist() == [3, 1, 5]
    assert (found.settings["n_initial"], found.settings["n_converged"]) == (10, 9)
    assert found.settings["n_converged_fixed"] == 9  # q = 0 at (+-1, 0), 5e-15 at (1e-6, 0): fixed even unpolished
    assert found.subset(order[:1]).n_searches.tolist() == [3]


def test_a_contracting_tanh_rnn_has_the_single_fixed_point_zero_with_the_spectrum_of_its_weights():
    """x -> tanh(W x) with ||W||_2 = 0.8 is a contraction: 0 is its only fixed point, and there dF/dx = W. The
    eigenvalues are checked against torch.autograd.functional.jacobian of the map at the found point and against
    W's own, and every one of 64 searches reaches 0."""
    generator = torch.Generator().manual_seed(0)
    weights = torch.randn(12, 12, generator=generator, dtype=torch.float64)
    weights = 0.8 * weights / torch.linalg.matrix_norm(weights, 2)
    step = lambda x: torch.tanh(x @ weights.T)  # noqa: E731
    found = find_fixed_points(FunctionMap(step, 12), 2 * torch.randn(64, 12, generator=generator, dtype=torch.float64),
                              steps=300)
    assert len(found) == 1 and found.kind.tolist() == ["fixed"] and found.n_searches.tolist() == [64]
    np.testing.assert_allclose(found.points[0], np.zeros(12), atol=1e-12)
    independent = torch.autograd.functional.jacobian(lambda z: step(z), torch.as_tensor(found.points[0])).numpy()
    np.testing.assert_allclose(found.jacobians[0], independent, atol=1e-12)
    np.testing.assert_allclose(independent, weights.numpy(), atol=1e-12)
    expected = _sorted(np.linalg.eigvals(weights.numpy()))
    np.testing.assert_allclose(_sorted(found.eigenvalues[0]), expected, atol=1e-10)
    radius = np.abs(expected).max()
    assert 0.3 < radius < 0.8 and found.spectral_radius[0] == pytest.approx(radius, abs=1e-12)
    assert found.stable.tolist() == [True] and found.n_unstable.tolist() == [0]
    np.testing.assert_allclose(found.slowest_time_constants(), [-1 / np.log(radius)], rtol=1e-10)


def test_a_large_map_with_more_unstable_modes_than_eigenvalues_computed_reports_a_lower_bound():
    """x -> a * x + b over 2100 dimensions (above the dense limit, where only the top 20 eigenvalues are computed)
    with 30 unstable modes, a in [1.5, 2.0]: n_unstable read 20, as if exact; it is now flagged as a lower bound,
    and the summary no longer lets a partial spectrum decide a 'saddle with one unstable mode'."""
    from neurozoo.benchmarks.dynamics.fixedpoints import FixedPoints

    dim = 2100
    rng = np.random.default_rng(8)
    a = np.concatenate([np.linspace(2.0, 1.5, 30), np.linspace(0.5, 0.0, dim - 30)])
    b = rng.standard_normal(dim)
    point = b / (1 - a)
    a_t, b_t = torch.as_tensor(a), torch.as_tensor(b)
    starts = torch.as_tensor(point + 1e-3 * rng.standard_normal((1, dim)))
    found = find_fixed_points(FunctionMap(lambda x: a_t * x + b_t, dim), starts, steps=2, lr=1e-4)
    assert found.settings["dense"] is False and found.eigenvalues.shape == (1, 20)
    np.testing.assert_allclose(found.points[0], point, atol=1e-9)
    np.testing.assert_allclose(found.eigenvalues[0].real, a[:20], atol=1e-9)
    assert found.n_unstable.tolist() == [20] and found.n_unstable_is_lower_bound.tolist() == [True]
    assert found.stable.tolist() == [False]
    table = found.table()
    assert table["n_unstable_is_lower_bound"].tolist() == [True]
    assert found.summary()["n_unstable_lower_bound"] == 1 and found.summary()["n_unstable_fixed"] == 1
    # one computed eigenvalue, unstable: the old summary called the point a saddle with one unstable mode
    one = FixedPoints(found.points, found.q, found.kind, found.eigenvalues[:, :1])
    assert one.n_unstable.tolist() == [1] and one.n_unstable_is_lower_bound.tolist() == [True]
    assert one.summary()["n_saddles_1"] == 0 and one.summary()["n_unstable_lower_bound"] == 1
    # a partial spectrum that reaches a stable eigenvalue decides the count: 30 computed, the last 0.5
    exact = FixedPoints(found.points, found.q, found.kind, np.concatenate([a[:30], [0.5]])[None].astype(complex))
    assert exact.n_unstable.tolist() == [30] and exact.n_unstable_is_lower_bound.tolist() == [False]
    saddle = FixedPoints(found.points, found.q, found.kind, np.array([[1.5, 0.9, 0.8]], complex))
    assert saddle.summary()["n_saddles_1"] == 1 and saddle.summary()["n_unstable_lower_bound"] == 0


def test_the_summary_line_says_when_the_count_of_unstable_modes_is_a_lower_bound():
    from neurozoo.benchmarks.dynamics.cli import summary_line
    from neurozoo.benchmarks.dynamics.fixedpoints import FixedPoints

    points = np.zeros((2, 3000))
    found = FixedPoints(points, np.array([0.0, 0.0]), np.array(["fixed", "fixed"]),
                        np.array([[2.0, 1.5], [1.5, 0.5]], complex))
    line = summary_line("m", "c", found)
    assert "2 fixed (0 stable, 1 with one unstable mode)" in line
    assert "1 with at least 2 unstable modes: only the top 2 eigenvalues computed" in line


def test_duplicates_are_merged_by_their_largest_coordinate_difference_as_fixed_point_finder_does():
    """x_i -> x_i + 100 x_i (x_i - 5e-4) over 100 dimensions has fixed points 0 and 5e-4 (1, ...): 5e-4 apart in every
    coordinate, 5e-3 apart in Euclidean distance. FixedPointFinder's tol_unique (1e-3) makes them one point (unique
    only if they differ by 1e-3 or more along some dimension); the Euclidean 1e-3 used here kept them apart, and asks
    sqrt(D) times more of a difference spread over D dimensions."""
    delta, dim = 5e-4, 100
    system = FunctionMap(lambda x: x + 100 * x * (x - delta), dim)
    starts = torch.stack([torch.zeros(dim, dtype=torch.float64), torch.full((dim,), delta, dtype=torch.float64)])
    found = find_fixed_points(system, starts, steps=0)
    assert found.settings["unique_norm"] == "max" and found.settings["unique_tol"] == 1e-3
    assert len(found) == 1 and found.n_searches.tolist() == [2] and found.kind.tolist() == ["fixed"]
    apart = find_fixed_points(system, starts, steps=0, unique_norm="euclidean")
    assert len(apart) == 2 and apart.n_searches.tolist() == [1, 1]
    np.testing.assert_allclose(np.sort(apart.points.mean(axis=1)), [0.0, delta], atol=1e-15)
    assert len(find_fixed_points(system, starts, steps=0, unique_tol=4e-4)) == 2  # 5e-4 apart: two points
    with pytest.raises(ValueError, match="unique_norm='l1': expected one of max, euclidean"):
        find_fixed_points(system, starts, steps=0, unique_norm="l1")


@pytest.mark.parametrize("states, message", [
    # 0 states: a RuntimeError from a reshape inside the map; NaN states: 0 points found, as if there were none
    (torch.zeros(0, 8), r"^initial_states: no states, shape \(0, 8\); expected at least one$"),
    (torch.full((5, 8), float("nan")), r"^initial_states: 5 of 5 states hold NaN/inf values; expected finite states"),
])
def test_initial_states_without_a_finite_state_are_refused(states, message):
    system = TorchRNNMap(torch.nn.GRU(4, 8), torch.zeros(4))
    with pytest.raises(ValueError, match=message):
        find_fixed_points(system, states, steps=5)


@pytest.mark.parametrize("setting, value, message", [
    # steps=-1 ran no search and reported the initial states' points; lr=inf found nothing; fixed_tol=NaN called
    # nothing fixed; slow_tol below fixed_tol dropped points it called fixed; unique_tol=NaN merged every point into
    # one; max_newton=-1 dropped the last cluster; a float count and an integer dtype failed in torch
    ("steps", -1, r"^steps: expected an integer >= 0, got -1$"),
    ("steps", 2.5, r"^steps: expected an integer >= 0, got 2.5$"),
    ("newton_steps", -1, r"^newton_steps: expected an integer >= 0, got -1$"),
    ("lr", float("inf"), r"^lr: expected a finite number > 0, got inf$"),
    ("lr", 0, r"^lr: expected a finite number > 0, got 0$"),
    ("fixed_tol", float("nan"), r"^fixed_tol: expected a finite number > 0, got nan$"),
    ("slow_tol", 1e-14, r"^slow_tol: expected a number >= fixed_tol \(1e-12; a slow point's q lies between the two\), "
                        r"got 1e-14$"),
    ("unique_tol", float("nan"), r"^unique_tol: expected a finite number >= 0, got nan$"),
    ("max_newton", -1, r"^max_newton: expected an integer >= 1, got -1$"),
    ("n_eigenvalues", 0, r"^n_eigenvalues: expected an integer >= 1, got 0$"),
    ("krylov_below_per_dim", -1, r"^krylov_below_per_dim: expected a finite number > 0, got -1$"),
    ("dtype", torch.int64, r"^dtype: expected a torch floating-point dtype \(torch.float64, torch.float32\), got "
                           r"torch.int64$"),
])
def test_finder_settings_out_of_range_are_refused_naming_them(setting, value, message):
    from neurozoo.datasets.errors import SpecError

    with pytest.raises(SpecError, match=message):
        find_fixed_points(bistable_case().maps["none"], torch.zeros(4, 2, dtype=torch.float64),
                          **{"steps": 5, setting: value})
