"""The service's one SQL database: feedback items, issued cards, and the JWT replay store.

Why one database for all three: the replay store must be shared by every gunicorn worker and every
instance behind a load balancer (an in-process set would let a replayed token through on another
worker), and the feedback store already has to be shared and durable. SQLite (a file) is the
default; PostgreSQL is used by URL (`postgresql://...`, driven by psycopg 3: the `postgres` extra).

Fork safety: `create_app` may run in the gunicorn master (`--preload`) and the workers are forked
from it. A connection pool must never be shared across a fork, so the engine is created lazily per
process: when the process id changes, the inherited engine is abandoned without closing the
parent's connections (`dispose(close=False)`) and a fresh one is built.

SQLite concurrency: WAL journal (readers never block the writer), `busy_timeout` (a writer waits
for the lock instead of failing), and every transaction starts with `BEGIN IMMEDIATE` so that a
transaction never has to upgrade a read lock to a write lock (which SQLite refuses with "database
is locked" without waiting).
"""
from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (BigInteger, Column, Connection, Engine, Index, Insert, Integer, MetaData, String, Table,
                        Text, create_engine, event, insert)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

log = logging.getLogger("her2cds.storage")

SQLITE_BUSY_TIMEOUT_MS = 10_000

metadata = MetaData()

# One row per distinct feedback item; `natural_key` (a hash of what makes an item "the same") is
# unique so that a client's retries and duplicates are stored once.
feedback_table = Table(
    "cds_feedback", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("natural_key", String(64), nullable=False, unique=True),
    Column("service_id", String(128), nullable=False),
    Column("hook_instance", String(256)),
    Column("card_uuid", String(64), nullable=False),
    Column("topic_code", Text),
    Column("topic_system", Text),
    Column("outcome", String(16), nullable=False),
    Column("accepted_suggestions", Text),          # JSON array of suggestion uuids, or NULL
    Column("reason_code", Text),                   # client text: unbounded types, the body limit caps them
    Column("reason_system", Text),
    Column("reason_display", Text),
    Column("user_comment", Text),
    Column("outcome_timestamp", Text, nullable=False),         # RFC 3339 as sent by the client
    Column("received_at", String(40), nullable=False),         # RFC 3339 UTC, server clock
)
Index("ix_cds_feedback_card_uuid", feedback_table.c.card_uuid)

# Cards the service issued (uuid -> topic), so feedback, which names only the card uuid, can be
# reported per topic. No PHI: no summary, no patient id.
issued_cards_table = Table(
    "cds_issued_cards", metadata,
    Column("card_uuid", String(64), primary_key=True),
    Column("service_id", String(128), nullable=False),
    Column("hook_instance", String(256)),
    Column("topic_code", Text),
    Column("topic_system", Text),
    Column("indicator", Text),
    Column("suggestion_uuids", Text),              # JSON array
    Column("issued_at", String(40), nullable=False),
    Column("issuer", String(512)),                 # `iss` of the client the card was issued to (feedback owner)
)
Index("ix_cds_issued_cards_issued_at", issued_cards_table.c.issued_at)
Index("ix_cds_feedback_received_at", feedback_table.c.received_at)

# Columns added after a table first shipped: (table, column DDL) added by `create_all` when missing.
_ADDED_COLUMNS = ((issued_cards_table, "issuer", "VARCHAR(512)"),)

# JWT ids already used, per issuer, kept until the token could no longer be accepted anyway.
used_jwt_ids_table = Table(
    "cds_used_jwt_ids", metadata,
    Column("iss", String(512), primary_key=True),
    Column("jti", String(256), primary_key=True),
    Column("expires_at", BigInteger, nullable=False),          # epoch seconds (exp + leeway)
)
Index("ix_cds_used_jwt_ids_expires_at", used_jwt_ids_table.c.expires_at)


def rfc3339_ms(moment: dt.datetime) -> str:
    """The fixed-width UTC spelling the tables use (`2026-12-01T10:05:31.123Z`), so text order is time order."""
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_timestamp() -> str:
    """Now, as the tables spell it (`issued_at`, `received_at`)."""
    return rfc3339_ms(dt.datetime.now(dt.timezone.utc))


