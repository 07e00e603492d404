"""``settlement cards block|report-lost|activate`` and ``settlement terminals disable|enable``.

Owns: the options of these status changes and what they print. Must never hold their rules
(``settlement.service.status_changes`` does) nor print a full card number.

    settlement cards report-lost 6222021234567890123 --reason "phoned in by the cardholder, ticket 4711"
    settlement terminals disable H33010800045D01 --reason "desk PC stolen"
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

from settlement.cli import EXIT_OK
from settlement.commands._options import add_database_option, cli_actor, run_job

if TYPE_CHECKING:
    from settlement.service.status_changes import StatusChange
    from settlement.storage.engine import Engines

CARD_ACTIONS = {"block": "blocked", "report-lost": "lost", "activate": "active"}
TERMINAL_ACTIONS = {"disable": False, "enable": True}


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cards = commands.add_parser("cards", help="block a card, report it lost, or make it usable again (audited)")
    card_actions = cards.add_subparsers(dest="cards_command", required=True, metavar="ACTION")
    for action, status in CARD_ACTIONS.items():
        parser = card_actions.add_parser(action, help=f"set the card's status to {status}")
        parser.add_argument("card_number", help="the card number (printed masked)")
        _add_reason(parser)
        parser.set_defaults(run=_card_status, status=status, prog=f"settlement cards {action}")
    terminals = commands.add_parser("terminals", help="switch a desk or HIS terminal off or on (audited)")
    terminal_actions = terminals.add_subparsers(dest="terminals_command", required=True, metavar="ACTION")
    for action, active in TERMINAL_ACTIONS.items():
        parser = terminal_actions.add_parser(
            action, help=f"{action} the terminal: its calls are {'served' if active else 'refused'}"
        )
        parser.add_argument("terminal_id", help="the terminal id, as in its certificate")
        _add_reason(parser)
        parser.set_defaults(run=_terminal_status, active=active, prog=f"settlement terminals {action}")


def _add_reason(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reason", required=True, help="why, for the audit log (e.g. a ticket number)")
    add_database_option(parser)


def _card_status(args: argparse.Namespace) -> int:
    from settlement.service.status_changes import set_card_status

    return _change(
        args, "card", lambda engines, **audit: set_card_status(engines, args.card_number, args.status, **audit)
    )


def _terminal_status(args: argparse.Namespace) -> int:
    from settlement.service.status_changes import set_terminal_active

    return _change(
        args, "terminal", lambda engines, **audit: set_terminal_active(engines, args.terminal_id, args.active, **audit)
    )


def _change(args: argparse.Namespace, what: str, change_of: Callable[..., StatusChange]) -> int:
    """Run one status change with the reason, the operating-system user and the clock, and say what it did."""
    from settlement.service.clock import SystemClock

    def job(engines: Engines) -> int:
        change = change_of(engines, reason=args.reason, actor=cli_actor(), clock=SystemClock())
        if change.changed:
            print(f"{args.prog}: {what} {change.subject}: {change.before} -> {change.after} (audited)")
        else:
            print(f"{args.prog}: {what} {change.subject} is already {change.after}; nothing changed")
        return EXIT_OK

    return run_job(args.prog, args, job)
