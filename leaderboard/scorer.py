"""The scorer: claims jobs from the queue, keeps their leases alive, stores each score in one transaction.

A job's result is stored by :meth:`LeaderboardDB.finish` together with its ``done`` status, or the job is
marked ``failed`` with the reason; nothing in between ever reaches the database. A scorer that is killed
leaves its job ``running``; :func:`release_dead_workers` (called at start-up, and by a worker before it stops) hands
jobs of dead processes on this host back at once, and jobs of other hosts come back when their lease expires.
"""
from __future__ import annotations

import sys
import threading
import time
import traceback
from typing import Callable, Dict, Iterable, List, Optional

from neurozoo.datasets.cache import dead_on_this_host, worker_name
from neurozoo.datasets.termination import raise_if_terminated
from neurozoo.leaderboard import sandbox
from neurozoo.leaderboard.db import RUNNING, WITHDRAWN, LeaderboardDB, check_lease_token


#: how often a worker reads who holds the submission's job it runs, to see its run superseded (a primary-key read of
#: three columns on a connection the worker holds, :meth:`LeaderboardDB.job_holder`); apart from the lease renewal,
#: every ``lease_s / 3`` (20 s at the default lease, which a withdrawn job's sandbox had run on for)
WITHDRAWAL_CHECK_S = 1.0


class Heartbeat:
    """Renews a job's lease every ``lease_s / 3`` seconds on a background thread and, for a submission's job
    (``check_s`` not None), reads who holds it every ``check_s`` seconds between renewals, on one connection held for
    the job (:meth:`LeaderboardDB.autocommit_connection`: one statement a read). A run found superseded, by that read
    or by a refused renewal, sets this job's own event, :attr:`cancelled`; :func:`leaderboard.sandbox.run` in the
    thread that entered the Heartbeat (:func:`leaderboard.sandbox.cancelled_by`) then kills the job's processes within
    its poll (0.1 s) and raises :class:`~leaderboard.sandbox.Cancelled`, rather than run it for a score that
    :meth:`LeaderboardDB.finish` would refuse. Superseded: the job is no longer running under this worker and the
    ``lease_token`` of its claim (withdrawn; withdrawn and restored, so queued again or claimed again, by another
    worker or by a thread of this process under the same worker name; taken over by another worker after this lease
    expired); a status check alone had missed a withdrawal restored within the second, whose sandbox ran on."""

    def __init__(self, db: LeaderboardDB, job_id: int, worker: str, lease_s: float,
                 check_s: Optional[float] = WITHDRAWAL_CHECK_S, *, lease_token: str):
        self.db, self.job_id, self.worker, self.lease_s, self.check_s = db, job_id, worker, lease_s, check_s
        # checked here: in the thread, heartbeat's TypeError passed as a database error and the lease aged unrenewed
        self.lease_token = check_lease_token(lease_token)
        self.cancelled = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._cancelling = sandbox.cancelled_by(self.cancelled)

    def _superseded(self, holder) -> bool:
        return holder != (RUNNING, self.worker, self.lease_token)

    def _run(self):
        renew_at, connection = time.monotonic() + self.lease_s / 3, None
        try:
            while not self._stop.wait(max(0.0, min(renew_at - time.monotonic(), self.check_s or float("inf")))):
                try:
                    if time.monotonic() >= renew_at:  # a renewal refused: superseded, or this lease expired
                        renew_at = time.monotonic() + self.lease_s / 3
                        check = not self.db.heartbeat(self.job_id, self.worker, self.lease_s,
                                                      lease_token=self.lease_token)
                    else:  # the check between renewals
                        check = self.check_s is not None
                    if check:
                        if connection is None:
                            connection = self.db.autocommit_connection()
                        if self._superseded(self.db.job_holder(self.job_id, connection)):
                            self.cancelled.set()
                            return
                except Exception:  # a transient database error must not kill the job; the lease just ages
                    connection = _closed(connection)  # a connection lost is opened again at the next check
        finally:
            _closed(connection)

    def __enter__(self):
        self._cancelling.__enter__()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._cancelling.__exit__(*exc)


def _closed(connection) -> None:
    """Close ``connection`` (if any), whatever state a database error left it in; returns None."""
    if connection is not None:
        try:
            connection.close()
        except Exception:
            pass
    return None


def release_dead_workers(db: LeaderboardDB, ids: Optional[Iterable[int]] = None) -> List[int]:
    """Expire the leases of running jobs (all, or ``ids``) whose worker process on this host no longer exists; returns
    those expired. Called at start-up and by :func:`work` before it stops: a worker killed while others drained the
    queue had left its job 'running' until a worker was started again. Each expiry is of the claim read here
    (:meth:`LeaderboardDB.expire_lease`): a job claimed again in between keeps its new claim's lease."""
    released = []
    for job in db.jobs(status=RUNNING, ids=ids):
        if dead_on_this_host(job["worker"]) and db.expire_lease(job):
            released.append(job["id"])
    return released


