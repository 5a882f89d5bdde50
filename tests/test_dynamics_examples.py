"""Trained examples with known answers: 3-bit flip-flop (8 stable fixed points) for vanilla RNN, GRU and LSTM,
the same topology across them while the representation differs, and line attractors for context-dependent
integration (Mante et al. 2013). Tiny networks with fixed seeds, trained once per session (by one worker of a
parallel run: ``built_once``)."""
import numpy as np
import pytest
import torch

from neurozoo.benchmarks.dynamics.analysis import analyse
from neurozoo.benchmarks.dynamics.cases import flipflop_case, integration_case
from neurozoo.benchmarks.dynamics.examples import TaskRNN
from neurozoo.benchmarks.dynamics.fixedpoints import find_fixed_points, sample_states
from neurozoo.benchmarks.dynamics.similarity import linear_cka, procrustes_similarity
from neurozoo.benchmarks.dynamics.tasks import FlipFlop

ARCHITECTURES = ("rnn", "gru", "lstm")
CORNERS = {"".join(bits) for bits in np.array(np.meshgrid(*[["+", "-"]] * 3)).T.reshape(-1, 3).tolist()}


def _trained_flipflops():
    torch.set_num_threads(1)
    out = {}
    for architecture in ARCHITECTURES:
        case = flipflop_case(architecture, hidden=16, steps=500, seed=0)
        out[architecture] = (case, analyse(case, n_initial=192, steps=800)["no input"])
    return out


@pytest.fixture(scope="module")
def flipflops(built_once):
    return built_once("dynamics-flipflops", _trained_flipflops)


def _memories(model, points):
    with torch.no_grad():
        readout = model.read(torch.as_tensor(points, dtype=torch.float32)).numpy()
    return readout, ["".join("+" if v > 0 else "-" for v in row) for row in readout]


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_flipflop_has_eight_stable_fixed_points_one_per_memory(flipflops, architecture):
    case, found = flipflops[architecture]
    assert case.settings["final_loss"] < 0.05 and case.settings["accuracy"] > 0.99
    assert flipflop_case(architecture, steps=1).settings["accuracy"] < 0.6  # untrained: chance
    stable = found.subset((found.kind == "fixed") & found.stable)
    assert len(stable) == 8
    readout, memories = _memories(case.model, stable.points)
    assert set(memories) == CORNERS
    assert np.abs(readout).min() > 0.8  # each holds its three bits near +-1
    # the other fixed points are unstable (saddles between the memories and beyond)
    assert (found.n_unstable[~found.stable] >= 1).all() and found.summary()["n_saddles_1"] >= 6


def test_untrained_networks_do_not_have_the_flipflop_topology():
    for architecture in ARCHITECTURES:
        torch.manual_seed(0)
        model = TaskRNN(architecture, 3, 16, 3).eval()
        inputs, _, _ = FlipFlop().batch(16, torch.Generator().manual_seed(1))
        with torch.no_grad():
            states = model.states(inputs)
        found = find_fixed_points(model.state_map(torch.zeros(3)), sample_states(states, 64, 0.05), steps=300)
        assert found.summary()["n_stable_fixed"] < 8


def test_universality_same_topology_different_geometry(flipflops):
    """Maheswaranathan, Williams et al. (2019): the fixed-point topology is shared across architectures while the
    representation is not. A copy of the GRU with its hidden units rotated (same geometry, same topology)
    is the control that the geometry measures can call identical."""
    inputs, _, _ = FlipFlop().batch(24, torch.Generator().manual_seed(5))
    hidden, topology = {}, {}
    for architecture, (case, found) in flipflops.items():
        stable = found.subset((found.kind == "fixed") & found.stable)
        topology[architecture] = (len(stable), sorted(_memories(case.model, stable.points)[1]))
        with torch.no_grad():
            hidden[architecture] = case.model.states(inputs)[..., :16].reshape(-1, 16).numpy()
    assert topology["rnn"] == topology["gru"] == topology["lstm"] == (8, sorted(CORNERS))
    rotation = np.linalg.qr(np.random.default_rng(0).standard_normal((16, 16)))[0]
    assert linear_cka(hidden["gru"], hidden["gru"] @ rotation) == pytest.approx(1.0, abs=1e-9)
    assert procrustes_similarity(hidden["gru"], hidden["gru"] @ rotation) == pytest.approx(1.0, abs=1e-9)
    for first, second in (("rnn", "gru"), ("rnn", "lstm"), ("gru", "lstm")):
        assert linear_cka(hidden[first], hidden[second]) < 0.985
        assert procrustes_similarity(hidden[first], hidden[second]) < 0.985
    # the linearised dynamics differ too: the slowest decay at the memories
    radius = {a: np.median(f.spectral_radius[(f.kind == "fixed") & f.stable]) for a, (_, f) in flipflops.items()}
    assert max(radius.values()) - min(radius.values()) > 0.05


