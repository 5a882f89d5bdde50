import numpy as np
import pytest

from neurozoo import benchmarks
from neurozoo.benchmarks.phenomena import agreement

NAMES = ("retina_embedded.contrast-adaptation", "retina_embedded.oms", "retina_embedded.paired-flash",
         "retina_embedded.frequency-doubling")
DEFINED_CELLS = {"contrast-adaptation": 12, "oms": 6, "paired-flash": 3, "frequency-doubling": 6}
SIZES = {"n_train": 2500, "n_test": 400, "n_repeats": 5}


def test_agreement_known_values():
    result = agreement([0.5, -0.1, 0.2, np.nan, 0.3], [0.4, 0.1, 0.2, 0.1, np.nan])
    # cell 0: 1 - 0.1/0.4; cell 1: wrong sign; cell 2: exact; cell 3: no model index; cell 4: truth undefined
    assert result["value"] == pytest.approx((0.75 + 0 + 1 + 0) / 4)
    assert result["same_sign"] == pytest.approx(2 / 4)
    assert result["cells"][4]["agreement"] is None and result["cells"][3]["model_index"] is None


def _linear_filter(movie):
    """A fixed linear filter on each cell's centre pixel plus a baseline: no adaptation, no surround."""
    from neurozoo.datasets.synthetic_retina import default_retina

    positions = default_retina().positions.astype(int)
    drive = movie[:, positions[:, 0], positions[:, 1]].T  # (cells, T)
    kernel = np.exp(-np.arange(10) / 3.0)
    return 10.0 + np.stack([np.convolve(d, kernel)[:len(d)] for d in drive])


def test_phenomena_benchmarks_registered_and_scored(tmp_path, monkeypatch):
    from neurozoo.datasets.synthetic_retina import default_retina

    monkeypatch.setenv("NEUROZOO_CACHE", str(tmp_path))
    for name in NAMES:
        assert name in benchmarks.list_benchmarks()
        versioned = {"version": 2} if name.endswith("contrast-adaptation") else {}  # its index version 2
        assert benchmarks.BENCHMARKS.get(name).tags == {"family": "retina", "region": "phenomena", **versioned}
        bench = benchmarks.load(name, sizes=SIZES, fit_settings={"epochs": 1})
        assert bench.identifier == name
        score = bench.score("ln", progress=False)
        assert np.isfinite(score.value) and 0.0 <= score.value <= 1.0 and 0.0 <= score.raw <= 1.0
        assert len(score.per_bin) == 12 and {"cell", "model_index", "truth_index", "agreement"} <= set(score.per_bin[0])
        p = score.provenance
        assert p["data_sha256"] and p["seed"] == 0 and p["model"] == "ln" and p["settings"]["epochs"] == 1
        assert len(p["settings"]["model_index"]) == 12 and len(p["settings"]["truth_index"]) == 12
        assert p["settings"]["analysis"] == bench.settings() and p["duration_s"] > 0
        assert score.to_record("ln", name).settings["phenomenon"] == name.split(".")[1]

        # known answers: the ground-truth circuit itself scores 1; a fixed linear filter has neither phenomenon (a
        # module is scored as it is, by a benchmark loaded without fit settings: they are refused with it)
        bench = benchmarks.load(name, sizes=SIZES)
        truth = bench.score(default_retina(), progress=False)
        assert truth.value == pytest.approx(1.0) and truth.raw == 1.0
        defined = [row["truth_index"] for row in truth.per_bin if row["truth_index"] is not None]
        # the circuit adapts in every cell; it is OMS in every cell that answers the jitter (the ON and OFF cells);
        # its OFF cells' second response is depressed; its ON and OFF cells double the grating's frequency
        assert len(defined) == DEFINED_CELLS[name.split(".")[1]] and all(v > 0 for v in defined)
        linear = bench.score(_linear_filter, progress=False)
        assert linear.value < 0.1
        if name == "retina_embedded.contrast-adaptation":  # index version 2: no credit at all for a fixed filter
            assert linear.value < 1e-9 and p["settings"]["analysis"]["index_version"] == 2


PHENOMENON_BENCHMARKS = NAMES + ("retina_embedded.osr", "retina_embedded.osr-mechanism")


@pytest.mark.parametrize("name", PHENOMENON_BENCHMARKS)
@pytest.mark.parametrize("option", [{"layers": ["conv1"]}, {"max_features": 20}, {"cache": False}])
def test_the_phenomenon_benchmarks_refuse_the_neural_benchmarks_options_before_any_fit(name, option, monkeypatch):
    """The phenomenon and OSR benchmarks' score handed layers, max_features and cache to the fit as settings, which
    ended in a TypeError inside the fit's FitConfig; they are refused now, naming the option, before any fit (as the
    held-out benchmark refuses them, with the same helper)."""
    import re

    from neurozoo.datasets.errors import UserFacingError
    from neurozoo.retina import embedded_fit

    monkeypatch.setattr(embedded_fit, "fitted_embedded_model", lambda *a, **k: pytest.fail("fitted before refusing"))
    (key, value), = option.items()
    start = re.escape(f"{name}.score: {key}={value!r}: the neural benchmarks' options")
    with pytest.raises(UserFacingError, match=f"^{start} .* do not apply to a retina benchmark"):
        benchmarks.load(name, sizes=SIZES).score("ln", progress=False, **option)


@pytest.mark.parametrize("name", PHENOMENON_BENCHMARKS)
def test_the_phenomenon_benchmarks_refuse_fit_settings_with_an_already_fitted_module(name):
    """Given a fitted module, the phenomenon and OSR benchmarks scored it as it was and dropped the fit overrides
    unsaid (``epochs=5`` changed nothing); they are refused now, naming them, before the module is analysed."""
    from neurozoo.datasets.errors import UserFacingError
    from neurozoo.datasets.synthetic_retina import default_retina

    with pytest.raises(UserFacingError, match=rf"^{name}\.score: epochs=5, lr=0\.1: fit settings do not apply to an "
                                              r"already fitted module \(GroundTruthRetina\)"):
        benchmarks.load(name, sizes=SIZES).score(default_retina(), progress=False, epochs=5, lr=0.1)
