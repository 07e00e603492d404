"""Schema migrations (Alembic) and the check the server makes before it starts.

Owns: ``upgrade`` to the newest revision and ``require_current``, which refuses to run on a database
that is not at the newest revision and names the command that fixes it.
"""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from settlement.errors import DatabaseNotMigrated

MIGRATIONS = Path(__file__).parent / "migrations"
UPGRADE_COMMAND = "settlement db upgrade"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


@functools.cache  # the scripts ship with the code: reading them once per process is enough
def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:
        raise RuntimeError("no migrations found")
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> str:
    """Bring the schema to the newest revision; returns it. Safe to run again."""
    config = _config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    return head_revision()


def require_current(engine: Engine) -> None:
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise DatabaseNotMigrated(
            f"the database is at schema revision {current or 'none'}, this engine needs {head}: "
            f"run `{UPGRADE_COMMAND}` first",
            metadata={"current": current or "", "required": head},
        )
