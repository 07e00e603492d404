"""Reference data and personal accounts from the command line: ``hospitals import``, ``enrol import``,
``accounts fund`` and ``accounts rollover``.

Owns: the options of these batch jobs and what they print. Must never hold a rule of the jobs
themselves (``settlement.service.enrolment`` and ``settlement.service.annual`` do), nor print a full
citizen ID or card number.

    settlement hospitals import demo/hospitals.toml
    settlement enrol import demo/enrolment.csv [--encoding gb18030] [--citizen-id-key-file KEY]
    settlement accounts fund --region 330100 --year 2026 --insured-type employee --amount-fen 120000
    settlement accounts rollover --year 2025
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from settlement.cli import EXIT_OK, EXIT_USAGE
from settlement.commands._options import (
    OptionError,
    add_business_date_option,
    add_citizen_id_key_options,
    add_database_option,
    add_policies_option,
    business_date,
    citizen_id_key,
    cli_actor,
    known_regions,
    run_job,
)

if TYPE_CHECKING:
    from settlement.service.annual import JobOutcome
    from settlement.storage.engine import Engines

DEFAULT_CHUNK_PERSONS = 1_000  # the same as settlement.service.annual, without importing it at start-up


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    hospitals = commands.add_parser("hospitals", help="hospitals and their terminals")
    hospital_actions = hospitals.add_subparsers(dest="hospitals_command", required=True, metavar="ACTION")
    load = hospital_actions.add_parser("import", help="register hospitals and terminals from a TOML file")
    load.add_argument("file", help="TOML with [[hospital]] and [[hospital.terminal]] tables (see demo/hospitals.toml)")
    add_policies_option(load)
    add_database_option(load)
    load.set_defaults(run=_hospitals_import)

    enrol = commands.add_parser("enrol", help="insured persons, their cards and opening balances")
    enrol_actions = enrol.add_subparsers(dest="enrol_command", required=True, metavar="ACTION")
    enrol_import = enrol_actions.add_parser("import", help="import an enrolment CSV once, all or nothing")
    enrol_import.add_argument("file", help="CSV with a header row (see demo/enrolment.csv)")
    enrol_import.add_argument("--encoding", default="utf-8", help="file encoding, e.g. gb18030 (default: utf-8)")
    add_citizen_id_key_options(enrol_import)
    add_policies_option(enrol_import)
    add_business_date_option(enrol_import)
    add_database_option(enrol_import)
    enrol_import.set_defaults(run=_enrol_import)

    accounts = commands.add_parser("accounts", help="yearly jobs on personal accounts")
    account_actions = accounts.add_subparsers(dest="accounts_command", required=True, metavar="ACTION")
    fund = account_actions.add_parser("fund", help="credit every enrolled person's current-year account, once")
    fund.add_argument("--region", required=True, help="insurance region code, e.g. 330100")
    fund.add_argument("--year", required=True, type=int, help="the year funded")
    fund.add_argument("--insured-type", required=True, choices=("employee", "retired"), help="who is funded")
    fund.add_argument("--amount-fen", required=True, type=int, help="credited to each person, in fen")
    add_policies_option(fund)
    _add_job_options(fund)
    fund.set_defaults(run=_fund)
    rollover = account_actions.add_parser("rollover", help="move current-year balances to historical, once")
    rollover.add_argument("--year", required=True, type=int, help="the year that ended")
    _add_job_options(rollover)
    rollover.set_defaults(run=_rollover)


def _add_job_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--chunk-persons",
        type=int,
        default=DEFAULT_CHUNK_PERSONS,
        help="persons per transaction; an interrupted job resumes where it stopped (default: %(default)s)",
    )
    add_business_date_option(parser)
    add_database_option(parser)


def _hospitals_import(args: argparse.Namespace) -> int:
    from settlement.service.clock import SystemClock
    from settlement.service.enrolment import register_hospitals

    prog = "settlement hospitals import"

    def job(engines: Engines) -> int:
        path = Path(args.file)
        done = register_hospitals(engines, path, regions=known_regions(args), actor=cli_actor(), clock=SystemClock())
        print(
            f"{prog}: {path}: {done.hospitals_added} hospital(s) and {done.terminals_added} terminal(s) added, "
            f"{done.unchanged} already registered as in the file"
        )
        return EXIT_OK

    return run_job(prog, args, job)


def _enrol_import(args: argparse.Namespace) -> int:
    from settlement.domain.money import format_yuan
    from settlement.service.clock import SystemClock
    from settlement.service.enrolment import import_enrolment

    prog = "settlement enrol import"
    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as error:
        print(f"{prog}: {path}: cannot read: {error.strerror}", file=sys.stderr)
        return EXIT_USAGE

    def job(engines: Engines) -> int:
        clock = SystemClock()
        done = import_enrolment(
            engines,
            data,
            source=str(path),
            encoding=args.encoding,
            regions=known_regions(args),
            key=citizen_id_key(args),
            actor=cli_actor(),
            clock=clock,
            business_date=business_date(args, clock),
        )
        if done.already_imported:
            print(f"{prog}: {path}: already imported as {done.run_id} ({done.persons} persons); nothing changed")
        else:
            print(
                f"{prog}: {path}: {done.persons} persons with their cards enrolled; opening balances "
                f"{format_yuan(done.current_year_fen)} yuan current-year, {format_yuan(done.historical_fen)} yuan "
                f"historical ({done.run_id})"
            )
        return EXIT_OK

    return run_job(prog, args, job)


def _fund(args: argparse.Namespace) -> int:
    from settlement.service.annual import fund_accounts
    from settlement.service.clock import SystemClock

    prog = "settlement accounts fund"

    def job(engines: Engines) -> int:
        _check_chunk(args)
        clock = SystemClock()
        done = fund_accounts(
            engines,
            region=args.region,
            year=args.year,
            insured_type=args.insured_type,
            amount_fen=args.amount_fen,
            regions=known_regions(args),
            actor=cli_actor(),
            clock=clock,
            business_date=business_date(args, clock),
            chunk_persons=args.chunk_persons,
        )
        _print_job(prog, done, "funded")
        return EXIT_OK

    return run_job(prog, args, job)


def _rollover(args: argparse.Namespace) -> int:
    from settlement.service.annual import roll_over
    from settlement.service.clock import SystemClock

    prog = "settlement accounts rollover"

    def job(engines: Engines) -> int:
        _check_chunk(args)
        clock = SystemClock()
        done = roll_over(
            engines,
            year=args.year,
            actor=cli_actor(),
            clock=clock,
            business_date=business_date(args, clock),
            chunk_persons=args.chunk_persons,
        )
        _print_job(prog, done, "rolled over")
        return EXIT_OK

    return run_job(prog, args, job)


def _check_chunk(args: argparse.Namespace) -> None:
    if not 1 <= args.chunk_persons <= 100_000:
        raise OptionError("--chunk-persons must be from 1 to 100000")


def _print_job(prog: str, done: JobOutcome, verb: str) -> None:
    from settlement.domain.money import format_yuan

    amount = f"{format_yuan(done.amount_fen)} yuan"
    if done.already_done:
        print(f"{prog}: {done.run_id} already done ({done.persons} persons, {amount}); nothing changed")
        return
    resumed = f", {done.resumed_persons} of them by an earlier interrupted run" if done.resumed_persons else ""
    print(f"{prog}: {done.run_id}: {done.persons} persons {verb}, {amount}{resumed}")
