"""The results store: one row per score, with its provenance (SQLAlchemy 2).

SQLite at ``$NEUROZOO_HOME/results.sqlite`` by default; any SQLAlchemy URL otherwise
(``postgresql+psycopg://user@host/db``). Writes are transactional: a batch of records is stored
completely or not at all. The leaderboard builds on :class:`ResultsStore` and :class:`ScoreRow`.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from typing import Any, Dict, Iterable, List, Optional

import pandas as pd
from sqlalchemy import JSON, DateTime, Float, Integer, String, Text, create_engine, select, type_coerce
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from neurozoo.benchmarks.paths import home
from neurozoo.datasets.db_urls import missing_driver_advice, shown_url, with_installed_driver
from neurozoo.datasets.errors import DataError, UserFacingError
from neurozoo.datasets.json_files import finite, json_safe
from neurozoo.datasets.provenance import environment


class Base(DeclarativeBase):
    pass


class ScoreRow(Base):
    __tablename__ = "scores"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(String(255), index=True)
    benchmark: Mapped[str] = mapped_column(String(255), index=True)
    value: Mapped[Optional[float]] = mapped_column(Float)
    error: Mapped[Optional[float]] = mapped_column(Float)
    ceiling: Mapped[Optional[float]] = mapped_column(Float)
    raw: Mapped[Optional[float]] = mapped_column(Float)
    per_bin: Mapped[Optional[list]] = mapped_column(JSON)  # [{"time_bin_start", "time_bin_end", "value", ...}, ...]
    code_version: Mapped[Optional[str]] = mapped_column(String(128))
    git_commit: Mapped[Optional[str]] = mapped_column(String(64))
    data_sha256: Mapped[Optional[str]] = mapped_column(String(64))
    seed: Mapped[Optional[int]] = mapped_column(Integer)
    settings: Mapped[Optional[dict]] = mapped_column(JSON)
    device: Mapped[Optional[str]] = mapped_column(String(255))
    duration_s: Mapped[Optional[float]] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


@dataclass
class ScoreRecord:
    model: str
    benchmark: str
    value: Optional[float]
    error: Optional[float] = None
    ceiling: Optional[float] = None
    raw: Optional[float] = None
    per_bin: Optional[List[Dict[str, Any]]] = None
    code_version: Optional[str] = None
    git_commit: Optional[str] = None
    data_sha256: Optional[str] = None
    seed: Optional[int] = None
    settings: Dict[str, Any] = field(default_factory=dict)
    device: Optional[str] = None
    duration_s: Optional[float] = None
    created_at: Optional[datetime] = None
    id: Optional[int] = None

    def to_row(self) -> ScoreRow:
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "id"}
        for name in ("value", "error", "ceiling", "raw", "duration_s"):
            values[name] = finite(values[name])
        values["per_bin"] = json_safe(values["per_bin"])
        # the versions beside the code that a rerun needs to match (kept when the record already says them)
        values["settings"] = json_safe({"environment": environment(), **(values["settings"] or {})})
        values["created_at"] = in_utc(values["created_at"] or datetime.now(timezone.utc))
        return ScoreRow(**values)

    @classmethod
    def from_row(cls, row: ScoreRow) -> "ScoreRecord":
        return cls(**{f.name: getattr(row, f.name) for f in fields(cls)})


def in_utc(moment: datetime) -> datetime:
    """``moment`` in UTC, as the store keeps and orders records (:meth:`ResultsStore.records`: by this time, then the
    id): SQLite stores a timezone-aware time's wall clock without its offset, so a record made at 14:00:20+02:00 was
    kept, ordered and listed as 14:00:20 UTC, after one of 12:00:30 UTC. A naive time is taken to be UTC already (as
    SQLite returns the store's)."""
    return moment.astimezone(timezone.utc) if moment.tzinfo is not None else moment


def utc_text(moment: datetime, to: str = "second") -> str:
    """``moment`` as UTC text to the ``second`` (``2026-12-05 12:00:10``, as ``zoo score --records`` lists when a
    record was scored: to the minute, two records of one minute read as tied, though the store orders them by the full
    time, then the id) or the ``minute`` (the web pages). A time in another zone is converted first (PostgreSQL returns
    a timezone-aware column in the session's zone), a naive one taken as UTC."""
    formats = {"second": "%Y-%m-%d %H:%M:%S", "minute": "%Y-%m-%d %H:%M"}
    if to not in formats:
        raise ValueError(f"to: expected one of {', '.join(formats)}; got {to!r}")
    return in_utc(moment).strftime(formats[to])


#: what two records must share to be the same result (:meth:`ResultsStore.identical`): all but id, time and duration
IDENTITY = ("model", "benchmark", "value", "error", "ceiling", "raw", "per_bin", "code_version", "git_commit",
            "data_sha256", "seed", "settings", "device")


def default_url() -> str:
    path = home() / "results.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


class DatabaseUnavailable(UserFacingError):
    """A --db URL that cannot be parsed, has no driver, or names a database that cannot be opened."""


def database_problem(url: str, error: Exception) -> str:
    """One line on why ``url`` cannot be opened, its password hidden."""
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    shown = shown_url(url)
    if isinstance(error, (NoSuchModuleError, ImportError)):
        advice = f"; {missing_driver_advice(error.name)}" if isinstance(error, ImportError) and error.name else ""
        return f"--db {shown!r}: no database driver for this URL's scheme ({str(error).splitlines()[0]}){advice}"
    if isinstance(error, ArgumentError):
        return (f"--db {shown!r}: not a database URL; expected e.g. sqlite:////path/results.sqlite or "
                "postgresql+psycopg2://user:password@host/database")
    detail = str(getattr(error, "orig", None) or error).strip().splitlines()
    detail = detail[0] if detail else type(error).__name__
    if shown.startswith("sqlite:///") and "unable to open database file" in detail:
        folder = os.path.dirname(shown[len("sqlite:///"):]) or "."
        return f"--db {shown!r}: cannot open the SQLite file (does the folder {folder!r} exist and is it writable?)"
    return f"--db {shown!r}: cannot open the database ({detail})"


def missing_sqlite_file(url: Optional[str]) -> Optional[str]:
    """The path of the SQLite file that ``url`` (None: the default store) names where no such file exists, else None
    (another database, an in-memory one, an unparsable URL: :class:`ResultsStore` says what is wrong with it).

    Opening a store creates it: a command that only reads one (``zoo score --records``, ``zoo reproduce``) checks this
    first, so a misspelt ``--db`` path is refused rather than left behind as a new, empty store."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url or default_url())
    except ArgumentError:
        return None
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return None
    return None if os.path.exists(database) else database


def missing_store_problem(url: Optional[str]) -> Optional[str]:
    """One line saying that ``url``'s SQLite store does not exist (see :func:`missing_sqlite_file`), else None."""
    path = missing_sqlite_file(url)
    if path is None:
        return None
    if not url:
        return (f"no results store at {shown_url(default_url())!r} yet (the default, $NEUROZOO_HOME/results.sqlite; "
                "--db names another): zoo score, zoo run and zoo work create it")
    return (f"--db {shown_url(url)!r}: no such results store ({path} does not exist); zoo score, zoo run and zoo work "
            "create one, this command only reads one")


#: seconds a SQLite statement waits for another process's lock before "database is locked": Python's sqlite3 waited
#: 5, which a `zoo run` creating a fresh database's schema on a loaded machine outlasted, so a `zoo serve` or second
#: worker opening it at the same time failed (already when switching it to WAL: ``LeaderboardDB``)
SQLITE_BUSY_TIMEOUT_S = 30


def sqlite_connect_args(url: str) -> Dict[str, Any]:
    """``create_engine``'s ``connect_args`` for ``url``: the lock wait :data:`SQLITE_BUSY_TIMEOUT_S` for SQLite (set
    as each connection opens, so it covers the first statements too), nothing for another database."""
    return {"timeout": SQLITE_BUSY_TIMEOUT_S} if url.startswith("sqlite") else {}


class ResultsStore:
    """``ResultsStore(url=None).add(record)``; ``.query(model=None, benchmark=None)`` -> DataFrame."""

    def __init__(self, url: Optional[str] = None, echo: bool = False):
        from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError, ProgrammingError

        self.url = url or default_url()
        for attempt in range(5):  # two processes creating the schema at once: the loser retries
            try:
                # pre-ping: a connection the server dropped (a restart, an idle-connection limit) is replaced when
                # taken from the pool; without it the next call raised, and zoo work lost the score it had computed
                self.engine = create_engine(with_installed_driver(self.url), echo=echo, future=True, pool_pre_ping=True,
                                            connect_args=sqlite_connect_args(self.url))
                Base.metadata.create_all(self.engine)  # the leaderboard's tables too, once its module is imported
                break
            except (OperationalError, ProgrammingError) as error:
                if "already exists" not in str(error) or attempt == 4:
                    raise DatabaseUnavailable(database_problem(self.url, error)) from None
                time.sleep(0.2)
            except (ArgumentError, NoSuchModuleError, DBAPIError, ImportError) as error:
                raise DatabaseUnavailable(database_problem(self.url, error)) from None

    @property
    def shown_url(self) -> str:
        """The URL for messages: its password hidden (``datasets.db_urls``)."""
        return shown_url(self.url)

    def add(self, record: ScoreRecord) -> int:
        return self.add_many([record])[0]

    def add_many(self, records: Iterable[ScoreRecord]) -> List[int]:
        """Store all records in one transaction (all or none); returns their ids and sets ``record.id``."""
        records = list(records)
        with Session(self.engine) as session, session.begin():
            rows = [record.to_row() for record in records]
            session.add_all(rows)
            session.flush()
            ids = [row.id for row in rows]
        for record, row_id in zip(records, ids):
            record.id = row_id
        return ids

    def identical(self, record: ScoreRecord) -> Optional[ScoreRecord]:
        """The stored record of ``record``'s model and benchmark that holds everything it does (settings with the
        command's arguments and the environment, code version, data, seed, device, score), but its time, else None:
        ``zoo score`` run again after storing (stopped as it wrote its plots) reuses it instead of a duplicate."""
        new = record.to_row()
        same = lambda row: all(getattr(row, name) == getattr(new, name) for name in IDENTITY)  # noqa: E731
        return next((stored for stored in reversed(self.records(record.model, record.benchmark))
                     if same(stored.to_row())), None)

    def get(self, record_id: int) -> Optional[ScoreRecord]:
        with Session(self.engine) as session:
            try:
                row = session.get(ScoreRow, record_id)
            except ValueError:  # json.JSONDecodeError: a JSON column cut short or edited by hand
                raise DataError(self._unreadable(session, ScoreRow.id == record_id)) from None
            return ScoreRecord.from_row(row) if row is not None else None

    def records(self, model: Optional[str] = None, benchmark: Optional[str] = None) -> List[ScoreRecord]:
        """The records (of ``model`` and ``benchmark``, given), oldest first: by the time scored (kept in UTC,
        :func:`in_utc`), then the id, so that records of one time keep the order they were stored in."""
        statement = select(ScoreRow).order_by(ScoreRow.created_at, ScoreRow.id)
        if model is not None:
            statement = statement.where(ScoreRow.model == model)
        if benchmark is not None:
            statement = statement.where(ScoreRow.benchmark == benchmark)
        with Session(self.engine) as session:
            try:
                return [ScoreRecord.from_row(row) for row in session.scalars(statement)]
            except ValueError:
                # the filter as one clause: a single condition has no .clauses (an AttributeError here)
                where = () if statement.whereclause is None else (statement.whereclause,)
                raise DataError(self._unreadable(session, *where)) from None

    def _unreadable(self, session: Session, *where) -> str:
        """Which record's JSON column (per-bin values, settings) does not parse, and where: read as text."""
        import json

        columns = [ScoreRow.per_bin, ScoreRow.settings]
        statement = select(ScoreRow.id, *(type_coerce(column, Text) for column in columns)).where(*where)
        for row_id, *texts in session.execute(statement):
            for column, text in zip(columns, texts):
                try:
                    json.loads(text) if text is not None else None
                except ValueError as error:
                    return (f"record {row_id} in {self.shown_url}: its {column.key} is not readable JSON ({error}; "
                            f"{len(text)} characters): the record was cut short or edited by hand; delete it "
                            "and score again")
        return f"{self.shown_url}: a record's JSON columns do not parse"

    def query(self, model: Optional[str] = None, benchmark: Optional[str] = None, latest: bool = False) -> pd.DataFrame:
        """All matching scores, oldest first; ``latest=True`` keeps only the newest per (model, benchmark)."""
        columns = [f.name for f in fields(ScoreRecord)]
        frame = pd.DataFrame([asdict(r) for r in self.records(model, benchmark)], columns=columns)
        if latest and len(frame):
            frame = frame.groupby(["model", "benchmark"], sort=False).tail(1).reset_index(drop=True)
        return frame

    def dispose(self) -> None:
        self.engine.dispose()
