"""A selection of a recording's cells to fit and score (``zoo fit --cells``, ``FitConfig.cells``,
``read_experiment(..., cells=...)``), as deep-retina's ``loadexpt(expt, cells, ...)`` loads the cells a lab chose
(``f[train_or_test]['response/firing_rate_10ms'][cells, indices]``: deepretina/experiments.py line 228 at 064d631)."""
import contextlib
import json
import re
import shutil
import sqlite3

import h5py
import numpy as np
import pytest
import torch

from neurozoo.datasets.errors import DataError, SpecError
from neurozoo.datasets.retina_h5 import checked_experiment, read_experiment

pytestmark = pytest.mark.filterwarnings("ignore:.*the validation r is noise at this size")

FIT = ["--epochs", "1", "--batch-size", "64", "--quiet"]


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    from neurozoo.datasets.synthetic_retina import generate_recording

    return generate_recording(tmp_path_factory.mktemp("cells") / "wn.h5", n_train=2000, n_test=160, n_repeats=3)


def _silent_in_training(path, out):
    """``path`` with cell02 0 at every frame of ``train/`` (every response), as it is in ``test/``: a cell silent
    through training that responds held out."""
    shutil.copy(path, out)
    with h5py.File(out, "a") as f:
        for key in f["train/response"]:
            f[f"train/response/{key}"][1] = 0.0
    return out


def _metrics(folder):
    import pandas as pd

    return pd.read_csv(folder / "heldout_metrics.csv", index_col="cell")


def _subset_file(path, out, index):
    """``path`` with only the cells ``index`` (file order), written with h5py: every response, the repeats and the
    spikes, the cells renamed cell01.. as a recording of those cells alone would name them."""
    shutil.copy(path, out)
    with h5py.File(out, "a") as f:
        n_cells = f["train/response/firing_rate_10ms"].shape[0]
        for split in ("train", "test"):
            for key in list(f[f"{split}/response"]):
                data = f[f"{split}/response/{key}"][()]
                if data.shape[0] == n_cells:  # every (cells, T) dataset, the writer's own true_rate too
                    del f[f"{split}/response/{key}"]
                    f[f"{split}/response/{key}"] = data[index]
        for group in ("test/repeats", "spikes"):
            kept = [f[f"{group}/cell{i + 1:02d}"][()] for i in index]
            for name in list(f[group]):
                del f[f"{group}/{name}"]
            for i, data in enumerate(kept):
                f[f"{group}/cell{i + 1:02d}"] = data
    return out


def test_read_experiment_selects_the_cells_of_every_array_in_file_order(recording):
    full_train, full_test = read_experiment(recording, "train"), read_experiment(recording, "test")
    test = read_experiment(recording, "test", cells="cell05,2")  # names and indices, in any order: file order
    assert test.cells == ["cell03", "cell05"] and test.selection == (2, 4) and test.file_cells == 12
    np.testing.assert_array_equal(test.repeats, full_test.repeats[[2, 4]])
    for key, data in full_test.responses.items():
        np.testing.assert_array_equal(test.response(key), data[[2, 4]])
    train = read_experiment(recording, "train", cells=[4, 2])
    assert train.selection == (2, 4)
    np.testing.assert_array_equal(train.response("binned"), full_train.response("binned")[[2, 4]])
    # a dataset of response/ read by name later (Recording.response) is selected too
    np.testing.assert_array_equal(test.response("true_rate"), full_test.response("true_rate")[[2, 4]])
    assert read_experiment(recording, "test").cells == full_test.cells  # the cached read is not narrowed


