"""The leaderboard database and job queue, on SQLite and (when NEUROZOO_TEST_POSTGRES_URL is set) PostgreSQL."""
import contextlib
import os
import threading
import time
import warnings

import pytest
from claims import fail_claim, finish_claim
from processes import alive
from sqlalchemy import text

from neurozoo.benchmarks.records import ScoreRecord
from neurozoo.leaderboard.aggregate import OVERALL, aggregate, build_tree, ranking
from neurozoo.leaderboard.db import DONE, FAILED, QUEUED, RUNNING, LeaderboardDB, settings_sha256

POSTGRES_URL = os.environ.get("NEUROZOO_TEST_POSTGRES_URL")


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    if request.param == "sqlite":
        store = LeaderboardDB(f"sqlite:///{tmp_path / 'lb.sqlite'}")
        yield store
        store.dispose()
        return
    if not POSTGRES_URL:
        pytest.skip("NEUROZOO_TEST_POSTGRES_URL is not set (.ci/run starts PostgreSQL and sets it)")
    from sqlalchemy import create_engine

    # a schema of this process's own: the PostgreSQL database may be shared with other test runs
    schema, admin = f"lb_db_test_{os.getpid()}", create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    # application_name: the schema's connections that wait for a lock are found by it (concurrently)
    store = LeaderboardDB(POSTGRES_URL + ("&" if "?" in POSTGRES_URL else "?")
                          + f"options=-csearch_path%3D{schema}&application_name={schema}")
    yield store
    store.dispose()
    with admin.begin() as connection:
        connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def _waiting_for_a_lock(db) -> int:
    """How many of the store's connections wait for a lock another transaction holds (PostgreSQL)."""
    with db.engine.connect() as connection:
        return connection.execute(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                       "AND application_name = current_setting('application_name')")).scalar_one()


_WRITES = ("BEGIN IMMEDIATE", "UPDATE", "INSERT", "DELETE")
_ABOUT_TO_WRITE: dict = {}  # thread run by `concurrently` -> set when it is about to write (SQLite)


def _seen(_connection, _cursor, statement, *_):
    about_to_write = _ABOUT_TO_WRITE.get(threading.current_thread())
    if about_to_write is not None and statement.lstrip().upper().startswith(_WRITES):
        about_to_write.set()


def _watch_writes(engine) -> None:
    """One listener per engine, added before any pause point runs (a listener added by a listener's call broke
    SQLAlchemy's iteration over them)."""
    from sqlalchemy import event

    if not event.contains(engine, "before_cursor_execute", _seen):
        event.listen(engine, "before_cursor_execute", _seen)


class concurrently:
    """Run ``target`` in a thread with its own connection and return once it has ended or waits for a lock that the
    transactions already open hold: the pause point that forces an interleaving, with no sleep standing in for it.
    PostgreSQL: ``waiting`` of the store's connections wait for a lock (pg_stat_activity). SQLite: the thread is
    about to write, so it waits for the write lock, which whoever started it must hold. :meth:`result` joins it."""

    def __init__(self, db, target, waiting: int = 1):
        _watch_writes(db.engine)
        self.outcome, about_to_write = {}, threading.Event()
        self.thread = threading.Thread(target=self._run, args=(target,))
        _ABOUT_TO_WRITE[self.thread] = about_to_write
        self.thread.start()
        deadline = time.monotonic() + 30
        while self.thread.is_alive() and time.monotonic() < deadline:
            if about_to_write.is_set() if db.engine.dialect.name == "sqlite" else _waiting_for_a_lock(db) >= waiting:
                return
            self.thread.join(0.01)  # a condition polled, not a pause: it returns as soon as it holds
        assert not self.thread.is_alive(), "the thread neither ended nor waited for a lock within 30 s"

    def _run(self, target):
        try:
            self.outcome["result"] = target()
        except Exception as error:  # raised again by result()
            self.outcome["error"] = error

    def result(self):
        self.thread.join(60)
        assert not self.thread.is_alive(), "the thread did not end within 60 s"
        _ABOUT_TO_WRITE.pop(self.thread, None)
        if "error" in self.outcome:
            raise self.outcome["error"]
        return self.outcome["result"]


@contextlib.contextmanager
def paused_at(db, prefix: str, during):
    """Within the block, call ``during()`` once, in this thread, just before it executes its first statement that
    starts with ``prefix`` (``UPDATE lb_submissions``): a pause point inside an operation's transaction. Yields the
    list that then holds what ``during()`` returned."""
    from sqlalchemy import event

    me, called = threading.current_thread(), []
    _watch_writes(db.engine)

    def hook(_connection, _cursor, statement, *_):
        if threading.current_thread() is me and not called and statement.lstrip().startswith(prefix):
            called.append(during())

    event.listen(db.engine, "before_cursor_execute", hook)
    try:
        yield called
    finally:
        event.remove(db.engine, "before_cursor_execute", hook)


def record(model="m", benchmark="b", value=0.5):
    return ScoreRecord(model=model, benchmark=benchmark, value=value, ceiling=0.8, settings={"k": 1})


def test_tokens_are_stored_hashed(db):
    token = db.create_token("alice")
    assert db.user_for_token(token) == "alice"
    assert db.user_for_token(token + "x") is None and db.user_for_token(None) is None
    second = db.create_token("alice")
    assert second != token and db.user_for_token(second) == "alice"
    with db.engine.connect() as connection:
        stored = [r[0] for r in connection.execute(text("SELECT token_sha256 FROM lb_tokens"))]
    assert len(stored) == 2 and token not in stored and all(len(s) == 64 for s in stored)


def test_a_token_never_starts_with_a_dash(db, monkeypatch):
    """One random token in 64 started with '-', which `zoo token revoke TOKEN` read as an option (a flaky CLI test
    showed it): such a draw is made again."""
    import secrets

    draws = iter(["-leading-dash", "--two", "fine-token"])
    monkeypatch.setattr(secrets, "token_urlsafe", lambda n: next(draws))
    token = db.create_token("alice")
    assert token == "fine-token" and db.user_for_token(token) == "alice"


def test_two_first_tokens_of_a_new_user_made_at_once_both_work(db):
    """Two ``zoo token create`` for a user not yet known, at the same instant: each found no user row and inserted one,
    and the second to commit failed on the unique user name (PostgreSQL's IntegrityError). It now reads again and adds
    its token to the user the other made, as ``enqueue`` does for a job queued twice."""
    with paused_at(db, "INSERT INTO lb_users", lambda: concurrently(db, lambda: db.create_token("bob"))) as other:
        first = db.create_token("bob")
    second = other[0].result()
    assert first != second and db.user_for_token(first) == db.user_for_token(second) == "bob"
    assert [(t["user"], t["revoked"]) for t in db.tokens()] == [("bob", False), ("bob", False)]
    with db.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM lb_users")).scalar_one() == 1


def test_two_revocations_at_once_count_each_token_once(db):
    """Two ``zoo token revoke --user`` at the same instant: each read the same live tokens before the other wrote, and
    both said they revoked them (4 for 2 tokens). The count is now of the rows each one's UPDATE changed."""
    tokens = [db.create_token("alice") for _ in range(2)]
    kept = db.create_token("carol")
    with paused_at(db, "UPDATE lb_tokens", lambda: concurrently(db, lambda: db.revoke_tokens(user="alice"))) as other:
        first = db.revoke_tokens(user="alice")
    assert sorted([first, other[0].result()]) == [0, 2]
    assert [db.user_for_token(t) for t in tokens + [kept]] == [None, None, "carol"]
    with paused_at(db, "UPDATE lb_tokens", lambda: concurrently(db, lambda: db.revoke_tokens(token=kept))) as other:
        first = db.revoke_tokens(token=kept)
    assert sorted([first, other[0].result()]) == [0, 1] and db.user_for_token(kept) is None
    assert db.revoke_tokens(user="alice") == 0 and db.revoke_tokens(user="nobody") == 0


def test_enqueue_is_keyed_by_model_benchmark_settings(db):
    a = db.enqueue("m", "b", {"width": 0.25})
    assert db.enqueue("m", "b", {"width": 0.25}) == a
    assert db.enqueue("m", "b", {"width": 0.5}) != a
    assert db.enqueue("m2", "b", {"width": 0.25}) != a
    assert db.job(a)["settings_sha256"] == settings_sha256({"width": 0.25})
    assert [j["status"] for j in db.jobs()] == [QUEUED] * 3


def test_claim_finish_is_atomic_and_exclusive(db):
    job_id = db.enqueue("m", "b", {})
    job = db.claim("w1", lease_s=60)
    assert job["id"] == job_id and job["status"] == RUNNING and job["attempts"] == 1
    assert db.claim("w2", lease_s=60) is None  # held by w1
    token = job["lease_token"]
    assert db.heartbeat(job_id, "w1", lease_token=token) and not db.heartbeat(job_id, "w2", lease_token=token)
    assert not db.finish(job_id, "w2", record(), lease_token=token)  # not the holder: nothing written
    assert len(db.query()) == 0
    assert finish_claim(db, job, record(), hidden=record(value=0.4), duration_s=1.5)
    job = db.job(job_id)
    assert job["status"] == DONE and job["duration_s"] == 1.5
    assert db.get(job["score_id"]).value == 0.5 and db.get(job["hidden_score_id"]).value == 0.4
    assert [r.value for r in db.leaderboard_records()] == [0.4]  # the hidden split is what the board shows
    assert not finish_claim(db, job, record())  # done jobs are never written twice
    assert len(db.query()) == 2


