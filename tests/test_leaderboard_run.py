"""`zoo run` end to end: a scorer killed mid-job leaves no rows and the next run resumes; a third run reuses."""
import io
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from claims import finish_claim

from neurozoo.leaderboard.db import DONE, QUEUED, RUNNING, LeaderboardDB

PLUGIN = textwrap.dedent('''
    """A small benchmark plugin registered through an entry point (as a third-party package would)."""
    import os
    import time

    import torch

    from neurozoo.benchmarks.extraction import Stimuli
    from neurozoo.benchmarks.neural import NeuralBenchmark
    from neurozoo.benchmarks.synthetic import synthetic_assembly


    def _assembly():
        time.sleep(float(os.environ.get("LBTEST_SLEEP", "0")))  # lets the test kill the scorer mid-job
        return synthetic_assembly(n_stimuli=96, n_neuroids=10, n_bins=3, n_repetitions=4, n_objects=4, seed=0)[0]


    class GatedStimuli(Stimuli):
        def batch(self, start, stop):
            gate = os.environ.get("LBTEST_GATE")  # or holds the job until the test has signalled the scorer
            if gate and start > 0:  # past the extraction's first batch, kept: the job's work has begun
                open(gate + ".reached", "w").close()
                while not os.path.exists(gate):
                    time.sleep(0.05)
            return super().batch(start, stop)


    def _stimuli():
        ids = [f"s{i:05d}" for i in range(96)]
        return GatedStimuli(ids, torch.randn(96, 3, 32, 32, generator=torch.Generator().manual_seed(0)))


    def make():
        return NeuralBenchmark("lbtest.V4", "V4", _assembly, _stimuli)
''')


