"""docs/figures/retina/oms_teacher.py: the noise-free target of the teacher-student capacity test (docs/retina.md,
"Teacher-student follow-up") is the expectation of the recorded one, and the recording it makes is unattached to
its file."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "figures" / "retina" / "oms_teacher.py"


@pytest.fixture(scope="module")
def teacher():
    spec = importlib.util.spec_from_file_location("oms_teacher", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FixedRates:
    """A circuit whose expected rates are given: two cells, one constant, one stepping from 5 to 80 spikes/s."""

    def __init__(self, n_frames: int):
        self.values = np.stack([np.full(n_frames, 20.0), np.where(np.arange(n_frames) < n_frames // 2, 5.0, 80.0)])

    def rates(self, stimulus):
        assert len(stimulus) == self.values.shape[1]
        return self.values.astype(np.float32)


def _recording(n_frames: int, responses: dict):
    from neurozoo.datasets.retina_h5 import Recording

    stimulus = np.zeros((n_frames, 50, 50), np.float32)
    return Recording(path=Path("made-up.h5"), split="train", cells=["cell01", "cell02"],
                     time=np.arange(n_frames) / 100.0, responses=responses, _stimulus=stimulus)


def test_expected_target_is_the_mean_of_the_recorded_target(teacher):
    from neurozoo.datasets.retina_h5 import firing_rates

    n = 120
    circuit = FixedRates(n)
    target = teacher.expected_target(_recording(n, {}), circuit)
    # the constant cell away from the zero-padded edges (4 sd of 1 frame): its rate, exactly
    np.testing.assert_allclose(target["firing_rate_10ms"][0, 5:-5], 20.0, rtol=1e-5)
    np.testing.assert_allclose(target["binned"], circuit.values / 100.0, rtol=1e-6)
    # the recorded target (Poisson counts, smoothed as generate_recording smooths them) averages to it
    rng = np.random.default_rng(0)
    draws = rng.poisson(circuit.values / 100.0, size=(4000,) + circuit.values.shape)
    mean = firing_rates(draws, rule="centered")["firing_rate_10ms"].mean(0)
    np.testing.assert_allclose(mean, target["firing_rate_10ms"], atol=2.0)  # sd of the mean: at most 0.5 spikes/s
    assert abs(mean[1, 80:110].mean() - 80.0) < 1.0 and abs(target["firing_rate_10ms"][1, 80:110].mean() - 80.0) < 1e-3


def test_noise_free_recording_replaces_the_responses_and_drops_the_file(teacher):
    n = 60
    recorded = _recording(n, {"firing_rate_10ms": np.ones((2, n), np.float32)})
    made = teacher.noise_free(recorded, FixedRates(n))
    assert made.path is None  # a fit of it records no data hash: never taken for a fit of the file's counts
    assert made.stimulus is recorded.stimulus
    assert set(made.responses) == {"firing_rate_5ms", "firing_rate_10ms", "firing_rate_20ms", "binned"}
    assert made.responses["firing_rate_10ms"][0, 10] == pytest.approx(20.0, rel=1e-5)
    assert recorded.responses["firing_rate_10ms"][0, 10] == 1.0  # the recording given is left as it was


@pytest.mark.filterwarnings("ignore:a recording held in memory")  # 102 validation frames: enough here
def test_keep_last_epoch_calibrates_the_last_epochs_weights(teacher, tmp_path):
    import torch

    from neurozoo.retina.fit import create_model, fit

    n = 600
    rng = np.random.default_rng(0)
    recording = _recording(n, {"firing_rate_10ms": rng.gamma(2.0, 5.0, (2, n)).astype(np.float32)})
    recording = teacher.dataclasses.replace(recording, path=None,
                                            _stimulus=rng.normal(0, 1, (n, 50, 50)).astype(np.float32))
    settings = {"epochs": 2, "patience": 2, "max_steps_per_epoch": 2, "lr": 0.05, "n_blocks": 2, "val_fraction": 0.3}
    torch.manual_seed(0)
    best = fit(create_model("bncnn", n_cells=2), recording, out=tmp_path, seed=0, progress=False, resume=False,
               **settings)
    last = teacher.keep_last_epoch(recording, tmp_path, 0, settings)
    assert len(last.history) == 2 and last.best_epoch == 1  # no epoch run again; the last one kept
    assert last.history == best.history
    saved = torch.load(tmp_path / "checkpoint.pt", map_location="cpu")
    weights = torch.load(tmp_path / "last" / "model.pt", map_location="cpu")
    for key, value in saved["model"].items():  # the last epoch's weights, all but the output calibration's two
        if key not in ("bn3.weight", "bn3.bias"):
            assert torch.equal(weights[key], value), key
    assert not torch.equal(weights["bn3.weight"], saved["model"]["bn3.weight"])  # calibrated
    kept = torch.load(tmp_path / "model.pt", map_location="cpu")  # the fit's own model.pt: still its best epoch's
    assert all(torch.equal(kept[k], v) for k, v in best.model.state_dict().items())