def test_failed_transaction_leaves_no_rows(db):
    job_id = db.enqueue("m", "b", {})
    job = db.claim("w1")

    class Broken:  # fails after the public row was added to the session
        def to_row(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        finish_claim(db, job, record(), hidden=Broken())
    assert len(db.query()) == 0 and db.job(job_id)["status"] == RUNNING


def test_expired_lease_is_resumed_and_attempts_are_bounded(db):
    job_id = db.enqueue("m", "b", {})
    dead = db.claim("dead-worker", lease_s=0.05)
    assert dead["attempts"] == 1
    time.sleep(0.1)
    job = db.claim("w2", lease_s=60)
    assert job["id"] == job_id and job["attempts"] == 2 and job["worker"] == "w2"
    assert not finish_claim(db, dead, record())  # the dead worker lost its lease
    assert fail_claim(db, job, "NaN in the model's output")
    assert db.job(job_id)["status"] == FAILED and db.job(job_id)["error"] == "NaN in the model's output"
    assert db.requeue_failed() == 1 and db.job(job_id)["status"] == QUEUED

    other = db.enqueue("m", "b2", {})
    for _ in range(2):
        db.claim("w", lease_s=0.01, ids=[other])
        time.sleep(0.03)
    assert db.claim("w", lease_s=0.01, max_attempts=2, ids=[other]) is None
    assert db.job(other)["status"] == FAILED and "2 attempts" in db.job(other)["error"]


def test_concurrent_workers_claim_each_job_once(db):
    ids = [db.enqueue("m", f"b{i}", {}) for i in range(12)]
    claimed, errors = [], []

    def work(name):
        try:
            while (job := db.claim(name, lease_s=60)) is not None:
                claimed.append(job["id"])
                assert finish_claim(db, job, record(benchmark=job["benchmark"]))
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(claimed) == ids
    assert len(db.query()) == 12 and all(j["status"] == DONE for j in db.jobs())


def test_aggregation_tree_means_and_missing():
    real = {"data": "real"}
    tree = build_tree([("v4a", {"region": "V4", **real}), ("v4b", {"region": "V4", **real}), ("it", {"region": "IT", **real}),
                       ("ret", {"region": "retina", "family": "retina", **real})])
    assert [c.name for c in tree.children] == ["cortex", "retina"]
    nodes = aggregate(tree, {"v4a": 0.2, "v4b": 0.4, "it": 0.9})
    assert nodes["cortex/V4"] == (pytest.approx(0.3), 2, 2, None, None)
    assert nodes["cortex"][0] == pytest.approx((0.3 + 0.9) / 2)  # unweighted over regions, not benchmarks
    assert nodes["retina"] == (None, 0, 1, None, None) and nodes["ret"] == (None, 0, 1, None, None)  # missing, not zero
    assert nodes[OVERALL] == (pytest.approx(0.6), 3, 4, None, None)
    rows = ranking(tree, {"a": {"v4a": 0.1}, "b": {"it": 0.5, "ret": 0.7}, "c": {}})
    # a and b are scored on different benchmarks of the overall: each is ranked among its own kind only
    assert [(r["model"], r["rank"]) for r in rows] == [("b", 1), ("a", 1), ("c", None)]
    assert [r["ranked_among"] for r in rows] == [
        {"scored_on": "cortex: it; retina", "benchmarks": ["it", "ret"], "models": 1},
        {"scored_on": "cortex: v4a", "benchmarks": ["v4a"], "models": 1}, None]
    assert rows[0]["nodes"][OVERALL][0] == pytest.approx(0.6)


def test_equal_scores_share_a_rank_and_the_next_skips_their_places():
    tree = build_tree([("v4", {"region": "V4", "data": "real"})])
    rows = ranking(tree, {"z": {"v4": 0.5}, "a": {"v4": 0.5}, "m": {"v4": 0.2}, "n": {"v4": None}})
    # the order within a tie is by name, the rank is shared (it was 1, 2 for the same score)
    assert [(r["model"], r["rank"]) for r in rows] == [("a", 1), ("z", 1), ("m", 3), ("n", None)]


def test_a_submission_shows_running_while_one_of_its_jobs_runs(db):
    """`zoo submission` had said 'queued' while its job was being scored: the status changed only at the end."""
    jobs = [{"model": "sub", "benchmark": b, "spec": {"benchmark": b}} for b in ("b1", "b2")]
    sid = db.add_submission("sub", "/store/x", "0" * 64, {}, None, jobs)
    assert db.submission(sid)["status"] == QUEUED
    first = db.claim("w1")
    assert db.submission(sid)["status"] == RUNNING
    finish_claim(db, first, record("sub", "b1"))
    assert db.submission(sid)["status"] == RUNNING  # b2 still queued
    second = db.claim("w1")
    fail_claim(db, second, "crashed")
    assert db.submission(sid)["status"] == FAILED


def test_a_failure_superseded_by_a_later_score_of_the_model_leaves_the_pages_but_not_the_submission(db):
    """The model page listed a failed job of a first submission beside the score a later one of the same model stored
    on that benchmark, as if the model still failed there."""
    def jobs(version, benchmarks=("b1", "b2")):  # each submission's own weights: its own jobs
        return [{"model": "sub", "benchmark": b, "spec": {"benchmark": b, "weights": version}} for b in benchmarks]

    first = db.add_submission("sub", "/store/x", "0" * 64, {}, None, jobs(0))
    for _ in range(2):
        job = db.claim("w1")
        fail_claim(db, job, f"crashed on {job['benchmark']}")
    second = db.add_submission("sub", "/store/y", "1" * 64, {}, None, jobs(1, ["b1"]))
    job = db.claim("w1")
    assert finish_claim(db, job, record("sub", "b1"))
    assert [(j["benchmark"], j["submission_id"]) for j in db.failed_jobs()] == [("b2", first)]
    assert [(j["benchmark"], j["status"]) for j in db.submission(first)["jobs"]] == [("b1", FAILED), ("b2", FAILED)]
    assert db.submission(second)["status"] == DONE
    third = db.add_submission("sub", "/store/z", "2" * 64, {}, None, jobs(2, ["b1"]))
    job = db.claim("w1")
    fail_claim(db, job, "crashed again")  # a failure after the score is the model's state again
    assert [(j["benchmark"], j["submission_id"]) for j in db.failed_jobs()] == [("b2", first), ("b1", third)]


def test_a_submission_whose_job_is_given_up_shows_failed(db):
    """A job whose worker died every attempt was marked failed, but its submission had stayed 'running'."""
    sid = db.add_submission("sub", "/store/x", "0" * 64, {}, None,
                            [{"model": "sub", "benchmark": "b", "spec": {"benchmark": "b"}}])
    for _ in range(3):
        assert db.claim("dead", lease_s=-1, max_attempts=3) is not None  # its worker dies: the lease runs out
    assert db.claim("w", lease_s=60, max_attempts=3) is None
    row = db.submission(sid)
    assert row["jobs"][0]["status"] == FAILED and "gave up after 3 attempts" in row["jobs"][0]["error"]
    assert row["status"] == FAILED


def test_an_interrupted_worker_hands_its_job_back(db):
    """Ctrl-C (or SIGTERM) on `zoo work` had left its job 'running' with the attempt spent: three stops of a long
    job failed it with 'gave up after 3 attempts (the worker died each time)'."""
    from neurozoo.leaderboard.scorer import work

    job_id = db.enqueue("m", "b", {})

    def interrupted(job):
        raise KeyboardInterrupt

    for _ in range(3):
        with pytest.raises(KeyboardInterrupt):
            work(db, interrupted, progress=False)
        job = db.job(job_id)
        assert (job["status"], job["attempts"], job["worker"], job["lease_until"]) == (QUEUED, 0, None, None)
    assert work(db, lambda job: (record(), None), progress=False) == {"done": 1, "failed": 0}


def test_an_interrupted_worker_closes_its_progress_bar_before_the_stop_is_reported(db, monkeypatch):
    """`zoo run` stopped by SIGTERM printed `zoo run: interrupted; ...` on the progress bar's line, glued after
    `... bncnn on retina_embedded.naturalscene-heldout]`, and the bar was drawn again below it: the bar was closed only
    when the stopped loop's frame was collected, after the command had reported the stop. (The bar is drawn on a
    terminal only.)"""
    import io
    import sys

    from neurozoo.leaderboard.scorer import work

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    db.enqueue("m", "b", {})
    monkeypatch.setattr(sys, "stderr", Terminal())

    def interrupted(job):
        raise KeyboardInterrupt

    try:
        work(db, interrupted, progress=True)
    except KeyboardInterrupt:  # where zoo run and zoo work report the stop (the stopped loop's frame still alive)
        err = sys.stderr.getvalue()
    else:
        pytest.fail("the stop did not reach the caller")
    assert "scoring:" in err and err.endswith("\n"), repr(err)


def test_the_job_bar_fits_what_a_job_says_to_the_terminals_width(db, monkeypatch):
    """On an 80-column terminal tqdm cut the bar's line at the right edge: `bncnn on retina_embedded.contrast-adaptation:
    fitting bncnn on embedded:whitenoise, epoch 3 of at most 40, ...` lost its epoch count, a ConvRNN job its batch. The
    postfix is fitted to the width now: the step kept whole, what is done cut next to it, the job's name in the room
    left (cut in its middle) or left out; the line saying why a fit is made is written whole above the bar."""
    import io
    import os
    import re
    import sys

    from neurozoo.datasets.activity import tell, tell_ended
    from neurozoo.leaderboard.scorer import work

    class Terminal(io.StringIO):
        def isatty(self):
            return True

        def fileno(self):  # measured by os.get_terminal_size, replaced below
            return 2

    columns = [80]
    monkeypatch.setattr(sys, "stderr", Terminal())
    monkeypatch.setattr(os, "get_terminal_size", lambda fd=None: os.terminal_size((columns[0], 24)))
    db.enqueue("bncnn", "retina_embedded.contrast-adaptation", {})
    db.enqueue("feedforward_intermediate", "ventral_embedded.V4-temporal", {})

    def score(job):
        if job["model"] == "bncnn":
            tell("fitting bncnn on embedded:whitenoise", begins=True, why="not cached yet; later runs reuse it")
            tell("epoch 3 of at most 40, 1.23 s each")
            tell_ended("bncnn fitted on embedded:whitenoise")
        else:
            tell("extracting activations", begins=True)
            tell("batch 3 of 10")
            columns[0] = 160  # the terminal widened: all of it shown again
            tell("batch 4 of 10")
        return record(job["model"], job["benchmark"]), None

    assert work(db, score) == {"done": 2, "failed": 0}
    lines = [line.rstrip() for line in re.split(r"[\r\n]", sys.stderr.getvalue()) if line.strip()]
    assert "fitting bncnn on embedded:whitenoise (not cached yet; later runs reuse it)" in lines
    drawn = [line for line in lines if "jobs [" in line]
    # tqdm's width: the terminal's, less a column
    assert all(len(line) <= (159 if "batch 4" in line else 79) for line in drawn) and "batch 4" in drawn[-1]
    assert all(re.fullmatch(r"scoring: +\d+%\|.{5,}\| \d/2 jobs \[\d\d:\d\d(, .*)?\]", line) for line in drawn), drawn
    shown = [re.search(r"jobs \[\d\d:\d\d(?:, (.*))?\]$", line).group(1) for line in drawn]
    assert [postfix for postfix in dict.fromkeys(shown) if postfix] == [
        "bncnn on retina_emb...ontrast-adaptation",  # 40 columns left by the bar: the job's name cut in its middle
        "fitting bncnn on embedded:whitenoise",  # the job's name left out: fewer than 12 columns left to it
        "epoch 3 of at most 40, 1.23 s each",  # the step whole; what is done left out
        "bncnn fitted on embedded:whi..., scoring",  # cut at its end, next to the step
        "feedforward_interme...bedded.V4-temporal",
        "feedfor...mporal: extracting activations",  # the job's name in the 16 columns left
        "extracting activations, batch 3 of 10",
        "feedforward_intermediate on ventral_embedded.V4-temporal: extracting activations, batch 4 of 10"]
    with pytest.raises(ValueError, match="begins=True"):  # why a step is done: said of none
        tell("epoch 4 of at most 40", why="resumed")


def test_a_sigterm_during_trusted_scoring_keeps_that_score_and_claims_no_other_job(db, monkeypatch):
    """SIGTERM (a service manager stopping `zoo work`) raised KeyboardInterrupt wherever the worker was: in trusted
    scoring it threw the job's finished work away, inside a database call it could cut the call mid-way. It is taken
    at safe points now: the score being computed is stored, and no other job is claimed."""
    import os
    import signal

    from neurozoo.datasets.termination import sigterm_deferred
    from neurozoo.leaderboard.scorer import work

    first, second = db.enqueue("m", "b1", {}), db.enqueue("m", "b2", {})
    claimed, claim = [], db.claim
    monkeypatch.setattr(db, "claim", lambda *a, **k: claimed.append(1) or claim(*a, **k))

    def scored_then_stopped(job):
        os.kill(os.getpid(), signal.SIGTERM)  # while this job's score is computed
        return record(), None

    with sigterm_deferred(), pytest.raises(KeyboardInterrupt, match="signal 15"):
        work(db, scored_then_stopped, progress=False)
    assert db.job(first)["status"] == DONE and len(claimed) == 1
    assert (db.job(second)["status"], db.job(second)["attempts"]) == (QUEUED, 0)


def test_a_submission_handed_back_or_requeued_says_queued(db):
    """After Ctrl-C on `zoo work` a submission whose jobs were all back in the queue said 'running', and one whose
    failed jobs were queued again (`--retry-failed`) said 'failed'."""
    from neurozoo.leaderboard.scorer import work

    sid = db.add_submission("sub", "/store/x", "0" * 64, {}, None,
                            [{"model": "sub", "benchmark": "b", "spec": {"benchmark": "b"}}])

    def interrupted(job):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        work(db, interrupted, progress=False)
    assert db.submission(sid)["status"] == QUEUED
    fail_claim(db, db.claim("w"), "crashed")
    assert db.submission(sid)["status"] == FAILED
    assert db.requeue_failed() == 1 and db.submission(sid)["status"] == QUEUED


def _queued(db, how) -> int:
    """A queued job's id: a zoo job's (no submission) for ``how`` "lease expired", a submission's for "withdrawn and
    restored"."""
    if how == "lease expired":
        return db.enqueue("m", "b", {})
    sid = db.add_submission("sub", "/store/x", "0" * 64, {}, None, [{"model": "sub", "benchmark": "b", "spec": {}}])
    return db.submission(sid)["jobs"][0]["id"]


def _claimed_again_under_the_same_name(db, job, how):
    """Supersede the claim ``job`` (worker "w") by another claim under the same worker name: a thread of the same
    process, whose default worker id (host:pid) is the same, took the job over once its lease expired, or the job's
    submission was withdrawn and restored and "w" claimed the queued job again. Returns the later claim."""
    from sqlalchemy import update
    from sqlalchemy.orm import Session

    from neurozoo.leaderboard.db import JobRow

    if how == "lease expired":
        with Session(db.engine) as session, session.begin():
            session.execute(update(JobRow).where(JobRow.id == job["id"]).values(lease_until=JobRow.created_at))
    else:
        assert db.withdraw_submission(job["submission_id"], "by mistake", "op") == 1
        assert db.restore_submission(job["submission_id"], "op") == 1
    later = db.claim("w", ids=[job["id"]])
    assert (later["id"], later["worker"], later["status"]) == (job["id"], "w", RUNNING)
    assert later["lease_token"] != job["lease_token"]
    return later


#: the calls that act for the job's holder, each made as worker "w" by the claim whose lease token is given
_HOLDER_CALLS = {
    "heartbeat": lambda db, job_id, token: db.heartbeat(job_id, "w", lease_token=token),
    "finish": lambda db, job_id, token: db.finish(job_id, "w", record(), lease_token=token),
    "fail": lambda db, job_id, token: db.fail(job_id, "w", "RuntimeError: boom", lease_token=token),
    "release": lambda db, job_id, token: db.release(job_id, "w", lease_token=token)}
_SUPERSEDED = ("lease expired", "withdrawn and restored")


@pytest.mark.parametrize("how", _SUPERSEDED)
@pytest.mark.parametrize("call", sorted(_HOLDER_CALLS))
def test_a_claim_superseded_under_the_same_worker_name_no_longer_acts_for_the_job(db, call, how):
    """heartbeat, finish, fail and release identified the job's holder by worker name alone: a run whose claim a
    later claim under the same name had superseded renewed, stored, failed or handed back the later run's job. Each
    now acts only for the claim whose lease token it names: the superseded one's call changes nothing, the later
    one's acts."""
    job = db.claim("w", ids=[_queued(db, how)])
    later = _claimed_again_under_the_same_name(db, job, how)
    assert not _HOLDER_CALLS[call](db, job["id"], job["lease_token"])
    assert db.job(job["id"]) == later and db.query().empty
    assert _HOLDER_CALLS[call](db, job["id"], later["lease_token"])
    after = db.job(job["id"])
    assert after["status"] == {"heartbeat": RUNNING, "finish": DONE, "fail": FAILED, "release": QUEUED}[call]
    assert after["lease_until"] > later["lease_until"] if call == "heartbeat" else after["lease_until"] is None


#: the same calls without a lease token, as callers written before the token made them
_NAMELESS_CALLS = {
    "heartbeat": lambda db, job_id: db.heartbeat(job_id, "w"),
    "finish": lambda db, job_id: db.finish(job_id, "w", record()),
    "fail": lambda db, job_id: db.fail(job_id, "w", "RuntimeError: boom"),
    "release": lambda db, job_id: db.release(job_id, "w")}


@pytest.mark.parametrize("call", sorted(_HOLDER_CALLS))
def test_a_call_for_a_claim_that_names_no_lease_token_is_refused(db, call):
    """heartbeat, finish, fail and release given no lease token (benchmarks/perf's scripts, most tests) acted by worker
    name alone, for whichever claim held the job under that name, a run superseded under it included. The token is
    now required: a call without one, or with None or '', is refused with an error naming it, the job left as it was.
    A job claimed by code older than the token (NULL) is acted for by no call: it comes back when its lease expires."""
    from sqlalchemy import update
    from sqlalchemy.orm import Session

    from neurozoo.leaderboard.db import JobRow

    job = db.claim("w", ids=[db.enqueue("m", "b", {})])
    with pytest.raises(TypeError, match="lease_token"):
        _NAMELESS_CALLS[call](db, job["id"])
    with pytest.raises(TypeError, match="lease_token: expected the claim's token, .*; got None"):
        _HOLDER_CALLS[call](db, job["id"], None)
    with pytest.raises(ValueError, match="lease_token: expected the claim's token"):
        _HOLDER_CALLS[call](db, job["id"], "")
    assert db.job(job["id"]) == job and db.query().empty
    with Session(db.engine) as session, session.begin():
        session.execute(update(JobRow).where(JobRow.id == job["id"]).values(lease_token=None))
    older = db.job(job["id"])
    assert not _HOLDER_CALLS[call](db, job["id"], job["lease_token"]) and db.job(job["id"]) == older


def test_a_heartbeat_that_names_no_lease_token_is_refused_before_its_thread_starts(db):
    """Its renewals' refusal (heartbeat's TypeError) in the thread passed as a transient database error: the lease
    aged unrenewed, unsaid."""
    from neurozoo.leaderboard.scorer import Heartbeat

    job = db.claim("w", ids=[db.enqueue("m", "b", {})])
    with pytest.raises(TypeError, match="lease_token"):
        Heartbeat(db, job["id"], "w", lease_s=60, check_s=None, lease_token=None)
    assert db.job(job["id"]) == job


@pytest.mark.parametrize("how", _SUPERSEDED)
@pytest.mark.parametrize("outcome", ["scored", "failed", "stopped"])
def test_a_worker_whose_claim_was_superseded_under_its_own_name_leaves_the_later_run_its_job(db, outcome, how,
                                                                                            capsys):
    """Two threads of one `zoo work` process share its worker name (host:pid), and a job withdrawn, restored and
    claimed again may be claimed by the same worker: the superseded run's score was stored over the later run's
    claim (a trusted zoo job: no sandbox for the Heartbeat to stop), its failure marked the job failed, and a Ctrl-C
    handed the job back to the queue while the later run scored it. The worker now names its claim's lease token:
    each is refused, the job stays the later run's, and a refused failure is not counted as one."""
    from neurozoo.leaderboard.scorer import work

    job, later = db.job(_queued(db, how)), {}

    def superseded(claimed):
        later.update(_claimed_again_under_the_same_name(db, claimed, how))
        if outcome == "failed":
            raise RuntimeError("boom")
        if outcome == "stopped":
            raise KeyboardInterrupt
        return record(job["model"]), None

    if outcome == "stopped":
        with pytest.raises(KeyboardInterrupt):
            work(db, superseded, progress=False, worker="w")
    else:
        assert work(db, superseded, progress=False, worker="w") == {"done": 0, "failed": 0}
    assert db.job(job["id"]) == later and db.query().empty  # running under the later claim, as it made it
    said = {"scored": "this worker's score was not stored",
            "failed": "this worker's failure was not recorded: RuntimeError: boom", "stopped": None}[outcome]
    if said is not None:
        why = ("its lease expired while it was scored" if how == "lease expired" else
               "its submission was withdrawn and restored while it was scored")
        assert capsys.readouterr().out == (f"job {job['id']} ({job['model']} on b): {why} and worker w took it over; "
                                           f"{said}\n")


@pytest.mark.parametrize("how", _SUPERSEDED)
def test_the_heartbeat_of_a_claim_superseded_under_the_same_worker_name_renews_nothing_and_cancels_its_run(db, how):
    """The superseded run's renewals, by worker name, succeeded: they rewrote the later run's lease with their own and
    never saw the run superseded (a zoo job's Heartbeat reads the job only at a refused renewal). Its first renewal
    is now refused: the run is cancelled, the later claim's lease left as it wrote it."""
    from neurozoo.leaderboard.scorer import Heartbeat

    job = db.claim("w", ids=[_queued(db, how)])
    later = _claimed_again_under_the_same_name(db, job, how)
    with Heartbeat(db, job["id"], "w", lease_s=0.3, check_s=None, lease_token=job["lease_token"]) as beat:
        assert beat.cancelled.wait(5), "the superseded run was not cancelled: its renewals were accepted"
    assert db.job(job["id"]) == later


def name_rows(db):
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from neurozoo.leaderboard.db import ModelNameRow

    with Session(db.engine) as session:
        return sorted(session.scalars(select(ModelNameRow.name)))


def claimed_skeletons(db):
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from neurozoo.leaderboard.db import ModelNameRow

    with Session(db.engine) as session:
        return dict(session.execute(select(ModelNameRow.name, ModelNameRow.claimed_skeleton)).all())


@pytest.mark.parametrize("names, refusal", [
    (("Foo", "foo"), "belongs to user {winner!r} (as {spelled!r}); choose another name"),
    (("shared-name", "shared_name"), "looks like {spelled!r}, which belongs to user {winner!r}; choose another name")],
    ids=["case", "look-alike"])
def test_two_spellings_of_a_name_submitted_at_the_same_instant_give_one_owner(db, monkeypatch, names, refusal):
    """'Foo' and 'foo' compared equal in Python only: on PostgreSQL two submissions at the same instant each checked
    before the other inserted, and both claimed the name. A unique index on lower(name) refuses the second insert,
    which is then refused as the check refuses it. So do look-alikes: a unique index on the claimed skeleton."""
    from neurozoo.leaderboard.submission import NameTaken

    claim = LeaderboardDB._claim_name
    monkeypatch.setattr(LeaderboardDB, "_claim_name", lambda *a, **k: (claim(*a, **k), time.sleep(0.3))[0])
    start, outcomes = threading.Barrier(2), {}

    def submit(user, name):
        start.wait()
        try:
            outcomes[user] = db.add_submission(name, f"/store/{user}", user[0] * 64, {}, user, [])
        except Exception as error:
            outcomes[user] = error

    spellings = dict(zip(("alice", "bob"), names))
    threads = [threading.Thread(target=submit, args=pair) for pair in spellings.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    [winner] = [user for user, outcome in outcomes.items() if isinstance(outcome, int)]
    [refused] = [outcome for outcome in outcomes.values() if not isinstance(outcome, int)]
    spelled = spellings[winner]
    assert isinstance(refused, NameTaken), outcomes
    assert refusal.format(winner=winner, spelled=spelled) in str(refused)
    assert name_rows(db) == [spelled] and [s["user"] for s in db.submissions()] == [winner]


def test_the_lower_name_index_refuses_a_spelling_the_check_missed(db, monkeypatch):
    """What the race looks like on any database: the check saw no owner. The insert's IntegrityError becomes the
    check's NameTaken; the owner's own new spelling is stored (no second name row)."""
    from neurozoo.leaderboard.submission import NameTaken

    first = db.add_submission("Foo", "/store/a", "a" * 64, {}, "alice", [])
    check, missed = LeaderboardDB._check_name, []

    def misses_once(self, *args):
        if not missed:
            missed.append(1)
            return []
        return check(self, *args)

    monkeypatch.setattr(LeaderboardDB, "_check_name", misses_once)
    with pytest.raises(NameTaken, match=r"name 'foo' belongs to user 'alice' \(as 'Foo'\); choose another name"):
        db.add_submission("foo", "/store/b", "b" * 64, {}, "bob", [])
    missed.clear()
    again = db.add_submission("FOO", "/store/a2", "c" * 64, {}, "alice", [])  # the owner, the check missed too
    assert [(s["id"], s["user"]) for s in db.submissions()] == [(first, "alice"), (again, "alice")]
    assert name_rows(db) == ["Foo"]


def test_the_skeleton_index_refuses_a_look_alike_the_check_missed(db, monkeypatch):
    """The look-alike check was a scan of every other owner's name, and two look-alikes submitted at the same instant
    both passed it. Each skeleton is now claimed by one row under a unique index: where the check misses (the race),
    the insert fails and the retry refuses as the check does. The owner's own look-alike claims nothing."""
    from sqlalchemy.exc import IntegrityError
    from sqlalchemy.orm import Session

    from neurozoo.leaderboard.db import ModelNameRow, now
    from neurozoo.leaderboard.submission import NameTaken

    db.add_submission("shared-name", "/store/a", "a" * 64, {}, "alice", [])
    refuse, missed = LeaderboardDB._refuse_lookalike, []

    def misses_once(self, *args):
        if not missed:
            missed.append(1)
            return None
        return refuse(self, *args)

    monkeypatch.setattr(LeaderboardDB, "_refuse_lookalike", misses_once)
    with pytest.raises(NameTaken, match=r"name 'shared_name' looks like 'shared-name', which belongs to user "
                                        r"'alice'; choose another name"):
        db.add_submission("shared_name", "/store/b", "b" * 64, {}, "bob", [])
    assert missed == [1]  # the first try passed the check; the index refused its insert
    db.add_submission("5hared.name", "/store/a2", "c" * 64, {}, "alice", [])
    assert claimed_skeletons(db) == {"shared-name": "sharedname", "5hared.name": None}
    with Session(db.engine) as session:  # the database itself, no check at all
        session.add(ModelNameRow(name="SHARED-NARNE", user_id=None, created_at=now(), claimed_skeleton="sharedname"))
        with pytest.raises(IntegrityError):
            session.commit()
    assert [s["user"] for s in db.submissions()] == ["alice", "alice"]


def test_an_older_database_gets_its_skeletons_claimed_and_a_warning_naming_look_alikes_of_two_owners(db):
    """A database made before the skeleton column gets it when opened, each skeleton claimed by its earliest name.
    Look-alikes of two owners stored before (they cannot be refused now) stay their owners', a warning names them
    once, and a new look-alike goes to the earliest name's owner only."""
    from neurozoo.leaderboard.db import now
    from neurozoo.leaderboard.submission import NameTaken

    db.add_submission("shared-name", "/store/a", "a" * 64, {}, "alice", [])
    db.add_submission("shared_name", "/store/a2", "b" * 64, {}, "alice", [])
    db.add_submission("other", "/store/o", "c" * 64, {}, None, [])
    db.create_token("bob")
    with db.engine.begin() as connection:
        connection.execute(text("DROP INDEX uq_model_names_skeleton"))
        connection.execute(text("ALTER TABLE lb_model_names DROP COLUMN claimed_skeleton"))
        connection.execute(text("INSERT INTO lb_model_names (name, user_id, created_at) SELECT 'sharedname', id, :t "
                                "FROM lb_users WHERE name = 'bob'"), {"t": now()})
    with pytest.warns(UserWarning, match=r"look-alike names of different owners: 'shared-name' \(user 'alice'\) and "
                                         r"'shared_name' \(user 'alice'\) and 'sharedname' \(user 'bob'\); each owner "
                                         r"keeps their names, and a new look-alike goes to the first one's owner only"):
        reopened = LeaderboardDB(db.url)
    assert claimed_skeletons(reopened) == {"shared-name": "sharedname", "shared_name": None, "sharedname": None,
                                           "other": "other"}
    reopened.add_submission("sharedname", "/store/b", "d" * 64, {}, "bob", [])  # his name still
    with pytest.raises(NameTaken, match=r"name 'shared.name' looks like 'shared-name', which belongs to user 'alice'"):
        reopened.add_submission("shared.name", "/store/b2", "e" * 64, {}, "bob", [])
    reopened.add_submission("shared.name", "/store/a3", "f" * 64, {}, "alice", [])
    with pytest.raises(NameTaken, match=r"name '0ther' looks like 'other', which belongs to the operator"):
        reopened.add_submission("0ther", "/store/c", "0" * 64, {}, "carol", [])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LeaderboardDB(db.url).dispose()  # opened again: filled in once, nothing to warn of
    reopened.dispose()


def test_an_upgrade_killed_after_adding_the_skeleton_column_is_finished_at_the_next_opening(db):
    """The column is added, then filled in, then indexed: a process killed between the first two left a column of
    NULLs, which the next opening (seeing the column) did not fill in, so the names it held claimed no skeleton and
    their look-alikes passed. The index is made last, so its absence says the upgrade is still to do."""
    from neurozoo.leaderboard.db import ModelNameRow
    from neurozoo.leaderboard.submission import NameTaken

    db.add_submission("shared-name", "/store/a", "a" * 64, {}, "alice", [])
    with db.engine.begin() as connection:  # what the killed upgrade left: the column, empty, and no index
        connection.execute(text("DROP INDEX uq_model_names_skeleton"))
        connection.execute(text("UPDATE lb_model_names SET claimed_skeleton = NULL"))
    reopened = LeaderboardDB(db.url)
    assert claimed_skeletons(reopened) == {"shared-name": "sharedname"}
    with pytest.raises(NameTaken, match=r"name 'shared_name' looks like 'shared-name', which belongs to user 'alice'"):
        reopened.add_submission("shared_name", "/store/b", "b" * 64, {}, "bob", [])
    assert reopened._has_index(ModelNameRow, "uq_model_names_skeleton")
    reopened.dispose()


def test_an_older_database_gets_the_name_index_or_a_warning_naming_the_clashing_names(db):
    """A database made before the index gets it when opened; one whose names already clash in case (stored before
    names compared case-insensitively) cannot: a warning names them, and the check still refuses a new spelling."""
    from sqlalchemy import inspect
    from sqlalchemy.orm import Session

    from neurozoo.leaderboard.db import ModelNameRow, now
    from neurozoo.leaderboard.submission import NameTaken

    def indexes(store):  # SQLAlchemy does not reflect SQLite's expression indexes
        if store.engine.dialect.name != "sqlite":
            return [i["name"] for i in inspect(store.engine).get_indexes("lb_model_names")]
        with store.engine.connect() as connection:
            return list(connection.scalars(text("SELECT name FROM sqlite_master WHERE type = 'index' "
                                                "AND tbl_name = 'lb_model_names'")))

    db.add_submission("Foo", "/store/a", "a" * 64, {}, "alice", [])
    with db.engine.begin() as connection:
        connection.execute(text("DROP INDEX uq_model_names_lower"))
    assert "uq_model_names_lower" not in indexes(db)
    reopened = LeaderboardDB(db.url)
    assert "uq_model_names_lower" in indexes(reopened)
    reopened.dispose()
    with db.engine.begin() as connection:
        connection.execute(text("DROP INDEX uq_model_names_lower"))
    db.create_token("bob")
    with Session(db.engine) as session, session.begin():
        session.add(ModelNameRow(name="FOO", user_id=db._user_id(session, "bob"), created_at=now()))
    with pytest.warns(UserWarning, match=r"model names that differ only in case: 'Foo' \(user 'alice'\) and 'FOO' "
                                         r"\(user 'bob'\); the unique index uq_model_names_lower cannot be added"):
        reopened = LeaderboardDB(db.url)
    assert "uq_model_names_lower" not in indexes(reopened)
    with pytest.raises(NameTaken, match="name 'foo' belongs to user"):
        reopened.add_submission("foo", "/store/c", "c" * 64, {}, "carol", [])
    reopened.dispose()


def test_an_older_database_gets_the_public_reason_column_and_keeps_its_failed_jobs(db):
    """lb_jobs.public_reason (what the public pages show of a failure) came after the table: create_all adds no
    column to an existing table, so an older database failed every query of lb_jobs until the column is added."""
    from sqlalchemy import inspect

    job = db.enqueue("m", "b", {"k": 1})
    fail_claim(db, db.claim("w", ids=[job]), "ScoringError: whole\nconsole", public="whole")
    with db.engine.begin() as connection:
        connection.execute(text("ALTER TABLE lb_jobs DROP COLUMN public_reason"))
    assert "public_reason" not in {c["name"] for c in inspect(db.engine).get_columns("lb_jobs")}
    reopened = LeaderboardDB(db.url)
    [row] = reopened.failed_jobs()
    assert row["error"] == "ScoringError: whole\nconsole" and row["public_reason"] is None  # shown as not kept
    job = reopened.enqueue("m", "b2", {"k": 2})
    fail_claim(reopened, reopened.claim("w", ids=[job]), "ScoringError: again\nconsole", public="again")
    assert [j["public_reason"] for j in reopened.failed_jobs()] == [None, "again"]
    LeaderboardDB(db.url).dispose()  # opened again: the column is there, nothing to add
    reopened.dispose()


def test_an_older_database_gets_the_sha256_format_column_and_its_rows_compare_in_format_1(db, tmp_path):
    """lb_submissions.sha256_format (the format of a submission's tree digest, submission.tree_sha256) came after the
    table: an older database gets it when opened, NULL on its rows (format 1, which they hold). A submission of the
    same files is refused as identical to such a row by its format-1 digest, to a new row by its format-2 one."""
    from sqlalchemy import inspect

    from neurozoo.leaderboard.submission import (LEGACY_TREE_FORMAT, TREE_FORMAT, AlreadySubmitted, tree_format,
                                                 tree_sha256)

    folder = tmp_path / "sub"
    folder.mkdir()
    (folder / "model.py").write_text("def create_model(weights):\n    pass\n")
    legacy, current = tree_sha256(folder, LEGACY_TREE_FORMAT), tree_sha256(folder)
    old = db.add_submission("sub", str(folder), legacy, {}, None, [])
    with db.engine.begin() as connection:
        connection.execute(text("ALTER TABLE lb_submissions DROP COLUMN sha256_format"))
    assert "sha256_format" not in {c["name"] for c in inspect(db.engine).get_columns("lb_submissions")}
    reopened = LeaderboardDB(db.url)
    try:
        row = reopened.submission(old)
        assert (row["sha256"], row["sha256_format"], tree_format(row)) == (legacy, None, LEGACY_TREE_FORMAT)
        with pytest.raises(AlreadySubmitted, match=rf"identical to submission {old} \(sub, sha256 {legacy[:12]}"):
            reopened.add_submission("sub", "/store/again", current, {}, None, [], legacy_sha256=legacy)
        (folder / "weights.pt").write_bytes(b"0")  # other files: a new submission, in format 2
        changed = reopened.add_submission("sub", "/store/new", tree_sha256(folder), {}, None, [],
                                          legacy_sha256=tree_sha256(folder, LEGACY_TREE_FORMAT))
        assert reopened.submission(changed)["sha256_format"] == TREE_FORMAT
        with pytest.raises(AlreadySubmitted, match=rf"identical to submission {changed} "):
            reopened.add_submission("sub", "/store/twice", tree_sha256(folder), {}, None, [],
                                    legacy_sha256=tree_sha256(folder, LEGACY_TREE_FORMAT))
        # a format-2 row is compared in format 2 only: a format-1 digest equal to its sha256 is not its files
        third = reopened.add_submission("sub", "/store/third", "e" * 64, {}, None, [],
                                        legacy_sha256=reopened.submission(changed)["sha256"])
        assert third > changed and reopened.submission(third)["sha256_format"] == TREE_FORMAT
    finally:
        reopened.dispose()


def test_an_older_database_gets_the_lease_token_column_and_its_running_jobs_are_claimed_with_one(db):
    """lb_jobs.lease_token (the claim a worker runs a job by: scorer.Heartbeat) came after the table: an older
    database gets it when opened; its jobs read None until claimed, and each claim gets a new token."""
    from sqlalchemy import inspect

    job = db.enqueue("m", "b", {})
    with db.engine.begin() as connection:
        connection.execute(text("ALTER TABLE lb_jobs DROP COLUMN lease_token"))
    assert "lease_token" not in {c["name"] for c in inspect(db.engine).get_columns("lb_jobs")}
    reopened = LeaderboardDB(db.url)
    try:
        assert reopened.job(job)["lease_token"] is None
        first = reopened.claim("w", lease_s=-1)
        second = reopened.claim("w", lease_s=60)  # the same worker name, its lease expired: another run
        assert first["id"] == second["id"] == job and len({first["lease_token"], second["lease_token"]}) == 2
        assert reopened.job_holder(job) == (RUNNING, "w", second["lease_token"])
        assert reopened.job_holder(job + 1) is None
    finally:
        reopened.dispose()


def test_a_worker_scores_a_job_left_running_by_a_worker_killed_on_its_host_before_it_stops(db):
    """Three `zoo work` on one PostgreSQL queue, one SIGKILLed mid-job: the other two drained the queue and exited
    saying "done 5, failed 0", leaving the killed worker's job 'running' (its lease 60 s away) until a worker was
    started again. A worker now hands back such a job (its worker's process on this host is gone) before it stops."""
    import subprocess
    import sys

    from neurozoo.datasets.cache import worker_name
    from neurozoo.leaderboard.scorer import work

    gone = subprocess.Popen([sys.executable, "-c", ""])
    gone.wait()
    orphan, other = db.enqueue("m", "b1", {}), db.enqueue("m", "b2", {})
    assert db.claim(worker_name(gone.pid), lease_s=3600, ids=[orphan])["id"] == orphan
    assert work(db, lambda job: (record(benchmark=job["benchmark"]), None), progress=False) == {"done": 2, "failed": 0}
    assert [(j["id"], j["status"], j["attempts"]) for j in db.jobs()] == [(orphan, DONE, 2), (other, DONE, 1)]
    assert sorted(db.query()["benchmark"]) == ["b1", "b2"]  # each scored once


def test_a_dead_workers_job_claimed_again_before_its_lease_is_expired_keeps_the_new_claim(db, monkeypatch):
    """release_dead_workers read the running jobs, then expired the lease of each whose worker's process on this host
    was gone, by worker name: a job claimed again in between under the same name (the dead worker's pid reused by a
    new worker: host:pid again) had its new claim's lease expired, and another worker took over a job being scored.
    The expiry is now a compare-and-set on the claim read (its lease token and lease): the new claim keeps the job.
    Forced: the new claim is made between the read and the expiry, where the dead worker's process is looked for."""
    from sqlalchemy import update
    from sqlalchemy.orm import Session

    from neurozoo.datasets import cache
    from neurozoo.leaderboard import scorer
    from neurozoo.leaderboard.db import JobRow

    name = cache.worker_name(4194000)
    job = db.claim(name, lease_s=-1, ids=[db.enqueue("m", "b", {})])  # its worker died, its lease ran out
    later = {}

    def gone_and_its_pid_reused(pid):
        assert pid == 4194000 and not later
        later.update(db.claim(name, lease_s=3600, ids=[job["id"]]))
        return False

    monkeypatch.setattr(cache, "process_alive", gone_and_its_pid_reused)  # what dead_on_this_host asks
    assert scorer.release_dead_workers(db) == []
    assert db.job(job["id"]) == later and later["lease_token"] != job["lease_token"]
    assert db.claim("other") is None  # the new claim's lease holds

    monkeypatch.setattr(cache, "process_alive", lambda pid: False)  # that worker dies too; it was older code's
    with Session(db.engine) as session, session.begin():              # claim (no token): expired by its lease
        session.execute(update(JobRow).where(JobRow.id == job["id"]).values(lease_token=None))
    assert scorer.release_dead_workers(db) == [job["id"]]
    taken = db.claim("other")
    assert (taken["id"], taken["worker"], taken["attempts"]) == (job["id"], "other", 3)


def test_a_score_of_an_older_benchmark_version_is_never_ranked_beside_current_ones(db, tmp_path):
    """After the contrast-adaptation index's version 2, `zoo run --models ln` scored ln again under version 2 and the
    board ranked it beside glm's version-1 score, both shown as current. An outdated score is now left off the ranking
    and listed, with why, on the page and in zoo run's output, until scored again."""
    from neurozoo.datasets.synthetic_retina import VERSION as RECORDING_VERSION
    from neurozoo.leaderboard.render import write_report
    from neurozoo.leaderboard.run import format_ranking
    from neurozoo.leaderboard.views import board
    from neurozoo.leaderboard.zoo import benchmark_version
    from neurozoo.retina.fit import FIT_PROTOCOL

    bench = "retina_embedded.contrast-adaptation"
    now = benchmark_version(bench)["benchmark_version"]  # index version + score version - 1 (phenomena.registered_version)
    before = f"scored under version {now - 1}"

    def scored(model, value, **changes):
        spec = {"family": "retina", "model": model, "benchmark": bench, "benchmark_version": now,
                "fit_protocol": FIT_PROTOCOL, "recording_version": RECORDING_VERSION, **changes}
        job_id = db.enqueue(model, bench, spec)
        assert finish_claim(db, db.claim("w", ids=[job_id]), record(model, bench, value))
        return job_id

    old_glm, ln = scored("glm", 0.9, benchmark_version=now - 1), scored("ln", 0.2)
    old_bncnn = scored("bncnn", 0.7, fit_protocol=FIT_PROTOCOL - 1)
    assert [(r.model, r.value) for r in db.leaderboard_records()] == [("ln", 0.2)]
    context = board(db)
    assert [row["model"] for row in context["rows"]] == ["ln"]
    assert [(o["model"], o["job"], o["reason"]) for o in context["outdated"]] == [
        ("bncnn", old_bncnn, f"fitted under fitting protocol {FIT_PROTOCOL - 1}; the current fitting protocol is "
                             f"{FIT_PROTOCOL}"),
        ("glm", old_glm, f"{before} of {bench}; the benchmark is now version {now}")]
    printed = format_ranking(db)
    assert f"not ranked: glm on {bench} (job {old_glm}): {before}" in printed
    assert "0.900" not in printed and "0.200" in printed
    page = write_report(db, tmp_path / "report").read_text()
    assert 'id="outdated-scores"' in page and f"{before} of" in page
    from fastapi.testclient import TestClient

    from neurozoo.leaderboard.web import create_app

    with TestClient(create_app(db=db, submissions_dir=tmp_path / "subs")) as client:
        assert f"{before} of" in client.get("/").text
        glm = client.get("/models/glm")  # its only score outdated: its page says why (it was a 404 "No scores")
        assert glm.status_code == 200 and f"{before} of" in glm.text
        assert "No current scores: its scores are outdated (below)." in glm.text and 'id="scores"' not in glm.text
        assert "0.900" not in glm.text and before not in client.get("/models/ln").text

    new_glm = scored("glm", 0.3, benchmark_version=now, model_name_note="rescored")  # scored again: ranked, not listed
    assert sorted((r.model, r.value) for r in db.leaderboard_records()) == [("glm", 0.3), ("ln", 0.2)]
    assert [o["model"] for o in db.outdated_jobs()] == ["bncnn"] and new_glm != old_glm


def test_a_submission_scored_under_an_older_benchmark_version_is_scored_again_by_rescore_outdated(db, monkeypatch):
    """A submission's jobs are queued once, at submission: after its benchmark's new version its score would stay
    outdated for good (the owner cannot submit the same files again). `zoo work --rescore-outdated` queues them again
    under the current version, in the same submission."""
    from neurozoo import benchmarks
    from neurozoo.leaderboard.submission import submission_specs
    from neurozoo.leaderboard.zoo import outdated_reason

    bench = "ventral_embedded.V4-temporal"
    prepared = {"meta": {"name": "sub", "benchmarks": [bench], "layers": {"V4": "conv1"}}, "folder": "/f",
                "sha256": "a" * 64, "sha256_format": 2}
    sid = db.add_submission("sub", "/f", "a" * 64, prepared["meta"], None, submission_specs(prepared))
    [old] = db.jobs()
    assert "benchmark_version" not in old["spec"]  # the benchmark is unversioned (version 1)
    assert (job := db.claim("w"))["id"] == old["id"] and finish_claim(db, job, record("sub", bench, 0.4))
    assert db.rescore_outdated() == [] and [r.model for r in db.leaderboard_records()] == ["sub"]

    monkeypatch.setitem(benchmarks.BENCHMARKS.get(bench).tags, "version", 2)  # the benchmark's measure changed
    assert db.leaderboard_records() == [] and [o["id"] for o in db.outdated_jobs()] == [old["id"]]
    [new_id] = db.rescore_outdated()
    new = db.job(new_id)
    assert (new["status"], new["submission_id"], new["spec"]["benchmark_version"]) == (QUEUED, sid, 2)
    assert outdated_reason(new["spec"]) is None and db.rescore_outdated() == [new_id]  # queued once
    assert (job := db.claim("w"))["id"] == new_id and finish_claim(db, job, record("sub", bench, 0.3))
    assert [(r.model, r.value) for r in db.leaderboard_records()] == [("sub", 0.3)] and db.outdated_jobs() == []
    assert db.submission(sid)["status"] == DONE
    assert [(j["id"], j["outdated"]) for j in db.submission(sid)["jobs"]] == [  # zoo submission ID says which is ranked
        (old["id"], f"scored under version 1 of {bench}; the benchmark is now version 2"), (new_id, None)]
    # a submission made under version 2 records it: it is current, not outdated at once
    assert submission_specs(prepared)[0]["spec"]["benchmark_version"] == 2


def test_a_database_restored_without_its_secret_key_ranks_no_score_of_the_old_split(db, monkeypatch, tmp_path):
    """The database restored into a new $NEUROZOO_HOME without its secret.key: scores of the old host's hidden split
    were ranked beside those scored on the new host's split, which draws other stimuli (scores up to 0.13 apart)."""
    from neurozoo.leaderboard.zoo import outdated_reason, split_spec

    monkeypatch.setenv("NEUROZOO_HOME", str(tmp_path / "old-home"))
    old_split = split_spec()
    bench = "ventral_embedded.V4-temporal"
    sid = db.add_submission("sub", "/f", "a" * 64, {"name": "sub"}, None, [
        {"model": "sub", "benchmark": bench, "spec": {"family": "submission", "benchmark": bench, "split": old_split}}])
    [old] = db.jobs()
    assert (job := db.claim("w"))["id"] == old["id"]
    assert finish_claim(db, job, record("sub", bench, 0.45), hidden=record("sub", bench, 0.4))
    unsplit = db.enqueue("m", bench, {"family": "convrnn", "benchmark": bench, "split": old_split})
    assert (job := db.claim("w"))["id"] == unsplit and finish_claim(db, job, record("m", bench, 0.2))  # no hidden half
    assert sorted(r.value for r in db.leaderboard_records()) == [0.2, 0.4]

    monkeypatch.setenv("NEUROZOO_HOME", str(tmp_path / "restored-home"))  # a new secret.key is made there
    new_key = split_spec()["key"]
    assert [r.value for r in db.leaderboard_records()] == [0.2]  # a score the secret drew no split for stays
    [outdated] = db.outdated_jobs()
    assert outdated["reason"] == (f"its hidden split was drawn with another secret key (split key {old_split['key']}, "
                                  f"this host's {new_key}): restore the $NEUROZOO_HOME/secret.key that scored it, or "
                                  "score it again")
    [new_id] = db.rescore_outdated()
    assert db.job(new_id)["spec"]["split"]["key"] == new_key and outdated_reason(db.job(new_id)["spec"]) is None
    assert db.job(new_id)["submission_id"] == sid

    monkeypatch.setenv("NEUROZOO_HOME", str(tmp_path / "old-home"))  # the secret restored: ranked again
    assert sorted(r.value for r in db.leaderboard_records()) == [0.2, 0.4]


def test_a_score_is_stored_after_the_database_server_dropped_the_workers_connections(db):
    """PostgreSQL restarted (or an idle-connection limit closed the pool's connections) while a job was scored:
    finish() raised "server closed the connection unexpectedly", zoo work died and the computed score was lost. The
    pool now checks a connection before use and replaces a dead one."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("a server that drops connections: PostgreSQL")
    from sqlalchemy import create_engine

    job_id = db.enqueue("m", "b", {})
    job = db.claim("w", ids=[job_id])
    pooled = [db.engine.connect() for _ in range(db.engine.pool.checkedin())]  # every connection the pool holds
    pids = [connection.execute(text("select pg_backend_pid()")).scalar() for connection in pooled]
    for connection in pooled:
        connection.close()
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as connection:  # this test's own connections only
        assert all(connection.execute(text("select pg_terminate_backend(:pid)"), {"pid": pid}).scalar() for pid in pids)
    admin.dispose()
    assert finish_claim(db, job, record()) and db.job(job_id)["status"] == DONE


def _scored_then_outdated(db, monkeypatch) -> tuple:
    """A submission's one job, scored on ventral_embedded.V4-temporal, then outdated by the benchmark's new version:
    (submission id, the job)."""
    from neurozoo import benchmarks

    bench = "ventral_embedded.V4-temporal"
    sid = db.add_submission("sub", "/f", "a" * 64, {"name": "sub"}, None,
                            [{"model": "sub", "benchmark": bench, "spec": {"family": "submission", "benchmark": bench}}])
    [old] = db.jobs()
    assert (job := db.claim("w"))["id"] == old["id"] and finish_claim(db, job, record("sub", bench, 0.4))
    monkeypatch.setitem(benchmarks.BENCHMARKS.get(bench).tags, "version", 2)
    return sid, old


def test_two_workers_rescoring_outdated_jobs_at_once_queue_each_once(db, monkeypatch):
    """Workers started together with --rescore-outdated: on PostgreSQL another one's job could be inserted between
    this one's check and insert, and the unique key's IntegrityError ended `zoo work`."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite takes the write lock before the check (BEGIN IMMEDIATE): no such race")
    from neurozoo.leaderboard.db import JobRow, now
    from neurozoo.leaderboard.zoo import current_spec
    from sqlalchemy.orm import Session

    sid, old = _scored_then_outdated(db, monkeypatch)
    other, enqueue, raced = LeaderboardDB(db.url), db._enqueue, []

    def racing(session, model, benchmark, spec, submission_id=None):
        if raced:
            return enqueue(session, model, benchmark, spec, submission_id)
        with Session(other.engine) as other_session, other_session.begin():  # the other worker's, after this check
            raced.append(other._enqueue(other_session, model, benchmark, spec, submission_id))
        session.add(JobRow(model=model, benchmark=benchmark, settings_sha256=settings_sha256(spec), spec=spec,
                           submission_id=submission_id, status=QUEUED, attempts=0, created_at=now(), updated_at=now()))
        session.flush()

    monkeypatch.setattr(db, "_enqueue", racing)
    try:
        assert db.rescore_outdated() == raced
    finally:
        other.dispose()
    assert [(j["id"], j["status"]) for j in db.jobs()] == [(old["id"], DONE), (raced[0], QUEUED)]
    assert db.job(raced[0])["spec"] == current_spec(old["spec"]) and db.job(raced[0])["submission_id"] == sid


def test_a_worker_whose_lease_was_taken_over_says_so_and_does_not_count_a_failure(db, capsys):
    """A worker stalled past its lease (a paused VM, a database out of reach for its heartbeats) finished a job that
    another worker had claimed meanwhile: its score was refused, as it must be, but it counted the job as failed,
    printed "failed 1" and exited 1 while no job had failed."""
    from neurozoo.leaderboard.db import JobRow
    from neurozoo.leaderboard.scorer import work
    from sqlalchemy import update
    from sqlalchemy.orm import Session

    job_id = db.enqueue("m", "b", {})

    def stalled(job):
        with Session(db.engine) as session, session.begin():  # the lease ran out while it scored
            session.execute(update(JobRow).where(JobRow.id == job_id).values(lease_until=JobRow.created_at))
        assert db.claim("other", lease_s=60)["id"] == job_id
        return record(), None

    assert work(db, stalled, progress=False, worker="stalled") == {"done": 0, "failed": 0}
    assert capsys.readouterr().out == (f"job {job_id} (m on b): its lease expired while it was scored and worker "
                                       "other took it over; this worker's score was not stored\n")
    assert (db.job(job_id)["status"], db.job(job_id)["worker"]) == (RUNNING, "other")


@pytest.mark.parametrize("failures, stored", [(3, True), (9, False)])
def test_a_worker_tries_storing_a_score_again_while_the_database_is_down(db, monkeypatch, capsys, failures, stored):
    """The database was still down when a score was ready: finish() raised, `zoo work` died and the computed score was
    lost until the lease expired and the job was scored again. The worker now tries again with backoff for
    ``store_retry_s`` seconds (saying so on stderr), then gives up and leaves the job to its lease."""
    from types import SimpleNamespace

    from sqlalchemy.exc import OperationalError

    from neurozoo.leaderboard import scorer

    job_id = db.enqueue("m", "b", {})
    finish, calls, waits = db.finish, [], []

    def down_then_up(*args, **kwargs):
        calls.append(1)
        if len(calls) <= failures:
            raise OperationalError("finish", {}, Exception("server closed the connection unexpectedly"))
        return finish(*args, **kwargs)

    clock = [0.0]

    def waited(seconds):  # passes at once, on the scorer's own clock
        waits.append(seconds)
        clock[0] += seconds

    monkeypatch.setattr(db, "finish", down_then_up)
    monkeypatch.setattr(scorer, "time", SimpleNamespace(perf_counter=time.perf_counter, monotonic=lambda: clock[0],
                                                        sleep=waited))
    if stored:
        counts = scorer.work(db, lambda job: (record(), None), progress=False, store_retry_s=60)
        assert counts == {"done": 1, "failed": 0}
        assert db.job(job_id)["status"] == DONE and list(db.query()["value"]) == [0.5]
    else:
        with pytest.raises(OperationalError):
            scorer.work(db, lambda job: (record(), None), progress=False, store_retry_s=60)
        assert db.job(job_id)["status"] == RUNNING and db.query().empty
    assert waits == ([1, 2, 4] if stored else [1, 2, 4, 8, 16, 16, 13])
    err = capsys.readouterr().err
    assert err.count("storing its score failed (") == len(waits) and "trying again in 2 s" in err
    assert ("giving up" in err) == (not stored)


@pytest.mark.parametrize("message, transient", [
    ("no such table: jobs", False), ("no such column: jobs.duration_s", False),
    ('column "duration_s" of relation "jobs" does not exist', False), ("database is locked", True),
    ("could not connect to server: Connection refused", True), ("deadlock detected", True),
    ("could not serialize access due to concurrent update", True),
    ('ProgrammingError: relation "scores" does not exist', False)])
def test_storing_a_score_is_tried_again_only_after_a_transient_database_error(db, monkeypatch, capsys, message,
                                                                             transient):
    """Any OperationalError was tried again until the lease ran out, a schema error ("no such table") too, which
    never passes: it now fails at once, saying why; locked/busy, lost connections and deadlocks are still retried.
    PostgreSQL raises its schema errors as ProgrammingError, which had passed up bare, without the message."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from neurozoo.leaderboard import scorer

    job = {"id": 7, "model": "m", "benchmark": "b", "lease_token": "t1"}
    calls, waits = [], []
    kind = ProgrammingError if message.startswith("ProgrammingError") else OperationalError

    def finish(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise kind("finish", {}, Exception(message))
        return True

    monkeypatch.setattr(db, "finish", finish)
    monkeypatch.setattr(scorer.time, "sleep", waits.append)
    if transient:
        assert scorer.store_with_retries(db, job, "w", record(), None, 60, print) is True
        assert (len(calls), waits) == (2, [1.0])
    else:
        with pytest.raises(kind):
            scorer.store_with_retries(db, job, "w", record(), None, 60, print)
        assert (len(calls), waits) == (1, [])
        assert "not a passing database error, so not tried again" in capsys.readouterr().out
    stale = OperationalError("finish", {}, Exception("no such table: jobs"), connection_invalidated=True)
    assert scorer.transient_db_error(stale)


def test_storing_a_score_waits_out_a_really_locked_sqlite_database(tmp_path, monkeypatch, capsys):
    """The classification above against SQLite's own error: a database another connection holds locked is transient,
    so the score is stored once the lock is released."""
    import sqlite3
    from types import SimpleNamespace

    from sqlalchemy import event

    from neurozoo.leaderboard import scorer

    db = LeaderboardDB(f"sqlite:///{tmp_path / 'lb.sqlite'}")
    try:
        event.listen(db.engine, "connect", lambda connection, _: connection.execute("PRAGMA busy_timeout=50"))
        db.engine.dispose()  # new connections wait 50 ms for a lock, not 30 s
        job_id = db.enqueue("m", "b", {})
        job = db.claim("w", lease_s=60)
        holder = sqlite3.connect(tmp_path / "lb.sqlite", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
        waits = []

        def released(seconds):  # the other writer commits during the scorer's first wait
            waits.append(seconds)
            holder.execute("COMMIT")

        monkeypatch.setattr(scorer, "time", SimpleNamespace(monotonic=time.monotonic, sleep=released))
        try:
            assert scorer.store_with_retries(db, job, "w", record(), None, 60, print) is True
        finally:
            holder.close()
        assert waits == [1.0] and db.job(job_id)["status"] == DONE and list(db.query()["value"]) == [0.5]
        assert "storing its score failed ((sqlite3.OperationalError) database is locked" in capsys.readouterr().out
    finally:
        db.dispose()


@pytest.mark.parametrize("broken", ["column", "table"])
def test_storing_a_score_fails_at_once_on_a_real_schema_error(db, monkeypatch, capsys, broken):
    """A database whose scores table lacks a column, or the table itself (SQLite's and PostgreSQL's own errors), is
    never tried again: the worker fails at once, saying why, and the job is left to its lease."""
    from types import SimpleNamespace

    from sqlalchemy.exc import OperationalError, ProgrammingError

    from neurozoo.leaderboard import scorer

    job_id = db.enqueue("m", "b", {})
    job = db.claim("w", lease_s=60)
    cascade = " CASCADE" if db.engine.dialect.name == "postgresql" else ""
    with db.engine.begin() as connection:
        connection.execute(text("ALTER TABLE scores DROP COLUMN duration_s" if broken == "column" else
                                f"DROP TABLE scores{cascade}"))
    waits = []  # the scorer's own waits (time.sleep itself is also called by the database driver's subprocesses)
    monkeypatch.setattr(scorer, "time", SimpleNamespace(monotonic=time.monotonic, sleep=waits.append))
    with pytest.raises((OperationalError, ProgrammingError)) as raised:
        scorer.store_with_retries(db, job, "w", record(), None, 60, print)
    assert not scorer.transient_db_error(raised.value) and waits == []
    out = capsys.readouterr().out
    assert "not a passing database error, so not tried again" in out and "duration_s" in out if broken == "column" \
        else "scores" in out
    assert db.job(job_id)["status"] == RUNNING


def test_a_withdrawn_submission_leaves_the_board_keeps_its_rows_and_name_and_can_be_restored(db):
    """Taking a submission off the board (a submitter's request, a licence problem, a cheating model) needed
    hand-edited SQL. withdraw_submission hides its scores and failures, cancels its queued and running jobs (a worker
    still scoring one has its score refused), records who, when and why, deletes nothing; restore undoes it."""
    from neurozoo.datasets.errors import UserFacingError
    from neurozoo.leaderboard.submission import NameTaken

    jobs = [{"model": "sub", "benchmark": b, "spec": {"benchmark": b}} for b in ("b1", "b2", "b3", "b4")]
    sid = db.add_submission("sub", "/store/x", "0" * 64, {"name": "sub"}, "alice", jobs)
    done, failed, running, queued = [j["id"] for j in db.submission(sid)["jobs"]]
    assert finish_claim(db, db.claim("w", ids=[done]), record("sub", "b1", 0.7))
    assert fail_claim(db, db.claim("w", ids=[failed]), "crashed", public="crashed")
    scoring = db.claim("w", ids=[running])
    version = db.board_version()
    assert [r.model for r in db.leaderboard_records()] == ["sub"] and len(db.failed_jobs()) == 1

    with pytest.raises(UserFacingError, match="--reason"):
        db.withdraw_submission(sid, " ", "op")
    assert db.withdraw_submission(sid, "licence does not allow redistribution", "op") == 2
    assert db.board_version() != version
    assert db.leaderboard_records() == [] and db.failed_jobs() == [] and db.submission_metadata() == {}
    assert not finish_claim(db, scoring, record("sub", "b3", 0.9))  # the worker that was scoring it
    assert db.claim("w") is None and db.requeue_failed() == 0
    row = db.submission(sid)
    assert row["status"] == "withdrawn" and row["withdrawn_at"] is not None
    assert [j["status"] for j in row["jobs"]] == [DONE, FAILED, "withdrawn", "withdrawn"]
    assert [(e["action"], e["by"], e["reason"]) for e in row["withdrawals"]] == [
        ("withdraw", "op", "licence does not allow redistribution")]
    assert list(db.query()["value"]) == [0.7]  # the score row is kept
    with pytest.raises(UserFacingError, match="already withdrawn"):
        db.withdraw_submission(sid, "again", "op")
    with pytest.raises(NameTaken, match="belongs to user 'alice'"):  # the name stays its user's
        db.add_submission("sub", "/store/y", "1" * 64, {}, "mallory", jobs[:1])

    assert db.restore_submission(sid, "op2", "licence fixed") == 2
    row = db.submission(sid)
    assert [j["status"] for j in row["jobs"]] == [DONE, FAILED, QUEUED, QUEUED] and row["status"] == RUNNING
    assert [(e["action"], e["by"]) for e in row["withdrawals"]] == [("withdraw", "op"), ("restore", "op2")]
    assert [(r.model, r.value) for r in db.leaderboard_records()] == [("sub", 0.7)] and len(db.failed_jobs()) == 1
    assert db.submission_metadata()["sub"]["submission"] == sid
    with pytest.raises(UserFacingError, match="is not withdrawn"):
        db.restore_submission(sid, "op", None)


def test_an_older_database_gets_the_withdrawal_columns(db):
    """lb_submissions.withdrawn_at and withdrawals came after the table: an older database gets them when opened."""
    from sqlalchemy import inspect

    sid = db.add_submission("sub", "/store/x", "0" * 64, {}, None, [{"model": "sub", "benchmark": "b", "spec": {}}])
    with db.engine.begin() as connection:
        for column in ("withdrawn_at", "withdrawals"):
            connection.execute(text(f"ALTER TABLE lb_submissions DROP COLUMN {column}"))
    assert "withdrawals" not in {c["name"] for c in inspect(db.engine).get_columns("lb_submissions")}
    reopened = LeaderboardDB(db.url)
    try:
        assert reopened.submission(sid)["withdrawals"] == [] and reopened.withdraw_submission(sid, "why", "op") == 1
        assert reopened.submission(sid)["status"] == "withdrawn"
    finally:
        reopened.dispose()


def test_a_worker_scoring_a_job_of_a_submission_withdrawn_meanwhile_stores_nothing_and_says_why(db, capsys):
    from neurozoo.leaderboard.scorer import work

    sid = db.add_submission("sub", "/store/x", "0" * 64, {}, None, [{"model": "sub", "benchmark": "b", "spec": {}}])

    def withdrawn_meanwhile(job):
        assert db.withdraw_submission(sid, "cheating", "op") == 1
        return record("sub"), None

    assert work(db, withdrawn_meanwhile, progress=False) == {"done": 0, "failed": 0}
    [job] = db.submission(sid)["jobs"]
    assert capsys.readouterr().out == (f"job {job['id']} (sub on b): its submission was withdrawn while it was scored; "
                                       "this worker's score was not stored\n")
    assert job["status"] == "withdrawn" and job["score_id"] is None and db.query().empty



def test_a_withdrawal_stops_the_sandbox_of_a_job_being_scored_within_seconds(db, tmp_path, capsys):
    """A withdrawn submission's running job ran its sandbox to the end (burning a worker) only to have its score
    refused; then it ran on until the worker's next lease renewal, a third of the lease (20 s at the default 60 s).
    The worker now reads its job's status every second apart from the renewal: the job's whole process tree (here
    the job and a process it started) is gone within 3 s of the withdrawal at the default lease, the job stays
    `withdrawn` (not failed, nothing stored), and the worker goes on to the next job."""
    import sys
    import threading

    from neurozoo.leaderboard import sandbox
    from neurozoo.leaderboard.scorer import work

    sid = db.add_submission("sub", "/store/x", "0" * 64, {"name": "sub"}, "alice",
                            [{"model": "sub", "benchmark": "b1", "spec": {"benchmark": "b1"}}])
    other = db.add_submission("next", "/store/y", "1" * 64, {"name": "next"}, "bob",
                              [{"model": "next", "benchmark": "b1", "spec": {"benchmark": "b1"}}])
    [job] = db.submission(sid)["jobs"]
    pids_file, gone = tmp_path / "pids", {}
    child = ("import os, subprocess, sys, time; c = subprocess.Popen([sys.executable, '-c', 'import time; "
             "time.sleep(60)']); open(sys.argv[1], 'w').write(f'{os.getpid()} {c.pid}'); time.sleep(60)")

    def withdraw_once_up():
        deadline = time.monotonic() + 30
        while not (pids_file.exists() and len(pids_file.read_text().split()) == 2) and time.monotonic() < deadline:
            time.sleep(0.02)
        pids = [int(p) for p in pids_file.read_text().split()]
        time.sleep(0.5)
        assert db.withdraw_submission(sid, "cheating model", "op") == 1
        withdrawn = time.monotonic()
        while any(alive(p) for p in pids) and time.monotonic() < withdrawn + 60:
            time.sleep(0.01)
        gone["s"] = time.monotonic() - withdrawn

    def score(job):
        if job["submission_id"] == other:
            return record("next", "b1", 0.4), None
        watcher = threading.Thread(target=withdraw_once_up, daemon=True)
        watcher.start()
        try:
            sandbox.run([sys.executable, "-c", child, str(pids_file)], sandbox=False, limits=sandbox.Limits(wall_s=120))
        finally:
            watcher.join(70)
        raise AssertionError("the sandbox ran to its end")

    assert work(db, score, lease_s=60.0, progress=False, worker="w") == {"done": 1, "failed": 0}
    assert gone["s"] < 3.0, f"the job's processes were gone {gone['s']:.1f} s after its withdrawal"
    assert db.job(job["id"])["status"] == "withdrawn" and db.job(job["id"])["error"] is None
    assert [r.model for r in db.leaderboard_records()] == ["next"]
    assert "its submission was withdrawn while it was scored; its sandbox was stopped" in capsys.readouterr().out


class _Queue:
    """The calls a Heartbeat makes of a LeaderboardDB, recorded; the job's holder is ``holder``."""

    def __init__(self, holder=(RUNNING, "w", "t1")):
        self.holder, self.calls, self.connections = holder, [], 0

    def heartbeat(self, job_id, worker, lease_s, lease_token=None):
        self.calls.append(("renew", time.monotonic()))
        return True

    def autocommit_connection(self):
        self.connections += 1
        return contextlib.closing(self)

    def close(self):
        pass

    def job_holder(self, job_id, connection=None):
        self.calls.append(("read", time.monotonic()))
        return self.holder


def test_the_status_check_runs_between_lease_renewals_and_leaves_them_as_they_were():
    """The withdrawal check is apart from the lease: renewals stay a third of the lease apart, the job's holder is
    read every check_s between them (not for a zoo job, which has no submission), on one connection, and a read that
    finds the job withdrawn sets the job's event and ends the thread."""
    from neurozoo.leaderboard.scorer import Heartbeat

    for check_s in (0.03, None):
        queue = _Queue()
        with Heartbeat(queue, 1, "w", lease_s=0.6, check_s=check_s, lease_token="t1") as beat:
            time.sleep(0.75)
        renewals = [t for kind, t in queue.calls if kind == "renew"]
        reads = [t for kind, t in queue.calls if kind == "read"]
        assert 2 <= len(renewals) <= 3 and all(b - a >= 0.2 - 0.01 for a, b in zip(renewals, renewals[1:]))
        assert not beat.cancelled.is_set()
        if check_s is None:
            assert reads == [] and queue.connections == 0
        else:
            assert all(any(a < t < b for t in reads) for a, b in zip(renewals, renewals[1:])), queue.calls
            assert len(reads) >= 2 and queue.connections == 1
    queue = _Queue(("withdrawn", None, "t1"))
    with Heartbeat(queue, 1, "w", lease_s=60, check_s=0.03, lease_token="t1") as beat:
        assert beat.cancelled.wait(5) and (beat._thread.join(5) or not beat._thread.is_alive())
        assert [kind for kind, _ in queue.calls] == ["read"]


@pytest.mark.parametrize("holder, superseded", [
    ((RUNNING, "w", "t1"), False),
    (("withdrawn", None, "t1"), True),
    ((QUEUED, None, "t1"), True),  # withdrawn and restored within a check: queued again
    ((RUNNING, "other", "t2"), True),  # ... and claimed by another worker, or taken over after the lease expired
    ((RUNNING, "w", "t2"), True),  # ... claimed again by a thread of this process under the same worker name
    ((DONE, "other", "t2"), True),
    (None, True)])
def test_a_run_superseded_in_any_way_is_cancelled_and_only_then(holder, superseded):
    """A withdrawal restored within the second between two checks read `queued` or `running` again, and the old
    sandbox ran on for a score that finish refused. The check now compares the job's holder with the run's own
    (status running, this worker, the lease token of its claim)."""
    from neurozoo.leaderboard.scorer import Heartbeat

    queue = _Queue(holder)
    with Heartbeat(queue, 1, "w", lease_s=60, check_s=0.01, lease_token="t1") as beat:
        deadline = time.monotonic() + 5
        while len(queue.calls) < 3 and not beat.cancelled.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert beat.cancelled.is_set() == superseded, (holder, queue.calls)


def _job_in_thread(name, holder, command, outcomes, leave):
    """A worker's thread: a Heartbeat over a job held by ``holder``, and ``command`` run (unsandboxed) under it;
    ``outcomes[name]``: its exit status, or "cancelled". It leaves the Heartbeat once ``leave`` is set."""
    import sys

    from neurozoo.leaderboard import sandbox
    from neurozoo.leaderboard.scorer import Heartbeat

    def job():
        with Heartbeat(_Queue(holder), 1, "w", lease_s=60, check_s=0.02, lease_token="t1"):
            try:
                outcomes[name] = sandbox.run([sys.executable, "-c", command], sandbox=False,
                                             limits=sandbox.Limits(wall_s=20)).returncode
            except sandbox.Cancelled:
                outcomes[name] = "cancelled"
            assert leave.wait(60)

    thread = threading.Thread(target=job, name=name)
    thread.start()
    return thread


def test_a_job_cancelled_in_one_worker_thread_leaves_the_sandbox_of_another_running(tmp_path, monkeypatch):
    """The cancel flag was one event for the whole process: of two workers in one process (threads), the one whose
    job's submission was withdrawn killed the other's sandbox too. Each job now has its own event (its Heartbeat's).
    Forced: the kept job's sandbox loop polls twice while the other job is cancelled and still in its Heartbeat."""
    from neurozoo.leaderboard import sandbox

    release, outcomes, polls = tmp_path / "release", {}, {}
    polled = sandbox.raise_if_terminated

    def counted():  # called once a loop of sandbox._supervise, just before it reads its job's event
        polls[threading.current_thread().name] = polls.get(threading.current_thread().name, 0) + 1
        polled()

    monkeypatch.setattr(sandbox, "raise_if_terminated", counted)
    stay, leave = threading.Event(), threading.Event()
    leave.set()
    kept = _job_in_thread("kept", (RUNNING, "w", "t1"), f"import os, time\nwhile not os.path.exists({str(release)!r}):"
                          "\n    time.sleep(0.01)", outcomes, leave)
    _until(lambda: polls.get("kept", 0) >= 1)
    withdrawn = _job_in_thread("withdrawn", ("withdrawn", None, "t1"), "import time; time.sleep(20)", outcomes, stay)
    _until(lambda: "withdrawn" in outcomes)
    seen = polls["kept"]
    _until(lambda: polls["kept"] >= seen + 2 or not kept.is_alive())
    release.write_text("")
    kept.join(30)
    stay.set()
    withdrawn.join(30)
    assert outcomes == {"withdrawn": "cancelled", "kept": 0}


def test_a_job_cancelled_before_its_sandbox_started_stays_cancelled_when_another_job_starts():
    """Each Heartbeat cleared the process's one cancel flag as it began and ended: a job cancelled just before its
    sandbox started ran it to the end if another worker thread began (or ended) a job meanwhile."""
    import sys

    from neurozoo.leaderboard import sandbox
    from neurozoo.leaderboard.scorer import Heartbeat

    def another_job():
        with Heartbeat(_Queue(), 2, "w", lease_s=60, check_s=None, lease_token="t1"):
            pass

    with Heartbeat(_Queue(("withdrawn", None, "t1")), 1, "w", lease_s=60, check_s=0.01, lease_token="t1") as beat:
        beat._thread.join(5)  # it found the job withdrawn: cancelled
        other = threading.Thread(target=another_job)
        other.start()
        other.join(10)
        started = time.monotonic()
        with pytest.raises(sandbox.Cancelled):
            sandbox.run([sys.executable, "-c", "import time; time.sleep(20)"], sandbox=False,
                        limits=sandbox.Limits(wall_s=3))
        assert time.monotonic() - started < 2


def test_a_withdrawal_restored_between_two_checks_stops_the_old_sandbox_and_the_job_is_scored_again(db, tmp_path,
                                                                                                     capsys):
    """A withdrawal restored within the second between two status checks: the check read `queued` (or `running`, the
    job claimed again), missed it, and the withdrawn run's sandbox ran on to its end (6 s here, its wall-clock limit;
    a real job's half hour) for a score finish refused, counted as a failure. The worker now sees its run superseded
    (not running under its claim's lease token): the run's process is gone within 3 s, the worker claims the queued
    job again and scores it. Forced: the worker's statements wait while the withdrawal and the restore are made."""
    import sys

    from sqlalchemy import event

    from neurozoo.leaderboard import sandbox
    from neurozoo.leaderboard.scorer import work

    sid = db.add_submission("sub", "/store/x", "0" * 64, {"name": "sub"}, "alice",
                            [{"model": "sub", "benchmark": "b1", "spec": {"benchmark": "b1"}}])
    [job] = db.submission(sid)["jobs"]
    pid_file, gate, operator, gone, runs = tmp_path / "pid", threading.Lock(), {}, {}, []

    def others_wait(_connection, _cursor, _statement, *_):  # the worker's checks wait while the operator holds gate
        if threading.current_thread() is not operator.get("thread"):
            with gate:
                pass

    def withdraw_and_restore():
        _until(lambda: pid_file.exists() and pid_file.read_text())
        pid = int(pid_file.read_text())
        with gate:
            assert db.withdraw_submission(sid, "by mistake", "op") == 1
            assert db.restore_submission(sid, "op", "the wrong submission was withdrawn") == 1
        restored = time.monotonic()
        _until(lambda: not alive(pid), 60)
        gone["s"] = time.monotonic() - restored

    def score(job):
        runs.append(job["id"])
        if len(runs) > 1:
            return record("sub", "b1", 0.6), None
        operator["thread"] = threading.Thread(target=withdraw_and_restore, daemon=True)
        operator["thread"].start()
        try:
            sandbox.run([sys.executable, "-c", f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid()))"
                                               "; time.sleep(60)"], sandbox=False, limits=sandbox.Limits(wall_s=6))
        finally:
            operator["thread"].join(70)
        raise AssertionError("the sandbox ran to its end")

    event.listen(db.engine, "before_cursor_execute", others_wait)
    try:
        counts = work(db, score, lease_s=60.0, progress=False, worker="w")
    finally:
        event.remove(db.engine, "before_cursor_execute", others_wait)
    assert gone["s"] < 3.0, f"the withdrawn run's process was gone {gone['s']:.1f} s after the restore"
    assert counts == {"done": 1, "failed": 0} and runs == [job["id"], job["id"]]
    after = db.job(job["id"])
    assert (after["status"], after["attempts"], after["error"]) == (DONE, 1, None)
    assert [(r.model, r.value) for r in db.leaderboard_records()] == [("sub", 0.6)]
    assert capsys.readouterr().out == (f"job {job['id']} (sub on b1): its submission was withdrawn and restored while "
                                       "it was scored and it is queued now; its sandbox was stopped\n")


