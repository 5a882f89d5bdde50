"""Plots are written as PNG files with the expected content size."""
import numpy as np
import pytest

from neurozoo.benchmarks.metrics import internal_consistency, regression_score
from neurozoo.benchmarks.plots import plot_layer_profile, plot_time_course
from neurozoo.benchmarks.score import Score
from neurozoo.benchmarks.synthetic import synthetic_assembly


def test_time_course_and_layer_profile(tmp_path):
    assembly, clean = synthetic_assembly(n_stimuli=120, n_neuroids=8, n_bins=4, n_repetitions=4, noise=1.0, seed=0)
    score = Score.from_temporal(regression_score(clean, assembly, ceiling=internal_consistency(assembly)))
    assert len(score.per_bin) == 4 and score.per_bin[0]["time_bin_start"] == 70
    assert abs(score.value - 1) < 0.25 and 0 < score.ceiling < 1
    record = score.to_record("toy", "synthetic")
    assert record.per_bin[0]["ceiling"] == score.per_bin[0]["ceiling"]
    path = plot_time_course(score, tmp_path / "plots" / "time.png", title="toy")
    from matplotlib.image import imread

    image = imread(path)
    assert image.shape[0] > 200 and image.shape[1] > 500 and np.std(image) > 0.01
    layer = plot_layer_profile({"conv5": score, "conv6": score}, tmp_path / "layers.png")
    assert layer.stat().st_size > 5000


def overlapping_texts(figure):
    """Pairs of visible texts of the drawn figure whose boxes overlap, one of them a title, axis label or legend
    entry (tick labels of two axes may touch at a corner)."""
    from matplotlib.text import Text

    renderer = figure.canvas.get_renderer()
    ticks, hidden = set(), set()  # tick labels drawn; those of ticks outside the view, which are not drawn
    for axis in figure.axes:
        for ruler in (axis.xaxis, axis.yaxis):
            low, high = sorted(ruler.get_view_interval())
            for tick in ruler.get_major_ticks():
                inside = low - 1e-9 * (high - low) <= tick.get_loc() <= high + 1e-9 * (high - low)
                (ticks if inside else hidden).update(id(label) for label in (tick.label1, tick.label2))
    texts = [t for t in figure.findobj(Text) if t.get_visible() and t.get_text().strip() and id(t) not in hidden]
    boxes = [(t.get_text(), id(t) in ticks, t.get_window_extent(renderer)) for t in texts]
    return [(a, b) for i, (a, tick_a, box_a) in enumerate(boxes) for b, tick_b, box_b in boxes[i + 1:]
            if not (tick_a and tick_b) and box_a.overlaps(box_b)]


def test_time_course_figure_labels_axes_with_units_and_no_text_overlaps():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from neurozoo.benchmarks.plots import time_course_figure

    rows = [{"time_bin_start": 70 + 10 * i, "time_bin_end": 80 + 10 * i, "value": 0.3, "error": 0.05,
             "ceiling": 0.7, "ceiling_error": 0.02, "raw": 0.45} for i in range(5)]
    figure = time_course_figure(Score(value=0.3, error=0.05, ceiling=0.7, per_bin=rows),
                                title="rgc_shallow on ventral_embedded.V4-temporal")
    FigureCanvasAgg(figure).draw()
    raw, normalised = figure.axes
    assert raw.get_xlabel() == normalised.get_xlabel() == "time after stimulus onset (ms)"
    assert (raw.get_ylabel(), normalised.get_ylabel()) == ("Pearson r", "r$^2$ / ceiling")
    assert [t.get_text() for t in raw.get_legend().get_texts()] == ["model r", "ceiling (√ split-half r²)"]
    assert sorted(t.get_text() for t in normalised.get_legend().get_texts()) == ["ceiling", "score ± error"]
    assert overlapping_texts(figure) == []  # the suptitle covered the "raw" panel title before


def legends_clear_of_axes(figure):
    """True when no legend's box overlaps the data area of any axes (a legend inside covered the curves)."""
    renderer = figure.canvas.get_renderer()
    legends = [axis.get_legend() for axis in figure.axes if axis.get_legend() is not None]
    return bool(legends) and not any(legend.get_window_extent(renderer).overlaps(axis.get_window_extent(renderer))
                                     for legend in legends for axis in figure.axes)


