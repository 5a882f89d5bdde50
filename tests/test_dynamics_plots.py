"""The dynamics figures say what they show: which system is on which axis, in which time unit, and how many points
of which kind."""
import numpy as np
import pytest

from neurozoo.benchmarks.dynamics import analysis, plots
from neurozoo.benchmarks.dynamics.fixedpoints import FixedPoints
from neurozoo.benchmarks.dynamics.trajectories import activity, from_states


@pytest.fixture
def drawn(monkeypatch):
    """The figures the plot functions would save, by file name."""
    figures = {}
    monkeypatch.setattr(plots, "save_figure", lambda figure, path: figures.setdefault(path.name, figure) and path)
    return figures


def test_similarity_axes_name_the_systems_and_their_time_units(drawn, tmp_path):
    """Every panel read "bin a start (ms)" / "bin b start (ms)": which system was a, and the examples' bins are steps."""
    rng = np.random.default_rng(0)
    ids = [f"s{i}" for i in range(8)]
    systems = {"model:conv4": activity(rng.normal(size=(8, 3, 5)), ids, [0, 10, 20], 10.0),
               "example": from_states(rng.normal(size=(4, 8, 6)), ids, time_unit="steps")}
    analysis.compare_figures(analysis.compare(systems, ["rsa", "cka"]), tmp_path, "c", systems)
    rsa, cka = drawn["c_model-conv4__example.png"].axes[:2]  # then their colour bars
    assert [rsa.get_title(), cka.get_title()] == ["RSA (Spearman r of RDMs)", "linear CKA"]
    assert cka.get_ylabel() == "model:conv4: bin start (ms)" and cka.get_xlabel() == "example: bin start (steps)"
    assert drawn["c_example_trajectories.png"].axes[1].get_xlabel() == "time (steps)"
    assert drawn["c_model-conv4_trajectories.png"].axes[1].get_xlabel() == "time (ms)"


def test_trajectory_legends_name_what_the_colours_are_and_only_the_kinds_of_point_present(drawn, tmp_path):
    """The colours of the bistable map (its final x) and the flip-flop (the memory at the end) were titled "input", and
    a figure whose points were all stable showed an "unstable" marker in its legend."""
    from neurozoo.benchmarks.dynamics.cases import bistable_case

    case = bistable_case()
    found = FixedPoints(np.array([[-1.0, 0.0], [1.0, 0.0]]), np.zeros(2), np.array(["fixed", "fixed"]),
                        np.array([[0.9, 0.8], [0.9, 0.8]], dtype=complex))
    analysis.figures(case, {"none": found}, tmp_path, "b")
    plane, time_axis = drawn["b_none_trajectories.png"].axes
    assert time_axis.get_legend().get_title().get_text() == "final state"
    assert sorted(t.get_text() for t in time_axis.get_legend().get_texts()) == ["x<0", "x>0"]
    assert [t.get_text() for t in plane.get_legend().get_texts()] == ["stable"]


def test_spectra_count_the_points_by_kind_and_mark_growth_modes(tmp_path, drawn):
    """The title read "1 points", the index axis of one point ran -0.04..0.04, a log axis over less than a decade
    labelled its ticks 1.525x10^1, and a saddle's growth time looked like a decay time."""
    saddle = FixedPoints(np.zeros((3, 2)), np.zeros(3), np.array(["fixed", "fixed", "slow"]),
                         np.array([[0.9, 0.8], [1.1, 0.9], [0.95, 0.5]], dtype=complex))
    figure = plots.spectra_figure(saddle, time_unit="ms")
    plane, taus = figure.axes
    assert plane.get_title() == "3 points (2 fixed, 1 slow): 2 stable (black)"
    assert taus.get_ylabel() == "|tau| (ms)" and taus.get_yscale() == "log"  # 1.4 to 19.5: over a decade
    growth = [line for line in taus.get_lines() if line.get_markerfacecolor() == "none" and len(line.get_xdata())]
    assert len(growth) == 1 and list(growth[0].get_xdata()) == [1]
    assert growth[0].get_ydata()[0] == pytest.approx(1 / np.log(1.1))
    one = plots.spectra_figure(saddle.subset([True, False, False]))
    plane, taus = one.axes
    assert plane.get_title() == "1 point (1 fixed): 1 stable (black)" and taus.get_yscale() == "linear"
    assert taus.get_xlim() == (-0.5, 0.5) and [t for t in taus.get_xticks() if -0.5 <= t <= 0.5] == [0]
    assert taus.get_ylabel() == "|tau| (steps)"
    # above the dense limit only the largest eigenvalues are computed: the title says it is not the whole spectrum
    krylov = FixedPoints(np.zeros((1, 3000)), np.zeros(1), np.array(["fixed"]), np.full((1, 20), 0.5, dtype=complex))
    assert plots.spectra_figure(krylov).axes[0].get_title() == \
        "1 point (1 fixed): 1 stable (black)\nlargest 20 of 3000 eigenvalues each"


