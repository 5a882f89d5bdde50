"""Plots are written as PNG files with the expected content size."""
import numpy as np

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
