"""``retina_h5.heldout``: the retina held-out benchmark on a deep-retina HDF5 file of one's own.

The file is a copy of a small embedded recording (2500 training frames, the size test_reproduce fits), so the known
answer is the embedded benchmark's on the same bytes; fits are one epoch."""
import hashlib
import json
import re
import shutil

import h5py
import pytest

from neurozoo import benchmarks
from neurozoo.benchmarks.records import ResultsStore
from neurozoo.benchmarks.retina import RetinaFileHeldoutBenchmark, RetinaHeldoutBenchmark
from neurozoo.datasets.errors import DataError
from neurozoo.leaderboard.cli import main
from neurozoo.leaderboard.zoo import default_benchmarks

SIZES = dict(n_train=2500, n_test=200, n_repeats=2)
FILE_BENCHMARK = RetinaFileHeldoutBenchmark.identifier


@pytest.fixture
def own_file(tmp_path):
    from neurozoo.datasets.synthetic_retina import load_embedded_retina

    return shutil.copy(load_embedded_retina("whitenoise", **SIZES), tmp_path / "mine.h5")


@pytest.fixture
def one_epoch():
    """``retina_h5.heldout`` fitting one epoch, for ``zoo score`` and ``zoo reproduce`` (which load it by name)."""
    entry = benchmarks.BENCHMARKS.get(FILE_BENCHMARK)
    benchmarks.BENCHMARKS.add(FILE_BENCHMARK, lambda: RetinaFileHeldoutBenchmark(fit_settings={"epochs": 1}),
                              overwrite=True, **entry.tags)
    yield
    benchmarks.BENCHMARKS._entries[FILE_BENCHMARK] = entry


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_retina_packages_name_of_the_file_benchmark_is_the_registered_one():
    """retina.benchmark writes the name out (the retina package imports nothing of the benchmarks)."""
    from neurozoo.retina.benchmark import FILE_HELDOUT

    from neurozoo import benchmarks

    assert FILE_HELDOUT == FILE_BENCHMARK and FILE_BENCHMARK in benchmarks.list_benchmarks()


def test_own_file_scores_as_the_embedded_benchmark_on_the_same_bytes(own_file, tmp_path):
    embedded = RetinaHeldoutBenchmark("whitenoise", sizes=dict(SIZES), fit_settings={"epochs": 1}).score(
        "ln", progress=False)
    score = benchmarks.load(FILE_BENCHMARK, fit_settings={"epochs": 1}).score("ln", own_file, progress=False)
    assert (score.value, score.error, score.ceiling) == (embedded.value, embedded.error, embedded.ceiling)
    assert score.per_bin == embedded.per_bin and len(score.per_bin) == 12
    provenance = score.provenance
    assert provenance["data_sha256"] == _sha256(own_file) and provenance["data_path"] == str(own_file)
    assert provenance["benchmark"] == FILE_BENCHMARK and provenance["seed"] == 0
    assert provenance["settings"]["data"] == str(own_file) and provenance["settings"]["epochs"] == 1
    assert provenance["settings"]["summary"]["n_cells"] == 12
    # cached with the fits, by the file's stem and sha256, never beside the user's file
    assert f"ln-mine-{_sha256(own_file)[:12]}-seed0-" in provenance["fit_dir"]
    assert not (tmp_path / "fits").exists()
    # the fit's weights, given as a checkpoint, score the same (a model built for the file's cells)
    db = f"sqlite:///{tmp_path / 'r.sqlite'}"
    assert main(["score", "ln", FILE_BENCHMARK, "--data", str(own_file), "--checkpoint",
                 f"{provenance['fit_dir']}/model.pt", "--db", db, "--out", str(tmp_path / "out")]) == 0
    record = ResultsStore(db).records()[-1]
    assert (record.model, record.value, record.ceiling) == ("ln@model.pt", score.value, score.ceiling)


def test_zoo_score_stores_a_record_that_zoo_reproduce_reruns_and_checks_the_file(own_file, tmp_path, one_epoch,
                                                                                capsys):
    db = f"sqlite:///{tmp_path / 'r.sqlite'}"
    assert main(["score", "ln", FILE_BENCHMARK, "--data", str(own_file), "--db", db, "--out", str(tmp_path / "out")]) == 0
    assert re.search(r"ln on retina_h5\.heldout: 0\.\d{4} \(\+- 0\.\d{3}, ceiling 0\.781\)", capsys.readouterr().out)
    record = ResultsStore(db).records()[-1]
    assert record.benchmark == FILE_BENCHMARK and record.data_sha256 == _sha256(own_file)
    assert record.settings["rerun"]["data"] == str(own_file) and record.settings["epochs"] == 1
    assert main(["reproduce", str(record.id), "--db", db]) == 0
    assert "reproduced: bit-identical" in capsys.readouterr().out
    with h5py.File(own_file, "a") as f:  # the same recording, other bytes: not the data that was scored
        f.attrs["note"] = "edited"
    assert main(["reproduce", str(record.id), "--db", db]) == 1
    assert "differs: data_sha256" in capsys.readouterr().out


def test_heldout_history_observed_scores_the_glm_as_evaluate_does_in_a_record_of_its_own(own_file, tmp_path, one_epoch,
                                                                                      monkeypatch, capsys):
    """The held-out retina benchmarks scored a spike-history model (the GLM) on its own simulated spikes only:
    deep-retina's mode, the observed counts one frame ahead (zoo fit --heldout-history observed, retina.fit.evaluate's
    heldout_history), could not be asked of them. zoo score --heldout-history observed (the API's heldout_history)
    now scores the same cached fit as evaluate does in that mode; the record keeps the mode (settings.heldout_history,
    settings.rerun, which zoo reproduce reruns) under its own model name, so that it never shares a row or a reused
    record with the simulated score, which keeps its number. A model without spike history is refused before any
    fit, and a benchmark that is not a held-out one refuses the option."""
    from pathlib import Path

    import torch

    from neurozoo.retina import embedded_fit
    from neurozoo.retina.fit import create_model, evaluate

    db, out = f"sqlite:///{tmp_path / 'r.sqlite'}", str(tmp_path / "out")
    score = ["score", "glm", FILE_BENCHMARK, "--data", str(own_file), "--db", db, "--out", out]
    assert main(score) == 0
    assert main([*score, "--heldout-history", "observed"]) == 0
    assert re.search(r"^glm \(observed spike history\) on retina_h5\.heldout: 0\.\d{4} ", capsys.readouterr().out, re.M)
    simulated, observed = ResultsStore(db).records()
    assert (simulated.model, observed.model) == ("glm", "glm (observed spike history)")
    assert (simulated.settings["heldout_history"], observed.settings["heldout_history"]) == ("simulated", "observed")
    assert "heldout_history" not in simulated.settings["rerun"]
    assert observed.settings["rerun"]["heldout_history"] == "observed"
    # the API: the same fit (read from the fit cache), scored as evaluate scores its weights in that mode
    api = RetinaFileHeldoutBenchmark(fit_settings={"epochs": 1}).score("glm", own_file, progress=False,
                                                                      heldout_history="observed")
    assert (api.value, api.per_bin) == (observed.value, observed.per_bin)
    model = create_model("glm", n_cells=12)
    model.load_state_dict(torch.load(Path(api.provenance["fit_dir"]) / "model.pt"))
    expected = evaluate(model, own_file, heldout_history="observed")
    assert [row["correlation"] for row in observed.per_bin] == pytest.approx(list(expected["correlation"]), rel=1e-6)
    assert abs(observed.value - simulated.value) > 1e-3
    # the embedded benchmark on the same bytes: the same number, the mode in its settings
    embedded = RetinaHeldoutBenchmark("whitenoise", sizes=dict(SIZES), fit_settings={"epochs": 1}).score(
        "glm", progress=False, heldout_history="observed")
    assert (embedded.value, embedded.provenance["settings"]["heldout_history"]) == (api.value, "observed")
    assert main(["reproduce", str(observed.id), "--db", db]) == 0
    assert "reproduced: bit-identical" in capsys.readouterr().out
    # refused before any fit: a model without spike history, and a benchmark other than a held-out one
    monkeypatch.setattr(embedded_fit, "fitted_file_model", lambda *args, **kwargs: pytest.fail("fitted"))
    with pytest.raises(DataError, match=r"^heldout_history='observed': the retina model 'ln' has no spike history"):
        benchmarks.load(FILE_BENCHMARK).score("ln", own_file, heldout_history="observed")
    assert main(["score", "ln", FILE_BENCHMARK, "--data", str(own_file), "--db", db, "--out", out,
                 "--heldout-history", "observed"]) == 2
    assert ("zoo score: error: --heldout-history observed: the retina model 'ln' has no spike history to feed"
            in capsys.readouterr().err)
    assert main(["score", "glm", "retina_embedded.osr", "--db", db, "--out", out, "--heldout-history", "observed"]) == 2
    assert ("zoo score: error: --heldout-history applies to the held-out retina benchmarks (retina_embedded."
            in capsys.readouterr().err)
    assert len(ResultsStore(db).records()) == 2


