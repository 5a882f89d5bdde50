"""`zoo dynamics` and `zoo compare`: records with provenance in the results store, figures, exit 2 on bad input."""
import json

import pytest

from neurozoo.benchmarks.records import ResultsStore
from neurozoo.leaderboard.cli import main


def test_zoo_dynamics_stores_the_fixed_points_with_provenance(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'results.sqlite'}"
    assert main(["dynamics", "bistable", "--steps", "300", "--points", "64", "--db", db, "--out", str(tmp_path)]) == 0
    [record] = ResultsStore(db).records(model="bistable")
    store = ResultsStore(db).shown_url
    assert f"\nrecord {record.id} in {store}\n" in capsys.readouterr().out  # one record printed as "records 1"
    assert record.benchmark == "dynamics.fixed_points" and record.value == 2.0
    assert record.settings["n_fixed"] == 3 and record.settings["n_saddles_1"] == 1
    assert sorted(p["stable"] for p in record.settings["points"]) == [False, True, True]
    assert record.code_version and record.seed == 0 and record.duration_s > 0
    [spectra] = tmp_path.glob("dynamics_bistable_*_none_spectra.png")
    assert spectra.stat().st_size > 1000
    [summary_path] = tmp_path.glob("dynamics_bistable_*.json")
    summary = json.loads(summary_path.read_text())
    assert summary["conditions"]["none"]["n_stable_fixed"] == 2
    # the summary carries the record's provenance (it had no seed, code version or data checksum)
    assert summary["provenance"] == {"code_version": record.code_version, "git_commit": record.git_commit,
                                     "device": record.device, "seed": 0, "data_sha256": record.data_sha256,
                                     "duration_s": pytest.approx(record.duration_s)}
    assert len(record.data_sha256) == 64
    assert (summary["time_unit"], summary["dt"]) == ("steps", 1.0)  # of the time constants, which the table names
    assert {"slowest_tau_steps"} <= set(summary["conditions"]["none"]["table"][0])
    # and the finder settings that decide what counts as a fixed point (only the records had them)
    finder = summary["conditions"]["none"]["finder"]
    assert finder == {key: record.settings[key] for key in finder}
    assert (finder["fixed_tol"], finder["slow_tol"], finder["steps"], finder["n_initial"]) == (1e-12, 1e-6, 300, 64)
    assert record.settings["arguments"]["points"] == 64 and record.settings["arguments"]["steps"] == 300
    # how many of the 64 searches reached the points, in all and per point (the points alone did not tell)
    per_point = [p["n_searches"] for p in record.settings["points"]]
    assert [row["n_searches"] for row in summary["conditions"]["none"]["table"]] == per_point
    assert finder["n_converged"] == sum(per_point) == finder["n_converged_fixed"] and 3 <= sum(per_point) <= 64
    assert min(per_point) >= 1
    # another seed is another run: its files are written beside the first run's, not over them (before: the same
    # dynamics_bistable.json and figures, overwritten)
    assert main(["dynamics", "bistable", "--steps", "300", "--points", "64", "--seed", "1", "--db", db,
                 "--out", str(tmp_path)]) == 0
    assert len(list(tmp_path.glob("dynamics_bistable_*.json"))) == 2
    assert len(list(tmp_path.glob("dynamics_bistable_*_none_spectra.png"))) == 2


def test_a_runs_duration_counts_its_check_and_its_analysis_with_one_timer(tmp_path, monkeypatch):
    """zoo dynamics / zoo compare time the check (a ConvRNN built before the store is opened) and the analysis with
    one analysis.Timer, which sums its blocks (each function imported its own Timer and added the two up)."""
    import time

    from neurozoo.benchmarks.dynamics import cli
    from neurozoo.benchmarks.dynamics.analysis import Timer

    timer = Timer()
    for pause in (0.05, 0.1):
        with timer:
            time.sleep(pause)
    assert 0.15 <= timer.seconds < 1.0
    case = cli._case

    def slow_check(args):  # the check's 0.4 s count in the record's duration
        time.sleep(0.4)
        return case(args)

    monkeypatch.setattr(cli, "_case", slow_check)
    db = f"sqlite:///{tmp_path / 'results.sqlite'}"
    assert main(["dynamics", "bistable", "--steps", "50", "--points", "8", "--db", db, "--out", str(tmp_path)]) == 0
    [record] = ResultsStore(db).records(model="bistable")
    assert record.duration_s >= 0.4


