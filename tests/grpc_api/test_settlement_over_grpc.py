"""The real service behind the real server over mTLS: what a desk terminal sees on the wire."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from mtls_server import serve_over_mtls
from service_world import DESK, EMPLOYEE, HOSPITAL, MASTER_KEY, OTHER_HOSPITAL, item_codes, open_app, seed

from cardio.card_crypto import (
    KEY_REFERENCE_APPLICATION_CRYPTOGRAM,
    GenerateAcRequest,
    compute_cryptogram,
    derive_card_key,
)
from settlement.api.gen.clinic.settlement.v1 import charge_pb2, settlement_pb2
from settlement.api.gen.clinic.settlement.v1 import settlement_service_pb2 as pb
from settlement.api.gen.clinic.settlement.v1 import settlement_service_pb2_grpc as pb_grpc
from settlement.domain import Category
from settlement.server import pki
from settlement.server.runtime import RunningServer
from settlement.server.status import error_info_of, localized_message_of
from settlement.service.app import SettlementApp
from settlement.service.clock import business_date
from settlement.storage.engine import Engines

OPERATOR = (("operator-id", "doctor-7"),)


@dataclass
class Desk:
    stub: pb_grpc.SettlementServiceStub
    app: SettlementApp


def _channel(directory: Path, port: int, hospital_id: str, terminal_id: str) -> grpc.Channel:
    cert, key = pki.issue_terminal(directory, hospital_id, terminal_id)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=(directory / pki.CA_CERT).read_bytes(),
        private_key=key.read_bytes(),
        certificate_chain=cert.read_bytes(),
    )
    return grpc.secure_channel(f"localhost:{port}", credentials)


@pytest.fixture
def served(engines: Engines, tmp_path: Path) -> Iterator[tuple[RunningServer, SettlementApp, Path]]:
    seed(engines)
    app = open_app(engines)
    running = serve_over_mtls(app, tmp_path)
    yield running, app, tmp_path
    running.close()
    app.close()


@pytest.fixture
def desk(served: tuple[RunningServer, SettlementApp, Path]) -> Iterator[Desk]:
    running, app, directory = served
    channel = _channel(directory, running.port, HOSPITAL, DESK.terminal_id)
    yield Desk(pb_grpc.SettlementServiceStub(channel), app)
    channel.close()


def lines() -> list[charge_pb2.ChargeLine]:
    a = item_codes(EMPLOYEE.region, Category.A)[0]
    b = item_codes(EMPLOYEE.region, Category.B)[0]
    return [
        charge_pb2.ChargeLine(hospital_line_id="F1", item_code=a, quantity="1", unit_price_yuan="20.00"),
        charge_pb2.ChargeLine(hospital_line_id="F2", item_code=b, quantity="2", unit_price_yuan="35.50"),
    ]


def settle_request(**overrides: object) -> pb.SettleRequest:
    fields: dict[str, object] = {
        "request_id": str(uuid.uuid4()),
        "hospital_id": HOSPITAL,
        "person_number": EMPLOYEE.number,
        "card_number": EMPLOYEE.card,
        "visit_type": charge_pb2.VISIT_TYPE_OUTPATIENT,
        "visit_date": "2026-03-02",
        "use_account": charge_pb2.ACCOUNT_USE_PAY,
        "lines": lines(),
    }
    fields.update(overrides)
    return pb.SettleRequest(**fields)  # type: ignore[arg-type]


def test_a_terminal_settles_and_a_retry_gets_the_same_settlement(desk: Desk) -> None:
    request = settle_request()
    first = desk.stub.Settle(request, metadata=OPERATOR, timeout=10).settlement
    again = desk.stub.Settle(request, metadata=OPERATOR, timeout=10).settlement
    assert first == again
    assert first.status == settlement_pb2.SETTLEMENT_STATUS_SETTLED
    split = first.split
    assert split.total_fen == split.fund_paid_fen + split.account_paid_fen + split.cash_fen
    assert [line.hospital_line_id for line in split.lines] == ["F1", "F2"]
    assert first.terminal_id == DESK.terminal_id
    assert first.operator_id == "doctor-7"
    assert EMPLOYEE.card not in str(first)
    read = desk.stub.GetSettlement(
        pb.GetSettlementRequest(hospital_id=HOSPITAL, request_id=request.request_id), metadata=OPERATOR
    ).settlement
    assert read == first


def test_a_bad_price_is_invalid_argument_naming_the_field_with_a_chinese_message(desk: Desk) -> None:
    bad = lines()
    bad[1].unit_price_yuan = "35.1234567"
    with pytest.raises(grpc.RpcError) as refused:
        desk.stub.Settle(settle_request(lines=bad), metadata=OPERATOR, timeout=10)
    error = refused.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    info = error_info_of(error)
    assert info is not None
    assert info.reason == "DECIMAL_FORMAT"
    assert info.metadata["field"] == "lines[1].unit_price_yuan"
    assert localized_message_of(error)
    page = desk.stub.ListSettlements(
        pb.ListSettlementsRequest(hospital_id=HOSPITAL, start_date="2026-03-02", end_date="2026-03-02"),
        metadata=OPERATOR,
    )
    assert len(page.settlements) == 0


def test_a_request_for_another_hospital_is_permission_denied(desk: Desk) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        desk.stub.Settle(settle_request(hospital_id=OTHER_HOSPITAL), metadata=OPERATOR, timeout=10)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
    info = error_info_of(refused.value)
    assert info is not None
    assert info.reason == "OTHER_HOSPITAL"


def test_a_card_present_settle_quotes_signs_and_settles(desk: Desk) -> None:
    quote = desk.stub.Quote(
        pb.QuoteRequest(
            hospital_id=HOSPITAL,
            person_number=EMPLOYEE.number,
            card_number=EMPLOYEE.card,
            visit_type=charge_pb2.VISIT_TYPE_OUTPATIENT,
            visit_date="2026-03-02",
            use_account=charge_pb2.ACCOUNT_USE_PAY,
            lines=lines(),
        ),
        metadata=OPERATOR,
    )
    card_key = derive_card_key(MASTER_KEY, EMPLOYEE.card, KEY_REFERENCE_APPLICATION_CRYPTOGRAM)
    signed = GenerateAcRequest(
        amount_fen=quote.split.total_fen,
        transaction_date=business_date(desk.app.context.clock.now_us()),
        unpredictable_number=quote.unpredictable_number,
        terminal_id=DESK.terminal_id,
    )
    proof = charge_pb2.CardProof(
        card_number=EMPLOYEE.card,
        transaction_counter=1,
        cryptogram=compute_cryptogram(card_key, signed, 1),
        quote_id=quote.quote_id,
    )
    settled = desk.stub.Settle(settle_request(card_proof=proof), metadata=OPERATOR, timeout=10).settlement
    assert settled.card_present
    assert settled.split.total_fen == quote.split.total_fen


def test_cancel_refund_account_and_daily_ledger_over_the_wire(desk: Desk) -> None:
    first = desk.stub.Settle(settle_request(), metadata=OPERATOR, timeout=10).settlement
    second = desk.stub.Settle(settle_request(), metadata=OPERATOR, timeout=10).settlement
    cancelled = desk.stub.CancelSettlement(
        pb.CancelSettlementRequest(
            request_id=str(uuid.uuid4()), hospital_id=HOSPITAL, settlement_id=first.settlement_id
        ),
        metadata=OPERATOR,
    )
    assert cancelled.cancelled.status == settlement_pb2.SETTLEMENT_STATUS_CANCELLED
    refunded = desk.stub.RefundLines(
        pb.RefundLinesRequest(
            request_id=str(uuid.uuid4()),
            hospital_id=HOSPITAL,
            settlement_id=second.settlement_id,
            hospital_line_ids=["F2"],
        ),
        metadata=OPERATOR,
    )
    assert [line.hospital_line_id for line in refunded.replacement.split.lines] == ["F1"]
    account = desk.stub.GetAccount(
        pb.GetAccountRequest(hospital_id=HOSPITAL, person_number=EMPLOYEE.number, card_number=EMPLOYEE.card),
        metadata=OPERATOR,
    ).account
    assert account.balance_fen == refunded.replacement.split.balance_after_fen
    ledger = desk.stub.GetDailyLedger(
        pb.GetDailyLedgerRequest(hospital_id=HOSPITAL, date="2026-03-02"), metadata=OPERATOR
    ).ledger
    assert ledger.total.total_fen == refunded.replacement.split.total_fen