def test_bad_own_file_and_missing_data_are_named(own_file, tmp_path, capsys):
    with h5py.File(own_file, "a") as f:
        del f["test/repeats"]
    bench = benchmarks.load(FILE_BENCHMARK)
    with pytest.raises(DataError, match=re.escape(f"{own_file}: dataset test/repeats: missing")) as error:
        bench.score("ln", own_file, progress=False)
    assert "firing_rate_10ms (n_repeats, 12, 200)" in str(error.value)
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'none.h5'}: no such experiment file")):
        bench.score("ln", tmp_path / "none.h5", progress=False)
    assert main(["score", "ln", FILE_BENCHMARK]) == 2
    assert "retina_h5.heldout scores on your own data: give it with --data FILE.h5" in capsys.readouterr().err
    assert main(["score", "ln", "retina_embedded.whitenoise-heldout", "--data", str(own_file)]) == 2
    assert "--data applies to the benchmarks on your own data" in capsys.readouterr().err
    assert FILE_BENCHMARK not in default_benchmarks()  # zoo run's jobs have no file of the user's


def test_a_recording_without_a_scorable_cell_is_refused_before_the_fit(own_file, tmp_path, capsys):
    """Repeats that share nothing (each trial independent noise about the same mean) leave no cell's explainable
    variance at 0.15: the score would be NaN, and was printed and recorded as such after the fit."""
    import numpy as np

    with h5py.File(own_file, "a") as f:
        names = sorted(f["test/repeats"])
        rng = np.random.default_rng(0)
        for name in names:
            trials = f[f"test/repeats/{name}"]
            mean = float(np.mean(trials))
            trials[...] = rng.exponential(mean, trials.shape)
    db = f"sqlite:///{tmp_path / 'scores.sqlite'}"
    assert main(["score", "ln", FILE_BENCHMARK, "--data", str(own_file), "--db", db]) == 2
    err = capsys.readouterr().err
    assert f"{own_file}: dataset test/repeats: no cell's explainable variance reaches 0.15" in err
    assert re.search(r"\(cell01 -?0\.\d{3}, cell02 .*, cell12 -?0\.\d{3}\)", err)
    assert not (tmp_path / "scores.sqlite").exists() or not ResultsStore(db).records()


def test_a_checkpoints_record_names_the_recording_it_was_fitted_to(own_file, tmp_path, capsys):
    """zoo score --checkpoint recorded the weights' path and sha256 but not the recording they were fitted to: weights
    fitted to one file and scored on another gave a record like a fit to the file scored, and nothing was said."""
    out, db = tmp_path / "fit", f"sqlite:///{tmp_path / 'r.sqlite'}"
    assert main(["fit", "ln", "--data", str(own_file), "--out", str(out), "--epochs", "1", "--quiet"]) == 0
    other = shutil.copy(own_file, tmp_path / "other.h5")
    with h5py.File(other, "a") as f:  # another recording's bytes (here the same cells)
        f.attrs["note"] = "another session"
    capsys.readouterr()
    for data in (own_file, other):
        assert main(["score", "ln", FILE_BENCHMARK, "--data", str(data), "--checkpoint", str(out / "model.pt"),
                     "--db", db]) == 0
        note = capsys.readouterr().err
        if data == own_file:
            assert "note:" not in note
        else:
            assert (f"note: {out / 'model.pt'} was fitted to {own_file} (sha256 {_sha256(own_file)[:12]}; "
                    f"{out / 'summary.json'}), not to the recording scored ({other}, sha256 {_sha256(other)[:12]})") in note
    for record, scored in zip(ResultsStore(db).records(), (own_file, other)):
        assert record.data_sha256 == _sha256(scored)
        fitted_to = record.settings["fitted_to"]
        assert fitted_to["data_sha256"] == _sha256(own_file) and fitted_to["data_absolute"] == str(own_file)


def test_one_zoo_fit_or_score_reads_checks_and_warns_of_a_file_once(own_file, tmp_path, monkeypatch, recwarn):
    """checked_experiment ran twice in one `zoo score --checkpoint` (for the model's cells, then in the benchmark), and
    `zoo fit`'s held-out evaluation read the test split again: the file was opened and checked each time (10 and 7
    opens) and its warnings printed twice. Each run (the caches cleared between them, as a new process has them) now
    opens it once per split, once for the stimuli's comparison and once for the fit's training movie."""
    import numpy as np

    from neurozoo.datasets import retina_h5

    with h5py.File(own_file, "a") as f:  # another contrast in the test movie, and two cells' repeats swapped
        f["test/stimulus"][...] = np.asarray(f["test/stimulus"]) * 3
        first, second = np.asarray(f["test/repeats/cell01"]), np.asarray(f["test/repeats/cell02"])
        f["test/repeats/cell01"][...], f["test/repeats/cell02"][...] = second, first
    opened = []

    class Counted(h5py.File):
        def __init__(self, name, *args, **kwargs):
            opened.append(str(name)) if str(name) == str(own_file) else None
            super().__init__(name, *args, **kwargs)

    monkeypatch.setattr(h5py, "File", Counted)
    out, db = tmp_path / "fit", f"sqlite:///{tmp_path / 'r.sqlite'}"
    runs = (["fit", "ln", "--data", str(own_file), "--out", str(out), "--epochs", "1", "--quiet"],
            ["score", "ln", FILE_BENCHMARK, "--data", str(own_file), "--checkpoint", str(out / "model.pt"), "--db", db,
             "--out", str(tmp_path / "scores")])
    for argv, opens in zip(runs, (4, 3)):
        retina_h5._read_split.cache_clear()
        retina_h5._warn_of_unlike_stimuli.cache_clear()
        opened.clear()
        recwarn.clear()  # it records every warning given (no filter drops a repeat)
        assert main(argv) == 0
        given = [str(w.message) for w in recwarn]
        for warning in ("test/stimulus is unlike train/stimulus: sd (contrast) 3", "does not follow the mean of "
                        "test/repeats for 2 of 12 cells"):
            assert sum(warning in message for message in given) == 1, (argv[0], warning, given)
        assert len(opened) == opens, (argv[0], opened)


