"""Alembic environment: runs migrations on the connection ``settlement.storage.migrate`` hands over."""

from __future__ import annotations

from alembic import context

from settlement.storage.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `settlement db upgrade`, which supplies the connection")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