def test_zoo_fit_cells_fits_and_scores_only_those_cells_as_a_file_of_them_alone(recording, tmp_path, capsys):
    """``zoo fit ln --cells cell05,2``: a model of 2 outputs, a table of cell03 and cell05 (the file's names), and the
    per-cell held-out numbers of a fit with the same seed to a file holding those two cells only (written here with
    h5py); recorded (summary.json, history.json); a resume under another selection (or none) is refused, the same
    selection spelt otherwise reads the fit; the fit cache keys the selection by its indices."""
    from neurozoo.leaderboard.cli import main as zoo
    from neurozoo.retina.embedded_fit import fit_dir, fit_settings_key
    from neurozoo.retina.fit import create_model

    chosen = tmp_path / "chosen"
    assert zoo(["fit", "ln", "--data", str(recording), *FIT, "--out", str(chosen), "--cells", "cell05,2"]) == 0
    table = capsys.readouterr().out
    assert torch.load(chosen / "model.pt")["bias"].shape == (2,)
    frame = _metrics(chosen)
    assert list(frame.index) == ["cell03", "cell05"]
    assert re.search(r"^cell03 ", table, re.M) and re.search(r"^cell05 ", table, re.M)
    assert not re.search(r"^cell0[1246] ", table, re.M)
    summary = json.loads((chosen / "summary.json").read_text())
    assert summary["provenance"]["settings"]["cells"] == [2, 4]
    assert json.loads((chosen / "history.json").read_text())["config"]["cells"] == [2, 4]

    alone = _subset_file(recording, tmp_path / "alone.h5", [2, 4])
    assert zoo(["fit", "ln", "--data", str(alone), *FIT, "--out", str(tmp_path / "alone")]) == 0
    other = _metrics(tmp_path / "alone")
    assert list(other.index) == ["cell01", "cell02"]
    np.testing.assert_allclose(frame.to_numpy(float), other.to_numpy(float), rtol=1e-5, atol=1e-6)
    assert frame["correlation"].abs().min() > 0.01  # numbers of a fit, not zeros that would match anyway
    weights = torch.load(tmp_path / "alone" / "model.pt")
    for name, value in torch.load(chosen / "model.pt").items():
        torch.testing.assert_close(value, weights[name])
    # the whole file's fit scores these cells otherwise: the selection is what made the numbers match
    assert zoo(["fit", "ln", "--data", str(recording), *FIT, "--out", str(tmp_path / "all")]) == 0
    whole = _metrics(tmp_path / "all").loc[["cell03", "cell05"], "correlation"].to_numpy()
    assert np.abs(whole - frame["correlation"].to_numpy()).max() > 1e-3

    capsys.readouterr()
    assert zoo(["fit", "ln", "--data", str(recording), *FIT, "--out", str(chosen)]) == 2
    assert "a fit with other settings (cells [2, 4] -> None)" in capsys.readouterr().err
    assert zoo(["fit", "ln", "--data", str(recording), *FIT, "--out", str(chosen), "--cells", "0"]) == 2
    assert "a fit with other settings (cells [2, 4] -> [0])" in capsys.readouterr().err
    assert zoo(["fit", "ln", "--data", str(recording), *FIT, "--out", str(tmp_path / "all"), "--cells", "2,4"]) == 2
    assert "a fit with other settings (cells None -> [2, 4])" in capsys.readouterr().err
    assert zoo(["fit", "ln", "--data", str(recording), *FIT, "--out", str(chosen), "--cells", "4,cell03"]) == 0
    np.testing.assert_array_equal(_metrics(chosen).to_numpy(float), frame.to_numpy(float))

    # zoo reproduce fits the recorded selection again and compares its per-cell numbers row by row
    assert zoo(["reproduce", str(chosen / "summary.json")]) == 0

    def folder(**settings):
        return fit_dir(recording, "ln", "whitenoise", 0, settings)

    assert folder(cells="cell03,cell05") == folder(cells=[4, 2]) != folder() == folder(cells=None)
    assert folder(cells=[2, 4]) != folder(cells=[2])
    assert "cells" not in fit_settings_key(create_model("ln", n_cells=12), 0)  # every cell: the key of before


def test_a_cell_silent_in_training_refused_names_the_cells_option_that_fits_the_others(recording, tmp_path, capsys):
    """The refusal of a file with a cell silent through train/ but firing in test/ says the ``--cells`` that leaves it
    out; that command fits the others (the check is of the selected cells only)."""
    from neurozoo.leaderboard.cli import main as zoo

    path = _silent_in_training(recording, tmp_path / "silent.h5")
    with pytest.raises(DataError, match=re.escape("1 of 12 cells is 0 at every frame (cell02) but responds in test/")):
        checked_experiment(path)
    argv = ["fit", "ln", "--data", str(path), *FIT, "--out", str(tmp_path / "fit")]
    assert zoo(argv) == 2
    error = capsys.readouterr().err
    assert "(leave it out: zoo fit --cells 0,2,3,4,5,6,7,8,9,10,11)" in error
    spec = re.search(r"zoo fit --cells (\S+)\)", error).group(1)
    assert not (tmp_path / "fit" / "summary.json").exists()
    assert zoo([*argv, "--cells", spec]) == 0
    frame = _metrics(tmp_path / "fit")
    assert len(frame) == 11 and "cell02" not in frame.index
    train, test = checked_experiment(path, cells=spec)
    assert train.cells == test.cells == list(frame.index)