def _field_file(source, path):
    """``source`` (a small embedded recording) copied to ``path`` without the attributes that make it one (``source``,
    ``kind``): a deep-retina file as the field's are, whose name alone says its stimulus class."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, path)
    with h5py.File(path, "a") as f:
        del f.attrs["source"], f.attrs["kind"]
    return path


@pytest.fixture
def field_files(own_file, tmp_path):
    """An experiment's folder as deep-retina keeps it (``15-10-07/whitenoise.h5``, ``15-10-07/naturalscene.h5``) and
    ``mine.h5`` named otherwise, each the same small recording (the names, not the pixels, carry the class)."""
    folder = tmp_path / "15-10-07"
    files = {name: _field_file(own_file, folder / f"{name}.h5") for name in ("whitenoise", "naturalscene")}
    files["mine"] = _field_file(own_file, tmp_path / "field" / "mine.h5")
    return files


@pytest.fixture
def experiment(field_files, tmp_path):
    """:func:`field_files` and the fit of ``ln`` to ``whitenoise.h5`` (one epoch, ``zoo fit --out``: its summary.json
    names the file)."""
    files = field_files
    fit = tmp_path / "fit"
    assert main(["fit", "ln", "--data", str(files["whitenoise"]), "--out", str(fit), "--epochs", "1", "--quiet"]) == 0
    return files, fit / "model.pt"


def test_the_stimulus_class_of_a_file_is_its_deep_retina_name_or_attribute_or_given(own_file, tmp_path):
    """deep-retina keeps an experiment's recordings as <experiment>/whitenoise.h5 and naturalscene.h5 (loadexpt); the
    embedded recordings say it in their kind attribute; any other file's class is unknown unless given."""
    from neurozoo.datasets.errors import UserFacingError
    from neurozoo.datasets.retina_stimulus_class import StimulusClass, experiment_stimulus_class

    natural = _field_file(own_file, tmp_path / "15-10-07" / "naturalscene.h5")
    mine = _field_file(own_file, tmp_path / "field" / "mine.h5")
    assert experiment_stimulus_class(natural) == StimulusClass(
        "naturalscene", "file name naturalscene.h5 (deep-retina's <experiment>/<class>.h5)")
    assert experiment_stimulus_class(mine) == StimulusClass("unknown", None)
    assert experiment_stimulus_class(own_file) == StimulusClass(  # a copy of the embedded white-noise recording
        "whitenoise", "attribute kind (a neurozoo embedded recording)")
    assert experiment_stimulus_class(mine, given="naturalscene") == StimulusClass("naturalscene", "--stimulus-class")
    assert experiment_stimulus_class(natural, given="whitenoise") == StimulusClass(
        "whitenoise", "--stimulus-class; the file's name says naturalscene")
    embedded_named_otherwise = shutil.copy(own_file, tmp_path / "naturalscene.h5")  # its kind attribute: whitenoise
    said = f"{embedded_named_otherwise}: attribute kind says whitenoise (a neurozoo embedded recording), but the file's"
    with pytest.raises(DataError, match=re.escape(f"{said} name says naturalscene")):
        experiment_stimulus_class(embedded_named_otherwise)
    with pytest.raises(UserFacingError, match=re.escape(
            "--stimulus-class 'natural': expected whitenoise or naturalscene, the stimulus classes of the deep-retina "
            "files (whitenoise.h5, naturalscene.h5); did you mean 'naturalscene'?")):
        benchmarks.load(FILE_BENCHMARK).score("ln", mine, stimulus_class="natural", progress=False)