def test_examples_records_carry_the_checksum_of_their_generated_data(tmp_path):
    """The examples' records had data_sha256 None: their data (training batches, analysed trials, initial states)
    are generated from the seed, so the same seed must show the same checksum and another seed another."""
    db = f"sqlite:///{tmp_path / 'results.sqlite'}"

    def checksum(*options):
        argv = ["dynamics", "flipflop-rnn", "--train-steps", "3", "--steps", "2", "--points", "4", *options]
        assert main(argv + ["--db", db, "--out", str(tmp_path)]) == 0
        record = ResultsStore(db).records(model="flipflop-rnn")[-1]
        newest = max(tmp_path.glob("dynamics_flipflop-rnn_*.json"), key=lambda path: path.stat().st_mtime_ns)
        assert json.loads(newest.read_text())["provenance"]["data_sha256"] == record.data_sha256
        return record.data_sha256

    first, again, other_seed, longer = checksum(), checksum(), checksum("--seed", "1"), checksum("--train-steps", "4")
    assert len(first) == 64 and first == again and len({first, other_seed, longer}) == 3
    from neurozoo.benchmarks.dynamics import cases

    for make in (cases.linear_case, cases.bistable_case):
        assert make(seed=0).data_sha256 == make(seed=0).data_sha256 != make(seed=1).data_sha256
    integration = [cases.integration_case("gru", steps=2, seed=s).data_sha256 for s in (0, 0, 1)]
    assert integration[0] == integration[1] != integration[2]


def test_zoo_compare_examples_over_time(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'results.sqlite'}"
    assert main(["compare", "flipflop-rnn", "flipflop-gru", "--train-steps", "30", "--db", db,
                 "--out", str(tmp_path)]) == 0
    records = {r.benchmark: r for r in ResultsStore(db).records(model="flipflop-rnn ~ flipflop-gru")}
    ids = ", ".join(str(r.id) for r in sorted(records.values(), key=lambda r: r.id))
    assert f"\nrecords {ids} in {ResultsStore(db).shown_url}\n" in capsys.readouterr().out
    assert set(records) == {"compare.rsa", "compare.cka", "compare.debiased_cka", "compare.procrustes"}
    cka = records["compare.cka"]
    assert len(cka.per_bin) == 64 and cka.settings["same_grid"] is True
    assert 0 < cka.value < 1 and cka.value == pytest.approx(sum(r["value"] for r in cka.per_bin) / 64)
    assert len(list(tmp_path.glob("compare_*_flipflop-rnn__flipflop-gru.png"))) == 1
    assert len(list(tmp_path.glob("compare_*_flipflop-gru_trajectories.png"))) == 1
    assert cka.settings["arguments"]["train_steps"] == 30
    # a JSON summary with the records' numbers and provenance (compare wrote none); the examples' data checksum
    [summary_path] = tmp_path.glob("compare_flipflop-rnn__flipflop-gru_*.json")
    summary = json.loads(summary_path.read_text())
    assert summary["systems"]["flipflop-rnn"] == {"stimulus_id": 48, "time_bin": 64, "neuroid": 16,
                                                  "time_unit": "steps"}
    pair = summary["pairs"]["flipflop-rnn ~ flipflop-gru"]
    assert pair["cka"]["value"] == pytest.approx(cka.value) and len(pair["cka"]["per_bin"]) == 64
    assert pair["cka"]["n_stimuli"] == 48 and summary["systems"]["flipflop-gru"]["time_unit"] == "steps"
    assert pair["procrustes"]["value"] == pytest.approx(records["compare.procrustes"].value)
    assert summary["provenance"]["seed"] == cka.seed == 0 and summary["settings"]["train_steps"] == 30
    assert summary["provenance"]["data_sha256"] == cka.data_sha256 and len(cka.data_sha256) == 64
    assert summary["provenance"]["code_version"] == cka.code_version


