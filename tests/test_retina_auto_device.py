"""``device="auto"`` in the retina Python API (and a named image model's lookup): resolved where the device is first taken, by the commands' one rule
(``datasets.torch_devices.auto_device``), so a fit, a prediction and a retina benchmark's score run, and what they
record says ``cpu`` or ``cuda``, never ``auto``. Torch's own error (``Expected one of cpu, cuda, ... device string:
auto``) had ended them."""
import numpy as np
import pytest
import torch

from neurozoo import benchmarks
from neurozoo.datasets.retina_h5 import read_experiment
from neurozoo.datasets.synthetic_retina import load_embedded_retina
from neurozoo.datasets.torch_devices import auto_device
from neurozoo.retina.fit import create_model, fit, predict, provenance

SIZES = dict(n_train=2500, n_test=200, n_repeats=2)  # tests/test_retina_h5_benchmark.py's small recording
HERE = "cuda" if torch.cuda.is_available() else "cpu"
# one-epoch fits of a small recording: its few validation frames are warned of (retina.fit), as expected here
pytestmark = pytest.mark.filterwarnings("ignore:.*validation frames.*:UserWarning")


def test_one_rule_for_the_commands_the_trainer_and_the_retina_api():
    from neurozoo.convrnn.training import distributed

    assert distributed.auto_device is auto_device  # convrnn's name is the same function
    assert auto_device("auto") == HERE
    assert [auto_device(name) for name in ("cpu", "cuda", "cuda:1")] == ["cpu", "cuda", "cuda:1"]


def test_a_retina_fit_with_device_auto_runs_and_records_the_device_it_gave():
    path = load_embedded_retina("whitenoise", **SIZES)
    n_cells = len(read_experiment(path, "train").cells)
    results = {}
    for device in ("auto", HERE):
        torch.manual_seed(0)
        results[device] = fit(create_model("ln", n_cells=n_cells), path, epochs=1, max_steps_per_epoch=2,
                              device=device, progress=False)
    auto = results["auto"]
    assert auto.config.device == HERE and provenance(path, auto)["device"] == HERE
    assert provenance(path, auto)["settings"] == provenance(path, results[HERE])["settings"]
    tolerance = 0 if HERE == "cpu" else 1e-5  # the CPU's sums are deterministic; a GPU's may not be, by rounding
    for a, b in zip(auto.model.state_dict().values(), results[HERE].model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=tolerance)  # the same fit as on the device named
    stimulus = read_experiment(path, "test").stimulus[:60]
    rates = predict(auto.model, stimulus, device="auto")
    assert rates.shape == (n_cells, 21)
    np.testing.assert_allclose(rates, predict(auto.model, stimulus, device=HERE), rtol=0, atol=tolerance)


def test_a_retina_benchmark_scored_with_device_auto_records_the_device_and_shares_the_fit_cache():
    bench = benchmarks.load("retina_embedded.whitenoise-heldout", sizes=dict(SIZES), fit_settings={"epochs": 1})
    auto = bench.score("ln", device="auto", progress=False, refit=True)
    assert auto.provenance["device"] == HERE and auto.provenance["fit_origin"] == "fitted"
    assert auto.to_record("ln", bench.identifier).device == HERE
    # the fit cache's key holds no device: auto, resolved before keying, names the folder the device it gives names
    named = bench.score("ln", device=HERE, progress=False)
    assert named.provenance["fit_dir"] == auto.provenance["fit_dir"] and named.provenance["fit_origin"] == "cached"
    assert named.value == pytest.approx(auto.value)


def test_a_phenomenon_benchmark_fitting_a_registered_model_with_device_auto_records_the_device():
    sizes = {"n_train": 2500, "n_test": 400, "n_repeats": 5}  # tests/test_phenomena_benchmarks.py's
    score = benchmarks.load("retina_embedded.paired-flash", sizes=sizes,
                            fit_settings={"epochs": 1}).score("ln", device="auto", progress=False)
    assert score.provenance["device"] == HERE and score.to_record("ln", "retina_embedded.paired-flash").device == HERE


def test_a_named_image_model_given_device_auto_is_built_on_the_device_it_gives():
    """The neural side's lookup (``benchmarks.BrainModel``, ``zoo score``'s) took ``auto`` to torch too."""
    from neurozoo.benchmarks.brain_model import BrainModel
    from neurozoo.benchmarks.named_models import resolve_model

    model = resolve_model("rgc_shallow", device="auto", overrides={"width_multiplier": 0.0625})
    assert {p.device.type for p in model.parameters()} == {HERE}
    brain = BrainModel("rgc_shallow", device="auto", overrides={"width_multiplier": 0.0625})
    assert {p.device.type for p in brain.model.parameters()} == {HERE}
