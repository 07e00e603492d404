"""``settlement close-day``, ``settlement reconcile`` and ``settlement reconcile-month``: finance's end of day.

Owns: the command-line shape of daily close and reconciliation, what they print, and their exit status
for a scheduler: 0 the day closed / balanced, 1 it did not (problems or discrepancies, listed), 2 a usage
error, an unknown hospital, an unmigrated database or a bad input file (named as ``file:line:column``;
nothing is written then). Must never hold business rules: it calls ``settlement.service`` and the
reconciliation core.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from settlement.commands._options import add_database_option

if TYPE_CHECKING:
    from settlement.errors import InvalidImportFile
    from settlement.reconciliation import CounterpartRecord, DayReconciliation
    from settlement.service.daily_ledger import DailyLedgerRow

_MONTH = re.compile(r"(\d{4})-(\d{2})")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    close = commands.add_parser(
        "close-day", help="check a hospital's day and close it (日结): later bookings into it are refused"
    )
    _hospital_and_date(close)
    add_database_option(close)
    close.set_defaults(run=_close_day)

    reconcile = commands.add_parser(
        "reconcile", help="reconcile a hospital's day against the HIS export and the insurer's file (3201/3202)"
    )
    _hospital_and_date(reconcile)
    reconcile.add_argument("--his", required=True, type=Path, metavar="FILE", help="the HIS's daily export (CSV)")
    reconcile.add_argument(
        "--insurer", type=Path, metavar="FILE", help="the insurer's detail result file (tab-separated, 3202)"
    )
    reconcile.add_argument("--out", required=True, type=Path, metavar="DIR", help="where the reports go")
    add_database_option(reconcile)
    reconcile.set_defaults(run=_reconcile)

    month = commands.add_parser("reconcile-month", help="a month's reconciled days of a hospital, as one CSV")
    month.add_argument("--hospital", required=True, metavar="H", help="the hospital id (fixmedins_code)")
    month.add_argument("--month", required=True, type=_month, metavar="YYYY-MM", help="the calendar month")
    month.add_argument("--out", required=True, type=Path, metavar="DIR", help="where the report goes")
    add_database_option(month)
    month.set_defaults(run=_reconcile_month)


def _hospital_and_date(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hospital", required=True, metavar="H", help="the hospital id (fixmedins_code)")
    parser.add_argument(
        "--date", required=True, type=_date, metavar="YYYY-MM-DD", help="the business day (China Standard Time)"
    )


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date such as 2024-03-05") from None


def _month(text: str) -> tuple[int, int]:
    found = _MONTH.fullmatch(text)
    if found is None or not 1 <= int(found[2]) <= 12:
        raise argparse.ArgumentTypeError(f"{text!r} is not a month such as 2024-03")
    return int(found[1]), int(found[2])


# --- close-day ------------------------------------------------------------------------------------


def _close_day(args: argparse.Namespace) -> int:
    from settlement.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE
    from settlement.commands._options import cli_actor, open_engines, refused
    from settlement.errors import SettlementError
    from settlement.service.clock import CHINA_STANDARD_TIME
    from settlement.service.daily_close import close_day

    prog = "settlement close-day"
    try:
        engines = open_engines(args)
    except SettlementError as error:
        refused(prog, error)
        return EXIT_USAGE
    try:
        result = close_day(engines, args.hospital, args.date, cli_actor())
    except SettlementError as error:
        refused(prog, error)
        return EXIT_USAGE
    finally:
        engines.dispose()
    if result.closed_day is None:
        print(
            f"{prog}: {args.hospital} {args.date.isoformat()} NOT closed: {result.problem_count} problem(s)",
            file=sys.stderr,
        )
        for problem in result.problems:
            print(f"  {problem}", file=sys.stderr)
        if result.problem_count > len(result.problems):
            print(f"  … and {result.problem_count - len(result.problems)} more", file=sys.stderr)
        return EXIT_FAILED
    closed = result.closed_day
    at = dt.datetime.fromtimestamp(closed.closed_at_us / 1_000_000, CHINA_STANDARD_TIME)
    again = " (already closed; stored totals unchanged)" if result.already_closed else ""
    print(
        f"{closed.hospital_id} {closed.business_date.isoformat()} closed at {at.isoformat(timespec='seconds')}{again}"
    )
    print(f"audit head {closed.audit_head}")
    _print_ledger_rows([*closed.rows, closed.total])
    return EXIT_OK


def _print_ledger_rows(rows: Iterable[DailyLedgerRow]) -> None:
    from settlement.reconciliation.report_common import yuan_text

    header = ("insured_type", "clearing_type", "payer", "settlements", "cancellations")
    amounts = ("total", "fund_paid", "account_paid", "cash")
    table: list[tuple[str, ...]] = [(*header, *amounts)]
    for row in rows:
        label = row.key if row.payer else ("TOTAL", "", "")
        table.append(
            (
                *label,
                str(row.settlement_count),
                str(row.cancellation_count),
                *(yuan_text(fen) for fen in (row.total_fen, row.fund_paid_fen, row.account_paid_fen, row.cash_fen)),
            )
        )
    widths = [max(len(line[column]) for line in table) for column in range(len(table[0]))]
    for line in table:
        cells = [
            cell.ljust(width) if index < 3 else cell.rjust(width)
            for index, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())


# --- reconcile ------------------------------------------------------------------------------------


def _reconcile(args: argparse.Namespace) -> int:
    from settlement.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE
    from settlement.commands._options import cli_actor, open_engines, refused
    from settlement.errors import SettlementError
    from settlement.reconciliation import reconcile_day, summarize_day, write_day_reports
    from settlement.service.daily_close import day_is_closed
    from settlement.service.daily_ledger import require_hospital
    from settlement.service.ledger_source import read_ledger_records
    from settlement.service.reconciliation_runs import month_summary, record_reconciliation

    prog = "settlement reconcile"
    hospital_id, day = args.hospital, args.date
    # The files first: a bad one refuses the run before the database is opened or anything is written.
    counterparts = _read_counterpart_files(prog, args.his, args.insurer)
    if counterparts is None:
        return EXIT_USAGE
    his, insurer = counterparts
    try:
        engines = open_engines(args)
    except SettlementError as error:
        refused(prog, error)
        return EXIT_USAGE
    try:
        with engines.reader.connect() as connection:
            require_hospital(connection, hospital_id)
            closed = day_is_closed(connection, hospital_id, day)
        result = reconcile_day(hospital_id, day, read_ledger_records(engines, hospital_id, day), his, insurer)
        summary = summarize_day(result)
        with engines.reader.connect() as connection:
            month = month_summary(connection, hospital_id, day.year, day.month, including=summary)
        try:
            reports = write_day_reports(result, args.out, month)
        except OSError as error:
            print(f"{prog}: {args.out}: cannot write the reports: {error}", file=sys.stderr)
            return EXIT_USAGE
        files = {"his": args.his} | ({"insurer": args.insurer} if args.insurer is not None else {})
        record_reconciliation(engines, summary, actor=cli_actor(), files=files)
    except SettlementError as error:
        refused(prog, error)
        return EXIT_USAGE
    finally:
        engines.dispose()
    if not closed:
        print(
            f"{prog}: note: {hospital_id} {day.isoformat()} is not closed; our side may still change", file=sys.stderr
        )
    _print_outcome(result)
    for path in (reports.discrepancies_csv, reports.workbook, reports.html):
        print(f"report {path}")
    return EXIT_OK if result.balanced else EXIT_FAILED


def _read_counterpart_files(
    prog: str, his_path: Path, insurer_path: Path | None
) -> tuple[list[CounterpartRecord], list[CounterpartRecord] | None] | None:
    """Both files parsed, all or nothing; None (after saying why, as ``file:line:column``) if one is bad."""
    from settlement.errors import InvalidImportFile
    from settlement.reconciliation import read_his_export, read_insurer_detail

    path = his_path
    try:
        his = read_his_export(path)
        insurer = None
        if insurer_path is not None:
            path = insurer_path
            insurer = read_insurer_detail(path)
    except InvalidImportFile as error:
        print(f"{prog}: {_where(error, path)}: {error.message}", file=sys.stderr)
        return None
    except OSError as error:
        print(f"{prog}: {path}: cannot read: {error.strerror or error}", file=sys.stderr)
        return None
    return his, insurer


def _where(error: InvalidImportFile, path: Path) -> str:
    """``file:line:column`` of a refused file's first problem (``file:line`` when a whole line is at fault)."""
    column = re.match(r"(?:byte )?(\d+)", error.metadata.get("column", ""))
    line = error.metadata.get("line", "1")
    return f"{path}:{line}:{column[1]}" if column else f"{path}:{line}"


