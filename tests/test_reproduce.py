"""`zoo reproduce RECORD`: a stored score is computed again from its record alone and compared number by number.

Tiny benchmarks (96 synthetic stimuli of 16 px; a 2500-frame retina recording fitted for one epoch) keep each
rerun to seconds; the defaults of zoo score and zoo run take the same code path."""
import dataclasses
import json
import re
import shutil
import sqlite3

import pytest
import torch

from neurozoo import benchmarks
from neurozoo.benchmarks.records import ResultsStore
from neurozoo.datasets.provenance import sha256_file
from neurozoo.leaderboard.cli import main

NEURAL, RETINA = "reprotest.V4", "reprotest.retina-heldout"
RETINA_SIZES = dict(n_train=2500, n_test=200, n_repeats=2)


def _neural():
    from neurozoo.benchmarks.extraction import Stimuli
    from neurozoo.benchmarks.neural import NeuralBenchmark
    from neurozoo.benchmarks.synthetic import synthetic_assembly

    assembly = synthetic_assembly(n_stimuli=96, n_neuroids=8, n_bins=2, n_repetitions=4, n_objects=4, seed=0)[0]
    ids = [f"s{i:05d}" for i in range(96)]
    images = torch.randn(96, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    return NeuralBenchmark(NEURAL, "V4", lambda: assembly, lambda: Stimuli(ids, images))


def _retina():
    from neurozoo.benchmarks.retina import RetinaHeldoutBenchmark

    return RetinaHeldoutBenchmark("whitenoise", sizes=dict(RETINA_SIZES), fit_settings={"epochs": 1})


@pytest.fixture
def tiny_benchmarks():
    benchmarks.BENCHMARKS.add(NEURAL, _neural, overwrite=True, region="V4")
    benchmarks.BENCHMARKS.add(RETINA, _retina, overwrite=True, family="retina", region="held-out responses")
    yield
    for name in (NEURAL, RETINA):
        benchmarks.BENCHMARKS._entries.pop(name, None)


def _zoo(*argv):
    return main([str(a) for a in argv])


def _score(db, *extra):
    assert _zoo("score", "feedforward_intermediate", NEURAL, "--width", "0.0625", "--max-features", "20",
                "--layers", "conv3", "--db", db, *extra) == 0


def _tamper(db_file, record_id, **values):
    with sqlite3.connect(db_file) as connection:
        for column, value in values.items():
            connection.execute(f"UPDATE scores SET {column} = ? WHERE id = ?", (value, record_id))


def test_a_zoo_score_record_keeps_what_produced_it_and_reruns_bit_identically(tmp_path, tiny_benchmarks, capsys,
                                                                             monkeypatch):
    db_file = tmp_path / "r.sqlite"
    db = f"sqlite:///{db_file}"
    _score(db, "--seed", "3", "--out", tmp_path / "out")
    record = ResultsStore(db).records()[-1]
    settings = record.settings
    assert settings["rerun"]["seed"] == 3 and settings["model_seed"] == 3 and settings["max_features"] == 20
    assert settings["rerun"]["width"] == 0.0625 and settings["rerun"]["layers"] == "conv3"
    assert len(settings["model_sha256"]) == 64 and settings["environment"]["torch"] == torch.__version__
    capsys.readouterr()
    assert _zoo("reproduce", record.id, "--db", db) == 0
    out = capsys.readouterr().out
    assert "reproduced: bit-identical" in out and "differs" not in out
    # another seed is another model: its record differs and is not a rerun of the first
    _score(db, "--seed", "4", "--out", tmp_path / "out")
    other = ResultsStore(db).records()[-1]
    assert other.settings["model_sha256"] != settings["model_sha256"] and other.value != record.value
    assert (record.seed, other.seed) == (3, 4)  # before: both 0, the benchmark's split seed
    # the comparison can fail: a stored number that the rerun does not give
    _tamper(db_file, record.id, value=record.value + 1e-9)
    capsys.readouterr()
    assert _zoo("reproduce", record.id, "--db", db) == 1
    assert "NOT reproduced: largest difference 1e-09 > tolerance 0" in capsys.readouterr().out
    assert _zoo("reproduce", record.id, "--db", db, "--tolerance", "1e-8") == 0
    # the rerun uses the thread counts the record was scored with, torch's and the BLAS's (float sums are grouped per
    # thread: OPENBLAS_NUM_THREADS=1 against 2 moved a V4 score by 3.4e-8, unrecorded, torch's count unchanged)
    from neurozoo.datasets.provenance import blas_threads

    blas = blas_threads()
    assert settings["environment"]["blas_threads"] == blas and settings["environment"]["scipy"]
    other = 1 if blas != 1 else 2
    seen = []
    monkeypatch.setattr("neurozoo.leaderboard.reproduce._rerun",
                        lambda *a, **k: seen.append((torch.get_num_threads(), blas_threads())) or record)
    with sqlite3.connect(db_file) as connection:
        environment = {**record.settings["environment"], "torch_threads": 2, "blas_threads": other}
        connection.execute("UPDATE scores SET settings = ? WHERE id = ?",
                           (json.dumps({**record.settings, "environment": environment}), record.id))
    capsys.readouterr()
    _zoo("reproduce", record.id, "--db", db)
    out = capsys.readouterr().out
    assert seen == [(2, other)] and "using 2 torch threads" in out and f"using {other} BLAS threads" in out
    assert torch.get_num_threads() == 1 and blas_threads() == blas


def test_a_zoo_score_record_states_the_extraction_it_used_defaults_included(tmp_path, tiny_benchmarks):
    """settings["extraction"] kept only the options given (zoo score: max_features, batch_size): the projection's
    seed, the unroll (n_steps, image_steps) and the inference path (the CPU fast path's options) that the features
    were computed with were extract()'s defaults, in the record nowhere, so a default changed since showed in a rerun
    as other numbers only. They are recorded as the extraction resolved them (the activation cache's key says the
    same)."""
    import inspect

    from neurozoo.benchmarks.extraction import extract
    from neurozoo.benchmarks.extraction.activations import CPU_FAST

    db = f"sqlite:///{tmp_path / 'r.sqlite'}"
    _score(db, "--out", tmp_path / "out")
    extraction = ResultsStore(db).records()[-1].settings["extraction"]
    defaults = {name: p.default for name, p in inspect.signature(extract).parameters.items()}
    assert extraction["max_features"] == 20 and extraction["seed"] == defaults["seed"] == 0
    assert (extraction["n_steps"], extraction["image_steps"]) == (defaults["n_steps"], defaults["image_steps"])
    assert extraction["batch_size"] == defaults["batch_size"]
    assert extraction["inference"] == {"path": "fast", **{k: str(v) for k, v in sorted(CPU_FAST.items())}}
    _score(db, "--out", tmp_path / "out", "--batch-size", "16")  # given, as before: the option's value
    assert ResultsStore(db).records()[-1].settings["extraction"]["batch_size"] == 16


def test_a_changed_checkpoint_or_a_record_without_rerun_is_one_line(tmp_path, tiny_benchmarks, capsys):
    from neurozoo import convrnn

    db = f"sqlite:///{tmp_path / 'r.sqlite'}"
    checkpoint = tmp_path / "w.pt"
    torch.manual_seed(0)
    torch.save(convrnn.create_model("feedforward_intermediate", width_multiplier=0.0625).state_dict(), checkpoint)
    _score(db, "--checkpoint", checkpoint, "--out", tmp_path / "out")
    record = ResultsStore(db).records()[-1]
    assert record.settings["rerun"]["checkpoint"]["sha256"] and record.model == "feedforward_intermediate@w.pt"
    state = torch.load(checkpoint, weights_only=True)
    next(iter(state.values())).add_(1.0)
    torch.save(state, checkpoint)
    capsys.readouterr()
    assert _zoo("reproduce", record.id, "--db", db) == 2
    err = capsys.readouterr().err
    assert "has changed since" in err and "w.pt" in err and err.count("\n") == 1
    from neurozoo.benchmarks.records import ScoreRecord

    old = ResultsStore(db).add(ScoreRecord(model="m", benchmark=NEURAL, value=0.5))
    assert _zoo("reproduce", old, "--db", db) == 2
    assert "does not keep how it was produced" in capsys.readouterr().err
    assert _zoo("reproduce", 999, "--db", db) == 2


def test_zoo_run_records_rerun_from_their_spec_public_and_hidden(tmp_path, tiny_benchmarks, capsys, monkeypatch):
    from neurozoo.leaderboard.db import LeaderboardDB
    from neurozoo.leaderboard.run import run_zoo

    db = f"sqlite:///{tmp_path / 'lb.sqlite'}"
    run_zoo(db, ["feedforward_intermediate"], [NEURAL], width_multiplier=0.0625, max_features=20,
            report=tmp_path / "report", progress=False, echo=lambda *a: None)
    job = LeaderboardDB(db).jobs()[0]
    for record_id in (job["score_id"], job["hidden_score_id"]):
        record = ResultsStore(db).get(record_id)
        assert record.settings["rerun"] == {"command": "zoo run", "spec": job["spec"]}
        # the options it extracted with, as a zoo score record keeps them (it recorded the benchmark's {})
        extraction = record.settings["extraction"]
        assert extraction == {"max_features": 20, "seed": 0, "batch_size": 32, "n_steps": 26, "image_steps": 10,
                              "inference": extraction["inference"]} and extraction["inference"]["path"] == "fast"
        capsys.readouterr()
        assert _zoo("reproduce", record_id, "--db", db) == 0, capsys.readouterr()
        assert "bit-identical" in capsys.readouterr().out
    # a record stored before records kept their rerun: the job's spec says it
    record = ResultsStore(db).get(job["score_id"])
    settings = {k: v for k, v in record.settings.items() if k != "rerun"}
    with sqlite3.connect(tmp_path / "lb.sqlite") as connection:
        connection.execute("UPDATE scores SET settings = ? WHERE id = ?", (json.dumps(settings), record.id))
    capsys.readouterr()
    assert _zoo("reproduce", record.id, "--db", db) == 0 and "bit-identical" in capsys.readouterr().out
    monkeypatch.setenv("NEUROZOO_HOME", str(tmp_path / "another-home"))  # another secret: another split
    assert _zoo("reproduce", job["hidden_score_id"], "--db", db) == 2
    assert "drawn with another host's secret" in capsys.readouterr().err


#: the ``zoo fit`` the tests below start from (its --data and --out added); ``ln_fit`` runs it once per process
LN_FIT = ("fit", "ln", "--epochs", "1", "--seed", "3", "--quiet")


@pytest.fixture(scope="module")
def ln_fit(tmp_path_factory, session_cache):
    """``(recording, folder)``: :data:`LN_FIT` on the tiny embedded recording, into a folder of the module's. A test
    that needs a finished fit to begin with copies the folder (``_fitted``) rather than fitting again (a third of its
    time). Run with the test session's cache and home, which the function-scoped ``_isolated_cache`` sets only
    later."""
    from neurozoo.datasets.synthetic_retina import load_embedded_retina

    out = tmp_path_factory.mktemp("ln-fit") / "fit"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NEUROZOO_CACHE", session_cache)
        patch.setenv("NEUROZOO_HOME", str(tmp_path_factory.getbasetemp() / "home"))
        data = load_embedded_retina("whitenoise", **RETINA_SIZES)
        assert _zoo(*LN_FIT, "--data", data, "--out", out) == 0
    return data, out


def _fitted(ln_fit, folder):
    """A copy of ``ln_fit``'s finished fit in ``folder``, as :data:`LN_FIT` with ``--out folder`` leaves it; the
    argv of that command. A test may change its copy, never the fixture's folder."""
    data, made = ln_fit
    shutil.copytree(made, folder)
    return [*LN_FIT, "--data", data, "--out", folder]


def _private_cache(tmp_path, monkeypatch):
    """A cache of this test's own, for a test that deletes or damages cached files: the run's cache is shared by
    the workers of a parallel run (conftest ``session_cache``), where another test may be reading or fitting them."""
    monkeypatch.setenv("NEUROZOO_CACHE", str(tmp_path / "private-cache"))


def test_a_retina_record_refits_from_scratch_and_gives_the_same_numbers(tmp_path, tiny_benchmarks, capsys,
                                                                         monkeypatch):
    """The rerun fits again in a temporary folder (the fit cache is neither read nor replaced)."""
    from neurozoo.datasets.synthetic_retina import load_embedded_retina

    _private_cache(tmp_path, monkeypatch)

    db = f"sqlite:///{tmp_path / 'r.sqlite'}"
    assert _zoo("score", "ln", RETINA, "--db", db, "--out", tmp_path / "out") == 0
    record = ResultsStore(db).records()[-1]
    fits = load_embedded_retina("whitenoise", **RETINA_SIZES).parent / "fits"
    assert any(fits.rglob("checkpoint.pt")) and len(record.per_bin) > 0
    shutil.rmtree(fits)  # the rerun cannot read the fit: it fits again, elsewhere
    capsys.readouterr()
    assert _zoo("reproduce", record.id, "--db", db) == 0
    assert "reproduced: bit-identical" in capsys.readouterr().out
    assert not fits.exists()  # the shared fit cache was neither read nor written


def test_a_score_of_a_cached_fit_records_the_fits_thread_count_and_reruns_under_it(tmp_path, tiny_benchmarks, capsys,
                                                                                    monkeypatch):
    """A score read from the fit cache ran under its own thread count, not the fit's: the record kept only its own,
    and the rerun fitted again under it (measured: `zoo score ln` of a 1-thread fit scored on 2 threads, then
    `zoo reproduce`, differed by 1.7e-6 with nothing said)."""
    from neurozoo.retina.fit import FIT_PROTOCOL

    _private_cache(tmp_path, monkeypatch)
    db = f"sqlite:///{tmp_path / 'r.sqlite'}"
    assert _zoo("score", "ln", RETINA, "--db", db, "--out", tmp_path / "out") == 0  # fitted under 1 thread
    fitted = ResultsStore(db).records()[-1].settings["fit_provenance"]
    assert len(fitted["model_sha256"]) == 64  # the fitted weights' (module_sha256), read back equal from the cache
    assert fitted == {"origin": "fitted", "fit_protocol": FIT_PROTOCOL, "torch_threads": [1], "best_epoch": 0,
                      "model_sha256": fitted["model_sha256"]}
    torch.set_num_threads(2)  # scoring only (a 2-thread fit is slow on a busy 2-core machine: test_retina_fit's)
    try:
        assert _zoo("score", "ln", RETINA, "--db", db, "--out", tmp_path / "out") == 0  # read from the fit cache
    finally:
        torch.set_num_threads(1)
    record = ResultsStore(db).records()[-1]
    assert record.settings["environment"]["torch_threads"] == 2
    assert record.settings["fit_provenance"] == {**fitted, "origin": "cached"}
    seen = []
    monkeypatch.setattr("neurozoo.leaderboard.reproduce._rerun",
                        lambda *a, **k: seen.append(torch.get_num_threads()) or record)
    capsys.readouterr()
    assert _zoo("reproduce", record.id, "--db", db) == 0
    assert seen == [1] and "bit-identical" in capsys.readouterr().out
    # other weights with the same numbers (a fit on another CPU, within a tolerance): said, not a mismatch
    record.settings = {**record.settings, "fit_provenance": {**fitted, "model_sha256": "0" * 64}}
    assert _zoo("reproduce", record.id, "--db", db) == 0
    assert f"differs: fit_provenance.model_sha256: stored {fitted['model_sha256']}, rerun {'0' * 64}" \
        in capsys.readouterr().out


def test_zoo_runs_of_two_configurations_keep_two_leaderboard_rows(tmp_path, tiny_benchmarks):
    """Before: both widths were 'feedforward_intermediate', and the board showed only the newer run's score."""
    from neurozoo.leaderboard.db import LeaderboardDB
    from neurozoo.leaderboard.run import run_zoo
    from neurozoo.leaderboard.views import board
    from neurozoo.leaderboard.zoo import DEFAULT_WIDTH

    db = f"sqlite:///{tmp_path / 'lb.sqlite'}"
    for width, features in ((DEFAULT_WIDTH, 200), (0.0625, 200), (0.0625, 20)):
        run_zoo(db, ["feedforward_intermediate"], [NEURAL], width_multiplier=width, max_features=features,
                report=tmp_path / "report", progress=False, echo=lambda *a: None)
    lb = LeaderboardDB(db)
    rows = {row["model"]: row["nodes"][NEURAL][0] for row in board(lb)["rows"]}
    assert set(rows) == {"feedforward_intermediate", "feedforward_intermediate (width 0.0625)",
                         "feedforward_intermediate (width 0.0625, 20 features)"}
    stored = {job["model"]: lb.get(job["hidden_score_id"]).value for job in lb.jobs()}
    assert rows == stored  # each row shows its own job's score (the two widths score differently)
    assert rows["feedforward_intermediate"] != rows["feedforward_intermediate (width 0.0625)"]


def test_a_truncated_cached_fit_is_fitted_again_and_scores_the_same(tmp_path, tiny_benchmarks, capsys, monkeypatch):
    """Before: every later zoo score / zoo run / zoo probe of that model failed on the damaged cache entry."""
    from neurozoo.datasets.synthetic_retina import load_embedded_retina

    _private_cache(tmp_path, monkeypatch)

    db = f"sqlite:///{tmp_path / 'r.sqlite'}"
    assert _zoo("score", "ln", RETINA, "--db", db, "--out", tmp_path / "out") == 0
    fits = load_embedded_retina("whitenoise", **RETINA_SIZES).parent / "fits"
    for checkpoint in fits.rglob("checkpoint.pt"):
        checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    with pytest.warns(UserWarning, match="cached fit .*checkpoint.pt: not a readable PyTorch file.*fitting again"):
        assert _zoo("score", "ln", RETINA, "--db", db, "--out", tmp_path / "out") == 0
    # the same score: zoo score reuses the first record, identical in all but its time, instead of storing another
    assert len(ResultsStore(db).records()) == 1


def test_a_cached_fit_recording_no_fitting_protocol_is_fitted_again(tmp_path, tiny_benchmarks, monkeypatch):
    """Checkpoints written before they recorded their fitting protocol are refused by a resume (retina.fit.fit); the
    fit cache, whose folder names the protocol, fits such an entry again, warning, instead of failing every score."""
    from neurozoo.datasets.synthetic_retina import load_embedded_retina

    _private_cache(tmp_path, monkeypatch)

    db = f"sqlite:///{tmp_path / 'r.sqlite'}"
    assert _zoo("score", "ln", RETINA, "--db", db, "--out", tmp_path / "out") == 0
    fits = load_embedded_retina("whitenoise", **RETINA_SIZES).parent / "fits"
    for checkpoint in fits.rglob("checkpoint.pt"):
        saved = torch.load(checkpoint, weights_only=False)
        del saved["fit_protocol"]  # as written before the record
        torch.save(saved, checkpoint)
    with pytest.warns(UserWarning, match="cached fit .*checkpoint.pt: records no fitting protocol.*fitting again"):
        assert _zoo("score", "ln", RETINA, "--db", db, "--out", tmp_path / "out") == 0
    # the same score: zoo score reuses the first record, identical in all but its time, instead of storing another
    assert len(ResultsStore(db).records()) == 1


def test_zoo_fit_on_a_truncated_checkpoint_says_how_to_go_on(tmp_path, capsys, ln_fit):
    argv = _fitted(ln_fit, tmp_path / "fit")
    checkpoint = tmp_path / "fit" / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    capsys.readouterr()
    assert _zoo(*argv) == 2
    err = capsys.readouterr().err
    assert "checkpoint.pt: not a readable PyTorch file" in err and "--no-resume" in err and err.count("\n") == 1
    assert _zoo(*argv, "--no-resume") == 0


def test_a_truncated_embedded_recording_is_generated_again_bit_identically(tmp_path, monkeypatch):
    """Before: every retina score and fit failed on the damaged file ('not a readable HDF5 file') until deleted."""
    from neurozoo.datasets.provenance import sha256_file
    from neurozoo.datasets.synthetic_retina import load_embedded_retina

    _private_cache(tmp_path, monkeypatch)

    path = load_embedded_retina("whitenoise", **RETINA_SIZES)
    digest = sha256_file(path)
    path.write_bytes(path.read_bytes()[:20000])
    with pytest.warns(UserWarning, match="cached recording cannot be read .*generating it again"):
        assert load_embedded_retina("whitenoise", **RETINA_SIZES) == path
    assert sha256_file(path) == digest


def test_a_fresh_fit_killed_in_a_used_folder_leaves_no_earlier_results_beside_it(tmp_path, monkeypatch, ln_fit):
    """Before: zoo fit --no-resume (or other settings) killed mid-way left the earlier fit's model.pt and
    summary.json beside the new fit's checkpoint, as if they were its results; and, killed before its first epoch's
    checkpoint, the earlier fit's checkpoint, which the same command without --no-resume then resumed (here refused:
    "a fit with other settings (lr 0.01 -> 0.003)"; with the same settings it read the earlier fit as this one's)."""
    from neurozoo.retina import fit as fitting

    argv = _fitted(ln_fit, tmp_path / "fit")
    results = ("model.pt", "history.json", "summary.json", "heldout_metrics.csv", "fit_curve.png")
    assert all((tmp_path / "fit" / name).is_file() for name in results)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fitting, "_train_steps", killed)
    assert _zoo(*argv, "--no-resume", "--lr", "0.003") == 130
    assert [name for name in ("checkpoint.pt",) + results if (tmp_path / "fit" / name).exists()] == []
    # kept aside, whole, until the new fit's first checkpoint (docs/retina.md)
    assert all((tmp_path / "fit" / "earlier-fit" / name).is_file() for name in ("checkpoint.pt",) + results)
    assert _zoo(*argv, "--lr", "0.003") == 130  # the rerun fits afresh: it trains (killed again), not refused


