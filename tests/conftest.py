"""Fixtures every storage-backed test shares: a fresh, migrated database on SQLite and on PostgreSQL.

PostgreSQL is the production store and is tested for real: each test gets its own database, created
and dropped here, so nothing assumes an empty server or survives into the next run. Outside CI an
unreachable server skips the PostgreSQL half with the reason; under ``CI=true`` it fails.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from settlement.storage.engine import Engines, make_engines, sqlite_url
from settlement.storage.migrate import upgrade

POSTGRES_ADMIN_URL = os.environ.get("SETTLEMENT_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
TEST_DATABASE_PREFIX = "settlement_test_"


def _postgres_reason_unavailable() -> str | None:
    try:
        engine = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as error:  # any failure means "not reachable" here
        return f"PostgreSQL at {POSTGRES_ADMIN_URL} unreachable: {error}"
    return None


def require_postgres() -> None:
    reason = _postgres_reason_unavailable()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


class PostgresDatabases:
    """Creates and drops throwaway databases on the local server."""

    def __init__(self) -> None:
        self.admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")

    def create(self) -> str:
        name = f"{TEST_DATABASE_PREFIX}{uuid.uuid4().hex[:12]}"
        with self.admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"

    def drop(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with self.admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[PostgresDatabases]:
    require_postgres()
    databases = PostgresDatabases()
    yield databases
    databases.admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty (un-migrated) database URL, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path / "settlement.db")
        return
    databases: PostgresDatabases = request.getfixturevalue("postgres_databases")
    url = databases.create()
    yield url
    databases.drop(url)


@pytest.fixture
def engines(database_url: str) -> Iterator[Engines]:
    """Migrated engines on a fresh database."""
    made = make_engines(database_url)
    upgrade(made.writer)
    yield made
    made.dispose()


# Everything the engine's loggers emit during the session is scanned for full citizen IDs and card numbers;
# a hit fails the session (tests/identifier_scan.py).
pytest_plugins = ("identifier_scan",)
