"""``settlement adapter``: run one hospital's HIS adapter (HL7 v2 / FHIR / files) against the real engine.

    settlement adapter --config hospital.toml --target settlement.example.cn:50051 \\
        --tls-ca pki/ca.crt --tls-cert pki/terminals/H33010600123/H33010600123-HL7.crt \\
        --tls-key pki/terminals/H33010600123/H33010600123-HL7.key
    settlement adapter --config hospital.toml --target 127.0.0.1:50051 --dev-terminal H33010600123-HL7
    settlement adapter --config clinic.toml ... --once    # files: one pass over the folder, then exit

Owns: the options, the checks that refuse to start an adapter whose identity names another hospital
than its configuration (the engine would refuse every message), and the run loop: serve until SIGTERM
or SIGINT, then stop accepting, let work in progress finish, close the channel. Must never hold adapter
or engine logic: ``hospital_adapters`` translates, ``settlement.client`` talks to the engine.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from settlement.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:
    import grpc

    from hospital_adapters import HospitalAdapter, HospitalConfig
    from hospital_adapters.files.adapter import FilesAdapter
    from settlement.client import ClientTls, DevIdentity

PROG = "settlement adapter"
DEFAULT_OPERATOR = "his-adapter"  # recorded as the operator (national `opter`) of every settlement it makes
ENGINE_CHECK_TIMEOUT_MS = 3_000  # the start-up health check; the adapter starts either way
# The server's operator-id rule (settlement.server.identity): checked here so a typo stops the start.
_OPERATOR = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}")
_log = logging.getLogger("settlement.adapter")


class _Refused(Exception):
    """A start-up problem the operator must fix; printed, exit EXIT_USAGE."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    adapter = commands.add_parser(
        "adapter", help="run a hospital's HIS adapter (HL7 / FHIR / files) against the engine (docs/integration.md)"
    )
    adapter.add_argument("--config", type=Path, required=True, help="the hospital's TOML file")
    adapter.add_argument("--target", required=True, metavar="HOST:PORT", help="the settlement server")
    tls = adapter.add_argument_group("mTLS (production): the HIS terminal's certificate, settlement pki issue-terminal")
    tls.add_argument("--tls-ca", type=Path, metavar="FILE", help="the CA that signed the server certificate")
    tls.add_argument("--tls-cert", type=Path, metavar="FILE", help="the terminal certificate (channel his)")
    tls.add_argument("--tls-key", type=Path, metavar="FILE", help="the terminal's private key")
    tls.add_argument("--tls-server-name", default="", metavar="NAME",
                     help="the name in the server certificate, when --target is an address it does not name")
    dev = adapter.add_argument_group("dev mode (a plaintext dev-mode server only)")
    dev.add_argument("--dev-terminal", metavar="ID", help="the HIS terminal id to claim, e.g. H33010600123-HL7")
    dev.add_argument("--dev-hospital", metavar="ID", help="the hospital to claim (default: the configuration's)")
    adapter.add_argument("--operator", default=DEFAULT_OPERATOR,
                         help="operator id sent with every call (default: %(default)s)")
    adapter.add_argument("--timeout-ms", type=int, default=None,
                         help="budget of one settle, retries included (default: 10000)")
    adapter.add_argument("--once", action="store_true", help="files adapter: process the folder once, then exit")
    adapter.set_defaults(run=_adapter)


def _adapter(args: argparse.Namespace) -> int:
    from hospital_adapters import ConfigError, build_adapter, load_config
    from hospital_adapters.files.adapter import FilesAdapter
    from settlement.client import GrpcEnginePort, open_channel
    from settlement.client.engine_port import DEFAULT_CALL_TIMEOUT_MS
    from settlement.server.runtime import configure_logging

    configure_logging()
    try:
        config = load_config(args.config)
        tls, dev_identity = _identity(args, config)
        if args.once and config.adapter != "files":
            raise _Refused(f"--once is for the files adapter; {args.config} configures {config.adapter!r}")
        if not _OPERATOR.fullmatch(args.operator):
            raise _Refused("--operator must be 1-64 ASCII letters, digits or . _ : @ -")
        channel = open_channel(args.target, tls=tls)
    except (_Refused, ConfigError, OSError, ValueError) as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        engine = GrpcEnginePort(channel, operator_id=args.operator, dev_identity=dev_identity,
                                timeout_ms=DEFAULT_CALL_TIMEOUT_MS if args.timeout_ms is None else args.timeout_ms)
    except ValueError as error:
        channel.close()
        print(f"{PROG}: {error}", file=sys.stderr)
        return EXIT_USAGE
    with engine:
        _report_engine(channel, args.target)
        try:
            adapter = build_adapter(config, engine)
        except ConfigError as error:
            print(f"{PROG}: {error}", file=sys.stderr)
            return EXIT_USAGE
        if args.once:
            if not isinstance(adapter, FilesAdapter):  # a third-party kind registered under "files"
                print(f"{PROG}: --once needs the built-in files adapter", file=sys.stderr)
                return EXIT_USAGE
            return _once(adapter)
        return _serve(adapter, config)