@pytest.mark.parametrize("spec, message", [
    ("", "--cells: an empty item in '' (expected comma-separated cells, at least one: the file's 12 cells: indices "
         "0..11 or names cell01..cell12)"),
    ("0,,3", "--cells 0,,3: an empty item in '0,,3' (expected comma-separated cells, at least one: the file's 12 "
             "cells: indices 0..11 or names cell01..cell12)"),
    ("3,12", "--cells 3,12: cell index 12 is out of range (the file's 12 cells: indices 0..11 or names "
             "cell01..cell12)"),
    ("-1", "--cells -1: '-1' is not a cell of the file (the file's 12 cells: indices 0..11 or names cell01..cell12)"),
    ("soma", "--cells soma: 'soma' is not a cell of the file (the file's 12 cells: indices 0..11 or names "
             "cell01..cell12)"),
    ("0,cell01", "--cells 0,cell01: cell01 given twice ('0' and 'cell01'); expected each cell once (the file's 12 "
                 "cells: indices 0..11 or names cell01..cell12)"),
])
def test_bad_cell_specs_are_refused_naming_the_option_the_item_and_the_cells(recording, tmp_path, capsys, spec,
                                                                            message):
    from neurozoo.leaderboard.cli import main as zoo

    assert zoo(["fit", "ln", "--data", str(recording), *FIT, "--out", str(tmp_path / "fit"), "--cells", spec]) == 2
    assert f"zoo fit: error: {message}" in capsys.readouterr().err
    assert not (tmp_path / "fit").exists()


@pytest.mark.parametrize("argv, given", [
    (["fit", "ln", "--data", "{data}", "--cells", "0", "2"], "0 2"),
    (["fit", "ln", "--cells=cell01", "2", "5", "--data", "{data}"], "cell01 2 5"),
    (["score", "ln", "retina_h5.heldout", "--data", "{data}", "--cells", "0", "2"], "0 2"),
    (["probe", "reduction", "ln", "--checkpoint", "{data}", "--cells", "0", "2", "--k", "2"], "0 2"),
])
def test_a_space_separated_cells_list_is_refused_naming_the_comma_separated_one_in_every_command(
        recording, tmp_path, capsys, argv, given):
    """``--cells`` is one comma-separated SPEC in every command that takes it (zoo probe reduction's had taken a
    space-separated list too, swallowing MODEL after it); a space-separated one is refused with the form to use,
    where argparse alone said ``unrecognized arguments: 2``."""
    from neurozoo.leaderboard.cli import main as zoo

    with pytest.raises(SystemExit) as exited:  # argparse's refusal: usage, the error, exit status 2
        zoo([word.replace("{data}", str(recording)) for word in argv] + ["--out", str(tmp_path / "out")])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == (f"zoo: error: argument --cells: takes one comma-separated list: --cells "
                                    f"{given.replace(' ', ',')} (not --cells {given})")
    assert not (tmp_path / "out").exists()
    with pytest.raises(SystemExit):
        zoo(["fit", "ln", "--data", str(recording), "--cells", "0", "--bogus", "2"])  # argparse's words, as before
    assert capsys.readouterr().err.splitlines()[-1] == "zoo: error: unrecognized arguments: --bogus 2"


def test_a_recording_of_other_cells_is_not_fitted_as_a_selection(recording):
    from neurozoo.retina.fit import create_model, fit

    train = read_experiment(recording, "train", cells=[0, 1])
    with pytest.raises(DataError, match=re.escape("cells [2, 3]: the Recording holds other cells (cell01, cell02)")):
        fit(create_model("ln", n_cells=2), train, cells=[2, 3], epochs=1, progress=False)
    with pytest.raises(SpecError, match=re.escape("cells: cell index 12 is out of range")):
        read_experiment(recording, "test", cells=[12])


def test_the_file_benchmark_fits_and_scores_the_cells_of_its_fit_settings(recording, tmp_path):
    """``benchmarks.load("retina_h5.heldout", fit_settings={"cells": ...})``: the benchmark's fit and scoring go through
    the same selection as ``zoo fit --cells``: the same per-cell held-out r, one row per chosen cell, recorded."""
    from neurozoo import benchmarks
    from neurozoo.leaderboard.cli import main as zoo

    settings = {"epochs": 1, "batch_size": 64, "cells": "cell05,2"}
    score = benchmarks.load("retina_h5.heldout", fit_settings=settings).score("ln", recording, progress=False)
    assert score.provenance["settings"]["cells"] == [2, 4]
    assert zoo(["fit", "ln", "--data", str(recording), *FIT, "--out", str(tmp_path / "fit"), "--cells", "2,4"]) == 0
    frame = _metrics(tmp_path / "fit")
    assert [row["cell"] for row in score.per_bin] == ["cell03", "cell05"]
    np.testing.assert_allclose([row["correlation"] for row in score.per_bin], frame["correlation"], rtol=1e-6)


