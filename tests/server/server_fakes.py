"""A scripted SettlementService and client helpers for the server tests (no database, no domain).

The fake does what a real servicer must do first (identify the caller, check the hospital) and then acts
by the request's ``person_number``, so a test — or a subprocess — picks an outcome without wiring:

    P-OK (or anything else)  a canned Settlement naming the caller
    P-SLOW                   the same after SLOW_SECONDS (for draining); prints SLOW_STARTED when begun
    P-NOT-FOUND              errors.PersonNotFound
    P-INVALID                errors.InvalidField on lines[0].quantity
    P-BUG                    errors.InvariantViolated whose text holds a citizen ID (must not leak)
    P-CRASH                  a RuntimeError with internals in its text (must not leak)
    P-ABORT                  context.abort(NOT_FOUND) by hand (its status must stand)
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from settlement import errors
from settlement.api.gen.clinic.settlement.v1 import (
    settlement_pb2,
    settlement_service_pb2,
    settlement_service_pb2_grpc,
)
from settlement.server import pki
from settlement.server.config import ServerConfig, ServerLimits, TlsFiles
from settlement.server.identity import check_hospital, identify
from settlement.server.runtime import RunningServer
from settlement.service.commands import Caller

SLOW_SECONDS = 1.5
CITIZEN_ID = "330106199001011234"
CARD_NUMBER = "6222021234567890123"
OPERATOR = "D0042"
SETTLE_METHOD = "/clinic.settlement.v1.SettlementService/Settle"


@dataclass
class FakeSettlementService(settlement_service_pb2_grpc.SettlementServiceServicer):
    dev_mode: bool = False
    callers: list[Caller] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def Settle(
        self, request: settlement_service_pb2.SettleRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> settlement_service_pb2.SettleResponse:
        caller = identify(context, dev_mode=self.dev_mode)
        check_hospital(caller, request.hospital_id)
        with self.lock:
            self.callers.append(caller)
        match request.person_number:
            case "P-SLOW":
                print("SLOW_STARTED", flush=True)
                await asyncio.sleep(SLOW_SECONDS)
            case "P-NOT-FOUND":
                raise errors.PersonNotFound(
                    "no insured person with this person_number; re-read the card",
                    metadata={"field": "person_number"},
                )
            case "P-INVALID":
                raise errors.InvalidField("quantity must be a plain decimal", field="lines[0].quantity")
            case "P-BUG":
                raise errors.InvariantViolated(f"balance of person {CITIZEN_ID} went negative")
            case "P-CRASH":
                raise RuntimeError("psycopg: connection to /srv/secret/db refused")
            case "P-ABORT":
                await context.abort(grpc.StatusCode.NOT_FOUND, "aborted by hand")
        settlement = settlement_pb2.Settlement(
            settlement_id="S-1",
            request_id=request.request_id,
            hospital_id=caller.hospital_id,
            terminal_id=caller.terminal_id,
            operator_id=caller.operator_id,
            person_number=request.person_number,
        )
        return settlement_service_pb2.SettleResponse(settlement=settlement)


def settle_request(person_number: str = "P-OK", hospital_id: str = "H001", **fields: object) -> object:
    return settlement_service_pb2.SettleRequest(
        request_id="3f1c2a9e-7b4d-4e21-9c3a-5d6e7f809a1b",
        hospital_id=hospital_id,
        person_number=person_number,
        **fields,  # type: ignore[arg-type]
    )


def server_config(
    tmp_path: Path, tls: TlsFiles | None, *, metrics_listen: str = "", reflection: bool = False, **limits: float
) -> ServerConfig:
    """A config for a test server on 127.0.0.1 port 0, quick to become healthy and to drain."""
    quick: dict[str, float] = {"health_poll_interval_ms": 50, "drain_notice_seconds": 0.0, "drain_grace_seconds": 5.0}
    quick.update(limits)
    return ServerConfig(
        listen="127.0.0.1:0",
        data_dir=tmp_path,
        database_url="sqlite+pysqlite:///:memory:",
        policies_dir=tmp_path,
        dev_mode=tls is None,
        reflection=reflection,
        tls=tls,
        metrics_listen=metrics_listen,
        limits=ServerLimits(**quick),  # type: ignore[arg-type]
        source="<test>",
    )


def wait_until(condition: Callable[[], bool], timeout_seconds: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


@dataclass(frozen=True)
class PkiFiles:
    """The CA folder on disk and certificates for every case of the auth matrix."""

    directory: Path
    tls: TlsFiles
    ca_pem: bytes
    terminal: pki.Issued  # hospital H001, terminal T01
    other_hospital_terminal: pki.Issued  # hospital H002, terminal T09
    expired_terminal: pki.Issued
    foreign_ca_terminal: pki.Issued  # right names, signed by another CA


def mtls_channel(port: int, ca_pem: bytes, client: pki.Issued | None) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca_pem,
        private_key=client.key_pem if client else None,
        certificate_chain=client.certificate_pem if client else None,
    )
    return grpc.secure_channel(f"127.0.0.1:{port}", credentials)


@dataclass
class Ready:
    """The readiness the server polls; a test flips it."""

    value: bool = True
    error: Exception | None = None

    def __call__(self) -> bool:
        if self.error is not None:
            raise self.error
        return self.value


@dataclass
class Served:
    running: RunningServer
    fake: FakeSettlementService
    ready: Ready

    @property
    def port(self) -> int:
        return self.running.port


ServeFactory = Callable[..., Served]