def normalise_url(url: str) -> URL:
    """SQLAlchemy URL; plain `postgres://`/`postgresql://` mean psycopg 3 (the `postgres` extra)."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _is_memory_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


class Database:
    """A lazily built, per-process SQLAlchemy engine plus the schema of the service's tables."""

    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        self._lock = threading.Lock()
        self._engine: Engine | None = None
        self._pid: int | None = None
        if self.is_sqlite and not _is_memory_sqlite(self.url):
            database = self.url.database or ""
            if not database.startswith("file:"):
                directory = Path(database).expanduser().resolve().parent
                if not directory.exists():
                    directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"

    @property
    def engine(self) -> Engine:
        """This process's engine (rebuilt after a fork; never shares pooled connections with the parent)."""
        pid = os.getpid()
        engine = self._engine
        if engine is not None and self._pid == pid:
            return engine
        with self._lock:
            if self._engine is not None and self._pid != pid:
                self._engine.dispose(close=False)     # inherited from the parent: do not close its sockets
                self._engine = None
            if self._engine is None:
                self._engine = self._build_engine()
                self._pid = pid
            return self._engine

    def _build_engine(self) -> Engine:
        if not self.is_sqlite:
            return create_engine(self.url, pool_pre_ping=True, pool_recycle=1800)
        kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
        if _is_memory_sqlite(self.url):
            kwargs["poolclass"] = StaticPool          # one shared in-memory database (tests, demos)
        engine = create_engine(self.url, **kwargs)
        _configure_sqlite(engine)
        return engine

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A connection inside one transaction, committed on success, rolled back on error."""
        with self.engine.begin() as conn:
            yield conn

    def create_all(self) -> None:
        """Create the tables that do not exist yet (idempotent, safe to run from several processes)."""
        self._restrict_sqlite_file()
        try:
            metadata.create_all(self.engine)
        except SQLAlchemyError:  # another process may have created them between the check and the CREATE
            metadata.create_all(self.engine)
        self._add_missing_columns()

    def _restrict_sqlite_file(self) -> None:
        """The SQLite file holds who got which card and the clinicians' comments: owner-only (0600).

        Created empty with that mode before SQLite opens it (SQLite gives its -wal/-shm files the
        database file's mode); an existing file is tightened too."""
        if not self.is_sqlite or _is_memory_sqlite(self.url) or (self.url.database or "").startswith("file:"):
            return
        path = Path(self.url.database or "").expanduser()
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        os.close(fd)
        os.chmod(path, 0o600)

    def _add_missing_columns(self) -> None:
        """A database made by an earlier version lacks later columns: add them (nullable, idempotent)."""
        from sqlalchemy import inspect
        for table, column, ddl in _ADDED_COLUMNS:
            if column in {c["name"] for c in inspect(self.engine).get_columns(table.name)}:
                continue
            try:
                with self.begin() as conn:
                    conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {column} {ddl}")
            except SQLAlchemyError:   # another process added it first
                if column not in {c["name"] for c in inspect(self.engine).get_columns(table.name)}:
                    raise

    def dispose(self) -> None:
        """Close this process's pooled connections (tests, shutdown)."""
        with self._lock:
            if self._engine is not None and self._pid == os.getpid():
                self._engine.dispose()
            self._engine = None
            self._pid = None

    def insert_ignoring_duplicates(self, conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
        """INSERT rows, silently skipping those that collide with a unique key (idempotent writes)."""
        if not rows:
            return
        statement = _insert_ignoring_conflicts(table, conn.dialect.name)
        if statement is None:
            for row in rows:                          # portable fallback: one savepoint per row
                try:
                    with conn.begin_nested():
                        conn.execute(insert(table), [dict(row)])
                except IntegrityError:
                    pass
            return
        conn.execute(statement, [dict(r) for r in rows])


@functools.cache
def _insert_ignoring_conflicts(table: Table, dialect: str) -> Insert | None:
    """`INSERT ... ON CONFLICT DO NOTHING` into `table` on that dialect (None: it has no such clause).

    Built once per table and dialect: SQLAlchemy finds its compiled form by the statement's cache key, which
    it keeps on the statement, so a statement built per batch cost building and keying it anew each time
    (about 90,000 instructions per card-log batch; issue 15)."""
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        return None
    return dialect_insert(table).on_conflict_do_nothing()


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin (see `_on_begin`).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")   # first: WAL switch may wait
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = FULL")          # a committed feedback item survives power loss
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