@pytest.mark.parametrize("argv, message", [
    (["dynamics", "nosuchmodel"], "unknown model 'nosuchmodel'; expected an example or a registered ConvRNN (known: "),
    # a misspelt name got the whole list without the close names that zoo score, zoo run and zoo info give
    (["dynamics", "rgc_shalow"], "; did you mean rgc_shallow, ugrnn_shallow? (known: "),
    (["dynamics", "flipflop_gru"], "; did you mean flipflop-gru, flipflop-rnn, flipflop-lstm? (known: "),
    (["compare", "rgc_shalow:conv3", "neural:V4"], "[/even|/odd]; did you mean rgc_shallow, ugrnn_shallow? (known: "),
    (["compare", "flipflop-rnn"], "at least two systems"),
    (["compare", "flipflop-rnn", "neural:V9"], "unknown neural data 'V9' (known: IT, V4, zhang_desimone2011.it)"),
    (["compare", "flipflop-rnn:h", "neural:V4"], "flipflop-rnn:h: an example has no layers"),
    # a CORnet's steps were labelled as 10 ms bins from 0 ms (CORnet-S's V4: 4 steps from 90 ms, 50 ms apart)
    (["compare", "cornet_s:V4", "neural:V4"], "cornet_s: a CORnet, whose steps are not 10 ms apart"),
    (["dynamics", "cornet_rt", "--layer", "IT"], "cornet_rt: a CORnet, whose steps are not 10 ms apart"),
    (["compare", "a", "b", "--metrics", "cka,bogus"], "--metrics: unknown bogus"),
    (["compare", "a", "b", "--metrics", ","], "--metrics: none given"),
    # a ConvRNN without a recurrent cell was refused with "--layer None is not a layer" when no --layer was given
    (["dynamics", "feedforward_intermediate", "--width", "0.125"],
     "feedforward_intermediate: no layer has a recurrent cell (no cell keeps a state)"),
    # the help called it an index of the ventral set (288 images); it is one among the --n-images picked from it
    (["dynamics", "rgc_shallow", "--width", "0.125", "--image-size", "32", "--n-images", "4", "--image", "20"],
     "--image 20: expected 0..3, an index among the --n-images 4 images (spread over the ventral set)"),
])
def test_bad_input_exits_2_with_one_line(argv, message, capsys, tmp_path):
    assert main(argv + ["--db", f"sqlite:///{tmp_path / 'r.sqlite'}", "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1
    # no output folder and no store left: one that needed the model built (a recurrent cell, --image) left an empty
    # --db file (until 2026-12-05)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv, says", [
    (["dynamics", "flipflop-rn"], "unknown model 'flipflop-rn'; expected an example or a registered ConvRNN; did you "
                                  "mean flipflop-rnn"),
    (["dynamics", "RGC_SHALLOW"], "unknown model 'RGC_SHALLOW'; expected an example or a registered ConvRNN; did you "
                                  "mean rgc_shallow? (known: "),
    (["compare", "rgc_shalow:conv4", "neural:V4"],
     "unknown system 'rgc_shalow'; expected a ConvRNN name[:layer], an example or "
     "neural:V4|IT|zhang_desimone2011.it[/even|/odd]; did you mean rgc_shallow"),
    (["compare", "flipflop-rnn", "neural:v4"], "unknown neural data 'v4'; did you mean V4? (known: IT, V4, "),
])
def test_an_unknown_name_gets_the_registries_one_refusal_with_close_names(argv, says, capsys, tmp_path):
    """`zoo dynamics MODEL` and `zoo compare`'s systems had their own refusals of an unknown name ("expected an
    example (...) or a ConvRNN (...)", unsorted, no close names). They now give the registries' one refusal
    (``datasets.registry.lookup`` over the ConvRNN registry and the examples): the hint, close names, every ConvRNN
    and example sorted. Refused before the results store is opened: it made an empty --db file (until 2026-12-05)."""
    from neurozoo import convrnn
    from neurozoo.benchmarks.dynamics.cases import EXAMPLES

    assert main(argv + ["--db", f"sqlite:///{tmp_path / 'r.sqlite'}", "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert says in error and len(error.splitlines()) == 1, error
    assert list(tmp_path.iterdir()) == [], "a refused name wrote nothing"
    if "neural:v4" not in argv:
        assert error.endswith(f"(known: {', '.join(sorted(convrnn.list_models() + list(EXAMPLES)))})")


def test_untrained_convrnn_weights_come_from_the_seed_not_from_the_process():
    """torch seeds itself at random at start-up: `zoo compare` / `zoo dynamics` / `zoo score` of an untrained
    ConvRNN gave different weights, hence different similarities, in every run while recording seed 0."""
    import torch

    from neurozoo.benchmarks.named_models import resolve_model
    from neurozoo.benchmarks.dynamics import sources

    images, ids = torch.rand(2, 3, 32, 32), ["a", "b"]
    runs = []
    for consumed in (0, 7):
        torch.rand(consumed)  # the global generator left in another state by whatever ran before
        runs.append(sources.convrnn("rgc_shallow", ["conv4"], images, ids, n_steps=6)["conv4"].values)
    assert abs(runs[0]).max() > 0 and (runs[0] == runs[1]).all()
    torch.rand(3)
    other = sources.convrnn("rgc_shallow", ["conv4"], images, ids, n_steps=6, seed=1)["conv4"].values
    assert not (other == runs[0]).all()
    first, second = resolve_model("rgc_shallow", seed=0), (torch.rand(5), resolve_model("rgc_shallow", seed=0))[1]
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))