def test_weights_fitted_on_white_noise_are_refused_by_a_natural_scene_file_unless_cross_stimulus(experiment, tmp_path,
                                                                                                capsys):
    """retina_h5.heldout could not tell a file's stimulus class, so weights fitted on 15-10-07/whitenoise.h5 were scored
    on 15-10-07/naturalscene.h5's repeats as a held-out score, the check of the embedded held-out benchmarks not
    applying. Refused now, naming both classes; --cross-stimulus scores it, marked as the embedded ones are."""
    files, weights = experiment
    db, out = f"sqlite:///{tmp_path / 'r.sqlite'}", str(tmp_path / "out")
    score = ["score", "ln", FILE_BENCHMARK, "--data", str(files["naturalscene"]), "--checkpoint", str(weights),
             "--db", db, "--out", out]
    capsys.readouterr()
    assert main(score) == 2
    assert capsys.readouterr().err.strip() == (
        f"zoo score: error: {weights}: fitted on whitenoise ({files['whitenoise']}: file name whitenoise.h5 "
        f"(deep-retina's <experiment>/<class>.h5); {weights.parent / 'summary.json'}), but {files['naturalscene']} "
        "holds naturalscene (file name naturalscene.h5 (deep-retina's <experiment>/<class>.h5)): a held-out score is of "
        "the stimulus class the model was fitted to (McIntosh et al. 2016), so these weights score on a whitenoise "
        f"recording's held-out repeats; --cross-stimulus scores them on {files['naturalscene']} all the same, the "
        "record marked as a cross-stimulus score")
    assert not (tmp_path / "r.sqlite").exists() or not ResultsStore(db).records()
    assert main([*score, "--cross-stimulus"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("ln@model.pt (cross-stimulus: fitted on whitenoise) on retina_h5.heldout: 0.")
    assert printed[1] == ("cross-stimulus score (--cross-stimulus): fitted on whitenoise, scored on the held-out "
                          "repeats of naturalscene; not comparable with retina_h5.heldout's scores of models fitted on "
                          "naturalscene")
    [record] = ResultsStore(db).records()
    assert record.model == "ln@model.pt (cross-stimulus: fitted on whitenoise)"
    assert record.settings["cross_stimulus"] == {"fitted_on": "whitenoise", "scored_on": "naturalscene"}
    assert (record.settings["stimulus_class"], record.settings["training_stimulus"]) == ("naturalscene", "whitenoise")
    assert record.settings["rerun"]["cross_stimulus"] is True
    assert main(["reproduce", str(record.id), "--db", db]) == 0
    assert "reproduced: bit-identical" in capsys.readouterr().out
    # on the file of their own class they score as they are, and --cross-stimulus has nothing to allow there
    same = ["score", "ln", FILE_BENCHMARK, "--data", str(files["whitenoise"]), "--checkpoint", str(weights), "--db", db,
            "--out", out]
    assert main([*same, "--cross-stimulus"]) == 2
    assert (f"--cross-stimulus: nothing to allow ({weights} was fitted on whitenoise") in capsys.readouterr().err
    assert main(same) == 0
    record = ResultsStore(db).records()[-1]
    assert record.model == "ln@model.pt" and "cross_stimulus" not in record.settings
    assert (record.settings["stimulus_class"], record.settings["training_stimulus"]) == ("whitenoise", "whitenoise")
    # weights whose summary.json names the embedded white-noise recording: refused by the natural-scene file too
    import json

    from neurozoo.datasets import synthetic_retina

    summary = json.loads((weights.parent / "summary.json").read_text())
    summary["data"] = str(tmp_path / "elsewhere" / synthetic_retina._embedded_path("whitenoise", {})[0].name)
    (weights.parent / "summary.json").write_text(json.dumps(summary))
    capsys.readouterr()
    assert main(score) == 2
    assert (f"zoo score: error: {weights}: fitted on whitenoise (embedded:whitenoise "
            f"({weights.parent / 'summary.json'})), but {files['naturalscene']} holds naturalscene"
            ) in capsys.readouterr().err


def _mine(experiment, tmp_path):
    files, weights = experiment
    db = f"sqlite:///{tmp_path / 'r.sqlite'}"
    return files, weights, db, ["score", "ln", FILE_BENCHMARK, "--data", str(files["mine"]), "--checkpoint",
                                str(weights), "--db", db, "--out", str(tmp_path / "out")]


def test_a_file_of_unknown_class_is_scored_recorded_and_said_as_unknown(experiment, tmp_path, capsys):
    """A file named otherwise (mine.h5) has no stimulus class to read: it is scored, recorded with stimulus_class:
    unknown and said in one line, never assumed (nor checked against the weights' class)."""
    files, weights, db, mine = _mine(experiment, tmp_path)
    capsys.readouterr()
    assert main(mine) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "stimulus class" in line]
    assert notes == [f"note: {files['mine']}: stimulus class unknown (not named whitenoise.h5 or naturalscene.h5 "
                     "(deep-retina's <experiment>/<class>.h5), nor a neurozoo embedded recording): recorded as "
                     "stimulus_class: unknown; the weights' training stimulus (whitenoise) cannot be checked against "
                     "it; --stimulus-class whitenoise|naturalscene names it"]
    record = ResultsStore(db).records()[-1]
    assert (record.settings["stimulus_class"], record.settings["stimulus_class_from"]) == ("unknown", None)
    assert record.model == "ln@model.pt" and record.value is not None
    assert main([*mine, "--cross-stimulus"]) == 2
    assert (f"--cross-stimulus: nothing to allow (the stimulus class of {files['mine']} is unknown"
            ) in capsys.readouterr().err


def test_stimulus_class_names_a_files_class_and_a_bad_one_is_refused(experiment, tmp_path, capsys):
    """--stimulus-class names the class of a file named otherwise; the rule then applies (and zoo reproduce reruns it
    so); a value that is not a class, or the option on another benchmark, is refused, saying what it takes."""
    files, weights, db, mine = _mine(experiment, tmp_path)
    capsys.readouterr()
    # named: the same file is natural scenes, and the white-noise weights are refused on it unless asked
    assert main([*mine, "--stimulus-class", "naturalscene"]) == 2
    assert (f"{weights}: fitted on whitenoise ({files['whitenoise']}: file name whitenoise.h5 (deep-retina's "
            f"<experiment>/<class>.h5); {weights.parent / 'summary.json'}), but {files['mine']} holds naturalscene "
            "(--stimulus-class)") in capsys.readouterr().err
    assert main([*mine, "--stimulus-class", "naturalscene", "--cross-stimulus"]) == 0
    assert "stimulus class unknown" not in capsys.readouterr().err
    record = ResultsStore(db).records()[-1]
    assert record.model == "ln@model.pt (cross-stimulus: fitted on whitenoise)"
    assert (record.settings["stimulus_class"], record.settings["stimulus_class_from"]) == ("naturalscene",
                                                                                          "--stimulus-class")
    assert record.settings["rerun"]["stimulus_class"] == "naturalscene"
    assert main(["reproduce", str(record.id), "--db", db]) == 0
    assert "reproduced: bit-identical" in capsys.readouterr().out
    assert main([*mine, "--stimulus-class", "whitenoise"]) == 0
    assert ResultsStore(db).records()[-1].settings["stimulus_class"] == "whitenoise"
    capsys.readouterr()
    assert main([*mine, "--stimulus-class", "noise"]) == 2
    assert capsys.readouterr().err.strip() == (
        "zoo score: error: --stimulus-class 'noise': expected whitenoise or naturalscene, the stimulus classes of the "
        "deep-retina files (whitenoise.h5, naturalscene.h5); did you mean 'whitenoise'?")
    embedded = ["score", "ln", "retina_embedded.whitenoise-heldout", "--stimulus-class", "whitenoise", "--db", db]
    assert main(embedded) == 2
    assert ("--stimulus-class applies to retina_h5.heldout (the stimulus class of --data's file), not to "
            "retina_embedded.whitenoise-heldout") in capsys.readouterr().err


def _fit_mine(files, out, *options):
    """``zoo fit ln`` (one epoch) of ``mine.h5``, the file named otherwise, into ``out``."""
    return main(["fit", "ln", "--data", str(files["mine"]), "--out", str(out), "--epochs", "1", "--quiet", *options])


def _score_on(files, name, weights, tmp_path):
    return ["score", "ln", FILE_BENCHMARK, "--data", str(files[name]), "--checkpoint", str(weights),
            "--db", f"sqlite:///{tmp_path / 'r.sqlite'}", "--out", str(tmp_path / "out")]


def _unknown_training_note(weights, fitted, scored):
    return (f"note: {weights}: the training stimulus of these weights is unknown (fitted to {fitted} "
            f"({weights.parent / 'summary.json'}), which is not named whitenoise.h5 or naturalscene.h5 (deep-retina's "
            "<experiment>/<class>.h5) nor a neurozoo embedded recording; zoo fit --stimulus-class records it); the "
            f"held-out score on {scored} assumes they were fitted on whitenoise, the class it holds (file name "
            "whitenoise.h5 (deep-retina's <experiment>/<class>.h5)); the record says training_stimulus: unknown")


def test_zoo_fit_records_the_stimulus_class_it_is_told_and_the_held_out_score_applies_it(field_files, tmp_path,
                                                                                          capsys):
    """zoo fit had no --stimulus-class and its summary.json recorded no class, so weights fitted on natural scenes to a
    file named otherwise (cell_recording_2024.h5) had an unknown training class on any other file: scored on
    whitenoise.h5's held-out repeats as its held-out score, with a note. zoo fit records the class it is told, and the
    held-out benchmark refuses those weights on the other class unless --cross-stimulus."""
    files, out = field_files, tmp_path / "fit"
    assert _fit_mine(files, out, "--stimulus-class", "naturalscene") == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["stimulus_class"], summary["stimulus_class_from"]) == ("naturalscene", "--stimulus-class")
    weights, db = out / "model.pt", ResultsStore(f"sqlite:///{tmp_path / 'r.sqlite'}")
    on_white_noise = _score_on(files, "whitenoise", weights, tmp_path)
    capsys.readouterr()
    assert main(on_white_noise) == 2
    assert capsys.readouterr().err.startswith(
        f"zoo score: error: {weights}: fitted on naturalscene ({files['mine']}: --stimulus-class; "
        f"{out / 'summary.json'}), but {files['whitenoise']} holds whitenoise (file name whitenoise.h5 (deep-retina's "
        "<experiment>/<class>.h5)): a held-out score is of the stimulus class the model was fitted to")
    assert not (tmp_path / "r.sqlite").exists() or not db.records()
    assert main([*on_white_noise, "--cross-stimulus"]) == 0
    [record] = db.records()
    assert record.model == "ln@model.pt (cross-stimulus: fitted on naturalscene)"
    assert record.settings["cross_stimulus"] == {"fitted_on": "naturalscene", "scored_on": "whitenoise"}
    # on a file of the class they were fitted on they score as they are, the class checked, no note
    capsys.readouterr()
    assert main(_score_on(files, "naturalscene", weights, tmp_path)) == 0
    assert "note:" not in capsys.readouterr().err
    record = db.records()[-1]
    assert record.model == "ln@model.pt" and "cross_stimulus" not in record.settings
    assert (record.settings["stimulus_class"], record.settings["training_stimulus"]) == ("naturalscene",
                                                                                         "naturalscene")
    assert record.settings["fitted_to"]["stimulus_class"] == "naturalscene"


