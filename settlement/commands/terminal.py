"""``settlement terminal``: the program a doctor's desk runs for one visit (docs/terminal.md).

Owns the command-line shape: where the engine is and who this desk is (mTLS files from ``settlement
pki``, or dev-mode flags), the reader, the journal, the charges file, and the exit codes. On start it
first resumes any settle the journal holds unfinished; then, given ``--charges``, it runs one visit.
Must never print or log the PIN; ``--pin-from-env`` exists for tests only.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import grpc

    from settlement.terminal.calls import Identity

DEFAULT_JOURNAL = Path("data/terminal-journal.jsonl")  # relative to the current directory, like the database
EXIT_UNFINISHED = 3  # a settle's outcome is still unknown; it stays in the journal for the next start
EXIT_INTERRUPTED = 130


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    terminal = commands.add_parser(
        "terminal",
        help="the doctor's desk: card, PIN, quote, confirm, card signs, settle, receipt (journaled)",
        description="Resume any unfinished settle in the journal, then (with --charges) settle one visit.",
    )
    where = terminal.add_argument_group("engine and identity")
    where.add_argument("--target", default="localhost:50051", help="HOST:PORT of the engine (default %(default)s)")
    where.add_argument("--ca", type=Path, help="the CA certificate the engine's certificate is checked against")
    where.add_argument("--cert", type=Path, help="this terminal's certificate (settlement pki issue-terminal)")
    where.add_argument("--key", type=Path, help="this terminal's private key")
    where.add_argument("--dev-hospital", help="dev mode only (plaintext): this desk's hospital id")
    where.add_argument("--dev-terminal", help="dev mode only (plaintext): this desk's terminal id (1-16 ASCII)")
    where.add_argument("--operator", required=True, help="the logged-in doctor's staff id (operator-id)")

    desk = terminal.add_argument_group("desk")
    desk.add_argument("--reader", help="reader name, or its index in the reader list (default: any reader)")
    desk.add_argument(
        "--card-timeout", type=float, default=60.0, metavar="SECONDS", help="wait this long for a card (default 60)"
    )
    desk.add_argument(
        "--journal",
        type=Path,
        default=DEFAULT_JOURNAL,
        help="the settle journal (default %(default)s); keep it on a local disk that survives a reboot",
    )
    desk.add_argument("--charges", type=Path, help="the visit's charges (JSON); without it, only recovery runs")
    desk.add_argument("--person", help="the patient's person number when the charges file has none")
    desk.add_argument("--person-map", type=Path, help="JSON object card number -> person number")
    desk.add_argument(
        "--unfinished",
        choices=("ask", "retry", "reverse"),
        default="ask",
        help="an unfinished settle: ask (default), resend it with its request_id, or reverse it (2601)",
    )
    desk.add_argument("--yes", action="store_true", help="answer every question with its default (scripts, tests)")
    desk.add_argument(
        "--pin-from-env",
        metavar="VAR",
        help="TESTS ONLY: read the PIN from environment variable VAR instead of the keyboard",
    )
    terminal.set_defaults(run=_terminal)


def _terminal(args: argparse.Namespace) -> int:
    from settlement.cli import EXIT_FAILED, EXIT_USAGE
    from settlement.terminal.calls import IdentityError
    from settlement.terminal.charges import ChargesError
    from settlement.terminal.journal import JournalError

    prog = "settlement terminal"
    try:
        return _run(args)
    except (_UsageError, IdentityError, ChargesError) as error:
        print(f"{prog}: {error}", file=sys.stderr)
        return EXIT_USAGE
    except JournalError as error:
        print(f"{prog}: journal {args.journal}: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(
            f"\n{prog}: interrupted; any settle already sent stays in {args.journal} and is resumed on the next start",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED


class _UsageError(Exception):
    pass


def _run(args: argparse.Namespace) -> int:
    from cardio.errors import CardError
    from cardio.reader import open_pcsc_reader
    from settlement.api.gen.clinic.settlement.v1 import settlement_service_pb2_grpc as pb_grpc
    from settlement.cli import EXIT_FAILED, EXIT_OK
    from settlement.terminal.charges import load_charges, load_person_map
    from settlement.terminal.flow import Desk, DeskSettings, Outcome
    from settlement.terminal.journal import Journal
    from settlement.terminal.prompts import Console, pin_from_environment

    identity, channel = _connect(args)
    charges = load_charges(args.charges) if args.charges else None
    person_map = load_person_map(args.person_map) if args.person_map else {}
    if args.card_timeout <= 0:
        raise _UsageError("--card-timeout must be positive")
    if args.pin_from_env:
        if args.pin_from_env not in os.environ:
            raise _UsageError(f"--pin-from-env: the environment variable {args.pin_from_env} is not set")
        console = Console(
            stdin=sys.stdin,
            stdout=sys.stdout,
            read_pin=pin_from_environment(args.pin_from_env),
            pin_can_be_retried=False,  # the same wrong PIN again would only burn the card's tries
            assume_yes=args.yes,
        )
    else:
        console = Console(stdin=sys.stdin, stdout=sys.stdout, assume_yes=args.yes)
    settings = DeskSettings(
        identity=identity,
        reader=args.reader,
        card_wait_timeout_ms=int(args.card_timeout * 1000),
        unfinished=args.unfinished,
    )
    with channel, Journal.open(args.journal) as journal:
        stub = pb_grpc.SettlementServiceStub(channel)
        if not Desk(stub, journal, console, settings).recover():  # first, whatever a crash left behind
            return EXIT_UNFINISHED
        if charges is None:
            console.say(f"日志无未完成结算 journal {args.journal}: nothing unfinished (no --charges: no visit)")
            return EXIT_OK
        try:
            reader = open_pcsc_reader()
        except CardError as error:
            print(f"settlement terminal: {error.message_zh} ({error.reason}: {error.message})", file=sys.stderr)
            return EXIT_FAILED
        outcome = Desk(stub, journal, console, settings, reader=reader).visit(
            charges, person=args.person, person_map=person_map
        )
    if outcome is Outcome.SETTLED:
        return EXIT_OK
    return EXIT_UNFINISHED if outcome is Outcome.UNKNOWN else EXIT_FAILED


def _connect(args: argparse.Namespace) -> tuple[Identity, grpc.Channel]:
    """The identity and channel from either the mTLS files or the dev-mode flags (never both)."""
    from settlement.terminal.calls import (
        Identity,
        check_terminal_id,
        dev_channel,
        identity_from_certificate,
        secure_channel,
    )

    tls = (args.ca, args.cert, args.key)
    dev = (args.dev_hospital, args.dev_terminal)
    if any(tls) and any(dev):
        raise _UsageError("give either --ca/--cert/--key (mTLS) or --dev-hospital/--dev-terminal (dev mode), not both")
    if any(tls):
        if not all(tls):
            raise _UsageError("mTLS needs all of --ca, --cert and --key")
        try:
            identity = identity_from_certificate(args.cert.read_bytes(), args.operator)
            return identity, secure_channel(args.target, ca=args.ca, cert=args.cert, key=args.key)
        except OSError as error:
            raise _UsageError(f"cannot read the TLS files: {error}") from None
    if not all(dev):
        raise _UsageError("name this desk: --ca/--cert/--key (mTLS), or --dev-hospital and --dev-terminal (dev mode)")
    check_terminal_id(args.dev_terminal)
    return Identity(args.dev_hospital, args.dev_terminal, args.operator, dev_mode=True), dev_channel(args.target)