def _in_transaction(connection) -> bool:
    """Whether the DBAPI connection under ``connection`` is inside a transaction block (PostgreSQL: a BEGIN was sent,
    a COMMIT or ROLLBACK will be)."""
    raw = connection.connection.dbapi_connection
    if connection.dialect.name == "sqlite":
        return raw.in_transaction
    import psycopg2.extensions

    return raw.info.transaction_status != psycopg2.extensions.TRANSACTION_STATUS_IDLE


def test_the_check_between_renewals_is_one_statement_on_a_connection_held_for_the_job(db):
    """Each check every second took a connection from the pool: the pool's ping (pool_pre_ping), then the read in a
    transaction; on PostgreSQL four round trips (ping, BEGIN, the read, ROLLBACK) a second per running job. The
    Heartbeat now holds one connection in autocommit mode for its checks: each is one statement, outside any
    transaction, with no checkout."""
    from sqlalchemy import event

    from neurozoo.leaderboard.scorer import Heartbeat

    job = db.claim("w", ids=[db.enqueue("m", "b", {})])
    seen = []

    def executed(connection, _cursor, statement, *_):
        seen.append(("statement", statement.split()[0], _in_transaction(connection)))

    def checkout(*_):
        seen.append(("checkout",))

    event.listen(db.engine, "after_cursor_execute", executed)
    event.listen(db.engine.pool, "checkout", checkout)
    try:
        with Heartbeat(db, job["id"], "w", lease_s=60, check_s=0.01, lease_token=job["lease_token"]) as beat:
            _until(lambda: len(seen) >= 6)
    finally:
        event.remove(db.engine, "after_cursor_execute", executed)
        event.remove(db.engine.pool, "checkout", checkout)
    statements = [entry for entry in seen if entry[0] == "statement"]
    assert seen[0] == ("checkout",) and seen.count(("checkout",)) == 1, seen
    assert len(statements) >= 5 and set(statements) == {("statement", "SELECT", False)}, seen
    assert not beat.cancelled.is_set()