def test_weights_without_a_summary_have_the_class_their_fits_checkpoint_records(field_files, tmp_path, capsys):
    """A fit's folder without summary.json (the fit cache's, which retina_h5.heldout fits into) keeps the class the
    fit recorded in its checkpoint.pt: its weights fitted on natural scenes are refused on white noise as those of a
    summary.json are, not scored with an unknown training stimulus."""
    files, out = field_files, tmp_path / "fit"
    assert _fit_mine(files, out, "--stimulus-class", "naturalscene") == 0
    (out / "summary.json").unlink()
    capsys.readouterr()
    assert main(_score_on(files, "whitenoise", out / "model.pt", tmp_path)) == 2
    assert capsys.readouterr().err.startswith(
        f"zoo score: error: {out / 'model.pt'}: fitted on naturalscene (the class its fit recorded in "
        f"{out / 'checkpoint.pt'}), but {files['whitenoise']} holds whitenoise")
    assert main(_score_on(files, "naturalscene", out / "model.pt", tmp_path)) == 0
    assert "note:" not in capsys.readouterr().err
    record = ResultsStore(f"sqlite:///{tmp_path / 'r.sqlite'}").records()[-1]
    assert (record.settings["training_stimulus"], record.settings["training_stimulus_from"]) == (
        "naturalscene", f"the class its fit recorded in {out / 'checkpoint.pt'}")


def test_a_fit_to_a_file_named_otherwise_without_stimulus_class_records_it_unknown(experiment, own_file, tmp_path,
                                                                                   capsys):
    """Without --stimulus-class zoo fit records the class it reads (whitenoise.h5: by its name) or unknown, and how it
    was known; a value that is not a class is refused as zoo score refuses it, before anything is written, and so is
    a class other than an embedded recording's own (its kind attribute)."""
    files, weights = experiment
    summary = json.loads((weights.parent / "summary.json").read_text())
    assert (summary["stimulus_class"], summary["stimulus_class_from"]) == (
        "whitenoise", "file name whitenoise.h5 (deep-retina's <experiment>/<class>.h5)")
    out = tmp_path / "mine-fit"
    assert _fit_mine(files, out) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["stimulus_class"], summary["stimulus_class_from"]) == ("unknown", None)
    capsys.readouterr()
    assert main(_score_on(files, "whitenoise", out / "model.pt", tmp_path)) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert _unknown_training_note(out / "model.pt", files["mine"], files["whitenoise"]) in notes
    assert ResultsStore(f"sqlite:///{tmp_path / 'r.sqlite'}").records()[-1].settings["training_stimulus"] == "unknown"
    bad = tmp_path / "bad"
    assert _fit_mine(files, bad, "--stimulus-class", "noise") == 2
    assert capsys.readouterr().err.strip() == (
        "zoo fit: error: --stimulus-class 'noise': expected whitenoise or naturalscene, the stimulus classes of the "
        "deep-retina files (whitenoise.h5, naturalscene.h5); did you mean 'whitenoise'?")
    assert main(["fit", "ln", "--data", str(own_file), "--out", str(bad), "--stimulus-class", "naturalscene"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"zoo fit: error: --stimulus-class naturalscene: {own_file} is a neurozoo embedded whitenoise recording "
        "(attribute kind), which is its class wherever its weights are scored; leave the option out")
    assert not bad.exists()


def test_a_summary_json_without_a_stimulus_class_scores_as_before(experiment, tmp_path, capsys):
    """A zoo fit before the class was recorded left a summary.json without it: the weights' class is still that of the
    recording it names, read from its name (whitenoise.h5: refused by naturalscene.h5) or unknown (mine.h5, though
    fitted with --stimulus-class: scored, with the note)."""
    files, weights = experiment
    mine = tmp_path / "mine-fit"
    assert _fit_mine(files, mine, "--stimulus-class", "naturalscene") == 0
    for fit in (weights.parent, mine):
        summary = json.loads((fit / "summary.json").read_text())
        del summary["stimulus_class"], summary["stimulus_class_from"]
        (fit / "summary.json").write_text(json.dumps(summary))
    capsys.readouterr()
    assert main(_score_on(files, "naturalscene", weights, tmp_path)) == 2
    assert capsys.readouterr().err.startswith(
        f"zoo score: error: {weights}: fitted on whitenoise ({files['whitenoise']}: file name whitenoise.h5 "
        f"(deep-retina's <experiment>/<class>.h5); {weights.parent / 'summary.json'}), but {files['naturalscene']} "
        "holds naturalscene")
    assert main(_score_on(files, "whitenoise", mine / "model.pt", tmp_path)) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert _unknown_training_note(mine / "model.pt", files["mine"], files["whitenoise"]) in notes
    [record] = ResultsStore(f"sqlite:///{tmp_path / 'r.sqlite'}").records()
    assert record.settings["training_stimulus"] == "unknown" and "stimulus_class" not in record.settings["fitted_to"]


def test_a_zoo_fit_resumed_with_another_stimulus_class_is_refused(field_files, tmp_path, monkeypatch, capsys,
                                                                   signal_in_epoch):
    """The checkpoint records the class zoo fit was told: a rerun into the folder that says another (or none, for a
    file whose class is then unknown) is refused as a fit with other settings, before anything is fitted or written,
    since the summary would record that class for weights fitted under the other. The command zoo fit prints to
    resume an interrupted fit gives the class, and resumes it."""
    import shlex
    import signal

    files, out = field_files, tmp_path / "fit"
    args = ["fit", "ln", "--data", str(files["mine"]), "--out", str(out), "--epochs", "2", "--patience", "9", "--quiet"]
    signal_in_epoch(1, signal.SIGTERM)
    assert main([*args, "--stimulus-class", "naturalscene"]) == 130
    [command] = [line.split("; to resume it: ")[1] for line in capsys.readouterr().err.splitlines()
                 if line.startswith("zoo fit: interrupted; ")]
    assert command == (f"zoo fit ln --data {files['mine']} --out {out} --epochs 2 --patience 9 --stimulus-class "
                       "naturalscene --seed 0 --device cpu --quiet")
    monkeypatch.undo()
    checkpoint = (out / "checkpoint.pt").read_bytes()
    for other, said in ((["--stimulus-class", "whitenoise"], "whitenoise"), ([], "unknown")):
        assert main([*args, *other]) == 2
        assert capsys.readouterr().err.splitlines()[-1] == (
            f"zoo fit: error: {out / 'checkpoint.pt'}: a fit with other settings (stimulus_class naturalscene -> "
            f"{said}); use another output folder (out= / --out) or start afresh (resume=False / --no-resume)")
        assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "fit_time.json"]
        assert (out / "checkpoint.pt").read_bytes() == checkpoint
    assert main(shlex.split(command)[1:]) == 0
    assert capsys.readouterr().err.splitlines()[0] == f"resuming {out / 'checkpoint.pt'}: 1 of at most 2 epochs fitted"
    assert json.loads((out / "summary.json").read_text())["stimulus_class"] == "naturalscene"
    # the finished fit read again under another class: refused too, its summary left as it was
    summary = (out / "summary.json").read_bytes()
    assert main([*args, "--stimulus-class", "whitenoise"]) == 2
    assert "(stimulus_class naturalscene -> whitenoise)" in capsys.readouterr().err
    assert (out / "summary.json").read_bytes() == summary