def test_two_checkpoints_of_one_file_name_get_two_leaderboard_names(tmp_path, tiny_benchmarks):
    """Before: both were 'feedforward_intermediate@w', one row for two sets of weights."""
    from neurozoo.leaderboard.zoo import display_name, zoo_specs

    from neurozoo import convrnn

    names = []
    state = convrnn.create_model("feedforward_intermediate", width_multiplier=0.125).state_dict()
    for folder, value in (("a", 0.0), ("b", 1.0)):  # weights that fit: zoo_specs refuses others before queueing
        (tmp_path / folder).mkdir()
        torch.save({**state, "layers.conv1.stage.0.bias": torch.full_like(state["layers.conv1.stage.0.bias"], value)},
                   tmp_path / folder / "w.pt")
        specs, _ = zoo_specs(["feedforward_intermediate"], [NEURAL],
                             checkpoints={"feedforward_intermediate": str(tmp_path / folder / "w.pt")})
        names.append(display_name(specs[0]))
    assert names[0] != names[1] and all(n.startswith("feedforward_intermediate@w (weights ") for n in names)


def test_a_zoo_run_checkpoint_given_by_a_relative_path_reproduces_from_another_folder(tmp_path, tiny_benchmarks,
                                                                                      capsys, monkeypatch):
    """zoo run kept --checkpoint MODEL=PATH in its job's spec as given: a record scored with a relative path was
    reproduced only from the folder zoo run ran in (from any other: "its checkpoint w.pt is gone"). The spec keeps the
    resolved path now, as zoo score's record does; the display name keeps the file's name."""
    from neurozoo import convrnn
    from neurozoo.leaderboard.db import LeaderboardDB
    from neurozoo.leaderboard.run import run_zoo

    (tmp_path / "lab").mkdir()
    (tmp_path / "elsewhere").mkdir()
    torch.manual_seed(1)
    torch.save(convrnn.create_model("feedforward_intermediate", width_multiplier=0.0625).state_dict(),
               tmp_path / "lab" / "w.pt")
    db = f"sqlite:///{tmp_path / 'lb.sqlite'}"
    monkeypatch.chdir(tmp_path / "lab")
    run_zoo(db, ["feedforward_intermediate"], [NEURAL], width_multiplier=0.0625, max_features=20,
            checkpoints={"feedforward_intermediate": "w.pt"}, report=tmp_path / "report", progress=False,
            echo=lambda *a: None)
    job = LeaderboardDB(db).jobs()[0]
    assert job["spec"]["checkpoint"]["path"] == str((tmp_path / "lab" / "w.pt").resolve())
    assert job["model"].startswith("feedforward_intermediate@w (weights ")
    monkeypatch.chdir(tmp_path / "elsewhere")
    capsys.readouterr()
    assert _zoo("reproduce", job["score_id"], "--db", db) == 0, capsys.readouterr()
    assert "reproduced: bit-identical" in capsys.readouterr().out