def test_a_check_whose_connection_the_server_dropped_opens_another_and_sees_the_withdrawal(db):
    """The connection held for the checks is the Heartbeat's own, not the pool's checked one: one the server dropped
    (a restart, an idle-connection limit) is closed at the failed read and another opened at the next."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("a server that drops connections: PostgreSQL")
    from sqlalchemy import create_engine, event

    from neurozoo.leaderboard.scorer import Heartbeat

    sid = db.add_submission("sub", "/store/x", "0" * 64, {}, None, [{"model": "sub", "benchmark": "b", "spec": {}}])
    job = db.claim("w")
    backends = []

    def executed(connection, *_):
        if threading.current_thread() is not main:
            backends.append(connection.connection.dbapi_connection.info.backend_pid)

    main = threading.current_thread()
    event.listen(db.engine, "after_cursor_execute", executed)
    admin = create_engine(POSTGRES_URL)
    try:
        with Heartbeat(db, job["id"], "w", lease_s=60, check_s=0.01, lease_token=job["lease_token"]) as beat:
            _until(lambda: backends)
            with admin.begin() as connection:
                assert connection.execute(text("select pg_terminate_backend(:pid)"), {"pid": backends[0]}).scalar()
            assert db.withdraw_submission(sid, "cheating", "op") == 1
            assert beat.cancelled.wait(10)
    finally:
        event.remove(db.engine, "after_cursor_execute", executed)
        admin.dispose()
    assert backends[-1] != backends[0]


def _until(condition, timeout_s=30):
    """Return once ``condition()`` holds (polled, not a pause); fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold within the time allowed"
        time.sleep(0.005)


