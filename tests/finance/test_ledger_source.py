"""Our side of a reconciliation read from the store: which settlements, with which status and amounts."""

from __future__ import annotations

from finance_seeding import DAY, NEXT_DAY, SeededLedger

from settlement.identity import mask
from settlement.reconciliation import SettlementStatus
from settlement.service.ledger_source import iter_ledger_records, read_ledger_records
from settlement.storage.engine import Engines


def test_a_days_records_are_its_settlements_in_id_order_with_their_own_amounts(
    engines: Engines, seeded: SeededLedger
) -> None:
    records = read_ledger_records(engines, "H1", DAY)

    settlements = sorted(
        (row for row in seeded.of("H1", DAY) if row["kind"] == "settlement"), key=lambda row: row["settlement_id"]
    )
    assert [record.settlement_id for record in records] == [row["settlement_id"] for row in settlements]
    for record, row in zip(records, settlements, strict=True):
        assert (record.request_id, record.insured_type, record.clearing_type, record.clearing_agency) == (
            row["request_id"],
            row["insured_type"],
            row["clearing_type"],
            row["region"],
        )
        assert (record.total_fen, record.fund_paid_fen, record.account_paid_fen, record.cash_fen) == (
            row["total_fen"],
            row["fund_paid_fen"],
            row["account_paid_fen"],
            row["cash_fen"],
        )
        assert record.person_number_masked == mask(row["person_number"])
        assert (record.hospital_id, record.business_date) == ("H1", DAY)


def test_a_settlement_cancelled_the_same_day_is_cancelled_and_one_cancelled_after_midnight_is_still_settled(
    engines: Engines, seeded: SeededLedger
) -> None:
    status = {record.settlement_id: record.status for record in read_ledger_records(engines, "H1", DAY)}

    assert status[seeded.cancelled_same_day_id] is SettlementStatus.CANCELLED
    assert status[seeded.cancelled_next_day_id] is SettlementStatus.SETTLED
    assert sum(1 for value in status.values() if value is SettlementStatus.CANCELLED) == 1


def test_cancellation_entries_are_never_records_of_their_own(engines: Engines, seeded: SeededLedger) -> None:
    next_day_ids = {record.settlement_id for record in read_ledger_records(engines, "H1", NEXT_DAY)}

    assert seeded.just_after_midnight_id in next_day_ids
    assert not any(settlement_id.startswith("C") for settlement_id in next_day_ids)
    assert seeded.cancelled_next_day_id not in next_day_ids


def test_records_stream_from_an_open_connection_one_at_a_time(engines: Engines, seeded: SeededLedger) -> None:
    with engines.reader.connect() as connection:
        stream = iter_ledger_records(connection, "H2", DAY)
        first = next(stream)
        rest = list(stream)

    assert first.settlement_id < rest[0].settlement_id
    assert 1 + len(rest) == sum(1 for row in seeded.of("H2", DAY) if row["kind"] == "settlement")