def test_phenomenon_figures_keep_legends_off_the_data_and_leave_the_backend_alone(tmp_path):
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from neurozoo.retina.phenomena.adaptation import adaptation_figure, oms_figure, plot_oms
    from neurozoo.retina.phenomena.osr import OSRResult, fit_line, osr_call, osr_figure

    rng = np.random.default_rng(0)
    periods = np.array([6, 8, 10, 12])
    latencies = periods[None] + rng.normal(0, 0.3, (12, 4)) + 20
    slope, intercept, r2 = fit_line(periods, latencies)
    osr = OSRResult(periods, latencies, latencies, latencies, slope, intercept, r2, osr_call(slope, r2))
    t = np.arange(200)
    adaptation = {"time": t, "high": rng.random((12, 200)) * 30, "low": rng.random((12, 200)) * 10,
                  "adaptation_index": rng.random(12), "tau_high": rng.random(12) * 10}
    oms = {"oms_index": rng.random(12), "global": rng.random(12), "differential": rng.random(12),
           "object": rng.random(12)}
    backend = matplotlib.get_backend()
    for figure, y_label, x_label in (
            (osr_figure({"m": osr, "ground truth": osr}, title="osr"), "response centroid after last flash (ms)",
             "flash period (ms)"),
            (adaptation_figure({"m": adaptation, "ground truth": adaptation}, title="a"), "rate (spikes/s)",
             "time after contrast switch (ms)"),
            (oms_figure({"m": oms, "ground truth": oms}, title="o"), "response above grey (spikes/s)", "cell")):
        FigureCanvasAgg(figure).draw()
        assert figure.axes[0].get_ylabel() == y_label and figure.axes[1].get_xlabel() == x_label
        assert legends_clear_of_axes(figure)  # the OSR and adaptation legends covered the lines before
        assert overlapping_texts(figure) == []
    labels = [t.get_text() for t in adaptation_figure({"m": adaptation}).axes[0].get_legend().get_texts()]
    assert labels[-2:] == ["after switch to high", "after switch to low"]  # what solid and dotted mean
    assert plot_oms({"m": oms}, tmp_path / "oms.png").read_bytes()[:4] == b"\x89PNG"
    assert matplotlib.get_backend() == backend  # matplotlib.use("Agg") switched a notebook's backend before


