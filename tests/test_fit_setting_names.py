"""Fit settings a user names (a retina benchmark's ``fit_settings`` and ``score`` keywords, the embedded fit's keywords)
are checked by name before any work, by the one function retina.fit.checked_fit_settings: a misspelt ``epoch=3``
ended in a bare ``TypeError`` inside ``FitConfig`` (after the recording was made); it is now a one-line error naming
the setting, where it was given, the close match and the valid names. And a benchmark's ``fit_settings`` are refused
with an already fitted module, as its ``score`` keywords are, not dropped unsaid."""
import re

import pytest

from neurozoo import benchmarks
from neurozoo.datasets.errors import SpecError, UserFacingError

SIZES = {"n_train": 2500, "n_test": 400, "n_repeats": 5}
RETINA_BENCHMARKS = ("retina_embedded.whitenoise-heldout", "retina_embedded.naturalscene-heldout",
                     "retina_embedded.contrast-adaptation", "retina_embedded.oms", "retina_embedded.paired-flash",
                     "retina_embedded.frequency-doubling", "retina_embedded.osr", "retina_embedded.osr-mechanism")
VALID = "epochs, lr, batch_size, l2, l1, response, val_fraction, n_blocks, patience, min_delta, monitor"


@pytest.fixture
def no_work(monkeypatch):
    """Fail a test that makes or reads an embedded recording, or fits, before the settings are refused."""
    from neurozoo.datasets import synthetic_retina
    from neurozoo.retina import embedded_fit, fit

    def fail(*args, **kwargs):
        pytest.fail("worked before refusing the settings")

    monkeypatch.setattr(synthetic_retina, "load_embedded_retina", fail)
    monkeypatch.setattr(fit, "fit", fail)
    monkeypatch.setattr(fit, "evaluate", fail)
    monkeypatch.setattr(embedded_fit, "fit_dir", fail)


@pytest.mark.parametrize("name", RETINA_BENCHMARKS)
def test_a_misspelt_fit_setting_given_to_load_is_named_with_its_place_and_the_close_match(name, no_work):
    start = re.escape(f"benchmarks.load({name!r}, fit_settings=...): 'epoch' is not a fit setting; did you mean "
                      f"'epochs'? (the fit settings: {VALID}")
    with pytest.raises(SpecError, match=f"^{start}"):
        benchmarks.load(name, sizes=SIZES, fit_settings={"epoch": 3}).score("ln", progress=False)


@pytest.mark.parametrize("name", RETINA_BENCHMARKS)
def test_misspelt_fit_settings_given_to_score_are_named_with_their_place_and_close_matches(name, no_work):
    start = re.escape(f"{name}.score: 'epoch', 'lrr' are not fit settings; did you mean 'epochs', 'lr'? (the fit "
                      f"settings: {VALID}")
    with pytest.raises(SpecError, match=f"^{start}"):
        benchmarks.load(name, sizes=SIZES).score("ln", progress=False, epoch=3, lrr=0.1)


def test_a_score_argument_given_among_the_fit_settings_is_named_not_passed_twice(no_work):
    """``fit_settings={"seed": 1}`` ended in ``TypeError: got multiple values for keyword argument 'seed'``: the seed
    is the score's own argument."""
    with pytest.raises(SpecError, match=r"fit_settings=\.\.\.\): 'seed' is not a fit setting .*; give seed as an "
                                        r"argument of its own\)$"):
        benchmarks.load("retina_embedded.whitenoise-heldout", fit_settings={"seed": 1}).score("ln", progress=False)


def test_the_embedded_fit_names_a_misspelt_setting_before_making_the_recording(no_work):
    from neurozoo.retina.embedded_fit import fitted_embedded_model

    with pytest.raises(SpecError, match=r"^fit settings of ln on embedded:whitenoise: 'epoch' is not a fit setting; "
                                        r"did you mean 'epochs'\?"):
        fitted_embedded_model("ln", "whitenoise", progress=False, sizes=SIZES, epoch=1)


def test_zoo_score_prints_a_misspelt_fit_setting_of_a_registered_benchmark_on_one_line(no_work, capsys):
    """A benchmark registered with fit settings (a plugin's, say) and scored by ``zoo score``: one line, no
    traceback."""
    from neurozoo.benchmarks.retina import RetinaHeldoutBenchmark
    from neurozoo.leaderboard.cli import main

    name = "fitnames.retina-heldout"
    benchmarks.BENCHMARKS.add(name, lambda: RetinaHeldoutBenchmark("whitenoise", fit_settings={"epoch": 1}),
                              overwrite=True, family="retina", region="held-out responses")
    try:
        assert main(["score", "ln", name]) == 2
    finally:
        benchmarks.BENCHMARKS._entries.pop(name, None)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'epoch' is not a fit setting; did you mean 'epochs'?" in err


@pytest.mark.parametrize("name", RETINA_BENCHMARKS)
def test_a_benchmarks_fit_settings_are_refused_with_an_already_fitted_module(name, no_work):
    """Given a fitted module, a benchmark loaded with ``fit_settings`` scored it as it was and dropped them unsaid
    (an untrained module scored with ``epochs=3`` was not fitted at all); refused now, as its score keywords are."""
    from neurozoo.retina.models.ln import LN

    start = re.escape(f"{name}.score: fit_settings={{'epochs': 3}} (the benchmark's, given when it was loaded): fit "
                      "settings do not apply to an already fitted module (LN), which is scored as it is")
    with pytest.raises(UserFacingError, match=f"^{start}"):
        benchmarks.load(name, sizes=SIZES, fit_settings={"epochs": 3}).score(LN(n_cells=12), progress=False)


def test_the_retina_layers_heldout_benchmark_refuses_its_fit_settings_with_a_module(no_work):
    from neurozoo.retina.benchmark import HeldoutBenchmark
    from neurozoo.retina.models.ln import LN

    with pytest.raises(UserFacingError, match=r"^retina_embedded\.whitenoise-heldout\.score: lr=0\.1, "
                                              r"fit_settings=\{'epochs': 3\} \(the benchmark's"):
        HeldoutBenchmark("whitenoise", dict(SIZES), {"epochs": 3}).score(LN(n_cells=12), progress=False, lr=0.1)
