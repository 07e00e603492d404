from __future__ import annotations

from dataclasses import replace

import pytest
from reconciliation_helpers import BUSINESS_DATE, ledger_record

from settlement.errors import InvariantViolated
from settlement.reconciliation import (
    Counterpart,
    CounterpartRecord,
    DiscrepancyKind,
    SettlementStatus,
    Side,
    Totals,
    TotalsKey,
    day_balanced,
    day_totals,
    reconcile_day,
)
from settlement.reconciliation.records import UNMATCHED_KEY, LedgerRecord


def his_line(record: LedgerRecord, line: int = 2, **changes: object) -> CounterpartRecord:
    base = CounterpartRecord(
        counterpart=Counterpart.HIS,
        file_name="his.csv",
        line=line,
        settlement_id=record.settlement_id,
        visit_id=record.visit_id,
        status=record.status,
        total_fen=record.total_fen,
        fund_paid_fen=record.fund_paid_fen,
        account_paid_fen=record.account_paid_fen,
        cash_fen=record.cash_fen,
        request_id=record.request_id,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def insurer_line(record: LedgerRecord, line: int = 2, **changes: object) -> CounterpartRecord:
    return replace(his_line(record, line, counterpart=Counterpart.INSURER, cash_fen=None, request_id=""), **changes)  # type: ignore[arg-type]


def test_a_day_that_agrees_everywhere_balances_with_no_discrepancies() -> None:
    ours = [ledger_record("S1"), ledger_record("S2", status=SettlementStatus.CANCELLED)]

    day = reconcile_day("H1", BUSINESS_DATE, ours, [his_line(r) for r in ours], [insurer_line(r) for r in ours])

    assert day.discrepancies == ()
    assert day_balanced(day)
    assert all(line.balanced for part in day.counterparts for line in part.totals)


def test_a_settlement_only_in_our_ledger_is_reported_as_only_ours_with_its_ids() -> None:
    ours = [ledger_record("S1"), ledger_record("S2")]

    day = reconcile_day("H1", BUSINESS_DATE, ours, [his_line(ours[0])])

    (found,) = day.discrepancies
    assert (found.kind, found.counterpart, found.side) == (DiscrepancyKind.ONLY_OURS, Counterpart.HIS, Side.OURS)
    assert (found.settlement_id, found.request_id, found.visit_id, found.clearing_agency) == (
        "S2",
        "RS2",
        "VS2",
        "330100",
    )
    assert not day_balanced(day)


def test_a_settlement_only_in_their_file_is_reported_with_its_line_and_counted_as_unmatched() -> None:
    ours = [ledger_record("S1")]
    stranger = his_line(ledger_record("S9"), line=7)

    day = reconcile_day("H1", BUSINESS_DATE, ours, [his_line(ours[0]), stranger])

    (found,) = day.discrepancies
    assert (found.kind, found.settlement_id, found.their_lines, found.side) == (
        DiscrepancyKind.ONLY_THEIRS,
        "S9",
        (7,),
        Side.THEIRS,
    )
    (part,) = day.counterparts
    unmatched = next(line for line in part.totals if line.key == UNMATCHED_KEY)
    assert unmatched.ours == Totals()
    assert unmatched.theirs.total_fen == 10_000


def test_each_differing_amount_is_reported_with_its_field_and_both_values() -> None:
    record = ledger_record("S1")

    day = reconcile_day("H1", BUSINESS_DATE, [record], [his_line(record, fund_paid_fen=6_100, cash_fen=900)])

    found = {(item.kind, item.field, item.ours_fen, item.theirs_fen, item.difference_fen) for item in day.discrepancies}
    assert found == {
        (DiscrepancyKind.AMOUNT_DIFFERS, "fund_paid_fen", 6_000, 6_100, 100),
        (DiscrepancyKind.AMOUNT_DIFFERS, "cash_fen", 1_000, 900, -100),
    }


def test_the_insurer_is_compared_on_total_fund_and_account_only() -> None:
    record = ledger_record("S1")

    day = reconcile_day("H1", BUSINESS_DATE, [record], None, [insurer_line(record, account_paid_fen=2_999)])

    (found,) = day.discrepancies
    assert (found.counterpart, found.field, found.ours_fen, found.theirs_fen) == (
        Counterpart.INSURER,
        "account_paid_fen",
        3_000,
        2_999,
    )


def test_a_settlement_cancelled_on_one_side_only_is_a_status_difference() -> None:
    record = ledger_record("S1", status=SettlementStatus.CANCELLED)

    day = reconcile_day("H1", BUSINESS_DATE, [record], [his_line(record, status=SettlementStatus.SETTLED)])

    (found,) = day.discrepancies
    assert (found.kind, found.field, found.ours_status, found.theirs_status) == (
        DiscrepancyKind.STATUS_DIFFERS,
        "status",
        SettlementStatus.CANCELLED,
        SettlementStatus.SETTLED,
    )


def test_a_settlement_listed_twice_by_the_insurer_is_one_duplicate_with_both_lines() -> None:
    record = ledger_record("S1")

    day = reconcile_day("H1", BUSINESS_DATE, [record], None, [insurer_line(record, 2), insurer_line(record, 5)])

    (found,) = day.discrepancies
    assert (found.kind, found.side, found.occurrences, found.their_lines) == (
        DiscrepancyKind.DUPLICATE,
        Side.THEIRS,
        2,
        (2, 5),
    )
    (totals,) = day.counterparts[0].totals
    assert totals.theirs.count == 2
    assert not totals.balanced


def test_a_settlement_twice_in_our_records_is_a_duplicate_on_our_side() -> None:
    record = ledger_record("S1")

    day = reconcile_day("H1", BUSINESS_DATE, [record, record], [his_line(record)])

    (found,) = day.discrepancies
    assert (found.kind, found.side, found.occurrences) == (DiscrepancyKind.DUPLICATE, Side.OURS, 2)


def test_day_totals_group_settled_settlements_by_insured_type_clearing_type_and_payer() -> None:
    records = [
        ledger_record("S1"),
        ledger_record("S2", clearing_agency="339900", total_fen=500, fund_paid_fen=0, account_paid_fen=0, cash_fen=500),
        ledger_record("S3", status=SettlementStatus.CANCELLED),
        ledger_record("S4", insured_type="390"),
    ]

    assert day_totals(records) == {
        TotalsKey("310", "11", "330100"): Totals(1, 10_000, 6_000, 3_000, 1_000),
        TotalsKey("310", "11", "339900"): Totals(1, 500, 0, 0, 500),
        TotalsKey("390", "11", "330100"): Totals(1, 10_000, 6_000, 3_000, 1_000),
    }


def test_records_of_another_hospital_or_day_are_a_bug_not_a_discrepancy() -> None:
    with pytest.raises(InvariantViolated):
        reconcile_day("H2", BUSINESS_DATE, [ledger_record("S1")], [])


def test_a_ledger_record_whose_parts_do_not_add_up_cannot_exist() -> None:
    with pytest.raises(InvariantViolated):
        ledger_record("S1", cash_fen=999)


def test_a_day_compared_against_no_file_is_not_called_balanced() -> None:
    day = reconcile_day("H1", BUSINESS_DATE, [ledger_record("S1")], None, None)

    assert not day_balanced(day)
