"""``zoo score`` stopped by SIGTERM (a scheduler's preemption) or Ctrl-C: exit 130 with one line saying what was
kept, and the same command run again goes on without storing a duplicate record. Each signal is sent by the child
itself from a patched function, so that it lands at one known point of the run."""
import os
import subprocess
import sys

import pytest

from neurozoo.benchmarks.records import ResultsStore

#: the benchmark: 60 images (three batches of 20 at --batch-size 20), registered by the child and, for a rerun without
#: a signal, in this process (zoo_score_here)
BENCHMARK = """
import numpy as np, torch, xarray as xr
from neurozoo.benchmarks.extraction import activations
from neurozoo.benchmarks.neural import NeuralBenchmark
from neurozoo.datasets.registry import Entry

rng = np.random.default_rng(0)
n, reps = 60, 2
stimuli = activations.Stimuli([f"im{i}" for i in range(n)], torch.from_numpy(rng.standard_normal((n, 3, 32, 32))).float(),
                              np.array([f"o{i % 3}" for i in range(n)]))
assembly = xr.DataArray(rng.standard_normal((n * reps, 5, 1)), dims=("presentation", "neuroid", "time_bin"), coords={
    "stimulus_id": ("presentation", np.tile(stimuli.ids, reps)),
    "object_name": ("presentation", np.tile(stimuli.object_name, reps)),
    "repetition": ("presentation", np.repeat(np.arange(reps), n)),
    "time_bin_start": ("time_bin", [70]), "time_bin_end": ("time_bin", [170])})
entry = Entry("test.stop-V4", lambda: NeuralBenchmark("test.stop-V4", "V4", lambda: assembly, lambda: stimuli),
              "stop test")
"""

#: the child: the benchmark, then a signal where argv[1] says
CHILD = BENCHMARK + """
import atexit, os, signal, sys, time
from neurozoo import benchmarks
from neurozoo.benchmarks import cli, plots
from neurozoo.leaderboard.cli import main

benchmarks.BENCHMARKS._entries["test.stop-V4"] = entry

when = sys.argv[1]
signum = signal.SIGINT if when.startswith("ctrl-c") else signal.SIGTERM
signalled = []


def at(point, function):
    def patched(*args, **kwargs):
        if when.endswith(point):
            signalled.append(time.perf_counter())
            os.kill(os.getpid(), signum)
        return function(*args, **kwargs)
    return patched


def scored(*args, **kwargs):
    result = score(*args, **kwargs)
    if when.endswith("after scoring"):
        os.kill(os.getpid(), signum)
    return result


batch, score, fetched = activations.Stimuli.batch, cli.score_from_args, []


def fetch(self, start, stop):
    fetched.append(start)
    return (at("in the first batch", batch) if start == 0 else batch)(self, start, stop)


activations.Stimuli.batch = fetch
atexit.register(lambda: print(f"batches extracted from image: {fetched}"))
atexit.register(lambda: signalled and print(f"ran on after the signal: {time.perf_counter() - signalled[0]:.2f} s"))
cli.score_from_args = scored
cli.resolve_model_and_weights = at("while building the model", cli.resolve_model_and_weights)
plots.plot_time_course = at("while plotting", plots.plot_time_course)
sys.exit(main(sys.argv[2:]))
"""


def _arguments(tmp_path, *options: str) -> list:
    return ["score", "timm:test_resnet", "test.stop-V4", "--layers", "layer2", "--max-features", "20", "--batch-size",
            "20", "--db", f"sqlite:///{tmp_path / 'r.sqlite'}", "--out", str(tmp_path / "out"), *options]


def zoo_score(tmp_path, when: str, *options: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "NEUROZOO_HOME": str(tmp_path / "home"),
           "NEUROZOO_CACHE": str(tmp_path / "cache")}
    return subprocess.run([sys.executable, "-c", CHILD, when, *_arguments(tmp_path, *options)],
                          capture_output=True, text=True, timeout=120, env=env)