def test_a_score_stored_as_its_submission_is_withdrawn_is_either_kept_or_refused_never_both(db):
    """A worker storing a job's score while the operator withdraws its submission: the first to commit wins. Here the
    worker holds the job first: the withdrawal waits for it and finds the job done (its score kept with the
    submission's other rows, off the board until a restore), so it cancels nothing. On SQLite the worker's status
    read was outside its transaction: a withdrawal committed in between was overwritten by `done`, a job counted
    as cancelled yet scored; on PostgreSQL the two took the job's and the submission's rows in opposite orders and
    deadlocked, failing one of them."""
    sid = db.add_submission("sub", "/store/x", "0" * 64, {"name": "sub"}, "alice",
                            [{"model": "sub", "benchmark": "b1", "spec": {"benchmark": "b1"}}])
    job = db.claim("w")
    score, outcome = record("sub", "b1", 0.6), {}
    row = score.to_row()  # made before: its provenance (git, the environment) takes seconds

    def withdrawn_while_stored():  # finish has read the job as this worker's and writes its score now
        outcome["withdrawal"] = concurrently(db, lambda: db.withdraw_submission(sid, "cheating model", "op"))
        return row

    score.to_row = withdrawn_while_stored
    stored = finish_claim(db, job, score)
    after = db.job(job["id"])
    assert (stored, outcome["withdrawal"].result(), after["status"]) == (True, 0, DONE) and after["score_id"] is not None
    assert db.submission(sid)["status"] == "withdrawn" and db.leaderboard_records() == []
    assert db.restore_submission(sid, "op") == 0 and [r.value for r in db.leaderboard_records()] == [0.6]