def _print_outcome(day: DayReconciliation) -> None:
    what = f"{day.hospital_id} {day.business_date.isoformat()}"
    against = ", ".join(f"{part.counterpart.value} ({part.file_name})" for part in day.counterparts)
    if day.balanced:
        print(f"{what}: balanced against {against}")
        return
    counts: dict[str, int] = {}
    for found in day.discrepancies:
        counts[found.kind.value] = counts.get(found.kind.value, 0) + 1
    unbalanced = sum(1 for part in day.counterparts for line in part.totals if not line.balanced)
    kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(counts.items()))
    print(
        f"{what}: NOT balanced against {against}: {len(day.discrepancies)} discrepancies ({kinds or 'none'}), "
        f"{unbalanced} totals line(s) differ"
    )


# --- reconcile-month ------------------------------------------------------------------------------


def _reconcile_month(args: argparse.Namespace) -> int:
    from settlement.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE
    from settlement.commands._options import open_engines, refused
    from settlement.errors import SettlementError
    from settlement.reconciliation import write_month_report
    from settlement.service.daily_ledger import require_hospital
    from settlement.service.reconciliation_runs import booked_dates, month_summary

    prog = "settlement reconcile-month"
    year, month_number = args.month
    try:
        engines = open_engines(args)
    except SettlementError as error:
        refused(prog, error)
        return EXIT_USAGE
    try:
        with engines.reader.connect() as connection:
            require_hospital(connection, args.hospital)
            month = month_summary(connection, args.hospital, year, month_number)
            booked = booked_dates(connection, args.hospital, year, month_number)
    except SettlementError as error:
        refused(prog, error)
        return EXIT_USAGE
    finally:
        engines.dispose()
    path = write_month_report(month, args.out)
    reconciled = {day.business_date for day in month.days}
    missing = [day for day in booked if day not in reconciled]
    print(f"report {path}")
    print(f"{len(month.days)} day(s) reconciled, {len(month.unbalanced_dates)} not balanced")
    for day in month.unbalanced_dates:
        print(f"{prog}: {day.isoformat()} did not balance", file=sys.stderr)
    for day in missing:
        print(f"{prog}: {day.isoformat()} has bookings but was never reconciled", file=sys.stderr)
    return EXIT_OK if month.balanced and not missing else EXIT_FAILED
