"""The ConvRNN cell adapter reproduces the network's own step, through the public forward only."""
import numpy as np
import pytest
import torch

from neurozoo import convrnn
from neurozoo.benchmarks.dynamics.adapters import ConvRNNCellMap
from neurozoo.benchmarks.dynamics.fixedpoints import find_fixed_points, sample_states
from neurozoo.benchmarks.dynamics.trajectories import record_convrnn


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = convrnn.create_model("rgc_intermediate", width_multiplier=1 / 16, num_classes=5).eval()
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    return model, images


def test_cell_map_reproduces_the_last_step_and_the_recorded_output(tiny):
    model, images = tiny
    system = ConvRNNCellMap(model, "conv5", images, n_steps=10, image_index=1)
    trajectory = system.trajectory  # (steps the cell ran, images, D)
    assert system.dim == trajectory.shape[2] == sum(system.channels) * 4 * 4
    with torch.no_grad():
        step = system(trajectory[-2, 1:2])
    torch.testing.assert_close(step, trajectory[-1, 1:2])
    # the same states are what forward(record=...) shows: the cell's output state h is the layer output (no pool)
    recorded = record_convrnn(model, images, ["a", "b", "c"], ["conv5"], n_steps=10, image_steps=10, pool=None)["conv5"]
    h = trajectory[-1, :, -system.channels[-1] * 16:]
    np.testing.assert_allclose(recorded.values[:, -1], h.numpy(), atol=1e-5)
    # a layer named twice (zoo dynamics --trajectory-layers conv5,conv5) is one trajectory: it had 2 x the images
    # (a ValueError from the array's check) and, before ConvRNN.forward recorded it once, 2 x the steps
    twice = record_convrnn(model, images, ["a", "b", "c"], ["conv5", "conv5"], n_steps=10, image_steps=10, pool=None)
    assert list(twice) == ["conv5"] and np.array_equal(twice["conv5"].values, recorded.values)


def test_a_drive_the_image_has_not_reached_yet_is_refused(tiny):
    """With too few steps for the image to reach the layer, the frozen drive was the biases' alone, the same for every
    image, and the analysis was labelled with the held image all the same."""
    model, images = tiny
    arrival = model.first_output_step("conv5")
    with pytest.raises(ValueError, match=rf"the image reaches layer 'conv5' at step {arrival}; the drive at step "
                                         rf"{arrival - 1} \(of n_steps={arrival}\) is the same for every image"):
        ConvRNNCellMap(model, "conv5", images, n_steps=arrival)
    drives = [ConvRNNCellMap(model, "conv5", images, n_steps=arrival + 1, image_index=i).drive for i in (0, 1)]
    assert not torch.equal(*drives)


def test_a_step_beyond_the_unroll_or_an_image_not_given_is_refused_naming_both(tiny):
    """reference_step past the steps run was an IndexError ("list index out of range"); image_index past the images,
    or -1, sliced an empty drive (drive[-1:0]) and the map failed at its first call with torch's "expanded size"."""
    model, images = tiny
    with pytest.raises(ValueError, match=r"reference_step 12: layer 'conv5' ran 12 steps \(n_steps=12\); expected "
                                         r"-12\.\.11"):
        ConvRNNCellMap(model, "conv5", images, n_steps=12, reference_step=12)
    with pytest.raises(ValueError, match=r"reference_step -13: layer 'conv5' ran 12 steps"):
        ConvRNNCellMap(model, "conv5", images, n_steps=12, reference_step=-13)
    with pytest.raises(ValueError, match=r"image_index 3: expected -3\.\.2, an index among the 3 images"):
        ConvRNNCellMap(model, "conv5", images, n_steps=12, image_index=3)
    last, minus_one = (ConvRNNCellMap(model, "conv5", images, n_steps=12, image_index=i) for i in (2, -1))
    assert minus_one.drive.shape[0] == 1 and torch.equal(last.drive, minus_one.drive)
    state = last.trajectory[-1, :1]
    torch.testing.assert_close(minus_one(state), last(state), rtol=0, atol=0)
    earlier = ConvRNNCellMap(model, "conv5", images, n_steps=12, reference_step=-2)
    assert not torch.equal(earlier.drive, ConvRNNCellMap(model, "conv5", images, n_steps=12).drive)