def zoo_score_here(tmp_path, monkeypatch, capsys, *options: str) -> subprocess.CompletedProcess:
    """zoo_score's command without a signal (a rerun, the same command run again), in this process: it needs no
    process of its own, whose start (torch, timm, scikit-learn and xarray imported again) cost more than the score.
    Its stdout ends with the child's line of the batches extracted from image."""
    from neurozoo import benchmarks
    from neurozoo.benchmarks.extraction import activations
    from neurozoo.leaderboard.cli import main

    made, fetched = {}, []
    exec(BENCHMARK, made)
    batch = activations.Stimuli.batch
    capsys.readouterr()
    with monkeypatch.context() as patch:
        patch.setitem(benchmarks.BENCHMARKS._entries, "test.stop-V4", made["entry"])
        patch.setenv("NEUROZOO_HOME", str(tmp_path / "home"))
        patch.setenv("NEUROZOO_CACHE", str(tmp_path / "cache"))
        patch.setattr(activations.Stimuli, "batch", lambda self, start, stop: (fetched.append(start),
                                                                                batch(self, start, stop))[1])
        code = main(_arguments(tmp_path, *options))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["zoo", *_arguments(tmp_path, *options)], code,
                                       f"{out}batches extracted from image: {fetched}\n", err)


def records(tmp_path) -> list:
    return [record.id for record in ResultsStore(f"sqlite:///{tmp_path / 'r.sqlite'}").records()]


def cached(tmp_path) -> list:
    return sorted(path.name for path in (tmp_path / "cache").rglob("*.nc.signed"))


def partials(tmp_path) -> dict:
    return {path.name: path.read_bytes() for path in (tmp_path / "cache").rglob("*.partial/*")}


def test_sigterm_mid_extraction_keeps_the_finished_batches_and_the_rerun_extracts_only_the_others(tmp_path, monkeypatch,
                                                                                                  capsys):
    """SIGTERM killed zoo score without a word (exit -15); then it stopped at the next batch, exit 130, keeping
    nothing, so the rerun extracted every batch again (minutes for a full-width ConvRNN). The finished batches are
    now kept in the activation cache, and the rerun extracts only the others, to the same score bit for bit: that
    of a run without the cache, whose record it reuses. --no-cache neither reads nor writes them."""
    stopped = zoo_score(tmp_path, "sigterm in the first batch")
    assert (stopped.returncode, stopped.stderr.splitlines()[-1]) == (130, (
        "zoo score: interrupted; signal 15 before the score was stored: nothing stored; 1 of 3 batches extracted, "
        "kept in the activation cache for the next run, which extracts the other 2; rerun the same command to score "
        "it"))
    assert (records(tmp_path), cached(tmp_path), list((tmp_path / "out").glob("*"))) == ([], [], [])
    kept = partials(tmp_path)
    assert list(kept) == ["batch-00000.signed"]
    without_cache = zoo_score_here(tmp_path, monkeypatch, capsys, "--no-cache")
    assert without_cache.returncode == 0, without_cache.stderr[-2000:]
    assert "batches extracted from image: [0, 20, 40]" in without_cache.stdout
    assert (records(tmp_path), cached(tmp_path), partials(tmp_path)) == ([1], [], kept)
    rerun = zoo_score_here(tmp_path, monkeypatch, capsys)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "batches extracted from image: [20, 40]" in rerun.stdout
    assert ("record 1: stored before with identical settings, data, code and score; reused, not stored again\n"
            in rerun.stdout)
    assert (records(tmp_path), len(cached(tmp_path)), partials(tmp_path)) == ([1], 1, {})