def _identity(args: argparse.Namespace, config: HospitalConfig) -> tuple[ClientTls | None, DevIdentity | None]:
    """Exactly one of mTLS files and a dev-mode identity, checked against the configured hospital."""
    from settlement.client import ClientTls, DevIdentity

    tls_files = (args.tls_ca, args.tls_cert, args.tls_key)
    dev_given = args.dev_terminal is not None or args.dev_hospital is not None
    if any(tls_files) and dev_given:
        raise _Refused("give either --tls-ca/--tls-cert/--tls-key (mTLS) or --dev-terminal (dev mode), not both")
    if any(tls_files):
        if not all(tls_files):
            raise _Refused("mTLS needs all three of --tls-ca, --tls-cert and --tls-key")
        _check_certificate(args.tls_cert, config.hospital_id)
        return ClientTls(args.tls_ca, args.tls_cert, args.tls_key, args.tls_server_name), None
    if args.dev_terminal is None:
        raise _Refused("no identity: give the HIS terminal's --tls-ca/--tls-cert/--tls-key, or --dev-terminal "
                       "against a dev-mode server")
    hospital_id = args.dev_hospital or config.hospital_id
    if hospital_id != config.hospital_id:
        raise _Refused(f"--dev-hospital {hospital_id} is not the configured hospital {config.hospital_id}")
    return None, DevIdentity(hospital_id, args.dev_terminal)


def _check_certificate(cert_file: Path, hospital_id: str) -> None:
    from settlement.server.identity import terminal_of_certificate

    try:
        terminal = terminal_of_certificate(cert_file.read_bytes())
    except ValueError:
        raise _Refused(f"--tls-cert {cert_file} is not a PEM certificate") from None
    if terminal is None:
        raise _Refused(f"--tls-cert {cert_file} names no terminal; issue one with settlement pki issue-terminal")
    if terminal.hospital_id != hospital_id:
        raise _Refused(f"--tls-cert {cert_file} is terminal {terminal.terminal_id} of hospital "
                       f"{terminal.hospital_id}, not of the configured hospital {hospital_id}")
    _log.info("identity: terminal %s of hospital %s (mTLS)", terminal.terminal_id, terminal.hospital_id)


def _report_engine(channel: grpc.Channel, target: str) -> None:
    """Say at start whether the engine answers; the adapter starts either way (the HIS gets UNAVAILABLE)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from settlement.server.runtime import SERVICE_NAME

    try:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=ENGINE_CHECK_TIMEOUT_MS / 1000
        )
    except grpc.RpcError as error:
        _log.warning("engine at %s does not answer yet (%s): HIS messages get UNAVAILABLE until it does",
                     target, error.code().name)
        return
    _log.info("engine at %s: %s", target, health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def _once(adapter: FilesAdapter) -> int:
    from hospital_adapters.files.inbox import pending_files

    for result in adapter.inbox.process_pending():
        print(result)
    left = pending_files(adapter.inbox.settings.inbox)
    if left:
        print(f"{PROG}: {len(left)} file(s) still pending (engine unavailable, or a backlog beyond one pass): "
              "run again", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _serve(adapter: HospitalAdapter, config: HospitalConfig) -> int:
    from settlement.server.runtime import SignalLatch

    latch = SignalLatch()
    latch.install()
    try:
        try:
            adapter.start()
        except OSError as error:
            print(f"{PROG}: cannot start the {config.adapter} adapter of {config.hospital_id}: {error}",
                  file=sys.stderr)
            return EXIT_FAILED
        _log.info("hospital %s (%s): %s adapter serving %s", config.hospital_id, config.name, config.adapter,
                  adapter.address)
        try:
            latch.wait()
            _log.info("received %s: stopping (work in progress finishes first)", latch.name)
        finally:
            adapter.stop()
    finally:
        latch.restore()
    _log.info("stopped")
    return EXIT_OK