def test_an_older_zoo_run_record_of_a_relative_checkpoint_reproduces_from_its_folder_and_says_so_elsewhere(
        tmp_path, tiny_benchmarks, capsys, monkeypatch):
    """A zoo run record stored before the spec kept the checkpoint resolved (2026-12-05) names it as given, ``w.pt``:
    from the folder zoo run ran in the file is found and its sha256 checked (reproduced); from any other zoo reproduce
    said only "its checkpoint w.pt is gone", and now says the path is relative, where it looked and where to run it
    from. Another file of that name there is refused by its sha256, never scored as the record's."""
    from neurozoo import convrnn
    from neurozoo.leaderboard.db import LeaderboardDB
    from neurozoo.leaderboard.run import run_zoo

    (tmp_path / "lab").mkdir()
    (tmp_path / "elsewhere").mkdir()
    torch.manual_seed(1)
    torch.save(convrnn.create_model("feedforward_intermediate", width_multiplier=0.0625).state_dict(),
               tmp_path / "lab" / "w.pt")
    db_file = tmp_path / "lb.sqlite"
    db = f"sqlite:///{db_file}"
    monkeypatch.chdir(tmp_path / "lab")
    run_zoo(db, ["feedforward_intermediate"], [NEURAL], width_multiplier=0.0625, max_features=20,
            checkpoints={"feedforward_intermediate": "w.pt"}, report=tmp_path / "report", progress=False,
            echo=lambda *a: None)
    record = ResultsStore(db).get(LeaderboardDB(db).jobs()[0]["score_id"])
    settings = record.settings
    settings["rerun"]["spec"]["checkpoint"]["path"] = "w.pt"  # as zoo run kept it before 2026-12-05
    _tamper(db_file, record.id, settings=json.dumps(settings))
    monkeypatch.chdir(tmp_path / "elsewhere")
    capsys.readouterr()
    assert _zoo("reproduce", record.id, "--db", db) == 2
    sha = settings["rerun"]["spec"]["checkpoint"]["sha256"][:12]
    assert (f"record {record.id}: its checkpoint w.pt is gone (sha256 {sha}) (a relative path, which zoo run kept as "
            f"given before 2026-12-05: looked for from here, {tmp_path / 'elsewhere'}; run zoo reproduce from the "
            "folder zoo run ran in)") in capsys.readouterr().err
    torch.save({"other": torch.zeros(1)}, tmp_path / "elsewhere" / "w.pt")
    assert _zoo("reproduce", record.id, "--db", db) == 2
    assert f"its checkpoint w.pt is not the same file (sha256 {sha} then, " in capsys.readouterr().err
    monkeypatch.chdir(tmp_path / "lab")
    assert _zoo("reproduce", record.id, "--db", db) == 0
    assert "reproduced: bit-identical" in capsys.readouterr().out


def test_an_older_zoo_score_record_naming_its_checkpoints_summary_as_typed_reproduces(tmp_path, capsys,
                                                                                       monkeypatch, ln_fit):
    """zoo score --checkpoint fit/model.pt of a retina benchmark kept the summary.json beside the weights as typed
    before 2026-12-06 (settings.fitted_to.summary ``fit/summary.json``, and in fitted_to.reason and
    training_stimulus_from), the rerun by its resolved path: NOT reproduced, "whatever the numbers", from any
    folder. Where the typed path is the end of the resolved one (the folder it was typed in is then known), it is
    the same path, said in a note, and the record reproduces; where it is not (typed through a link), the record
    cannot tell, and is not reproduced, saying why and what to do. The record here is rewritten as the code before
    f524b06 wrote it (those three settings, checked against that code's own record of this command)."""
    from neurozoo.datasets.synthetic_retina import load_embedded_retina

    lab = tmp_path / "lab"
    lab.mkdir()
    (tmp_path / "elsewhere").mkdir()
    _fitted(ln_fit, lab / "fit")
    db_file = tmp_path / "r.sqlite"
    db = f"sqlite:///{db_file}"
    monkeypatch.chdir(lab)
    assert _zoo("score", "ln", "retina_h5.heldout", "--data", load_embedded_retina("whitenoise", **RETINA_SIZES),
                "--checkpoint", "fit/model.pt", "--db", db, "--out", tmp_path / "out") == 0
    (record,) = ResultsStore(db).records()
    resolved = str((lab / "fit" / "summary.json").resolve())
    assert record.settings["fitted_to"]["summary"] == resolved

    def as_typed(typed):  # the record as zoo score kept it before 2026-12-06
        stored = json.loads(json.dumps(record.settings).replace(resolved, typed))
        assert sorted(key for key in stored if stored[key] != record.settings[key]) == ["fitted_to",
                                                                                        "training_stimulus_from"]
        _tamper(db_file, record.id, settings=json.dumps(stored))

    as_typed("fit/summary.json")
    monkeypatch.chdir(tmp_path / "elsewhere")
    capsys.readouterr()
    assert _zoo("reproduce", record.id, "--db", db) == 0
    out = capsys.readouterr().out
    assert "reproduced: bit-identical" in out and "settings.fitted_to.summary: stored 'fit/summary.json'" in out
    assert (f"note: record {record.id} names its checkpoint's summary.json 'fit/summary.json' (as typed: zoo score "
            f"kept a relative --checkpoint's summary.json so before 2026-12-06), the rerun {resolved!r}: the same "
            f"path, typed in {lab.resolve()}, beside the checkpoint whose bytes the record's sha256 checked") in out

    (lab / "link").symlink_to(lab / "fit")  # --checkpoint link/model.pt: the record cannot tell that it is fit/
    as_typed("link/summary.json")
    assert _zoo("reproduce", record.id, "--db", db) == 1
    out = capsys.readouterr().out
    assert (f"names its checkpoint's summary.json 'link/summary.json' (as typed: zoo score kept a relative "
            f"--checkpoint's summary.json so before 2026-12-06), and the rerun read {resolved!r}, which does not end "
            "in that path (a '..' or a link on the way): the record cannot tell whether they are one file") in out
    assert (f"NOT reproduced: record {record.id}'s settings.fitted_to.reason, settings.fitted_to.summary, "
            "settings.training_stimulus_from are not the rerun's, whatever the numbers") in out


def test_a_fit_removes_what_a_killed_fit_left_half_written(tmp_path):
    """A process killed inside torch.save leaves checkpoint.pt.tmp-<host>-<pid> behind; the next fit in the folder removes
    it (before: it stayed in the fit cache for good); a live process's temporary file is left alone."""
    import os
    import subprocess

    from neurozoo.datasets.cache import temporary_suffix
    from neurozoo.datasets.synthetic_retina import load_embedded_retina
    from neurozoo.retina import create_model
    from neurozoo.retina.fit import fit

    ended = subprocess.Popen(["true"])
    ended.wait()
    out = tmp_path / "fit"
    out.mkdir()
    (out / f"checkpoint.pt{temporary_suffix(ended.pid)}").write_bytes(b"half a checkpoint")
    (out / f"checkpoint.pt{temporary_suffix(os.getppid())}").write_bytes(b"being written by a live process")
    data = load_embedded_retina("whitenoise", **RETINA_SIZES)
    fit(create_model("ln", n_cells=12), data, out=out, epochs=1, progress=False)
    assert not (out / f"checkpoint.pt{temporary_suffix(ended.pid)}").exists() and (out / f"checkpoint.pt{temporary_suffix(os.getppid())}").exists()


def test_dynamics_and_compare_records_rerun_from_their_arguments_and_every_number_is_compared(tmp_path, capsys):
    """zoo reproduce had no path for zoo dynamics / zoo compare records, though they keep their arguments: it runs
    the command line they give again (rebuilt through zoo's parser) and compares the value and every number of the
    settings (fixed points' q and eigenvalues, similarity matrices); a changed one is named."""
    db = tmp_path / "r.sqlite"
    url = f"sqlite:///{db}"
    assert _zoo("dynamics", "bistable", "--steps", "300", "--points", "64", "--seed", "1", "--slow-tol", "1e-5",
                "--db", url, "--out", tmp_path / "a") == 0
    assert _zoo("compare", "flipflop-rnn", "flipflop-gru", "--train-steps", "3", "--metrics", "cka", "--db", url,
                "--out", tmp_path / "a") == 0
    kinds = {record.benchmark.split(".")[0]: record for record in ResultsStore(url).records()}
    assert set(kinds) == {"dynamics", "compare"}
    lines = {
        "dynamics": "running again: zoo dynamics bistable --points 64 --steps 300 --slow-tol 1e-05 --seed 1",
        "compare": "running again: zoo compare flipflop-rnn flipflop-gru --metrics cka --train-steps 3"}
    for kind, record in kinds.items():
        capsys.readouterr()
        assert _zoo("reproduce", record.id, "--db", url) == 0
        out = capsys.readouterr().out
        assert lines[kind] in out and "reproduced: bit-identical" in out and "numbers of the settings" in out
        assert "figures:" not in out  # none drawn into the scratch folder: they were most of the rerun's time
    settings = json.loads(sqlite3.connect(db).execute("SELECT settings FROM scores WHERE id = ?",
                                                      (kinds["dynamics"].id,)).fetchone()[0])
    settings["points"][0]["eigenvalues_re"][0] += 1e-3
    _tamper(db, kinds["dynamics"].id, settings=json.dumps(settings))
    capsys.readouterr()
    assert _zoo("reproduce", kinds["dynamics"].id, "--db", url) == 1
    out = capsys.readouterr().out
    assert "NOT reproduced: largest difference 0.001" in out and "settings.points[0].eigenvalues_re[0]" in out
    settings.pop("arguments")  # a record stored before zoo dynamics kept its arguments
    _tamper(db, kinds["dynamics"].id, settings=json.dumps(settings))
    assert _zoo("reproduce", kinds["dynamics"].id, "--db", url) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not keep its arguments" in err and "run zoo dynamics again" in err


def test_a_dynamics_record_of_a_checkpoint_reruns_from_anywhere_and_refuses_changed_weights(tmp_path, capsys,
                                                                                           monkeypatch):
    """zoo dynamics kept --checkpoint as given: a relative path, which zoo reproduce run from another folder could not
    find ("checkpoint runs/t1/best.pth does not exist"), and no sha256, so weights overwritten since (a resumed
    zoo train rewrites best.pth) were analysed as if they were the record's. The record keeps the absolute path and
    the file's sha256, and the rerun refuses a changed file, naming it, as zoo score's records do."""
    from neurozoo import convrnn

    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    (tmp_path / "run").mkdir()
    monkeypatch.chdir(tmp_path / "run")
    torch.manual_seed(0)
    torch.save(convrnn.create_model("rgc_shallow", width_multiplier=0.125).state_dict(), "w.pt")
    assert _zoo("dynamics", "rgc_shallow", "--checkpoint", "w.pt", "--width", "0.125", "--image-size", "32",
                "--set", "n_steps=14", "--points", "2", "--steps", "3", "--n-images", "2", "--db", url,
                "--out", tmp_path / "a") == 0
    [record] = ResultsStore(url).records()
    checkpoint = tmp_path / "run" / "w.pt"
    assert record.settings["arguments"]["checkpoint"] == str(checkpoint)
    assert record.settings["checkpoint_sha256"] == sha256_file(checkpoint)
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert _zoo("reproduce", record.id, "--db", url) == 0
    assert "reproduced: bit-identical" in capsys.readouterr().out
    original, state = checkpoint.read_bytes(), torch.load(checkpoint, weights_only=True)
    next(iter(state.values())).add_(1.0)
    torch.save(state, checkpoint)
    assert _zoo("reproduce", record.id, "--db", url) == 2
    err = capsys.readouterr().err
    assert "has changed since" in err and str(checkpoint) in err and err.count("\n") == 1
    settings = dict(record.settings, arguments=dict(record.settings["arguments"], checkpoint="w.pt"))
    del settings["checkpoint_sha256"]  # a record stored before: the path as given, no sha256; rerun where it was made
    _tamper(tmp_path / "r.sqlite", record.id, settings=json.dumps(settings))
    checkpoint.write_bytes(original)
    monkeypatch.chdir(tmp_path / "run")
    assert _zoo("reproduce", record.id, "--db", url) == 0
    assert "reproduced: bit-identical" in capsys.readouterr().out


def test_the_command_line_of_a_dynamics_record_at_negative_positions_parses_again():
    """A ROW,COL position counted from the end (-1,0) is passed as --position=-1,0: argparse reads "-1,0" after a
    space as an option (only -1 and -1.5 look like negative numbers to it), and the dynamics parser no longer
    overrides argparse's private _negative_number_matcher to accept it."""
    import shlex

    from neurozoo.benchmarks.records import ScoreRecord
    from neurozoo.leaderboard.cli import build_parser
    from neurozoo.leaderboard.reproduce import analysis_command

    kept = {"model": "rgc_shallow", "position": ["-1,0", "2,-3"], "points": 4, "seed": 0, "unique_norm": None}
    command = analysis_command(ScoreRecord("rgc_shallow:conv5", "dynamics.rgc_shallow:conv5", 0.0,
                                           settings={"arguments": kept}))
    assert command == "zoo dynamics rgc_shallow --position=-1,0 --position 2,-3 --points 4"
    args = build_parser().parse_args(shlex.split(command)[1:])
    assert (args.position, args.points) == (["-1,0", "2,-3"], 4)