@contextlib.contextmanager
def fitting_one_epoch():
    """``retina_h5.heldout`` fitting one epoch (``FIT``'s), for ``zoo score`` and ``zoo reproduce`` (which load it by
    name); as it refuses a fitted module (fit settings given when loaded), the registered one scores checkpoints."""
    from neurozoo import benchmarks
    from neurozoo.benchmarks.retina import RetinaFileHeldoutBenchmark

    name = RetinaFileHeldoutBenchmark.identifier
    entry = benchmarks.BENCHMARKS.get(name)
    benchmarks.BENCHMARKS.add(name, lambda: RetinaFileHeldoutBenchmark(fit_settings={"epochs": 1, "batch_size": 64}),
                              overwrite=True, **entry.tags)
    try:
        yield
    finally:
        benchmarks.BENCHMARKS._entries[name] = entry


@pytest.fixture
def one_epoch():
    with fitting_one_epoch():
        yield


def _per_cell(record):
    """A held-out record's per-cell numbers (every column but the cell's name), one row per cell."""
    return np.array([[float(value) for key, value in row.items() if key != "cell"] for row in record.per_bin])


def test_zoo_score_cells_scores_those_cells_as_a_file_of_them_alone_and_zoo_reproduce_refits_them(
        recording, tmp_path, one_epoch, capsys):
    """``zoo score ln retina_h5.heldout --data FILE --cells cell05,2`` (zoo fit --cells's syntax and parser): the
    benchmark's fit and score of those cells, whose per-cell numbers are those of the same score of a file holding
    only those two cells (written with h5py), not of a fit of every cell (another model); the record keeps the
    selection (settings.cells, the indices; settings.rerun.cells, as given), and zoo reproduce fits it again to the
    bit. Refused by the other benchmarks and for a SPEC that is not the file's cells, each before any fit and storing
    nothing (beside --checkpoint: the next test)."""
    from neurozoo.benchmarks.records import ResultsStore
    from neurozoo.leaderboard.cli import main as zoo
    from neurozoo.retina import embedded_fit

    db, out = f"sqlite:///{tmp_path / 'r.sqlite'}", str(tmp_path / "out")
    score = ["score", "ln", "retina_h5.heldout", "--db", db, "--out", out]
    assert zoo([*score, "--data", str(recording), "--cells", "cell05,2"]) == 0
    alone = _subset_file(recording, tmp_path / "alone.h5", [2, 4])
    assert zoo([*score, "--data", str(alone)]) == 0
    chosen, of_alone = ResultsStore(db).records()
    assert [row["cell"] for row in chosen.per_bin] == ["cell03", "cell05"]  # the file's names
    assert [row["cell"] for row in of_alone.per_bin] == ["cell01", "cell02"]
    np.testing.assert_allclose(_per_cell(chosen), _per_cell(of_alone), rtol=1e-5, atol=1e-6)
    assert np.abs(_per_cell(chosen)[:, 0]).min() > 0.01  # correlations of a fit, not zeros that would match anyway
    assert (chosen.value, chosen.ceiling) == pytest.approx((of_alone.value, of_alone.ceiling), rel=1e-5)
    assert chosen.settings["cells"] == [2, 4] and chosen.settings["rerun"]["cells"] == "cell05,2"
    assert "cells" not in of_alone.settings and "cells" not in of_alone.settings["rerun"]
    # a fit of some cells is another model than the file's fit: its name says the cells (the file's indices), in the
    # output, the record and zoo score --records, where both read "ln" and only the value differed
    assert (chosen.model, of_alone.model) == ("ln (cells 2,4)", "ln")
    assert "ln (cells 2,4) on retina_h5.heldout: " in capsys.readouterr().out
    capsys.readouterr()
    assert zoo(["score", "--records", "--db", db]) == 0
    assert re.search(rf"^{chosen.id}\s+\S+ \S+\s+ln \(cells 2,4\)\s+retina_h5.heldout", capsys.readouterr().out, re.M)
    # the API with the same fit setting: the same fit (the fit cache's folder of those cells), the same numbers
    from neurozoo.benchmarks.retina import RetinaFileHeldoutBenchmark

    api = RetinaFileHeldoutBenchmark(fit_settings={"epochs": 1, "batch_size": 64, "cells": [2, 4]}).score(
        "ln", recording, progress=False)
    assert (api.value, api.per_bin) == (chosen.value, chosen.per_bin)
    capsys.readouterr()
    assert zoo(["reproduce", str(chosen.id), "--db", db]) == 0
    assert "reproduced: bit-identical" in capsys.readouterr().out
    # a record stored before the name said the cells: the same registered model, a note
    with sqlite3.connect(tmp_path / "r.sqlite") as connection:
        connection.execute("UPDATE scores SET model = 'ln' WHERE id = ?", (chosen.id,))
    assert zoo(["reproduce", str(chosen.id), "--db", db]) == 0
    out = capsys.readouterr().out
    assert "model: stored display name 'ln', rerun 'ln (cells 2,4)': the same registered model 'ln'" in out
    assert "reproduced: bit-identical" in out

    # refused before any fit, nothing stored
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr(embedded_fit, "fitted_file_model", lambda *args, **kwargs: pytest.fail("fitted"))
    try:
        assert zoo(["score", "ln", "retina_embedded.whitenoise-heldout", "--db", db, "--out", out, "--cells", "2"]) == 2
        assert ("zoo score: error: --cells applies to retina_h5.heldout (the cells of --data's file it fits MODEL to "
                "and scores), not to retina_embedded.whitenoise-heldout\n" in capsys.readouterr().err)
        assert zoo([*score, "--data", str(recording), "--cells", "3,12"]) == 2
        assert ("zoo score: error: --cells 3,12: cell index 12 is out of range (the file's 12 cells: indices 0..11 or "
                "names cell01..cell12)\n" in capsys.readouterr().err)  # zoo fit --cells's words
        assert zoo(["score", "--records", "--db", db, "--cells", "2"]) == 2
        assert "--cells does not apply to it" in capsys.readouterr().err
    finally:
        monkeypatch.undo()
    assert len(ResultsStore(db).records()) == 2


