import json

import numpy as np
import pytest

from neurozoo.retina.phenomena.osr import fit_line, omitted_stimulus_response, osr_call, plot_osr


def test_fit_line_and_call_on_known_lines():
    periods = np.array([2, 3, 4, 5])
    slope, intercept, r2 = fit_line(periods, np.stack([periods + 6, 2 * periods, np.full(4, 7.0), [3, 9, 2, 8]]))
    np.testing.assert_allclose(slope[:3], [1, 2, 0]) and np.testing.assert_allclose(intercept[:2], [6, 0], atol=1e-12)
    assert r2[0] == pytest.approx(1.0) and np.isnan(r2[2]) and r2[3] < 0.5
    np.testing.assert_array_equal(osr_call(slope, r2), [True, False, False, False])
    assert osr_call([0.5, 1.5, 0.49], [0.5, 0.9, 1.0]).tolist() == [True, True, False]


def _omission_detector(delay=4):
    """Fires ``delay`` frames after a flash was due but did not come (it knows the period from the last two
    flashes): latency from the last flash = period + delay, a slope of exactly 1."""
    def respond(movie):
        dark = movie[:, 0, 0] < 0
        onsets = np.flatnonzero(dark & ~np.concatenate([[False], dark[:-1]]))
        out = np.zeros((2, len(movie)))
        out[1, :] = 0.5
        if len(onsets) >= 2:
            due = onsets[-1] + (onsets[-1] - onsets[-2])
            if due + delay < len(movie):
                out[0, due + delay] = 10.0
        for t in onsets:  # cell 1 answers each flash after 2 frames: no OSR
            out[1, t + 2] = 5.0
        return out
    return respond


def test_osr_known_answers():
    result = omitted_stimulus_response(_omission_detector(delay=4), periods=(3, 4, 5, 6))
    np.testing.assert_array_equal(result.latencies[0], [7, 8, 9, 10])
    np.testing.assert_array_equal(result.latencies[1], [2, 2, 2, 2])
    assert result.slope[0] == pytest.approx(1.0) and result.r2[0] == pytest.approx(1.0)
    assert result.is_osr.tolist() == [True, False]
    json.dumps(result.summary())


def test_ground_truth_circuit_on_cells_show_the_osr_and_off_cells_do_not(tmp_path):
    from neurozoo.datasets.synthetic_retina import default_retina

    circuit = default_retina()
    result = omitted_stimulus_response(circuit)  # the reference protocol: periods 2-5 frames
    types = np.array(circuit.cell_types)
    assert result.is_osr[types == "on"].all()
    assert not result.is_osr[types == "off"].any()
    assert (0.5 <= result.slope[types == "on"]).all() and (result.slope[types == "on"] <= 1.5).all()
    figure = plot_osr({"ground truth": result, "again": result}, tmp_path / "osr.png")
    assert figure.stat().st_size > 10_000 and figure.read_bytes()[:4] == b"\x89PNG"


def test_probe_osr_cli_with_checkpoint(tmp_path, capsys):
    import torch

    from neurozoo.leaderboard.cli import main as zoo
    from neurozoo.retina.fit import create_model

    torch.manual_seed(0)
    weights = tmp_path / "model.pt"
    torch.save(create_model("bncnn", n_cells=12).state_dict(), weights)
    out = tmp_path / "probe"
    assert zoo(["probe", "osr", "bncnn", "--checkpoint", str(weights), "--out", str(out), "--periods", "2", "3", "4"]) == 0
    record = json.loads((out / "osr.json").read_text())
    assert record["model_osr"]["periods"] == [2, 3, 4] and len(record["model_osr"]["slope"]) == 12
    assert record["truth_osr"]["n_osr_cells"] >= 3 and 0.0 <= record["comparison"]["value"] <= 1.0  # the ON cells
    assert (out / "osr.png").read_bytes()[:4] == b"\x89PNG"
    assert "ground truth" in capsys.readouterr().out

    torch.save(create_model("bncnn", n_cells=3).state_dict(), tmp_path / "wrong.pt")
    assert zoo(["probe", "osr", "bncnn", "--checkpoint", str(tmp_path / "wrong.pt"), "--out", str(out)]) == 2
    assert "wrong.pt" in capsys.readouterr().err
    assert zoo(["probe", "osr", "nosuchmodel", "--checkpoint", str(weights)]) == 2


def test_osr_benchmark_known_answers():
    from neurozoo import benchmarks
    import neurozoo.benchmarks.osr  # noqa: F401  (registers retina_embedded.osr)
    from neurozoo.datasets.synthetic_retina import default_retina

    assert "retina_embedded.osr" in benchmarks.list_benchmarks()
    bench = benchmarks.load("retina_embedded.osr", sizes=dict(n_train=400, n_test=100, n_repeats=2))
    perfect = bench.score(default_retina())  # the ground truth scored against itself
    assert perfect.value == pytest.approx(1.0) and perfect.raw == pytest.approx(1.0)
    assert perfect.provenance["data_sha256"] and perfect.per_bin[0]["truth_slope"] > 0.5

    def no_osr(movie):  # leaky integrator of darkness: peaks as the last flash ends, whatever the period
        out, level = np.zeros((12, len(movie))), 0.0
        for t, value in enumerate(np.maximum(-movie[:, 0, 0], 0)):
            level = 0.8 * level + value
            out[:, t] = level
        return out

    none = bench.score(no_osr)
    assert none.value == 0.0 and none.raw == 0.0 and not none.provenance["settings"]["model_shows_osr"]
    record = none.to_record("no_osr", bench.identifier)
    assert record.benchmark == "retina_embedded.osr" and record.per_bin
