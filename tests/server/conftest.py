"""Fixtures for the server tests: a PKI made by ``settlement.server.pki``, a fake servicer behind the real
server stack on 127.0.0.1 port 0, and mTLS channels for terminals with good and bad certificates."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# Test helpers live beside the tests (tests are not a package).
sys.path.insert(0, str(Path(__file__).parent))

from server_fakes import (
    FakeSettlementService,
    PkiFiles,
    Ready,
    Served,
    ServeFactory,
    mtls_channel,
    server_config,
)

from settlement.api.gen.clinic.settlement.v1 import settlement_service_pb2_grpc
from settlement.server import pki
from settlement.server.config import TlsFiles
from settlement.server.runtime import build_server


@pytest.fixture(scope="session")
def test_pki(tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    directory = tmp_path_factory.mktemp("pki")
    authority = pki.init_authority(directory)
    cert_file, key_file = pki.issue_server(directory, ["localhost", "127.0.0.1"])
    terminal_cert, terminal_key = pki.issue_terminal(directory, "H001", "T01")
    other_cert, other_key = pki.issue_terminal(directory, "H002", "T09")
    now = dt.datetime.now(dt.UTC)
    expired = pki.make_terminal(
        authority, "H001", "T01", not_before=now - dt.timedelta(days=30), not_after=now - dt.timedelta(days=1)
    )
    start, end = pki.validity(30)
    foreign = pki.make_terminal(pki.make_authority(not_before=start, not_after=end), "H001", "T01",
                                not_before=start, not_after=end)
    return PkiFiles(
        directory=directory,
        tls=TlsFiles(cert_file, key_file, directory / pki.CA_CERT),
        ca_pem=authority.certificate_pem,
        terminal=pki.Issued(terminal_cert.read_bytes(), terminal_key.read_bytes()),
        other_hospital_terminal=pki.Issued(other_cert.read_bytes(), other_key.read_bytes()),
        expired_terminal=expired,
        foreign_ca_terminal=foreign,
    )


@pytest.fixture
def serve(tmp_path: Path, test_pki: PkiFiles) -> Iterator[ServeFactory]:
    """Start the real server stack around the fake: ``serve(ready=False, reflection=True, **limits)``."""
    started: list[Served] = []

    def start(*, ready: bool = True, dev_mode: bool = False, metrics_listen: str = "",
              reflection: bool = False, **limits: float) -> Served:
        fake = FakeSettlementService(dev_mode=dev_mode)
        readiness = Ready(ready)
        config = server_config(tmp_path, None if dev_mode else test_pki.tls, metrics_listen=metrics_listen,
                               reflection=reflection, **limits)
        running = build_server(
            config, lambda server: settlement_service_pb2_grpc.add_SettlementServiceServicer_to_server(fake, server),
            readiness,
        )
        served = Served(running, fake, readiness)
        started.append(served)
        return served

    yield start
    for served in started:
        served.running.close()


@pytest.fixture
def served(serve: ServeFactory) -> Served:
    return serve()


@pytest.fixture
def terminal_stub(served: Served, test_pki: PkiFiles) -> Iterator[settlement_service_pb2_grpc.SettlementServiceStub]:
    """A stub for terminal T01 of hospital H001 on the default server."""
    with mtls_channel(served.port, test_pki.ca_pem, test_pki.terminal) as channel:
        yield settlement_service_pb2_grpc.SettlementServiceStub(channel)