def test_zoo_score_names_its_own_cells_option_for_a_cell_silent_in_training(recording, tmp_path, one_epoch, capsys):
    """The refusal of a file with a cell silent through train/ names the option of the command that read it: zoo
    score's --cells (it said zoo fit's), and that command scores the other cells."""
    from neurozoo.benchmarks.records import ResultsStore
    from neurozoo.leaderboard.cli import main as zoo

    path = _silent_in_training(recording, tmp_path / "silent.h5")
    db, out = f"sqlite:///{tmp_path / 'r.sqlite'}", str(tmp_path / "out")
    score = ["score", "ln", "retina_h5.heldout", "--data", str(path), "--db", db, "--out", out]
    assert zoo(score) == 2
    error = capsys.readouterr().err
    assert "1 of 12 cells is 0 at every frame (cell02) but responds in test/" in error
    assert error.endswith("(leave it out: zoo score --cells 0,2,3,4,5,6,7,8,9,10,11)\n"), error
    assert zoo([*score, "--cells", re.search(r"--cells (\S+)\)", error).group(1)]) == 0
    (record,) = ResultsStore(db).records()
    assert len(record.per_bin) == 11 and "cell02" not in [row["cell"] for row in record.per_bin]


def test_zoo_score_of_a_checkpoint_names_its_cells_option_for_a_cell_silent_in_training(recording, tmp_path,
                                                                                         capsys):
    """``zoo score ... --data FILE --checkpoint W`` of a file with a cell silent through train/ was refused with the
    reader's way out, ``cells='0,2,...'`` (Python's), and ``--cells`` beside ``--checkpoint`` was refused for weights
    of every cell (``scores on every cell (12)``): no way out from the command line. The refusal names ``zoo score
    --cells``, which scores the weights' outputs of the other cells, run as fitted: each cell's numbers those of the
    same weights on the file before the cell's training spikes were zeroed (its test split), to rounding; zoo
    reproduce reruns it to the bit."""
    from neurozoo.benchmarks.records import ResultsStore
    from neurozoo.leaderboard.cli import main as zoo

    fit = tmp_path / "fit"
    assert zoo(["fit", "ln", "--data", str(recording), *FIT, "--out", str(fit)]) == 0
    path = _silent_in_training(recording, tmp_path / "silent.h5")
    db, out = f"sqlite:///{tmp_path / 'r.sqlite'}", str(tmp_path / "out")
    score = ["score", "ln", "retina_h5.heldout", "--checkpoint", str(fit / "model.pt"), "--db", db, "--out", out]
    assert zoo([*score, "--data", str(path)]) == 2
    error = capsys.readouterr().err
    assert "1 of 12 cells is 0 at every frame (cell02) but responds in test/" in error
    assert error.endswith("(leave it out: zoo score --cells 0,2,3,4,5,6,7,8,9,10,11)\n"), error
    assert zoo([*score, "--data", str(path), "--cells", re.search(r"--cells (\S+)\)", error).group(1)]) == 0
    assert zoo([*score, "--data", str(recording)]) == 0
    others, every = ResultsStore(db).records()
    assert others.settings["cells"] == [0, *range(2, 12)]
    assert (others.model, every.model) == ("ln@model.pt (cells 0,2,3,4,5,6,7,8,9,10,11)", "ln@model.pt")
    assert others.settings["rerun"]["cells"] == "0,2,3,4,5,6,7,8,9,10,11"
    assert [row["cell"] for row in others.per_bin] == [row["cell"] for row in every.per_bin if row["cell"] != "cell02"]
    assert np.abs(_per_cell(others)[:, 0]).max() > 0.05  # correlations of a fit, not zeros that match anyway
    # the test split is the same: each cell's numbers as among all 12 (the cells' correlations computed together, so
    # to rounding)
    np.testing.assert_allclose(_per_cell(others), np.delete(_per_cell(every), 1, axis=0), rtol=1e-12, atol=0)
    capsys.readouterr()
    assert zoo(["reproduce", str(others.id), "--db", db]) == 0
    assert "reproduced: bit-identical" in capsys.readouterr().out