def test_sigterm_while_the_model_is_built_stops_at_once_and_the_rerun_scores_as_a_run_never_stopped(
        tmp_path, monkeypatch, capsys):
    """A neural benchmark's zoo score took a SIGTERM in its setup (imports, the model's building, the images and the
    activation cache read) only at its first safe point, once its first batch was extracted and kept (a minute for
    a full-width ConvRNN on a CPU). It writes nothing until then, so the stop is now taken at once
    (datasets.termination.stopping_at_once): no batch extracted, nothing cached or stored, exit 130 saying so; the
    rerun scores what a run never stopped scores (the --no-cache run reuses its record: the same score)."""
    stopped = zoo_score(tmp_path, "sigterm while building the model")
    assert (stopped.returncode, stopped.stderr.splitlines()[-1]) == (130, (
        "zoo score: interrupted; signal 15 before the score was stored: nothing stored; rerun the same command to "
        "score it")), stopped.stderr[-3000:]
    after, extracted = stopped.stdout.splitlines()[-2:]  # atexit: the last registered first
    assert extracted == "batches extracted from image: []"
    assert float(after.split(": ")[1].split()[0]) < 1.0, after  # the exit's own clean-up; the build never ran
    assert (records(tmp_path), cached(tmp_path), partials(tmp_path), list((tmp_path / "out").glob("*"))) == (
        [], [], {}, [])
    rerun = zoo_score_here(tmp_path, monkeypatch, capsys)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "batches extracted from image: [0, 20, 40]" in rerun.stdout and "record 1 in" in rerun.stdout
    uninterrupted = zoo_score_here(tmp_path, monkeypatch, capsys, "--no-cache")
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-2000:]
    assert ("record 1: stored before with identical settings, data, code and score; reused, not stored again\n"
            in uninterrupted.stdout)
    assert records(tmp_path) == [1]


def test_a_plugins_score_ends_the_setups_stop_at_once_stretch_raising_a_pending_stop_before_it_scores():
    """A neural (or imagenet.val) benchmark of this package takes zoo score's safe point; a plugin's, which may
    write at once, takes none, so a SIGTERM pending as it is reached stops zoo score before it scores, and no other
    one does (benchmarks.cli._safe_point_or_setup_ends, once written out in each of the two paths)."""
    import signal

    from neurozoo.benchmarks import cli
    from neurozoo.datasets.termination import sigterm_deferred, termination_requested

    def safe_point(*where):
        pass

    with sigterm_deferred():
        assert cli._safe_point_or_setup_ends("a plugin's", int, safe_point) == {}  # nothing pending: it scores
        os.kill(os.getpid(), signal.SIGTERM)
        assert cli._safe_point_or_setup_ends(3, int, safe_point) == {"safe_point": safe_point}
        assert cli._safe_point_or_setup_ends("a plugin's", int, None) == {}  # scored without zoo score's stop
        with pytest.raises(KeyboardInterrupt, match="^signal 15$"):
            cli._safe_point_or_setup_ends("a plugin's", int, safe_point)
    assert termination_requested() is None


def test_sigterm_after_scoring_stores_nothing_and_the_rerun_reads_the_cache(tmp_path, monkeypatch, capsys):
    stopped = zoo_score(tmp_path, "sigterm after scoring")
    assert (stopped.returncode, stopped.stderr.splitlines()[-1]) == (130, (
        "zoo score: interrupted; signal 15 before the score was stored: nothing stored; the activations extracted "
        "are in the activation cache, which the rerun reads; rerun the same command to score it"))
    assert records(tmp_path) == [] and len(cached(tmp_path)) == 1
    rerun = zoo_score_here(tmp_path, monkeypatch, capsys)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert records(tmp_path) == [1] and "record 1 in" in rerun.stdout and "reused" not in rerun.stdout


def test_ctrl_c_in_the_first_batch_says_nothing_was_kept(tmp_path):
    """A Ctrl-C in the first batch said "the activations extracted are in the activation cache, which the rerun
    reads", when nothing was: the line now says what the cache keeps, counted by the extraction."""
    stopped = zoo_score(tmp_path, "ctrl-c in the first batch")
    assert (stopped.returncode, stopped.stderr.splitlines()[-1]) == (130, (
        "zoo score: interrupted; Ctrl-C before the score was stored: nothing stored; stopped in the first of 3 "
        "batches, before any was kept: the rerun extracts all 3; rerun the same command to score it"))
    assert (records(tmp_path), cached(tmp_path), partials(tmp_path)) == ([], [], {})


#: where the in-process extraction below is stopped: the end of the stop line (after "nothing stored") and how many
#: batches the rerun extracts (4 in all: 10 images in batches of 3)
STOPS = {"before the extraction": ("; no activations extracted yet", 4),
         "in the first batch": ("; stopped in the first of 4 batches, before any was kept: the rerun extracts all 4", 4),
         "in the third batch": ("; 2 of 4 batches extracted, kept in the activation cache for the next run, which "
                                "extracts the other 2", 2),
         "in the first batch of a resumed run": ("; 2 of 4 batches extracted, kept in the activation cache for the "
                                                 "next run, which extracts the other 2", 2),
         "as the second layer is saved": ("; all 4 batches extracted, kept in the activation cache for the next run, "
                                          "which extracts none again", 0),
         "after the extraction": ("; the activations extracted are in the activation cache, which the rerun reads", 0)}