def test_a_dynamics_record_made_before_unique_norm_existed_is_rerun_merging_as_it_did():
    """--unique-norm (default "max", FixedPointFinder's per-coordinate tol_unique) came after records kept their
    arguments: a record without it merged duplicate points by Euclidean distance, and rerun with the new default it
    gave other point counts (the integration examples' 111 and 12 points became 58 and 7), so it did not reproduce."""
    from neurozoo.benchmarks.records import ScoreRecord
    from neurozoo.leaderboard.reproduce import analysis_command

    def command(**kept):
        return analysis_command(ScoreRecord("flipflop-rnn", "dynamics.flipflop-rnn", 0.0,
                                            settings={"arguments": {"model": "flipflop-rnn", **kept}}))

    assert command() == "zoo dynamics flipflop-rnn --unique-norm euclidean"  # made before the option
    assert command(unique_norm=None) == "zoo dynamics flipflop-rnn"  # made since, with the default
    assert command(unique_norm="euclidean") == "zoo dynamics flipflop-rnn --unique-norm euclidean"


@pytest.mark.parametrize("line", [
    "dynamics rgc_shallow --layer conv5 --position=-1,0 --position 2,3 --trajectory-layers conv4,conv5 --image 2 "
    "--n-images 4 --checkpoint /w/c.pt --width 0.5 --set n_steps=4 --image-size 32 --points 8 --steps 5 "
    "--slow-tol 1e-05 --unique-tol 0.01 --seed 3 --float32",
    "compare flipflop-rnn rgc_shallow:conv5 --metrics cka --checkpoint c.pt --set a=1 --set b=2 --n-steps 4 "
    "--train-steps 3 --max-stimuli 5 --seed 2"])
def test_every_option_of_an_analysis_record_is_written_back_and_reads_the_same(line):
    """zoo reproduce rebuilds the command line of a zoo dynamics / zoo compare record from the arguments it keeps,
    through the options the commands record as they add them (it walked argparse's private _actions and
    _SubParsersAction/_AppendAction, which any Python release may change): every kind of option (a positional list,
    a repeated option, a flag, a path) reads back as the same arguments."""
    import shlex

    from neurozoo.benchmarks.dynamics.cli import run_tag
    from neurozoo.benchmarks.records import ScoreRecord
    from neurozoo.leaderboard.cli import build_parser
    from neurozoo.leaderboard.reproduce import analysis_command

    _, kept = run_tag(build_parser().parse_args(shlex.split(line)))
    command = analysis_command(ScoreRecord("m", f"{line.split()[0]}.m", 0.0, settings={"arguments": kept}))
    assert command.startswith(f"zoo {line.split()[0]} ") and run_tag(build_parser().parse_args(shlex.split(command)[1:]))[1] == kept


def test_reproduce_reads_no_private_argparse_names():
    """argparse's _actions, _SubParsersAction and _AppendAction are private: a Python release may rename them."""
    import re
    from pathlib import Path

    import neurozoo.benchmarks.dynamics.cli as dynamics_cli
    import neurozoo.leaderboard.reproduce as reproduce

    for module in (reproduce, dynamics_cli):
        source = Path(module.__file__).read_text()
        assert re.findall(r"argparse\._\w+|\._actions\b|\._option_string_actions\b", source) == [], module.__file__


def _settings_of(db_file, record_id):
    return json.loads(sqlite3.connect(db_file).execute("SELECT settings FROM scores WHERE id = ?",
                                                       (record_id,)).fetchone()[0])


def test_a_record_whose_data_changed_since_is_not_reproduced_whatever_the_tolerance(tmp_path, tiny_benchmarks,
                                                                                    capsys, monkeypatch):
    """Before: a changed data sha256 was a note, and a rerun within --tolerance said "reproduced" (exit 0) on
    other data. Now the field is named with both checksums and the command exits 1."""
    from neurozoo.benchmarks.extraction import Stimuli
    from neurozoo.benchmarks.neural import NeuralBenchmark
    from neurozoo.benchmarks.synthetic import synthetic_assembly

    db = f"sqlite:///{tmp_path / 'r.sqlite'}"
    _score(db, "--out", tmp_path / "out")
    record = ResultsStore(db).records()[-1]
    stimuli = _neural().stimuli
    other = synthetic_assembly(n_stimuli=96, n_neuroids=8, n_bins=2, n_repetitions=4, n_objects=4, seed=1)[0]
    benchmarks.BENCHMARKS.add(NEURAL, lambda: NeuralBenchmark(NEURAL, "V4", lambda: other, lambda: Stimuli(
        stimuli.ids, stimuli.images)), overwrite=True, region="V4")  # the benchmark's recordings replaced
    capsys.readouterr()
    # said before any scoring (it came after the whole rerun): nothing is extracted or fitted on the other data
    monkeypatch.setattr("neurozoo.leaderboard.reproduce._rerun", lambda *a, **k: pytest.fail("scored again"))
    assert _zoo("reproduce", record.id, "--db", db, "--tolerance", "10") == 1
    out = capsys.readouterr().out
    assert f"differs: data_sha256: stored '{record.data_sha256}', now '{benchmarks.load(NEURAL).responses_sha256}'" in out
    assert (f"NOT reproduced: record {record.id}'s data_sha256 is not the benchmark's now (its data has changed since "
            "it was scored); not scored again") in out


def test_a_record_edited_to_another_model_seed_or_configuration_is_not_reproduced(tmp_path, tiny_benchmarks,
                                                                                  capsys):
    """Before: the model and seed columns and the settings of a score record were not compared: a record edited
    to say another model, seed, layer or feature count (none of which the rerun read: it reads settings.rerun)
    was "reproduced: bit-identical". Each is now named, stored against rerun, and the command exits 1; a setting
    the record does not have (written by an older version) is a note only."""
    db_file = tmp_path / "r.sqlite"
    db = f"sqlite:///{db_file}"
    _score(db, "--out", tmp_path / "out")
    record = ResultsStore(db).records()[-1]
    settings = _settings_of(db_file, record.id)
    edits = [({"model": "feedforward_deep"}, "model: stored 'feedforward_deep', rerun 'feedforward_intermediate'"),
             ({"seed": 7}, "seed: stored 7, rerun 0"),
             ({"settings": json.dumps({**settings, "layer": "conv2"})}, "settings.layer: stored 'conv2', rerun 'conv3'"),
             ({"settings": json.dumps({**settings, "max_features": 1000})},
              "largest difference 980 > tolerance 0.001 (settings.max_features: stored 1000, rerun 20"),
             # text where the rerun has a number: float('all') was a ValueError traceback
             ({"settings": json.dumps({**settings, "max_features": "all"})},
              "largest difference inf > tolerance 0.001 (settings.max_features: stored 'all', rerun 20")]
    for values, named in edits:
        _tamper(db_file, record.id, model=record.model, seed=record.seed, settings=json.dumps(settings))
        _tamper(db_file, record.id, **values)
        capsys.readouterr()
        assert _zoo("reproduce", record.id, "--db", db, "--tolerance", "1e-3") == 1, values
        assert named in capsys.readouterr().out
    older = {k: v for k, v in settings.items() if k != "selection_seed"}  # before records kept it
    _tamper(db_file, record.id, settings=json.dumps(older))
    capsys.readouterr()
    assert _zoo("reproduce", record.id, "--db", db) == 0
    out = capsys.readouterr().out
    assert "differs: settings.selection_seed: not in the record, rerun 0" in out and "reproduced: bit-identical" in out