def test_zoo_dynamics_convrnn_width_and_image_size_shrink_the_analysed_state(tmp_path):
    """A full-width ConvRNN at 64 px took minutes on one thread even with 4 points and 20 steps; --width,
    --image-size and --set make a quick run, and the record says which model and images were analysed."""
    import torch

    from neurozoo import convrnn

    db, weights = f"sqlite:///{tmp_path / 'results.sqlite'}", tmp_path / "weights.pt"
    torch.save(convrnn.create_model("rgc_shallow", width_multiplier=0.125).state_dict(), weights)
    assert main(["dynamics", "rgc_shallow", "--points", "2", "--steps", "3", "--n-images", "2", "--db", db,
                 "--width", "0.125", "--image-size", "32", "--set", "n_steps=14", "--checkpoint", str(weights),
                 "--position=-1,-1", "--out", str(tmp_path)]) == 0  # argparse's form of a value starting with -
    [record] = ResultsStore(db).records(model="rgc_shallow:conv5")
    assert record.settings["positions"] == [[0, 0]]  # the last row and column of the 1x1 map
    assert record.settings["overrides"] == {"width_multiplier": 0.125, "n_steps": 14}
    assert record.settings["image_size"] == 32 and record.settings["steps_run"] == 14
    assert record.settings["dim"] == 2 * 64  # h and c of conv5's 512 / 8 channels, 1x1 at 32 px (2x2 at 64)
    assert record.settings["checkpoint"] == str(weights) and record.settings["n_images"] == 2 and record.seed == 0
    [summary_path] = tmp_path.glob("dynamics_rgc_shallow-conv5_*.json")
    summary = json.loads(summary_path.read_text())
    assert (summary["time_unit"], summary["dt"]) == ("ms", 10.0)  # one ConvRNN step is 10 ms