def test_zoo_probe_of_a_cells_fit_names_and_reads_the_cells_it_fitted(recording, tmp_path, capsys):
    """``zoo probe --checkpoint`` of a ``zoo fit --cells`` fit: the weights of 2 cells were refused by ``zoo probe
    reduction`` (``weights for 2 cells, but ... test/response has 12``), and ``zoo probe osr`` printed them as cell01
    and cell02 and said they were the recording's cells. Now summary.json's selection is read: the reduction probe
    analyses the test split of those cells (its numbers the library's for the model's outputs), both name them as the
    file does (cell03, cell05), and a cell the fit left out is refused naming those fitted."""
    from neurozoo.datasets.synthetic_retina import generate_recording
    from neurozoo.leaderboard.cli import main as zoo
    from neurozoo.retina.embedded_fit import load_checkpoint
    from neurozoo.retina.fit import create_model
    from neurozoo.retina.phenomena.osr import omitted_stimulus_response
    from neurozoo.retina.reduction import reduction_report

    ln_fit = tmp_path / "ln"
    assert zoo(["fit", "ln", "--data", str(recording), *FIT, "--out", str(ln_fit), "--cells", "cell05,2"]) == 0
    capsys.readouterr()
    assert zoo(["probe", "osr", "ln", "--checkpoint", str(ln_fit / "model.pt"), "--out", str(tmp_path / "osr")]) == 0
    printed = capsys.readouterr().out
    assert (f"{ln_fit / 'model.pt'}: a fit of 2 cells of {recording}, cell03, cell05 (zoo fit --cells; "
            f"{ln_fit / 'summary.json'}), not of the embedded circuit's 12\n") in printed
    record = json.loads((tmp_path / "osr" / "osr.json").read_text())
    assert record["cells"] == ["cell03", "cell05"] and record["provenance"]["fitted_to"]["cells"] == [2, 4]
    model = load_checkpoint(create_model("ln", n_cells=2), ln_fit / "model.pt")
    assert record["model_osr"]["slope"] == pytest.approx(omitted_stimulus_response(model).slope.tolist(), nan_ok=True)
    for name, slope in zip(("cell03", "cell05"), record["model_osr"]["slope"]):
        assert re.search(rf"^  {name}: slope {slope:6.2f} ", printed, re.M)
    assert "cell01" not in printed

    small = generate_recording(tmp_path / "small.h5", n_train=1000, n_test=160, n_repeats=3)
    cnn = tmp_path / "bncnn"
    assert zoo(["fit", "bncnn", "--data", str(small), *FIT, "--val-fraction", "0.3", "--out", str(cnn),
                "--cells", "4,2"]) == 0
    probe = ["probe", "reduction", "bncnn", "--checkpoint", str(cnn / "model.pt"), "--k", "1,2", "--steps", "2",
             "--frames", "20", "--quiet", "--out", str(tmp_path / "reduction")]
    assert zoo([*probe, "--cells", "cell05"]) == 0
    record = json.loads((tmp_path / "reduction" / "reduction.json").read_text())
    (row,) = record["cells"]
    assert (row["cell"], row["name"], record["figure_cells"]) == (1, "cell05", ["cell05"])  # the model's output 1
    model = load_checkpoint(create_model("bncnn", n_cells=2), cnn / "model.pt")
    movie = torch.as_tensor(read_experiment(small, "test").stimulus[:20 + 39])
    reports = reduction_report(model, movie, 1, layer=1, k=[1, 2], steps=2)
    assert row["ranking"] == reports[0]["ranking"]
    assert row["correlation"] == [report["correlation"] for report in reports]
    capsys.readouterr()
    assert zoo(probe) == 0  # every cell fitted: both, by the file's names
    record = json.loads((tmp_path / "reduction" / "reduction.json").read_text())
    assert [(row["cell"], row["name"]) for row in record["cells"]] == [(0, "cell03"), (1, "cell05")]
    assert zoo([*probe, "--cells", "1,4"]) == 2  # indices into the file's cells, as zoo fit --cells: cell02 unfitted
    assert ("zoo probe: error: --cells 1,4: cell02 is not among the cells the model was fitted to (zoo fit --cells: "
            "cell03 (2), cell05 (4))") in capsys.readouterr().err
    assert zoo([*probe, "--cells", "4"]) == 0 and json.loads(
        (tmp_path / "reduction" / "reduction.json").read_text())["figure_cells"] == ["cell05"]


