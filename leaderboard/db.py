"""The leaderboard database: the results store's ``scores`` table plus users, tokens, submissions and jobs.

The tables share :class:`benchmarks.records.Base`, so one ``create_all`` makes them all and a score is
always a :class:`~benchmarks.records.ScoreRow` (there is no second score table). SQLite file by default
(``$NEUROZOO_HOME/results.sqlite``, the one results store that ``zoo score`` writes too), PostgreSQL (or any SQLAlchemy database) by URL.

Jobs are keyed by (model, benchmark, settings hash): queueing the same work twice is a no-op, and a job
that is ``done`` is never recomputed. A worker *claims* a job with a conditional UPDATE (the row must still
be queued, or running with an expired lease), so two workers never hold the same job; it renews its lease
with heartbeats while it works; it stores the score rows and marks the job done in ONE transaction, again
conditional on still holding the lease. A worker killed mid-run therefore leaves the job ``running`` with a
lease that expires, no score rows, and the next worker resumes it. The lease is the claim's, not the worker name's:
each claim writes a new ``lease_token``, which ``heartbeat``, ``finish``, ``fail`` and ``release`` require (the job
dict that ``claim`` returns carries it) and act only while the job still runs under it (:func:`_held_by`), so a run
superseded by a later claim under the same worker name (two threads of one process, or the job withdrawn, restored and
claimed again) changes nothing.

Lock order, the one rule every transaction that writes the jobs or submissions keeps (PostgreSQL locks rows; a
transaction taking them in another order deadlocked with one of these, and one of the two failed): **jobs first, in id
order, then submissions, in id order**, each submission locked before its jobs' statuses are read to set its own.

- ``claim``, ``heartbeat``, ``finish``, ``fail``, ``release``: one job, then its submission
  (:meth:`LeaderboardDB._update_submission`); ``expire_lease`` (``scorer.release_dead_workers``): one job.
- ``withdraw_submission``, ``restore_submission``, ``rescore_outdated``: all the submissions' jobs, then the
  submissions (:meth:`LeaderboardDB._lock_submissions`); ``rescore_outdated`` then inserts their new jobs.
- ``requeue_failed``: the failed jobs, then their submissions.
- ``add_submission`` and ``enqueue`` insert new rows only; the users', tokens' and model names' writes touch no job
  or submission.

A decision read before the transaction (a job's status, a submission not withdrawn) is read again, or made a
condition of the UPDATE, once the rows are locked: under PostgreSQL's READ COMMITTED a statement after a lock wait sees
what the other transaction committed, but an UPDATE that waited re-checks its own row only (not a subquery). SQLite has
one write lock: a transaction that reads before it writes takes it first (:meth:`LeaderboardDB._begin_writing`), as its
driver begins the transaction only at the first write.
"""
from __future__ import annotations

import hashlib
import json
import secrets
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from sqlalchemy import (JSON, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, and_, func,
                        or_, select, text, update)
from sqlalchemy.orm import Mapped, Session, aliased, mapped_column

from neurozoo.benchmarks.records import Base, ResultsStore, ScoreRecord, ScoreRow
from neurozoo.datasets.errors import UserFacingError
from neurozoo.leaderboard.submission import TREE_FORMAT, name_skeleton

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
# a withdrawn submission's status, and that of its jobs the withdrawal cancelled (queued or running then)
WITHDRAWN = "withdrawn"
STATUSES = (QUEUED, RUNNING, DONE, FAILED, WITHDRAWN)


def now() -> datetime:
    return datetime.now(timezone.utc)


def _aware(value: Optional[datetime]) -> Optional[datetime]:
    """SQLite returns naive datetimes for timezone-aware columns; they were written in UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


class UserRow(Base):
    __tablename__ = "lb_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TokenRow(Base):
    __tablename__ = "lb_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("lb_users.id"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked: Mapped[bool] = mapped_column(default=False)


class SubmissionRow(Base):
    __tablename__ = "lb_submissions"
    # the same files under the same name once: enforced by the database, so two identical uploads at the same
    # instant cannot both insert (a check before the insert could not stop that)
    __table_args__ = (Index("uq_submission_files", "name", "sha256", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[Optional[int]] = mapped_column(ForeignKey("lb_users.id"), index=True)
    name: Mapped[str] = mapped_column(String(255), index=True)
    folder: Mapped[str] = mapped_column(Text)  # the validated, unpacked submission
    sha256: Mapped[str] = mapped_column(String(64))  # of the submission's files
    # the format of sha256 (submission.tree_sha256; submission.TREE_FORMAT when stored). NULL: a row stored before
    # the column, whose sha256 is format 1. Added to older databases when opened (LeaderboardDB._add_columns)
    sha256_format: Mapped[Optional[int]] = mapped_column(Integer)
    meta: Mapped[dict] = mapped_column(JSON)  # metadata.yaml as parsed
    status: Mapped[str] = mapped_column(String(16), default=QUEUED)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # set while the operator has withdrawn it (LeaderboardDB.withdraw_submission): its scores leave the pages, its rows
    # and files stay. withdrawals: every withdrawal and restoration, oldest first ({action, by, at, reason}). Both
    # added to older databases when opened (LeaderboardDB._add_columns)
    withdrawn_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    withdrawals: Mapped[Optional[list]] = mapped_column(JSON)


class ModelNameRow(Base):
    """Who owns a submitted model's name: the first user to submit it (``user_id`` None: the operator's CLI).
    One row per name in any spelling (``uq_model_names_lower``), and one owner per look-alike skeleton
    (``uq_model_names_skeleton``)."""
    __tablename__ = "lb_model_names"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    user_id: Mapped[Optional[int]] = mapped_column(ForeignKey("lb_users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # the name's skeleton (submission.name_skeleton) on the first name of each skeleton; None on its owner's later
    # look-alikes of it (an owner may use them), so the unique index gives a skeleton one owner. Added and filled in
    # for older databases when opened (LeaderboardDB._claim_skeletons)
    claimed_skeleton: Mapped[Optional[str]] = mapped_column(String(255))


# names compare case-insensitively ('Foo' is 'foo'): enforced by the database too, so two submissions of 'Foo' and
# 'foo' at the same instant, each checked before the other inserted, cannot both claim the name
Index("uq_model_names_lower", func.lower(ModelNameRow.name), unique=True)
# and by skeleton: 'shared-name' and 'shared_name' submitted at the same instant by two users make one owner
Index("uq_model_names_skeleton", ModelNameRow.claimed_skeleton, unique=True)


class JobRow(Base):
    __tablename__ = "lb_jobs"
    __table_args__ = (UniqueConstraint("model", "benchmark", "settings_sha256", name="uq_job_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(String(255), index=True)
    benchmark: Mapped[str] = mapped_column(String(255), index=True)
    settings_sha256: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict] = mapped_column(JSON)  # everything the scorer needs; hashed into settings_sha256
    submission_id: Mapped[Optional[int]] = mapped_column(ForeignKey("lb_submissions.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True, default=QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[Optional[str]] = mapped_column(String(255))
    lease_until: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    # a new random value at each claim, never reset (unlike attempts, which a restore and a release reset): the run the
    # job's worker holds it by, so that a worker sees its run superseded (withdrawn and restored, then claimed again, or
    # taken over after its lease expired: scorer.Heartbeat); added to older databases when opened (_add_columns)
    lease_token: Mapped[Optional[str]] = mapped_column(String(32))
    error: Mapped[Optional[str]] = mapped_column(Text)  # whole: for the submitter and the operator
    # what the public pages show of a failure: the scorer's own one-line reason, never a submission's console output
    # (leaderboard.scorer.public_reason); added to older databases when opened (LeaderboardDB._add_columns)
    public_reason: Mapped[Optional[str]] = mapped_column(Text)
    score_id: Mapped[Optional[int]] = mapped_column(ForeignKey("scores.id"))
    hidden_score_id: Mapped[Optional[int]] = mapped_column(ForeignKey("scores.id"))
    duration_s: Mapped[Optional[float]] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def holds_submissions(url: Optional[str]) -> bool:
    """Whether the database at ``url`` (None: the default store) has a submissions table, looked at without opening it
    as a :class:`LeaderboardDB`, which would add the leaderboard's tables to a results store that has none: ``zoo
    submit --check`` reads, it stores nothing."""
    from sqlalchemy import create_engine, inspect

    from neurozoo.benchmarks.records import default_url

    engine = create_engine(url or default_url())
    try:
        return inspect(engine).has_table(SubmissionRow.__tablename__)
    finally:
        engine.dispose()


def _holder(user: Optional[str]) -> str:
    """Who holds a model name, in a message: a user, or (None) the operator's CLI."""
    return f"user {user!r}" if user else "the operator"