@pytest.fixture
def plugin_env(tmp_path):
    root = tmp_path / "plugin"
    (root / "lbtest_plugin-0.0.dist-info").mkdir(parents=True)
    (root / "lbtest_plugin.py").write_text(PLUGIN)
    (root / "lbtest_plugin-0.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: lbtest-plugin\nVersion: 0.0\n")
    (root / "lbtest_plugin-0.0.dist-info" / "entry_points.txt").write_text("[neurozoo.benchmarks]\nlbtest.V4 = lbtest_plugin:make\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    return env


def zoo_run(db_url, report, env, models="feedforward_intermediate", **popen):
    command = [sys.executable, "-m", "neurozoo.leaderboard.cli", "run", "--models", models,
               "--benchmarks", "lbtest.V4", "--width-multiplier", "0.0625", "--max-features", "50",
               "--db", db_url, "--report", str(report), "--no-progress", "--lease", "120"]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def zoo_run_here(db_url, report, plugin_root, monkeypatch, capsys, models="feedforward_intermediate", progress=False):
    """``zoo run`` as :func:`zoo_run` runs it, in this process (no interpreter and torch to start): the plugin's
    entry point registered as the benchmark registry registers an installed one. ``(exit code, output)``."""
    from importlib.metadata import entry_points

    from neurozoo import benchmarks
    from neurozoo.datasets.registry import Entry, _LazyEntryPoint
    from neurozoo.leaderboard.cli import main

    benchmarks.BENCHMARKS._load_entry_points()  # the installed ones, before the plugin's folder is on the path
    monkeypatch.syspath_prepend(str(plugin_root))
    monkeypatch.delitem(sys.modules, "lbtest_plugin", raising=False)
    [ep] = entry_points(group="neurozoo.benchmarks", name="lbtest.V4")
    monkeypatch.setitem(benchmarks.BENCHMARKS._entries, ep.name, Entry(ep.name, _LazyEntryPoint(ep), f"(plugin {ep.value})"))
    monkeypatch.delenv("LBTEST_SLEEP", raising=False)
    capsys.readouterr()
    code = main(["run", "--models", models, "--benchmarks", "lbtest.V4", "--width-multiplier",
                 "0.0625", "--max-features", "50", "--db", db_url, "--report", str(report), "--lease", "120",
                 *([] if progress else ["--no-progress"])])
    captured = capsys.readouterr()
    return code, captured.out + captured.err




@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A fresh, empty database: a SQLite file, or a scratch schema of the CI's PostgreSQL (conftest postgres_url)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'lb.sqlite'}"
    url = request.getfixturevalue("postgres_url")
    if not url:
        pytest.skip("NEUROZOO_TEST_POSTGRES_URL is not set (.ci/run starts PostgreSQL and sets it)")
    return url


def _tables_exist(db_url: str, tmp_path) -> bool:
    if db_url.startswith("sqlite"):
        return (tmp_path / "lb.sqlite").exists()
    from sqlalchemy import create_engine, inspect

    engine = create_engine(db_url)
    try:
        return "lb_jobs" in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_killed_scorer_leaves_nothing_and_the_next_run_resumes_then_reuses(tmp_path, plugin_env, db_url, monkeypatch,
                                                                          capsys):
    first = zoo_run(db_url, tmp_path / "report", dict(plugin_env, LBTEST_SLEEP="60"))
    db = None
    deadline = time.time() + 240  # generous: start-up is slow on a loaded 2-core machine
    while time.time() < deadline:
        time.sleep(0.5)
        if db is not None or _tables_exist(db_url, tmp_path):
            db = db or LeaderboardDB(db_url)
            jobs = db.jobs()
            if jobs and jobs[0]["status"] == RUNNING:
                break
    else:
        first.kill()
        pytest.fail(f"the scorer never started its job: {first.communicate()[0]}")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    job = db.jobs()[0]
    assert job["status"] == RUNNING and job["attempts"] == 1 and len(db.query()) == 0  # no half-written score

    # the killed scorer had to be a process; the runs after it are the same code in this one
    code, out = zoo_run_here(db_url, tmp_path / "report", tmp_path / "plugin", monkeypatch, capsys)
    assert code == 0, out
    assert "resuming 1 job left running" in out
    job = db.job(job["id"])
    assert job["status"] == DONE and job["attempts"] == 2
    scores = db.query()
    assert len(scores) == 2 and set(scores["settings"].map(lambda s: s["split"])) == {"public", "hidden"}
    assert scores["value"].notna().all()
    hidden = db.get(job["hidden_score_id"])
    assert hidden.settings["weights"] == "untrained, random weights" and hidden.settings["image_size"] == [32, 32]
    assert hidden.settings["overrides"] == {"width_multiplier": 0.0625}
    assert len(hidden.per_bin) == 3 and hidden.seed == 0
    assert "feedforward_intermediate" in out and "overall" in out  # the ranking is printed
    index = (tmp_path / "report" / "index.html").read_text()
    assert "feedforward_intermediate" in index and "untrained, random weights" in index
    from neurozoo.leaderboard.render import page_file

    name = "feedforward_intermediate (width 0.0625, 50 features)"  # not the zoo's defaults: the name says them
    assert job["model"] == name
    page = (tmp_path / "report" / "models" / f"{page_file(name)}.html").read_text()
    assert "<svg" in page and "lbtest.V4" in page

    code, out = zoo_run_here(db_url, tmp_path / "report", tmp_path / "plugin", monkeypatch, capsys)
    assert code == 0, out
    assert "zoo run: 1 job (1 already done, reused)" in out
    after = db.query()
    assert list(after["id"]) == list(scores["id"])  # nothing recomputed, nothing lost
    db.dispose()


def test_zoo_run_given_sigterm_mid_job_finishes_that_job_stops_and_resumes_to_the_uninterrupted_result(
        tmp_path, plugin_env, monkeypatch, capsys):
    """SIGTERM (kill, a scheduler's preemption, a service manager's stop) ended `zoo run` at once, as SIGKILL does:
    its job stayed 'running' with an attempt spent and no word said. Now the job being scored is finished and stored,
    no other job starts, the run says what it kept and how to continue, and exits 130; the rerun scores the rest, and
    every score is the one an uninterrupted run stores."""
    url = f"sqlite:///{tmp_path / 'lb.sqlite'}"
    models, gate = "feedforward_intermediate,rgc_shallow", tmp_path / "gate"
    first = zoo_run(url, tmp_path / "report", dict(plugin_env, LBTEST_GATE=str(gate),
                                                   NEUROZOO_CACHE=str(tmp_path / "cache")), models=models)
    deadline = time.time() + 240  # generous: start-up is slow on a loaded 2-core machine
    while time.time() < deadline and first.poll() is None:  # the job past its extraction, at the gate (before it,
        time.sleep(0.2)  # in the job's setup, a stop is taken at once: test_zoo_run_given_sigterm_in_a_jobs_setup...)
        if (tmp_path / "gate.reached").exists():
            break
    else:
        first.kill()
        pytest.fail(f"the scorer's job never reached the gate: {first.communicate()[0]}")
    db = LeaderboardDB(url)
    assert [job["status"] for job in db.jobs()].count(RUNNING) == 1
    first.send_signal(signal.SIGTERM)  # while its job waits at the gate: before, the default action killed it here
    time.sleep(0.5)
    gate.touch()
    output = first.communicate(timeout=120)[0]
    assert first.returncode == 130, output
    assert (  # stderr, with the run's stdout
        "zoo run: interrupted; stopped (signal 15) with 1 of 2 jobs done and stored (1 in this run); the others are "
        "queued and no report was written: rerun the same command to continue (finished results are reused)"
    ) in output.splitlines(), output
    jobs = db.jobs()
    assert sorted((j["status"], j["attempts"]) for j in jobs) == [(DONE, 1), (QUEUED, 0)]
    assert len(db.query()) == 2 and not (tmp_path / "report").exists()  # the finished job's two splits, no report

    code, out = zoo_run_here(url, tmp_path / "report", tmp_path / "plugin", monkeypatch, capsys, models=models)
    assert code == 0 and "2 jobs (1 already done, reused)" in out and "resuming" not in out, out
    assert [j["status"] for j in db.jobs()] == [DONE, DONE]
    resumed = db.query()
    whole = f"sqlite:///{tmp_path / 'whole.sqlite'}"
    code, out = zoo_run_here(whole, tmp_path / "whole_report", tmp_path / "plugin", monkeypatch, capsys, models=models)
    assert code == 0, out
    uninterrupted = LeaderboardDB(whole).query()

    def scores(frame):
        return sorted((row.model, row.settings["split"], row.value, row.error) for row in frame.itertuples())

    assert len(resumed) == 4 and scores(resumed) == scores(uninterrupted)
    db.dispose()


def test_zoo_run_given_sigterm_in_a_jobs_setup_hands_it_back_at_once_and_resumes_to_the_uninterrupted_result(
        tmp_path, plugin_env, monkeypatch, capsys):
    """A neural job's setup (imports, the model's building, its images and the activation cache read) writes nothing
    until the extraction's first batch, yet a SIGTERM there waited for the whole job to be extracted, scored and
    stored. It is now taken at once, as in a retina job's setup: the model's building does not finish, the job goes
    back to the queue (no attempt spent), nothing is stored or cached, exit 130; the rerun stores the scores of a run
    never stopped."""
    from neurozoo.leaderboard import zoo

    url, built = f"sqlite:///{tmp_path / 'lb.sqlite'}", []
    build_model = zoo.build_model

    def signalled(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        model = build_model(*args, **kwargs)
        built.append(model)
        return model

    monkeypatch.setenv("NEUROZOO_CACHE", str(tmp_path / "cache"))
    with monkeypatch.context() as patch:
        patch.setattr(zoo, "build_model", signalled)
        code, out = zoo_run_here(url, tmp_path / "report", tmp_path / "plugin", monkeypatch, capsys)
    assert (code, built) == (130, []), out
    assert ("zoo run: interrupted; stopped (signal 15) with 0 of 1 job done and stored (0 in this run); the others "
            "are queued and no report was written: rerun the same command to continue (finished results are reused)"
            in out.splitlines()), out
    db = LeaderboardDB(url)
    assert [(job["status"], job["attempts"]) for job in db.jobs()] == [(QUEUED, 0)]
    assert len(db.query()) == 0 and list((tmp_path / "cache").rglob("*.signed")) == []
    code, out = zoo_run_here(url, tmp_path / "report", tmp_path / "plugin", monkeypatch, capsys)
    assert code == 0 and list((tmp_path / "cache").rglob("*.signed")) != [], out  # the cache the stop left empty
    whole = f"sqlite:///{tmp_path / 'whole.sqlite'}"
    monkeypatch.setenv("NEUROZOO_CACHE", str(tmp_path / "whole_cache"))
    code, out = zoo_run_here(whole, tmp_path / "whole_report", tmp_path / "plugin", monkeypatch, capsys)
    assert code == 0, out

    def scores(frame):
        return sorted((row.model, row.settings["split"], row.value, row.error) for row in frame.itertuples())

    assert len(db.query()) == 2 and scores(db.query()) == scores(LeaderboardDB(whole).query())
    db.dispose()


def test_zoo_run_given_sigterm_as_its_report_is_written_says_that_everything_was_kept(tmp_path, plugin_env,
                                                                                       monkeypatch, capsys):
    """A SIGTERM after the last job (while the report was written) is acted on as the run's deferral ends, but it left
    as a bare "interrupted; signal 15", which read like a run stopped part-way; every job was done and the report
    written."""
    import os

    from neurozoo.leaderboard import render

    write_report = render.write_report

    def write_report_then_sigterm(*args, **kwargs):
        index = write_report(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)  # recorded by zoo run's deferral, which no safe point reads any more
        return index

    monkeypatch.setattr(render, "write_report", write_report_then_sigterm)
    url = f"sqlite:///{tmp_path / 'lb.sqlite'}"
    code, out = zoo_run_here(url, tmp_path / "report", tmp_path / "plugin", monkeypatch, capsys)
    assert code == 130, out
    assert out.splitlines()[-1] == (
        "zoo run: interrupted; signal 15 after its 1 job was done and stored and the report written "
        f"({tmp_path / 'report' / 'index.html'}): nothing was lost")
    assert [job["status"] for job in LeaderboardDB(url).jobs()] == [DONE]


def test_zoo_run_stopped_in_a_retina_fit_hands_its_job_back_and_the_rerun_resumes_the_fit(tmp_path, monkeypatch, capsys,
                                                                                            signal_in_epoch):
    """A retina job fits its model in the scorer's process: a SIGTERM there had to wait for the whole fit (up to 40
    epochs). The fit now stops after the epoch under way and its checkpoint, the job goes back to the queue (neither
    done nor failed, its attempt not counted), and the rerun resumes the fit to the uninterrupted fit's weights."""
    import torch

    from neurozoo import benchmarks
    from neurozoo.benchmarks.retina import RetinaHeldoutBenchmark
    from neurozoo.leaderboard.cli import main
    from neurozoo.retina.embedded_fit import fit_embedded, fits_in

    sizes, name = dict(n_train=2500, n_test=200, n_repeats=2), "runtest.retina-heldout"
    short = {"max_steps_per_epoch": 3}
    benchmarks.BENCHMARKS.add(name, lambda: RetinaHeldoutBenchmark("whitenoise", sizes=dict(sizes), fit_settings=short),
                              overwrite=True, family="retina", region="held-out responses")
    url = f"sqlite:///{tmp_path / 'lb.sqlite'}"
    argv = ["run", "--models", "ln", "--benchmarks", name, "--fit-epochs", "2", "--db", url, "--report",
            str(tmp_path / "report"), "--no-progress"]
    try:
        signal_in_epoch(1, signal.SIGTERM)
        with fits_in(tmp_path / "fits"):  # this test's own fit, never another test's
            assert main(argv) == 130
        [checkpoint] = (tmp_path / "fits").glob("ln-whitenoise-*/checkpoint.pt")
        assert capsys.readouterr().err.splitlines()[-1] == (
            f"zoo run: interrupted; stopped (signal 15) with 0 of 1 job done and stored (0 in this run); the job "
            f"being scored was handed back, its fit's 1 of at most 2 epochs kept in {checkpoint} for the rerun to "
            f"resume; the others are queued and no report was written: rerun the same command to continue (finished "
            f"results are reused)")
        db = LeaderboardDB(url)
        assert [(j["status"], j["attempts"]) for j in db.jobs()] == [(QUEUED, 0)]
        assert sorted(p.name for p in checkpoint.parent.iterdir()) == ["checkpoint.pt", "fit_time.json"]
        assert not (tmp_path / "report").exists()

        terminal = _Terminal()  # the rerun on a terminal: its bar drawn
        with fits_in(tmp_path / "fits"), monkeypatch.context() as patched:
            patched.setattr(sys, "stderr", terminal)
            assert main(argv[:-1]) == 0
        # said above the bar, which is redrawn under it: printed straight to stderr, it was glued after the bar's
        # "... 0/1 jobs [00:00, ln (fit 2 epochs) on runtest.retina-heldout: fitting ln on embedded:whitenoise]"
        drawn = re.split(r"[\r\n]", terminal.getvalue())
        assert f"resuming {checkpoint}: 1 of at most 2 epochs fitted" in drawn
        assert not any("]resuming" in d for d in drawn)
        assert [(j["status"], j["attempts"]) for j in db.jobs()] == [(DONE, 1)]
        with fits_in(tmp_path / "straight"):
            straight = fit_embedded("ln", sizes=sizes, epochs=2, progress=False, **short)[0].model.state_dict()
        resumed = torch.load(checkpoint.parent / "model.pt", weights_only=True)
        assert resumed.keys() == straight.keys() and all(torch.equal(resumed[k], straight[k]) for k in straight)
        db.dispose()
    finally:
        benchmarks.BENCHMARKS._entries.pop(name, None)


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("terminal", [False, True], ids=["pipe", "terminal"])
def test_zoo_run_progress_says_a_retina_fit_not_cached_and_its_epochs_and_draws_no_bar_in_a_pipe(tmp_path, monkeypatch,
                                                                                               capsys, terminal):
    """A cold zoo run's bar sat on a retina job for minutes (its model's first fit), its estimate jumping to hours,
    nothing saying a fit was made: a fit not cached is now said (a line), and on a terminal the bar's postfix follows
    its epochs, without an estimate of the time left; in a pipe (a CI log) there is no bar, whose redraws were
    carriage returns, but a line per job. The results are those of a run without progress."""
    from neurozoo import benchmarks
    from neurozoo.benchmarks.retina import RetinaHeldoutBenchmark
    from neurozoo.leaderboard.cli import main
    from neurozoo.retina.embedded_fit import fits_in

    sizes, name = dict(n_train=2500, n_test=200, n_repeats=2), "runtest.retina-progress"
    benchmarks.BENCHMARKS.add(name, lambda: RetinaHeldoutBenchmark("whitenoise", sizes=dict(sizes),
                                                                   fit_settings={"max_steps_per_epoch": 3}),
                              overwrite=True, family="retina", region="held-out responses")
    argv = ["run", "--models", "ln", "--benchmarks", name, "--fit-epochs", "2", "--report", str(tmp_path / "report")]
    said = "fitting ln on embedded:whitenoise (not cached yet; later runs reuse it)"
    try:
        err = _Terminal()
        with monkeypatch.context() as patched:
            if terminal:
                patched.setattr(sys, "stderr", err)
            with fits_in(tmp_path / "fits"):
                assert main([*argv, "--db", f"sqlite:///{tmp_path / 'lb.sqlite'}"]) == 0
        out, piped = capsys.readouterr()
        err = err.getvalue() if terminal else piped
        assert said in [line.strip() for line in err.splitlines()]
        if terminal:
            job = "ln (fit 2 epochs) on runtest.retina-progress"
            assert "0/1 jobs [00:0" in err
            for epoch in (1, 2):  # with the epochs' mean time: at most that times the epochs left to go
                assert re.search(rf"{re.escape(job)}: fitting ln on embedded:whitenoise, epoch {epoch} of at most 2, "
                                 r"\d[\d.e-]* s each\]", err)
            # the fit over, its scoring: the bar said "epoch 2 of at most 2" until the job's end
            fitted = f"{job}: ln fitted on embedded:whitenoise, scoring]"
            assert err.index(fitted) > err.index(f"{job}: fitting ln on embedded:whitenoise, epoch 2 of at most 2, ")
            assert "of at most" not in err[err.index(fitted):]
            # the fit's warning (a 2500-frame recording validates on too few frames) went above the bar, which was
            # redrawn under it, not onto the bar's line
            drawn = re.split(r"[\r\n]", err)
            assert any(d.endswith("the validation r is noise at this size; a longer recording, or a larger val_fraction "
                                  "(zoo fit --val-fraction), gives it more") for d in drawn)
            assert not any("]" in d and "validation r is noise" in d for d in drawn)
            assert "<" not in err and "job/s" not in err  # no estimate of the time left, nor a rate
        else:
            assert "\r" not in err and "scoring 1/1: ln (fit 2 epochs) on runtest.retina-progress" in err.splitlines()

        with fits_in(tmp_path / "fits"):  # the fit cached: nothing said of it; results as a run without progress
            assert main([*argv, "--db", f"sqlite:///{tmp_path / 'again.sqlite'}", "--no-progress"]) == 0
        again, err = capsys.readouterr()
        assert "fitting" not in err and "scoring" not in err
        dbs = [LeaderboardDB(f"sqlite:///{tmp_path / db}") for db in ("lb.sqlite", "again.sqlite")]
        first, second = (db.score_for_job(db.jobs()[0]) for db in dbs)
        assert (first.value, first.error, sorted(first.settings)) == (second.value, second.error, sorted(second.settings))
        for db in dbs:
            db.dispose()
    finally:
        benchmarks.BENCHMARKS._entries.pop(name, None)


def test_zoo_run_on_a_terminal_follows_a_convrnn_jobs_batches_and_scoring_and_stores_the_same_records(
        tmp_path, plugin_env, monkeypatch, capsys):
    """A ConvRNN job said nothing on zoo run's bar while it ran, and the bar's elapsed time stood still (tqdm draws
    only when told something): its postfix follows the extraction's batches now, then the scoring of the job's layer
    on each split. Display only: the records are those of a run without progress (another cache: the activations
    extracted again, not read from the first run's), and in a pipe nothing is said of the extraction."""
    from neurozoo.benchmarks.records import IDENTITY

    def run(name, stderr=None, progress=True):
        monkeypatch.setenv("NEUROZOO_CACHE", str(tmp_path / name))  # its own activation cache (the home's split)
        with monkeypatch.context() as patched:
            if stderr is not None:
                patched.setattr(sys, "stderr", stderr)
            code, out = zoo_run_here(f"sqlite:///{tmp_path / name}.sqlite", tmp_path / name / "report",
                                     tmp_path / "plugin", monkeypatch, capsys, progress=progress)
        assert code == 0, out
        db = LeaderboardDB(f"sqlite:///{tmp_path / name}.sqlite")
        try:
            return out, db.records()
        finally:
            db.dispose()

    terminal = _Terminal()
    _, shown = run("terminal", terminal)
    job = f"{shown[0].model} on lbtest.V4"
    drawn = [d.rstrip() for d in re.split(r"[\r\n]", terminal.getvalue()) if "jobs [" in d]  # tqdm pads a shorter line
    postfixes = [re.search(r"jobs \[\d\d:\d\d(?:, (.*))?\]$", d).group(1) for d in drawn]
    steps = [f"{job}: building the model", f"{job}: loading the benchmark", f"{job}: extracting activations"] + [f"{job}: extracting activations, batch {b} of 3" for b in (1, 2, 3)] \
        + [f"{job}: scoring layer conv6"] + [f"{job}: scoring layer conv6, {split} split" for split in ("public", "hidden")]
    assert [p for p in dict.fromkeys(postfixes) if p not in (None, job)] == steps  # each shown, in this order
    assert "0/1 jobs" in drawn[postfixes.index(steps[-1])] and "1/1 jobs" in drawn[-1]  # the job's end: the bar's

    piped, _ = run("pipe")  # stderr captured: not a terminal
    assert "extracting" not in piped and "scoring layer" not in piped  # steps: on the bar only, no lines in a pipe
    _, plain = run("plain", progress=False)
    assert len(shown) == len(plain) == 2  # the public and hidden halves' records
    for told, quiet in zip(shown, plain):
        assert told.settings["layer"] == "conv6"
        assert all(getattr(told.to_row(), name) == getattr(quiet.to_row(), name) for name in IDENTITY), told.settings


def test_default_zoo_specs_carry_the_width_and_the_fit_budget():
    from neurozoo.leaderboard.zoo import DEFAULT_FIT_EPOCHS, zoo_specs

    specs, _ = zoo_specs()
    models = {s["model"] for s in specs}
    assert {"rgc_intermediate", "rgc_resnet18", "bncnn", "ln", "glm"} <= models
    assert "bncnn2016" not in models  # registered with default_zoo=False: scored only when named
    assert all(s["overrides"] == {"width_multiplier": 0.125} for s in specs if s["family"] == "convrnn")
    retina_specs = [s for s in specs if s["family"] == "retina"]
    assert retina_specs and all(s["fit"] == {"epochs": DEFAULT_FIT_EPOCHS} for s in retina_specs)
    named, _ = zoo_specs(models=["bncnn2016"], fit_epochs=5)
    assert {s["model"] for s in named} == {"bncnn2016"} and named[0]["fit"] == {"epochs": 5}


def test_a_zoo_job_on_an_untagged_plugin_benchmark_commits_its_regions_layer(untagged_plugin):
    """The job's spec (and so its key) took the region from the tag alone: on a plugin benchmark, which has none, it
    committed no layer, and a changed layer map would have reused the old map's scores."""
    from neurozoo.leaderboard.zoo import zoo_specs

    specs, _ = zoo_specs(["feedforward_intermediate", "rgc_shallow"], [untagged_plugin])
    assert {s["model"]: s["layer"] for s in specs} == {"feedforward_intermediate": "conv6", "rgc_shallow": "conv3"}


def test_zoo_runs_layer_is_the_benchmarks_commitment_and_off_the_map_the_published_fallback(monkeypatch):
    """region_layer kept its own copy of the layer rule beside benchmarks.neural.committed_layers (what zoo score
    and BrainModel commit): a change to the benchmarks' commitment left zoo run on the old layer. For every zoo
    ConvRNN and CORnet the two agree; only a ConvRNN off the released map (rgc_resnet18) takes zoo run's published
    fallback (IT: the last layer, V4: the one before it), where the benchmarks commit nothing."""
    import torch

    from neurozoo import convrnn
    from neurozoo.benchmarks import neural
    from neurozoo.leaderboard.zoo import region_layer

    names = sorted({*convrnn.list_models()} - {"cornet_rt"}) + ["cornet_rt"]
    with torch.device("meta"):
        models = {name: convrnn.create_model(name, width_multiplier=0.5 if name == "cornet_rt" else 0.125)
                  for name in names}
    for name, model in models.items():
        for region in ("V4", "IT"):
            committed = neural.committed_layers(model, region)
            expected = committed[-1] if committed else {"V4": "layer3", "IT": "layer4"}[region]
            assert region_layer(model, region) == expected, (name, region)
            assert committed or name == "rgc_resnet18", (name, region)
    monkeypatch.setattr(neural, "committed_layers", lambda model, region: ["conv7", "conv8"])  # another commitment
    assert region_layer(models["rgc_intermediate"], "IT") == "conv8"


def test_zoo_run_says_which_layers_it_scores_of_a_model_off_the_map(tmp_path, plugin_env, monkeypatch, capsys):
    """zoo score refuses a model that commits no layer to the benchmark's region (rgc_resnet18, a plugin's ConvRNN)
    and asks for --layers; zoo run scored its fallback layer without a word. It names the layer it scores now, in one
    line, and how to score others; a model on the released map gets no such line."""
    db_url = f"sqlite:///{tmp_path / 'lb.sqlite'}"
    code, out = zoo_run_here(db_url, tmp_path / "report", tmp_path / "plugin", monkeypatch, capsys,
                             models="rgc_resnet18,feedforward_intermediate")
    assert code == 0, out
    assert [line for line in out.splitlines() if line.startswith("layers: ")] == [
        "layers: rgc_resnet18 commits no layer to V4 (none named so, none on the released ConvRNN layer map): zoo run "
        "scores layer3 for V4 (the last layer for IT, the one before it otherwise) and has no option to choose "
        "others; zoo score rgc_resnet18 BENCHMARK --layers A,B scores the layers named"]
    records = LeaderboardDB(db_url).records()
    scored = {record.model.split()[0]: record.settings["layer"] for record in records}
    assert scored == {"rgc_resnet18": "layer3", "feedforward_intermediate": "conv6"}  # the layer named is the one scored
    # and the records say how it was chosen: rgc_resnet18's said "last layer of the region's map", of a map it is not on
    assert {record.model.split()[0]: record.settings["layer_choice"] for record in records} == {
        "rgc_resnet18": "fixed (no layer of the region's map: the model's last layer for IT, the one before it otherwise)",
        "feedforward_intermediate": "fixed (last layer of the region's map)"}


def test_zoo_run_says_which_layers_it_scored_of_a_plugin_model_not_built_on_the_meta_device(tmp_path, plugin_env,
                                                                                              monkeypatch, capsys):
    """A plugin's ConvRNN that cannot be built on the meta device commits to no layer before scoring: zoo run printed
    no layers: line for it. The layers are known once it is built for scoring: its records' settings name them, and
    zoo run says them from there, building the model once (its one job's build), and again for a rerun that reuses
    the job."""
    import torch

    from neurozoo import convrnn
    from neurozoo.datasets.registry import Entry
    from neurozoo.leaderboard.zoo import FALLBACK_LAYER

    builds = []

    def meta_shy(**overrides):  # a plugin's model that reads something real as it is built
        if torch.empty(0).device.type == "meta":
            raise NotImplementedError("reads its weights as it is built: not on the meta device")
        builds.append(overrides)
        return convrnn.create_model("rgc_resnet18", **overrides)

    monkeypatch.setitem(convrnn.MODELS._entries, "meta_shy",
                        Entry("meta_shy", meta_shy, "test plugin: refuses the meta device", {"family": "convrnn"}))
    db_url = f"sqlite:///{tmp_path / 'lb.sqlite'}"
    note = ("layers: meta_shy commits no layer to V4 (none named so, none on the released ConvRNN layer map): zoo run "
            "scores layer3 for V4 (the last layer for IT, the one before it otherwise) and has no option to choose "
            "others; zoo score meta_shy BENCHMARK --layers A,B scores the layers named")
    for run in ("scored", "reused"):
        code, out = zoo_run_here(db_url, tmp_path / "report", tmp_path / "plugin", monkeypatch, capsys,
                                 models="meta_shy")
        assert code == 0, out
        assert [line for line in out.splitlines() if line.startswith("layers: ")] == [note], (run, out)
        assert len(builds) == 1, run  # built for its job alone, never again for the line
    records = LeaderboardDB(db_url).records()  # its public and hidden halves' records, the ones the line was read from
    assert {(r.model.split()[0], r.settings["layer"], r.settings["layer_choice"]) for r in records} == {
        ("meta_shy", "layer3", FALLBACK_LAYER)}


def test_a_new_fitting_protocol_or_recording_version_gives_the_retina_jobs_new_keys(monkeypatch):
    """The fitting protocol was in the fit cache's key but not in the job's: after protocol 10 changed the GLM's fits,
    a re-run of zoo run reused the protocol-9 scores as done jobs, and the board kept them."""
    import neurozoo.retina.fit as retina_fit
    from neurozoo.leaderboard.db import settings_sha256
    from neurozoo.leaderboard.zoo import zoo_specs

    def keys():
        specs, _ = zoo_specs(models=["glm", "rgc_shallow"])
        return {(s["model"], s["benchmark"]): settings_sha256(s) for s in specs}

    import neurozoo.datasets.synthetic_retina as recordings

    before = keys()
    monkeypatch.setattr(retina_fit, "FIT_PROTOCOL", retina_fit.FIT_PROTOCOL + 1)
    after = keys()
    changed = {job for job in before if before[job] != after[job]}
    assert changed and changed == {job for job in before if job[0] == "glm"}  # the ConvRNN's jobs keep theirs
    # so does a new version of the embedded circuit (its recordings, hence every retina fit and score)
    monkeypatch.setattr(recordings, "VERSION", recordings.VERSION + 1)
    again = keys()
    assert {job for job in after if after[job] != again[job]} == changed


def test_a_benchmarks_new_version_gives_its_jobs_new_keys_and_unversioned_ones_keep_theirs(monkeypatch):
    """A benchmark's measure was in no job key: after the contrast-adaptation index's version 2 (which scores models
    without memory beyond their window 0 instead of up to 0.145), a re-run of zoo run on an existing database said
    "36 jobs (36 already done, reused)" and the board kept the version-1 scores. A registered ``version`` tag is now
    in the key; benchmarks without one keep the keys they had."""
    from neurozoo import benchmarks
    from neurozoo.benchmarks.phenomena import FREQUENCY_DOUBLING, OMS, PAIRED_FLASH, SCORE_VERSION
    from neurozoo.leaderboard.db import settings_sha256
    from neurozoo.leaderboard.zoo import zoo_specs
    from neurozoo.retina.phenomena.adaptation import INDEX_VERSION
    from neurozoo.retina.phenomena.osr import CALL_VERSION

    def specs():
        made, _ = zoo_specs(models=["ln", "rgc_shallow"])
        return {(s["model"], s["benchmark"]): s for s in made}

    before = specs()
    versions = {job[1]: spec.get("benchmark_version") for job, spec in before.items()}
    # the registered versions are the measures' own (written out in the registrations, not imported), plus the
    # phenomenon scores' own changes (score version 2: rounding noise has no sign; benchmarks.phenomena)
    assert SCORE_VERSION == 2
    assert versions["retina_embedded.contrast-adaptation"] == INDEX_VERSION + SCORE_VERSION - 1 == 5
    assert versions["retina_embedded.osr"] == CALL_VERSION == 5
    assert versions["retina_embedded.paired-flash"] == PAIRED_FLASH["protocol_version"] + SCORE_VERSION - 1 == 3
    assert versions["retina_embedded.oms"] == OMS["protocol_version"] + SCORE_VERSION - 1 == 3
    assert (versions["retina_embedded.frequency-doubling"] == FREQUENCY_DOUBLING["index_version"] + SCORE_VERSION - 1
            == 3)
    # the OSR call versions 3-5 (rounding is no response) changed its reduced models' calls: unversioned before
    assert versions["retina_embedded.osr-mechanism"] == 3
    assert versions["retina_embedded.whitenoise-heldout"] is None and versions["ventral_embedded.V4-temporal"] is None
    assert all("benchmark_version" not in spec for spec in before.values() if versions[spec["benchmark"]] is None)
    adaptation = before[("ln", "retina_embedded.contrast-adaptation")]
    unversioned = {key: value for key, value in adaptation.items() if key != "benchmark_version"}
    assert settings_sha256(adaptation) != settings_sha256(unversioned)  # a version-1 job is not reused
    entry = benchmarks.BENCHMARKS.get("retina_embedded.oms")
    monkeypatch.setitem(entry.tags, "version", entry.tags["version"] + 1)  # a measure changed: its jobs alone get
    # new keys
    after = specs()
    assert {job for job in before if settings_sha256(before[job]) != settings_sha256(after[job])} == {
        ("ln", "retina_embedded.oms")}


def test_a_checkpoint_the_run_would_not_use_is_refused(tmp_path):
    """Before: a checkpoint for a misspelled model (or one not in --models) was dropped silently, so the model was
    scored with random weights; one for a retina model renamed its rows 'ln@w (weights ...)' while the benchmark
    fitted the model afresh and never read the file."""
    import torch

    from neurozoo.datasets.errors import UserFacingError
    from neurozoo.leaderboard.zoo import zoo_specs

    weights = tmp_path / "w.pt"
    torch.save({"x": torch.zeros(2)}, weights)
    with pytest.raises(UserFacingError, match=r"--checkpoint rgc_intermedate=.*w\.pt: no model rgc_intermedate in "
                                              r"this run \(its models: rgc_intermediate\)"):
        zoo_specs(["rgc_intermediate"], checkpoints={"rgc_intermedate": str(weights)})
    with pytest.raises(UserFacingError, match=r"--checkpoint ln=.*w\.pt: ln is a retina model"):
        zoo_specs(["ln"], checkpoints={"ln": str(weights)})
    from neurozoo import convrnn

    fitting = tmp_path / "fits.pt"  # weights that fit: zoo_specs refuses others before queueing
    torch.save(convrnn.create_model("feedforward_intermediate", width_multiplier=0.125).state_dict(), fitting)
    specs, _ = zoo_specs(["feedforward_intermediate"], checkpoints={"feedforward_intermediate": str(fitting)})
    assert specs and all(s["checkpoint"]["path"] == str(fitting) for s in specs)


def test_a_run_on_cortex_benchmarks_only_does_not_say_no_retina_benchmark_is_registered():
    """`zoo run --benchmarks ventral_embedded.V4-temporal` printed "skipped: retina models: no retina benchmark is
    registered yet", with eight retina benchmarks registered: the choice of benchmarks left them out."""
    from neurozoo.leaderboard.zoo import zoo_specs

    _, skipped = zoo_specs(benchmark_names=["ventral_embedded.V4-temporal"])
    assert "retina models: none of --benchmarks is a retina benchmark" in skipped
    assert not any("registered" in note for note in skipped)
    _, default = zoo_specs()
    assert not any(note.startswith("retina models") for note in default)  # the default run scores them


def test_zoo_score_and_zoo_run_take_a_zoo_train_checkpoint_of_fewer_classes(tmp_path):
    """A model trained by zoo train has its data's classes in its readout (here 4); zoo score refused its checkpoint
    ("readout.weight has shape (4, 8), the model's is (1000, 8)") unless given --set num_classes=4, and zoo run, which
    has no --set, refused it always. The checkpoint records its classes: the model is built with them. Its width too:
    zoo run built it at its own --width-multiplier (0.125, the untrained zoo's), a size mismatch for this 0.25."""
    import torch

    from neurozoo.benchmarks.named_models import resolve_model
    from neurozoo.convrnn.training import TrainConfig, train
    from neurozoo.convrnn.training.synthetic import write_image_folder
    from neurozoo.leaderboard.zoo import build_model, zoo_specs

    data = write_image_folder(tmp_path / "images", n_classes=4, per_class=2, val_per_class=1, size=32)
    train(TrainConfig(model="feedforward_intermediate", data=str(data), out=str(tmp_path / "run"), epochs=1,
                      batch_size=8, image_size=32, workers=0, log_every=0, quiet=True,
                      overrides={"width_multiplier": 0.25}))
    checkpoint = tmp_path / "run" / "best.pth"
    trained = torch.load(checkpoint, weights_only=False)["model"]

    def same_weights(model):
        return model.readout.weight.shape[0] == 4 and all(torch.equal(v, trained[k]) for k, v in model.state_dict().items())

    assert same_weights(resolve_model("feedforward_intermediate", checkpoint))
    (spec,), _ = zoo_specs(["feedforward_intermediate"], ["ventral_embedded.V4-temporal"],
                           checkpoints={"feedforward_intermediate": str(checkpoint)})
    assert spec["overrides"] == {"width_multiplier": 0.25, "num_classes": 4}
    assert same_weights(build_model(spec))


def test_a_benchmark_without_a_hidden_split_is_scored_by_zoo_run(monkeypatch):
    """score_model returns (record, None) for a benchmark that is not a NeuralBenchmark (no public/hidden split);
    score_spec then stamped every record with the weights' hash and failed on the None: 'NoneType' object has no
    attribute 'settings', after the scoring was done."""
    import torch

    from neurozoo.benchmarks.records import ScoreRecord
    from neurozoo.datasets.provenance import module_sha256
    from neurozoo.leaderboard import zoo

    model = torch.nn.Linear(2, 1)
    monkeypatch.setattr(zoo, "build_model", lambda spec, device: model)
    monkeypatch.setattr(zoo, "score_model", lambda *a, **k: (ScoreRecord("m", "plugin.behaviour", 0.5, settings={}), None))
    spec = {"family": "convrnn", "model": "m", "benchmark": "plugin.behaviour", "overrides": {}, "checkpoint": None,
            "score": {"max_features": 200, "seed": 0}}
    public, hidden = zoo.score_spec(spec)
    assert hidden is None and public.settings["model_sha256"] == module_sha256(model)
    assert public.settings["rerun"] == {"command": "zoo run", "spec": spec}


def test_a_report_write_that_fails_part_way_leaves_the_whole_previous_report(tmp_path):
    """`zoo run`'s static report was written page by page in place: a kill or a full disk while index.html was written
    left half a page where the last whole report had been (a browser shows it as the report). Each page is renamed
    into place now, and index.html is written last, so its links lead to pages already written."""
    from full_disk import files_limited_to

    from neurozoo.benchmarks.records import ScoreRecord
    from neurozoo.leaderboard.render import write_report

    db = LeaderboardDB(f"sqlite:///{tmp_path / 'lb.sqlite'}")
    try:
        for model, value in (("alpha", 0.3), ("beta", 0.5)):
            job = db.enqueue(model, "ventral_embedded.V4-temporal", {"m": model})
            claim = db.claim("w", ids=[job])
            finish_claim(db, claim, ScoreRecord(model, "ventral_embedded.V4-temporal", value + 0.05),
                         hidden=ScoreRecord(model, "ventral_embedded.V4-temporal", value, ceiling=0.8))
        index = write_report(db, tmp_path / "report")
        before = {page: page.read_text() for page in index.parent.rglob("*.html")}
        job = db.enqueue("gamma", "ventral_embedded.V4-temporal", {"m": "gamma"})  # a new row: every page changes
        claim = db.claim("w", ids=[job])
        finish_claim(db, claim, ScoreRecord("gamma", "ventral_embedded.V4-temporal", 0.9),
                     hidden=ScoreRecord("gamma", "ventral_embedded.V4-temporal", 0.85, ceiling=0.8))
        with files_limited_to(index.stat().st_size // 2), pytest.raises(OSError):
            write_report(db, tmp_path / "report")
        assert {page: page.read_text() for page in before} == before
        assert sorted(p.name for p in index.parent.rglob("*") if ".tmp" in p.name) == []
    finally:
        db.dispose()


def _scored(features_of):
    """(public, hidden) scores of the features ``features_of(signal)`` on a small synthetic V4 benchmark through the
    scorer's ``score_splits`` (the path of both ``zoo run`` and submissions): the hidden split and every check."""
    import numpy as np
    import torch

    from neurozoo.benchmarks.extraction import Stimuli
    from neurozoo.benchmarks.neural import NeuralBenchmark
    from neurozoo.benchmarks.synthetic import as_features, synthetic_assembly
    from neurozoo.leaderboard.zoo import score_splits, split_spec

    assembly, clean = synthetic_assembly(n_stimuli=96, n_neuroids=10, n_bins=3, n_repetitions=4, n_objects=4, seed=0)
    ids = list(clean["stimulus_id"].values)
    benchmark = NeuralBenchmark("lbtest.V4", "V4", lambda: assembly, lambda: Stimuli(ids, torch.zeros(96, 3, 8, 8)))
    mix = np.random.default_rng(1).normal(size=(10, 30))
    signal = np.einsum("pnt,nf->pft", clean.values, mix) + np.random.default_rng(2).normal(size=(96, 30, 3))
    features = as_features(np.asarray(features_of(signal), dtype=np.float32), clean)
    public, hidden = score_splits(benchmark, features, {"benchmark": "lbtest.V4", "split": split_spec()}, "m",
                                  {"layer": "conv2"}, time.perf_counter())
    return public.value, hidden.value


def test_small_but_well_conditioned_features_score_as_the_same_features_at_scale_1():
    """Features of 1e-30 were squared in float32 to zero: the regression predicted a constant, every r was 0, and the
    job was stored done with a score of 0. PLS (Brain-Score's, scale=False) predicts the same from c X as from X: the
    score is the same at any scale from float32's smallest normal number to the upper bound."""
    reference = _scored(lambda signal: signal)
    assert reference[1] > 0.3  # the features carry the signal
    for factor in (1e-20, 1e-30, 1e-36, 1e10):
        assert _scored(lambda signal: signal * factor) == pytest.approx(reference, rel=1e-4), factor


@pytest.mark.parametrize("features_of, match", [
    (lambda signal: signal * 0.0, r"m: layer conv2 on lbtest.V4: every feature value is 0 \(96 stimuli, 90 values"),
    (lambda signal: signal * 1e-41, r"m: layer conv2 on lbtest.V4: feature values of at most [0-9.]+e-40, below float32's "
                                    r"smallest normal number: subnormal values have lost precision \(rescale the layer"),
    (lambda signal: 0 * signal + signal.mean(0), r"m: layer conv2 on lbtest.V4: each of its 90 values \(features x time "
                                                 r"bins\) is the same for all 96 stimuli: features that do not depend"),
    (lambda signal: signal * 1e13, r"m: layer conv2 produced feature values up to .* expected magnitudes of at most 1e\+12"),
])
def test_degenerate_features_fail_by_name_instead_of_scoring_zero(features_of, match):
    """All-zero and stimulus-independent features scored 0 and were stored as done, without a word; subnormal ones
    (below 1.2e-38, bits of precision lost) scored approximately. Each now fails the job, naming model, layer,
    benchmark and what is wrong."""
    from neurozoo.leaderboard.zoo import ScoringError

    with pytest.raises(ScoringError, match=match):
        _scored(features_of)


def test_a_time_bin_of_constant_features_is_scored_not_refused():
    """A ConvRNN's first steps run on its biases alone (the image has not reached the layer): features the same for
    every stimulus in those bins are the model's honest response, scored 0 there, and the job is not refused."""
    def early_bin_blank(signal):
        out = signal.copy()
        out[:, :, 0] = 1.5
        return out

    public, hidden = _scored(early_bin_blank)
    assert hidden > 0.1