def test_a_model_on_the_fast_path_is_refused_with_what_to_do():
    """On the CPU fast path (the extraction's) the image-free steps ran once for the batch, so the captured states
    mixed batch sizes and the map failed with torch's "stack expects each tensor to be equal size"."""
    from neurozoo.benchmarks.extraction.activations import CPU_FAST

    torch.manual_seed(0)
    model = convrnn.create_model("rgc_shallow", width_multiplier=0.125).eval().to_fast(**CPU_FAST)
    images = torch.randn(2, 3, 32, 32)
    with pytest.raises(ValueError, match=r"model is on the fast path \(to_fast\(\)\).*call model.to_reference\(\)"):
        ConvRNNCellMap(model, "conv4", images, n_steps=6)
    model.to_reference()
    assert ConvRNNCellMap(model, "conv4", images, n_steps=6).steps_run == 6


def test_positions_agree_with_the_whole_map(tiny):
    model, images = tiny
    whole = ConvRNNCellMap(model, "conv5", images, n_steps=12)
    local = ConvRNNCellMap(model, "conv5", images, n_steps=12, positions=[(2, 1)])
    assert local.dim == sum(local.channels)
    with torch.no_grad():
        full_point = whole.trajectory[-1, :1]
        for _ in range(30):
            full_point = whole(full_point)
        assert float((whole(full_point) - full_point).abs().max()) < 1e-6  # the whole map is at its fixed point
    # one column's dynamics given its surround at the whole map's fixed point has that point's column as its own
    local.reference = whole._expand(full_point)
    found = find_fixed_points(local, sample_states(local.trajectory, 16, noise=0.2), steps=150,
                              dtype=torch.float32, fixed_tol=1e-9)
    assert found.summary()["n_fixed"] == 1
    expected = local.select(whole._expand(full_point))[0].numpy()
    np.testing.assert_allclose(found.points[0], expected, atol=1e-4)
    with pytest.raises(ValueError, match=r"position \(9, 0\) outside the 4x4 map of layer 'conv5'"):
        ConvRNNCellMap(model, "conv5", images, n_steps=12, positions=[(9, 0)])
    with pytest.raises(ValueError, match=r"position \(-5, 0\) outside the 4x4 map of layer 'conv5'"):
        ConvRNNCellMap(model, "conv5", images, n_steps=12, positions=[(-5, 0)])
    from_end = ConvRNNCellMap(model, "conv5", images, n_steps=12, positions=[(-2, -3)])  # as Python indexes
    assert from_end.positions == [(2, 1)] and torch.equal(from_end.trajectory, local.trajectory)
    # what to give instead is named (it was not: the user had to find the layers with a state by hand)
    recurrent = "recurrent layers: conv4, conv5, conv6, conv7, conv8, conv9, conv10"
    with pytest.raises(ValueError, match=f"layer 'conv2' has no recurrent state .*; {recurrent}$"):
        ConvRNNCellMap(model, "conv2", images, n_steps=4)
    with pytest.raises(ValueError, match=f"no recurrent cell for layer 'nope' .*; {recurrent}$"):
        ConvRNNCellMap(model, "nope", images)