def test_the_fit_caches_checkpoints_keep_the_stimulus_class_and_a_score_naming_another_is_refused(field_files,
                                                                                                   tmp_path, one_epoch,
                                                                                                   capsys):
    """The shared fit cache (zoo fit --data embedded:KIND without --out, the held-out benchmarks' fits) did not pass the
    class into its checkpoints, as zoo fit --out does: a held-out score of mine.h5 said to be natural scenes and a
    later one said to be white noise read one fit as a fit to both. The checkpoint records it (an embedded recording's
    kind); a score that names another class is refused as a zoo fit resumed with it is, saying which folder to delete."""
    import torch

    from neurozoo.retina.embedded_fit import fit_embedded, fits_in

    files, db = field_files, f"sqlite:///{tmp_path / 'r.sqlite'}"
    with fits_in(tmp_path / "fits"):
        result, info = fit_embedded("ln", "whitenoise", sizes=SIZES, progress=False, epochs=1)
        assert torch.load(result.checkpoint, weights_only=True)["stimulus_class"] == "whitenoise"
        score = ["score", "ln", FILE_BENCHMARK, "--data", str(files["mine"]), "--db", db, "--out", str(tmp_path / "o")]
        assert main([*score, "--stimulus-class", "naturalscene"]) == 0
        [checkpoint] = (tmp_path / "fits").glob("ln-mine-*/checkpoint.pt")
        assert torch.load(checkpoint, weights_only=True)["stimulus_class"] == "naturalscene"
        fitted = checkpoint.read_bytes()
        capsys.readouterr()
        for other, said in ((["--stimulus-class", "whitenoise"], "whitenoise"), ([], "unknown")):
            assert main([*score, *other]) == 2
            assert capsys.readouterr().err.splitlines()[-1] == (
                f"zoo score: error: {checkpoint}: a fit with other settings (stimulus_class naturalscene -> {said}); it "
                f"is the fit cache's fit of ln on {files['mine']}: deleting {checkpoint.parent} (or a refit) fits it "
                "afresh")
        assert checkpoint.read_bytes() == fitted and len(ResultsStore(db).records()) == 1
        assert main([*score, "--stimulus-class", "naturalscene"]) == 0  # the class it was fitted under: read, scored
        first, again = ResultsStore(db).records()
        assert again.settings["fit_provenance"]["origin"] == "cached" and again.value == first.value


def _strip_stimulus_class(checkpoint):
    """``checkpoint`` rewritten in the layout of before checkpoints recorded the stimulus class (no such key)."""
    import torch

    saved = torch.load(checkpoint, weights_only=True)
    del saved["stimulus_class"]
    torch.save(saved, checkpoint)


def _unchecked_note(checkpoint, data, said):
    return (f"note: {checkpoint}: written before checkpoints recorded the stimulus class, so the class of {data} is "
            f"recorded as said now, {said} (--stimulus-class), unchecked against the one the fit was begun under "
            "(summary.json: stimulus_class_checked false); --no-resume fits it afresh under this class")


def test_a_checkpoint_that_records_no_class_takes_the_one_named_unchecked_and_says_so(field_files, tmp_path,
                                                                                     monkeypatch, capsys,
                                                                                     signal_in_epoch):
    """A checkpoint written before checkpoints recorded the stimulus class was read or resumed under any class without
    a word, summary.json recording the class named as if checked. It is still taken (its recording is checked by
    sha256, and the class is the recording's), but summary.json says the class is unchecked (stimulus_class_checked
    false), a note says so, and so does a held-out score of its weights (training_stimulus_from); an unfinished fit
    resumed so records the class from then on, and a rerun that names another is then refused."""
    import signal

    import torch

    files, out = field_files, tmp_path / "fit"
    assert _fit_mine(files, out, "--stimulus-class", "naturalscene") == 0
    assert json.loads((out / "summary.json").read_text())["stimulus_class_checked"] is True
    _strip_stimulus_class(out / "checkpoint.pt")
    capsys.readouterr()
    assert _fit_mine(files, out, "--stimulus-class", "whitenoise") == 0  # the finished fit, read again
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["stimulus_class"], summary["stimulus_class_from"], summary["stimulus_class_checked"]) == (
        "whitenoise", "--stimulus-class", False)
    assert [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")] == [
        _unchecked_note(out / "checkpoint.pt", files["mine"], "whitenoise")]
    assert main(_score_on(files, "whitenoise", out / "model.pt", tmp_path)) == 0  # the score's record says it too
    assert ResultsStore(f"sqlite:///{tmp_path / 'r.sqlite'}").records()[-1].settings["training_stimulus_from"] == (
        f"{files['mine']}: --stimulus-class, unchecked: the fit's checkpoint recorded no class (stimulus_class_checked "
        f"false); {out / 'summary.json'}")
    # an unfinished fit of the old layout, resumed: the class named is kept from its next checkpoint on
    resumed = tmp_path / "resumed"
    args = ["fit", "ln", "--data", str(files["mine"]), "--out", str(resumed), "--epochs", "2", "--patience", "9",
            "--quiet", "--stimulus-class"]
    signal_in_epoch(1, signal.SIGTERM)
    assert main([*args, "whitenoise"]) == 130
    monkeypatch.undo()
    _strip_stimulus_class(resumed / "checkpoint.pt")
    capsys.readouterr()
    assert main([*args, "naturalscene"]) == 0
    assert _unchecked_note(resumed / "checkpoint.pt", files["mine"], "naturalscene") in capsys.readouterr().err
    assert json.loads((resumed / "summary.json").read_text())["stimulus_class_checked"] is False
    assert torch.load(resumed / "checkpoint.pt", weights_only=True)["stimulus_class"] == "naturalscene"
    assert main([*args, "whitenoise"]) == 2
    assert "(stimulus_class naturalscene -> whitenoise)" in capsys.readouterr().err
    assert main([*args, "naturalscene"]) == 0  # read again under the class it now records: checked, no note
    assert "note:" not in capsys.readouterr().err
    assert json.loads((resumed / "summary.json").read_text())["stimulus_class_checked"] is True


def test_a_record_scored_before_the_stimulus_class_rule_reproduces_as_it_was_scored(experiment, tmp_path, capsys):
    """retina_h5.heldout before 2026-12-04 scored white-noise weights on naturalscene.h5 as any held-out score, and its
    record states no class. zoo reproduce refused it (the rule now refuses that score without --cross-stimulus, which
    zoo reproduce has not, and which the record could not state): a reproduction reruns what was recorded, so it is
    scored as then, the rerun marked as the cross-stimulus score it is and a note naming the record and the rule."""
    files, weights = experiment
    db_file = tmp_path / "r.sqlite"
    db = f"sqlite:///{db_file}"
    assert main(["score", "ln", FILE_BENCHMARK, "--data", str(files["naturalscene"]), "--checkpoint", str(weights),
                 "--cross-stimulus", "--db", db, "--out", str(tmp_path / "out")]) == 0
    [record] = ResultsStore(db).records()
    # the record as the code before the rule wrote it (f600f3f~1): no class, training class or cross-stimulus mark,
    # in the settings, their rerun or the weights' summary.json (written before zoo fit recorded the class either)
    settings = dict(record.settings)
    for key in ("stimulus_class", "stimulus_class_from", "training_stimulus", "training_stimulus_from",
                "cross_stimulus"):
        del settings[key]
    del settings["rerun"]["cross_stimulus"]
    for key in ("stimulus_class", "stimulus_class_from"):
        del settings["fitted_to"][key]
    summary = json.loads((weights.parent / "summary.json").read_text())
    del summary["stimulus_class"], summary["stimulus_class_from"], summary["stimulus_class_checked"]
    (weights.parent / "summary.json").write_text(json.dumps(summary))
    printed = _reproduced_as_stored_then(db_file, record.id, settings, capsys)
    assert printed[1] == (
        f"  note: record {record.id} was scored before retina_h5.heldout applied its stimulus-class rule (2026-12-04; "
        "the record states no settings.stimulus_class): its weights, fitted on whitenoise, were scored on the held-out "
        "repeats of naturalscene, and are rerun so, the protocol it was recorded under; zoo score now refuses that "
        "score without --cross-stimulus, which marks it a cross-stimulus score (as the rerun is)")
    assert printed[-1].startswith("reproduced: bit-identical")
    assert "  differs: settings.cross_stimulus.fitted_on: not in the record, rerun 'whitenoise'" in printed
    # a record that states its class is reproduced under the rule it was scored under: no note, nothing waived
    assert main(["score", "ln", FILE_BENCHMARK, "--data", str(files["whitenoise"]), "--checkpoint", str(weights),
                 "--db", db, "--out", str(tmp_path / "out")]) == 0
    capsys.readouterr()
    assert main(["reproduce", str(ResultsStore(db).records()[-1].id), "--db", db]) == 0
    assert "note: record" not in capsys.readouterr().out


