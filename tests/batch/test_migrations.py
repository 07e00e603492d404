"""The migrations build exactly the schema the code declares, on both stores."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from settlement.storage import tables as t
from settlement.storage.engine import Engines


def test_the_migrated_schema_matches_the_declared_tables_column_for_column(engines: Engines) -> None:
    with engines.writer.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), t.metadata)

    assert differences == []