def test_phenomenon_figures_number_cells_as_the_tables_name_them():
    """The held-out figure numbered cells from 1 (cell01, as the tables print), the phenomenon figures from 0."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from neurozoo.retina.phenomena.adaptation import adaptation_figure, gain_control_figure, oms_figure
    from neurozoo.retina.phenomena.osr import OSRResult, fit_line, osr_call, osr_figure

    periods = np.array([6, 8, 10, 12])
    latencies = np.stack([periods + 4.0, np.full(4, np.nan)])  # cell02 silent: no latency
    slope, intercept, r2 = fit_line(periods, latencies)
    osr = OSRResult(periods, latencies, latencies, latencies, slope, intercept, r2, osr_call(slope, r2))
    legend = [t.get_text() for t in osr_figure({"m": osr}).axes[0].get_legend().get_texts()]
    assert legend[:2] == ["cell01: slope 1.00, R$^2$ 1.00", "cell02: no response to time"]
    adaptation = {"time": np.arange(50), "high": np.ones((2, 50)), "low": np.ones((2, 50)),
                  "adaptation_index": np.array([0.5, 0.25]), "tau_high": np.ones(2)}
    legend = [t.get_text() for t in adaptation_figure({"m": adaptation}).axes[0].get_legend().get_texts()]
    assert legend[:2] == ["cell01: index 0.50", "cell02: index 0.25"]
    oms = {key: np.arange(3.0) for key in ("oms_index", "global", "differential", "object")}
    figure = oms_figure({"m": oms})
    FigureCanvasAgg(figure).draw()
    assert list(figure.axes[0].get_xticks()) == [1, 2, 3]
    assert [round(p.get_x() + p.get_width() / 2, 2) for p in figure.axes[0].patches[3:6]] == [1, 2, 3]
    nan = np.full(2, np.nan)
    gain = {"contrasts": (0.3, 1.0), "temporal_low": np.zeros((2, 5)), "nonlinearity_x": np.zeros(3),
            "gain_ratio": nan, "reason": ["silent", "silent"]}
    titles = [a.get_title() for a in gain_control_figure({"m": gain}).axes if a.get_title()]
    assert titles == ["m, cell01", "m, cell02"]


def test_similarity_figure_names_each_systems_time_axis_and_greys_bins_without_information():
    import xarray as xr
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from neurozoo.benchmarks.dynamics.plots import similarity_figure

    values = np.arange(12.0).reshape(3, 4) / 12
    values[0] = np.nan  # the model's first bin: nothing has reached the layer yet
    matrix = xr.DataArray(values, dims=("time_bin_a", "time_bin_b"),
                          coords={"time_bin_a": [0, 10, 20], "time_bin_b": [70, 80, 90, 100]})
    figure = similarity_figure({"cka": matrix, "rsa": matrix}, title="m ~ V4", axes=[("rgc:conv5", "ms"), ("neural:V4", "ms")])
    FigureCanvasAgg(figure).draw()
    axis = figure.axes[0]
    assert (axis.get_ylabel(), axis.get_xlabel()) == ("rgc:conv5: bin start (ms)", "neural:V4: bin start (ms)")
    assert [a.get_title() for a in figure.axes[:2]] == ["linear CKA", "RSA (Spearman r of RDMs)"]
    image = axis.get_images()[0]
    assert image.cmap.get_bad()[:3] == pytest.approx((0.85, 0.85, 0.85))  # NaN bins grey, explained in a note
    assert any("grey: a bin without information" in t.get_text() for t in figure.texts)
    assert overlapping_texts(figure) == []


def test_dynamics_figures_put_legends_beside_the_traces(monkeypatch, tmp_path):
    import xarray as xr
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from neurozoo.benchmarks.dynamics import plots

    drawn = []
    monkeypatch.setattr(plots, "save_figure", lambda figure, path: drawn.append(figure) or path)
    rng = np.random.default_rng(0)
    projection = xr.DataArray(rng.normal(size=(8, 20, 2)), dims=("stimulus_id", "time_bin", "pc"),
                              coords={"time_bin_start": ("time_bin", np.arange(20))})
    plots.plot_trajectories(projection, tmp_path / "t.png", labels=list("abcdabcd"), explained=[0.4, 0.3],
                            fixed_points=rng.normal(size=(3, 2)), stable=np.array([True, False, True]))
    figure = drawn[0]
    FigureCanvasAgg(figure).draw()
    assert figure.axes[1].get_xlabel() == "time (steps)"
    assert legends_clear_of_axes(figure)  # the input legend sat over the PC1 traces before
    assert overlapping_texts(figure) == []


def test_fit_curve_marks_the_kept_epoch_and_says_why_the_fit_stopped():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from neurozoo.retina.fit_figure import fit_curve_figure

    history = [{"epoch": e, "train_loss": 1.0 / (e + 1), "val_correlation": r}
               for e, r in enumerate([0.30, 0.42, 0.45, 0.44, 0.44])]
    figure = fit_curve_figure(history, best_epoch=2, epochs=40, patience=2, title="ln on toy.h5")
    FigureCanvasAgg(figure).draw()
    loss, validation = figure.axes
    assert (loss.get_xlabel(), validation.get_xlabel()) == ("epoch (from 1)", "epoch (from 1)")
    assert list(validation.get_lines()[0].get_xdata()) == [1, 2, 3, 4, 5]  # every epoch, 1-based
    # the legend names the index summary.json's best_epoch holds (from 0) beside the figure's own (from 1)
    assert [t.get_text() for t in validation.get_legend().get_texts()] == [
        "validation r", "best: epoch 3 (best_epoch 2 in summary.json, counted from 0), r 0.450 (kept)"]
    assert figure.get_suptitle() == "ln on toy.h5: early-stopped: 2 epochs without a gain in validation r"
    assert fit_curve_figure(history, 2, epochs=5, patience=2).get_suptitle().startswith("stopped at the epoch limit (5)")
    assert overlapping_texts(figure) == [] and legends_clear_of_axes(figure)


def test_fit_curve_shows_each_cells_held_out_r_against_its_oracle():
    import numpy as np
    import pandas as pd
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from neurozoo.retina.fit_figure import fit_curve_figure

    history = [{"epoch": e, "train_loss": 1.0 / (e + 1), "val_correlation": r} for e, r in enumerate([0.3, 0.4])]
    cells = pd.DataFrame({"correlation": [0.5, 0.2, 0.35, -0.1], "oracle": [0.8, 0.3, np.nan, 0.6],
                          "passes": [True, False, True, True]},
                         index=pd.Index(["cell01", "cell02", "cell03", "cell04"], name="cell"))
    figure = fit_curve_figure(history, best_epoch=1, epochs=40, patience=2, title="bncnn on own.h5", cells=cells)
    FigureCanvasAgg(figure).draw()
    panel = figure.axes[2]
    # the oracle as a bar per cell (none where it is NaN), the held-out r as a point: filled where the cell passes the
    # explainable-variance filter, open where it is left out of the medians
    assert [bar.get_height() for bar in panel.patches] == [0.8, 0.3, 0.0, 0.6]
    kept, dropped = panel.get_lines()[:2]
    assert list(kept.get_xdata()) == [0, 2, 3] and list(kept.get_ydata()) == [0.5, 0.35, -0.1]
    assert list(dropped.get_xdata()) == [1] and dropped.get_markerfacecolor() == "none"
    assert [t.get_text() for t in panel.get_xticklabels()] == ["cell01", "cell02", "cell03", "cell04"]
    assert [t.get_text() for t in panel.get_legend().get_texts()] == [
        "held-out r (explainable variance >= 0.15)", "held-out r (below: not in medians)",
        "oracle r (repeat reliability)"]
    assert overlapping_texts(figure) == [] and legends_clear_of_axes(figure)
    assert len(fit_curve_figure(history, 1, 40, 2).axes) == 2  # without held-out metrics, the learning curve alone


def test_training_curve_plots_every_logged_step_and_says_when_the_run_is_unfinished():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from neurozoo.convrnn.training.curve import training_curve_figure

    rows = [{"kind": "iter", "epoch": 1, "step": s, "loss": 7.0 - s * 0.1} for s in (1, 2, 3, 4)]
    rows += [{"kind": "epoch", "epoch": 1, "step": 4, "loss": 6.8, "top1": 1.0, "val_loss": 6.9, "val_top1": 0.5},
             {"kind": "iter", "epoch": 2, "step": 5, "loss": 6.4},
             {"kind": "epoch", "epoch": 2, "step": 5, "loss": 6.4, "top1": 2.0, "val_loss": 6.6, "val_top1": 1.5}]
    figure = training_curve_figure(rows, epochs=90, title="rgc_intermediate")
    FigureCanvasAgg(figure).draw()
    loss, top1 = figure.axes
    assert list(loss.get_lines()[0].get_xdata()) == [1, 2, 3, 4, 5] and list(loss.get_lines()[1].get_xdata()) == [4, 5]
    assert (loss.get_xlabel(), loss.get_ylabel()) == ("training step", "cross-entropy loss")
    assert (top1.get_xlabel(), top1.get_ylabel()) == ("epoch", "top-1 accuracy (%)")
    assert figure.get_suptitle() == "rgc_intermediate: in progress: epoch 2 of 90"  # never titled as finished
    assert training_curve_figure(rows, epochs=2).get_suptitle() == "finished, 2 epochs"
    assert overlapping_texts(figure) == [] and legends_clear_of_axes(figure)


def test_training_curve_shows_the_training_loss_of_a_run_shorter_than_its_step_logging():
    """A run of fewer steps than --log-every (50) logs no step row: the loss panel drew the validation loss alone,
    though every epoch row holds the epoch's mean training loss (the top-1 panel drew its training curve)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from neurozoo.convrnn.training.curve import training_curve_figure

    rows = [{"kind": "epoch", "epoch": e, "step": 6 * e, "loss": 1.1 - 0.05 * e, "top1": 30.0 + e,
             "val_loss": 1.09 - 0.01 * e, "val_top1": 33.0} for e in (1, 2, 3)]
    figure = training_curve_figure(rows, epochs=3, title="tiny.yaml")
    FigureCanvasAgg(figure).draw()
    loss = figure.axes[0]
    training = [line for line in loss.get_lines() if line.get_label() == "training (epoch mean)"]
    assert len(training) == 1
    assert list(training[0].get_xdata()) == [6, 12, 18]
    assert list(training[0].get_ydata()) == pytest.approx([1.05, 1.0, 0.95])
    assert overlapping_texts(figure) == [] and legends_clear_of_axes(figure)


