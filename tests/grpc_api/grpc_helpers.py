"""Helpers for the end-to-end wire tests: the real service behind the real server over mTLS, requests a
desk terminal sends, the documented reason table, and what the database holds.

The seeded world is ``tests/service/service_world.py`` (hospital H32010001, desk T-DESK-01, persons P0001…
with cards CARD0001…); the PKI is made by ``settlement.server.pki``, in a temporary folder per test.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.rpc import error_details_pb2  # type: ignore[import-untyped]  # .pyi, no py.typed
from mtls_server import serve_over_mtls
from service_world import DESK, EMPLOYEE, HOSPITAL, MASTER_KEY, POLICIES, TODAY, item_codes
from sqlalchemy import func, select

from cardio.card_crypto import (
    KEY_REFERENCE_APPLICATION_CRYPTOGRAM,
    GenerateAcRequest,
    SoftwareKeySource,
    compute_cryptogram,
    derive_card_key,
)
from settlement.api.gen.clinic.settlement.v1 import charge_pb2
from settlement.api.gen.clinic.settlement.v1 import settlement_service_pb2 as pb
from settlement.api.gen.clinic.settlement.v1 import settlement_service_pb2_grpc as pb_grpc
from settlement.domain import Category
from settlement.server import pki
from settlement.server.metrics import ServerMetrics
from settlement.server.runtime import RunningServer
from settlement.server.servicer import SettlementServicer
from settlement.server.status import details_of
from settlement.service.app import SettlementApp
from settlement.service.clock import FixedClock, business_date, instant_us
from settlement.service.context import ServiceContext
from settlement.service.policy_book import PolicyBook
from settlement.service.writer import NO_KEYS, Write
from settlement.storage import tables as t
from settlement.storage.engine import Engines

ERRORS_DOC = Path(__file__).resolve().parents[2] / "docs" / "errors.md"
REASON_TABLE_HEADER = "| Class | gRPC status | Reason | What the caller should do | Cashier message (zh-CN) |"
OPERATOR = "doctor-7"
CALL_TIMEOUT_SECONDS = 10.0
VISIT_DATE = TODAY.isoformat()

Stub = pb_grpc.SettlementServiceStub


# ---- the server -------------------------------------------------------------------------------------


@dataclass
class Wire:
    """A running server over the real service, and channels to it for any terminal the CA certifies."""

    running: RunningServer
    app: SettlementApp
    servicer: SettlementServicer
    engines: Engines
    clock: FixedClock
    directory: Path
    _channels: list[grpc.Channel] = field(default_factory=list)

    def stub(self, hospital_id: str = HOSPITAL, terminal_id: str = DESK.terminal_id) -> Stub:
        """A stub on a fresh mTLS channel with a certificate naming ``hospital_id`` / ``terminal_id``."""
        cert, key = pki.terminal_paths(self.directory, hospital_id, terminal_id)
        if not cert.exists():
            pki.issue_terminal(self.directory, hospital_id, terminal_id)
        credentials = grpc.ssl_channel_credentials(
            root_certificates=(self.directory / pki.CA_CERT).read_bytes(),
            private_key=key.read_bytes(),
            certificate_chain=cert.read_bytes(),
        )
        channel = grpc.secure_channel(f"localhost:{self.running.port}", credentials)
        self._channels.append(channel)
        return Stub(channel)

    def writes_settled(self) -> None:
        """Return once every write handed in so far has been committed or refused (the server's group
        commit, then the writer thread's queue)."""
        self.running.loop.run(self.servicer.commits.drained())
        self.app.writer.run(lambda _repo: None)

    def hold_commits(self, seconds: float) -> None:
        """Keep the server's next commit busy for ``seconds``: the calls behind it wait (on SQLite the whole
        event loop waits, as behind any long batch)."""
        busy = Write(lambda _repo: time.sleep(seconds), NO_KEYS)
        asyncio.run_coroutine_threadsafe(self.servicer.commits.run(busy, deadline=None), self.running.loop.loop)

    def close(self) -> None:
        for channel in self._channels:
            channel.close()


@contextmanager
def real_server(
    engines: Engines, directory: Path, *, clock: FixedClock | None = None, metrics_listen: str = ""
) -> Iterator[Wire]:
    """The real servicer over ``engines`` (seeded by the caller) on 127.0.0.1 port 0, mTLS required."""
    clock = clock or FixedClock(instant_us(TODAY, hour=10))
    metrics = ServerMetrics.create()
    context = ServiceContext(PolicyBook.load(POLICIES), {"issuer-1": SoftwareKeySource(MASTER_KEY)}, clock)
    # As `settlement serve` wires it: the writer reports each commit to the server's metrics.
    app = SettlementApp(engines, context, on_commit=lambda jobs, seconds: metrics.observe_commit(seconds, jobs))
    servicer = SettlementServicer(app, dev_mode=False)
    running = serve_over_mtls(
        app,
        directory,
        servicer=servicer,
        environment={"SETTLEMENT_METRICS_LISTEN": metrics_listen, "SETTLEMENT_HEALTH_POLL_INTERVAL_MS": "50"},
        metrics=metrics,
    )
    wire = Wire(running, app, servicer, engines, clock, directory)
    try:
        yield wire
    finally:
        wire.close()
        running.close()
        servicer.close()
        app.close()


# ---- requests a desk terminal sends ------------------------------------------------------------------


def charge_lines(region: str = EMPLOYEE.region) -> list[charge_pb2.ChargeLine]:
    """Two lines, class A and class B, of the region's catalogue: 20.00 + 2 × 35.50 yuan."""
    a = item_codes(region, Category.A)[0]
    b = item_codes(region, Category.B)[0]
    return [
        charge_pb2.ChargeLine(hospital_line_id="F1", item_code=a, quantity="1", unit_price_yuan="20.00"),
        charge_pb2.ChargeLine(hospital_line_id="F2", item_code=b, quantity="2", unit_price_yuan="35.50"),
    ]


def _visit(overrides: Mapping[str, object]) -> dict[str, object]:
    fields: dict[str, object] = {
        "hospital_id": HOSPITAL,
        "person_number": EMPLOYEE.number,
        "card_number": EMPLOYEE.card,
        "visit_type": charge_pb2.VISIT_TYPE_OUTPATIENT,
        "visit_date": VISIT_DATE,
        "use_account": charge_pb2.ACCOUNT_USE_PAY,
        "lines": charge_lines(),
    }
    fields.update(overrides)
    return fields


def settle_request(**overrides: object) -> pb.SettleRequest:
    """A valid settle of the employee's two-line charge with a new request_id; ``overrides`` replace fields."""
    return pb.SettleRequest(**_visit({"request_id": str(uuid.uuid4()), **overrides}))  # type: ignore[arg-type]


def quote_request(**overrides: object) -> pb.QuoteRequest:
    return pb.QuoteRequest(**_visit(overrides))  # type: ignore[arg-type]


def signed_proof(
    quote: pb.QuoteResponse,
    clock: FixedClock,
    *,
    counter: int,
    card_number: str = EMPLOYEE.card,
    terminal_id: str = DESK.terminal_id,
) -> charge_pb2.CardProof:
    """The card's GENERATE AC over the quote, computed exactly as the card applet does."""
    card_key = derive_card_key(MASTER_KEY, card_number, KEY_REFERENCE_APPLICATION_CRYPTOGRAM)
    signed = GenerateAcRequest(
        amount_fen=quote.split.total_fen,
        transaction_date=business_date(clock.now_us()),
        unpredictable_number=quote.unpredictable_number,
        terminal_id=terminal_id,
    )
    return charge_pb2.CardProof(
        card_number=card_number,
        transaction_counter=counter,
        cryptogram=compute_cryptogram(card_key, signed, counter),
        quote_id=quote.quote_id,
    )


def with_operator(operator: str = OPERATOR) -> tuple[tuple[str, str], ...]:
    return (("operator-id", operator),)


def refusal(call: Callable[[], object]) -> grpc.RpcError:
    """The ``RpcError`` the call ends with; fails the test if it succeeds."""
    try:
        call()
    except grpc.RpcError as error:
        return error
    raise AssertionError("the call was expected to be refused, and it succeeded")


# ---- what a refusal carries ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Details:
    """Every detail of a refusal's ``google.rpc.Status``, unpacked."""

    error_infos: list[error_details_pb2.ErrorInfo]
    localized: list[error_details_pb2.LocalizedMessage]
    others: list[str]


def details(error: grpc.RpcError) -> Details:
    found = Details([], [], [])
    for detail in details_of(error):
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            found.error_infos.append(info)
        elif detail.Is(error_details_pb2.LocalizedMessage.DESCRIPTOR):
            message = error_details_pb2.LocalizedMessage()
            detail.Unpack(message)
            found.localized.append(message)
        else:
            found.others.append(detail.type_url)
    return found


@dataclass(frozen=True)
class DocumentedReason:
    """One row of docs/errors.md's reason table."""

    class_name: str
    status: str
    reason: str
    action: str
    message_zh: str

    @property
    def metadata_keys(self) -> set[str]:
        """The ``metadata["…"]`` keys the row tells the caller to read."""
        keys: set[str] = set()
        for piece in self.action.split('metadata["')[1:]:
            keys.add(piece.split('"]', 1)[0])
        return keys


def documented_reasons() -> dict[str, DocumentedReason]:
    lines = ERRORS_DOC.read_text(encoding="utf-8").splitlines()
    start = lines.index(REASON_TABLE_HEADER) + 2  # the header and its | --- | line
    rows: dict[str, DocumentedReason] = {}
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        class_name, status, reason, action, message_zh = (cell.strip() for cell in line.strip().strip("|").split("|"))
        rows[reason.strip("`")] = DocumentedReason(
            class_name.strip("`"), status.strip("`"), reason.strip("`"), action, message_zh
        )
    return rows


# ---- what the database holds ----------------------------------------------------------------------------


def row_counts(engines: Engines) -> dict[str, int]:
    """Rows in every table, and the sum of every ledger balance (money that moved shows here)."""
    with engines.reader.connect() as connection:
        counts = {
            table.name: int(connection.execute(select(func.count()).select_from(table)).scalar_one())
            for table in t.metadata.sorted_tables
        }
        counts["personal balances (fen)"] = int(
            connection.execute(
                select(func.coalesce(func.sum(t.accounts.c.current_year_fen + t.accounts.c.historical_fen), 0))
            ).scalar_one()
        )
    return counts


def recorded_refusal(engines: Engines, hospital_id: str, request_id: str) -> str | None:
    """The refusal stored with a request (its JSON), or None when none is stored."""
    with engines.reader.connect() as connection:
        found = connection.execute(
            select(t.requests.c.refusal).where(
                t.requests.c.hospital_id == hospital_id, t.requests.c.request_id == request_id
            )
        ).scalar_one_or_none()
    return None if found is None else str(found)


def settled_request_ids(engines: Engines) -> list[str]:
    with engines.reader.connect() as connection:
        return [str(value) for value in connection.execute(select(t.settlements.c.request_id)).scalars()]