@pytest.mark.parametrize("column, edit, message", [
    ("settings", lambda s: s["rerun"].pop("max_features"),
     "settings.rerun: no field 'max_features' (expected int or NoneType); the record was edited or cut short"),
    ("settings", lambda s: s["rerun"].update(seed="0"), "settings.rerun.seed: expected int, found str '0'"),
    ("settings", lambda s: s.update(rerun="zoo score x"), "settings.rerun: expected a dictionary with its command"),
    ("settings", lambda s: s["rerun"].update(command="zoo scores"), "settings.rerun.command: expected 'zoo score'"),
    ("settings", lambda s: s["rerun"].update(checkpoint={"path": "w.pt"}),
     "settings.rerun.checkpoint: no field 'sha256' (expected str)"),
    ("settings", lambda s: s["rerun"].update(model="plugin_net"),
     "cannot be scored again here: unknown model 'plugin_net'"),
    ("settings", None, "its settings is not readable JSON"),
    ("per_bin", None, "its per_bin is not readable JSON"),
])
def test_a_hand_edited_or_truncated_record_is_refused_in_one_line_naming_the_field(tmp_path, tiny_benchmarks, capsys,
                                                                                   column, edit, message):
    """Before: a KeyError, TypeError or JSONDecodeError traceback (a rerun command line given to zoo score's
    handler; a record cut short in the store); a plugin's model not installed gave a line that did not name the
    record."""
    db_file = tmp_path / "r.sqlite"
    db = f"sqlite:///{db_file}"
    _score(db, "--out", tmp_path / "out")
    record = ResultsStore(db).records()[-1]
    text = sqlite3.connect(db_file).execute(f"SELECT {column} FROM scores WHERE id = ?", (record.id,)).fetchone()[0]
    if edit is None:
        text = text[:len(text) // 2]  # cut short
    else:
        value = json.loads(text)
        edit(value)
        text = json.dumps(value)
    _tamper(db_file, record.id, **{column: text})
    capsys.readouterr()
    assert _zoo("reproduce", record.id, "--db", db) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"record {record.id} " in err and message in err, err
    if edit is None:  # any reader of the store, e.g. the leaderboard's
        from neurozoo.datasets.errors import DataError

        with pytest.raises(DataError, match=f"record {record.id} in .*: its {column} is not readable JSON"):
            ResultsStore(db).records()


def test_zoo_fit_in_two_clean_folders_gives_the_same_weights_and_summary_with_its_provenance(tmp_path, ln_fit):
    """zoo fit's outputs have no record in the store: the documented way to reproduce one is the same command into
    another folder (README, "Reproducibility"), which gives byte-identical weights and the same held-out numbers.
    Its summary.json states what the fit depends on: code version, data sha256, seed, every resolved fit setting
    (batching included), and now the fitting protocol and the environment (the thread count moves a fit's last
    bits), which it did not state before."""
    from neurozoo.datasets.provenance import sha256_file
    from neurozoo.retina.fit import FIT_PROTOCOL

    (data, a), b = ln_fit, tmp_path / "b"  # the first folder's fit is the module's, made before this test
    assert _zoo(*LN_FIT, "--data", data, "--out", b) == 0
    summaries = [json.loads((folder / "summary.json").read_text()) for folder in (a, b)]
    assert sha256_file(a / "model.pt") == sha256_file(b / "model.pt")
    numbers = ("median_correlation", "median_feve", "median_oracle", "best_epoch", "best_val_correlation")
    assert [summaries[0][k] for k in numbers] == [summaries[1][k] for k in numbers]
    provenance = summaries[0]["provenance"]
    assert provenance["data_sha256"] == sha256_file(data) and provenance["seed"] == 3 and provenance["code_version"]
    assert provenance["settings"]["batching"] in ("chunks", "windows") and provenance["settings"]["epochs"] == 1
    assert provenance["fit_protocol"] == FIT_PROTOCOL
    assert provenance["environment"]["torch_threads"] == torch.get_num_threads()


def test_a_search_record_says_how_to_reproduce_it_not_to_score_it_with_zoo_score(tmp_path, capsys):
    """A zoo search --record row (validation top-1 of a trained trial) keeps no rerun: zoo reproduce said to score
    it again with zoo score or zoo run, which cannot give a validation top-1. It now names the study, trial and seed
    and the way: train the exported spec again with the record's training settings."""
    from neurozoo.benchmarks.records import ScoreRecord
    from neurozoo.convrnn.search.export import BENCHMARK

    db = f"sqlite:///{tmp_path / 'r.sqlite'}"
    record = ScoreRecord(model="mem_best1", benchmark=BENCHMARK, value=0.917, raw=91.7, seed=5,
                         settings={"study": "mem", "trial": 3, "training": {"seed": 5, "epochs": 2}})
    ResultsStore(db).add(record)
    capsys.readouterr()
    assert _zoo("reproduce", record.id, "--db", db) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"record {record.id} (mem_best1 on {BENCHMARK})" in err
    assert "study 'mem', trial 3" in err and "zoo train" in err and "seed 5" in err and "zoo score" not in err


def test_a_phenomenon_record_refits_and_reproduces_every_number_and_setting(tmp_path, capsys, monkeypatch):
    """The phenomenon benchmarks (OSR, contrast adaptation, ...) had no reproduce test: a contrast-adaptation
    record of a 1-epoch LN fit is fitted again from scratch and gives the same value, per-cell indices and
    settings (the fit's, the analysis's with its index version, the score's version, the model's and the truth's
    indices: 42 numbers), none differing. A record of score version 1 (no ``score_version``: it counted the sign of
    rounding noise in raw) is scored under version 2 and the version named; LN's indices are exactly 0, unchanged."""
    from neurozoo.benchmarks.phenomena import PhenomenonBenchmark

    _private_cache(tmp_path, monkeypatch)
    name = "reprotest.contrast-adaptation"
    benchmarks.BENCHMARKS.add(name, lambda: PhenomenonBenchmark("contrast-adaptation", sizes=dict(RETINA_SIZES),
                                                                fit_settings={"epochs": 1}),
                              overwrite=True, family="retina", region="phenomena")
    try:
        db = f"sqlite:///{tmp_path / 'r.sqlite'}"
        assert _zoo("score", "ln", name, "--db", db, "--out", tmp_path / "out") == 0
        record = ResultsStore(db).records()[-1]
        assert record.settings["rerun"]["command"] == "zoo score" and record.settings["analysis"]
        capsys.readouterr()
        assert _zoo("reproduce", record.id, "--db", db) == 0
        out = capsys.readouterr().out
        assert "reproduced: bit-identical" in out and "differs" not in out and "42 numbers of the settings" in out
        settings = _settings_of(tmp_path / "r.sqlite", record.id)
        assert settings.pop("score_version") == 2
        _tamper(tmp_path / "r.sqlite", record.id, settings=json.dumps(settings))
        assert _zoo("reproduce", record.id, "--db", db) == 0
        out = capsys.readouterr().out
        assert "differs: settings.score_version: not in the record, rerun 2" in out
        assert "reproduced: bit-identical" in out and "41 numbers of the settings" in out
        # a version-1 record whose raw counted the sign of rounding noise (the BN-CNN's 0.833): the verdict says the
        # difference follows from the version change, the exit status staying that of numbers that differ
        _tamper(tmp_path / "r.sqlite", record.id, raw=0.833)
        assert _zoo("reproduce", record.id, "--db", db) == 1
        verdict = capsys.readouterr().out.splitlines()[-1]
        assert verdict.startswith(f"NOT reproduced: largest difference 0.833 > tolerance 0 (raw: stored 0.833, "
                                  f"rerun {record.raw!r}; 1 of ")
        assert verdict.endswith("numbers beyond it); the difference follows from the score's version: the record "
                                "predates score version 2 (a model index within 1e-6 of 0 has no sign since; version "
                                "1 counted the sign of float32 rounding noise in raw)")
        # the verdict on settings that differ said nothing of the version where the one on numbers did
        _tamper(tmp_path / "r.sqlite", record.id, settings=json.dumps({**settings, "phenomenon": "of version 1"}))
        assert _zoo("reproduce", record.id, "--db", db) == 1
        assert capsys.readouterr().out.splitlines()[-1] == (
            f"NOT reproduced: record {record.id}'s settings.phenomenon is not the rerun's; largest difference of the "
            "numbers 0.833; the difference follows from the score's version: the record predates score version 2 "
            "(a model index within 1e-6 of 0 has no sign since; version 1 counted the sign of float32 rounding noise "
            "in raw)")
        settings["score_version"] = 2  # a record of this version: the same difference, no version to blame
        _tamper(tmp_path / "r.sqlite", record.id, settings=json.dumps(settings))
        assert _zoo("reproduce", record.id, "--db", db) == 1
        assert capsys.readouterr().out.splitlines()[-1].endswith("numbers beyond it)")
        _tamper(tmp_path / "r.sqlite", record.id, settings=json.dumps({**settings, "phenomenon": "other"}))
        assert _zoo("reproduce", record.id, "--db", db) == 1
        assert capsys.readouterr().out.splitlines()[-1].endswith("largest difference of the numbers 0.833")
    finally:
        benchmarks.BENCHMARKS._entries.pop(name, None)


@pytest.mark.parametrize("phenomenon, version, stored", [
    ("frequency-doubling", ("analysis", "index_version"), 1), ("osr-mechanism", ("osr_call_version",), 2)])
def test_a_record_of_an_earlier_measure_version_is_rerun_and_the_version_named(tmp_path, capsys, monkeypatch,
                                                                                phenomenon, version, stored):
    """The rounding floor's versions (2026-12-05): frequency doubling's index version 2 (F2 or F1 at rounding level
    gives no index: a full-wave LN cell's raw went from 1 to 0) and the OSR call version 4 under osr-mechanism's
    reduced models. A record from before (without the setting, or of the earlier version), whose numbers the floor
    changed (its raw put back), is scored under the current measure, the setting named (a note, or a difference of
    the number), and the verdict says that the difference follows from the measure's version, as it does for the
    score's version; the exit status stays that of numbers that differ."""
    from neurozoo.benchmarks.osr import OSRMechanismBenchmark
    from neurozoo.benchmarks.phenomena import PhenomenonBenchmark

    _private_cache(tmp_path, monkeypatch)
    name = f"reprotest.{phenomenon}"
    make = {"frequency-doubling": lambda: PhenomenonBenchmark("frequency-doubling", sizes=dict(RETINA_SIZES),
                                                              fit_settings={"epochs": 1}),
            "osr-mechanism": lambda: OSRMechanismBenchmark(sizes=dict(RETINA_SIZES), fit_settings={"epochs": 1})}
    benchmarks.BENCHMARKS.add(name, make[phenomenon], overwrite=True, family="retina", region="phenomena")
    try:
        db = f"sqlite:///{tmp_path / 'r.sqlite'}"
        assert _zoo("score", "ln", name, "--db", db) == 0
        record = ResultsStore(db).records()[-1]
        settings = _settings_of(tmp_path / "r.sqlite", record.id)
        path = "settings." + ".".join(version)
        inner = settings
        for key in version[:-1]:
            inner = inner[key]
        now = inner.pop(version[-1])  # a record from before the setting
        _tamper(tmp_path / "r.sqlite", record.id, settings=json.dumps(settings), raw=1.0)
        capsys.readouterr()
        assert _zoo("reproduce", record.id, "--db", db) == 1
        out = capsys.readouterr().out
        assert f"differs: {path}: not in the record, rerun {now}" in out
        verdict = out.splitlines()[-1]
        assert verdict.startswith(f"NOT reproduced: largest difference 1 > tolerance 0 (raw: stored 1.0, rerun "
                                  f"{record.raw!r}; 1 of ")
        assert verdict.endswith(f"numbers beyond it); the difference follows from the measure's version: the record "
                                f"predates {path} (the rerun's {now})")
        inner[version[-1]] = stored  # a record of the earlier version: the version, a number, differs too
        _tamper(tmp_path / "r.sqlite", record.id, settings=json.dumps(settings))
        assert _zoo("reproduce", record.id, "--db", db) == 1
        assert capsys.readouterr().out.splitlines()[-1].endswith(
            f"the difference follows from the measure's version: the record's {path} is {stored}, the rerun's {now}")
        inner[version[-1]] = now  # this version: reproduced, raw aside, and no version to blame
        _tamper(tmp_path / "r.sqlite", record.id, settings=json.dumps(settings), raw=record.raw)
        assert _zoo("reproduce", record.id, "--db", db) == 0
        assert "reproduced: bit-identical" in capsys.readouterr().out
    finally:
        benchmarks.BENCHMARKS._entries.pop(name, None)


def test_a_zoo_run_retina_record_reproduces_and_names_a_fitting_protocol_of_another_version(tmp_path, tiny_benchmarks,
                                                                                           capsys, monkeypatch):
    """A zoo run job of a retina model keeps the fitting protocol and the embedded recordings' version in its spec
    (its job key); zoo reproduce refits it from scratch (bit-identical) and, when the record's protocol is not this
    code's, says so beside the numbers: before, a protocol bump showed only as numbers that differed, unexplained."""
    from neurozoo.leaderboard.db import LeaderboardDB
    from neurozoo.leaderboard.run import run_zoo
    from neurozoo.retina.fit import FIT_PROTOCOL

    _private_cache(tmp_path, monkeypatch)
    db_file = tmp_path / "lb.sqlite"
    db = f"sqlite:///{db_file}"
    run_zoo(db, ["ln"], [RETINA], fit_epochs=1, report=tmp_path / "report", progress=False, echo=lambda *a: None)
    job = LeaderboardDB(db).jobs()[0]
    assert job["spec"]["fit_protocol"] == FIT_PROTOCOL and job["score_id"]
    capsys.readouterr()
    assert _zoo("reproduce", job["score_id"], "--db", db) == 0
    out = capsys.readouterr().out
    assert "reproduced: bit-identical" in out and "differs" not in out
    settings = _settings_of(db_file, job["score_id"])
    now = json.loads(json.dumps(settings))
    settings["rerun"]["spec"]["fit_protocol"] = FIT_PROTOCOL - 1
    settings["fit_provenance"]["fit_protocol"] = FIT_PROTOCOL - 1  # a record made before the bump states both
    _tamper(db_file, job["score_id"], settings=json.dumps(settings))
    monkeypatch.setattr("neurozoo.leaderboard.reproduce.rerun",  # the numbers aside: the rerun fits under this code
                        lambda record, **kwargs: dataclasses.replace(record, settings=now))
    capsys.readouterr()
    _zoo("reproduce", job["score_id"], "--db", db)
    out = capsys.readouterr().out
    assert f"differs: spec.fit_protocol: stored {FIT_PROTOCOL - 1}, this code's {FIT_PROTOCOL}" in out
    assert out.count("fit_protocol") == 1  # one fact, said once (before: fit_provenance.fit_protocol's note too)


def test_a_record_of_another_benchmark_version_is_named_beside_the_numbers():
    """A zoo run record of a benchmark whose measure has changed since (its spec's ``benchmark_version``, or none
    from before the benchmark had one) gets a note saying so, as a fitting protocol of another version does."""
    from neurozoo.leaderboard.reproduce import protocol_notes

    spec = {"family": "retina", "model": "ln", "benchmark": "retina_embedded.contrast-adaptation"}
    assert protocol_notes({"spec": {**spec, "benchmark_version": 5}}) == []  # index version 4, score version 2
    assert protocol_notes({"spec": spec}) == [
        "spec.benchmark_version: stored none, this code's 5 (retina_embedded.contrast-adaptation's measure has "
        "changed since the record)"]
    # the rounding floor's versions (2026-12-05): a record scored before each is named, not only its numbers
    for benchmark, before, now in [("retina_embedded.contrast-adaptation", 3, 5),
                                   ("retina_embedded.contrast-adaptation", 4, 5), ("retina_embedded.osr", 3, 5),
                                   ("retina_embedded.osr", 4, 5), ("retina_embedded.frequency-doubling", 2, 3),
                                   ("retina_embedded.osr-mechanism", None, 3), ("retina_embedded.osr-mechanism", 2, 3)]:
        stored = {**spec, "benchmark": benchmark, **({} if before is None else {"benchmark_version": before})}
        assert protocol_notes({"spec": stored}) == [
            f"spec.benchmark_version: stored {'none' if before is None else before}, this code's {now} ({benchmark}'s "
            "measure has changed since the record)"]
        assert protocol_notes({"spec": {**stored, "benchmark_version": now}}) == []
    unversioned = {"family": "convrnn", "model": "rgc_shallow", "benchmark": "ventral_embedded.V4-temporal"}
    assert protocol_notes({"spec": unversioned}) == []


def test_one_walk_of_the_two_records_settings_feeds_every_comparison(tmp_path, capsys, monkeypatch):
    """compare, differences and mismatches each walked both records' settings again (a dynamics record's settings
    hold its fixed points and matrices): zoo reproduce walks them once, with the same output."""
    from neurozoo.benchmarks.records import ScoreRecord
    from neurozoo.leaderboard import reproduce

    db = f"sqlite:///{tmp_path / 'r.sqlite'}"
    record = ScoreRecord(model="m", benchmark="b", value=0.5, seed=0, data_sha256="0" * 64,
                         settings={"rerun": {"command": "zoo score"}, "layer": "conv3", "fit": {"lr": 0.01},
                                   "environment": {"torch": "x"}},
                         per_bin=[{"time_bin_start": 70, "value": 0.5}])
    ResultsStore(db).add(record)
    walks = []
    walk = reproduce.settings_pairs
    monkeypatch.setattr(reproduce, "settings_pairs", lambda old, new: walks.append(1) or walk(old, new))
    monkeypatch.setattr(reproduce, "rerun", lambda record, **kwargs: record)
    capsys.readouterr()
    assert _zoo("reproduce", record.id, "--db", db) == 0
    assert len(walks) == 1
    assert ("reproduced: bit-identical (value, error, ceiling, raw and 1 per-bin rows, 1 numbers of the settings)"
            in capsys.readouterr().out)


def test_a_record_of_an_unknown_training_stimulus_that_the_rerun_knows_reproduces(tmp_path, capsys, monkeypatch):
    """A record of a fit cache folder's weights scored before their checkpoint's class was read (2026-12-06) says
    training_stimulus unknown; its rerun knows the class: said, not a mismatch. Another known class is one."""
    import dataclasses

    from neurozoo.benchmarks.records import ScoreRecord
    from neurozoo.leaderboard import reproduce

    db = f"sqlite:///{tmp_path / 'r.sqlite'}"
    ResultsStore(db).add(ScoreRecord(model="ln@model.pt", benchmark="retina_h5.heldout", value=0.5, seed=0,
                                     data_sha256="0" * 64, settings={
                                         "rerun": {"command": "zoo score"}, "stimulus_class": "naturalscene",
                                         "training_stimulus": "unknown", "training_stimulus_from": None}))
    [stored] = ResultsStore(db).records()
    known = {**stored.settings, "training_stimulus": "naturalscene", "training_stimulus_from": "its checkpoint"}
    monkeypatch.setattr(reproduce, "rerun", lambda record, **kwargs: dataclasses.replace(stored, settings=known))
    capsys.readouterr()
    assert _zoo("reproduce", stored.id, "--db", db) == 0
    assert "reproduced: bit-identical" in capsys.readouterr().out
    ResultsStore(db).add(dataclasses.replace(stored, id=None, settings={
        **stored.settings, "training_stimulus": "whitenoise", "training_stimulus_from": "its summary.json"}))
    other = ResultsStore(db).records()[-1]
    monkeypatch.setattr(reproduce, "rerun", lambda record, **kwargs: dataclasses.replace(other, settings=known))
    assert _zoo("reproduce", other.id, "--db", db) == 1
    assert "settings.training_stimulus: stored 'whitenoise', rerun 'naturalscene'" in capsys.readouterr().out


def test_a_heldout_record_holding_a_feve_the_rule_now_leaves_null_names_the_rule(tmp_path, capsys, monkeypatch):
    """A record of a user's recording stored before FEVE became null for a cell without explainable variance
    (2026-12-05) holds a number there (282.6): its rerun gives null, and zoo reproduce said "NOT reproduced: largest
    difference inf" without a reason. It names the rule now, in a note naming the cells and in the verdict; a FEVE
    null for another reason (a cell with explainable variance) is not put on the rule."""
    from neurozoo.benchmarks.records import ScoreRecord
    from neurozoo.leaderboard import reproduce

    def cell(name, feve, explainable):
        return {"cell": name, "correlation": 0.5, "feve": feve, "oracle": 0.6, "explainable_fraction": explainable,
                "noise_var": 0.1, "passes": explainable >= 0.15}

    db = f"sqlite:///{tmp_path / 'r.sqlite'}"
    old = ScoreRecord(model="ln", benchmark="retina_h5.heldout", value=0.5, seed=0, data_sha256="0" * 64,
                      settings={"rerun": {"command": "zoo score"}},
                      per_bin=[cell("cell01", 282.6, -0.2), cell("cell02", 0.4, 0.5)])
    ResultsStore(db).add(old)
    [stored] = ResultsStore(db).records()
    now = dataclasses.replace(stored, per_bin=[cell("cell01", None, -0.2), cell("cell02", 0.4, 0.5)])
    monkeypatch.setattr(reproduce, "rerun", lambda record, **kwargs: now)
    capsys.readouterr()
    assert _zoo("reproduce", stored.id, "--db", db) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[1] == (f"  note: record {stored.id} holds a FEVE for cell01, the rerun none: since 2026-12-05 a cell "
                      "without explainable variance (its trial-to-trial noise variance as large as its total variance, "
                      "e.g. on a short recording) has no FEVE, null in a record (retina.metrics.feve); a record scored "
                      "before holds the number its ratio by a non-positive denominator gave; that cell is below the "
                      "explainable-variance filter, out of the medians")
    assert out[-1] == ("NOT reproduced: largest difference inf > tolerance 0 (per_bin[cell01].feve: stored 282.6, rerun "
                       "None; 1 of 16 numbers beyond it); the difference follows from the FEVE rule of 2026-12-05: the "
                       "record predates it, holding a FEVE for cells without explainable variance, which have none "
                       "since (note above)")
    # cell02 too differs, and has explainable variance: one of the two differences is the rule's
    now.per_bin[1]["feve"] = 0.3
    assert _zoo("reproduce", stored.id, "--db", db) == 1
    assert capsys.readouterr().out.splitlines()[-1].endswith(
        "; 1 of the 2 differences (per_bin[cell01].feve) follow from the FEVE rule of 2026-12-05: the record predates "
        "it, holding a FEVE for cells without explainable variance, which have none since (note above)")
    # a FEVE null where the cell has explainable variance is no rule's doing
    now.per_bin[:] = [cell("cell01", 282.6, -0.2), cell("cell02", None, 0.5)]
    assert _zoo("reproduce", stored.id, "--db", db) == 1
    out = capsys.readouterr().out
    assert "FEVE" not in out and out.splitlines()[-1].endswith("numbers beyond it)")


def test_a_records_layer_choice_in_other_words_is_a_note_and_its_layer_is_compared(tmp_path, capsys, monkeypatch):
    """zoo run's records of a model off the released layer map (rgc_resnet18) said "fixed (last layer of the region's
    map)"; they say how the layer was chosen now (leaderboard.zoo.FALLBACK_LAYER). layer_choice describes the layer,
    which is compared itself: a record in the old words reproduces, with a note, and one of another layer does not."""
    from neurozoo.benchmarks.records import ScoreRecord
    from neurozoo.leaderboard import reproduce
    from neurozoo.leaderboard.zoo import FALLBACK_LAYER, MAP_LAYER

    db = f"sqlite:///{tmp_path / 'r.sqlite'}"
    ResultsStore(db).add(ScoreRecord(model="rgc_resnet18", benchmark=NEURAL, value=0.5, seed=0, data_sha256="0" * 64,
                                     settings={"rerun": {"command": "zoo run"}, "layer": "layer3",
                                               "layer_choice": MAP_LAYER}))
    [stored] = ResultsStore(db).records()
    now = dataclasses.replace(stored, settings={**stored.settings, "layer_choice": FALLBACK_LAYER})
    monkeypatch.setattr(reproduce, "rerun", lambda record, **kwargs: now)
    capsys.readouterr()
    assert _zoo("reproduce", stored.id, "--db", db) == 0
    out = capsys.readouterr().out
    assert f"  differs: settings.layer_choice: stored {MAP_LAYER!r}, rerun {FALLBACK_LAYER!r}" in out, out
    now.settings["layer"] = "layer4"
    assert _zoo("reproduce", stored.id, "--db", db) == 1
    assert "settings.layer" in capsys.readouterr().out


@pytest.mark.parametrize("option", [{"layers": ["conv1"]}, {"max_features": 20}, {"cache": False}])
def test_the_retina_benchmarks_python_score_refuses_the_neural_benchmarks_options(tiny_benchmarks, monkeypatch,
                                                                                   option):
    """RetinaHeldoutBenchmark.score took layers, max_features and cache and silently ignored them (zoo score refuses
    --layers, --max-features and --no-cache): a caller's layer choice or cache setting was dropped unsaid. They are
    refused now, naming the option, before any fit."""
    from neurozoo.datasets.errors import UserFacingError
    from neurozoo.retina import embedded_fit

    monkeypatch.setattr(embedded_fit, "held_embedded_fit", lambda *a, **k: pytest.fail("fitted before refusing"))
    (name, value), = option.items()
    start = re.escape(f"retina_embedded.whitenoise-heldout.score: {name}={value!r}: the neural benchmarks' options")
    with pytest.raises(UserFacingError, match=f"^{start} .* do not apply to a retina benchmark"):
        benchmarks.load(RETINA).score("ln", progress=False, **option)


@pytest.mark.parametrize("overrides", [{"epochs": 5}, {"lr": 0.1, "refit": True}])
def test_the_heldout_benchmark_refuses_fit_settings_with_an_already_fitted_module(tiny_benchmarks, monkeypatch,
                                                                                  overrides):
    """HeldoutBenchmark.score, given a fitted module, scored it as it was and dropped fit overrides (epochs, lr...) and
    refit unsaid: they cannot apply to a module fitted before. They are refused now, naming them, before the module
    is scored, whether through the retina layer or the registered benchmark."""
    from neurozoo.datasets.errors import UserFacingError
    from neurozoo.retina import fit
    from neurozoo.retina.benchmark import HeldoutBenchmark
    from neurozoo.retina.models.ln import LN

    monkeypatch.setattr(fit, "evaluate", lambda *a, **k: pytest.fail("scored the module, the overrides dropped"))
    given = ", ".join(f"{k}={v!r}" for k, v in overrides.items())
    start = re.escape(f"retina_embedded.whitenoise-heldout.score: {given}: fit settings do not apply to an already "
                      "fitted module (LN)")
    for benchmark in (HeldoutBenchmark("whitenoise", dict(RETINA_SIZES)),
                      benchmarks.load("retina_embedded.whitenoise-heldout", sizes=dict(RETINA_SIZES))):
        with pytest.raises(UserFacingError, match=f"^{start}"):
            benchmark.score(LN(n_cells=3), progress=False, **overrides)


def test_a_record_stored_under_an_older_display_name_reproduces_with_a_note(tmp_path, tiny_benchmarks, capsys):
    """A record's model column is its display name (zoo run's `name (width 0.0625)`, zoo score's `name@weights.pt`),
    whose wording may change between versions; zoo reproduce failed a record stored before such a change by the name
    alone. The registered name its settings.rerun keeps is compared now, and a changed display name is a note; a
    column naming another registered model still fails (test above), as a record without a registered name whose
    display name differs."""
    db_file = tmp_path / "r.sqlite"
    db = f"sqlite:///{db_file}"
    _score(db, "--out", tmp_path / "out")
    record = ResultsStore(db).records()[-1]
    _tamper(db_file, record.id, model="feedforward_intermediate (an older display name)")
    capsys.readouterr()
    assert _zoo("reproduce", record.id, "--db", db) == 0
    out = capsys.readouterr().out
    assert ("differs: model: stored display name 'feedforward_intermediate (an older display name)', rerun "
            "'feedforward_intermediate': the same registered model 'feedforward_intermediate'") in out
    assert "reproduced: bit-identical" in out


def test_model_identity_compares_registered_names_where_both_records_keep_them():
    from neurozoo.benchmarks.records import ScoreRecord
    from neurozoo.leaderboard.reproduce import mismatches, model_identity

    def run_record(model, registered):
        spec = {"family": "retina", "model": registered, "benchmark": RETINA, "score": {}}
        return ScoreRecord(model=model, benchmark=RETINA, value=0.5, seed=0,
                           settings={"rerun": {"command": "zoo run", "spec": spec}})

    renamed = model_identity(run_record("ln (fit 1 epochs)", "ln"), run_record("ln (1-epoch fit)", "ln"))
    assert renamed == ([], ["model: stored display name 'ln (fit 1 epochs)', rerun 'ln (1-epoch fit)': the same "
                            "registered model 'ln' (its display name has changed since the record)"])
    assert mismatches(run_record("ln@old.pt", "ln"), run_record("ln@model.pt", "ln")) == []
    assert mismatches(run_record("glm (fit 1 epochs)", "ln"), run_record("ln (fit 1 epochs)", "ln")) == [
        ("model", "glm (fit 1 epochs)", "ln (fit 1 epochs)")]  # the column names another model than its rerun
    assert mismatches(run_record("ln", "ln"), run_record("ln", "glm")) == [("model (registered name)", "ln", "glm")]
    # a dynamics record keeps a command line, no registered name: its display name is compared as before
    dynamics = [ScoreRecord(model=name, benchmark="dynamics.fixed_points", value=0.5, seed=0, settings={})
                for name in ("rgc (width 0.5)", "rgc")]
    assert mismatches(*dynamics) == [("model", "rgc (width 0.5)", "rgc")]


def test_a_zoo_fit_on_a_relative_data_path_reproduces_from_another_folder(tmp_path, capsys, monkeypatch):
    """zoo fit's summary.json stored --data as given: a fit made with a relative path reproduced only from the folder
    zoo fit ran in (from any other, the recording was "gone"). It stores the resolved path too (data_absolute), which
    zoo reproduce reads; data keeps the path as given."""
    from neurozoo.datasets.synthetic_retina import load_embedded_retina

    (tmp_path / "lab").mkdir()
    (tmp_path / "elsewhere").mkdir()
    shutil.copyfile(load_embedded_retina("whitenoise", **RETINA_SIZES), tmp_path / "lab" / "rec.h5")
    monkeypatch.chdir(tmp_path / "lab")
    assert _zoo("fit", "ln", "--data", "rec.h5", "--epochs", "1", "--quiet", "--out", tmp_path / "fit") == 0
    summary = json.loads((tmp_path / "fit" / "summary.json").read_text())
    assert summary["data"] == "rec.h5" and summary["data_absolute"] == str((tmp_path / "lab" / "rec.h5").resolve())
    monkeypatch.chdir(tmp_path / "elsewhere")
    capsys.readouterr()
    assert _zoo("reproduce", tmp_path / "fit" / "summary.json") == 0
    assert f"ln fitted to {(tmp_path / 'lab' / 'rec.h5').resolve()} (seed 0)" in capsys.readouterr().out


def test_a_zoo_fit_scored_with_the_observed_spike_history_is_reproduced_in_that_mode(tmp_path, capsys):
    """zoo fit glm --heldout-history observed writes the held-out metrics of that mode (summary.json's
    heldout_history), and zoo reproduce scored the refitted weights on their own simulated spikes: every held-out
    number "differed" from the same weights' stored ones. It scores them in the mode the summary records."""
    from neurozoo.datasets.synthetic_retina import load_embedded_retina

    data = shutil.copyfile(load_embedded_retina("whitenoise", **RETINA_SIZES), tmp_path / "rec.h5")
    assert _zoo("fit", "glm", "--data", data, "--epochs", "1", "--quiet", "--out", tmp_path / "fit",
                "--heldout-history", "observed") == 0
    assert json.loads((tmp_path / "fit" / "summary.json").read_text())["heldout_history"] == "observed"
    capsys.readouterr()
    assert _zoo("reproduce", tmp_path / "fit" / "summary.json") == 0
    out = capsys.readouterr().out
    assert "reproduced: bit-identical (" in out and "differs" not in out, out
    summary_file = tmp_path / "fit" / "summary.json"
    summary_file.write_text(json.dumps({**json.loads(summary_file.read_text()), "heldout_history": "bogus"}))
    assert _zoo("reproduce", summary_file) == 2
    assert (f"{summary_file}: heldout_history 'bogus': expected one of simulated, observed (or null); the summary was "
            "edited") in capsys.readouterr().err


def test_a_zoo_fit_summary_is_fitted_again_and_compared_number_by_number(tmp_path, capsys, monkeypatch, ln_fit):
    """zoo fit's outputs had no zoo reproduce path (the same command into another folder was the documented way).
    zoo reproduce DIR/summary.json checks the recording's sha256, fits again from scratch with the recorded seed and
    settings, and compares the summary's numbers and every per-cell number of heldout_metrics.csv; a recording gone
    or changed is refused naming it, before anything is fitted."""
    import pandas as pd

    fit, (data, _) = tmp_path / "fit", ln_fit
    _fitted(ln_fit, fit)  # seed 3
    summary_file, metrics = fit / "summary.json", fit / "heldout_metrics.csv"
    per_cell = pd.read_csv(metrics, index_col=0).size
    capsys.readouterr()
    assert _zoo("reproduce", summary_file) == 0
    out = capsys.readouterr().out
    assert f"{summary_file}: ln fitted to {data} (seed 3), stored median held-out r " in out and "differs" not in out
    assert "reproduced: bit-identical (" in out and f" and {per_cell} per-cell numbers of heldout_metrics.csv)" in out

    summary = json.loads(summary_file.read_text())
    edited = {**summary, "median_correlation": summary["median_correlation"] + 0.01}
    summary_file.write_text(json.dumps(edited))
    frame = pd.read_csv(metrics, index_col=0)
    stored_r = float(frame.at["cell03", "correlation"])
    frame.at["cell03", "correlation"] = stored_r + 0.5
    frame.to_csv(metrics)
    capsys.readouterr()
    assert _zoo("reproduce", fit, "--tolerance", "0.02") == 1  # the folder names its summary.json too
    out = capsys.readouterr().out
    assert f"  differs: heldout_metrics.csv[cell03].correlation: stored {stored_r + 0.5!r}, rerun {stored_r!r}" in out
    assert "differs: median_correlation" not in out  # within the tolerance
    assert ("NOT reproduced: largest difference 0.5 > tolerance 0.02 (heldout_metrics.csv[cell03].correlation: "
            f"stored {stored_r + 0.5!r}, rerun {stored_r!r}; 1 of ") in out

    from neurozoo.retina import fit as fitting

    monkeypatch.setattr(fitting, "fit", lambda *a, **k: pytest.fail("fitted before refusing"))
    for provenance, message in [({"data_sha256": "0" * 64}, f"its recording {data} has changed since the fit "
                                                            "(sha256 000000000000 then, "),
                                ({"settings": {**summary["provenance"]["settings"], "layers": 3}},
                                 "provenance.settings: 'layers' is not a fit setting (the fit settings: epochs, ")]:
        summary_file.write_text(json.dumps({**summary, "provenance": {**summary["provenance"], **provenance}}))
        capsys.readouterr()
        assert _zoo("reproduce", summary_file) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{summary_file}: " in err and message in err
    summary_file.write_text(json.dumps({**summary, "data": str(tmp_path / "moved.h5"),
                                        "data_absolute": str(tmp_path / "moved.h5")}))
    assert _zoo("reproduce", summary_file) == 2
    assert f"its recording {tmp_path / 'moved.h5'} is gone (sha256 " in capsys.readouterr().err
    assert _zoo("reproduce", tmp_path / "nothing.json") == 2
    assert "neither a record id nor a zoo fit summary.json" in capsys.readouterr().err


def test_an_unreadable_heldout_metrics_csv_is_refused_naming_it_before_the_fit(tmp_path, capsys, monkeypatch,
                                                                               ln_fit):
    """heldout_metrics.csv was read after the model was fitted again: an empty, cut-short or binary one ended zoo
    reproduce in pandas' EmptyDataError / ParserError / UnicodeDecodeError traceback after the whole fit."""
    from neurozoo.retina import fit as fitting

    fit = tmp_path / "fit"
    _fitted(ln_fit, fit)
    monkeypatch.setattr(fitting, "fit", lambda *a, **k: pytest.fail("fitted before refusing"))
    metrics = fit / "heldout_metrics.csv"
    for content, reason in [(b"", "No columns to parse from file"),
                            (b'cell,correlation\ncell01,"0.5\n', "Error tokenizing data. C error: EOF inside string"),
                            (b"\xff\xfe\x00\x81garbage", "'utf-8' codec can't decode byte 0xff in position 0")]:
        metrics.write_bytes(content)
        capsys.readouterr()
        assert _zoo("reproduce", fit) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"zoo reproduce: error: {metrics}: not a readable CSV file ({reason}") and \
            err.endswith("expected zoo fit's per-cell held-out metrics (a header, then a row per cell); the file was "
                         "edited or cut short\n") and err.count("\n") == 1, err