@pytest.mark.parametrize("stop", list(STOPS))
def test_the_stop_line_says_what_the_activation_cache_keeps_and_the_rerun_extracts_that_much(tmp_path, monkeypatch,
                                                                                             stop):
    """zoo score's stop line (cli._stopped) from the counts a real extraction reports (extract(cache_progress=...)),
    stopped at each point: its numbers are the batches the rerun then extracts."""
    import warnings
    from argparse import Namespace

    import torch

    from neurozoo.benchmarks import cli
    from neurozoo.benchmarks.extraction import ActivationCache, Stimuli, extract
    from test_extraction_resume import _counted, _toy

    count = cli.CacheCount()
    count.counting = True
    state = {"record": None, "extracted": None, "analysing": False, "cache": count}
    args = Namespace(benchmark="ventral_embedded.V4-temporal", no_cache=False)
    stimuli = Stimuli([f"im{i}" for i in range(10)], torch.randn(10, 3, 8, 8, generator=torch.Generator().manual_seed(1)))
    cache, model = ActivationCache(tmp_path / "acts"), _counted(_toy())

    def run():
        return extract(model, stimuli, ["conv1", "conv2"], cache=cache, progress=False, batch_size=3, max_features=20,
                       cache_progress=count)

    def interrupted_at(start):
        batch = Stimuli.batch
        with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
            patch.setattr(Stimuli, "batch", lambda self, first, stop: (
                (_ for _ in ()).throw(KeyboardInterrupt) if first == start else batch(self, first, stop)))
            run()

    if stop == "in the first batch of a resumed run":
        interrupted_at(6)
        count.held = None
        interrupted_at(6)  # the rerun's first batch: it resumed after the two kept
    elif stop.startswith("in the"):
        interrupted_at({"first": 0, "third": 6}[stop.split()[2]])
    elif stop == "as the second layer is saved":
        save = ActivationCache.save
        with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
            patch.setattr(ActivationCache, "save", lambda self, key, array: (
                save(self, key, array) if array.layer.values[0] == "conv1" else (_ for _ in ()).throw(KeyboardInterrupt)))
            run()
    elif stop == "after the extraction":
        run()
    end, extracted = STOPS[stop]
    assert cli._stopped(args, KeyboardInterrupt(), state) == (
        f"Ctrl-C before the score was stored: nothing stored{end}; rerun the same command to score it")
    model.passes = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every kept batch read
        run()
    assert model.passes == extracted
    # a plugin's benchmark, which does not count: the line says nothing of the cache
    assert cli._stopped(args, KeyboardInterrupt(), {**state, "cache": cli.CacheCount()}) == (
        "Ctrl-C before the score was stored: nothing stored; rerun the same command to score it")


@pytest.mark.parametrize("when", ["ctrl-c while plotting", "sigterm while plotting"])
def test_a_stop_after_the_record_is_stored_names_it_and_the_rerun_reuses_it(tmp_path, monkeypatch, capsys, when):
    """A Ctrl-C as the plots were written printed only "interrupted", and the rerun stored a second, identical
    record. The line now names the stored record and the rerun that writes the plots, which reuses the record."""
    stopped = zoo_score(tmp_path, when)
    db = f"sqlite:///{tmp_path / 'r.sqlite'}"
    kept = ("its summary and plots not all written: rerun the same command to write them (it reuses the record, "
            "storing no duplicate)" if when.startswith("ctrl-c") else "its summary and plots written")
    signal = "Ctrl-C" if when.startswith("ctrl-c") else "signal 15"  # SIGTERM waits for the plots
    assert (stopped.returncode, stopped.stderr.splitlines()[-1]) == (130, (
        f"zoo score: interrupted; {signal} after record 1 was stored in {db}; {kept}"))
    assert records(tmp_path) == [1]
    assert len(list((tmp_path / "out").glob("*.png"))) == (0 if when.startswith("ctrl-c") else 1)
    rerun = zoo_score_here(tmp_path, monkeypatch, capsys)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert records(tmp_path) == [1]
    assert ("record 1: stored before with identical settings, data, code and score; reused, not stored again\n"
            in rerun.stdout)
    assert [path.name.split("-", 1)[1] for path in (tmp_path / "out").glob("*.png")] == [
        "000001_test.stop-V4_timm_test_resnet.png"]


