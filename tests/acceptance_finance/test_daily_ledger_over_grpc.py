"""Issue 7: the read-only ``GetDailyLedger`` RPC a HIS dashboard calls, over the real server with mTLS,
equals close-day's stored totals for the same day — and, through the same wire, a settle into the
closed day is refused with ``DAY_ALREADY_CLOSED`` while a correction lands on the next day."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from finance_acceptance_world import ACTOR, FinanceWorld, booked_sums_in_db
from mtls_server import serve_over_mtls
from service_world import DESK, EMPLOYEE, HANGZHOU_EMPLOYEE, HOSPITAL, OTHER_HOSPITAL, RESIDENT, TODAY
from service_world import Person as SeededPerson
from service_world import item_codes as catalogue_codes

from settlement.api.gen.clinic.settlement.v1 import charge_pb2, daily_ledger_pb2
from settlement.api.gen.clinic.settlement.v1 import settlement_service_pb2 as pb
from settlement.api.gen.clinic.settlement.v1 import settlement_service_pb2_grpc as pb_grpc
from settlement.cli import EXIT_OK
from settlement.domain import Category
from settlement.server import pki
from settlement.server.status import error_info_of
from settlement.service.daily_close import ClosedDay, close_day
from settlement.service.daily_ledger import DailyLedgerRow

OPERATOR = (("operator-id", "finance-dashboard"),)
NEXT_DAY = TODAY + dt.timedelta(days=1)
# The proto's insured types as the engine stores them (proto/clinic/settlement/v1/charge.proto).
ENGINE_INSURED_TYPE = {
    charge_pb2.INSURED_TYPE_EMPLOYEE_IN_SERVICE: "employee",
    charge_pb2.INSURED_TYPE_EMPLOYEE_RETIRED: "retired",
    charge_pb2.INSURED_TYPE_RESIDENT: "resident",
}


@dataclass
class Wire:
    world: FinanceWorld
    desk: pb_grpc.SettlementServiceStub
    other_hospital: pb_grpc.SettlementServiceStub


@pytest.fixture
def wire(world: FinanceWorld, tmp_path: Path) -> Iterator[Wire]:
    running = serve_over_mtls(world.app, tmp_path)
    channels = [
        _channel(tmp_path, running.port, HOSPITAL, DESK.terminal_id),
        _channel(tmp_path, running.port, OTHER_HOSPITAL, "T-OTHER-01"),
    ]
    try:
        yield Wire(world, *(pb_grpc.SettlementServiceStub(channel) for channel in channels))
    finally:
        for channel in channels:
            channel.close()
        running.close()


def _channel(directory: Path, port: int, hospital_id: str, terminal_id: str) -> grpc.Channel:
    cert, key = pki.issue_terminal(directory, hospital_id, terminal_id)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=(directory / pki.CA_CERT).read_bytes(),
        private_key=key.read_bytes(),
        certificate_chain=cert.read_bytes(),
    )
    return grpc.secure_channel(f"localhost:{port}", credentials)


def settle_request(person: SeededPerson, day: dt.date, visit_type: int, quantity: int) -> pb.SettleRequest:
    a = catalogue_codes(person.region, Category.A)[0]
    b = catalogue_codes(person.region, Category.B)[0]
    return pb.SettleRequest(
        request_id=str(uuid.uuid4()),
        hospital_id=HOSPITAL,
        person_number=person.number,
        visit_type=visit_type,  # type: ignore[arg-type]
        visit_date=day.isoformat(),
        use_account=charge_pb2.ACCOUNT_USE_PAY,
        lines=[
            charge_pb2.ChargeLine(hospital_line_id="F1", item_code=a, quantity="1", unit_price_yuan="20.00"),
            charge_pb2.ChargeLine(hospital_line_id="F2", item_code=b, quantity=str(quantity), unit_price_yuan="35.50"),
        ],
    )


def settle_over_the_wire(wire: Wire, day: dt.date) -> list[str]:
    ids = []
    for number, person in enumerate((EMPLOYEE, RESIDENT, HANGZHOU_EMPLOYEE) * 3):
        visit_type = charge_pb2.VISIT_TYPE_EMERGENCY if number % 4 == 3 else charge_pb2.VISIT_TYPE_OUTPATIENT
        request = settle_request(person, day, visit_type, 1 + number % 3)
        ids.append(wire.desk.Settle(request, metadata=OPERATOR, timeout=10).settlement.settlement_id)
        wire.world.clock.advance(60)
    return ids


def cancel_over_the_wire(wire: Wire, settlement_id: str) -> None:
    request = pb.CancelSettlementRequest(
        request_id=str(uuid.uuid4()), hospital_id=HOSPITAL, settlement_id=settlement_id
    )
    wire.desk.CancelSettlement(request, metadata=OPERATOR, timeout=10)


def ledger(wire: Wire, day: dt.date) -> daily_ledger_pb2.DailyLedger:
    request = pb.GetDailyLedgerRequest(hospital_id=HOSPITAL, date=day.isoformat())
    answer: pb.GetDailyLedgerResponse = wire.desk.GetDailyLedger(request, metadata=OPERATOR, timeout=10)
    return answer.ledger


def as_engine_rows(message: daily_ledger_pb2.DailyLedger) -> tuple[tuple[DailyLedgerRow, ...], DailyLedgerRow]:
    def row(item: daily_ledger_pb2.DailyLedgerRow, *, total: bool = False) -> DailyLedgerRow:
        return DailyLedgerRow(
            "" if total else ENGINE_INSURED_TYPE[item.insured_type],
            item.clearing_type,
            item.payer,
            item.settlement_count,
            item.cancellation_count,
            item.total_fen,
            item.fund_paid_fen,
            item.account_paid_fen,
            item.cash_fen,
        )

    assert message.total.insured_type == charge_pb2.INSURED_TYPE_UNSPECIFIED
    return tuple(row(item) for item in message.rows), row(message.total, total=True)


def assert_equals_the_close(message: daily_ledger_pb2.DailyLedger, closed: ClosedDay) -> None:
    rows, total = as_engine_rows(message)
    assert message.closed
    assert (message.hospital_id, message.date) == (closed.hospital_id, closed.business_date.isoformat())
    assert rows == closed.rows
    assert total == closed.total


def test_get_daily_ledger_equals_the_close_day_totals_and_the_closed_day_stays_put(wire: Wire) -> None:
    world = wire.world
    world.at(TODAY, hour=9)
    first_day_ids = settle_over_the_wire(wire, TODAY)
    cancel_over_the_wire(wire, first_day_ids[0])

    open_view = ledger(wire, TODAY)
    settlements, cancellations, *sums = booked_sums_in_db(world.engines, HOSPITAL, TODAY)
    assert not open_view.closed
    assert (open_view.total.settlement_count, open_view.total.cancellation_count) == (settlements, cancellations)
    assert [open_view.total.total_fen, open_view.total.fund_paid_fen] == sums[:2]
    assert len({row.payer for row in open_view.rows}) == 2
    assert len({row.clearing_type for row in open_view.rows}) == 2

    world.at(TODAY, hour=22)
    closed = close_day(world.engines, HOSPITAL, TODAY, ACTOR, clock=world.clock).closed_day
    assert closed is not None
    closed_view = ledger(wire, TODAY)
    assert_equals_the_close(closed_view, closed)
    assert as_engine_rows(closed_view) == as_engine_rows(open_view)  # nothing moved between the two reads

    with pytest.raises(grpc.RpcError) as refused:
        wire.desk.Settle(settle_request(EMPLOYEE, TODAY, charge_pb2.VISIT_TYPE_OUTPATIENT, 1), metadata=OPERATOR)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    info = error_info_of(refused.value)
    assert info is not None
    assert info.reason == "DAY_ALREADY_CLOSED"
    assert ledger(wire, TODAY) == closed_view

    world.at(NEXT_DAY, hour=9)
    cancel_over_the_wire(wire, first_day_ids[1])  # the correction lands on the next day
    settle_over_the_wire(wire, NEXT_DAY)
    assert ledger(wire, TODAY) == closed_view
    next_open = ledger(wire, NEXT_DAY)
    assert next_open.total.cancellation_count == 1
    assert world.close_day(HOSPITAL, NEXT_DAY) == EXIT_OK  # the command line this time
    again = close_day(world.engines, HOSPITAL, NEXT_DAY, ACTOR, clock=world.clock)
    assert again.already_closed
    assert again.closed_day is not None
    assert_equals_the_close(ledger(wire, NEXT_DAY), again.closed_day)


def test_another_hospital_cannot_read_the_daily_ledger(wire: Wire) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        wire.other_hospital.GetDailyLedger(
            pb.GetDailyLedgerRequest(hospital_id=HOSPITAL, date=TODAY.isoformat()), metadata=OPERATOR, timeout=10
        )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