def test_a_zoo_fit_summary_holding_a_feve_the_rule_now_leaves_null_names_the_rule(tmp_path, capsys, monkeypatch,
                                                                                  ln_fit):
    """As a store's record (above), a zoo fit summarised before FEVE became null for a cell without explainable
    variance holds a number in its heldout_metrics.csv where the rerun has none: zoo reproduce DIR/summary.json said
    "NOT reproduced: largest difference inf" without a reason. It names the rule, in a note and in the verdict. The
    rerun is the real refit, the one cell's explainable variance taken away as a short recording's would be."""
    import pandas as pd

    from neurozoo.leaderboard import reproduce_fit

    fit = tmp_path / "fit"
    _fitted(ln_fit, fit)
    metrics = fit / "heldout_metrics.csv"
    frame = pd.read_csv(metrics, index_col=0)
    frame.loc["cell03", ["feve", "explainable_fraction", "passes"]] = [282.6, -0.2, False]
    frame.to_csv(metrics)
    summary_file = fit / "summary.json"
    summary = json.loads(summary_file.read_text())
    kept = frame[frame["passes"]]  # the medians as over the cells that pass, cell03 out
    summary.update(median_correlation=float(kept["correlation"].median()), median_feve=float(kept["feve"].median()),
                   median_oracle=float(kept["oracle"].median()), n_passing=int(len(kept)))
    summary_file.write_text(json.dumps(summary))
    real = reproduce_fit.refit

    def refit(*args, **kwargs):
        result, rerun, weights = real(*args, **kwargs)
        rerun.loc["cell03", ["feve", "explainable_fraction", "passes"]] = [float("nan"), -0.2, False]
        return result, rerun, weights

    monkeypatch.setattr(reproduce_fit, "refit", refit)
    capsys.readouterr()
    assert _zoo("reproduce", summary_file) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[1] == ("  note: heldout_metrics.csv holds a FEVE for cell03, the rerun none: since 2026-12-05 a cell "
                      "without explainable variance (its trial-to-trial noise variance as large as its total variance, "
                      "e.g. on a short recording) has no FEVE, null in a record (retina.metrics.feve); a record scored "
                      "before holds the number its ratio by a non-positive denominator gave; that cell is below the "
                      "explainable-variance filter, out of the medians")
    assert out[-1].startswith("NOT reproduced: largest difference inf > tolerance 0 (heldout_metrics.csv[cell03].feve: "
                              "stored 282.6, rerun nan; 1 of ")
    assert out[-1].endswith("numbers beyond it); the difference follows from the FEVE rule of 2026-12-05: the record "
                            "predates it, holding a FEVE for cells without explainable variance, which have none since "
                            "(note above)")


