"""Database engines with the durability settings the engine's promises depend on.

Owns: connection set-up for SQLite (WAL, ``synchronous=FULL``, ``BEGIN IMMEDIATE`` for writers) and
PostgreSQL (READ COMMITTED, row locks taken by the writer in a fixed order). Must never be bypassed: a
connection made elsewhere would lack these settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event

from settlement import limits


@dataclass(frozen=True)
class Engines:
    """A writer engine (one writer at a time, immediate transactions) and a reader engine."""

    writer: Engine
    reader: Engine
    url: str

    @property
    def is_sqlite(self) -> bool:
        return self.writer.dialect.name == "sqlite"

    def dispose(self) -> None:
        self.writer.dispose()
        self.reader.dispose()


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
        return Engines(_sqlite_engine(url, immediate=True), _sqlite_engine(url, immediate=False), url)
    # Pool sizes: the writer thread holds one connection; readers serve the RPC worker threads.
    writer = create_engine(url, pool_size=2, max_overflow=2, pool_pre_ping=True, isolation_level="READ COMMITTED")
    reader = create_engine(url, pool_size=8, max_overflow=8, pool_pre_ping=True, isolation_level="READ COMMITTED")
    return Engines(writer, reader, url)


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