def _failed_submission(db, benchmarks=("b1", "b2")) -> tuple:
    """A submission whose jobs all failed, the last one first: (submission id, job ids). Failed in that order, the
    jobs' rows lie in the table (PostgreSQL's heap) against their id order, as a scan finds them."""
    sid = db.add_submission("sub", "/store/x", "0" * 64, {"name": "sub"}, "alice",
                            [{"model": "sub", "benchmark": b, "spec": {"benchmark": b}} for b in benchmarks])
    jobs = [db.claim("w") for _ in benchmarks]
    for job in reversed(jobs):
        assert fail_claim(db, job, "boom")
    return sid, [job["id"] for job in jobs]


def test_failed_jobs_queued_again_as_their_submission_is_withdrawn_never_deadlock(db):
    """requeue_failed (zoo work --retry-failed) locked the failed jobs in the order its UPDATE found them, a withdrawal
    the submission's jobs in id order: on PostgreSQL each held a job the other waited for and one failed with a
    deadlock. Here a third transaction holds the first job while the withdrawal, then requeue_failed, wait for it;
    requeue_failed now takes the jobs in id order too, so it waits behind the withdrawal and queues nothing of a
    withdrawn submission. (SQLite has one write lock: either goes first, and the other sees what it did.)"""
    from sqlalchemy import select

    from neurozoo.leaderboard.db import JobRow

    sid, ids = _failed_submission(db)
    with db.engine.connect() as holder:
        holder.begin()
        if db.engine.dialect.name == "sqlite":
            holder.execute(text("BEGIN IMMEDIATE"))
        else:
            holder.execute(select(JobRow.id).where(JobRow.id == ids[0]).with_for_update())
        withdrawal = concurrently(db, lambda: db.withdraw_submission(sid, "licence", "op"))
        requeue = concurrently(db, db.requeue_failed, waiting=2)
        holder.commit()
    cancelled, requeued = withdrawal.result(), requeue.result()
    assert (requeued, cancelled) in {(0, 0), (2, 2)}  # withdrawn first, or queued first and then cancelled
    assert {db.job(i)["status"] for i in ids} == ({FAILED} if requeued == 0 else {"withdrawn"})
    assert db.submission(sid)["status"] == "withdrawn" and db.claim("w2") is None