def test_zoo_score_of_a_cells_fits_checkpoint_scores_the_cells_its_summary_records_and_reproduces(
        recording, tmp_path, capsys, monkeypatch):
    """``zoo score ln retina_h5.heldout --data FILE --checkpoint DIR/model.pt`` of a ``zoo fit --cells 4,2`` fit: its
    weights of 2 cells were refused (``does not hold weights of LN with 12 cells``); now scored on the cells its
    summary.json records (cell03, cell05), the score that of ``zoo score --cells 4,2`` (the same fit settings: the
    same weights) and of the same checkpoint on an h5py-written file of those cells alone; the record keeps the
    selection and zoo reproduce reruns it to the bit. ``--cells`` beside it is accepted naming those cells, refused
    naming both otherwise (weights of every cell of the file score on the cells it names); the weights without their
    summary.json are refused as before. A relative --checkpoint's
    record reproduces too (its settings.fitted_to named the summary.json as typed, the rerun by its absolute path)."""
    from neurozoo.benchmarks.records import ResultsStore
    from neurozoo.leaderboard.cli import main as zoo

    fit = tmp_path / "fit"
    assert zoo(["fit", "ln", "--data", str(recording), *FIT, "--out", str(fit), "--cells", "4,2"]) == 0
    weights = str(fit / "model.pt")
    db, out = f"sqlite:///{tmp_path / 'r.sqlite'}", str(tmp_path / "out")
    score = ["score", "ln", "retina_h5.heldout", "--db", db, "--out", out]
    alone = _subset_file(recording, tmp_path / "alone.h5", [2, 4])
    monkeypatch.chdir(tmp_path)
    assert zoo([*score, "--data", str(recording), "--checkpoint", "fit/model.pt"]) == 0  # relative, as typed
    with fitting_one_epoch():  # zoo fit's settings above
        assert zoo([*score, "--data", str(recording), "--cells", "4,2"]) == 0
    assert zoo([*score, "--data", str(alone), "--checkpoint", weights]) == 0  # 2 cells, as many as the weights
    assert zoo([*score, "--data", str(recording), "--checkpoint", weights, "--cells", "cell05,2"]) == 0
    of_checkpoint, of_cells, of_alone, agreeing = ResultsStore(db).records()
    assert [row["cell"] for row in of_checkpoint.per_bin] == ["cell03", "cell05"]
    assert np.abs(_per_cell(of_checkpoint)[:, 0]).min() > 0.01  # correlations of a fit, not zeros that match anyway
    # the benchmark's fit of those cells has the checkpoint's weights, so the same numbers to the bit
    assert (of_checkpoint.value, of_checkpoint.ceiling, of_checkpoint.per_bin) == (
        of_cells.value, of_cells.ceiling, of_cells.per_bin)
    assert [row["cell"] for row in of_alone.per_bin] == ["cell01", "cell02"]
    np.testing.assert_allclose(_per_cell(of_checkpoint), _per_cell(of_alone), rtol=1e-5, atol=1e-6)
    assert (agreeing.value, agreeing.per_bin) == (of_checkpoint.value, of_checkpoint.per_bin)
    settings = of_checkpoint.settings
    assert settings["cells"] == settings["fitted_to"]["cells"] == [2, 4] and "cells" not in settings["rerun"]
    assert "cells" not in of_alone.settings
    assert agreeing.settings["cells"] == [2, 4] and agreeing.settings["rerun"]["cells"] == "cell05,2"
    # the weights of those cells on the whole file are marked so, on the file of those cells alone not
    assert [r.model for r in (of_checkpoint, of_cells, of_alone, agreeing)] == [
        "ln@model.pt (cells 2,4)", "ln (cells 2,4)", "ln@model.pt", "ln@model.pt (cells 2,4)"]
    for record in (of_checkpoint, agreeing):
        capsys.readouterr()
        assert zoo(["reproduce", str(record.id), "--db", db]) == 0
        assert "reproduced: bit-identical" in capsys.readouterr().out

    capsys.readouterr()
    assert zoo([*score, "--data", str(recording), "--checkpoint", weights, "--cells", "1,2"]) == 2
    assert (f"zoo score: error: --cells 1,2 selects cell02, cell03 of {recording}, but --checkpoint {weights} scores "
            f"on cell03, cell05 (a zoo fit --cells fit of those, as {fit / 'summary.json'} records): leave --cells "
            "out, or give those\n") in capsys.readouterr().err
    # weights of every cell of the file: --cells scores their outputs of those cells
    assert zoo([*score, "--data", str(alone), "--checkpoint", weights, "--cells", "1"]) == 0
    one = ResultsStore(db).records()[-1]
    assert one.settings["cells"] == [1] and [row["cell"] for row in one.per_bin] == ["cell02"]
    assert one.model == "ln@model.pt (cells 1)"
    np.testing.assert_allclose(_per_cell(one), _per_cell(of_alone)[1:], rtol=1e-12, atol=0)
    bare = tmp_path / "bare" / "model.pt"  # the weights without the summary.json that names their cells
    bare.parent.mkdir()
    shutil.copy(fit / "model.pt", bare)
    assert zoo([*score, "--data", str(recording), "--checkpoint", str(bare)]) == 2
    assert f"zoo score: error: {bare}: does not hold weights of LN with 12 cells" in capsys.readouterr().err
    assert zoo([*score, "--data", str(recording), "--checkpoint", str(bare), "--cells", "2,4"]) == 2
    assert ("scores on every cell (12) (its weights hold 2 cells, and no summary.json beside them records which of "
            "the file's 12 they are (no summary.json beside model.pt") in capsys.readouterr().err
    assert len(ResultsStore(db).records()) == 5

    # the API: a fitted module with the cells its outputs are (cells=), its output count checked against them
    from neurozoo.benchmarks.retina import RetinaFileHeldoutBenchmark
    from neurozoo.retina.embedded_fit import load_checkpoint
    from neurozoo.retina.fit import create_model

    module = load_checkpoint(create_model("ln", n_cells=2), fit / "model.pt")
    api = RetinaFileHeldoutBenchmark().score(module, recording, cells="cell05,2", progress=False)
    assert (api.value, api.per_bin, api.provenance["settings"]["cells"]) == (
        of_checkpoint.value, of_checkpoint.per_bin, [2, 4])
    with pytest.raises(DataError, match=re.escape(f"cells [2]: selects 1 of {recording.resolve()}'s cells (cell03), "
                                                  "but the fitted LN has 2 outputs; expected the cells it was fitted "
                                                  "to")):
        RetinaFileHeldoutBenchmark().score(module, recording, cells=[2], progress=False)