def test_a_json_file_that_is_no_zoo_fit_summary_is_named_for_what_it_is(tmp_path, capsys):
    """zoo reproduce reduction.json (a probe's record) or history.json said "no field 'data' ...; the record was edited
    or cut short": the user's file was whole, and the message sent them looking for damage."""
    probe = {"model": "bncnn", "settings": {"k": [1, 2]}, "data": {"path": "rec.h5"}, "cells": [],
             "provenance": {"arguments": {"command": "probe", "phenomenon": "reduction", "model": "bncnn"}}}
    history = {"config": {}, "history": [], "best_epoch": 0, "best_val_correlation": 0.5}
    cut_short = {"median_correlation": 0.5, "data": "rec.h5", "provenance": {}}
    not_summary = ": not a zoo fit summary.json (none of its median_correlation, n_cells, n_passing)"
    for name, record, message in [
            ("reduction.json", probe, f"{not_summary}: the record of zoo probe reduction, which zoo reproduce does not "
             "rerun (run the probe again with the arguments it keeps, provenance.arguments, into another --out, and "
             "compare the JSON files); zoo reproduce takes a record id or zoo fit's DIR/summary.json"),
            ("history.json", history, f"{not_summary}; zoo reproduce takes a record id or zoo fit's DIR/summary.json"),
            ("summary.json", cut_short, ": no field 'model' (expected str); the record was edited or cut short")]:
        (tmp_path / name).write_text(json.dumps(record))
        assert _zoo("reproduce", tmp_path / name) == 2
        assert capsys.readouterr().err.strip() == f"zoo reproduce: error: {tmp_path / name}{message}"