def _reproduced_as_stored_then(db_file, record_id, settings, capsys):
    """zoo reproduce's lines for record ``record_id`` of ``db_file`` rewritten as the code before the stimulus-class
    rule stored it: ``settings`` (the caller's, without what the rule added) and the model named as any other."""
    import sqlite3

    with sqlite3.connect(db_file) as connection:
        connection.execute("UPDATE scores SET settings = ?, model = ? WHERE id = ?",
                           (json.dumps(settings), "ln@model.pt", record_id))
    capsys.readouterr()
    assert main(["reproduce", str(record_id), "--db", f"sqlite:///{db_file}"]) == 0
    return capsys.readouterr().out.splitlines()


def test_an_embedded_held_out_record_scored_before_the_stimulus_rule_reproduces_as_it_was_scored(tmp_path, capsys,
                                                                                                 monkeypatch):
    """retina_embedded.KIND-heldout before 2026-12-04 (7d86c80) scored weights fitted on the other embedded stimulus as
    any held-out score: its record names their fit (settings.fitted_to.embedded) and no cross_stimulus. zoo reproduce
    refused it, as retina_h5.heldout's records of then: it is rerun as it was scored, by the same path, saying so."""
    from test_osr import ln_fit_on_small_embedded_naturalscene

    fit = ln_fit_on_small_embedded_naturalscene(tmp_path, monkeypatch)
    db_file = tmp_path / "r.sqlite"
    db = f"sqlite:///{db_file}"
    score = ["score", "ln", "retina_embedded.whitenoise-heldout", "--checkpoint", str(fit / "model.pt"), "--db", db,
             "--out", str(tmp_path / "out")]
    assert main([*score, "--cross-stimulus"]) == 0
    [record] = ResultsStore(db).records()
    assert record.settings["fitted_to"]["embedded"] == "naturalscene"
    # the record as the code before the rule wrote it (7d86c80~1): no cross-stimulus mark in its settings or their
    # rerun, the model named as any other
    settings = dict(record.settings)
    del settings["cross_stimulus"], settings["rerun"]["cross_stimulus"]
    printed = _reproduced_as_stored_then(db_file, record.id, settings, capsys)
    assert printed[1] == (
        f"  note: record {record.id} was scored before retina_embedded.whitenoise-heldout applied its stimulus-class "
        "rule (2026-12-04; the record names weights fitted on embedded:naturalscene, settings.fitted_to.embedded, and "
        "states no settings.cross_stimulus): its weights, fitted on embedded:naturalscene, were scored on the held-out "
        "repeats of embedded:whitenoise, and are rerun so, the protocol it was recorded under; zoo score now refuses "
        "that score without --cross-stimulus, which marks it a cross-stimulus score (as the rerun is)")
    assert printed[-1].startswith("reproduced: bit-identical")
    assert ("  differs: settings.cross_stimulus.fitted_on: not in the record, rerun 'embedded:naturalscene'"
            in printed)
    # a record of the benchmark of the weights' own stimulus is reproduced under the rule: no note, nothing waived
    assert main(["score", "ln", "retina_embedded.naturalscene-heldout", *score[3:]]) == 0
    capsys.readouterr()
    assert main(["reproduce", str(ResultsStore(db).records()[-1].id), "--db", db]) == 0
    assert "note: record" not in capsys.readouterr().out


def test_datasets_of_response_passed_over_are_named_once_but_our_own_are_not(own_file, tmp_path, capsys):
    """`zoo fit` and `zoo score ... retina_h5.heldout --data FILE` passed over the datasets of a file's `response/`
    groups other than the rates and counts they read (``Recording.unread``) without a word: a lab's
    firing_rate_50ms was not fitted, silently. One warning (one stderr line, `zoo fit: warning: ...`) now names them;
    the ground-truth rates our own writer adds (test/response/true_rate, in every embedded recording) are not named,
    so a run on one prints nothing new."""
    import warnings

    other = shutil.copy(own_file, tmp_path / "lab.h5")
    with h5py.File(other, "a") as f:
        assert "true_rate" in f["test/response"]  # our writer's: passed over without a word
        f["train/response/firing_rate_50ms"] = f["train/response/firing_rate_20ms"][()]
        f["test/response/lab_note"] = b"session 3"
    expected = (f"{other}: not read: train/response/firing_rate_50ms, test/response/lab_note (of response/ only "
                "firing_rate_5ms, firing_rate_10ms, firing_rate_20ms, binned are read; another is read by name only: "
                "Recording.response)")
    db = f"sqlite:///{tmp_path / 'scores.sqlite'}"
    for data, out in ((own_file, tmp_path / "fit"), (other, tmp_path / "fit_lab")):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert main(["fit", "ln", "--data", str(data), "--out", str(out), "--epochs", "1", "--quiet"]) == 0
            assert main(["score", "ln", FILE_BENCHMARK, "--data", str(data), "--checkpoint", str(out / "model.pt"),
                         "--db", db]) == 0
        named = [str(w.message) for w in caught if "not read:" in str(w.message)]
        assert named == ([] if data == own_file else [expected])  # once: the score reads the file the fit read