def drawn_search_history(*trials):
    """The search's history figure, drawn, of a study of ``(state, value, intermediate values, user attrs)`` trials."""
    import optuna
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from optuna.distributions import FloatDistribution
    from optuna.trial import create_trial

    from neurozoo.convrnn.search.history_figure import search_history_figure

    study = optuna.create_study(direction="maximize")
    for state, value, steps, attrs in trials:
        study.add_trial(create_trial(state=state, value=value, params={"x": 0.5},
                                     distributions={"x": FloatDistribution(0, 1)}, intermediate_values=steps or {},
                                     user_attrs=attrs or {}))
    figure = search_history_figure(study.trials, title="tiny")
    FigureCanvasAgg(figure).draw()
    return figure


def test_search_history_shows_each_trial_the_best_so_far_and_unfinished_trials():
    from optuna.trial import TrialState

    figure = drawn_search_history((TrialState.COMPLETE, 10.0, {0: 10.0}, None), (TrialState.PRUNED, None, {0: 3.0}, None),
                                  (TrialState.COMPLETE, 8.0, {0: 8.0}, None), (TrialState.COMPLETE, 12.0, {0: 12.0}, None),
                                  (TrialState.RUNNING, None, None, None))
    axis = figure.axes[0]
    complete, pruned, best = axis.get_lines()
    assert list(complete.get_xdata()) == [0, 2, 3] and list(pruned.get_ydata()) == [3.0]
    assert list(best.get_ydata()) == [10.0, 10.0, 12.0]  # best so far after trials 0, 2, 3
    assert (axis.get_xlabel(), axis.get_ylabel()) == ("trial", "validation top-1 (%)")
    assert figure.get_suptitle() == "tiny: 3 complete, 1 pruned, 0 failed, 1 still running"
    assert overlapping_texts(figure) == [] and legends_clear_of_axes(figure)