def test_a_conjugate_pair_is_one_mode_in_the_time_constants_so_no_mode_hides_another():
    """Modes 3 and 4 of a rotation have the same |tau|: "mode 4" sat exactly on "mode 3"."""
    rotation = 0.8 * np.exp(0.3j)
    values = np.array([[0.95, 0.9, rotation, np.conj(rotation), 0.5, 0.4, 0.3],
                       [0.97, 0.85, 0.7 * np.exp(0.2j), 0.7 * np.exp(-0.2j), 0.6, 0.2, 0.1]])
    points = FixedPoints(np.zeros((2, 7)), np.zeros(2), np.array(["fixed", "fixed"]), values)
    taus = plots.spectra_figure(points).axes[1]
    drawn = [line for line in taus.get_lines() if len(line.get_xdata()) and not line.get_label().startswith("_")]
    assert [line.get_label() for line in drawn] == ["mode 1", "mode 2", "modes 3-4 (pair)", "mode 5", "mode 6"]
    pair = drawn[2].get_ydata()
    assert pair == pytest.approx([-1 / np.log(0.8), -1 / np.log(0.7)])
    assert drawn[3].get_ydata() == pytest.approx([-1 / np.log(0.5), -1 / np.log(0.6)])
    # every (point, |tau|) shown once: no two modes' markers on top of each other
    xy = [(x, round(y, 9)) for line in drawn for x, y in zip(line.get_xdata(), line.get_ydata())]
    assert len(xy) == len(set(xy)) == 10
    # spectra grouped differently at different points: the label says so
    mixed = FixedPoints(np.zeros((2, 3)), np.zeros(2), np.array(["fixed", "fixed"]),
                        np.array([[rotation, np.conj(rotation), 0.5], [0.9, 0.7, 0.5]]))
    labels = [line.get_label() for line in plots.spectra_figure(mixed).axes[1].get_lines()
              if not line.get_label().startswith("_")]
    assert labels == ["slowest mode 1 (a pair at some points)", "slowest mode 2"]


def test_the_time_constant_panel_shows_a_saddles_slowest_modes_not_its_fast_growth_first():
    """|lambda| = 3, 2.5 (growth, |tau| 0.9 and 1.1 steps) and 0.99, 0.9 (decays, 99.5 and 9.5): by modulus with
    most=2 the panel showed the two fast growths and left the slow decays out."""
    saddle = FixedPoints(np.zeros((1, 4)), np.zeros(1), np.array(["fixed"]),
                         np.array([[3.0, 2.5, 0.99, 0.9]], dtype=complex))
    tau, labels = plots.mode_time_constants(saddle, most=2)
    np.testing.assert_allclose(tau, [[-1 / np.log(0.99), -1 / np.log(0.9)]])
    assert labels == ["mode 3", "mode 4"]


def test_compare_trajectory_titles_count_the_examples_rows_as_trials(drawn, tmp_path):
    """The examples' trajectories were titled "48 stimuli", though their rows are task trials."""
    from neurozoo.benchmarks.dynamics import sources

    example, _ = sources.example("flipflop-rnn", train_steps=2)
    assert example.attrs["rows"] == "trials"
    rng = np.random.default_rng(0)
    ids = [f"s{i}" for i in range(8)]
    systems = {"model:conv4": activity(rng.normal(size=(8, 3, 5)), ids, [0, 10, 20], 10.0),
               "flipflop-rnn": example}
    analysis.compare_figures({}, tmp_path, "c", systems)
    assert drawn["c_flipflop-rnn_trajectories.png"]._suptitle.get_text() == \
        f"flipflop-rnn: {example.sizes['stimulus_id']} trials"
    assert drawn["c_model-conv4_trajectories.png"]._suptitle.get_text() == "model:conv4: 8 stimuli"