def test_a_convrnn_cells_time_constants_are_in_ms_from_python_as_zoo_dynamics_reports_them(tiny):
    """find_fixed_points called from Python gave a ConvRNN's time constants in steps (dt defaulted to 1) unless dt=10
    was given, while zoo dynamics reported ms, and the result did not say which. The step is now the map's own (10 ms,
    the biological unrolling), the result and its table name the unit, and a dt without its unit is refused."""
    from neurozoo.benchmarks.dynamics.analysis import analyse
    from neurozoo.benchmarks.dynamics.cases import convrnn_case

    model, images = tiny
    system = ConvRNNCellMap(model, "conv5", images, n_steps=12, positions=[(2, 1)])
    starts = sample_states(system.trajectory, 8, noise=0.2)
    finder = {"steps": 30, "dtype": torch.float32, "fixed_tol": 1e-9}
    found = find_fixed_points(system, starts, **finder)
    assert len(found) and (found.dt, found.time_unit) == (10.0, "ms")
    np.testing.assert_allclose(found.time_constants(), -10.0 / np.log(np.abs(found.eigenvalues)), rtol=1e-6)
    assert found.table()["slowest_tau_ms"].tolist() == found.slowest_time_constants().tolist()
    in_steps = find_fixed_points(system, starts, dt=1, time_unit="steps", **finder)
    assert "slowest_tau_steps" in in_steps.table() and in_steps.linearise(0).time_unit == "steps"
    np.testing.assert_allclose(found.time_constants(), 10 * in_steps.time_constants(), rtol=1e-6)
    # what zoo dynamics computes for the same layer, image and positions: the same unit and step
    case = convrnn_case(model, "rgc_intermediate", "conv5", images, ["a", "b", "c"], positions=[(2, 1)], n_steps=12)
    (cli,) = analyse(case, n_initial=8, **finder).values()
    assert (cli.dt, cli.time_unit, case.step_ms, case.time_unit) == (10.0, "ms", 10.0, "ms")
    with pytest.raises(ValueError, match=r"dt=10 given alone: give dt and time_unit together .* \(10 ms\)"):
        find_fixed_points(system, starts, dt=10, steps=1)
    with pytest.raises(ValueError, match=r"time_unit='ms' given alone"):
        find_fixed_points(system, starts, time_unit="ms", steps=1)


def test_positions_as_an_array_and_an_empty_list(tiny):
    """A (N, 2) array of positions (the documented Sequence of (row, column)) failed with "truth value of an array
    is ambiguous" since negative indices were accepted; an empty list gave dim = the whole map's while the map's
    states had no entries at all (D 0), so every state had the wrong size."""
    model, images = tiny
    listed = ConvRNNCellMap(model, "conv5", images, n_steps=8, positions=[(2, 1), (-1, 0)])
    array = ConvRNNCellMap(model, "conv5", images, n_steps=8, positions=np.array([[2, 1], [-1, 0]]))
    assert array.positions == listed.positions == [(2, 1), (3, 0)]
    assert array.dim == array.trajectory.shape[2] == 2 * sum(array.channels)
    torch.testing.assert_close(array.trajectory, listed.trajectory)
    with pytest.raises(ValueError, match=r"positions: an empty list \(None analyses the whole 4x4 map of layer 'conv5'\)"):
        ConvRNNCellMap(model, "conv5", images, n_steps=8, positions=[])


def test_a_site_given_twice_is_refused(tiny):
    """(2, 1) and (-2, -3) are one site of the 4x4 map: its state entered D twice and only the last copy reached the
    cell, so the first copy's coordinates were left out of the map (zero columns of the Jacobian, eigenvalues 0 that
    are not the cell's); on a 1x1 map, 0,0 and -1,-1 found no fixed point where the site alone finds its one."""
    model, images = tiny
    with pytest.raises(ValueError, match=r"positions \(2, 1\) and \(-2, -3\) are the same site \(2, 1\) of the 4x4 "
                                         r"map of layer 'conv5': give each site once"):
        ConvRNNCellMap(model, "conv5", images, n_steps=8, positions=[(2, 1), (1, 1), (-2, -3)])
    assert ConvRNNCellMap(model, "conv5", images, n_steps=8, positions=[(2, 1), (1, 2)]).positions == [(2, 1), (1, 2)]


