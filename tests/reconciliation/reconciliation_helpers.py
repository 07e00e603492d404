"""Helpers shared by the reconciliation tests (a unique module name, so no clash with other conftests)."""

from __future__ import annotations

from datetime import date

from settlement.reconciliation import LedgerRecord, SettlementStatus

BUSINESS_DATE = date(2024, 3, 5)


def ledger_record(settlement_id: str, **changes: object) -> LedgerRecord:
    values: dict[str, object] = {
        "settlement_id": settlement_id,
        "request_id": "R" + settlement_id,
        "hospital_id": "H1",
        "visit_id": "V" + settlement_id,
        "person_number_masked": "****1234",
        "insured_type": "310",
        "clearing_type": "11",
        "clearing_agency": "330100",
        "business_date": BUSINESS_DATE,
        "status": SettlementStatus.SETTLED,
        "total_fen": 10_000,
        "fund_paid_fen": 6_000,
        "account_paid_fen": 3_000,
        "cash_fen": 1_000,
    }
    values.update(changes)
    return LedgerRecord(**values)  # type: ignore[arg-type]


HOSTILE_IDS = ('=HYPERLINK("http://evil.example/x","click")', "<script>alert(1)</script>")
