"""``settlement ledger check``: verify the trial balance, every balance against its postings, every
settlement against its split, and the audit chain; say exactly what is wrong.

Owns: running the check in one consistent snapshot and printing it. Exit 0 when the ledger is sound,
1 with one line per problem when it is not. Must never write.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from settlement import limits
from settlement.cli import EXIT_FAILED, EXIT_OK
from settlement.commands._options import add_database_option, run_job

if TYPE_CHECKING:
    from settlement.storage.engine import Engines

PROG = "settlement ledger check"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ledger = commands.add_parser("ledger", help="the double-entry ledger and the audit log")
    actions = ledger.add_subparsers(dest="ledger_command", required=True, metavar="ACTION")
    check = actions.add_parser("check", help="verify balances, postings, settlements and the audit chain")
    add_database_option(check)
    check.set_defaults(run=_check)
    purge = actions.add_parser(
        "purge-expired",
        help="delete idempotency records past their retention window and quotes a day past expiry (audited)",
    )
    purge.add_argument(
        "--retention-days",
        type=int,
        default=limits.REQUEST_RETENTION_DAYS,
        help="keep request records this long; never less than the default (%(default)s, the API's promise)",
    )
    add_database_option(purge)
    purge.set_defaults(run=_purge)


def _check(args: argparse.Namespace) -> int:
    from settlement.service.ledger_check import check_ledger

    def job(engines: Engines) -> int:
        connection = engines.reader.connect()
        if not engines.is_sqlite:  # one snapshot for every query while terminals keep settling
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection, connection.begin():  # SQLite: one read transaction is one WAL snapshot
            report = check_ledger(connection)
        if report.ok:
            print(f"{PROG}: OK: {report.summary()}")
            return EXIT_OK
        print(f"{PROG}: FAILED: {len(report.problems)} problem(s) in {report.summary()}")
        for problem in report.problems:
            print(f"  {problem}")
        return EXIT_FAILED

    return run_job(PROG, args, job)


def _purge(args: argparse.Namespace) -> int:
    from settlement.commands._options import cli_actor
    from settlement.service.clock import SystemClock
    from settlement.service.purge import purge_expired

    prog = "settlement ledger purge-expired"

    def job(engines: Engines) -> int:
        done = purge_expired(engines, retention_days=args.retention_days, actor=cli_actor(), clock=SystemClock())
        print(
            f"{prog}: {done.requests} request record(s) older than {args.retention_days} days and "
            f"{done.quotes} expired quote(s) deleted; settlements, postings and the audit log are kept"
        )
        return EXIT_OK

    return run_job(prog, args, job)