#: the longest reason a failed job's public page shows (one line)
PUBLIC_REASON_CHARS = 300


def public_reason(error: BaseException) -> str:
    """What the public pages show of a failed job: the scorer's own reason, one line of at most 300 characters.
    A :class:`~leaderboard.zoo.ScoringError` whose message holds untrusted text (a submission's console output)
    carries the part the scorer vouches for (``public``); any other error is the scorer's (trusted code's) own, and
    its first line is shown. The whole message goes to the submitter (``/api/submissions/{id}``) and the operator
    (``zoo submission ID``, ``zoo run``'s output)."""
    text = getattr(error, "public", None) or f"{type(error).__name__}: {error}"
    lines = text.strip().splitlines()
    first = lines[0] if lines else type(error).__name__
    return first if len(first) <= PUBLIC_REASON_CHARS else first[:PUBLIC_REASON_CHARS - 3] + "..."


#: the first wait before storing a score again, and the longest one (doubled after each failed try)
STORE_BACKOFF_S = (1.0, 16.0)

#: lower-case parts of the messages of errors that pass (SQLite, PostgreSQL through psycopg2); others are permanent
TRANSIENT_DB_ERRORS = ("database is locked", "database is busy", "database table is locked", "connection refused",
                       "connection reset", "connection closed", "connection already closed", "closed the connection",
                       "could not connect", "connection timed out", "terminating connection", "ssl syscall error",
                       "connection to server", "server closed", "deadlock detected", "could not serialize access",
                       "the database system is starting up", "the database system is shutting down",
                       "the database system is in recovery mode")


def transient_db_error(error: BaseException) -> bool:
    """Whether a database error may pass if tried again (locked/busy, a lost or refused connection, a deadlock or
    serialization failure), unlike a schema error ("no such table", "column ... does not exist") that never does."""
    if getattr(error, "connection_invalidated", False):
        return True
    text = str(getattr(error, "orig", None) or error).lower()
    return any(part in text for part in TRANSIENT_DB_ERRORS)


def store_with_retries(db: LeaderboardDB, job: Dict, worker: str, record, hidden, retry_s: float, write) -> bool:
    """:meth:`LeaderboardDB.finish`, tried again while the database is out of reach (a transient error:
    :func:`transient_db_error`; any other, e.g. a schema error, is raised at once), for
    ``retry_s`` seconds at most with exponential backoff, each wait said by ``write`` (stderr): a database restarted
    while a job was scored had cost the computed score until the lease expired and the job was scored again. After
    ``retry_s`` the error is raised: the job stays ``running`` and comes back when its lease expires."""
    from sqlalchemy.exc import DBAPIError

    deadline, wait = time.monotonic() + retry_s, STORE_BACKOFF_S[0]
    while True:
        try:
            return db.finish(job["id"], worker, record, hidden=hidden, duration_s=record.duration_s,
                             lease_token=job["lease_token"])
        except DBAPIError as error:  # PostgreSQL's schema errors are ProgrammingErrors: said too, not passed up bare
            left = deadline - time.monotonic()
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            if not transient_db_error(error):
                write(f"job {job['id']} ({job['model']} on {job['benchmark']}): its score could not be stored "
                      f"({first}); not a passing database error, so not tried again: fix the database (is its schema "
                      f"current?), the job is scored again once its lease expires")
                raise
            if left <= 0:
                write(f"job {job['id']} ({job['model']} on {job['benchmark']}): its score could not be stored within "
                      f"{retry_s:g} s ({first}); giving up, the job is scored again once its lease expires")
                raise
            wait = min(wait, left)
            write(f"job {job['id']} ({job['model']} on {job['benchmark']}): storing its score failed ({first}); "
                  f"trying again in {wait:g} s")
            time.sleep(wait)
            wait = min(wait * 2, STORE_BACKOFF_S[1])


def why_superseded(db: LeaderboardDB, job: Dict) -> str:
    """Why the run of ``job`` (as claimed) is no longer the job's: withdrawn, withdrawn and restored (the withdrawals
    recorded since it was claimed), or its lease expired and another worker took it over."""
    from datetime import datetime

    now_ = db.job(job["id"]) or {}
    if now_.get("status") == WITHDRAWN:
        return "its submission was withdrawn while it was scored"
    by = f"worker {now_['worker']} took it over" if now_.get("worker") else f"it is {now_.get('status')} now"
    withdrawals = (db.submission(job["submission_id"]) or {}).get("withdrawals", []) if job["submission_id"] else []
    if any(datetime.fromisoformat(entry["at"]) >= job["updated_at"] for entry in withdrawals):
        return f"its submission was withdrawn and restored while it was scored and {by}"
    return f"its lease expired while it was scored and {by}"