def test_objective_deep_retina_scores_the_glm_fitted_by_it_in_a_record_of_its_own_that_zoo_reproduce_refits(
        own_file, tmp_path, one_epoch, monkeypatch, capsys):
    """``zoo fit glm --objective deep-retina`` fitted deep-retina's GLM objective, but zoo score could not score such
    a fit (the benchmarks took it only as a Python fit override), and its score would have had no model name of its
    own. zoo score --objective deep-retina now scores the fit by that objective (a fit cache folder of its own, the
    API's score with ``objective=``), the record keeps it (settings.objective, settings.rerun.objective) under its own
    model name, combined with the observed spike history as one parenthesis, and zoo reproduce fits it again by that
    objective to the bit. Refused before any fit for a model without deep-retina's penalty groups (the fit's own
    check, as zoo fit's), for a benchmark that fits no retina model, and beside --checkpoint."""
    from pathlib import Path

    import torch

    from neurozoo.retina import embedded_fit

    db, out = f"sqlite:///{tmp_path / 'r.sqlite'}", str(tmp_path / "out")
    score = ["score", "glm", FILE_BENCHMARK, "--data", str(own_file), "--db", db, "--out", out]
    assert main(score) == 0
    assert main([*score, "--objective", "deep-retina"]) == 0
    assert re.search(r"^glm \(deep-retina objective\) on retina_h5\.heldout: 0\.\d{4} ", capsys.readouterr().out, re.M)
    assert main([*score, "--objective", "deep-retina", "--heldout-history", "observed"]) == 0
    default, deep, observed = ResultsStore(db).records()
    assert (default.model, deep.model, observed.model) == (
        "glm", "glm (deep-retina objective)", "glm (deep-retina objective, observed spike history)")
    assert [record.settings["objective"] for record in (default, deep, observed)] == ["zoo", "deep-retina", "deep-retina"]
    assert "objective" not in default.settings["rerun"]
    assert deep.settings["rerun"]["objective"] == observed.settings["rerun"]["objective"] == "deep-retina"
    assert observed.settings["heldout_history"] == "observed"
    # the penalty the fit used, not the zoo objective's l2 / l1 (the default's record keeps those)
    assert "l2" not in deep.settings and deep.settings["objective_penalty"]["stimulus_filter"] == 1e-4
    assert (default.settings["l2"], default.settings["l1"]) == (1e-3, 1e-3)
    # the API: the same fit (read from the fit cache: a folder of its own), the same score
    api = RetinaFileHeldoutBenchmark(fit_settings={"epochs": 1}).score("glm", own_file, progress=False,
                                                                      objective="deep-retina")
    zoo_fit = RetinaFileHeldoutBenchmark(fit_settings={"epochs": 1}).score("glm", own_file, progress=False)
    assert (api.value, api.per_bin) == (deep.value, deep.per_bin) and zoo_fit.value == default.value
    assert api.provenance["fit_dir"] != zoo_fit.provenance["fit_dir"] and api.provenance["fit_origin"] == "cached"
    weights = [torch.load(Path(fitted.provenance["fit_dir"]) / "model.pt") for fitted in (api, zoo_fit)]
    assert (weights[0]["bias"] - weights[1]["bias"]).abs().max() > 1e-3  # fitted by another objective
    assert deep.value != default.value
    capsys.readouterr()
    assert main(["reproduce", str(observed.id), "--db", db]) == 0
    assert "reproduced: bit-identical" in capsys.readouterr().out
    # refused before any fit: a model without deep-retina's penalty groups, a benchmark fitting no retina model, and
    # weights fitted already
    monkeypatch.setattr(embedded_fit, "fitted_file_model", lambda *args, **kwargs: pytest.fail("fitted"))
    assert main(["score", "ln", FILE_BENCHMARK, "--data", str(own_file), "--db", db, "--out", out,
                 "--objective", "deep-retina"]) == 2
    assert ("zoo score: error: fit settings: --objective deep-retina (objective='deep-retina': deep-retina's GLM "
            "objective, scripts/fit_glms.py) applies to glm only, the retina models that name its penalty groups "
            "(deep_retina_penalty()); ln names none\n" in capsys.readouterr().err)  # the model as typed, not its class
    assert main(["score", "rgc_intermediate", "ventral_embedded.V4-temporal", "--db", db, "--out", out,
                 "--objective", "deep-retina"]) == 2
    assert ("zoo score: error: --objective applies to the retina benchmarks (what their fit of a retina model "
            "minimises), not to ventral_embedded.V4-temporal" in capsys.readouterr().err)
    assert main([*score, "--objective", "deep-retina", "--checkpoint", str(Path(api.provenance["fit_dir"]) /
                                                                           "model.pt")]) == 2
    assert "zoo score: error: --objective deep-retina: --checkpoint's weights are fitted already" in (
        capsys.readouterr().err)
    assert len(ResultsStore(db).records()) == 3


def test_zoo_score_records_lists_what_zoo_score_stored_with_the_id_zoo_reproduce_takes(own_file, tmp_path, one_epoch,
                                                                                      capsys):
    """No command listed the records zoo score stores (its --db, by default $NEUROZOO_HOME/results.sqlite): their
    ids, which zoo reproduce takes, were in zoo score's output alone. zoo score --records lists them, oldest first,
    one a line (record id, when scored, model, benchmark, value), MODEL and BENCHMARK keeping those names' only."""
    db, out = f"sqlite:///{tmp_path / 'r.sqlite'}", str(tmp_path / "out")
    assert main(["score", "ln", FILE_BENCHMARK, "--data", str(own_file), "--db", db, "--out", out]) == 0
    assert main(["score", "glm", FILE_BENCHMARK, "--data", str(own_file), "--db", db, "--out", out, "--heldout-history",
                 "observed"]) == 0
    stored = ResultsStore(db).records()
    assert [record.model for record in stored] == ["ln", "glm (observed spike history)"]
    capsys.readouterr()
    assert main(["score", "--records", "--db", db]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert re.match(r"^record\s+scored \(UTC\)\s+model\s+benchmark\s+value$", lines[0]) and len(lines) == 5
    for line, record in zip(lines[2:4], stored):
        assert re.match(rf"^{record.id}\s+{record.created_at:%Y-%m-%d %H:%M:%S}\s+{re.escape(record.model)}\s+"
                        rf"{FILE_BENCHMARK}\s+{record.value:.4f}$", line), line
    assert lines[4] == f"2 records in {db}; zoo reproduce RECORD --db {db} scores one again"
    assert main(["score", "ln", FILE_BENCHMARK, "--records", "--db", db]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 4 and listed[2].split()[:1] == [str(stored[0].id)] and listed[3].startswith("1 record in ")
    assert main(["score", "glm (observed spike history)", "--records", "--db", db]) == 0
    assert capsys.readouterr().out.splitlines()[2].split()[:1] == [str(stored[1].id)]
    # the id listed is the one zoo reproduce takes
    assert main(["reproduce", listed[2].split()[0], "--db", db]) == 0
    assert f"record {stored[0].id}: ln on {FILE_BENCHMARK}" in capsys.readouterr().out



def test_zoo_score_records_orders_by_the_full_time_then_the_id_and_prints_the_second(tmp_path, capsys):
    """zoo score --records printed the time to the minute: records of one minute read as tied, in an order the line
    did not explain. The store orders by the full time scored, then the id (a record stored later with an earlier time
    is listed first; records of one time keep the order they were stored in), and the listing prints the second. A
    time with another UTC offset is kept in UTC: SQLite stored its wall clock, so 14:00:20+02:00 was listed, and
    ordered, as 14:00:20 UTC, after 12:00:30 UTC."""
    from datetime import datetime, timedelta, timezone

    from neurozoo.benchmarks.records import ScoreRecord

    db = f"sqlite:///{tmp_path / 'r.sqlite'}"
    store = ResultsStore(db)
    utc, plus_two = timezone.utc, timezone(timedelta(hours=2))
    times = [datetime(2026, 12, 5, 12, 0, 30, 250000, tzinfo=utc), datetime(2026, 12, 5, 12, 0, 10, tzinfo=utc),
             datetime(2026, 12, 5, 14, 0, 20, tzinfo=plus_two), datetime(2026, 12, 5, 12, 0, 10, tzinfo=utc),
             datetime(2026, 12, 5, 12, 0, 30, 249999, tzinfo=utc)]
    ids = [store.add(ScoreRecord(f"model{i}", "retina_h5.heldout", 0.1 * i, created_at=when))
           for i, when in enumerate(times)]
    expected = [ids[1], ids[3], ids[2], ids[4], ids[0]]  # by time (to the microsecond), then by id
    assert [record.id for record in store.records()] == expected
    assert main(["score", "--records", "--db", db]) == 0
    lines = capsys.readouterr().out.splitlines()[2:7]
    assert [int(line.split()[0]) for line in lines] == expected
    assert [" ".join(line.split()[1:3]) for line in lines] == [
        "2026-12-05 12:00:10", "2026-12-05 12:00:10", "2026-12-05 12:00:20", "2026-12-05 12:00:30",
        "2026-12-05 12:00:30"]
