"""Submissions: validation refusals, isolated workers (crash, hang, NaN -> failed with the reason), hidden split."""
import hashlib
import importlib.util
import io
import json
import os
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from processes import alive, live_waiting, run_killed
import yaml

from neurozoo import benchmarks
from neurozoo.leaderboard.db import DONE, FAILED, LeaderboardDB
from neurozoo.leaderboard.scorer import work
from neurozoo.leaderboard.submission import SubmissionError, prepare, submit
from neurozoo.leaderboard.worker import score_job

HERE = Path(__file__).resolve().parent

MODEL = '''
import time
import torch
from torch import nn

MODE = "{mode}"


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, stride=2)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 8, 3, stride=2)

    def forward(self, x):
        if MODE == "crash":
            raise RuntimeError("deliberate crash in forward")
        out = self.conv2(self.relu(self.conv1(x)))
        return out * float("nan") if MODE == "nan" else out


def create_model(weights):
    if MODE == "hang":
        time.sleep(600)
    torch.manual_seed(0)
    model = Net()
    if weights:
        model.load_state_dict(torch.load(weights, weights_only=True))
    return model
'''


def load_plugin(tmp_path, monkeypatch):
    """The entry-point benchmark plugin of test_leaderboard_run, visible here and in worker processes."""
    spec = importlib.util.spec_from_file_location("_lb_run", HERE / "test_leaderboard_run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    root = tmp_path / "plugin"
    root.mkdir()
    (root / "lbtest_plugin.py").write_text(module.PLUGIN)
    (root / "lbtest_plugin-0.0.dist-info").mkdir()
    (root / "lbtest_plugin-0.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: lbtest-plugin\nVersion: 0.0\n")
    (root / "lbtest_plugin-0.0.dist-info" / "entry_points.txt").write_text("[neurozoo.benchmarks]\nlbtest.V4 = lbtest_plugin:make\n")
    monkeypatch.setenv("PYTHONPATH", str(root))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.syspath_prepend(str(root))
    import lbtest_plugin

    from neurozoo.datasets.registry import Entry

    # registered for this test only (undone afterwards, so other tests see the real registry)
    monkeypatch.setitem(benchmarks.BENCHMARKS._entries, "lbtest.V4",
                        Entry("lbtest.V4", lbtest_plugin.make, "test plugin", {"region": "V4"}))


def make_submission(folder: Path, mode="ok", name=None, weights=True, **meta_changes) -> Path:
    folder.mkdir(parents=True)
    (folder / "model.py").write_text(MODEL.format(mode=mode))
    meta = {"name": name or f"net-{mode}", "authors": ["A. Tester"], "description": "two conv layers",
            "licence": "MIT", "benchmarks": ["lbtest.V4"], "layers": {"V4": "conv2"}}
    if weights:
        import torch

        sys.modules.pop("_sub_model", None)
        torch.manual_seed(1)
        state = {"conv1.weight": torch.randn(8, 3, 3, 3) * 0.3, "conv1.bias": torch.zeros(8),
                 "conv2.weight": torch.randn(8, 8, 3, 3) * 0.3, "conv2.bias": torch.zeros(8)}
        torch.save(state, folder / "weights.pt")
        meta["weights"] = {"file": "weights.pt", "sha256": hashlib.sha256((folder / "weights.pt").read_bytes()).hexdigest()}
    meta.update(meta_changes)
    (folder / "metadata.yaml").write_text(yaml.safe_dump(meta))
    return folder


def zip_folder(folder: Path, extra=None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*")):
            archive.write(path, path.relative_to(folder))
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture
def db(tmp_path, monkeypatch):
    load_plugin(tmp_path, monkeypatch)
    store = LeaderboardDB(f"sqlite:///{tmp_path / 'lb.sqlite'}")
    yield store
    store.dispose()


def refusal(tmp_path, source) -> str:
    with pytest.raises(SubmissionError) as error:
        prepare(source, tmp_path / "store")
    return str(error.value)


# a submission being prepared (zoo submit, the web intake), unpacked into the store: it prints its scratch folder, then
# is killed (SIGKILL) or waits for a line on stdin and stops there
PREPARE_UNPACKED = """
import os, signal, sys
from neurozoo.leaderboard import submission
def validate(root, source):
    print(root.parent, flush=True)
    if sys.argv[3] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    sys.stdin.readline()
    raise SystemExit(0)
submission.validate = validate
submission.prepare(sys.argv[1], sys.argv[2])
"""


def test_the_folder_of_a_submission_killed_while_unpacked_is_removed_by_the_next_and_a_live_ones_kept(tmp_path, db):
    """A submission killed (SIGKILL) while prepared left its unpacked files in a folder of the store (tmp*) for good.
    Named with its host and pid now, it is removed by the next submission prepared, and that of one being prepared at
    the same time is kept (removed by it as it ends)."""

    source, store = make_submission(tmp_path / "sub", weights=False), tmp_path / "store"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-c", PREPARE_UNPACKED, str(source), str(store)]
    dead = Path(run_killed(command, env, timeout=60).strip())
    assert dead.parent == store and (dead / "unpacked" / "model.py").is_file()
    with live_waiting(command, env) as live:
        kept = Path(live.stdout.readline().strip())
        assert kept.parent == store and kept.is_dir()
        stored = Path(prepare(make_submission(tmp_path / "next", weights=False), store)["folder"])
        assert sorted(store.iterdir()) == sorted([kept, stored])  # the dead one's gone, the live one's kept
    assert list(store.iterdir()) == [stored]


# a leaderboard job's model process being run (leaderboard.worker.run_model; the sandbox replaced by a stand-in): it
# prints the job's scratch folder, then is killed (SIGKILL) or waits for a line on stdin and stops there
JOB_RUNNING = """
import os, signal, sys
import torch
from neurozoo.leaderboard import sandbox, worker
def run(command, read_only, limits, sandbox, hidden):
    print(command[-2], flush=True)
    if sys.argv[1] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    sys.stdin.readline()
    raise SystemExit(0)
sandbox.run = run
request = {"layers": ["IT"], "max_features": 2, "bins": [[70, 170]]}
worker.run_model(torch.zeros(2, 3, 8, 8), request, worker.Path("."), sandbox.Limits(), sandbox=False)
"""


def test_the_scratch_of_a_job_killed_while_its_model_ran_is_removed_by_the_next_and_a_live_ones_kept(
        tmp_path, monkeypatch):
    """A leaderboard worker killed (SIGKILL, the out-of-memory killer) while its job's model process ran left the job's
    scratch folder (neurozoo-job-*: the stimuli as float32, up to a dataset's size) in the temporary folder for good.
    Named with its host and pid now, it is removed by the next job run on this host, and that of a worker running a
    job at the same time is kept (removed by it as it ends)."""
    import tempfile

    import torch

    from neurozoo.leaderboard import sandbox as jail
    from neurozoo.leaderboard.worker import run_model
    from neurozoo.leaderboard.zoo import ScoringError

    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "TMPDIR": str(temporary)}
    command = [sys.executable, "-c", JOB_RUNNING]
    dead = Path(run_killed(command, env).strip())
    assert dead.parent == temporary and np.load(dead / "stimuli.npy").shape == (2, 3, 8, 8)
    with live_waiting(command, env) as live:
        kept = Path(live.stdout.readline().strip())
        assert kept.parent == temporary and (kept / "request.json").is_file()
        seen = []

        def run(command, read_only, limits, sandbox, hidden):  # the next job: its model process fails
            seen.append((Path(command[-2]), set(temporary.iterdir())))
            return jail.Outcome(returncode=1, result=b"", console=b"")

        monkeypatch.setattr(jail, "run", run)
        monkeypatch.setattr(tempfile, "tempdir", str(temporary))
        request = {"layers": ["IT"], "max_features": 2, "bins": [[70, 170]]}
        with pytest.raises(ScoringError, match="exit status 1"):
            run_model(torch.zeros(2, 3, 8, 8), request, tmp_path, jail.Limits(), sandbox=False)
        [(own, listing)] = seen
        assert own.name.startswith("neurozoo-job-")
        assert listing == {own, kept}  # the dead one's gone, the live one's kept
        assert list(temporary.iterdir()) == [kept]
    assert list(temporary.iterdir()) == []


class Stopped(Exception):
    """Where a command is stopped once its scratch folder is made."""


def _check(monkeypatch, tmp_path, stop):  # zoo submit --check: unpacks into its scratch
    from neurozoo.leaderboard import submission
    from neurozoo.leaderboard.sandbox import Limits
    from neurozoo.leaderboard.submission_check import check

    monkeypatch.setattr(submission, "unpack", lambda source, target: stop(target.parent))
    check(make_submission(tmp_path / "sub", weights=False), None, Limits(), say=lambda line: None)


def _reproduce(monkeypatch, tmp_path, stop):  # zoo reproduce of an analysis: reruns it into its scratch
    from neurozoo.benchmarks.records import ScoreRecord
    from neurozoo.leaderboard import reproduce

    monkeypatch.setattr(reproduce, "_rerun_analysis", lambda record, how, scratch: stop(scratch))
    reproduce.rerun(ScoreRecord("net", "dynamics.fixed_points", 0.5), how="zoo dynamics net")


def _reproduce_fit(monkeypatch, tmp_path, stop):  # zoo reproduce DIR/summary.json: fits again in its scratch
    from types import SimpleNamespace

    from neurozoo.leaderboard import reproduce_fit

    for name, value in (("summary_path", Path), ("read_summary", lambda path: {"provenance": {}}),
                        ("recording", lambda path, summary: None), ("stored_metrics", lambda path: None),
                        ("refit", lambda path, summary, data, device, scratch: stop(scratch))):
        monkeypatch.setattr(reproduce_fit, name, value)
    reproduce_fit.run(SimpleNamespace(db=None, use_caches=False, record=str(tmp_path / "summary.json"), device="cpu"))


def _unsandboxed(monkeypatch, tmp_path, stop):  # a job run without the sandbox: its home and cwd are its scratch
    import json
    import tempfile

    from neurozoo.leaderboard import sandbox

    job = "import json, os; print(json.dumps([os.getcwd(), os.listdir('..')]))"  # its folder, as the job ran
    outcome = sandbox.run([sys.executable, "-c", job], sandbox=False)
    assert outcome.returncode == 0, outcome.console
    scratch, listing = json.loads(outcome.console)
    temporary = Path(tempfile.gettempdir())
    stop(temporary / Path(scratch).name, {temporary / name for name in listing})


@pytest.mark.parametrize("prefix, command", [("neurozoo-check-", _check), ("neurozoo-reproduce-", _reproduce),
                                             ("neurozoo-reproduce-fit-", _reproduce_fit),
                                             ("neurozoo-unsandboxed-", _unsandboxed)])
def test_scratch_folders_carry_their_owner_and_the_dead_ones_go_with_the_next_command(
        tmp_path, monkeypatch, prefix, command):
    """zoo submit --check's, zoo reproduce's (a record's, a fit summary's) and an unsandboxed job's scratch folders in
    the temporary folder had a plain tempfile name: one of a process killed with SIGKILL stayed there for good. Named
    with their host and pid now, the next such command removes those of dead processes, never a live one's."""
    import subprocess
    import tempfile

    from neurozoo.datasets.cache import temporary_suffix

    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    temporary = tmp_path / "tmp"
    dead = temporary / f"{prefix}x1{temporary_suffix(finished.pid)}"
    live = temporary / f"{prefix}x2{temporary_suffix()}"  # this process's
    for folder in (dead, live):
        (folder / "left").mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    seen = []

    def stop(scratch, listing=None):
        seen.append((Path(scratch), set(temporary.iterdir()) if listing is None else listing))
        raise Stopped

    with pytest.raises(Stopped):
        command(monkeypatch, tmp_path, stop)
    [(scratch, listing)] = seen
    assert scratch.name.startswith(prefix) and scratch.name.endswith(temporary_suffix())
    assert listing == {scratch, live}  # the dead one's gone, the live one's kept
    assert list(temporary.iterdir()) == [live]


def test_refusals_say_exactly_what_is_wrong(tmp_path, db):
    ok = make_submission(tmp_path / "ok")
    assert prepare(ok, tmp_path / "store")["meta"]["name"] == "net-ok"

    bad = make_submission(tmp_path / "sha")
    meta = yaml.safe_load((bad / "metadata.yaml").read_text())
    meta["weights"]["sha256"] = "0" * 64
    (bad / "metadata.yaml").write_text(yaml.safe_dump(meta))
    assert "weights.pt: sha256 is" in refusal(tmp_path, bad) and "0" * 64 in refusal(tmp_path, bad)

    assert "field 'licence' is missing" in refusal(tmp_path, _drop(make_submission(tmp_path / "lic"), "licence"))
    unknown = refusal(tmp_path, make_submission(tmp_path / "b", benchmarks=["nope.V4"]))
    assert "benchmark 'nope.V4' is not registered (submissions are scored on: " in unknown
    assert "ventral_embedded.V4-temporal" in unknown and "retina_embedded" not in unknown  # only what it can take
    # before: an own-data benchmark was called data-only, as one without stimuli is
    assert "benchmark 'imagenet.val' scores no submission: scored on your own data: zoo score --data" in refusal(
        tmp_path, make_submission(tmp_path / "own", benchmarks=["imagenet.val"]))
    data_only = make_submission(tmp_path / "data", benchmarks=["zhang_desimone2011.IT-decoding"])
    assert "benchmark 'zhang_desimone2011.IT-decoding' scores no submission: data-only benchmark (no stimulus " \
        "images)" in refusal(tmp_path, data_only)
    assert "needs layers.V4" in refusal(tmp_path, make_submission(tmp_path / "l", layers={"IT": "conv2"}))
    assert "field 'authors' must be a non-empty list" in refusal(tmp_path, make_submission(tmp_path / "a", authors="me"))
    nomodel = make_submission(tmp_path / "m")
    (nomodel / "model.py").unlink()
    assert "model.py is missing" in refusal(tmp_path, nomodel)
    archive = tmp_path / "evil.zip"
    archive.write_bytes(zip_folder(ok, extra={"../escape.txt": "x"}))
    assert "points outside the archive" in refusal(tmp_path, archive)
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not an archive")
    assert "not a folder, .zip or .tar" in refusal(tmp_path, junk)
    # a zip cut short (an interrupted upload or copy) has no directory at its end: it was called "not a .zip"
    cut = tmp_path / "cut.zip"
    cut.write_bytes(zip_folder(ok)[:400])
    assert refusal(tmp_path, cut) == ("cut.zip: corrupt or unreadable archive (it begins as a .zip archive but cannot "
                                      "be read as one: cut short or damaged; make it again)")
    assert not (tmp_path / "escape.txt").exists()
    # the first line of PyYAML's text alone, "while parsing a flow mapping", said neither what was wrong nor where
    cut = make_submission(tmp_path / "cut")
    (cut / "metadata.yaml").write_text("name: net-cut\nlayers: {V4: conv2\n")
    assert refusal(tmp_path, cut).endswith("metadata.yaml: not valid YAML: expected ',' or '}', but got '<stream end>' "
                                           "at line 3, column 1 (while parsing a flow mapping at line 2, column 9)")


def _drop(folder, field):
    meta = yaml.safe_load((folder / "metadata.yaml").read_text())
    meta.pop(field)
    (folder / "metadata.yaml").write_text(yaml.safe_dump(meta))
    return folder


def test_a_retina_submission_learns_first_that_submissions_take_image_models(tmp_path, db):
    """A retina model's metadata (a retina benchmark, its own layer names, then no layers) was refused on the layers'
    region names, then on the missing field, and only in the third message as a retina benchmark."""
    retina = "retina_embedded.whitenoise-heldout"
    for folder, layers in (("names", {"ganglion": "conv3"}), ("none", None)):
        submission = make_submission(tmp_path / folder, benchmarks=["ventral_embedded.V4-temporal", retina],
                                     layers=layers)
        if layers is None:
            _drop(submission, "layers")
        assert refusal(tmp_path, submission) == (
            f"metadata.yaml: benchmark {retina!r} is a retina benchmark, which fits registered models by name; "
            "submissions take image models only, scored on the image benchmarks (cortex). A retina model reaches the "
            f"local leaderboard through `zoo run --models MODEL --benchmarks {retina}` (MODEL registered, as the "
            "built-in ones are; see the README)")
    # the other checks hold as before: an unknown field, a benchmark not registered
    assert "unknown field 'layer'" in refusal(tmp_path, make_submission(tmp_path / "typo", layer={"V4": "conv2"}))
    assert "benchmark 'nope.V4' is not registered" in refusal(
        tmp_path, make_submission(tmp_path / "unknown", benchmarks=["nope.V4"]))


def test_isolated_workers_score_or_fail_with_the_reason(tmp_path, db):
    store = tmp_path / "store"
    archive = tmp_path / "good.zip"
    archive.write_bytes(zip_folder(make_submission(tmp_path / "good")))
    good = submit(db, archive, store, user=None)
    bad = {mode: submit(db, make_submission(tmp_path / mode, mode=mode, weights=False), store)
           for mode in ("crash", "nan", "hang")}

    jobs = {mode: [j["id"] for j in db.submission(i)["jobs"]] for mode, i in bad.items()}
    # the hanging submission sleeps through its 8 s limit while the others are scored (a second worker, as a
    # second `zoo work` would be): it costs no CPU, so waiting for it after them only added 8 s
    hang = {}
    hang_worker = threading.Thread(target=lambda: hang.update(work(
        db, lambda job: score_job(job, timeout_s=8), ids=jobs["hang"], progress=False, worker="test-hang-worker")),
        daemon=True)
    hang_worker.start()
    try:
        _score_the_good_then_the_failing(db, good, jobs)
    finally:
        hang_worker.join(timeout=120)
    assert hang == {"done": 0, "failed": 1}
    errors = {mode: db.submission(i)["jobs"][0]["error"] for mode, i in bad.items()}
    assert "deliberate crash in forward" in errors["crash"].splitlines()[0]  # the error first, then the console tail
    assert "NaN or infinity" in errors["nan"]
    assert "wall-clock limit of 8 s" in errors["hang"]
    assert all(db.submission(i)["status"] == FAILED for i in bad.values())
    assert len(db.query()) == 2  # only the good submission's two rows: no partial scores


def _job_processes() -> list:
    """This process's descendants that run a submission's model (the reaper, bwrap and the model process inside)."""
    from neurozoo.leaderboard.sandbox import descendants

    found = []
    for pid in descendants(os.getpid())[1:]:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                if b"neurozoo.leaderboard.model_runner" in handle.read():
                    found.append(pid)
        except OSError:
            continue
    return found



def test_withdrawing_a_slow_submission_stops_its_sandboxed_job_within_seconds(tmp_path, db, capsys):
    """A withdrawn submission's running job ran its sandbox to the end (here its 120 s limit) only to have its score
    refused; then it ran on until the worker's next lease renewal, a third of the lease: 19 s after the withdrawal at
    the default lease of 60 s. Through zoo work's own path (work, score_job, the bubblewrap sandbox) at that lease,
    the worker's status check (every second) sees the withdrawal: every process of the job is gone, and reaped,
    within 3 s; the job stays `withdrawn`, not failed, and nothing is stored."""
    import time

    from neurozoo.leaderboard.sandbox import descendants

    sid = submit(db, make_submission(tmp_path / "slow", mode="hang", weights=False), tmp_path / "store")
    [job_id] = [j["id"] for j in db.submission(sid)["jobs"]]
    seen = {}

    def withdraw_once_running():
        deadline = time.monotonic() + 60
        while not any(alive(p) for p in _job_processes()) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # the model process is up (its create_model sleeps 600 s)
        seen["processes"] = _job_processes()
        db.withdraw_submission(sid, "licence withdrawn", "op")
        withdrawn = time.monotonic()
        while any(alive(p) for p in seen["processes"]) and time.monotonic() < withdrawn + 60:
            time.sleep(0.01)
        seen["gone_s"] = time.monotonic() - withdrawn

    watcher = threading.Thread(target=withdraw_once_running, daemon=True)
    watcher.start()
    counts = work(db, lambda job: score_job(job, timeout_s=120), ids=[job_id], progress=False)
    watcher.join(70)
    assert counts == {"done": 0, "failed": 0}, counts
    assert len(seen["processes"]) >= 3, seen  # the reaper, bwrap, ..., the model process
    assert seen["gone_s"] < 3.0, f"the job's processes were gone {seen['gone_s']:.1f} s after its withdrawal"
    assert not set(seen["processes"]) & set(descendants(os.getpid()))  # reaped: no zombie left below the worker
    assert db.job(job_id)["status"] == "withdrawn" and db.job(job_id)["error"] is None and db.query().empty
    assert "its submission was withdrawn while it was scored; its sandbox was stopped" in capsys.readouterr().out


def _score_the_good_then_the_failing(db, good, jobs):
    good_jobs = [j["id"] for j in db.submission(good)["jobs"]]
    counts = work(db, lambda job: score_job(job, timeout_s=240), ids=good_jobs, progress=False)
    assert counts == {"done": 1, "failed": 0}, db.submission(good)["jobs"][0]["error"]
    row = db.submission(good)
    assert row["status"] == DONE
    job = row["jobs"][0]
    public, hidden = db.score_for_job(job), db.score_for_job(job, hidden=True)
    assert public.settings["split"] == "public" and hidden.settings["split"] == "hidden"
    assert public.settings["submission_sha256"] == row["sha256"] and public.settings["layer"] == "conv2"
    assert public.value != hidden.value  # different stimuli
    assert public.settings["n_stimuli"] == hidden.settings["n_stimuli"] == 48
    assert public.settings["extraction"] == hidden.settings["extraction"] == {"max_features": 200, "seed": 0,
                                                                              "batch_size": 32}
    assert [r.value for r in db.leaderboard_records()] == [hidden.value]

    counts = work(db, lambda job: score_job(job, timeout_s=240), ids=jobs["crash"] + jobs["nan"], progress=False)
    assert counts == {"done": 0, "failed": 2}


def test_sandbox_environment_has_no_secrets(monkeypatch):
    from neurozoo.leaderboard.sandbox import sandbox_environment

    monkeypatch.setenv("NEUROZOO_TEST_POSTGRES_URL", "postgresql://secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    env = sandbox_environment(python_path="/x")
    assert "secret" not in " ".join(env.values())
    assert env["HOME"] == "/tmp" and env["NEUROZOO_HOME"] == "/tmp/home" and env["NEUROZOO_CACHE"] == "/tmp/cache"
    assert set(env) == {"PATH", "HOME", "TMPDIR", "LANG", "NEUROZOO_HOME", "NEUROZOO_CACHE", "PYTHONDONTWRITEBYTECODE",
                        "PYTHONPATH", "OMP_NUM_THREADS", "MKL_NUM_THREADS"}


def test_the_sandbox_imports_neurozoo_installed_as_a_plain_namespace_folder(tmp_path):
    """``pip install --target DIR`` (or a folder of symlinks to the packages) with ``DIR`` on ``PYTHONPATH``: the
    sandbox bound ``DIR/neurozoo/<package>`` but neither ``DIR/neurozoo`` nor ``DIR`` on its path, so every job's model
    process failed with ``No module named 'neurozoo.leaderboard'``."""
    import json
    import subprocess

    target = tmp_path / "site dir"
    for name in ("datasets", "convrnn", "retina", "benchmarks", "leaderboard"):
        (target / "neurozoo").mkdir(parents=True, exist_ok=True)
        (target / "neurozoo" / name).symlink_to(HERE.parent / name)
    probe = ("import json, neurozoo; from neurozoo.leaderboard.sandbox import environment_paths, sandbox_python_path; "
             "b = environment_paths(); print(json.dumps([list(neurozoo.__path__), [str(p) for p in b], "
             "sandbox_python_path(b)]))")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", probe], env={**env, "PYTHONPATH": str(target)}, cwd=tmp_path,
                         capture_output=True, text=True, check=True).stdout
    namespace, bound, python_path = json.loads(out)
    assert namespace[0] == str(target / "neurozoo")
    assert str(target / "neurozoo") in bound
    assert str(target) not in bound  # only the namespace folder, not whatever else DIR holds
    assert str(target) in python_path.split(os.pathsep)


def test_two_identical_submissions_at_the_same_instant_make_one(tmp_path, db, monkeypatch):
    """Each checked for an identical submission, found none, and inserted (or, on SQLite, the second failed with
    'database is locked'): the check now runs under the write lock and a unique index enforces it."""
    import threading
    import time

    from neurozoo.leaderboard.submission import AlreadySubmitted

    folder = make_submission(tmp_path / "sub", weights=False)
    claim = LeaderboardDB._claim_name
    monkeypatch.setattr(LeaderboardDB, "_claim_name", lambda *a, **k: (claim(*a, **k), time.sleep(0.3))[0])
    start, outcomes = threading.Barrier(2), []

    def submit_now():
        start.wait()
        try:
            outcomes.append(submit(db, folder, tmp_path / "store", user="dora"))
        except Exception as error:
            outcomes.append(error)

    threads = [threading.Thread(target=submit_now) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    [first] = [s["id"] for s in db.submissions()]
    [created] = [outcome for outcome in outcomes if isinstance(outcome, int)]
    [refused] = [outcome for outcome in outcomes if not isinstance(outcome, int)]
    assert created == first and isinstance(refused, AlreadySubmitted), outcomes
    assert [path.name for path in (tmp_path / "store").iterdir()] == [Path(db.submission(first)["folder"]).name]


def test_the_unique_index_refuses_an_identical_submission_the_check_missed(tmp_path, db, monkeypatch):
    """What a race looks like on a database without a write lock (PostgreSQL): the check saw nothing."""
    from sqlalchemy import inspect, text

    from neurozoo.leaderboard.submission import AlreadySubmitted

    folder = make_submission(tmp_path / "sub", weights=False)
    first = submit(db, folder, tmp_path / "store")
    check, calls = LeaderboardDB._refuse_identical, []
    monkeypatch.setattr(LeaderboardDB, "_refuse_identical",
                        staticmethod(lambda *a: calls.append(1) if len(calls) == 0 else check(*a)))
    with pytest.raises(AlreadySubmitted, match=rf"identical to submission {first} "):
        submit(db, folder, tmp_path / "store")
    assert [s["id"] for s in db.submissions()] == [first]
    with db.engine.begin() as connection:  # a database made before the index: opening it adds the index
        connection.execute(text("DROP INDEX uq_submission_files"))
    assert "uq_submission_files" in [i["name"] for i in inspect(LeaderboardDB(db.url).engine).get_indexes("lb_submissions")]


def test_an_identical_resubmission_is_refused_naming_the_first(tmp_path, db):
    """Its jobs already exist (same key), so a second submission row had no jobs and stayed 'queued' forever."""
    from neurozoo.leaderboard.cli import main
    from neurozoo.leaderboard.submission import AlreadySubmitted

    folder = make_submission(tmp_path / "sub", weights=False)
    first = submit(db, folder, tmp_path / "store")
    with pytest.raises(AlreadySubmitted, match=rf"identical to submission {first} \(net-ok, sha256 [0-9a-f]{{12}}, "
                                               r"status queued\)"):
        submit(db, folder, tmp_path / "store")
    assert [s["id"] for s in db.submissions()] == [first] and len(db.submission(first)["jobs"]) == 1
    (folder / "metadata.yaml").write_text((folder / "metadata.yaml").read_text().replace("two conv", "2 conv"))
    assert len(db.submission(submit(db, folder, tmp_path / "store"))["jobs"]) == 1  # changed: new jobs
    url = f"sqlite:///{tmp_path / 'lb.sqlite'}"
    assert main(["submit", str(folder), "--db", url, "--store", str(tmp_path / "store")]) == 2


def _twin_trees(tmp_path):
    """Two submissions of different files with one format-1 digest: ``w`` and ``x`` beside, in the other,
    ``w<sha256 of w's contents>x`` holding x's contents (format 1 hashed path, hex digest, path, ... unseparated)."""
    first = make_submission(tmp_path / "twin-a", weights=False)
    (first / "w").write_bytes(b"first file")
    (first / "x").write_bytes(b"second file")
    second = make_submission(tmp_path / "twin-b", weights=False)
    (second / ("w" + hashlib.sha256(b"first file").hexdigest() + "x")).write_bytes(b"second file")
    return first, second


def test_two_trees_of_one_old_digest_are_two_submissions_with_their_own_files(tmp_path, db):
    """tree_sha256 (format 1) joined each path and its file's hex sha256 with no separator: the two trees of
    _twin_trees had one digest, so the second was refused as identical to the first, and (under another name) was
    stored in the first one's folder of the store and scored with its files. Format 2 separates them."""
    from neurozoo.leaderboard.submission import LEGACY_TREE_FORMAT, TREE_FORMAT, tree_sha256

    first, second = _twin_trees(tmp_path)
    assert tree_sha256(first, LEGACY_TREE_FORMAT) == tree_sha256(second, LEGACY_TREE_FORMAT)  # the old collision
    assert tree_sha256(first) != tree_sha256(second)
    ids = [submit(db, first, tmp_path / "store"), submit(db, second, tmp_path / "store")]
    rows = [db.submission(i) for i in ids]
    assert rows[0]["sha256"] != rows[1]["sha256"] and rows[0]["folder"] != rows[1]["folder"]
    assert [row["sha256_format"] for row in rows] == [TREE_FORMAT] * 2
    assert sorted(p.name for p in Path(rows[1]["folder"]).iterdir()) == [
        "metadata.yaml", "model.py", "w" + hashlib.sha256(b"first file").hexdigest() + "x"]
    assert all(job["spec"]["sha256_format"] == TREE_FORMAT and job["spec"]["sha256"] == row["sha256"]
               for row in rows for job in row["jobs"])
    # a path holding a newline, the boundary format 1 had no way to mark either
    (first / "a\nb").write_bytes(b"")
    (second / "a").write_bytes(b"")
    assert tree_sha256(first) != tree_sha256(second)


def test_a_submission_stored_under_the_old_digest_still_verifies_and_its_twin_is_refused(tmp_path, db):
    """A store made before the digest's format 2: its rows hold a format-1 sha256 and no sha256_format column, its
    jobs' specs no format. Opened, the column is added (NULL: format 1); its stored files are checked in format 1
    (unchanged, then changed once edited), and the same files submitted again are refused as identical to it, the
    new submission's format-1 digest compared with the old row's."""
    from sqlalchemy import inspect, text

    from neurozoo.leaderboard.sandbox import Limits
    from neurozoo.leaderboard.submission import (LEGACY_TREE_FORMAT, AlreadySubmitted, changed_since_submitted,
                                                 tree_format, tree_sha256)
    from neurozoo.leaderboard.submission_check import check

    folder = make_submission(tmp_path / "sub", weights=False)
    old = submit(db, folder, tmp_path / "store")
    stored = Path(db.submission(old)["folder"])
    legacy = tree_sha256(stored, LEGACY_TREE_FORMAT)
    with db.engine.begin() as connection:  # as the code before format 2 stored it
        for job in db.submission(old)["jobs"]:
            spec = {k: v for k, v in job["spec"].items() if k != "sha256_format"}
            connection.execute(text("UPDATE lb_jobs SET spec = :spec WHERE id = :id"),
                               {"spec": json.dumps({**spec, "sha256": legacy}), "id": job["id"]})
        connection.execute(text("UPDATE lb_submissions SET sha256 = :legacy"), {"legacy": legacy})
        connection.execute(text("ALTER TABLE lb_submissions DROP COLUMN sha256_format"))
    db.dispose()
    reopened = LeaderboardDB(db.url)
    try:
        assert "sha256_format" in {c["name"] for c in inspect(reopened.engine).get_columns("lb_submissions")}
        row = reopened.submission(old)
        [spec] = [job["spec"] for job in row["jobs"]]
        assert (row["sha256"], row["sha256_format"], tree_format(row), tree_format(spec)) == (legacy, None, 1, 1)
        assert changed_since_submitted(stored, spec["sha256"], tree_format(spec)) is None  # unchanged
        assert "changed since it was submitted" in changed_since_submitted(stored, spec["sha256"])  # not format 2's
        with pytest.raises(AlreadySubmitted, match=rf"identical to submission {old} \(net-ok, sha256 {legacy[:12]}"):
            submit(reopened, folder, tmp_path / "store")
        with pytest.raises(AlreadySubmitted, match=rf"identical to submission {old} \(net-ok, sha256 {legacy[:12]}"):
            check(folder, None, Limits(), say=lambda line: None, db=reopened)  # zoo submit --check, as zoo submit
        (stored / "model.py").write_text((stored / "model.py").read_text() + "# edited\n")
        assert "changed since it was submitted" in changed_since_submitted(stored, spec["sha256"], tree_format(spec))
    finally:
        reopened.dispose()


def test_every_layer_of_a_submission_comes_from_one_model_run(tmp_path, db, monkeypatch):
    """V4 and IT benchmarks on the same stimuli, scored at different layers, had run the model once per layer."""
    from neurozoo.leaderboard import sandbox
    from neurozoo.leaderboard.sandbox import Limits
    from neurozoo.leaderboard.submission import submission_specs
    from neurozoo.leaderboard.worker import model_features

    monkeypatch.setenv("NEUROZOO_CACHE", str(tmp_path / "cache"))
    runs = []
    real_run = sandbox.run
    monkeypatch.setattr(sandbox, "run", lambda *a, **k: runs.append(a) or real_run(*a, **k))
    from neurozoo.datasets.registry import Entry

    v4 = benchmarks.BENCHMARKS._entries["lbtest.V4"]  # an IT benchmark on the same stimuli
    monkeypatch.setitem(benchmarks.BENCHMARKS._entries, "lbtest.IT", Entry("lbtest.IT", v4.factory, "test plugin",
                                                                           {"region": "IT"}))
    prepared = prepare(make_submission(tmp_path / "sub", weights=False, layers={"V4": "conv2", "IT": "conv1"},
                                       benchmarks=["lbtest.V4", "lbtest.IT"]), tmp_path / "store")
    spec = submission_specs(prepared)[0]["spec"]
    benchmark = benchmarks.load("lbtest.V4")
    limits = Limits(wall_s=120, memory_bytes=3 * 2 ** 30)
    conv2 = model_features(benchmark, spec, "conv2", limits)
    conv1 = model_features(benchmark, spec, "conv1", limits)  # what an IT benchmark on these stimuli asks next
    assert len(runs) == 1
    assert conv2.shape[0] == conv1.shape[0] == 96 and not np.allclose(conv1.values[:, :8], conv2.values[:, :8])
    alone = dict(spec, layers={"V4": "conv1"})  # a run asking for conv1 alone (not from the cache): the same features
    np.testing.assert_allclose(model_features(benchmark, alone, "conv1", limits, use_cache=False).values, conv1.values,
                               rtol=1e-6)
    assert len(runs) == 2


def test_a_copy_into_the_store_cut_short_is_not_reused(tmp_path, db, monkeypatch):
    """The store kept a submission under its digest with a plain copy: a server killed mid-copy left a partial
    folder that every later submission of the same files reused (`if not folder.exists()`)."""
    import shutil

    folder = make_submission(tmp_path / "sub", weights=True)
    real_copy = shutil.copy2
    calls = []

    def killed_after_one_file(source, target, *args, **kwargs):
        if calls:
            raise KeyboardInterrupt  # the process dies here
        calls.append(source)
        return real_copy(source, target, *args, **kwargs)

    real_copytree = shutil.copytree
    monkeypatch.setattr(shutil, "copytree", lambda source, target, **kwargs:
                        real_copytree(source, target, **{**kwargs, "copy_function": killed_after_one_file}))
    try:
        prepare(folder, tmp_path / "store")
    except KeyboardInterrupt:
        pass
    monkeypatch.setattr(shutil, "copytree", real_copytree)
    stored = Path(prepare(folder, tmp_path / "store")["folder"])
    assert sorted(p.name for p in stored.iterdir()) == ["metadata.yaml", "model.py", "weights.pt"]


def test_zoo_work_stopped_with_sigterm_hands_its_job_back(tmp_path, db):
    """SIGTERM (a service manager stopping `zoo work`) had killed the worker outright: its job stayed 'running'
    with the attempt spent, until the next start released it."""
    import os
    import signal
    import subprocess
    import time

    import neurozoo
    from neurozoo.leaderboard.db import QUEUED, RUNNING
    from neurozoo.leaderboard.sandbox import descendants, sandbox_problem

    if sandbox_problem():
        pytest.skip(f"no sandbox: {sandbox_problem()}")
    sid = submit(db, make_submission(tmp_path / "hang", mode="hang", weights=False), tmp_path / "store")
    url = f"sqlite:///{tmp_path / 'lb.sqlite'}"
    worker = subprocess.Popen([sys.executable, "-m", "neurozoo.leaderboard.cli", "work", "--db", url, "--no-progress",
                               "--nice", "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              env={**os.environ, "NEUROZOO_HOME": str(tmp_path / "home"), "PYTHONPATH": os.pathsep.join(
                                  [os.environ["PYTHONPATH"], str(Path(neurozoo.__path__[0]).parent)])})
    # until it runs the sandboxed job: claimed inside `zoo work`'s sigterm_deferred block, so the SIGTERM is taken at
    # a safe point (sandbox._supervise). Sent before, while the worker still imported, it was the default action:
    # killed on signal 15, no "interrupted", the job left as it was; the half-second's pause after this wait is gone
    # (the handler no longer raises inside whatever runs, such as an import)
    deadline = time.monotonic() + 120
    while (db.submission(sid)["jobs"][0]["status"] != RUNNING
           or len(descendants(worker.pid)) < 3):  # bwrap, its init, the model
        if worker.poll() is not None or time.monotonic() > deadline:
            worker.kill()
            pytest.fail(f"the worker never ran the sandboxed job: {worker.communicate()[0].decode()}")
        time.sleep(0.2)
    worker.send_signal(signal.SIGTERM)
    output = worker.communicate(timeout=60)[0].decode()
    job = db.submission(sid)["jobs"][0]
    assert worker.returncode == 130 and "interrupted" in output, output
    assert (job["status"], job["attempts"], job["worker"]) == (QUEUED, 0, None)


def test_a_layer_for_a_region_not_submitted_is_not_extracted(tmp_path, db):
    """Only the layers of the submitted benchmarks' regions go to the model run (all of them run at once)."""
    from neurozoo.leaderboard.submission import submission_specs

    folder = make_submission(tmp_path / "sub", weights=False, layers={"V4": "conv2", "IT": "no_such_layer"})
    assert submission_specs(prepare(folder, tmp_path / "store"))[0]["spec"]["layers"] == {"V4": "conv2"}
    sid = submit(db, folder, tmp_path / "store")
    work(db, lambda job: score_job(job, timeout_s=120), progress=False)
    assert db.submission(sid)["status"] == DONE, db.submission(sid)["jobs"][0]["error"]


def test_a_submission_record_is_reproduced_by_running_the_model_again(tmp_path, db, monkeypatch):
    """``zoo reproduce`` of a ``zoo work`` record runs the submitted model again in the sandbox (the activation
    cache neither read nor written) and compares the hidden-split score number by number."""
    from neurozoo.benchmarks.extraction import cache as activation_cache
    from neurozoo.datasets.errors import DataError
    from neurozoo.leaderboard.reproduce import mismatches, rerun
    from neurozoo.leaderboard.worker import score_submission
    from neurozoo.leaderboard.zoo import ScoringError

    submission = submit(db, make_submission(tmp_path / "good"), tmp_path / "store")
    job = db.submission(submission)["jobs"][0]
    assert work(db, lambda j: score_job(j, timeout_s=240), ids=[job["id"]], progress=False)["done"] == 1
    hidden = db.score_for_job(db.job(job["id"]), hidden=True)
    assert hidden.settings["rerun"]["command"] == "zoo work"
    monkeypatch.setattr(activation_cache.ActivationCache, "load", lambda *a: pytest.fail("read the cache"))
    again = rerun(hidden)
    assert again.value == hidden.value and again.per_bin == hidden.per_bin and again.settings["split"] == "hidden"
    assert mismatches(hidden, again) == []  # the same model, seed, data and configuration: nothing of it differs
    # the stored files changed since: scored, they gave other numbers under the submitted sha256, no reason named
    folder = Path(job["spec"]["folder"])
    (folder / "model.py").write_text((folder / "model.py").read_text() + "\n# edited after submission\n")
    with pytest.raises(DataError, match=rf"record {hidden.id}: the submission's stored files have changed since it "
                                        rf"was submitted \(sha256 {job['spec']['sha256'][:12]} then"):
        rerun(hidden)
    with pytest.raises(ScoringError, match="stored files have changed since it was submitted"):
        score_submission(job["spec"], use_cache=False)


def test_the_readme_example_submission_passes_intake_and_names_real_layers(tmp_path, monkeypatch):
    """leaderboard/README.md showed the format only in prose: a newcomer had to guess a first submission. Its
    example is taken from the README as written, validated as `zoo submit` does, and its layers exist."""
    import re

    import torch

    from neurozoo.leaderboard.model_runner import build_model, import_submission
    from neurozoo.leaderboard.submission import prepare

    monkeypatch.setattr(sys, "path", list(sys.path))  # import_submission puts the submission's folder first
    readme = (HERE.parent / "leaderboard" / "README.md").read_text()
    folder = tmp_path / "mynet"
    folder.mkdir()
    for name in ("metadata.yaml", "model.py"):
        block = re.search(rf"```\w+\n# mynet/{re.escape(name)}\n(.*?)```", readme, re.S)
        assert block, f"README example {name} not found"
        (folder / name).write_text(block.group(1))
    prepared = prepare(folder, tmp_path / "store")
    assert prepared["meta"]["layers"] == {"V4": "conv1", "IT": "conv2"}
    model, timing = build_model(import_submission(Path(prepared["folder"])), Path(prepared["folder"]), None)
    names = dict(model.named_modules())
    assert timing is None and {"conv1", "conv2"} <= set(names)
    assert model(torch.zeros(2, 3, 64, 64)).shape == (2, 8, 15, 15)


def test_a_submissions_time_mapping_may_name_brainscores_step_rule():
    """[start_ms, width_ms, steps] reads a bin at the step holding its midpoint; a fourth element "nearest_start"
    asks for Brain-Score's CORnet rule (the step whose start is nearest the bin's start)."""
    import types

    from torch import nn

    from neurozoo.leaderboard.model_runner import build_model

    def submission(mapping):
        return types.SimpleNamespace(create_model=lambda weights: (nn.Conv2d(3, 4, 3), mapping))

    _, timing = build_model(submission({"V4": [90, 50, 4, "nearest_start"], "IT": [100, 100, 2]}), Path("."), None)
    assert (timing["V4"].rule, timing["IT"].rule) == ("nearest_start", "midpoint")
    assert build_model(submission({"V4": [90, 50, 4.0]}), Path("."), None)[1]["V4"].describe() == [90, 50, 4]
    assert timing["V4"].steps_for([(120.0, 130.0)])[0] == 1 and timing["IT"].steps_for([(160.0, 170.0)])[0] == 0
    for bad in ({"V4": [90, 50, 4, "nearest"]}, {"V4": [90, 50]}, {"V4": [90, 50, 4, "midpoint", 1]},
                {"V4": [90, 0, 4]}, {"V4": [90, 50, 2.5]}, {"V4": [90, 50, "4"]}):
        with pytest.raises(SystemExit, match="nearest_start"):
            build_model(submission(bad), Path("."), None)



def test_a_plugin_benchmark_without_tags_keeps_the_submitted_layer(tmp_path, db, monkeypatch):
    """An entry-point plugin is registered with no tags (no ``region``): every layer was dropped from its jobs,
    which failed with "the submission names no layer for region V4" (benchmarks/perf/leaderboard_load.py's 50
    submissions all failed so); intake did not check the region's layer either."""
    from neurozoo.datasets.registry import Entry
    from neurozoo.leaderboard.submission import submission_specs

    entry = benchmarks.BENCHMARKS.get("lbtest.V4")
    monkeypatch.setitem(benchmarks.BENCHMARKS._entries, "lbtest.V4",
                        Entry("lbtest.V4", entry.factory, "(plugin lbtest_plugin:make)"))  # as _load_entry_points makes it
    assert benchmarks.BENCHMARKS.get("lbtest.V4").tags == {}
    folder = make_submission(tmp_path / "sub", weights=False)
    assert submission_specs(prepare(folder, tmp_path / "store"))[0]["spec"]["layers"] == {"V4": "conv2"}
    sid = submit(db, folder, tmp_path / "store")
    work(db, lambda job: score_job(job, timeout_s=120), progress=False)
    assert db.submission(sid)["status"] == DONE, db.submission(sid)["jobs"][0]["error"]
    with pytest.raises(SubmissionError, match=r"benchmark 'lbtest.V4' needs layers.V4"):
        prepare(make_submission(tmp_path / "other", name="net-other", weights=False, layers={"IT": "conv2"}),
                tmp_path / "store")


def test_a_submission_to_a_plugin_benchmark_that_cannot_be_built_is_refused_by_name(tmp_path, db, monkeypatch):
    """Intake placed an untagged plugin's layer by building it: a plugin whose import fails raised its ImportError
    out of intake (a server error for the upload). The submission is refused, naming the benchmark; the plugin's
    error is the operator's (a warning in the server's log), not the submitter's."""
    import warnings

    from neurozoo.datasets.registry import Entry

    def broken():
        raise ImportError("No module named '/srv/plugins/lbtest_missing'")

    monkeypatch.setitem(benchmarks.BENCHMARKS._entries, "lbtest.V4", Entry("lbtest.V4", broken, "(plugin)"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        message = refusal(tmp_path, make_submission(tmp_path / "sub", weights=False))
    assert message == ("metadata.yaml: benchmark 'lbtest.V4' cannot be scored on this server now (it fails to build)")


def test_a_failed_jobs_console_keeps_tabs_as_spaces_and_masks_other_control_characters():
    """torch's load_state_dict error, the commonest failure of a submission with weights, indents each mismatch with
    a tab: the failed job's message read "?size mismatch for readout.weight: ..." on the model page."""
    from neurozoo.leaderboard.worker import shown_console

    console = (b"RuntimeError: Error(s) in loading state_dict for ConvRNN:\n"
               b"\tsize mismatch for readout.weight: copying a param with shape torch.Size([3, 32])\n\x1b[31mred\x07")
    assert shown_console(console) == ("RuntimeError: Error(s) in loading state_dict for ConvRNN:\n"
                                      "    size mismatch for readout.weight: copying a param with shape "
                                      "torch.Size([3, 32])\n?[31mred?")



TORCHVISION_MODEL = '''
import torch
import torchvision
from torchvision import transforms


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.normalize = transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
        self.body = torchvision.ops.Conv2dNormActivation(3, 8, 3, stride=2)  # torchvision.models' building block

    def forward(self, x):
        return self.body(self.normalize(x))


def create_model(weights):
    torch.manual_seed(0)
    return Net()
'''


def test_a_submission_importing_torchvision_is_extracted_in_the_sandbox(tmp_path, db, monkeypatch):
    """torchvision's C extension cannot load on this CPU-only torch: the model process died at the submission's
    ``import torchvision`` ("operator torchvision::nms does not exist") until it applied the project's shim first."""
    from neurozoo.leaderboard.sandbox import Limits, sandbox_problem
    from neurozoo.leaderboard.submission import submission_specs
    from neurozoo.leaderboard.worker import model_features

    if sandbox_problem():
        pytest.skip(f"no sandbox: {sandbox_problem()}")
    monkeypatch.setenv("NEUROZOO_CACHE", str(tmp_path / "cache"))
    folder = make_submission(tmp_path / "tv", weights=False, layers={"V4": "body.0"})
    (folder / "model.py").write_text(TORCHVISION_MODEL)
    spec = submission_specs(prepare(folder, tmp_path / "store"))[0]["spec"]
    features = model_features(benchmarks.load("lbtest.V4"), spec, "body.0", Limits(wall_s=120,
                                                                                   memory_bytes=3 * 2 ** 30))
    assert features.shape == (96, 200, 3) and np.isfinite(features.values).all()
    assert features.values.std(axis=0).max() > 0  # the features differ between images


def test_requirements_txt_must_hold_in_the_scoring_environment(tmp_path, db):
    """A submission's requirements.txt was accepted unread: a package the scoring environment lacks failed only in
    the sandbox, at the model's import. Nothing is installed for a submission, so intake checks each line."""
    import importlib.metadata

    from neurozoo.leaderboard.submission import MAX_REQUIREMENTS_LINES, check_requirements

    numpy_version = importlib.metadata.version("numpy")
    folder = make_submission(tmp_path / "req", weights=False)
    requirements = folder / "requirements.txt"
    requirements.write_text("# what model.py imports\ntorch>=2.0  # any recent torch\n\nNumPy\n"
                            "pywin32; sys_platform == 'win32'\n")
    assert prepare(folder, tmp_path / "store")["meta"]["name"] == "net-ok"
    assert check_requirements(requirements) == [
        f"torch>=2.0 (installed {importlib.metadata.version('torch')})", f"NumPy (installed {numpy_version})",
        "pywin32; sys_platform == 'win32' (not for this platform: skipped)"]
    for text, expected in [
            ("torch\nnumpy<1.0\n", f"requirements.txt: line 2: 'numpy<1.0': the scoring environment has numpy "
                                   f"{numpy_version}, which <1.0 excludes"),
            ("torch\n\nno-such-package-s23>=1\n", "requirements.txt: line 3: 'no-such-package-s23>=1': "
                                                  "'no-such-package-s23' is not installed in the scoring environment"),
            ("numpy=>1.2\n", "requirements.txt: line 1: 'numpy=>1.2' is not a valid requirement ("),
            ("-r other.txt\n", "requirements.txt: line 1: '-r other.txt': pip options"),
            ("--index-url https://example.org\n", "line 1: '--index-url https://example.org': pip options"),
            ("numpy @ https://example.org/numpy.whl\n", "line 1: 'numpy @ https://example.org/numpy.whl': a direct "
                                                        "reference"),
            ("numpy\n" * (MAX_REQUIREMENTS_LINES + 1), f"{MAX_REQUIREMENTS_LINES + 1} lines; at most "
                                                       f"{MAX_REQUIREMENTS_LINES}"),
            ("#" * 20000, "requirements.txt: more than 16 KiB"),
            # a marker's string holds any character; zoo submit --check printed the line, its escapes played
            ("numpy; python_version == '2.7\x1b]0;owned\x07'\n", "has a control character ('\\x1b')")]:
        requirements.write_text(text)
        assert expected in refusal(tmp_path, folder) and "\x1b" not in refusal(tmp_path, folder), text
    requirements.write_bytes(b"numpy\n\xff\n")
    assert "requirements.txt: not UTF-8 text (byte 6)" in refusal(tmp_path, folder)


def fake_distribution(folder, name: str, *lines: str):
    """An installed distribution ``name`` 1.0 in ``folder`` (its .dist-info only), its METADATA ending in ``lines``."""
    info = folder / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("\n".join(["Metadata-Version: 2.1", f"Name: {name}", "Version: 1.0", *lines]) + "\n")
    return folder


def test_requirements_are_checked_where_the_sandbox_finds_packages_extras_included(tmp_path, monkeypatch):
    """A package this process saw from user site-packages or PYTHONPATH passed intake, then the sandbox, which binds
    only the Python prefixes and neurozoo, could not import it; an extra's requirements were not checked at all."""
    import importlib.metadata
    import re

    from neurozoo.leaderboard import submission
    from neurozoo.leaderboard.submission import SubmissionError, check_requirements

    monkeypatch.syspath_prepend(str(fake_distribution(tmp_path / "user-site", "s23-userpkg")))
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("s23-userpkg\n")
    with pytest.raises(SubmissionError, match=r"^requirements.txt: line 1: 's23-userpkg': 's23-userpkg' is not "
                                              r"installed in the scoring environment \(the sandbox sees only"):
        check_requirements(requirements)
    bound = fake_distribution(tmp_path / "bound", "s23-extrapkg", "Provides-Extra: fast", "Provides-Extra: broken",
                              'Requires-Dist: numpy>=1; extra == "fast"', 'Requires-Dist: numpy<1; extra == "broken"',
                              'Requires-Dist: no-such-package-s23; extra == "broken" or extra == "gone"',
                              "Provides-Extra: gone")
    seen = submission.sandbox_sys_path()
    monkeypatch.setattr(submission, "sandbox_sys_path", lambda: [str(bound), *seen])
    requirements.write_text("s23-extrapkg[fast]>=1\n")
    assert check_requirements(requirements) == ["s23-extrapkg[fast]>=1 (installed 1.0)"]
    numpy_version = importlib.metadata.version("numpy")
    for extra, expected in [
            ("broken", f"the scoring environment has numpy {numpy_version}, which <1 excludes (needed by "
                       "s23-extrapkg[broken])"),
            ("gone", "'no-such-package-s23' (needed by s23-extrapkg[gone]) is not installed"),
            ("nope", "s23-extrapkg 1.0 has no extra 'nope'")]:
        requirements.write_text(f"s23-extrapkg[{extra}]\n")
        with pytest.raises(SubmissionError, match=re.escape(f"line 1: 's23-extrapkg[{extra}]': {expected}")):
            check_requirements(requirements)


def test_what_a_required_package_depends_on_must_hold_too(tmp_path, monkeypatch):
    """Only the requirements themselves were checked (and their extras' own): a package installed without what it
    depends on (a dependency removed later, or found only in user site-packages, which the sandbox does not bind)
    passed intake and failed at the model's import, inside the sandbox. Its whole tree of dependencies is checked now,
    each package once (a cycle ends), markers applied."""
    import importlib.metadata
    import re

    from neurozoo.leaderboard import submission
    from neurozoo.leaderboard.submission import SubmissionError, check_requirements

    bound = tmp_path / "bound"
    fake_distribution(bound, "s23-top", "Requires-Dist: s23-mid>=1", 'Requires-Dist: no-such-s23; sys_platform == "x"')
    fake_distribution(bound, "s23-mid", "Requires-Dist: numpy", "Requires-Dist: s23-missing")
    fake_distribution(bound, "s23-strict", "Requires-Dist: s23-cycle", "Requires-Dist: numpy<1")
    fake_distribution(bound, "s23-cycle", "Requires-Dist: s23-cycle-back", "Requires-Dist: numpy>=1")
    fake_distribution(bound, "s23-cycle-back", "Requires-Dist: s23-cycle>=1.0")
    fake_distribution(bound, "s23-extra", "Provides-Extra: fast", 'Requires-Dist: s23-mid; extra == "fast"',
                      "Requires-Dist: s23-user-only")
    monkeypatch.syspath_prepend(str(fake_distribution(tmp_path / "user-site", "s23-user-only")))
    seen = submission.sandbox_sys_path()
    monkeypatch.setattr(submission, "sandbox_sys_path", lambda: [str(bound), *seen])
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("s23-cycle\nnumpy\n")
    assert check_requirements(requirements) == ["s23-cycle (installed 1.0)",
                                                f"numpy (installed {importlib.metadata.version('numpy')})"]
    fake_distribution(bound, "s23-missing")
    requirements.write_text("s23-top\n")
    assert check_requirements(requirements) == ["s23-top (installed 1.0)"]
    (bound / "s23_missing-1.0.dist-info" / "METADATA").unlink()  # removed after s23-mid was installed
    (bound / "s23_missing-1.0.dist-info").rmdir()
    for line, expected in [
            ("s23-top", "'s23-missing' (needed by s23-top -> s23-mid) is not installed in the scoring environment"),
            ("s23-strict", f"the scoring environment has numpy {importlib.metadata.version('numpy')}, which <1 "
                           "excludes (needed by s23-strict)"),
            ("s23-extra", "'s23-user-only' (needed by s23-extra) is not installed in the scoring environment (the "
                          "sandbox sees only")]:
        requirements.write_text(f"numpy\n{line}\n")
        with pytest.raises(SubmissionError, match=re.escape(f"requirements.txt: line 2: '{line}': {expected}")):
            check_requirements(requirements)
    fake_distribution(bound, "s23-user-only")
    requirements.write_text("s23-extra[fast]\n")  # the extra's requirement's own dependencies too
    with pytest.raises(SubmissionError, match=re.escape("'s23-missing' (needed by s23-extra[fast] -> s23-mid)")):
        check_requirements(requirements)


def recurrent_model_source() -> str:
    """model.py of a submission whose layer 'cell' runs 5 times per image, with no time mapping (test_extraction's)."""
    import ast

    text = (HERE / "test_extraction.py").read_text()
    unrolled = next(node for node in ast.parse(text).body if getattr(node, "name", None) == "Unrolled")
    return (f"import torch\nfrom torch import nn\n\n\n{ast.get_source_segment(text, unrolled)}\n\n\n"
            "def create_model(weights):\n    return Unrolled()\n")


def test_a_recurrent_submission_without_a_time_mapping_fails_with_the_hint_shown_whole(tmp_path, db, monkeypatch):
    """The job's error was the model process's traceback, its last line cut at 200 characters: the hint how to
    declare a time mapping was lost. The runner prints the message wrapped; the summary is its first line."""
    from neurozoo.leaderboard.sandbox import Limits
    from neurozoo.leaderboard.submission import submission_specs
    from neurozoo.leaderboard.worker import CONSOLE_LINE_CHARS, model_features
    from neurozoo.leaderboard.zoo import ScoringError

    monkeypatch.setenv("NEUROZOO_CACHE", str(tmp_path / "cache"))
    folder = make_submission(tmp_path / "sub", weights=False, layers={"V4": "cell"})
    (folder / "model.py").write_text(recurrent_model_source())
    spec = submission_specs(prepare(folder, tmp_path / "store"))[0]["spec"]
    with pytest.raises(ScoringError) as error:  # our own test model: run without the sandbox
        model_features(benchmarks.load("lbtest.V4"), spec, "cell", Limits(wall_s=120), sandbox=False)
    summary, *console = str(error.value).splitlines()
    assert summary.startswith("the submission's model process failed (exit status 1): error: layer 'cell' produced 5 "
                              "steps (it ran 5 times on each image) but its time mapping has 1")
    assert len(console) > 1 and all(len(line) <= CONSOLE_LINE_CHARS for line in console)
    assert console[0] == summary.split(": ", 1)[1] and "Traceback" not in str(error.value)
    whole = " ".join(line.strip() for line in console)
    assert "create_model returns (model, {'cell': [70, 6, 5]})" in whole, whole  # lbtest.V4's 3 bins, 70-100 ms


def test_a_one_line_model_process_error_is_shown_once(tmp_path, db, monkeypatch):
    """A model process whose whole console is its one-line error (a layer that is not there) had that line shown twice,
    as the summary and again as the console below it (`zoo submission ID`: the job's error line, then the same line)."""
    from neurozoo.leaderboard.sandbox import Limits
    from neurozoo.leaderboard.submission import submission_specs
    from neurozoo.leaderboard.worker import model_features
    from neurozoo.leaderboard.zoo import ScoringError

    monkeypatch.setenv("NEUROZOO_CACHE", str(tmp_path / "cache"))
    folder = make_submission(tmp_path / "sub", weights=False, layers={"V4": "conv9"})
    spec = submission_specs(prepare(folder, tmp_path / "store"))[0]["spec"]
    with pytest.raises(ScoringError) as error:  # our own test model: run without the sandbox
        model_features(benchmarks.load("lbtest.V4"), spec, "conv9", Limits(wall_s=120), sandbox=False)
    assert str(error.value) == ("the submission's model process failed (exit status 1): error: model has no layer "
                                "'conv9'; did you mean 'conv2', 'conv1'? (its top-level modules: conv1, relu, conv2)")


def test_zoo_submit_checks_passed_line_gives_a_command_that_runs_as_copied(tmp_path, monkeypatch, capsys):
    """A folder with a space ("my subs/mynet") was shown as `zoo submit my subs/mynet`: copied, that submits "my"."""
    import shlex

    from neurozoo.leaderboard import submission_check
    from neurozoo.leaderboard.cli import main

    folder = tmp_path / "my subs" / "mynet"
    monkeypatch.setattr(submission_check, "check", lambda path, *args, **kwargs: None)  # the line only
    assert main(["submit", "--check", str(folder)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    command = line.split("`")[1]
    assert shlex.split(command) == ["zoo", "submit", str(folder)], line


def test_zoo_submit_check_runs_the_intake_and_a_dry_run_and_queues_nothing(tmp_path, db, monkeypatch, capsys):
    """A submitter had no way to try a submission but to submit it: a mistake cost a queued job (and the name)."""
    from neurozoo.leaderboard.cli import main
    from neurozoo.leaderboard.sandbox import sandbox_problem

    if sandbox_problem():
        pytest.skip(f"no sandbox: {sandbox_problem()}")
    monkeypatch.setenv("NEUROZOO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NEUROZOO_CACHE", str(tmp_path / "cache"))
    folder = make_submission(tmp_path / "sub")
    (folder / "requirements.txt").write_text("numpy\n")
    assert main(["submit", "--check", str(folder)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "intake: ok: net-ok, 1 benchmark: lbtest.V4; layers V4 conv2; weights weights.pt (sha256 matches)"
    assert out[1].startswith("requirements.txt: ok: numpy (installed ")
    images = benchmarks.load("lbtest.V4").stimuli.images[:2]
    assert out[2] == (f"dry run: lbtest.V4: ok on 2 images (3, 32, 32) with values from {float(images.min()):.2f} to "
                      f"{float(images.max()):.2f}: conv2 (2, 200, 3) (images, features, time bins)")
    assert out[3].startswith("check passed: ")
    assert not (tmp_path / "home" / "submissions").exists() and db.submissions() == []  # nothing stored or queued

    (folder / "requirements.txt").write_text("numpy<1\n")
    assert main(["submit", "--check", str(folder)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("check failed: requirements.txt: line 1: 'numpy<1': the scoring environment has numpy ")
    assert not any(line.startswith("dry run") for line in out)


def test_zoo_submit_check_reads_requirements_once_and_says_what_each_resolved_to(tmp_path, monkeypatch):
    """The intake checked requirements.txt, then the check read and resolved it again for the lines it prints."""
    import scipy

    from neurozoo.leaderboard import submission
    from neurozoo.leaderboard.sandbox import Limits
    from neurozoo.leaderboard.submission_check import check

    load_plugin(tmp_path, monkeypatch)
    reads, resolve = [], submission.check_requirements
    monkeypatch.setattr(submission, "check_requirements", lambda path: (reads.append(path.name), resolve(path))[1])
    folder = make_submission(tmp_path / "sub")
    skipped = "dry run: skipped: no sandbox can be made here"
    for requirements, said in (("numpy\n# pinned below\nscipy>=1.0 ; python_version < '3'\nscipy>=1.0\n",
                                f"requirements.txt: ok: numpy (installed {np.__version__}); scipy>=1.0 ; python_version < "
                                f"'3' (not for this platform: skipped); scipy>=1.0 (installed {scipy.__version__})"),
                               ("# nothing\n", "requirements.txt: ok: no requirements"), (None, skipped)):
        if requirements is None:
            (folder / "requirements.txt").unlink()
        else:
            (folder / "requirements.txt").write_text(requirements)
        reads.clear()
        lines = []
        check(folder, None, Limits(), lines.append)
        assert lines[0].startswith("intake: ok: net-ok, 1 benchmark: ") and lines[1].startswith(said), lines
        assert len(lines) == (2 if requirements is None else 3) and lines[-1].startswith(skipped)
        assert reads == ([] if requirements is None else ["requirements.txt"])


def test_zoo_submit_check_refuses_the_files_zoo_submit_refuses_as_already_submitted(tmp_path, db, monkeypatch, capsys):
    """zoo submit --check said `zoo submit` "would queue" files its database held already under their name, which
    zoo submit refuses as identical: the check asks the database zoo submit asks (LeaderboardDB.refuse_identical) and
    fails with zoo submit's refusal; other files pass, and without a database (none at the default place) none is
    made."""
    from neurozoo.benchmarks.records import default_url
    from neurozoo.leaderboard import sandbox
    from neurozoo.leaderboard.cli import main
    from neurozoo.leaderboard.submission import AlreadySubmitted

    monkeypatch.setenv("NEUROZOO_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(sandbox, "sandbox_problem", lambda: "none in this test")  # no dry run: intake and database
    folder = make_submission(tmp_path / "sub", weights=False)
    command = ["submit", "--check", "--db", db.url, str(folder)]
    assert main(command) == 0
    out = capsys.readouterr().out.splitlines()
    assert f"database: ok: no submission of these files as net-ok in {db.shown_url}" in out
    assert out[-1].startswith("check passed: ")

    submission_id = submit(db, folder, tmp_path / "store")
    with pytest.raises(AlreadySubmitted) as refused:
        submit(db, folder, tmp_path / "store")
    assert main(command) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == f"check failed: {refused.value}"
    assert f"identical to submission {submission_id} (net-ok" in out[-1]
    assert not any(line.startswith(("dry run", "check passed")) for line in out)

    (folder / "model.py").write_text((folder / "model.py").read_text() + "# changed\n")
    assert main(command) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("check passed: ")

    assert main(["submit", "--check", str(folder)]) == 0  # the default database: not there, and not made
    assert not any(line.startswith("database:") for line in capsys.readouterr().out.splitlines())
    assert not Path(default_url()[len("sqlite:///"):]).exists()
    # a results store without the leaderboard's tables (zoo score's) holds no submission: compared with nothing, and
    # left as it was (opening it as the leaderboard's database added five tables to it)
    from sqlalchemy import create_engine, inspect

    from neurozoo.benchmarks.records import ScoreRow

    results = f"sqlite:///{tmp_path / 'results.sqlite'}"
    ScoreRow.__table__.create(create_engine(results))  # as a process that never imported the leaderboard made it
    tables = set(inspect(create_engine(results)).get_table_names())
    assert main(["submit", "--check", "--db", results, str(folder)]) == 0
    assert not any(line.startswith("database:") for line in capsys.readouterr().out.splitlines())
    assert set(inspect(create_engine(results)).get_table_names()) == tables == {"scores"}


def test_the_operator_scores_a_failed_submission_again_after_a_fix_on_the_servers_side(tmp_path, db, monkeypatch,
                                                                                        capsys):
    """A submission that failed for the server's reasons (torchvision before the model process applied its shim)
    could not be scored again: the same files are refused, and `zoo work` had no way to queue its jobs again."""
    from neurozoo.leaderboard import worker
    from neurozoo.leaderboard.cli import main
    from neurozoo.leaderboard.submission import AlreadySubmitted
    from neurozoo.leaderboard.zoo import ScoringError

    def failing(reason, calls=None):
        def score(job, *args, **kwargs):
            if calls is not None:
                calls.append(job["id"])
            raise ScoringError(reason)
        return score

    folder = make_submission(tmp_path / "sub", weights=False)
    sid = submit(db, folder, tmp_path / "store")
    assert work(db, failing("the server's bug"), progress=False) == {"done": 0, "failed": 1}
    with pytest.raises(AlreadySubmitted, match=r"status failed\); change the files to submit again, or, where it failed "
                                               rf"for the server's reasons, .*\(zoo work --retry-submission {sid}\)"):
        submit(db, folder, tmp_path / "store")
    calls = []
    monkeypatch.setattr(worker, "score_job", failing("scored again", calls))
    url = f"sqlite:///{tmp_path / 'lb.sqlite'}"
    options = ["--db", url, "--nice", "0", "--no-progress", "--unsafe-no-sandbox"]
    assert main(["work", *options, "--retry-submission", str(sid)]) == 1
    assert calls == [job["id"] for job in db.submission(sid)["jobs"]] and len(calls) == 1
    said = capsys.readouterr()
    assert f"zoo work: submission {sid} (net-ok): 1 failed job queued again" in said.err
    # where to look: it ended on "done 0, failed 1"
    assert said.out.splitlines()[-2:] == ["done 0, failed 1", f"see the scores: zoo submission {sid} (each job's "
                                          f"public-split score, or why it failed); the board: zoo serve --db {url}"]
    assert db.submission(sid)["jobs"][0]["error"] == "ScoringError: scored again"
    assert main(["work", *options, "--retry-submission", "99"]) == 2
    assert "--retry-submission 99: no submission 99 in sqlite:///" in capsys.readouterr().err


def _listing(store: Path) -> list:
    return sorted(str(path.relative_to(store)) for path in store.rglob("*"))


def test_a_refused_or_failed_submission_leaves_the_store_as_it_was(tmp_path, db, monkeypatch):
    """A submission was unpacked into the store under its digest before the database decided: each refusal (the
    name another user's, a look-alike of it, a built-in model's, the same files again) and each error on the way left
    its folder there for good, a disk filled by anyone with a token. The files move in only once accepted, and a
    refused twin of an accepted submission (the same files, one folder) leaves that folder alone."""
    from neurozoo.leaderboard.submission import AlreadySubmitted, NameTaken, changed_since_submitted

    store = tmp_path / "store"
    accepted = db.submission(submit(db, make_submission(tmp_path / "alice", name="shared-name", weights=False), store,
                                    user="alice"))
    before = _listing(store)
    assert [name for name in before if "/" not in name] == [Path(accepted["folder"]).name]
    refusals = [(AlreadySubmitted, "identical to submission", "alice", tmp_path / "alice"),
                (NameTaken, "belongs to user 'alice'", "bob", tmp_path / "alice"),  # the same files: one folder
                (NameTaken, "belongs to user 'alice'", "bob",
                 make_submission(tmp_path / "bob-1", name="shared-name", weights=False, description="v2")),
                (NameTaken, "looks like 'shared-name'", "bob",
                 make_submission(tmp_path / "bob-2", name="SHARED_NARNE", weights=False)),
                (NameTaken, "built-in model of the zoo", "bob",
                 make_submission(tmp_path / "bob-3", name="rgc_intermediate", weights=False))]
    for refused, reason, user, source in refusals:
        with pytest.raises(refused, match=reason):
            submit(db, source, store, user=user)
        assert _listing(store) == before, reason
    source = make_submission(tmp_path / "bob-4", name="bobs-net", weights=False)
    for error in (RuntimeError("the database went away"), KeyboardInterrupt()):  # after the checks, before commit
        def fail(*args, **kwargs):
            raise error
        with monkeypatch.context() as patched:
            patched.setattr(LeaderboardDB, "_enqueue", fail)
            with pytest.raises(type(error)):
                submit(db, source, store, user="bob")
        assert _listing(store) == before, error
    assert [s["id"] for s in db.submissions()] == [accepted["id"]]
    assert changed_since_submitted(Path(accepted["folder"]), accepted["sha256"]) is None
    stored = db.submission(submit(db, source, store, user="bob"))  # accepted: where the workers look for it
    assert _listing(store) == sorted(before + [Path(stored["folder"]).name] + [
        f"{Path(stored['folder']).name}/{name}" for name in ("metadata.yaml", "model.py")])
    assert changed_since_submitted(Path(stored["folder"]), stored["sha256"]) is None
    assert [job["spec"]["folder"] for job in stored["jobs"]] == [stored["folder"]]


def test_a_folder_tree_too_deep_is_refused_and_leaves_nothing_that_blocks_later_submissions(tmp_path, db):
    """A zip of three files 600, 1200 and 1800 folders deep (1 KiB) was unpacked level by level (each member's
    folders made by Path.mkdir, which recurses once per missing parent: under Python's recursion limit each time);
    validating it (rglob) and removing its staging folder (shutil.rmtree) then recursed 1800 deep, a RecursionError
    traceback (web: 500), and the staging folder stayed in the store. The next intake of any user removes a dead
    process's staging folder first, failed on it the same way, and so did every submission after it until the
    operator removed the folder by hand. A path of more than MAX_DEPTH parts is refused as the archive is read, in a
    folder as it is walked; nothing is left."""
    from neurozoo.leaderboard.submission import MAX_DEPTH

    store = tmp_path / "store"
    honest = make_submission(tmp_path / "honest", weights=False)
    deep = tmp_path / "deep.zip"
    with zipfile.ZipFile(deep, "w") as archive:
        for name in ("metadata.yaml", "model.py"):
            archive.write(honest / name, name)
        for depth in (600, 1200, 1800):
            archive.writestr("a/" * depth + "f", b"x")
    with pytest.raises(SubmissionError, match=rf"deep.zip: member 'a/a/a/.* is 601 levels deep; at most {MAX_DEPTH}"):
        submit(db, deep, store, user="mallory")
    assert _listing(store) == []
    folder = make_submission(tmp_path / "folder", name="folder-net", weights=False)
    (folder / Path(*["b"] * MAX_DEPTH)).mkdir(parents=True)
    (folder / Path(*["b"] * MAX_DEPTH) / "f").write_text("x")
    with pytest.raises(SubmissionError, match=rf"submission: '{'b/' * MAX_DEPTH}f' is {MAX_DEPTH + 1} levels deep"):
        submit(db, folder, store, user="mallory")
    assert _listing(store) == []
    stored = db.submission(submit(db, honest, store, user="bob"))
    assert stored["status"] == "queued"
    nested = make_submission(tmp_path / "nested", name="nested-net", weights=False)  # a few folders still pass
    (nested / "pkg" / "sub").mkdir(parents=True)
    (nested / "pkg" / "sub" / "layers.py").write_text("X = 1\n")
    assert db.submission(submit(db, nested, store, user="bob"))["status"] == "queued"


def test_a_relative_store_is_recorded_as_an_absolute_folder(tmp_path, db, monkeypatch):
    """``zoo submit --store subs`` recorded the folder as ``subs/<digest>``, relative to where the operator ran it:
    ``zoo work`` run from any other folder found no such folder (every job failed, "the submission's stored folder
    is gone"), and the sandbox hid the store by that name resolved from the worker's folder, another one."""
    from neurozoo.leaderboard.submission import changed_since_submitted

    (tmp_path / "operator").mkdir()
    (tmp_path / "worker").mkdir()
    monkeypatch.chdir(tmp_path / "operator")
    row = db.submission(submit(db, make_submission(tmp_path / "sub", weights=False), Path("subs")))
    monkeypatch.chdir(tmp_path / "worker")
    assert Path(row["folder"]).parent == tmp_path / "operator" / "subs"
    assert all(job["spec"]["folder"] == row["folder"] for job in row["jobs"])
    assert changed_since_submitted(Path(row["folder"]), row["sha256"]) is None


def test_the_intake_reads_each_file_once_for_both_digest_formats(tmp_path, db, monkeypatch):
    """The intake computes the files' digest in format 2 and in format 1 (compared with the rows stored before
    format 2): each was a pass over every file, so a 512 MiB submission was read and hashed twice. One pass gives
    both, the same digests as each format's own."""
    from neurozoo.leaderboard import submission as intake
    from neurozoo.leaderboard.submission import LEGACY_TREE_FORMAT, tree_sha256

    folder = make_submission(tmp_path / "sub", weights=False)  # the weights' declared sha256 is checked apart
    (folder / "data").mkdir()
    (folder / "data" / "extra.bin").write_bytes(b"x" * 1000)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    hashed = []
    real = intake.sha256_file
    monkeypatch.setattr(intake, "sha256_file", lambda path: hashed.append(Path(path).name) or real(path))
    row = db.submission(submit(db, folder, tmp_path / "store"))
    assert sorted(hashed) == sorted(p.name for p in files)  # once each
    monkeypatch.setattr(intake, "sha256_file", real)
    stored = Path(row["folder"])
    assert row["sha256"] == tree_sha256(stored) != tree_sha256(stored, LEGACY_TREE_FORMAT)


def test_the_shown_character_rule_looks_up_only_characters_outside_printable_ascii(monkeypatch):
    """The pages hold every submission's authors, licence and description to the intake's character rule
    (unshown_characters) each time the ranking is built: it looked up the Unicode category of every character, 3 ms
    for a row at the intake's limits (a 5000-character description, 50 authors of 200), seconds for a board of a
    thousand submissions. Printable ASCII is never unshown nor a combining mark: only the characters outside it are
    looked up, with the same findings."""
    import unicodedata

    from neurozoo.leaderboard.submission import STACKED_MARK, UNSHOWN_CHARACTER, shown_text, unshown_characters

    text = "plain words " * 400 + "Eve\u202egnp \x1b[31m caf\u00e9 a" + "\u0301" * 10 + " b" + "\u0301" * 8 + "\n\tend"
    start = len("plain words " * 400)
    marks = text.index("\u0301")
    outside = [c for c in text if not " " <= c <= "~"]
    looked_up = []
    category = unicodedata.category
    monkeypatch.setattr(unicodedata, "category", lambda c: looked_up.append(c) or category(c))
    found = unshown_characters(text, "\n\t")
    assert sorted(looked_up) == sorted(outside) and len(outside) == 23
    assert found == [(start + 3, UNSHOWN_CHARACTER), (start + 8, UNSHOWN_CHARACTER), (marks + 8, STACKED_MARK),
                     (marks + 9, STACKED_MARK)]  # the second run, 8 marks, is within the cap
    assert unshown_characters(text) == sorted(found + [(len(text) - 5, UNSHOWN_CHARACTER),
                                                       (len(text) - 4, UNSHOWN_CHARACTER)])
    assert shown_text(text, "\n\t")[start:] == ("Eve\\u202egnp \\x1b[31m caf\u00e9 a" + "\u0301" * 8 + "\\u0301" * 2
                                                + " b" + "\u0301" * 8 + "\n\tend")
