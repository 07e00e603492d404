"""``settlement serve``: the gRPC server over the application service."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from settlement.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:
    from settlement.server.config import ServerConfig

ISSUER_KEY_ENV = "SETTLEMENT_ISSUER_KEYS"  # "reference=hexkey,reference=hexkey"
_log = logging.getLogger("settlement.serve")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser("serve", help="run the gRPC settlement server (config: docs/operations.md)")
    serve.add_argument("--config", type=Path, help="server TOML file (e.g. config/dev.toml); env overrides apply")
    serve.set_defaults(run=_serve)


def issuer_key_sources(text: str) -> dict[str, object]:
    """``issuer-1=00112233…`` pairs → software key sources (dev and tests; production plugs in an HSM)."""
    from cardio.card_crypto import SoftwareKeySource

    sources: dict[str, object] = {}
    for pair in filter(None, (part.strip() for part in text.split(","))):
        reference, _, key_hex = pair.partition("=")
        sources[reference.strip()] = SoftwareKeySource(bytes.fromhex(key_hex.strip()))
    return sources


def _serve_in_processes(config: ServerConfig, args: argparse.Namespace) -> int:
    """Check the database once, then leave the serving to ``[limits].processes`` children."""
    from settlement.errors import DatabaseNotMigrated
    from settlement.server.processes import run_processes, settings_fingerprint
    from settlement.server.runtime import ServerStartError
    from settlement.storage.engine import make_engines
    from settlement.storage.migrate import require_current

    engines = make_engines(config.database_url)
    try:
        require_current(engines.writer)
    except DatabaseNotMigrated as error:
        print(f"settlement serve: {error}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        engines.dispose()
    command = ["-m", "settlement.cli", "serve", *(["--config", str(args.config)] if args.config else [])]
    try:
        return run_processes(
            config,
            command,
            os.environ,
            fingerprint=lambda: settings_fingerprint(args.config, config.policies_dir, os.environ),
        )
    except ServerStartError as error:
        print(f"settlement serve: {error}", file=sys.stderr)
        return EXIT_FAILED


def _serve(args: argparse.Namespace) -> int:
    from settlement.api.gen.clinic.settlement.v1.settlement_service_pb2_grpc import (
        add_SettlementServiceServicer_to_server,
    )
    from settlement.errors import DatabaseNotMigrated
    from settlement.policy_files import PolicyFileError
    from settlement.server.config import ConfigError, load_config
    from settlement.server.metrics import ServerMetrics
    from settlement.server.processes import SHARED_PORT_ENV
    from settlement.server.runtime import ServerStartError, configure_logging, run_server
    from settlement.server.servicer import SettlementServicer
    from settlement.service.app import SettlementApp
    from settlement.service.context import ServiceContext
    from settlement.service.policy_book import PolicyBook
    from settlement.storage.engine import make_engines
    from settlement.storage.migrate import require_current

    configure_logging()
    logging.getLogger("alembic").setLevel(logging.WARNING)  # the readiness probe reads the revision each poll
    try:
        config = load_config(args.config, os.environ)
        policies = PolicyBook.load(config.policies_dir)
        key_sources = issuer_key_sources(os.environ.get(ISSUER_KEY_ENV, ""))
    except (ConfigError, PolicyFileError, ValueError) as error:
        print(f"settlement serve: {error}", file=sys.stderr)
        return EXIT_USAGE
    if os.environ.get(SHARED_PORT_ENV) == "1":
        config = dataclasses.replace(config, share_port=True)
    elif config.limits.processes > 1:
        return _serve_in_processes(config, args)
    engines = make_engines(config.database_url)
    metrics = ServerMetrics.create()
    try:
        app = SettlementApp(
            engines,
            ServiceContext(policies, key_sources),  # type: ignore[arg-type]
            on_commit=lambda jobs, seconds: metrics.observe_commit(seconds, jobs),
        )
    except DatabaseNotMigrated as error:
        print(f"settlement serve: {error}", file=sys.stderr)
        return EXIT_FAILED
    if not key_sources:
        _log.warning("no issuer keys configured (%s): card-present settles will be refused", ISSUER_KEY_ENV)

    def ready() -> bool:
        try:
            require_current(engines.reader)
        except Exception:  # unreachable or behind: not ready, and health says so
            return False
        return True

    servicer = SettlementServicer(
        app, dev_mode=config.dev_mode, commit_window_ms=config.limits.group_commit_window_ms
    )

    def close() -> None:
        servicer.close()
        app.close()

    try:
        run_server(
            config,
            lambda server: add_SettlementServiceServicer_to_server(servicer, server),
            ready,
            on_drain=close,
            metrics=metrics,
        )
    except ServerStartError as error:
        close()
        print(f"settlement serve: {error}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