def test_search_history_shows_diverged_trials_on_the_bottom_edge_not_as_pruned_values():
    """A diverged trial (pruned on a non-finite loss, user attribute ``diverged``) has no accuracy: it is drawn on
    the axis' bottom edge whatever it reported before diverging, and counted in the title."""
    from optuna.trial import TrialState

    figure = drawn_search_history(
        (TrialState.COMPLETE, 10.0, {0: 10.0}, None),
        (TrialState.PRUNED, None, None, {"diverged": {"epoch": 1, "error": "loss is nan at step 3"}}),
        (TrialState.PRUNED, None, {0: 20.0}, {"diverged": {"epoch": 2, "error": "loss is inf"}}),
        (TrialState.PRUNED, None, {0: 3.0}, None))
    axis = figure.axes[0]
    complete, pruned, diverged, best = axis.get_lines()
    assert list(pruned.get_xdata()) == [3] and list(pruned.get_ydata()) == [3.0]
    assert list(diverged.get_xdata()) == [1, 2] and diverged.get_label() == "diverged (pruned)"
    bottom = axis.transAxes.transform((0, 0))[1]
    assert all(y == pytest.approx(bottom) for _, y in diverged.get_transform().transform(diverged.get_xydata()))
    assert max(axis.get_ylim()) < 20.0  # the diverged trial's earlier value is not drawn
    assert figure.get_suptitle() == "tiny: 1 complete, 3 pruned (2 diverged), 0 failed"
    assert overlapping_texts(figure) == [] and legends_clear_of_axes(figure)

