"""Database engines with the durability settings the engine's promises depend on.

Owns: connection set-up for SQLite (WAL, ``synchronous=FULL``, ``BEGIN IMMEDIATE`` for writers) and
PostgreSQL (READ COMMITTED, row locks taken by the writer in a fixed order). Must never be bypassed: a
connection made elsewhere would lack these settings.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, make_url

from settlement import limits


@dataclass(frozen=True)
class Engines:
    """A writer engine (one writer at a time, immediate transactions) and a reader engine."""

    writer: Engine
    reader: Engine
    url: str
    write_lock_file: Path | None = None  # SQLite file databases: writers of all processes queue on it

    @property
    def is_sqlite(self) -> bool:
        return self.writer.dialect.name == "sqlite"

    @contextmanager
    def write_turn(self) -> Iterator[None]:
        """Wait for this process's turn to write, across the server processes sharing a database.

        SQLite makes a second writer sleep and poll (its busy timeout): with two server processes that
        measured p99 over a second. An exclusive ``flock`` beside the database file queues them instead,
        and the kernel wakes the next writer the moment the lock is free. On PostgreSQL the writer's
        advisory lock already queues them this way.
        """
        if self.write_lock_file is None:
            yield
            return
        turn = WriteTurnLock(self.write_lock_file)
        try:
            turn.acquire()
            yield
        finally:
            turn.close()  # closing releases the lock

    @contextmanager
    def write_transaction(self) -> Iterator[Connection]:
        """A write transaction for a job beside the server (enrolment, funding, rollover, daily close…):
        it waits for the write turn like the server's writers, so on SQLite a running server's event loop
        never sits in SQLite's busy handler behind it."""
        with self.write_turn(), self.writer.begin() as connection:
            yield connection

    def write_turn_lock(self) -> WriteTurnLock | None:
        """A held-open handle on the same turn, for a caller that must not block while it waits (the
        server's event loop tries it and, while another process writes, tries again shortly). None when
        there is no lock file (PostgreSQL, in-memory SQLite)."""
        return None if self.write_lock_file is None else WriteTurnLock(self.write_lock_file)

    def dispose(self) -> None:
        self.writer.dispose()
        self.reader.dispose()


class WriteTurnLock:
    """The write turn's ``flock`` on a descriptor kept open; the same lock ``Engines.write_turn`` takes."""

    def __init__(self, path: Path) -> None:
        self._descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def acquire(self) -> None:
        """Wait for the turn: the kernel wakes this process the moment the holder lets go."""
        fcntl.flock(self._descriptor, fcntl.LOCK_EX)

    def try_acquire(self) -> bool:
        try:
            fcntl.flock(self._descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def release(self) -> None:
        fcntl.flock(self._descriptor, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self._descriptor)


def sqlite_url(path: Path) -> str:
    return f"sqlite+pysqlite:///{path}"


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` as operators write it and use the psycopg 3 driver."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engines(url: str) -> Engines:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        _check_sqlite_version()
        writer, reader = _sqlite_engine(url, immediate=True), _sqlite_engine(url, immediate=False)
        return Engines(writer, reader, url, _write_lock_file(url))
    # Pool sizes: the writer thread holds one connection; readers serve the RPC worker threads.
    writer = create_engine(url, pool_size=2, max_overflow=2, pool_pre_ping=True, isolation_level="READ COMMITTED")
    reader = create_engine(url, pool_size=8, max_overflow=8, pool_pre_ping=True, isolation_level="READ COMMITTED")
    return Engines(writer, reader, url)


MIN_SQLITE_VERSION = (3, 33, 0)  # UPDATE ... FROM (the writer's batch updates); upserts need 3.24


def _check_sqlite_version() -> None:
    if sqlite3.sqlite_version_info < MIN_SQLITE_VERSION:
        wanted = ".".join(map(str, MIN_SQLITE_VERSION))
        raise RuntimeError(
            f"SQLite {sqlite3.sqlite_version} is too old: the engine needs {wanted} or newer (Debian 12 ships 3.40)"
        )


def _write_lock_file(url: str) -> Path | None:
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(f"{database}-write.lock")


def _sqlite_engine(url: str, *, immediate: bool) -> Engine:
    if url.startswith("sqlite+pysqlite:///") and not url.endswith(":memory:"):
        Path(url.removeprefix("sqlite+pysqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        # A pool of sqlite3 connections: a checkout is exclusive to one thread until it is returned.
        pool_size=limits.SQLITE_POOL_CONNECTIONS,
        max_overflow=limits.SQLITE_POOL_CONNECTIONS,
        connect_args={"check_same_thread": False, "timeout": limits.SQLITE_BUSY_TIMEOUT_MS / 1000},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event, not the driver, decide how transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: an acknowledged commit survives power loss; NORMAL can lose the last commits.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(limits.SQLITE_BUSY_TIMEOUT_MS)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Writers take the write lock up front, so two writers never deadlock upgrading read locks.
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine
