"""``settlement db upgrade``: bring the database schema to the newest revision.

Owns: the command line of migrations. Must never change data beyond what a migration does.
"""

from __future__ import annotations

import argparse

from settlement.cli import EXIT_OK
from settlement.commands._options import add_database_option, database_url, run_job, shown_url

PROG = "settlement db upgrade"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    db = commands.add_parser("db", help="database schema")
    actions = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = actions.add_parser("upgrade", help="migrate the database to the newest schema (safe to repeat)")
    add_database_option(upgrade)
    upgrade.set_defaults(run=_upgrade)


def _upgrade(args: argparse.Namespace) -> int:
    from settlement.storage.engine import Engines
    from settlement.storage.migrate import upgrade

    def job(engines: Engines) -> int:
        revision = upgrade(engines.writer)
        print(f"{PROG}: {shown_url(database_url(args))} is at schema revision {revision}")
        return EXIT_OK

    return run_job(PROG, args, job, migrated=False)