def check_user_name(user: str, what: str = "user name") -> None:
    if not user or user != user.strip() or len(user) > 255 or not user.isprintable():
        raise UserFacingError(f"{what} {user!r}: expected 1 to 255 printable characters, no surrounding spaces")


def settings_sha256(spec: Dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _outdated(spec: Optional[dict], hidden_score_id: Optional[int], split_key: Optional[str] = None) -> Optional[str]:
    """Why a done job's score is outdated (:func:`leaderboard.zoo.outdated_reason`), or None. A job without a
    hidden-split score (a retina benchmark's) is not outdated by another secret: the secret drew no split for it."""
    from neurozoo.leaderboard.zoo import outdated_reason

    spec = dict(spec or {})
    if hidden_score_id is None:
        spec.pop("split", None)
    return outdated_reason(spec, split_key)


def _not_withdrawn():
    """Where a job is not of a withdrawn submission: the jobs the pages show, rank and queue again."""
    withdrawn = select(SubmissionRow.id).where(SubmissionRow.withdrawn_at.is_not(None))
    return JobRow.submission_id.is_(None) | JobRow.submission_id.not_in(withdrawn)


def check_lease_token(lease_token: Any) -> str:
    """``lease_token`` if it names a claim: a non-empty str, the ``lease_token`` of the job dict that
    :meth:`LeaderboardDB.claim` returned. A call that names none is refused (TypeError, ValueError for ''): by worker
    name alone it acted for whichever claim held the job under that name, a run superseded under it included."""
    if not isinstance(lease_token, str):
        raise TypeError(f"lease_token: expected the claim's token, the str in the 'lease_token' of the job that "
                        f"claim() returned; got {lease_token!r}")
    if not lease_token:
        raise ValueError("lease_token: expected the claim's token, the 'lease_token' of the job that claim() "
                         "returned; got ''")
    return lease_token


def _held_by(worker: str, lease_token: str):
    """Where the job is running under ``worker``'s claim whose ``lease_token`` (what :meth:`LeaderboardDB.claim`
    returned) is given (:func:`check_lease_token`): a later claim, under any worker name, wrote another token, and a row
    claimed by code older than the token has none (NULL, never equal to a token; it comes back when its lease
    expires)."""
    token = check_lease_token(lease_token)
    return (JobRow.status == RUNNING) & (JobRow.worker == worker) & (JobRow.lease_token == token)


def _job_dict(row: JobRow) -> Dict[str, Any]:
    out = {c.name: getattr(row, c.name) for c in JobRow.__table__.columns}
    for key in ("lease_until", "heartbeat_at", "created_at", "updated_at"):
        out[key] = _aware(out[key])
    return out


class LeaderboardDB(ResultsStore):
    """The results store plus the leaderboard's tables and the job queue."""

    def __init__(self, url: Optional[str] = None, echo: bool = False):
        super().__init__(url, echo=echo)
        if self.engine.dialect.name == "sqlite":
            from sqlalchemy import event

            @event.listens_for(self.engine, "connect")
            def _sqlite_pragmas(connection, _record):  # concurrent readers while a worker writes
                cursor = connection.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")  # waits for a lock as long as any statement: ResultsStore
                cursor.close()

            self.engine.dispose()
        self._add_unique_index(SubmissionRow, "uq_submission_files", lambda: (
            "identical submissions (same name and files) are stored twice, so the unique index uq_submission_files "
            "cannot be added; new duplicates are refused by a check only"))
        self._add_unique_index(ModelNameRow, "uq_model_names_lower", self._colliding_names)
        self._add_columns(ModelNameRow, ["claimed_skeleton"])
        if not self._has_index(ModelNameRow, "uq_model_names_skeleton"):  # an upgrade not yet done, or interrupted
            self._claim_skeletons()
        self._add_unique_index(ModelNameRow, "uq_model_names_skeleton", lambda: (
            "lb_model_names holds two names claiming one skeleton (submitted while the database was being upgraded), "
            "so the unique index uq_model_names_skeleton cannot be added; look-alikes are refused by a check only; set "
            "claimed_skeleton to NULL on all but the earliest of each and open the database again"))
        self._add_columns(JobRow, ["public_reason", "lease_token"])
        self._add_columns(SubmissionRow, ["withdrawn_at", "withdrawals", "sha256_format"])

    def _add_columns(self, table, names: List[str]) -> List[str]:
        """``create_all`` makes a new table whole but adds no column to an older database's table: each of ``names``
        that is missing is added (nullable, so its rows read None). Returns those this call added."""
        from sqlalchemy import inspect
        from sqlalchemy.exc import OperationalError, ProgrammingError

        present, added = {column["name"] for column in inspect(self.engine).get_columns(table.__tablename__)}, []
        for name in names:
            if name in present:
                continue
            kind = table.__table__.c[name].type.compile(dialect=self.engine.dialect)
            try:
                with self.engine.begin() as connection:
                    connection.execute(text(f"ALTER TABLE {table.__tablename__} ADD COLUMN {name} {kind}"))
                added.append(name)
            except (OperationalError, ProgrammingError) as error:  # another process added it at the same time
                if "duplicate column" not in str(error) and "already exists" not in str(error):
                    raise
        return added

    def _has_index(self, table, name: str) -> bool:
        """Whether the database holds the (column) index ``name`` on ``table``: made last in an upgrade, so a process
        killed before it leaves the upgrade to be done again at the next opening."""
        import warnings

        from sqlalchemy import inspect
        from sqlalchemy.exc import SAWarning

        with warnings.catch_warnings():  # SQLite's expression indexes (uq_model_names_lower) are skipped, with a warning
            warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index", SAWarning)
            indexes = inspect(self.engine).get_indexes(table.__tablename__)
        return any(index["name"] == name for index in indexes)

    def _add_unique_index(self, table, name: str, why_not) -> None:
        """``create_all`` makes the index with a new table, not on an older database's existing one. Rows that
        already break it leave it out, with a warning (``why_not()``: which rows) rather than a refusal to open the
        database: the check before each insert still refuses new ones."""
        import warnings

        from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
        from sqlalchemy.schema import CreateIndex

        [index] = [i for i in table.__table__.indexes if i.name == name]
        try:  # IF NOT EXISTS, not checkfirst: SQLAlchemy does not reflect SQLite's expression indexes (and warns)
            with self.engine.begin() as connection:
                connection.execute(CreateIndex(index, if_not_exists=True))
        except IntegrityError:
            warnings.warn(f"{self.shown_url}: {why_not()}", stacklevel=3)
        except (OperationalError, ProgrammingError) as error:
            if "already exists" not in str(error):  # another process added it at the same time
                raise

    @staticmethod
    def _names_by(session: Session, key) -> Dict[str, list]:
        """Every model name row (id, name, user_id, owner's user name), oldest first, grouped by ``key(name)``."""
        rows = session.execute(select(ModelNameRow.id, ModelNameRow.name, ModelNameRow.user_id, UserRow.name)
                               .join(UserRow, ModelNameRow.user_id == UserRow.id, isouter=True)
                               .order_by(ModelNameRow.id)).all()
        groups: Dict[str, list] = {}
        for row in rows:
            groups.setdefault(key(row[1]), []).append(row)
        return groups

    @staticmethod
    def _named(rows) -> str:
        return " and ".join(f"{name!r} ({_holder(user)})" for _id, name, _user_id, user in rows)

    def _colliding_names(self) -> str:
        """What keeps ``uq_model_names_lower`` out: the model names stored in several spellings, with their owners."""
        with Session(self.engine) as session:
            spellings = self._names_by(session, str.lower)
        clashes = "; ".join(self._named(group) for group in spellings.values() if len(group) > 1)
        return (f"lb_model_names holds model names that differ only in case: {clashes}; the unique index "
                "uq_model_names_lower cannot be added, so a name is refused in another spelling by a check only (two "
                "simultaneous submissions could still claim it twice); rename or delete all but one spelling of each "
                "in lb_model_names and open the database again")

    def _claim_skeletons(self) -> None:
        """Fill in ``claimed_skeleton`` in a database made before it: each skeleton goes to its earliest name. Names
        of another owner with the same skeleton (stored before look-alikes were refused, or by two submissions at the
        same instant) cannot be refused now: their owners keep them, a new look-alike goes to the earliest name's
        owner alone, and a warning names them."""
        import warnings

        from sqlalchemy.exc import IntegrityError

        for attempt in (1, 2):
            try:
                with Session(self.engine) as session, session.begin():
                    self._begin_writing(session)
                    claimed = set(session.scalars(select(ModelNameRow.claimed_skeleton)
                                                  .where(ModelNameRow.claimed_skeleton.is_not(None))))
                    groups = self._names_by(session, name_skeleton)
                    for skeleton, group in groups.items():
                        if skeleton not in claimed:  # else a submission claimed it since the column was added
                            session.execute(update(ModelNameRow).where(ModelNameRow.id == group[0].id)
                                            .values(claimed_skeleton=skeleton))
                break
            except IntegrityError:  # a submission claimed one of them between the read and the update: read again
                if attempt == 2:
                    raise
        clashes = "; ".join(self._named(group) for group in groups.values() if len({row[2] for row in group}) > 1)
        if clashes:
            warnings.warn(f"{self.shown_url}: lb_model_names holds look-alike names of different owners: {clashes}; "
                          "each owner keeps their names, and a new look-alike goes to the first one's owner only",
                          stacklevel=3)

    def _begin_writing(self, session: Session) -> None:
        """SQLite: take the write lock at once (BEGIN IMMEDIATE). A concurrent writer then waits (busy_timeout)
        and reads what this transaction wrote; with a deferred BEGIN, a transaction that had read before the
        other committed failed with 'database is locked'. Other databases lock rows as they write."""
        if self.engine.dialect.name == "sqlite":
            session.execute(text("BEGIN IMMEDIATE"))

    # ---------------------------------------------------------------------------------------- users / tokens
    def create_token(self, user: str) -> str:
        """A new random token for ``user`` (created if new); only its sha256 is stored."""
        check_user_name(user)
        token = secrets.token_urlsafe(32)
        while token.startswith("-"):  # one in 64 would read as an option on a command line (`zoo token revoke TOKEN`)
            token = secrets.token_urlsafe(32)
        from sqlalchemy.exc import IntegrityError

        try:
            self._add_token(user, token)
        except IntegrityError:  # another process made the new user between our check and insert: it is found now
            self._add_token(user, token)
        return token

    def _add_token(self, user: str, token: str) -> None:
        with Session(self.engine) as session, session.begin():
            row = session.scalars(select(UserRow).where(UserRow.name == user)).first()
            if row is None:
                row = UserRow(name=user, created_at=now())
                session.add(row)
                session.flush()
            session.add(TokenRow(user_id=row.id, token_sha256=hash_token(token), created_at=now()))

    def revoke_tokens(self, token: Optional[str] = None, user: Optional[str] = None) -> int:
        """Revoke ``token``, or every token of ``user``; returns how many were live. A revoked token is refused
        from then on (:meth:`user_for_token`); its row stays, so the user keeps their submissions. The count is of the
        rows this call's UPDATE changed (still live when it wrote them): two revocations at once each counted the
        tokens they had read as live before the other wrote."""
        if (token is None) == (user is None):
            raise ValueError("give a token or a user (one of the two)")
        with Session(self.engine) as session, session.begin():
            which = (TokenRow.token_sha256 == hash_token(token) if token is not None
                     else TokenRow.user_id.in_(select(UserRow.id).where(UserRow.name == user)))
            return session.execute(update(TokenRow).where(which, TokenRow.revoked.is_(False))
                                   .values(revoked=True)).rowcount

    def tokens(self, user: Optional[str] = None) -> List[Dict[str, Any]]:
        """Every token (or ``user``'s), oldest first: id, user, the first 8 hex digits of its sha256 (the secret
        itself is never stored), created_at, revoked."""
        with Session(self.engine) as session:
            query = (select(TokenRow.id, UserRow.name, TokenRow.token_sha256, TokenRow.created_at, TokenRow.revoked)
                     .join(UserRow, TokenRow.user_id == UserRow.id).order_by(TokenRow.id))
            if user is not None:
                query = query.where(UserRow.name == user)
            return [{"id": id_, "user": name, "sha256_prefix": digest[:8], "created_at": _aware(created),
                     "revoked": bool(revoked)} for id_, name, digest, created, revoked in session.execute(query)]

    def user_for_token(self, token: Optional[str]) -> Optional[str]:
        if not token:
            return None
        with Session(self.engine) as session:
            row = session.execute(select(UserRow.name).join(TokenRow, TokenRow.user_id == UserRow.id)
                                  .where(TokenRow.token_sha256 == hash_token(token), TokenRow.revoked.is_(False))).first()
            return row[0] if row else None

    def _user_id(self, session: Session, user: Optional[str]) -> Optional[int]:
        if user is None:
            return None
        return session.scalars(select(UserRow.id).where(UserRow.name == user)).first()

    # ------------------------------------------------------------------------------------------ submissions
    def add_submission(self, name: str, folder: str, sha256: str, meta: dict, user: Optional[str],
                       jobs: Iterable[Dict[str, Any]], legacy_sha256: Optional[str] = None,
                       store_files: Optional[Callable[[], None]] = None) -> int:
        """Store a submission and queue its jobs in one transaction; returns the submission id. The name must
        be new or already the user's (:class:`leaderboard.submission.NameTaken` otherwise). ``sha256``: the files'
        :func:`~leaderboard.submission.tree_sha256` in its current format; ``legacy_sha256``: in format 1, which
        the rows stored before the current format hold (:meth:`_refuse_identical`). ``store_files``: puts the files
        in ``folder`` (:func:`~leaderboard.submission.keep`), called once the checks passed and the rows are
        written, before they are committed: never for a refused submission, and a worker that sees the jobs finds
        the folder. A commit failing after it (the connection lost) leaves that folder, whole: a concurrent submission
        of the same files, held at its insert until this transaction ends, may find it and take it as its own."""
        from sqlalchemy.exc import IntegrityError

        jobs = list(jobs)  # read again by the second try
        try:
            return self._add_submission(name, folder, sha256, meta, user, jobs, legacy_sha256, store_files)
        except IntegrityError:
            # a concurrent submission of the name (in any spelling) or of the same files committed first, after
            # this one's checks: run again, the checks see it now and refuse as they would have (NameTaken,
            # AlreadySubmitted), or pass (the same user's name) and the submission is stored
            return self._add_submission(name, folder, sha256, meta, user, jobs, legacy_sha256, store_files)

    def _claim_name(self, session: Session, name: str, user: Optional[str]) -> None:
        """Refuse a name that is not ``user``'s (:meth:`_check_name`); record ``user`` as its owner when it is new,
        and as its skeleton's unless already theirs (where the check missed another owner's, the index refuses)."""
        if not self._check_name(session, name, user):
            user_id = self._user_id(session, user)
            holder = self._skeleton_holder(session, name)
            session.add(ModelNameRow(name=name, user_id=user_id, created_at=now(), claimed_skeleton=(
                None if holder is not None and holder.user_id == user_id else name_skeleton(name))))
            session.flush()

    def _check_name(self, session: Session, name: str, user: Optional[str]) -> List[ModelNameRow]:
        """The rows of ``name`` in any spelling (empty: a new name); NameTaken when the name is not ``user``'s."""
        from neurozoo.leaderboard.submission import NameTaken

        user_id = self._user_id(session, user)
        # names compare case-insensitively: 'RGC_Intermediate' beside rgc_intermediate impersonated it
        key = name.lower()
        owned = list(session.scalars(select(ModelNameRow).where(func.lower(ModelNameRow.name) == key)))
        owner = next((row for row in owned if row.name == name), owned[0] if owned else None)
        owners = {row.user_id for row in owned} if owned else \
            set(session.scalars(select(SubmissionRow.user_id).where(func.lower(SubmissionRow.name) == key)))
        builtin = session.scalars(select(JobRow.model).where(func.lower(JobRow.model) == key,
                                                             JobRow.submission_id.is_(None))).first()
        if builtin is not None:
            raise NameTaken(f"metadata.yaml: name {name!r} is taken by a model of the built-in zoo ({builtin}); "
                            "choose another name")
        if owners and owners != {user_id}:
            holder = session.scalars(select(UserRow.name).where(UserRow.id.in_(owners - {None}))).first()
            spelled = "" if owner is None or owner.name == name else f" (as {owner.name!r})"
            raise NameTaken(f"metadata.yaml: name {name!r} belongs to {_holder(holder)}{spelled}; choose another name")
        if not owned:
            self._refuse_lookalike(session, name, user_id)
        return owned

    @staticmethod
    def _skeleton_holder(session: Session, name: str) -> Optional[ModelNameRow]:
        """The name that claimed ``name``'s skeleton (:func:`~leaderboard.submission.name_skeleton`), if any."""
        return session.scalars(select(ModelNameRow)
                               .where(ModelNameRow.claimed_skeleton == name_skeleton(name))).first()

    def _refuse_lookalike(self, session: Session, name: str, user_id: Optional[int]) -> None:
        """NameTaken for a new name that looks like another owner's ('shared_name', 'SHARED-NARNE' beside
        'shared-name'): its skeleton is claimed by another owner's name (``uq_model_names_skeleton``)."""
        from neurozoo.leaderboard.submission import NameTaken

        row = self._skeleton_holder(session, name)
        if row is not None and row.user_id != user_id:
            holder = session.scalars(select(UserRow.name).where(UserRow.id == row.user_id)).first()
            raise NameTaken(f"metadata.yaml: name {name!r} looks like {row.name!r}, which belongs to "
                            f"{_holder(holder)}; choose another name")

    def refuse_identical(self, name: str, sha256: str, legacy_sha256: Optional[str] = None) -> None:
        """:class:`~leaderboard.submission.AlreadySubmitted` where :meth:`add_submission` would refuse ``name``'s files
        (``sha256``, ``legacy_sha256`` as there) as identical to a stored submission: its own check
        (:meth:`_refuse_identical`), read only, for ``zoo submit --check``, which had said it "would queue" them."""
        with Session(self.engine) as session:
            self._refuse_identical(session, name, sha256, legacy_sha256)

    @staticmethod
    def _refuse_identical(session: Session, name: str, sha256: str, legacy_sha256: Optional[str]) -> None:
        """Its jobs have the same keys: a new row would get none and stay queued for good. Each row is compared in
        its own digest format: ``sha256`` (the current format) with the rows stored in it, ``legacy_sha256`` (format
        1) with those stored before it (``sha256_format`` NULL), whose digests are format 1's."""
        same = and_(SubmissionRow.sha256_format == TREE_FORMAT, SubmissionRow.sha256 == sha256)
        if legacy_sha256 is not None:
            same = or_(same, and_(SubmissionRow.sha256_format.is_(None), SubmissionRow.sha256 == legacy_sha256))
        earlier = session.scalars(select(SubmissionRow).where(SubmissionRow.name == name, same)
                                  .order_by(SubmissionRow.id)).first()
        if earlier is not None:
            from neurozoo.leaderboard.submission import AlreadySubmitted

            retry = (f", or, where it failed for the server's reasons, ask the operator to score it again "
                     f"(zoo work --retry-submission {earlier.id})" if earlier.status == FAILED else "")
            raise AlreadySubmitted(f"submission: identical to submission {earlier.id} ({name}, sha256 "
                                   f"{earlier.sha256[:12]}, status {earlier.status}); change the files to submit "
                                   f"again{retry}")

    def _add_submission(self, name, folder, sha256, meta, user, jobs, legacy_sha256, store_files=None) -> int:
        with Session(self.engine) as session, session.begin():
            self._begin_writing(session)
            if user is not None and self._user_id(session, user) is None:
                session.add(UserRow(name=user, created_at=now()))
                session.flush()
            self._claim_name(session, name, user)
            self._refuse_identical(session, name, sha256, legacy_sha256)  # the usual case; the index covers a race
            row = SubmissionRow(user_id=self._user_id(session, user), name=name, folder=folder, sha256=sha256,
                                sha256_format=TREE_FORMAT, meta=meta, status=QUEUED, created_at=now())
            session.add(row)
            session.flush()
            for job in jobs:
                self._enqueue(session, job["model"], job["benchmark"], job["spec"], submission_id=row.id)
            session.flush()  # a conflict with a concurrent submission raises here, before the files are stored
            if store_files is not None:
                store_files()
            return row.id

    def submission(self, submission_id: int) -> Optional[Dict[str, Any]]:
        """The submission's row, jobs and owner; None if there is none, an id past a 64-bit integer included (SQLite
        raised OverflowError binding it: a 500 from ``/api/submissions/{id}``, a traceback from `zoo submission`)."""
        if not -2 ** 63 <= submission_id < 2 ** 63:
            return None
        with Session(self.engine) as session:
            row = session.get(SubmissionRow, submission_id)
            if row is None:
                return None
            out = {c.name: getattr(row, c.name) for c in SubmissionRow.__table__.columns}
            out["withdrawn_at"], out["withdrawals"] = _aware(row.withdrawn_at), row.withdrawals or []
            out["user"] = session.scalars(select(UserRow.name).where(UserRow.id == row.user_id)).first()
            out["jobs"] = [_job_dict(j) for j in session.scalars(select(JobRow).where(JobRow.submission_id == row.id)
                                                                .order_by(JobRow.id))]
        for job in out["jobs"]:  # a done job scored under an earlier version of its benchmark: not on the board
            job["outdated"] = _outdated(job["spec"], job["hidden_score_id"]) if job["status"] == DONE else None
        return out

    def submission_metadata(self) -> Dict[str, Dict[str, Any]]:
        """Per submitted model name, the metadata (``metadata.yaml`` as parsed) of the submission whose scores the
        board shows: that of its newest done job, else (none done yet) its newest submission; ``submission``: its id.
        Built-in models have none."""
        with Session(self.engine) as session:
            chosen = {name: id_ for id_, name in session.execute(select(SubmissionRow.id, SubmissionRow.name)
                                                                  .where(SubmissionRow.withdrawn_at.is_(None))
                                                                  .order_by(SubmissionRow.id))}
            chosen.update({model: id_ for model, id_ in session.execute(
                select(JobRow.model, JobRow.submission_id)
                .where(JobRow.status == DONE, JobRow.submission_id.is_not(None), _not_withdrawn())
                .order_by(JobRow.updated_at, JobRow.id))})
            metas = dict(session.execute(select(SubmissionRow.id, SubmissionRow.meta)
                                         .where(SubmissionRow.id.in_(list(chosen.values())))).all())
        return {name: {**(metas.get(id_) or {}), "submission": id_} for name, id_ in chosen.items()}

    def submissions(self) -> List[Dict[str, Any]]:
        with Session(self.engine) as session:
            ids = list(session.scalars(select(SubmissionRow.id).order_by(SubmissionRow.id)))
        return [self.submission(i) for i in ids]

    def withdraw_submission(self, submission_id: int, reason: str, by: str) -> int:
        """Take submission ``submission_id`` off the board: its scores and failures leave the ranking and the pages,
        its queued and running jobs are cancelled (status ``withdrawn``; a worker still scoring one has its score
        refused by :meth:`finish`), and who, when and why is recorded. Nothing is deleted, and its model name stays its
        user's. Returns how many jobs were cancelled; :meth:`restore_submission` undoes it."""
        if not reason or not reason.strip():
            raise UserFacingError("--reason: say why the submission is withdrawn (it is recorded with it)")
        with Session(self.engine) as session, session.begin():
            row = self._lock_submission(session, submission_id)
            if row.withdrawn_at is not None:
                raise UserFacingError(f"submission {submission_id} ({row.name}) is already withdrawn "
                                      f"({row.withdrawals[-1]['reason']})")
            t = now()
            cancelled = session.execute(update(JobRow).where(JobRow.submission_id == submission_id,
                                                             JobRow.status.in_([QUEUED, RUNNING]))
                                        .values(status=WITHDRAWN, worker=None, lease_until=None, updated_at=t)).rowcount
            row.withdrawn_at, row.status = t, WITHDRAWN
            row.withdrawals = [*(row.withdrawals or []), {"action": "withdraw", "by": by, "at": t.isoformat(),
                                                          "reason": reason.strip()}]
            return cancelled

    def restore_submission(self, submission_id: int, by: str, reason: Optional[str] = None) -> int:
        """Undo :meth:`withdraw_submission`: its scores are back on the board and the jobs it cancelled are queued
        again (attempts not counted); recorded as the withdrawal was. Returns how many jobs were queued."""
        with Session(self.engine) as session, session.begin():
            row = self._lock_submission(session, submission_id)
            if row.withdrawn_at is None:
                raise UserFacingError(f"submission {submission_id} ({row.name}) is not withdrawn")
            t = now()
            queued = session.execute(update(JobRow).where(JobRow.submission_id == submission_id,
                                                          JobRow.status == WITHDRAWN)
                                     .values(status=QUEUED, attempts=0, updated_at=t)).rowcount
            row.withdrawn_at = None
            row.withdrawals = [*(row.withdrawals or []), {"action": "restore", "by": by, "at": t.isoformat(),
                                                          "reason": (reason or "").strip() or None}]
            session.flush()
            self._update_submission(session, submission_id)
            return queued

    def _lock_submission(self, session: Session, submission_id: int) -> SubmissionRow:
        """Lock submission ``submission_id``'s jobs, then its row (returned), for a change of the whole submission
        (:meth:`_lock_submissions`)."""
        row = self._lock_submissions(session, [submission_id]).get(submission_id)
        if row is None:
            raise UserFacingError(f"no submission {submission_id} in {self.shown_url}")
        return row

    def _lock_submissions(self, session: Session, submission_ids: Iterable[int]) -> Dict[int, SubmissionRow]:
        """Lock the jobs of the submissions ``submission_ids`` (in id order), then their rows (in id order), as the
        module's lock order says; returns the rows read after the locks, by id. A withdrawal that took the
        submission's row first deadlocked on PostgreSQL with a worker storing a score (one of the two failed). On
        SQLite the write lock is taken at once (:meth:`_begin_writing`). The rows are locked FOR NO KEY UPDATE: their
        key never changes, and a new job's reference to its submission (``rescore_outdated``) is not refused."""
        ids = sorted(set(submission_ids))
        self._begin_writing(session)
        session.execute(select(JobRow.id).where(JobRow.submission_id.in_(ids)).order_by(JobRow.id).with_for_update())
        rows = session.scalars(select(SubmissionRow).where(SubmissionRow.id.in_(ids)).order_by(SubmissionRow.id)
                               .with_for_update(key_share=True).execution_options(populate_existing=True))
        return {row.id: row for row in rows}

    # ------------------------------------------------------------------------------------------------- jobs
    def _enqueue(self, session: Session, model: str, benchmark: str, spec: dict,
                 submission_id: Optional[int] = None) -> int:
        key = settings_sha256(spec)
        existing = session.scalars(select(JobRow).where(JobRow.model == model, JobRow.benchmark == benchmark,
                                                        JobRow.settings_sha256 == key)).first()
        if existing is not None:
            return existing.id
        row = JobRow(model=model, benchmark=benchmark, settings_sha256=key, spec=spec, submission_id=submission_id,
                     status=QUEUED, attempts=0, created_at=now(), updated_at=now())
        session.add(row)
        session.flush()
        return row.id

    def enqueue(self, model: str, benchmark: str, spec: dict) -> int:
        """Queue (model, benchmark, spec) unless that exact job already exists; returns its id."""
        from sqlalchemy.exc import IntegrityError

        try:
            with Session(self.engine) as session, session.begin():
                return self._enqueue(session, model, benchmark, spec)
        except IntegrityError:  # another process queued the same job between our check and insert
            with Session(self.engine) as session, session.begin():
                return self._enqueue(session, model, benchmark, spec)

    def job(self, job_id: int) -> Optional[Dict[str, Any]]:
        with Session(self.engine) as session:
            row = session.get(JobRow, job_id)
            return _job_dict(row) if row is not None else None

    def job_holder(self, job_id: int, connection=None) -> Optional[Tuple[str, Optional[str], Optional[str]]]:
        """(status, worker, lease_token) of the job, None if there is no such job: a primary-key read of three columns,
        what a worker reads every second to see that its run is no longer the job's (:class:`leaderboard.scorer.
        Heartbeat`). ``connection``: one the caller holds (:meth:`autocommit_connection`), on which the read is one
        statement; a connection from the pool costs four round trips on PostgreSQL (the pool's ping, BEGIN, the read,
        ROLLBACK)."""
        if connection is None:
            with self.engine.connect() as connection:
                return self.job_holder(job_id, connection)
        row = connection.execute(select(JobRow.status, JobRow.worker, JobRow.lease_token)
                                 .where(JobRow.id == job_id)).first()
        return None if row is None else tuple(row)

    def autocommit_connection(self):
        """A connection of its own in autocommit mode (close it when done), for a worker's reads of its job every
        second (:meth:`job_holder`): each is one statement, neither pinged first nor wrapped in a transaction."""
        return self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")

    def jobs(self, status: Optional[str] = None, ids: Optional[Iterable[int]] = None) -> List[Dict[str, Any]]:
        statement = select(JobRow).order_by(JobRow.id)
        if status is not None:
            statement = statement.where(JobRow.status == status)
        if ids is not None:
            statement = statement.where(JobRow.id.in_(list(ids)))
        with Session(self.engine) as session:
            return [_job_dict(row) for row in session.scalars(statement)]

    def claim(self, worker: str, lease_s: float = 60.0, max_attempts: int = 3,
              ids: Optional[Iterable[int]] = None) -> Optional[Dict[str, Any]]:
        """Take the oldest job that is queued, or running with an expired lease (its worker died), under a new
        ``lease_token``: the run the worker holds it by, which it names to :meth:`heartbeat`, :meth:`finish`,
        :meth:`fail` and :meth:`release` (:func:`_held_by`) and checks between renewals
        (:class:`leaderboard.scorer.Heartbeat`)."""
        ids = None if ids is None else list(ids)
        while True:
            t = now()
            with Session(self.engine) as session:
                # its submission_id too (never changed): the submission's status is set without reading the job again
                statement = (select(JobRow.id, JobRow.status, JobRow.attempts, JobRow.submission_id)
                             .where((JobRow.status == QUEUED) | ((JobRow.status == RUNNING) & (JobRow.lease_until < t)))
                             .order_by(JobRow.id).limit(1))
                if ids is not None:
                    statement = statement.where(JobRow.id.in_(ids))
                candidate = session.execute(statement).first()
            if candidate is None:
                return None
            job_id, status, attempts, submission_id = candidate
            with Session(self.engine) as session, session.begin():
                if attempts >= max_attempts:
                    reason = f"gave up after {attempts} attempts (the worker died each time)"
                    gave_up = session.execute(
                        update(JobRow).where(JobRow.id == job_id, JobRow.status == status, JobRow.attempts == attempts)
                        .values(status=FAILED, updated_at=t, worker=None, error=reason, public_reason=reason)).rowcount
                    if gave_up == 1:  # else another worker changed the job first, and set its submission's status
                        self._update_submission(session, submission_id)
                    continue
                claimed = session.execute(
                    update(JobRow).where(JobRow.id == job_id, JobRow.status == status, JobRow.attempts == attempts)
                    .values(status=RUNNING, attempts=attempts + 1, worker=worker, heartbeat_at=t, updated_at=t,
                            lease_until=t + timedelta(seconds=lease_s), error=None, public_reason=None,
                            lease_token=secrets.token_hex(16))).rowcount
                if claimed == 1:
                    self._update_submission(session, submission_id)
            if claimed == 1:
                return self.job(job_id)

    def expire_lease(self, job: Dict[str, Any]) -> bool:
        """End the lease of the claim ``job`` (as :meth:`jobs` read it: a worker's found dead,
        :func:`leaderboard.scorer.release_dead_workers`), so that the next claim takes the job over at once. A
        compare-and-set in one UPDATE: only while the job still runs under that claim, its worker, its lease token and
        its lease as read (no token: a claim of code older than the token, whose later claims write a new lease), so a
        job claimed again since the read, under any worker name (the dead worker's pid reused: the same one), keeps its
        new claim's lease. Whether it was ended."""
        same_claim = [JobRow.id == job["id"], JobRow.status == RUNNING, JobRow.worker == job["worker"]]
        for column in (JobRow.lease_token, JobRow.lease_until):
            value = job[column.key]
            same_claim.append(column.is_(None) if value is None else column == value)
        with Session(self.engine) as session, session.begin():
            return session.execute(update(JobRow).where(*same_claim).values(lease_until=now())).rowcount == 1

    def heartbeat(self, job_id: int, worker: str, lease_s: float = 60.0, *, lease_token: str) -> bool:
        """Renew the lease of the job if ``worker``'s claim ``lease_token`` still holds it (:func:`_held_by`)."""
        t, held = now(), _held_by(worker, lease_token)
        with Session(self.engine) as session, session.begin():
            return session.execute(update(JobRow).where(JobRow.id == job_id, held)
                                   .values(heartbeat_at=t, lease_until=t + timedelta(seconds=lease_s))).rowcount == 1

    def finish(self, job_id: int, worker: str, record: ScoreRecord, hidden: Optional[ScoreRecord] = None,
               duration_s: Optional[float] = None, *, lease_token: str) -> bool:
        """Store the score row(s) and mark the job done, all in one transaction, if ``worker``'s claim
        ``lease_token`` still holds it (:func:`_held_by`). A withdrawal of its submission at the same time waits for it
        or is waited for (the first to commit wins): a job withdrawn first keeps no score (False), a job done first
        stays done (its score off the board while the submission is withdrawn, like the scores stored before it)."""
        held = _held_by(worker, lease_token)
        with Session(self.engine) as session, session.begin():
            # SQLite: the status read below and the writes in one transaction (its driver began it at the first
            # write, so a withdrawal committed between the two was overwritten by `done`); PostgreSQL locks the row,
            # and one another transaction held locked is checked against the condition again once that one commits
            self._begin_writing(session)
            job = session.scalars(select(JobRow).where(JobRow.id == job_id, held).with_for_update()).first()
            if job is None:  # no such job, or not (or no longer) this claim's
                return False
            row = record.to_row()
            session.add(row)
            hidden_row = hidden.to_row() if hidden is not None else None
            if hidden_row is not None:
                session.add(hidden_row)
            session.flush()
            job.status, job.score_id, job.updated_at, job.duration_s = DONE, row.id, now(), duration_s
            job.hidden_score_id = hidden_row.id if hidden_row is not None else None
            job.lease_until = None
            self._update_submission(session, job.submission_id)
            record.id = row.id
        return True

    def fail(self, job_id: int, worker: str, reason: str, public: Optional[str] = None, *, lease_token: str) -> bool:
        """Mark the job failed with ``reason`` (whole, for the submitter and the operator) and ``public``, what the
        public pages show (the scorer's own words: :func:`leaderboard.scorer.public_reason`), if ``worker``'s claim
        ``lease_token`` still holds it (:func:`_held_by`)."""
        return self._end_claim(job_id, _held_by(worker, lease_token), status=FAILED, error=reason[:4000],
                               public_reason=None if public is None else public[:4000])

    def release(self, job_id: int, worker: str, *, lease_token: str) -> bool:
        """Hand a job back to the queue, its attempt not counted (the worker was stopped, not the job's fault), if
        ``worker``'s claim ``lease_token`` still holds it (:func:`_held_by`)."""
        return self._end_claim(job_id, _held_by(worker, lease_token), status=QUEUED, attempts=JobRow.attempts - 1,
                               worker=None)

    def _end_claim(self, job_id: int, held, **values) -> bool:
        """Write ``values`` on the job, its lease ended, where ``held`` (:func:`_held_by`), then its submission's
        status. The job in one statement: the UPDATE returns the job's submission (RETURNING: SQLite 3.35 or later),
        which had been read again after it."""
        with Session(self.engine) as session, session.begin():
            changed = session.execute(update(JobRow).where(JobRow.id == job_id, held)
                                      .values(**values, lease_until=None, updated_at=now())
                                      .returning(JobRow.submission_id)).first()
            if changed is not None:
                self._update_submission(session, changed.submission_id)
            return changed is not None

    def requeue_failed(self, ids: Optional[Iterable[int]] = None) -> int:
        """Queue the failed jobs (all, or ``ids``) again, attempts reset, those of withdrawn submissions left out.
        The jobs are locked in id order first (the UPDATE alone locked them in the order it found them, and
        deadlocked with a withdrawal on PostgreSQL); then the UPDATE checks again that each is failed and its
        submission not withdrawn (a withdrawal it had waited for committed meanwhile: its job had been queued)."""
        candidates = select(JobRow.id, JobRow.submission_id).where(JobRow.status == FAILED, _not_withdrawn())
        if ids is not None:
            candidates = candidates.where(JobRow.id.in_(list(ids)))
        with Session(self.engine) as session, session.begin():
            self._begin_writing(session)
            locked = session.execute(candidates.order_by(JobRow.id).with_for_update()).all()
            count = session.execute(update(JobRow).where(JobRow.id.in_([job_id for job_id, _ in locked]),
                                                         JobRow.status == FAILED, _not_withdrawn())
                                    .values(status=QUEUED, attempts=0, error=None, public_reason=None,
                                            updated_at=now())).rowcount
            for submission_id in sorted({s for _, s in locked if s is not None}):  # it said failed while its jobs
                self._update_submission(session, submission_id)                    # were queued again
            return count

    def _update_submission(self, session: Session, submission_id: Optional[int]) -> None:
        """Set the submission's status from its jobs'. Its row is locked before they are read: two workers finishing
        its last two jobs at once each read the other's as running and the submission said running for good
        (PostgreSQL; the second now waits and reads the first's done)."""
        if submission_id is None:
            return
        withdrawn_at = session.scalars(select(SubmissionRow.withdrawn_at).where(SubmissionRow.id == submission_id)
                                       .with_for_update(key_share=True)).one()
        if withdrawn_at is not None:
            return  # a withdrawn one says so until restored
        statuses = set(session.scalars(select(JobRow.status).where(JobRow.submission_id == submission_id)))
        status = (FAILED if FAILED in statuses and not statuses & {QUEUED, RUNNING}
                  else DONE if statuses == {DONE}
                  else QUEUED if statuses == {QUEUED}  # a worker stopped by Ctrl-C handed back its only job: it said running
                  else RUNNING)
        session.execute(update(SubmissionRow).where(SubmissionRow.id == submission_id).values(status=status))

    def failed_jobs(self) -> List[Dict[str, Any]]:
        """Every failed job (zoo run or submission) not superseded by a job of the same model and benchmark done
        since, oldest first, without its spec: what the pages show so a user sees why a score is missing (a
        submission's job: its ``public_reason`` only, :func:`views.failed_rows`). A superseded failure stays in its
        submission's history (:meth:`submission`); the model page had listed it beside the score that replaced it."""
        columns = (JobRow.id, JobRow.model, JobRow.benchmark, JobRow.submission_id, JobRow.attempts, JobRow.error,
                   JobRow.public_reason, JobRow.updated_at)
        later = aliased(JobRow)
        superseded = (select(later.id).where(later.status == DONE, later.model == JobRow.model,
                                             later.benchmark == JobRow.benchmark, later.updated_at > JobRow.updated_at)
                      .exists())
        with Session(self.engine) as session:
            rows = session.execute(select(*columns).where(JobRow.status == FAILED, ~superseded, _not_withdrawn())
                                   .order_by(JobRow.id)).all()
        return [{**row._asdict(), "updated_at": _aware(row.updated_at)} for row in rows]

    def score_for_job(self, job: Dict[str, Any], hidden: bool = False) -> Optional[ScoreRecord]:
        record_id = job["hidden_score_id" if hidden else "score_id"]
        return self.get(record_id) if record_id is not None else None

    def board_version(self) -> tuple:
        """Changes whenever the board's content changes: a job finished or failed (the pages show done jobs'
        scores and failed jobs' errors), a submission withdrawn or restored (its scores leave or come back)."""
        from sqlalchemy import func

        with Session(self.engine) as session:
            count, latest = session.execute(select(func.count(JobRow.id), func.max(JobRow.updated_at))
                                            .where(JobRow.status.in_([DONE, FAILED]))).one()
            withdrawn, last = session.execute(select(func.count(SubmissionRow.withdrawn_at),
                                                     func.max(SubmissionRow.withdrawn_at))).one()
        return count, str(latest), withdrawn, str(last)

    def _done_jobs(self) -> tuple:
        """({(model, benchmark): newest current done job}, {(model, benchmark): newest outdated done job} for the keys
        without a current one), each job (id, model, benchmark, submission_id, score_id, hidden_score_id, updated_at,
        reason): current unless :func:`leaderboard.zoo.outdated_reason` gives a reason (another benchmark version,
        retina fitting protocol or recordings, or another host's split)."""
        from neurozoo.leaderboard.zoo import split_key_id

        with Session(self.engine) as session:
            rows = session.execute(select(JobRow.id, JobRow.model, JobRow.benchmark, JobRow.submission_id,
                                          JobRow.score_id, JobRow.hidden_score_id, JobRow.updated_at, JobRow.spec)
                                   .where(JobRow.status == DONE, _not_withdrawn())
                                   .order_by(JobRow.updated_at, JobRow.id)).all()
        current, outdated, split_key = {}, {}, split_key_id() if rows else None
        for *job, spec in rows:
            reason = _outdated(spec, job[5], split_key)
            (current if reason is None else outdated)[(job[1], job[2])] = (*job, reason)
        return current, {key: job for key, job in outdated.items() if key not in current}

    def leaderboard_records(self) -> List[ScoreRecord]:
        """The score of every done job (the hidden-split score where a job has one), newest job per key, of the jobs
        scored under the current version of their benchmark (and retina fitting protocol and recordings) on this host's
        split, withdrawn submissions' left out: an outdated one (:meth:`outdated_jobs`) is never ranked beside them."""
        return self._current_records(self._done_jobs()[0])

    def board_scores(self) -> Tuple[List[ScoreRecord], List[Dict[str, Any]]]:
        """(:meth:`leaderboard_records`, :meth:`outdated_jobs`) from one reading of the done jobs: a page shows both."""
        current, outdated = self._done_jobs()
        return self._current_records(current), self._outdated_rows(outdated)

    def _current_records(self, current: dict) -> List[ScoreRecord]:
        ids = [hidden or public for _id, _m, _b, _s, public, hidden, _t, _r in current.values()]
        with Session(self.engine) as session:
            scores = {r.id: ScoreRecord.from_row(r) for r in session.scalars(select(ScoreRow).where(ScoreRow.id.in_(ids)))}
        return [scores[i] for i in ids if i in scores]

    def rescore_outdated(self) -> List[int]:
        """Queue a submission's outdated jobs (:meth:`outdated_jobs`) again under their benchmarks' current version
        (:func:`leaderboard.zoo.current_spec`), in the same submission; returns the new jobs' ids. zoo run's are scored
        again by zoo run; a submitter cannot submit the same files twice."""
        from sqlalchemy.exc import IntegrityError

        try:
            return self._rescore_outdated()
        except IntegrityError:  # another worker started with the option queued them between this one's check and insert
            return self._rescore_outdated()

    def _rescore_outdated(self) -> List[int]:
        from neurozoo.leaderboard.zoo import current_spec

        outdated = [job for job in self.outdated_jobs() if job["submission_id"] is not None]
        ids = []
        with Session(self.engine) as session, session.begin():
            # read before the transaction: a submission withdrawn since is left out (it got a job a worker scored)
            submissions = self._lock_submissions(session, {job["submission_id"] for job in outdated})
            outdated = [job for job in outdated if submissions[job["submission_id"]].withdrawn_at is None]
            for job in outdated:
                spec = current_spec(session.get(JobRow, job["id"]).spec)
                ids.append(self._enqueue(session, job["model"], job["benchmark"], spec,
                                         submission_id=job["submission_id"]))
            for submission_id in sorted({job["submission_id"] for job in outdated}):
                self._update_submission(session, submission_id)
        return ids

    def outdated_jobs(self) -> List[Dict[str, Any]]:
        """The done jobs left off the board as outdated (:func:`leaderboard.zoo.outdated_reason`), newest per (model,
        benchmark) without a current score, by model and benchmark: id, model, benchmark, submission_id, updated_at
        and ``reason``."""
        return self._outdated_rows(self._done_jobs()[1])

    @staticmethod
    def _outdated_rows(outdated: dict) -> List[Dict[str, Any]]:
        return [{"id": id_, "model": model, "benchmark": benchmark, "submission_id": submission,
                 "updated_at": _aware(updated), "reason": reason}
                for (model, benchmark), (id_, _m, _b, submission, _p, _h, updated, reason) in sorted(outdated.items())]