def test_a_zoo_run_record_names_its_images_and_split_and_a_rerun_on_other_images_is_not_reproduced(
        tmp_path, tiny_benchmarks, capsys, monkeypatch):
    """Before: zoo run's (and zoo work's) records kept the responses' data_sha256 only, not the images' (a zoo score
    record's ``stimuli_sha256``) nor which stimuli their public or hidden half held: a rerun on changed images
    failed on its numbers alone, never naming the data, and one whose split drew other stimuli (another
    scikit-learn) was told apart from another code path by nothing."""
    from neurozoo.benchmarks.extraction import Stimuli
    from neurozoo.benchmarks.extraction.cache import keyed_digest
    from neurozoo.benchmarks.neural import NeuralBenchmark
    from neurozoo.leaderboard.db import LeaderboardDB
    from neurozoo.leaderboard.run import run_zoo
    from neurozoo.leaderboard.zoo import split_ids

    db = f"sqlite:///{tmp_path / 'lb.sqlite'}"
    run_zoo(db, ["feedforward_intermediate"], [NEURAL], width_multiplier=0.0625, max_features=20,
            report=tmp_path / "report", progress=False, echo=lambda *a: None)
    job = LeaderboardDB(db).jobs()[0]
    benchmark = _neural()
    halves = dict(zip(("public", "hidden"), split_ids(benchmark, job["spec"]["split"]["hidden_fraction"])))
    for record_id in (job["score_id"], job["hidden_score_id"]):
        settings = ResultsStore(db).get(record_id).settings
        assert settings["stimuli_sha256"] == benchmark.stimuli_sha256
        ids = halves[settings["split"]]
        assert len(ids) == settings["n_stimuli"] == 48
        assert settings["split_digest"] == keyed_digest("split-ids", "\x1f".join(sorted(map(str, ids))).encode())
    assert ResultsStore(db).get(job["score_id"]).settings["split_digest"] != \
        ResultsStore(db).get(job["hidden_score_id"]).settings["split_digest"]
    # a rerun whose split draws other stimuli (as another scikit-learn's StratifiedShuffleSplit could) is named so
    with monkeypatch.context() as patched:
        patched.setattr("neurozoo.leaderboard.zoo.split_seed", lambda benchmark_id: 12345)
        capsys.readouterr()
        assert _zoo("reproduce", job["hidden_score_id"], "--db", db, "--tolerance", "10") == 1
        assert "differs: settings.split_digest: stored '" in capsys.readouterr().out
    stimuli = benchmark.stimuli
    assembly = benchmark.assembly
    benchmarks.BENCHMARKS.add(NEURAL, lambda: NeuralBenchmark(NEURAL, "V4", lambda: assembly, lambda: Stimuli(
        stimuli.ids, stimuli.images.flip(-1))), overwrite=True, region="V4")  # the same responses, mirrored images
    capsys.readouterr()
    assert _zoo("reproduce", job["hidden_score_id"], "--db", db, "--tolerance", "10") == 1
    out = capsys.readouterr().out
    assert f"differs: settings.stimuli_sha256: stored '{benchmark.stimuli_sha256}', now '" in out
    assert "differs: data_sha256" not in out and "(its data has changed since it was scored); not scored again" in out
    # the rerun's own comparison names it too, where the check before it finds nothing
    monkeypatch.setattr("neurozoo.leaderboard.reproduce.changed_data", lambda record: [])
    capsys.readouterr()
    assert _zoo("reproduce", job["hidden_score_id"], "--db", db, "--tolerance", "10") == 1
    out = capsys.readouterr().out
    assert f"differs: settings.stimuli_sha256: stored '{benchmark.stimuli_sha256}', rerun '" in out
    assert "(the benchmark's data has changed since it was scored)" in out


def test_two_stores_scored_into_one_folder_keep_one_summary_each_naming_its_record(tmp_path, tiny_benchmarks):
    """Before: the summary was named by the record id alone, which counts per store, so record 1 of a second --db
    overwrote the first store's record-1 summary and plots in the shared --out (by default $NEUROZOO_HOME/results)."""
    out = tmp_path / "out"
    stores = [f"sqlite:///{tmp_path / name}" for name in ("a.sqlite", "b.sqlite")]
    for db, seed in zip(stores, ("1", "2")):
        _score(db, "--seed", seed, "--out", out)
    summaries = sorted(out.glob("*.json"))
    assert len(summaries) == 2 and len(list(out.glob("*.png"))) == 2
    for db in stores:
        record = ResultsStore(db).records()[-1]
        summary = [json.loads(path.read_text()) for path in summaries
                   if json.loads(path.read_text())["record"]["store"] == db]
        assert len(summary) == 1 and summary[0]["record"]["id"] == record.id == 1
        assert summary[0]["value"] == record.value and summary[0]["provenance"]["seed"] == record.seed
    assert ResultsStore(stores[0]).get(1).value != ResultsStore(stores[1]).get(1).value


def test_a_zoo_score_interrupted_mid_extraction_stores_nothing_and_its_rerun_scores_as_an_uninterrupted_one(
        tmp_path, tiny_benchmarks, capsys, monkeypatch):
    """Ctrl-C in the second batch of the extraction: exit 130, no record, no summary or plot, no activation-cache
    entry; the same command again gives, bit for bit, the score of a run never interrupted (computed afresh)."""
    from neurozoo.benchmarks.extraction import Stimuli

    _private_cache(tmp_path, monkeypatch)
    db, out = f"sqlite:///{tmp_path / 'r.sqlite'}", tmp_path / "out"
    real, batches = Stimuli.batch, []

    def interrupted(self, start, end):
        batches.append(start)
        if len(batches) == 2:
            raise KeyboardInterrupt
        return real(self, start, end)

    with monkeypatch.context() as patched:
        patched.setattr(Stimuli, "batch", interrupted)
        capsys.readouterr()
        assert _zoo("score", "feedforward_intermediate", NEURAL, "--width", "0.0625", "--max-features", "20",
                    "--layers", "conv3", "--db", db, "--out", out) == 130
    assert batches == [0, 32] and "interrupted" in capsys.readouterr().err
    assert ResultsStore(db).records() == [] and list(out.glob("*") if out.exists() else []) == []
    kept = [p for p in (tmp_path / "private-cache").rglob("*") if p.is_file() and "activations" in p.parts]
    # the first batch, kept for the rerun in a partial entry; no final entry
    assert [(p.parent.suffix, p.name) for p in kept] == [(".partial", "batch-00000.signed")]
    _score(db, "--out", out)  # the same command again (it resumes after that batch and writes the activation cache)
    fresh = f"sqlite:///{tmp_path / 'fresh.sqlite'}"
    _score(fresh, "--out", tmp_path / "fresh", "--no-cache")
    again, uninterrupted = ResultsStore(db).records()[-1], ResultsStore(fresh).records()[-1]
    assert (again.value, again.error, again.ceiling, again.raw, again.per_bin) == \
        (uninterrupted.value, uninterrupted.error, uninterrupted.ceiling, uninterrupted.raw, uninterrupted.per_bin)
    assert again.settings["stimuli_sha256"] == uninterrupted.settings["stimuli_sha256"]


#: ``zoo score`` of the tiny neural benchmark in a fresh interpreter (the benchmark registered as tiny_benchmarks does)
FRESH_SCORE = """import sys
sys.path.insert(0, {tests!r})
import test_reproduce as here
from neurozoo import benchmarks
from neurozoo.leaderboard.cli import main
benchmarks.BENCHMARKS.add(here.NEURAL, here._neural, overwrite=True, region="V4")
sys.exit(main(["score", "feedforward_intermediate", here.NEURAL, "--width", "0.0625", "--max-features", "20",
               "--layers", "conv3", "--no-cache", "--db", {db!r}, "--out", {out!r}]))
"""


def test_zoo_score_in_a_fresh_process_is_bit_identical_and_another_thread_count_within_1e_5(tmp_path,
                                                                                            tiny_benchmarks):
    """A fresh process (another hash seed) gives this process's value, error, ceiling, raw value and per-bin rows bit
    for bit; under 2 threads (torch's and the BLAS's) each number is within the README's 1e-5 of the 1-thread one,
    and the records say which count each ran under."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from neurozoo.leaderboard.reproduce import with_threads

    db = f"sqlite:///{tmp_path / 'fresh.sqlite'}"
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="1",
               NEUROZOO_CACHE=str(tmp_path / "cache"))
    code = FRESH_SCORE.format(tests=str(Path(__file__).parent), db=db, out=str(tmp_path / "fresh"))
    process = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    # meanwhile, in this process: on 1 thread, then on 2 (torch's and the BLAS's, as zoo reproduce sets them)
    here, two = (f"sqlite:///{tmp_path / name}.sqlite" for name in ("here", "two"))
    assert torch.get_num_threads() == 1
    _score(here, "--no-cache", "--out", tmp_path / "here")
    with_threads(2, lambda: _score(two, "--no-cache", "--out", tmp_path / "two"), blas=2)
    output = process.communicate(timeout=120)[0]
    assert process.returncode == 0, output[-2000:]
    records = {name: ResultsStore(url).records()[-1] for name, url in (("here", here), ("fresh", db), ("two", two))}
    numbers = lambda r: [r.value, r.error, r.ceiling, r.raw] + [  # noqa: E731
        row[key] for row in r.per_bin for key in sorted(row) if isinstance(row[key], float)]
    assert numbers(records["here"]) == numbers(records["fresh"]) and records["here"].per_bin == records["fresh"].per_bin
    pairs = list(zip(numbers(records["here"]), numbers(records["two"])))
    assert len(pairs) > 4 and max(abs(a - b) for a, b in pairs) <= 1e-5
    assert [(records[n].settings["environment"]["torch_threads"], records[n].settings["environment"]["blas_threads"])
            for n in ("here", "fresh", "two")] == [(1, 1), (1, 1), (2, 2)]


#: zoo reproduce of the tiny neural benchmark's record 1 in a fresh interpreter (registered as tiny_benchmarks does),
#: sent SIGTERM in its second extraction batch when argv[1] says so
REPRODUCE_SIGNALLED = """import os, signal, sys
sys.path.insert(0, {tests!r})
import test_reproduce as here
from neurozoo import benchmarks
from neurozoo.benchmarks.extraction import Stimuli
from neurozoo.leaderboard.cli import main
benchmarks.BENCHMARKS.add(here.NEURAL, here._neural, overwrite=True, region="V4")
batch, batches = Stimuli.batch, []


def signalled(self, start, stop):
    batches.append(start)
    if len(batches) == 2 and sys.argv[1] == "sigterm":
        os.kill(os.getpid(), signal.SIGTERM)
    return batch(self, start, stop)


Stimuli.batch = signalled
sys.exit(main(["reproduce", "1", "--db", {db!r}]))
"""


def test_zoo_reproduce_given_sigterm_mid_rerun_exits_130_leaving_no_scratch_and_its_rerun_reproduces(
        tmp_path, tiny_benchmarks, capsys):
    """SIGTERM (a scheduler's preemption) killed zoo reproduce without a word (exit -15), leaving its scratch folder
    (the rerun's fits and store) in the temporary directory. It stores nothing, so it now stops at once as Ctrl-C
    does: exit 130 saying so, the scratch folder removed, the record untouched; run again, it reproduces the record."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    db = f"sqlite:///{tmp_path / 'r.sqlite'}"
    _score(db, "--no-cache", "--out", tmp_path / "out")
    (tmp_path / "tmp").mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "TMPDIR": str(tmp_path / "tmp")}
    code = REPRODUCE_SIGNALLED.format(tests=str(Path(__file__).parent), db=db)
    stopped = subprocess.run([sys.executable, "-c", code, "sigterm"], capture_output=True, text=True, timeout=300,
                             env=env)
    assert (stopped.returncode, stopped.stderr.splitlines()[-1:]) == (130, ["zoo reproduce: interrupted; signal 15"]), \
        stopped.stderr[-2000:]
    assert [path.name for path in (tmp_path / "tmp").iterdir() if path.name.startswith("neurozoo-reproduce-")] == []
    assert [record.id for record in ResultsStore(db).records()] == [1]
    capsys.readouterr()
    again = _zoo("reproduce", 1, "--db", db)  # the rerun, a plain one: in this process
    out, err = capsys.readouterr()
    assert again == 0 and "\nreproduced: bit-identical" in out, out[-2000:] + err[-2000:]


@pytest.mark.parametrize("value", [3, "2", 0])
def test_a_submission_record_of_an_unknown_tree_digest_format_is_refused_naming_the_field(value):
    """A zoo work record's spec names its submission's tree digest format (``sha256_format``, absent: 1): any other
    value had passed the check and failed the rerun with a ValueError traceback from tree_sha256."""
    from neurozoo.benchmarks.records import ScoreRecord
    from neurozoo.datasets.errors import DataError
    from neurozoo.leaderboard.reproduce import checked

    spec = {"family": "submission", "model": "sub", "benchmark": "lbtest.V4", "score": {}, "layers": {"V4": "conv1"},
            "folder": "/store/sub", "sha256": "ab" * 32}
    record = ScoreRecord(model="sub", benchmark="lbtest.V4", value=0.5, id=7)
    for stated in ({}, {"sha256_format": 1}, {"sha256_format": 2}):
        checked(record, {"command": "zoo work", "spec": {**spec, **stated}})
    with pytest.raises(DataError, match=rf"record 7 .*\.spec\.sha256_format: expected one of 1, 2 \(or none, format "
                                        rf"1\), found {value!r}"):
        checked(record, {"command": "zoo work", "spec": {**spec, "sha256_format": value}})