def test_failed_jobs_are_not_queued_again_once_their_submission_is_withdrawn(db):
    """requeue_failed waiting for a job that a withdrawal held went on when it committed, with its own check that the
    submission was not withdrawn read before (PostgreSQL): the withdrawn submission's failed job was queued and a
    worker scored it. It now checks after it holds the jobs."""
    sid, [job_id] = _failed_submission(db, ["b1"])
    with paused_at(db, "UPDATE lb_jobs", lambda: concurrently(db, db.requeue_failed)) as requeue:
        assert db.withdraw_submission(sid, "licence", "op") == 0
    assert requeue[0].result() == 0
    assert db.job(job_id)["status"] == FAILED and db.submission(sid)["status"] == "withdrawn"
    assert db.claim("w2") is None


def test_two_jobs_of_a_submission_finished_at_once_leave_it_done(db):
    """Two workers finishing the two jobs of one submission at the same instant: each read its submission's job
    statuses before the other committed and wrote what it saw (PostgreSQL), so the submission said `running` for good
    with both jobs done. The submission's row is now locked before its jobs' statuses are read."""
    sid = db.add_submission("sub", "/store/x", "0" * 64, {"name": "sub"}, "alice",
                            [{"model": "sub", "benchmark": b, "spec": {"benchmark": b}} for b in ("b1", "b2")])
    first, second = db.claim("w1"), db.claim("w2")
    scores = [record("sub", "b1", 0.6), record("sub", "b2", 0.7)]
    for score in scores:  # made before: its provenance (git, the environment) takes seconds
        score.to_row = lambda row=score.to_row(): row
    with paused_at(db, "UPDATE lb_submissions",
                   lambda: concurrently(db, lambda: finish_claim(db, second, scores[1]))) as other:
        assert finish_claim(db, first, scores[0])
    assert other[0].result() is True
    assert [j["status"] for j in db.submission(sid)["jobs"]] == [DONE, DONE] and db.submission(sid)["status"] == DONE