def _trained_integrators():
    torch.set_num_threads(1)
    out = {}
    for architecture in ARCHITECTURES:
        case = integration_case(architecture, seed=0)
        out[architecture] = (case, analyse(case, n_initial=128, steps=800))
    return out


@pytest.fixture(scope="module")
def integrators(built_once):
    return built_once("dynamics-integrators", _trained_integrators)


def _line(points):
    centred = points - points.mean(0)
    singular = np.linalg.svd(centred, compute_uv=False)
    return singular[0] ** 2 / (singular ** 2).sum()


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_context_integration_line_attractor_per_context(integrators, flipflops, architecture):
    """Mante et al. (2013): per context, the fixed and slow points lie on a line that spans both choices, with one
    eigenvalue near 1 (the integration mode), and the relevant evidence input projects onto the selection vector
    (left eigenvector of that mode) more strongly than the irrelevant one."""
    from neurozoo.benchmarks.dynamics.fixedpoints import input_jacobians

    case, results = integrators[architecture]
    # the loss stays near 0.6 (noisy evidence), so the records say how often the network chose right, against the
    # ideal observer (the sign of the summed relevant evidence) on the same 128 trials: 0.80-0.84 against 0.83
    assert case.settings["ideal_accuracy"] == pytest.approx(106 / 128)
    assert case.settings["accuracy"] > case.settings["ideal_accuracy"] - 0.05
    assert integration_case(architecture, steps=1).settings["accuracy"] < 0.6  # untrained: chance
    for context, found in results.items():
        relevant, irrelevant = (0, 1) if context == "motion" else (1, 0)
        assert len(found) >= 3
        assert _line(found.points) > 0.85
        with torch.no_grad():
            choice = case.model.read(torch.as_tensor(found.points, dtype=torch.float32))[:, 0].numpy()
        assert choice.min() < -0.3 and choice.max() > 0.3
        assert np.median(found.spectral_radius) > 0.9
        inputs = input_jacobians(case.maps[context], found.points)
        projection = np.array([[abs(found.linearise(i).slowest_mode()[2].real @ inputs[i][:, k]) for k in (0, 1)]
                               for i in range(len(found))])
        assert np.median(projection[:, relevant]) > 2 * np.median(projection[:, irrelevant])
    # the wrong class: the flip-flop's memories are a cube, not a line
    _, memories = flipflops[architecture]
    assert _line(memories.points[(memories.kind == "fixed") & memories.stable]) < 0.6


def _identical(made, loaded, where="value"):
    """Assert that ``loaded`` is ``made`` bit for bit: tensors and arrays by dtype and bytes, objects field by field."""
    assert type(loaded) is type(made), where
    if isinstance(made, torch.nn.Module):
        _identical(made.state_dict(), loaded.state_dict(), f"{where}.state_dict()")
        assert made.training == loaded.training, where
    elif isinstance(made, torch.Tensor):
        assert made.dtype == loaded.dtype and torch.equal(made, loaded), where
    elif isinstance(made, np.ndarray):
        assert made.dtype == loaded.dtype and made.tobytes() == loaded.tobytes(), where
    elif isinstance(made, dict):
        assert list(made) == list(loaded), where
        for key in made:
            _identical(made[key], loaded[key], f"{where}[{key!r}]")
    elif isinstance(made, (list, tuple)):
        assert len(made) == len(loaded), where
        for i, (a, b) in enumerate(zip(made, loaded)):
            _identical(a, b, f"{where}[{i}]")
    elif hasattr(made, "__dict__"):
        _identical(vars(made), vars(loaded), where)
    else:
        assert made == loaded, where


def test_an_example_built_by_one_worker_loads_in_another_as_trained(built_once):
    """``built_once`` trains an example in the first process that asks and the other workers of a parallel run load
    it: what they load is what was trained (weights, analysis, records, the maps on the loaded network itself), and
    the loaded network computes the same states to the bit."""
    def make():
        case = flipflop_case("gru", hidden=8, steps=20, seed=3)
        return case, analyse(case, n_initial=16, steps=50)["no input"]

    made = built_once("test-flipflop-gru-20", make)
    loaded = built_once("test-flipflop-gru-20", lambda: pytest.fail("built twice: not loaded from the first build"))
    assert loaded is not made
    _identical(made, loaded)
    (case, found), (again, _) = made, loaded
    assert len(found) > 0 and found.jacobians is not None
    assert again.maps["no input"].module is again.model.rnn  # one loaded network, not a copy per reference
    inputs, _, _ = FlipFlop().batch(4, torch.Generator().manual_seed(9))
    with torch.no_grad():
        assert torch.equal(case.model.states(inputs), again.model.states(inputs))
