"""The service's database: one table, ``jobs`` (the queue and the archive at once).

SQLAlchemy 2; SQLite is the embedded default (one file next to the archive, WAL journal so
that readers never wait for the writer, a busy timeout so that concurrent writers — the server
and its job processes — wait instead of failing), any other URL (PostgreSQL) works as is.
The schema is created and upgraded by Alembic at start (:func:`migrate`); the migration scripts
ship in ``cryovalid/service/migrations`` and no ``alembic.ini`` is needed.

A job row holds its inputs (stored file names inside its folder), its state
(``queued|running|done|failed|cancelled``), the steps done so far (``progress``), the
process running it (host, pid and the pid's start time, a heartbeat) and, once done, the
whole report.json (a JSON column) with the columns the archive filters on (score, levels,
EMDB ID). Times are seconds since the epoch (UTC).
"""
from __future__ import annotations

import json
import math
import os
import time

from sqlalchemy import (JSON, BigInteger, Boolean, Float, Index, Integer, String, Text,
                        create_engine, event)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

STATUSES = ("queued", "running", "done", "failed", "cancelled")
FINISHED = ("done", "failed", "cancelled")
SQLITE_BUSY_TIMEOUT_MS = 30000
READ_ONLY = "cryovalid_read_only"  # execution option: a transaction that only reads


class Base(DeclarativeBase):
    pass


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    token: Mapped[str] = mapped_column(String(64))  # secrets.token_urlsafe: private access
    private: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    name: Mapped[str] = mapped_column(String(200), default="")  # shown, never a path
    emdb_id: Mapped[str | None] = mapped_column(String(24), nullable=True)
    client: Mapped[str] = mapped_column(String(64), default="")
    created: Mapped[float] = mapped_column(Float)
    started: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished: Mapped[float | None] = mapped_column(Float, nullable=True)
    threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    resolution: Mapped[float | None] = mapped_column(Float, nullable=True)
    formats: Mapped[str] = mapped_column(String(32), default="json,html,pdf")
    files: Mapped[dict] = mapped_column(JSON, default=dict)  # stored names in the job folder
    # the names the files were uploaded with, {field: client name} (shown; migration 0002);
    # NULL for a row of 0001 or an EMDB-ID job: the files' own names
    names: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    # the classes' and particles' options {symmetry, classes_pixel, particles_pixel,
    # voltage_kv, cs_mm, q0} as given (migration 0003); NULL: none given, the defaults
    options: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    progress: Mapped[list] = mapped_column(JSON, default=list)  # [[label, seconds, status]]
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    notes: Mapped[list] = mapped_column(JSON, default=list)  # re-queued, EMDB notes, ...
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # runs that count (max_attempts)
    runs: Mapped[int] = mapped_column(Integer, default=0)  # every claim: fences a job's writes
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pid_start: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    heartbeat: Mapped[float | None] = mapped_column(Float, nullable=True)
    score_passed: Mapped[int | None] = mapped_column(Integer, nullable=True)
    score_evaluable: Mapped[int | None] = mapped_column(Integer, nullable=True)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)  # passed / evaluable
    levels: Mapped[str | None] = mapped_column(String(32), nullable=True)  # e.g. "0,1,A"
    report: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # the report.json

    __table_args__ = (Index("ix_jobs_status_created", "status", "created"),
                      Index("ix_jobs_created", "created"), Index("ix_jobs_emdb_id", "emdb_id"),
                      Index("ix_jobs_score", "score"))

    def summary(self) -> dict:
        """What the list and the job status show (never the report itself)."""
        return {"id": self.id, "name": self.name, "emdb_id": self.emdb_id,
                "status": self.status, "private": bool(self.private),
                "created": self.created, "started": self.started, "finished": self.finished,
                "threshold": self.threshold, "resolution": self.resolution,
                "files": dict(self.names if self.names is not None else (self.files or {})),
                "formats": self.formats.split(","), "attempts": self.attempts,
                "score": ({"passed": self.score_passed, "evaluable": self.score_evaluable}
                          if self.score_passed is not None else None),
                "levels": self.levels.split(",") if self.levels else [],
                "error": self.error, "notes": list(self.notes or []),
                "progress": [{"label": p[0], "seconds": p[1], "status": p[2]}
                             for p in (self.progress or [])]}


def _finite(o):
    """``o`` with NaN and infinities as None (as report.json writes them)."""
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    return o


def strict_json(value) -> str:
    """The JSON columns' serializer: strict JSON, NaN and infinities written as null.
    PostgreSQL's ``json`` type refuses ``NaN`` (json.dumps' default), which would fail the
    write of a report holding one; SQLite would store it and hand back NaN. Either way the row
    now holds what report.json holds."""
    return json.dumps(_finite(value), allow_nan=False)


def make_engine(url: str):
    """An engine for ``url``; SQLite gets WAL, a busy timeout and BEGIN IMMEDIATE for writers;
    every dialect writes its JSON columns as strict JSON (:func:`strict_json`)."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                                                  "check_same_thread": False},
                               json_serializer=strict_json)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):
            # let SQLAlchemy's BEGIN reach SQLite (pysqlite would defer it): an UPDATE-claim
            # then takes the write lock at once (BEGIN IMMEDIATE), see jobs.claim
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn):
            # a transaction that writes takes the write lock at its start (BEGIN IMMEDIATE), so
            # it waits its turn (busy timeout) instead of failing when it would upgrade a read
            # lock; readers (reader(engine)) never take it and never wait (WAL)
            read = conn.get_execution_options().get(READ_ONLY, False)
            conn.exec_driver_sql("BEGIN" if read else "BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, json_serializer=strict_json)


def reader(engine):
    """The same engine (and pool) for read-only transactions."""
    return engine.execution_options(**{READ_ONLY: True})


def sessions(engine):
    return sessionmaker(engine, expire_on_commit=False)


MIGRATION_LOCK = 0x63727976  # PostgreSQL advisory lock key of migrate() ("cryv")


def migrate(engine, revision: str = "head") -> None:
    """Create or upgrade the schema to ``revision`` (the newest by default; Alembic, configured
    in code). On PostgreSQL the upgrade holds a transaction-level advisory lock, so that
    servers started at once against one database upgrade it one after the other (the second
    finds it done) instead of both creating the table."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location",
                        os.path.join(os.path.dirname(os.path.abspath(__file__)), "migrations"))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def now() -> float:
    return time.time()