def test_outdated_jobs_are_not_queued_again_into_a_submission_withdrawn_meanwhile(db, monkeypatch):
    """rescore_outdated read the outdated jobs, withdrawn submissions' left out, before its transaction: a withdrawal
    committed in between got a new queued job, which a worker then scored. It now locks the submissions and checks
    again inside its transaction."""
    sid, old = _scored_then_outdated(db, monkeypatch)
    outdated_jobs = db.outdated_jobs

    def withdrawn_after_reading():
        jobs = outdated_jobs()
        assert concurrently(db, lambda: db.withdraw_submission(sid, "licence", "op")).result() == 0
        return jobs

    monkeypatch.setattr(db, "outdated_jobs", withdrawn_after_reading)
    assert db.rescore_outdated() == []
    assert [j["id"] for j in db.jobs()] == [old["id"]] and db.claim("w2") is None


def _verb_and_table(statement: str) -> tuple:
    """("UPDATE", "lb_jobs"), ("SELECT", "lb_submissions"), ...: what a statement does, to which table."""
    words = statement.split()
    return (words[0], words[1] if words[0] in ("UPDATE", "INSERT", "DELETE") else words[words.index("FROM") + 1])


@pytest.mark.parametrize("call", ["fail", "release"])
def test_a_failure_or_a_hand_back_writes_the_job_in_one_statement(db, call):
    """fail and release updated the job, then read it again (the whole row, its spec included) for its submission's
    id: the UPDATE now returns it (RETURNING). Refused (the job another claim's), the UPDATE is all they do."""
    from sqlalchemy import event

    sid = db.add_submission("sub", "/store/x", "0" * 64, {}, None, [{"model": "sub", "benchmark": "b", "spec": {}}])
    job, mine = db.claim("w"), []

    def executed(_connection, _cursor, statement, *_):
        mine.append(_verb_and_table(statement))

    event.listen(db.engine, "before_cursor_execute", executed)
    try:
        assert not _HOLDER_CALLS[call](db, job["id"], "another claim's token")
        refused = mine[:]
        mine.clear()
        assert _HOLDER_CALLS[call](db, job["id"], job["lease_token"])
    finally:
        event.remove(db.engine, "before_cursor_execute", executed)
    assert refused == [("UPDATE", "lb_jobs")], refused
    assert mine == [("UPDATE", "lb_jobs"), ("SELECT", "lb_submissions"), ("SELECT", "lb_jobs"),
                    ("UPDATE", "lb_submissions")], mine  # the job; its submission locked, its jobs read, its status
    status = {"fail": FAILED, "release": QUEUED}[call]
    after = db.job(job["id"])
    assert (after["status"], after["lease_until"], db.submission(sid)["status"]) == (status, None, status)
    assert after["attempts"] == {"fail": 1, "release": 0}[call]
    assert after["error"] == ("RuntimeError: boom" if call == "fail" else None)


def test_a_claim_that_lost_its_give_up_to_another_worker_leaves_the_submission_alone(db):
    """claim's give-up branch (a job whose worker died max_attempts times) set the submission's status whether or not
    its UPDATE changed the job: when another worker gave the job up first, it read the whole job again, locked the
    submission and wrote the status the other had just written (4 statements for nothing). And each claim read the
    job's row, spec included, once more to find its submission. Forced: the other worker gives the job up between
    this one's read of the job and its UPDATE."""
    from sqlalchemy import event

    sid = db.add_submission("sub", "/store/x", "0" * 64, {}, None, [{"model": "sub", "benchmark": "b", "spec": {}}])
    for _ in range(3):
        assert db.claim("dead", lease_s=-1, max_attempts=3) is not None
    mine, me = [], threading.current_thread()

    def executed(_connection, _cursor, statement, *_):
        if threading.current_thread() is me and "pg_stat_activity" not in statement:  # not concurrently's own
            mine.append(" ".join(statement.split()))

    event.listen(db.engine, "before_cursor_execute", executed)
    try:
        with paused_at(db, "UPDATE lb_jobs",
                       lambda: concurrently(db, lambda: db.claim("other", max_attempts=3)).result()) as other:
            assert db.claim("w", max_attempts=3) is None
        assert other == [None]
        gave_up = mine[:]
        second = db.add_submission("sub", "/store/y", "1" * 64, {}, None,
                                   [{"model": "sub", "benchmark": "b2", "spec": {}}])
        mine.clear()
        assert db.claim("w")["submission_id"] == second
    finally:
        event.remove(db.engine, "before_cursor_execute", executed)
    assert [s.split()[0] for s in gave_up] == ["SELECT", "UPDATE", "SELECT"], gave_up  # read, lost UPDATE, none left
    assert db.submission(sid)["status"] == FAILED and "gave up after 3" in db.submission(sid)["jobs"][0]["error"]
    assert sum("lb_jobs.spec" in s for s in mine) == 1, mine  # the job returned; its submission came with its id
    assert db.submission(second)["status"] == RUNNING


def test_aggregation_never_pools_real_and_synthetic_data():
    """One V4 mean over a recording (0.1) and a teacher's synthetic responses (0.5) was 0.3: they stand apart, and the
    overall pools only the kind ranked on."""
    benchmarks = [("rec", {"region": "V4", "data": "real"}), ("teacher", {"region": "V4", "data": "synthetic"})]
    scores = {"rec": 0.1, "teacher": 0.5}
    nodes = aggregate(build_tree(benchmarks), scores)
    assert nodes["cortex/V4"][:3] == (pytest.approx(0.1), 1, 1) and nodes["cortex (synthetic)/V4"][:3] == (pytest.approx(0.5), 1, 1)
    assert nodes[OVERALL][:3] == (pytest.approx(0.1), 1, 1)
    assert aggregate(build_tree(benchmarks, ranked="synthetic"), scores)[OVERALL][:3] == (pytest.approx(0.5), 1, 1)


def test_the_overall_averages_scores_on_one_scale_only():
    """The overall averaged the cortex's r² / ceiling with the retina's uncorrected median r and with phenomenon
    fractions. A benchmark without a ceiling is left out of the means above its region (the region shows its own
    mean); a benchmark without a declared kind of data is in no overall."""
    benchmarks = [("v4", {"region": "V4", "data": "synthetic"}),
                  ("heldout", {"region": "held-out", "family": "retina", "data": "synthetic"}),
                  ("osr", {"region": "phenomena", "family": "retina", "data": "synthetic", "on_scale": False}),
                  ("plugin", {"region": "V4"})]  # no "data": undeclared
    tree = build_tree(benchmarks, ranked="synthetic")
    nodes = aggregate(tree, {"v4": 0.2, "heldout": 0.8, "osr": 0.0, "plugin": 0.9})
    assert nodes["retina (synthetic)/phenomena"][:3] == (0.0, 1, 1)  # shown, in its own units
    assert nodes["retina (synthetic)"][:3] == (pytest.approx(0.8), 1, 1)  # the held-out score only (it was 0.4)
    assert nodes["cortex (undeclared data)"][0] == pytest.approx(0.9)
    assert nodes[OVERALL][:3] == (pytest.approx(0.5), 2, 2)  # (0.2 + 0.8) / 2: neither osr nor the plugin


def test_a_registered_benchmark_declares_its_data_and_scale_and_a_raw_score_is_divided_by_its_ceiling(untagged_plugin):
    from neurozoo import benchmarks
    from neurozoo.leaderboard.aggregate import data_kind, on_scale, registry_tree

    kinds = {e.name: data_kind(e) for e in benchmarks.BENCHMARKS.entries()}
    assert kinds["cowley2023.V4"] == "real" and kinds["ventral_embedded.V4-temporal"] == "synthetic"
    assert kinds["retina_embedded.osr"] == "synthetic"
    assert kinds[untagged_plugin] == "undeclared"  # an entry-point plugin says nothing: it had counted as real data
    assert on_scale("retina_embedded.whitenoise-heldout", 0.6, 0.03, 0.8) == (pytest.approx(0.75), pytest.approx(0.0375))
    assert on_scale("retina_embedded.whitenoise-heldout", 0.6, 0.03, None) == (None, None)
    assert on_scale("cowley2023.V4", 0.3, 0.02, 0.5) == (0.3, 0.02)  # r² / ceiling already
    assert on_scale("retina_embedded.oms", 0.5, None, None) is None  # no ceiling: not on the scale
    tree = {node.name: node for node, _ in registry_tree(ranked="synthetic").walk()}
    assert not tree["retina (synthetic)/phenomena"].pooled and tree["retina (synthetic)/held-out responses"].pooled
    assert tree["cortex (undeclared data)/V4"].children[0].name == untagged_plugin
    assert not tree["cortex (undeclared data)"].pooled


def test_an_aggregate_carries_the_standard_error_of_its_mean():
    """The aggregates had no error though each score keeps one: a mean's error is propagated from its scores' (as
    independent), and is missing where one of them has none."""
    tree = build_tree([(b, {"region": r, "data": "real"}) for b, r in (("v4a", "V4"), ("v4b", "V4"), ("it", "IT"))])
    nodes = aggregate(tree, {"v4a": 0.2, "v4b": 0.4, "it": 0.9}, {"v4a": 0.03, "v4b": 0.04, "it": 0.1})
    assert nodes["v4a"][3] == 0.03
    assert nodes["cortex/V4"][3] == pytest.approx(0.025)  # sqrt(0.03² + 0.04²) / 2
    assert nodes[OVERALL][3] == pytest.approx((0.025 ** 2 + 0.1 ** 2) ** 0.5 / 2)
    assert aggregate(tree, {"v4a": 0.2, "v4b": 0.4}, {"v4a": 0.03})["cortex/V4"][3] is None


def test_ranks_follow_the_precision_the_pages_show():
    """Ranked at full precision, 0.4123 and 0.4121 were ranks 1 and 2 though both read 0.412: scores equal as shown
    share a rank, on the ranking and on a benchmark's page."""
    from neurozoo.benchmarks.records import ScoreRecord
    from neurozoo.leaderboard.views import benchmark_page

    tree = build_tree([("v4", {"region": "V4", "data": "real"})])
    rows = ranking(tree, {"b": {"v4": 0.4121}, "a": {"v4": 0.4123}, "c": {"v4": 0.4116}, "d": {"v4": 0.41}})
    assert [(r["model"], r["rank"]) for r in rows] == [("a", 1), ("b", 1), ("c", 1), ("d", 4)]  # 0.412, 0.412, 0.412, 0.410
    benchmark = "ventral_embedded.V4-temporal"
    records = [ScoreRecord(m, benchmark, v) for m, v in (("b", 0.4121), ("a", 0.4123), ("d", 0.41))]
    assert [(r["model"], r["rank"]) for r in benchmark_page(benchmark, records)["rows"]] == [("a", 1), ("b", 1), ("d", 3)]


def test_opening_a_sqlite_database_another_process_holds_locked_waits_for_it(tmp_path):
    """`zoo run` creating a fresh database's schema while `zoo serve` (or a test, or a second worker) opens it: the
    opener's first statements (the WAL switch, the schema) gave up after Python's default 5 s with "database is
    locked" (seen on a loaded machine). They now wait as long as any statement (``SQLITE_BUSY_TIMEOUT_S``)."""
    import sqlite3
    import threading

    path = tmp_path / "lb.sqlite"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE other (x)")  # a database not yet in WAL mode, as a fresh one is
    holder.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(5.5, lambda: holder.execute("COMMIT"))
    release.start()
    try:
        started = time.monotonic()
        db = LeaderboardDB(f"sqlite:///{path}")
        assert time.monotonic() - started >= 5.0  # it waited for the lock
        assert db.enqueue("m", "b", {}) == 1
        db.dispose()
    finally:
        release.join()
        holder.close()
