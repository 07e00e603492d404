"""A hospital's booked totals for one day, by insured type, clearing type and payer (3201 对总账).

Owns: the day-totals query, the ``DailyLedgerView`` the ``GetDailyLedger`` RPC maps to proto, and the
JSON form those totals take in ``closed_days.totals``. Must never write: close-day stores what this
module computes, and once a day is closed this module answers from the stored totals, which are final.

Definitions (domain §8, ``proto/clinic/settlement/v1/daily_ledger.proto``): a row is one (insured type,
clearing type, payer) group; the payer is the clearing agency that pays the fund's share, i.e. the
settlement's insurance ``region`` (``clr_optins``). Entries count on the CST day they were booked
(``business_date``). Amounts are signed sums: a cancellation stores the negated split, so a settlement
cancelled the same day nets to zero and one cancelled on a later day lowers that later day.
``insured_type`` is the engine's own value (employee / retired / resident); the gRPC layer maps it
to the proto enum.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Connection, and_, case, cast, func, select

from settlement.errors import HospitalNotFound, InvariantViolated
from settlement.storage import tables as t

TOTALS_FORMAT = "daily-ledger/1"  # the shape of closed_days.totals; bump when it changes


@dataclass(frozen=True, slots=True)
class DailyLedgerRow:
    """One group's counts and signed sums in fen; the grand total has empty grouping fields."""

    insured_type: str
    clearing_type: str
    payer: str  # clr_optins: the settlement's insurance region
    settlement_count: int
    cancellation_count: int
    total_fen: int  # medfee_sumamt
    fund_paid_fen: int  # fund_pay_sumamt
    account_paid_fen: int  # acct_pay
    cash_fen: int  # psn_cash_pay

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.insured_type, self.clearing_type, self.payer)


@dataclass(frozen=True, slots=True)
class DailyLedgerView:
    """What ``GetDailyLedger`` returns: rows sorted by (insured type, clearing type, payer), and their sum."""

    hospital_id: str
    business_date: dt.date
    closed: bool
    rows: tuple[DailyLedgerRow, ...]
    total: DailyLedgerRow


def total_of(rows: Iterable[DailyLedgerRow]) -> DailyLedgerRow:
    """The sum of ``rows``, with empty grouping fields."""
    sums = [0, 0, 0, 0, 0, 0]
    for row in rows:
        values = (
            row.settlement_count,
            row.cancellation_count,
            row.total_fen,
            row.fund_paid_fen,
            row.account_paid_fen,
            row.cash_fen,
        )
        sums = [a + b for a, b in zip(sums, values, strict=True)]
    return DailyLedgerRow("", "", "", *sums)


def _sum(expression: ColumnElement[Any]) -> ColumnElement[int]:
    # PostgreSQL sums BIGINT as NUMERIC; cast back so every store returns an exact int.
    return cast(func.coalesce(func.sum(expression), 0), BigInteger)


def booked_rows(connection: Connection, hospital_id: str, day: dt.date) -> tuple[DailyLedgerRow, ...]:
    """The day's rows computed from the settlements table (one GROUP BY on the hospital-date index)."""
    s = t.settlements
    group = (s.c.insured_type, s.c.clearing_type, s.c.region)
    statement = (
        select(
            *group,
            _sum(case((s.c.kind == "settlement", 1), else_=0)),
            _sum(case((s.c.kind == "cancellation", 1), else_=0)),
            _sum(s.c.total_fen),
            _sum(s.c.fund_paid_fen),
            _sum(s.c.account_paid_fen),
            _sum(s.c.cash_fen),
        )
        .where(and_(s.c.hospital_id == hospital_id, s.c.business_date == day))
        .group_by(*group)
        .order_by(*group)
    )
    return tuple(
        DailyLedgerRow(str(row[0]), str(row[1]), str(row[2]), *(int(value) for value in row[3:]))
        for row in connection.execute(statement)
    )


def read_daily_ledger(connection: Connection, hospital_id: str, day: dt.date) -> DailyLedgerView:
    """The day's view: the stored totals once the day is closed, else what is booked so far.

    Raises ``HospitalNotFound`` for an unknown hospital (an empty day of a known one has no rows).
    """
    require_hospital(connection, hospital_id)
    stored = connection.execute(
        select(t.closed_days.c.totals).where(
            and_(t.closed_days.c.hospital_id == hospital_id, t.closed_days.c.business_date == day)
        )
    ).first()
    rows = rows_from_json(str(stored[0])) if stored is not None else booked_rows(connection, hospital_id, day)
    return DailyLedgerView(hospital_id, day, stored is not None, rows, total_of(rows))


def require_hospital(connection: Connection, hospital_id: str) -> None:
    """Raise ``HospitalNotFound`` unless the hospital is registered."""
    found = connection.execute(select(t.hospitals.c.hospital_id).where(t.hospitals.c.hospital_id == hospital_id))
    if found.first() is None:
        raise HospitalNotFound(
            f"hospital {hospital_id!r} is not registered; check the hospital id",
            metadata={"hospital_id": hospital_id},
        )


# --- the stored form ------------------------------------------------------------------------------

_ROW_FIELDS = tuple(field.name for field in fields(DailyLedgerRow))
_TEXT_FIELDS = ("insured_type", "clearing_type", "payer")


def rows_to_json(rows: Iterable[DailyLedgerRow]) -> str:
    """Canonical JSON (sorted keys, rows in key order) for ``closed_days.totals``."""
    listed = sorted(rows, key=lambda row: row.key)
    document = {
        "format": TOTALS_FORMAT,
        "rows": [asdict(row) for row in listed],
        "total": asdict(total_of(listed)),
    }
    return json.dumps(document, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def rows_from_json(text: str) -> tuple[DailyLedgerRow, ...]:
    """The rows stored by ``rows_to_json``; anything else is a corrupted closed day (``InvariantViolated``)."""
    document = json.loads(text)
    if not isinstance(document, dict) or document.get("format") != TOTALS_FORMAT:
        raise InvariantViolated(f"closed_days.totals is not in the {TOTALS_FORMAT} format")
    rows = tuple(_row_from_mapping(item) for item in document.get("rows", ()))
    if asdict(total_of(rows)) != document.get("total"):
        raise InvariantViolated("closed_days.totals: the stored total is not the sum of the stored rows")
    return rows


def _row_from_mapping(item: object) -> DailyLedgerRow:
    if not isinstance(item, Mapping) or set(item) != set(_ROW_FIELDS):
        raise InvariantViolated(f"closed_days.totals: a row must have exactly the fields {', '.join(_ROW_FIELDS)}")
    for name in _ROW_FIELDS:
        expected = str if name in _TEXT_FIELDS else int
        if type(item[name]) is not expected:
            raise InvariantViolated(f"closed_days.totals: {name} must be {expected.__name__}")
    return DailyLedgerRow(**item)