def work(db: LeaderboardDB, score: Callable[[Dict], tuple], ids: Optional[Iterable[int]] = None,
         lease_s: float = 60.0, max_attempts: int = 3, progress: bool = True, worker: Optional[str] = None,
         store_retry_s: Optional[float] = None) -> Dict[str, int]:
    """Run queued jobs (all, or ``ids``) until none is left; ``score(job) -> (record, hidden record or None)``. A score
    that cannot be stored is tried again for ``store_retry_s`` seconds (default: ``lease_s``, after which another
    worker could take the job over anyway): :func:`store_with_retries`."""
    from tqdm.auto import tqdm

    from neurozoo.datasets.activity import listening

    worker = worker or worker_name()
    ids = None if ids is None else list(ids)
    pending = [j for j in db.jobs(ids=ids) if j["status"] in ("queued", RUNNING)]
    counts = {"done": 0, "failed": 0}
    # on a terminal, a bar of jobs done and the time taken, without an estimate of the time left: the jobs' lengths
    # differ by 1000-fold (a cached score: a second; a retina model's first fit: minutes), and tqdm's rate jumped
    # with them (12/36 on a 6-minute fit showed 1:16:34 left). Elsewhere (a CI log, a pipe, a service's journal),
    # no bar, whose redraws were carriage returns there, but a line per job and per fit begun
    terminal = progress and _is_terminal(sys.stderr)
    bar = tqdm(total=len(pending), desc="scoring", unit="job", disable=not terminal, bar_format=JOB_BAR,
               dynamic_ncols=True)  # the postfix fitted to the terminal's width as it is now (_JobActivity)
    told = _JobActivity(bar, len(pending), terminal=terminal, lines=progress and not terminal)
    try:  # closed on a stop too: `zoo run: interrupted; ...` was written after the bar, on its line
        while True:
            raise_if_terminated()  # a stop asked for during the last job's trusted scoring: no job is claimed
            job = db.claim(worker, lease_s=lease_s, max_attempts=max_attempts, ids=ids)
            if job is None and release_dead_workers(db, ids):  # a worker killed on this host since this one started
                continue
            if job is None:
                break
            told.job_begins(f"{job['model']} on {job['benchmark']}")
            started = time.perf_counter()
            # a zoo job (trusted, in this process) has no submission to withdraw and no sandbox to stop: renewals only
            with Heartbeat(db, job["id"], worker, lease_s, None if job["submission_id"] is None else WITHDRAWAL_CHECK_S,
                           lease_token=job["lease_token"]):
                try:
                    raise_if_terminated()  # asked to stop while claiming it: the job goes back at once
                    # what the job says it is doing (a retina fit's epochs) shows; its lines and warnings: above the bar
                    with listening(told.heard, told.write if terminal else None):
                        record, hidden = score(job)
                except KeyboardInterrupt:  # the operator stopped the worker (SIGTERM too: datasets.termination)
                    db.release(job["id"], worker, lease_token=job["lease_token"])  # not a later claim's
                    raise
                except sandbox.Cancelled:  # the job is already `withdrawn` (recorded by withdraw_submission), or
                    # another run's now (queued again by a restore, claimed by another worker): not failed
                    bar.write(f"job {job['id']} ({job['model']} on {job['benchmark']}): {why_superseded(db, job)}; its "
                              "sandbox was stopped")
                    bar.update()
                    continue
                except Exception as error:
                    reason = f"{type(error).__name__}: {error}"
                    if not getattr(error, "user_facing", False) and not reason.strip():
                        reason = traceback.format_exc(limit=3)
                    if db.fail(job["id"], worker, reason, public=public_reason(error), lease_token=job["lease_token"]):
                        counts["failed"] += 1
                        bar.write(f"failed: {job['model']} on {job['benchmark']}: {reason}")
                    else:  # the job is another run's (or withdrawn): its failure, as a score, is not this run's to record
                        bar.write(f"job {job['id']} ({job['model']} on {job['benchmark']}): {why_superseded(db, job)}; "
                                  f"this worker's failure was not recorded: {reason}")
                    bar.update()
                    continue
            record.duration_s = time.perf_counter() - started
            if store_with_retries(db, job, worker, record, hidden, lease_s if store_retry_s is None else store_retry_s,
                                  lambda line: bar.write(line, file=sys.stderr)):
                counts["done"] += 1
            else:  # not a failure of the job: it was counted as one, and zoo work exited 1 with nothing failed
                bar.write(f"job {job['id']} ({job['model']} on {job['benchmark']}): {why_superseded(db, job)}; this "
                          "worker's score was not stored")
            bar.update()
    finally:
        bar.close()
    return counts


#: :func:`work`'s bar: jobs done of all, the time taken, and what the job under way is doing; no estimate of the time
#: left, nor a rate (:class:`_JobActivity`)
JOB_BAR = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} jobs [{elapsed}{postfix}]"


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stream
        return False


