"""Our side of a reconciliation: a hospital-day's settlements read from the store as ``LedgerRecord``s.

Owns: which stored entries are "ours" for a day and how a row becomes the reconciliation core's
``LedgerRecord``. Must never write, and never hold the day as rows and records at once: rows are
streamed in batches and turned into records as they arrive.

Rules:

- The records of day D are the settlements (kind ``settlement``) booked on D, in settlement-id order.
- Status is as at the end of D: ``CANCELLED`` when a cancellation of it was booked on D (or before),
  else ``SETTLED``. A cancellation booked on a later day does not change day D's records, so a closed
  day reconciles the same way for ever (domain §8); a cancellation entry is never a record of its own
  (the HIS export and the insurer's file list the settlement with a cancelled flag, not the reversal).
- Amounts are the settlement's own (never the negated ones of its cancellation).
- ``insured_type`` is the engine's value (employee / retired / resident), the payer (clearing agency)
  is the settlement's insurance ``region``, as in the daily ledger and close-day's totals.
- The person number is masked to its last four characters; there is no visit id in the store, so
  ``visit_id`` is empty and reports show the counterpart's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from sqlalchemy import Connection, and_, select

from settlement.identity import mask
from settlement.reconciliation import LedgerRecord, SettlementStatus
from settlement.storage import tables as t
from settlement.storage.engine import Engines

STREAM_BATCH_ROWS = 2_000  # rows fetched per round trip


def iter_ledger_records(connection: Connection, hospital_id: str, day: dt.date) -> Iterator[LedgerRecord]:
    """The hospital's settlements booked on ``day`` as ledger records, streamed in settlement-id order."""
    s = t.settlements
    cancellation = t.settlements.alias("cancellation")
    statement = (
        select(
            s.c.settlement_id,
            s.c.request_id,
            s.c.person_number,
            s.c.insured_type,
            s.c.clearing_type,
            s.c.region,
            s.c.total_fen,
            s.c.fund_paid_fen,
            s.c.account_paid_fen,
            s.c.cash_fen,
            cancellation.c.settlement_id.label("cancelled_by"),
        )
        .select_from(
            s.outerjoin(
                cancellation,
                and_(cancellation.c.reverses_id == s.c.settlement_id, cancellation.c.business_date <= day),
            )
        )
        .where(and_(s.c.hospital_id == hospital_id, s.c.business_date == day, s.c.kind == "settlement"))
        .order_by(s.c.settlement_id)
    )
    for row in connection.execute(statement.execution_options(yield_per=STREAM_BATCH_ROWS)):
        yield LedgerRecord(
            settlement_id=str(row.settlement_id),
            request_id=str(row.request_id),
            hospital_id=hospital_id,
            visit_id="",
            person_number_masked=mask(str(row.person_number)),
            insured_type=str(row.insured_type),
            clearing_type=str(row.clearing_type),
            clearing_agency=str(row.region),
            business_date=day,
            status=SettlementStatus.SETTLED if row.cancelled_by is None else SettlementStatus.CANCELLED,
            total_fen=int(row.total_fen),
            fund_paid_fen=int(row.fund_paid_fen),
            account_paid_fen=int(row.account_paid_fen),
            cash_fen=int(row.cash_fen),
        )


def read_ledger_records(engines: Engines, hospital_id: str, day: dt.date) -> list[LedgerRecord]:
    """Every record of the hospital's day, read in one transaction on the reader engine."""
    with engines.reader.connect() as connection:
        return list(iter_ledger_records(connection, hospital_id, day))