def test_layer_profile_rings_the_chosen_layer(monkeypatch, tmp_path):
    from neurozoo.benchmarks import plots

    drawn = []
    monkeypatch.setattr(plots, "save_figure", lambda figure, path: drawn.append(figure) or path)
    plots.plot_layer_profile({"conv4": 0.2, "conv5": 0.5, "conv6": 0.4}, tmp_path / "l.png", ylabel="raw r",
                             chosen="conv5")
    axis = drawn[0].axes[0]
    assert [t.get_text() for t in axis.get_legend().get_texts()] == ["chosen: conv5"]
    assert (axis.get_xlabel(), axis.get_ylabel()) == ("layer", "raw r")
    assert list(axis.get_lines()[-1].get_xdata()) == [1] and list(axis.get_lines()[-1].get_ydata()) == [0.5]


def test_gain_control_figure_shows_both_contrasts_per_cell_model_beside_truth():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from neurozoo.retina.phenomena.adaptation import gain_control_figure

    rng = np.random.default_rng(0)
    lags = np.arange(40)
    result = {"contrasts": np.array([0.3, 1.0]), "nonlinearity_x": np.linspace(-0.55, 0.55, 12),
              "gain_ratio": np.array([0.4, np.nan]), "latency_low": np.array([7.0, np.nan]),
              "latency_high": np.array([4.5, np.nan]), "adapting": np.array([True, False]),
              "reason": np.array(["", "STA not resolved (low contrast: peak 4.1 null sd)"], dtype=object)}
    for contrast, tau in (("low", 3.0), ("high", 1.5)):
        result[f"temporal_{contrast}"] = np.stack([(lags / tau) ** 3 * np.exp(-lags / tau), np.full(40, np.nan)])
        result[f"spatial_{contrast}"] = rng.random((2, 50, 50))
        result[f"nonlinearity_{contrast}"] = 20 + rng.random((2, 12)) * 10
    figure = gain_control_figure({"bncnn": result, "ground truth": result}, title="fast contrast adaptation")
    FigureCanvasAgg(figure).draw()
    axes = figure.axes
    assert len(axes) == 8  # 2 cells x (filters, nonlinearity) x (model, ground truth)
    assert [axes[i].get_ylabel() for i in range(4)] == ["filter (low peak = 1)", "rate (spikes/s)"] * 2
    assert [axes[4 + i].get_xlabel() for i in range(4)] == ["time before spike (ms)",
                                                            "filtered stimulus (low-contrast sd)"] * 2
    assert axes[0].get_title() == "bncnn, cell01: peak 70 -> 45 ms" and axes[1].get_title() == "gain ratio 0.40 (adapting)"
    assert axes[2].get_title().startswith("ground truth, cell01")
    low, high = axes[0].get_lines()[:2]
    assert np.abs(low.get_ydata()).max() == pytest.approx(1.0) and low.get_xdata()[-1] == 390  # lag 39 at 100 Hz
    np.testing.assert_allclose(axes[1].get_lines()[0].get_xdata()[[0, -1]], [-0.55 / 0.3, 0.55 / 0.3])
    # the unresolved cell shows its reason, no lines
    assert not axes[4].get_lines() and [t.get_text() for t in axes[4].texts] == [result["reason"][1]]
    legend, = figure.legends
    assert [t.get_text() for t in legend.get_texts()] == ["low contrast (sd 0.3)", "high contrast (sd 1)"]
    renderer = figure.canvas.get_renderer()
    assert not any(legend.get_window_extent(renderer).overlaps(axis.get_window_extent(renderer)) for axis in axes)
    assert overlapping_texts(figure) == []


def test_the_oms_figure_labels_the_first_cell_and_thins_ticks_over_twenty_cells():
    from neurozoo.retina.phenomena.adaptation import oms_figure

    rng = np.random.default_rng(0)
    for cells, expected in ((12, list(range(1, 13))), (45, [1, 10, 20, 30, 40])):  # numbered as cell01, cell02, ...
        oms = {key: rng.random(cells) for key in ("oms_index", "global", "differential", "object")}
        assert list(oms_figure({"m": oms}).axes[0].get_xticks()) == expected