@pytest.mark.parametrize("argv, message", [
    (["dynamics", "rgc_shallow", "--width", "0.25", "--set", "width_multiplier=0.5"], "disagree"),
    (["dynamics", "rgc_shallow", "--set", "bogus=1"], "unknown override ['bogus']"),
    (["dynamics", "flipflop-gru", "--width", "0.5"], "--width apply to ConvRNNs only"),
    # options that do not apply were ignored: `zoo dynamics linear --layer conv4` analysed the linear system
    (["dynamics", "linear", "--layer", "conv4"], "linear: --layer apply to ConvRNNs only"),
    (["dynamics", "flipflop-gru", "--image", "0", "--checkpoint", "w.pt"], "--image, --checkpoint apply to ConvRNNs"),
    (["dynamics", "bistable", "--train-steps", "5"], "bistable: --train-steps applies to the trained examples only"),
    (["dynamics", "rgc_shallow", "--train-steps", "5"], "rgc_shallow: --train-steps applies to the trained examples"),
    (["compare", "flipflop-rnn", "flipflop-gru", "--max-stimuli", "8"], "--max-stimuli applies to ConvRNN systems"),
    (["compare", "flipflop-rnn", "flipflop-gru", "--n-steps", "8"], "--n-steps applies to ConvRNN systems only"),
    (["compare", "neural:IT", "neural:V4", "--train-steps", "3"], "--train-steps applies to the examples only"),
])
def test_zoo_dynamics_model_options_refused_with_one_line(argv, message, capsys, tmp_path):
    assert main(argv + ["--db", f"sqlite:///{tmp_path / 'r.sqlite'}", "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1
    # no output folder and no store left: one that needed the model built (a recurrent cell, --image) left an empty
    # --db file (until 2026-12-05)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("option", ["--width=0", "--image-size=0", "--width=nan"])
def test_zoo_dynamics_model_option_values_refused_while_parsing(option, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["dynamics", "rgc_shallow", option])
    assert exit_.value.code == 2 and option.split("=")[0] in capsys.readouterr().err


def test_zoo_compare_records_the_seed_and_how_the_convrnn_was_made(tmp_path):
    """compare records carried seed None and no settings, though an untrained ConvRNN's weights come from --seed."""
    db = f"sqlite:///{tmp_path / 'results.sqlite'}"
    assert main(["compare", "rgc_shallow:conv4", "rgc_shallow:conv5", "--width", "0.125", "--image-size", "32",
                 "--max-stimuli", "8", "--metrics", "cka", "--seed", "3", "--db", db, "--out", str(tmp_path)]) == 0
    records = ResultsStore(db).records(model="rgc_shallow:conv4 ~ rgc_shallow:conv5")
    assert {r.benchmark for r in records} == {"compare.cka", "compare.procrustes"}
    assert next(r for r in records if r.benchmark == "compare.cka").settings["n_stimuli"] == 8
    for record in records:
        assert record.seed == 3 and record.settings["overrides"] == {"width_multiplier": 0.125}
        assert record.settings["image_size"] == 32 and record.settings["max_stimuli"] == 8
    assert main(["compare", "flipflop-rnn", "flipflop-gru", "--width", "0.5", "--db", db, "--out", str(tmp_path)]) == 2


@pytest.mark.parametrize("steps", [["--n-steps", "4"], ["--set", "n_steps=3", "--set", "image_steps=3"]])
def test_zoo_compare_refuses_a_layer_the_image_does_not_reach_before_any_work(steps, tmp_path, capsys, monkeypatch):
    """rgc_shallow's conv5 gets the image at step 4: in 4 steps (or the model's own 3) its output was the same for
    every image, and zoo compare stored its records as "n/a (no informative bins)" after an sklearn warning, where
    zoo dynamics refuses the same case. Refused now before the neural data is loaded, naming the step."""
    from neurozoo.benchmarks.dynamics import sources

    monkeypatch.setattr(sources, "neural", lambda *a: pytest.fail("the neural data was loaded"))
    db = tmp_path / "r.sqlite"
    argv = ["compare", "rgc_shallow:conv5", "neural:IT", "--width", "0.125", *steps, "--db", f"sqlite:///{db}",
            "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert error.endswith("rgc_shallow: the image reaches layer 'conv5' at step 4; its output in the "
                          f"{3 if '--set' in steps else 4} steps run (n_steps={3 if '--set' in steps else 4}) is the "
                          "same for every image: give more than 4 steps (--n-steps)")
    assert not (tmp_path / "out").exists() and not db.exists()  # the store was made (empty) until 2026-12-05


def test_zoo_compare_of_convrnns_records_the_checksum_of_the_images_they_saw():
    """A compare of ConvRNNs alone recorded data_sha256 None, though its systems are the model on the ventral
    images (which --max-stimuli and --image-size change)."""
    from neurozoo.benchmarks.dynamics import sources

    def checksum(**options):
        return sources.load(["rgc_shallow:conv4", "rgc_shallow:conv5"], n_steps=6,
                            overrides={"width_multiplier": 0.125}, **options)[1]

    small, large, fewer = checksum(max_stimuli=4, image_size=16), checksum(max_stimuli=4, image_size=32), \
        checksum(max_stimuli=5, image_size=16)
    assert small is not None and len(small) == 64
    assert len({small, large, fewer}) == 3


def test_zoo_compare_refuses_examples_of_different_tasks(capsys, tmp_path):
    """Every example's trials were named trial000..., so a flip-flop network and an integrator were compared
    trial by trial though they had seen different inputs (flip-flop pulses against noisy evidence)."""
    argv = ["compare", "flipflop-rnn", "integration-rnn", "--train-steps", "1", "--no-store", "--out", str(tmp_path)]
    assert main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert "flipflop-rnn and integration-rnn share 0 stimuli" in error and len(error.splitlines()) == 1


@pytest.mark.parametrize("db", ["foo://x", "not a url", "sqlite:////nonexistent-folder/r.sqlite"])
def test_a_results_store_that_cannot_be_opened_is_refused_before_the_analysis(db, capsys, tmp_path, monkeypatch):
    """A bad --db was a SQLAlchemy traceback (exit 1), and only after the whole analysis had run."""
    from neurozoo.benchmarks.dynamics import analysis

    monkeypatch.setattr(analysis, "analyse", lambda *a, **k: pytest.fail("analysed before opening the store"))
    assert main(["dynamics", "linear", "--db", db, "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"zoo dynamics: error: --db {db!r}: ") and len(error.splitlines()) == 1


@pytest.mark.parametrize("argv", [["dynamics", "linear"], ["compare", "flipflop-rnn", "flipflop-gru"]])
def test_an_unusable_out_folder_is_refused_before_the_analysis(argv, capsys, tmp_path, monkeypatch):
    """A --out that cannot be a folder failed only once the analysis (or the examples' training) had run; zoo
    score checks it first, and so do these now."""
    from neurozoo.benchmarks.dynamics import analysis, sources

    monkeypatch.setattr(analysis, "analyse", lambda *a, **k: pytest.fail("analysed before checking --out"))
    monkeypatch.setattr(sources, "example", lambda *a, **k: pytest.fail("trained an example before checking --out"))
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert main([*argv, "--no-store", "--out", str(blocker / "sub")]) == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(f"error: {blocker / 'sub'}: Not a directory")


@pytest.mark.parametrize("argv", [["dynamics", "nosuch", "--no-store"], ["compare", "nosuch", "linear", "--no-store"],
                                  ["score", "nosuch", "ventral_embedded.V4-temporal"]])
def test_a_refused_input_leaves_no_empty_out_folder_behind(argv, tmp_path, capsys):
    """--out was made (with its parents) before the input was checked, so a refused command left an empty folder
    behind; the folders it made are removed again now, and a folder that was there before stays."""
    db = [] if argv[0] != "score" else ["--db", f"sqlite:///{tmp_path / 'results.sqlite'}"]
    assert main([*argv, *db, "--out", str(tmp_path / "new" / "out")]) == 2
    assert "error: unknown " in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
    (tmp_path / "there").mkdir()
    assert main([*argv, *db, "--out", str(tmp_path / "there")]) == 2
    assert (tmp_path / "there").is_dir()


def test_an_out_folder_removed_by_a_refused_score_meanwhile_is_made_again(tmp_path, monkeypatch, capsys):
    """Two zoo score jobs started with one new --out each make it; the one refused removed it (still empty: its
    output_folder) while the other scored, which then stored its record and failed writing its summary:
    'OUT/<summary>.json.tmp-...: No such file or directory', exit 2, a record without its summary. The folder is made
    again before the record is stored. (zoo dynamics and compare write their figures first, which make it.)"""
    from neurozoo.benchmarks import cli
    from neurozoo.benchmarks.score import Score

    out, db = tmp_path / "new" / "out", f"sqlite:///{tmp_path / 'results.sqlite'}"

    def scored_as_the_other_run_removes_out(args, *hooks):  # hooks: the safe point and cache count
        out.rmdir()
        out.parent.rmdir()
        return Score(value=0.5, error=0.01, ceiling=0.9, raw=0.4, provenance={"settings": {}, "device": "cpu"}), "ln"

    monkeypatch.setattr(cli, "score_from_args", scored_as_the_other_run_removes_out)
    assert main(["score", "ln", "retina_embedded.whitenoise-heldout", "--db", db, "--out", str(out)]) == 0, \
        capsys.readouterr().err
    summaries = list(out.glob("*.json"))
    assert [record.value for record in ResultsStore(db).records()] == [0.5] and len(summaries) == 1
    assert json.loads(summaries[0].read_text())["value"] == 0.5
    assert f"summary {summaries[0]}" in capsys.readouterr().out


def test_zoo_dynamics_says_when_no_point_was_found(tmp_path, monkeypatch, capsys):
    """A search that ends with no fixed or slow point (conv10's whole map of an untrained rgc_intermediate) printed
    "... 0 slow; spectral radii " and nothing after it."""
    import numpy as np

    from neurozoo.benchmarks.dynamics import analysis
    from neurozoo.benchmarks.dynamics.fixedpoints import FixedPoints

    def nothing_found(case, **_):
        return {"none": FixedPoints(np.zeros((0, 2)), np.zeros(0), np.array([], dtype=str),
                                    np.zeros((0, 2), dtype=complex))}

    monkeypatch.setattr(analysis, "analyse", nothing_found)
    assert main(["dynamics", "bistable", "--points", "4", "--steps", "10", "--no-store", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "bistable [none]: 0 fixed (0 stable, 0 with one unstable mode), 0 slow; no fixed or slow point found" in out
    assert "spectral radii" not in out


TINY_SPEC = """name: tiny_plugin
description: three convolutions, a UGRNN at conv3 fed back into conv2
n_steps: 12
image_steps: 8
layers:
- {name: conv1, channels: 8, kernel: 5, stride: 2, pool: {kernel: 2, stride: 2}}
- {name: conv2, channels: 8, kernel: 3, pool: {kernel: 2, stride: 2}}
- {name: conv3, channels: 8, kernel: 3, cell: {kind: ugrnn}}
feedback:
- {source: conv3, target: conv2}
"""


@pytest.mark.parametrize("argv", [["dynamics", "tiny.yaml"], ["compare", "/some/folder/tiny.yaml:conv3", "neural:V4"],
                                  ["compare", "neural:V4", "tiny.YML"]])
def test_a_spec_path_given_to_a_zoo_command_is_refused_with_the_way_to_register_it(argv, capsys, tmp_path):
    """README "Your own ConvRNN": create_model takes a YAML spec path, the zoo commands take registered names only.
    A researcher who passed their spec file was told only that the name is unknown (for a path with folders, that
    '/some' was an unknown split of neural data); the error now says how to register it."""
    assert main(argv + ["--db", f"sqlite:///{tmp_path / 'r.sqlite'}", "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert "not spec files: register the spec from an installed package through an entry point in the " \
           "'neurozoo.convrnn_models' group" in error


def test_zoo_score_refuses_a_spec_path_with_the_way_to_register_it(capsys, tmp_path):
    assert main(["score", "tiny.yaml", "ventral_embedded.V4-temporal", "--db", f"sqlite:///{tmp_path / 'r.sqlite'}",
                 "--out", str(tmp_path)]) == 2
    assert "entry point in the 'neurozoo.convrnn_models' group" in capsys.readouterr().err


def test_zoo_run_refuses_a_spec_path_with_the_way_to_register_it(capsys, tmp_path):
    assert main(["run", "--models", "tiny.yaml", "--db", f"sqlite:///{tmp_path / 'r.sqlite'}"]) == 2
    assert "entry point in the 'neurozoo.convrnn_models' group" in capsys.readouterr().err


def test_a_convrnn_registered_by_the_readme_recipe_runs_through_zoo_dynamics(tmp_path, monkeypatch):
    """The README's route for one's own ConvRNN: a package whose entry point in 'neurozoo.convrnn_models' builds the
    spec; zoo dynamics then analyses it by name and records it under that name."""
    import sys
    from importlib.metadata import entry_points

    from neurozoo import convrnn
    from neurozoo.datasets.registry import Entry, _LazyEntryPoint

    root = tmp_path / "plugin"
    (root / "mymodels").mkdir(parents=True)
    (root / "mymodels" / "tiny_plugin.yaml").write_text(TINY_SPEC)
    (root / "mymodels" / "__init__.py").write_text(
        "from pathlib import Path\nfrom neurozoo import convrnn\n\n\ndef tiny_plugin(**overrides):\n"
        "    return convrnn.create_model(str(Path(__file__).with_name('tiny_plugin.yaml')), **overrides)\n")
    (root / "mymodels-0.1.dist-info").mkdir()
    (root / "mymodels-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: mymodels\nVersion: 0.1\n")
    (root / "mymodels-0.1.dist-info" / "entry_points.txt").write_text(
        "[neurozoo.convrnn_models]\ntiny_plugin = mymodels:tiny_plugin\n")
    convrnn.MODELS._load_entry_points()  # the installed ones, before the plugin's folder is on the path
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.delitem(sys.modules, "mymodels", raising=False)
    [ep] = entry_points(group="neurozoo.convrnn_models", name="tiny_plugin")
    monkeypatch.setitem(convrnn.MODELS._entries, ep.name, Entry(ep.name, _LazyEntryPoint(ep), f"(plugin {ep.value})"))
    db = f"sqlite:///{tmp_path / 'results.sqlite'}"
    assert main(["dynamics", "tiny_plugin", "--layer", "conv3", "--points", "2", "--steps", "3", "--n-images", "2",
                 "--image-size", "32", "--db", db, "--out", str(tmp_path)]) == 0
    [record] = ResultsStore(db).records(model="tiny_plugin:conv3")
    assert record.settings["steps_run"] == 12 and record.settings["image_size"] == 32


def test_a_plugin_model_whose_module_does_not_import_is_one_line_naming_its_entry_point(tmp_path, monkeypatch,
                                                                                         capsys):
    """An installed package whose entry point names a module that is gone (uninstalled half-way, renamed): the
    command says which entry point of which package failed and how, in one line, instead of the import traceback."""
    import sys
    from importlib.metadata import entry_points

    from neurozoo import convrnn
    from neurozoo.datasets.registry import Entry, _LazyEntryPoint

    root = tmp_path / "plugin"
    (root / "gonemodels-0.1.dist-info").mkdir(parents=True)
    (root / "gonemodels-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: gonemodels\nVersion: 0.1\n")
    (root / "gonemodels-0.1.dist-info" / "entry_points.txt").write_text(
        "[neurozoo.convrnn_models]\ngone_model = gonemodels.specs:gone_model\n")
    convrnn.MODELS._load_entry_points()
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.delitem(sys.modules, "gonemodels", raising=False)
    [ep] = entry_points(group="neurozoo.convrnn_models", name="gone_model")
    monkeypatch.setitem(convrnn.MODELS._entries, ep.name,
                        Entry(ep.name, _LazyEntryPoint(ep, convrnn.MODELS.kind), f"(plugin {ep.value})"))
    capsys.readouterr()
    assert main(["dynamics", "gone_model", "--layer", "conv3", "--points", "2", "--steps", "3", "--n-images", "2",
                 "--image-size", "32", "--db", f"sqlite:///{tmp_path / 'r.sqlite'}", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "'gone_model' cannot be loaded: its entry point gonemodels.specs:gone_model (group " \
           "neurozoo.convrnn_models, package gonemodels) raised ModuleNotFoundError: No module named 'gonemodels'" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