#: the child for imagenet.val: a scheduler's SIGTERM to the whole job (the loading worker too, sent by another
#: process) as its first evaluation batch is scored; says how many batches it scored
IMAGENET_CHILD = """
import atexit, os, subprocess, sys, time
from neurozoo.convrnn.training import evaluation
from neurozoo.leaderboard.cli import main

scored, step_logits = [], evaluation.step_logits


def first_batch_signalled(output):
    if not scored:
        subprocess.run(["sh", "-c", f"kill -TERM -{os.getpgid(0)}"])
        time.sleep(1)  # the batch computing on as a killed worker's SIGCHLD arrives
    scored.append(1)
    return step_logits(output)


evaluation.step_logits = first_batch_signalled
atexit.register(lambda: print(f"batches scored: {len(scored)}"))
sys.exit(main(sys.argv[1:]))
"""


def test_sigterm_mid_imagenet_evaluation_stops_at_the_next_batch_storing_nothing(tmp_path):
    """imagenet.val's evaluation had no safe point: a SIGTERM waited for every batch (minutes on a real folder)
    before the pre-store safe point took it, and one sent to the loading worker too failed it with a traceback. It
    now stops before the next batch, exit 130, saying so."""
    import numpy as np
    from PIL import Image

    for k in range(4):  # 4 classes of 3 images: 3 batches of 4
        (tmp_path / "val" / f"n0{k:07d}").mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((20, 20, 3), 40 * k, np.uint8)).save(tmp_path / "val" / f"n0{k:07d}" / f"{i}.png")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "NEUROZOO_HOME": str(tmp_path / "home")}
    stopped = subprocess.run(
        [sys.executable, "-c", IMAGENET_CHILD, "score", "rgc_shallow", "imagenet.val", "--data", str(tmp_path),
         "--image-size", "16", "--batch-size", "4", "--workers", "1", "--set", "width_multiplier=0.125", "--set",
         "n_steps=4", "--set", "image_steps=4", "--set", "norm=none", "--set", "num_classes=4", "--db",
         f"sqlite:///{tmp_path / 'r.sqlite'}", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120, env=env, start_new_session=True)  # its own process group
    assert (stopped.returncode, stopped.stderr.splitlines()[-1], stopped.stdout.splitlines()[-1]) == (130, (
        "zoo score: interrupted; signal 15 before the score was stored: nothing stored (stopped after 1 of 3 batches, "
        "which the rerun evaluates again); rerun the same command to score it"), "batches scored: 1"), stopped.stderr
    assert (records(tmp_path), list((tmp_path / "out").glob("*"))) == ([], [])


#: the child for a retina benchmark's analysis: SIGTERM as argv[1]'s slow stage begins (the first cell's attribution
#: of osr-mechanism, the model's first object-motion stimulus of oms); says how many of that stage's units (cells
#: attributed, stimuli made) it went through and how long it ran on after the signal
RETINA_CHILD = """
import atexit, os, signal, sys, time
from neurozoo import benchmarks
from neurozoo.benchmarks import phenomena
from neurozoo.retina import mechanism
from neurozoo.datasets import retina_stimuli as stimuli
from neurozoo.leaderboard.cli import main

stage, units, signalled = sys.argv[1], [], []


def signal_at_the_first(unit):
    units.append(1)
    if len(units) == 1:
        signalled.append(time.perf_counter())
        os.kill(os.getpid(), signal.SIGTERM)


if stage == "osr-mechanism":  # per ground-truth OSR cell: integrated gradients, then the reduced model's OSR probe
    post_omission_ranking = mechanism.post_omission_ranking
    mechanism.post_omission_ranking = lambda *a, **k: (signal_at_the_first("cell"), post_omission_ranking(*a, **k))[1]
else:  # oms: the circuit's index first (one analysis), then the model's, a movie per centre and condition
    analysis, settings, description = phenomena.PHENOMENA["oms"]
    systems, object_motion = [], stimuli.object_motion

    def counted(system, options):
        systems.append(system)
        return analysis(system, options)

    def movie(*a, **k):
        if len(systems) == 2:
            signal_at_the_first("stimulus")
        return object_motion(*a, **k)

    phenomena.PHENOMENA["oms"] = (counted, settings, description)
    stimuli.object_motion = movie
atexit.register(lambda: print(f"units: {len(units)}; after the signal: {time.perf_counter() - signalled[0]:.2f} s"))
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("benchmark", ["osr-mechanism", "oms"])
def test_sigterm_mid_retina_analysis_stops_at_the_next_stage_storing_nothing(tmp_path, benchmark):
    """A retina benchmark had only the safe point before its record was stored: a SIGTERM as osr-mechanism attributed
    its first cell waited for all six (~20 s), one as oms probed the model for all its stimuli (37 then; 73 in protocol
    version 2, on the object-motion circuit's 6 cells). It now stops at the next stage (an integrated-gradients step, a
    probe stimulus), exit 130, saying so, nothing stored."""
    import torch

    from neurozoo.retina.fit import create_model

    torch.manual_seed(0)
    n_cells = 6 if benchmark == "oms" else 12  # the object-motion circuit's cells (embedded:oms-whitenoise)
    torch.save(create_model("bncnn", n_cells=n_cells).state_dict(), tmp_path / "bncnn.pt")  # untrained: the same work
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "NEUROZOO_HOME": str(tmp_path / "home")}
    stopped = subprocess.run(
        [sys.executable, "-c", RETINA_CHILD, benchmark, "score", "bncnn", f"retina_embedded.{benchmark}",
         "--checkpoint", str(tmp_path / "bncnn.pt"), "--db", f"sqlite:///{tmp_path / 'r.sqlite'}", "--out",
         str(tmp_path / "out")], capture_output=True, text=True, timeout=300, env=env)
    units, after = stopped.stdout.splitlines()[-1].split("; ")
    assert (stopped.returncode, stopped.stderr.splitlines()[-1], units) == (130, (
        f"zoo score: interrupted; signal 15 before the score was stored: nothing stored (stopped part-way through "
        f"retina_embedded.{benchmark}'s analysis, which the rerun runs again); rerun the same command to score it"),
        "units: 1"), (stopped.stderr[-3000:], stopped.stdout[-500:])
    assert (records(tmp_path), list((tmp_path / "out").glob("*"))) == ([], [])
    print(after)  # the next safe point is one integrated-gradients step (or one stimulus) away: ~0.5 s on 2 idle cores


#: the child for a retina command's setup: SIGTERM as the module argv[1] names is first imported (the first of the
#: costly imports: scipy for zoo score's and zoo run's phenomenon benchmark, torch for zoo fit); says whether it was,
#: and whether that import finished
SIGNAL_AT_IMPORT = """
import atexit, importlib.abc, os, signal, sys
marker, sent = sys.argv[1], []


class SignalAtImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == marker and not sent:
            sent.append(name)
            os.kill(os.getpid(), signal.SIGTERM)
        return None


sys.meta_path.insert(0, SignalAtImport())
atexit.register(lambda: print(f"signalled: {bool(sent)}; {marker} imported: {marker in sys.modules}"))
from neurozoo.leaderboard.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("command", ["score", "fit", "run"])
def test_sigterm_in_a_retina_commands_setup_stops_it_at_once(tmp_path, command):
    """A SIGTERM to a retina benchmark's zoo score (or zoo fit, or a retina job of zoo run) as it began waited for its
    first safe point, the fit folder's lock: torch and scipy imported and the recording read first (~4 CPU-s; the
    recording generated, when not cached, ~10 more). Until that lock nothing is written, so the stop is now taken at
    once (datasets.termination.stopping_at_once): the import under way (the costly part) does not finish, no fit
    begins, exit 130 saying nothing was stored."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "NEUROZOO_HOME": str(tmp_path / "home"),
           "NEUROZOO_CACHE": str(tmp_path / "cache")}
    db = f"sqlite:///{tmp_path / 'r.sqlite'}"
    marker, arguments = {
        "score": ("scipy", ["score", "ln", "retina_embedded.osr", "--db", db, "--out", str(tmp_path / "out")]),
        "fit": ("torch", ["fit", "ln", "--data", "embedded:whitenoise", "--epochs", "1", "--quiet"]),
        "run": ("scipy", ["run", "--db", db, "--models", "ln", "--benchmarks", "retina_embedded.osr", "--report",
                          str(tmp_path / "report"), "--no-progress", "--fit-epochs", "1"])}[command]
    stopped = subprocess.run([sys.executable, "-c", SIGNAL_AT_IMPORT, marker, *arguments], capture_output=True,
                             text=True, timeout=300, env=env)
    line = {"score": "zoo score: interrupted; signal 15 before the score was stored: nothing stored; rerun the same "
                     "command to score it",
            "fit": "zoo fit: interrupted; signal 15",
            "run": "zoo run: interrupted; "}[command]
    assert (stopped.returncode, stopped.stdout.splitlines()[-1]) == (130, f"signalled: True; {marker} imported: "
                                                                          "False"), stopped.stderr[-3000:]
    assert stopped.stderr.splitlines()[-1].startswith(line), stopped.stderr[-3000:]
    assert list((tmp_path / "cache").rglob("*fit*")) == [] and not (tmp_path / "out").exists()
    if command != "fit":
        assert records(tmp_path) == []


@pytest.mark.parametrize("benchmark", ["oms", "osr", "osr-mechanism"])
def test_a_sigterm_while_the_ground_truth_circuit_is_built_stops_at_once(monkeypatch, benchmark):
    """A retina benchmark builds the ground-truth circuit (0.5-0.9 CPU-s of calibration) after the model's fit, whose
    lock ended the setup's stretch where a stop is taken at once: a SIGTERM during the build waited for it to finish,
    then stopped at the first probe stimulus. The build writes nothing, so the stop is now taken at once there too
    (benchmarks.retina.ground_truth): the calibration does not finish and no stimulus is probed."""
    import signal

    import torch

    from neurozoo import benchmarks
    from neurozoo.benchmarks import osr, phenomena
    from neurozoo.datasets import oms_retina, synthetic_retina
    from neurozoo.datasets.termination import raise_if_terminated, sigterm_deferred
    from neurozoo.retina.fit import create_model

    # OMS (protocol version 2): its ground truth is the object-motion circuit (six cells), the others' the default one
    circuit_module, circuit, n_cells = ((oms_retina, oms_retina.OMSRetina, 6) if benchmark == "oms" else
                                        (synthetic_retina, synthetic_retina.GroundTruthRetina, 12))
    calibrate, armed, calibrated, probes = circuit._calibrate, [], [], []

    def given(*args, **kwargs):  # the model "fitted" (given; the stop comes before its recording's provenance is
        # read): the circuit is built from here on, as in a fresh process
        circuit_module._DEFAULT = None
        armed.append(1)
        return "bncnn", model, {}

    def signalled(self):
        if armed:
            os.kill(os.getpid(), signal.SIGTERM)
        calibrate(self)
        calibrated.append(1)

    def safe_point():
        probes.append(1)
        raise_if_terminated()

    for module in (phenomena, osr):
        monkeypatch.setattr(module, "fitted_or_given", given)
    monkeypatch.setattr(circuit, "_calibrate", signalled)
    monkeypatch.setattr(circuit_module, "_DEFAULT", circuit_module._DEFAULT)
    monkeypatch.setattr(phenomena, "_TRUTHS", {})
    torch.manual_seed(0)
    model = create_model("bncnn", n_cells=n_cells)
    with sigterm_deferred(), pytest.raises(KeyboardInterrupt, match="signal 15"):
        raise_if_terminated()  # a safe point passed (the fit folder's lock): the command's setup is over
        benchmarks.load(f"retina_embedded.{benchmark}").score(model, progress=False, safe_point=safe_point)
    assert (armed, calibrated, probes) == ([1], [], [])