class _JobActivity:
    """What :func:`work` shows of the job under way: on a terminal, the bar's postfix (``bncnn on
    retina_embedded.contrast-adaptation: fitting bncnn on embedded:whitenoise, epoch 3 of at most 40, S s each``,
    ``rgc_intermediate on ventral_embedded.V4-temporal: extracting activations, batch 3 of 10``), fitted to the
    terminal's width (:func:`fitted_postfix`); elsewhere, with ``lines``, one line on stderr per job begun and per
    stretch of its work begun with a why (a fit not cached), none per step. Told by the job through
    :func:`datasets.activity.tell`."""

    def __init__(self, bar, total: int, terminal: bool, lines: bool):
        self.bar, self.total, self.terminal, self.lines = bar, total, terminal, lines
        self.job, self.doing, self.begun = "", "", 0

    def job_begins(self, job: str) -> None:
        self.job, self.doing = job, ""
        self.begun += 1
        if self.terminal:
            self._show("", "")
        elif self.lines:
            print(f"scoring {self.begun}/{self.total}: {job}", file=sys.stderr, flush=True)

    def write(self, line: str) -> None:
        """A line of the job's (``resuming ...``, a warning) above the bar, which is redrawn under it."""
        self.bar.write(line, file=sys.stderr)

    def heard(self, text: str, begins: Optional[bool], why: Optional[str]) -> None:
        if begins is None:  # the stretch ended (a fit): what was done, and the job's scoring, until its next stretch
            self.doing = ""
            if self.terminal:
                self._show(text, "scoring")
            return
        if begins:
            self.doing = text
            if why is not None:  # a line of its own says why (a fit not cached); the postfix, what and how far
                if self.terminal:
                    self.write(f"{text} ({why})")
                elif self.lines:
                    print(f"  {text} ({why})", file=sys.stderr, flush=True)
        if self.terminal:
            self._show(self.doing, "" if begins else text)

    def _show(self, doing: str, step: str) -> None:
        self.bar.set_postfix_str(fitted_postfix(self.job, doing, step, self._room()))

    def _room(self) -> Optional[int]:
        """The columns the postfix has on the bar's line, with :data:`BAR_MIN_WIDTH` left to the bar; None where the
        width is not known (not a terminal tqdm can measure)."""
        from tqdm.utils import disp_len

        shown = self.bar.format_dict  # a resized terminal's width read again (tqdm's dynamic_ncols)
        if not shown.get("ncols"):
            return None
        bare = self.bar.format_meter(**{**shown, "postfix": None,
                                        "bar_format": shown["bar_format"].replace("{bar}", "")})
        return shown["ncols"] - disp_len(bare) - len(", ") - BAR_MIN_WIDTH


#: the columns the job bar keeps for its bar when the postfix is fitted to the terminal (:func:`fitted_postfix`); the
#: bar takes what the line leaves (tqdm), and gives up these first as the elapsed time grows (``59:59``, ``1:00:00``)
BAR_MIN_WIDTH = 5

#: the fewest characters of a part cut by :func:`fitted_postfix`, its ``...`` included; a part with less room is left out
POSTFIX_PART_MIN = 12


def fitted_postfix(job: str, doing: str, step: str, room: Optional[int]) -> str:
    """``JOB: DOING, STEP`` (empty parts left out) in at most ``room`` characters (None: all of it). Where it is
    longer, the step is kept whole (its count: ``epoch 3 of at most 40``, ``batch 3 of 10``), what is being done is
    cut next to it (its end: ``...``), and the job's name gets the room left, cut in its middle (``MODEL...BENCHMARK``:
    both ends of ``MODEL on BENCHMARK``); a part with fewer than :data:`POSTFIX_PART_MIN` characters left to it is
    left out. A step longer than the room alone is cut at its end, its count kept. (tqdm cut the line at the terminal's
    right edge: the step went first.)"""
    def joined(job: str, doing: str, step: str) -> str:
        done = ", ".join(filter(None, (doing, step)))
        return f"{job}: {done}" if job and done else job or done

    def cut(text: str, left: int, middle: bool = False) -> str:
        if len(text) <= left:
            return text
        if left < POSTFIX_PART_MIN:
            return ""
        head = left - 3 - ((left - 3) // 2 if middle else 0)
        return text[:head] + "..." + (text[len(text) - (left - 3 - head):] if middle else "")

    whole = joined(job, doing, step)
    if room is None or len(whole) <= room:
        return whole
    step = cut(step, room) or step[:max(room, 0)]
    doing = cut(doing, room - len(step) - (len(", ") if step else 0))
    rest = joined("", doing, step)
    return joined(cut(job, room - len(rest) - (len(": ") if rest else 0), middle=True), doing, step)