def test_convrnn_case_analysis_figures_and_records(tiny, tmp_path):
    from neurozoo.benchmarks.dynamics.analysis import analyse, dynamics_records, figures
    from neurozoo.benchmarks.dynamics.cases import convrnn_case

    model, images = tiny
    case = convrnn_case(model, "tiny", "conv5", images, ["a", "b", "c"], positions=[(1, 1)], labels=["x", "y", "x"],
                        trajectory_layers=["conv2", "conv5"])
    results = analyse(case, n_initial=8, steps=50, dtype=torch.float32, fixed_tol=1e-9)
    [found] = results.values()
    assert found.summary()["n_stable_fixed"] == 1 and found.settings["dim"] == sum(case.maps["a"].channels)
    paths = figures(case, results, tmp_path, "tiny")
    assert [p.name for p in paths] == ["tiny_a_trajectories.png", "tiny_a_spectra.png",
                                       "tiny_layer_output_trajectories_conv2.png",
                                       "tiny_layer_output_trajectories_conv5.png"]
    [record] = dynamics_records(case, results, 1.0, seed=0)
    assert (record.model, record.benchmark, record.value) == ("tiny:conv5", "dynamics.fixed_points", 1.0)
    assert record.settings["layer"] == "conv5" and record.settings["positions"] == [(1, 1)]


def test_the_analysis_leaves_the_users_model_in_the_mode_it_was_in(tmp_path):
    """The adapters, the trajectory recorder and the figures put the model they were given in eval mode for
    good: a model being trained came back in eval mode, and its BatchNorm then used running statistics."""
    from neurozoo.benchmarks.dynamics.adapters import TorchRNNMap
    from neurozoo.benchmarks.dynamics.analysis import analyse, figures
    from neurozoo.benchmarks.dynamics.cases import convrnn_case

    torch.manual_seed(0)
    model = convrnn.create_model("rgc_shallow", width_multiplier=1 / 16, norm="batch", num_classes=5).train()
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    case = convrnn_case(model, "tiny", "conv5", images, ["a", "b", "c"], positions=[(0, 0)], n_steps=8)
    figures(case, analyse(case, n_initial=4, steps=3, dtype=torch.float32), tmp_path, "tiny")
    record_convrnn(model, images, ["a", "b", "c"], ["conv4"], n_steps=4)
    assert all(module.training for module in model.modules())
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(norms) == 5 and all(int(m.num_batches_tracked) == 0 for m in norms)  # every run was in eval mode
    # a 2-layer GRU with dropout between its layers: the map is the eval-mode map, and the module stays in training
    gru = torch.nn.GRU(3, 8, num_layers=2, dropout=0.5).train()
    system, x = TorchRNNMap(gru, torch.ones(3)), torch.randn(4, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        first, second = system(x), system(x)
    assert torch.equal(first, second) and gru.training
    with torch.no_grad():
        _, expected = gru.eval()(torch.ones(1, 4, 3), x.reshape(4, 2, 8).transpose(0, 1).contiguous())
    torch.testing.assert_close(first, TorchRNNMap.flatten(expected))


def test_the_cell_trajectories_mark_the_held_image(tiny, tmp_path, monkeypatch):
    """The fixed points are those of the cell under one held image, but its trajectory looked like every other."""
    from neurozoo.benchmarks.dynamics import plots
    from neurozoo.benchmarks.dynamics.analysis import analyse, figures
    from neurozoo.benchmarks.dynamics.cases import convrnn_case

    drawn = {}
    monkeypatch.setattr(plots, "save_figure", lambda figure, path: drawn.setdefault(path.name, figure) and path)
    model, images = tiny
    case = convrnn_case(model, "tiny", "conv5", images, ["a", "b", "c"], positions=[(1, 1)], labels=["x", "y", "x"],
                        image_index=1, n_steps=6)
    figures(case, analyse(case, n_initial=4, steps=3, dtype=torch.float32), tmp_path, "tiny")
    plane = drawn["tiny_b_trajectories.png"].axes[0]
    [held] = [line for line in plane.get_lines() if line.get_label() == "held: b (y)"]
    assert held.get_color() == "k" and held.get_linewidth() == 2
    assert "held: b (y)" in [text.get_text() for text in plane.get_legend().get_texts()]
    assert case.settings["image_index"] == 1
