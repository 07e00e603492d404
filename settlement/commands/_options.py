"""Options every database-backed subcommand shares: where the database is, the citizen-ID key, who acts.

Owns: ``--database`` (default ``$SETTLEMENT_DATABASE_URL``, else ``data/settlement.db`` under the current
directory), ``--policies``, ``--business-date``, the citizen-ID hashing key (``$SETTLEMENT_CITIZEN_ID_KEY``
in hex, ``--citizen-id-key-file``, or the published demo key behind ``--insecure-demo-key``), opening
engines on a migrated database, and how a refusal is printed. Must never print a password or a key.

This module has no subcommands of its own: ``register`` is a no-op so the CLI's discovery, which imports
every module of this package, can treat it like the others.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from settlement.errors import SettlementError
    from settlement.service.clock import Clock
    from settlement.storage.engine import Engines

DATABASE_URL_ENV = "SETTLEMENT_DATABASE_URL"
DEFAULT_DATABASE_URL = "sqlite+pysqlite:///data/settlement.db"  # relative to the current directory
CITIZEN_ID_KEY_ENV = "SETTLEMENT_CITIZEN_ID_KEY"
MIN_CITIZEN_ID_KEY_BYTES = 16
# Published here and in demo/README.md: anyone can recompute hashes made with it. Demo data only.
INSECURE_DEMO_CITIZEN_ID_KEY = b"demo-only-not-a-secret-key"
DEFAULT_POLICIES = "policies"


class OptionError(Exception):
    """A missing or malformed option value; the command prints it and exits with EXIT_USAGE."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """No subcommands here (see the module docstring)."""


def add_database_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database",
        metavar="URL",
        default=None,
        help=f"SQLAlchemy URL (default: ${DATABASE_URL_ENV}, else {DEFAULT_DATABASE_URL})",
    )


def database_url(args: argparse.Namespace) -> str:
    explicit: str | None = getattr(args, "database", None)
    return explicit or os.environ.get(DATABASE_URL_ENV) or DEFAULT_DATABASE_URL


def shown_url(url: str) -> str:
    """The URL with any password hidden, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is reported by the engine itself; show nothing secret here
        return "(unparsable database URL)"


def open_engines(args: argparse.Namespace, *, require_migrated: bool = True) -> Engines:
    """Engines on ``--database``; refuses (DatabaseNotMigrated) a database not at the newest revision."""
    from settlement.storage.engine import make_engines
    from settlement.storage.migrate import require_current

    engines = make_engines(database_url(args))
    if require_migrated:
        try:
            require_current(engines.writer)
        except BaseException:
            engines.dispose()
            raise
    return engines


def add_policies_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--policies",
        metavar="DIR",
        default=DEFAULT_POLICIES,
        help="policy folder; its regions are the known regions (default: %(default)s)",
    )


def known_regions(args: argparse.Namespace) -> frozenset[str]:
    from settlement.policy_files import PolicyFileError, load_policies

    try:
        return frozenset(load_policies(Path(args.policies)))
    except PolicyFileError as error:
        raise OptionError(f"--policies: {error}") from None


def add_business_date_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--business-date",
        metavar="YYYY-MM-DD",
        type=dt.date.fromisoformat,
        default=None,
        help="the day the postings are booked on (default: today in China Standard Time)",
    )


def business_date(args: argparse.Namespace, clock: Clock) -> dt.date:
    from settlement.service.clock import business_date as day_of

    chosen: dt.date | None = getattr(args, "business_date", None)
    return chosen if chosen is not None else day_of(clock.now_us())


def add_citizen_id_key_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--citizen-id-key-file",
        metavar="PATH",
        default=None,
        help=f"file holding the citizen-ID hashing key in hex (default: ${CITIZEN_ID_KEY_ENV})",
    )
    parser.add_argument(
        "--insecure-demo-key",
        action="store_true",
        help="hash citizen IDs with the published demo key: demo data only, never real persons",
    )


def citizen_id_key(args: argparse.Namespace) -> bytes:
    """The HMAC key citizen IDs are stored under; refuses to guess one."""
    source: str
    if args.citizen_id_key_file:
        path = Path(args.citizen_id_key_file)
        try:
            text = path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError) as error:
            raise OptionError(f"--citizen-id-key-file {path}: cannot read the key: {error}") from None
        source = f"--citizen-id-key-file {path}"
    elif os.environ.get(CITIZEN_ID_KEY_ENV):
        text, source = os.environ[CITIZEN_ID_KEY_ENV].strip(), f"${CITIZEN_ID_KEY_ENV}"
    elif args.insecure_demo_key:
        print(
            "WARNING: hashing citizen IDs with the published demo key (--insecure-demo-key); "
            "never use it for real persons",
            file=sys.stderr,
        )
        return INSECURE_DEMO_CITIZEN_ID_KEY
    else:
        raise OptionError(
            f"no citizen-ID key: set ${CITIZEN_ID_KEY_ENV} (hex) or pass --citizen-id-key-file "
            "(or --insecure-demo-key for the demo data)"
        )
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise OptionError(f"{source}: the key must be hexadecimal") from None
    if len(key) < MIN_CITIZEN_ID_KEY_BYTES:
        raise OptionError(f"{source}: the key must be at least {MIN_CITIZEN_ID_KEY_BYTES} bytes")
    return key


def cli_actor() -> str:
    """Who runs the command, for the audit log: the operating-system user."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no passwd entry (a container): fall back to the numeric id
        user = f"uid-{os.getuid()}" if hasattr(os, "getuid") else "unknown"
    return f"cli/{user}"


def refused(prog: str, error: SettlementError) -> None:
    """Print a refusal: its reason and message (messages never hold a full citizen ID or card number)."""
    print(f"{prog}: {error.reason}: {error.message}", file=sys.stderr)


def run_job(prog: str, args: argparse.Namespace, job: Callable[[Engines], int], *, migrated: bool = True) -> int:
    """Open the engines, run ``job``, and turn what can go wrong into a message and an exit code."""
    from sqlalchemy.exc import OperationalError

    from settlement.cli import EXIT_FAILED, EXIT_USAGE
    from settlement.errors import SettlementError

    engines: Engines | None = None
    try:
        engines = open_engines(args, require_migrated=migrated)
        return job(engines)
    except OptionError as error:
        print(f"{prog}: {error}", file=sys.stderr)
        return EXIT_USAGE
    except SettlementError as error:
        refused(prog, error)
        return EXIT_FAILED
    except OperationalError as error:
        print(f"{prog}: cannot use the database {shown_url(database_url(args))}: {error.orig}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        if engines is not None:
            engines.dispose()