def test_zoo_probe_reduction_of_a_cells_fit_on_a_file_of_those_cells_alone_analyses_them_all(recording, tmp_path,
                                                                                             capsys):
    """``zoo probe reduction --checkpoint`` of a ``zoo fit --cells 4,2`` fit with ``--data`` a file of those 2 cells
    alone (the weights' count): before summary.json's selection was read, the 2-cell weights were analysed on its 2
    cells; then the selection [2, 4] was applied to that file too and refused (``cell index 2 is out of range``). The
    file's cells are now all analysed, as ``zoo score --checkpoint`` scores such a file
    (:func:`benchmarks.retina_file_cells.checkpoint_file_cells`); a file of more cells still gets the selection."""
    from neurozoo.datasets.synthetic_retina import generate_recording
    from neurozoo.leaderboard.cli import main as zoo

    small = generate_recording(tmp_path / "small.h5", n_train=1000, n_test=160, n_repeats=3)
    alone = _subset_file(small, tmp_path / "alone.h5", [2, 4])
    cnn = tmp_path / "bncnn"
    assert zoo(["fit", "bncnn", "--data", str(small), *FIT, "--val-fraction", "0.3", "--out", str(cnn),
                "--cells", "4,2"]) == 0
    probe = ["probe", "reduction", "bncnn", "--checkpoint", str(cnn / "model.pt"), "--k", "1", "--steps", "2",
             "--frames", "20", "--quiet", "--out", str(tmp_path / "reduction")]
    capsys.readouterr()
    assert zoo([*probe, "--data", str(alone)]) == 0, capsys.readouterr().err
    record = json.loads((tmp_path / "reduction" / "reduction.json").read_text())
    assert [(row["cell"], row["name"]) for row in record["cells"]] == [(0, "cell01"), (1, "cell02")]
    assert zoo([*probe, "--data", str(small)]) == 0  # the file fitted: its cells the fit chose
    record = json.loads((tmp_path / "reduction" / "reduction.json").read_text())
    assert [(row["cell"], row["name"]) for row in record["cells"]] == [(0, "cell03"), (1, "cell05")]
