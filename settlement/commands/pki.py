"""``settlement pki``: a local CA and the certificates of the server and the terminals.

Owns: the command-line shape of ``settlement.server.pki``. Must never print or log a private key.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pki = commands.add_parser("pki", help="a local CA and certificates for the server and the terminals (mTLS)")
    jobs = pki.add_subparsers(dest="pki_command", required=True, metavar="JOB")

    init = jobs.add_parser("init", help="create a local CA (EC P-256, 10 years) in DIR: ca.crt, ca.key")
    init.add_argument("--dir", required=True, type=Path, help="the PKI folder (created if missing)")
    init.set_defaults(run=_init)

    server = jobs.add_parser("issue-server", help="issue server.crt / server.key for the gRPC listener")
    server.add_argument("--dir", required=True, type=Path, help="the PKI folder holding the CA")
    server.add_argument(
        "--name", required=True, action="append", dest="names", help="a DNS name or IP address; repeat for more"
    )
    server.add_argument("--days", type=int, default=None, help="validity in days (default 825)")
    server.set_defaults(run=_issue_server)

    terminal = jobs.add_parser(
        "issue-terminal", help="issue a terminal's client certificate naming its hospital and terminal"
    )
    terminal.add_argument("--dir", required=True, type=Path, help="the PKI folder holding the CA")
    terminal.add_argument("--hospital", required=True, help="the hospital id (national fixmedins_code)")
    terminal.add_argument("--terminal", required=True, help="the terminal id")
    terminal.add_argument("--days", type=int, default=None, help="validity in days (default 365)")
    terminal.set_defaults(run=_issue_terminal)


def _init(args: argparse.Namespace) -> int:
    from settlement.cli import EXIT_OK, EXIT_USAGE
    from settlement.server.pki import CA_CERT, PkiError, init_authority

    try:
        init_authority(args.dir)
    except PkiError as error:
        print(f"settlement pki init: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(f"CA created: {args.dir / CA_CERT} (keep ca.key offline once terminals are issued)")
    return EXIT_OK


def _issue_server(args: argparse.Namespace) -> int:
    from settlement.cli import EXIT_OK, EXIT_USAGE
    from settlement.server.pki import SERVER_VALIDITY_DAYS, PkiError, issue_server

    days = SERVER_VALIDITY_DAYS if args.days is None else args.days
    try:
        cert_path, key_path = issue_server(args.dir, args.names, days=days)
    except PkiError as error:
        print(f"settlement pki issue-server: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(f"server certificate for {', '.join(args.names)}: {cert_path} (key {key_path})")
    return EXIT_OK


def _issue_terminal(args: argparse.Namespace) -> int:
    from settlement.cli import EXIT_OK, EXIT_USAGE
    from settlement.server.pki import TERMINAL_VALIDITY_DAYS, PkiError, issue_terminal, terminal_uri

    days = TERMINAL_VALIDITY_DAYS if args.days is None else args.days
    try:
        cert_path, key_path = issue_terminal(args.dir, args.hospital, args.terminal, days=days)
    except PkiError as error:
        print(f"settlement pki issue-terminal: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(f"terminal {terminal_uri(args.hospital, args.terminal)}: {cert_path} (key {key_path})")
    return EXIT_OK
