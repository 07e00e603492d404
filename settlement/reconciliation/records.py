"""The records reconciliation compares, and a day's totals.

Owns: the immutable shapes of one settlement as each side sees it (``LedgerRecord`` for ours,
``CounterpartRecord`` for a line of the HIS export or of the insurer's detail file) and the day's totals
by (insured type, clearing type, clearing agency), the key of the national 3201 totals reconciliation.
Every amount is an ``int`` of fen. Must never import storage or do I/O: the lead's queries build
``LedgerRecord``s, the parsers build ``CounterpartRecord``s, and both meet here as plain values.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from settlement.errors import InvariantViolated


class SettlementStatus(enum.Enum):
    SETTLED = "SETTLED"
    CANCELLED = "CANCELLED"


class Counterpart(enum.Enum):
    """Whom we reconcile against: the hospital's own system, or the insurer's detail result file."""

    HIS = "HIS"
    INSURER = "INSURER"


AMOUNT_FIELDS = ("total_fen", "fund_paid_fen", "account_paid_fen", "cash_fen")


@dataclass(frozen=True, slots=True)
class LedgerRecord:
    """One settlement as our ledger holds it on its business day (a cancel keeps the original split)."""

    settlement_id: str
    request_id: str
    hospital_id: str
    visit_id: str
    person_number_masked: str
    insured_type: str  # national insutype, e.g. 310 employee, 390 resident
    clearing_type: str  # national clr_type, e.g. 11 outpatient
    clearing_agency: str  # the payer, national clr_optins / setl_optins
    business_date: date
    status: SettlementStatus
    total_fen: int
    fund_paid_fen: int
    account_paid_fen: int
    cash_fen: int

    def __post_init__(self) -> None:
        # Our own ledger breaking the split identity is a bug upstream, never a discrepancy to report.
        check_split(self.settlement_id, self.total_fen, self.fund_paid_fen, self.account_paid_fen, self.cash_fen)

    @property
    def totals_key(self) -> TotalsKey:
        return TotalsKey(self.insured_type, self.clearing_type, self.clearing_agency)


@dataclass(frozen=True, slots=True)
class CounterpartRecord:
    """One line of a counterpart's file, with where it came from so a report can point at it.

    ``cash_fen`` is ``None`` for the insurer: its detail file carries total, fund and account only, and
    the reconciliation compares just what both sides state.
    """

    counterpart: Counterpart
    file_name: str
    line: int
    settlement_id: str
    visit_id: str  # HIS visit id, or the insurer's mdtrt_id
    status: SettlementStatus
    total_fen: int
    fund_paid_fen: int
    account_paid_fen: int
    cash_fen: int | None
    request_id: str = ""  # HIS only
    message_id: str = ""  # insurer msgid only
    person_number_masked: str = ""  # insurer psn_no, masked on reading
    statement_result: str = ""  # insurer stmt_rslt, kept for the report, never trusted for matching
    memo: str = ""


def check_split(settlement_id: str, total_fen: int, fund_fen: int, account_fen: int, cash_fen: int) -> None:
    """Raise ``InvariantViolated`` unless the amounts are non-negative integers that add up."""
    amounts = (total_fen, fund_fen, account_fen, cash_fen)
    if any(type(amount) is not int or amount < 0 for amount in amounts):
        raise InvariantViolated(f"settlement {settlement_id}: amounts must be non-negative int fen")
    if fund_fen + account_fen + cash_fen != total_fen:
        raise InvariantViolated(f"settlement {settlement_id}: fund + account + cash != total")


@dataclass(frozen=True, slots=True, order=True)
class TotalsKey:
    """The 3201 grouping: insured type (insutype), clearing type (clr_type), clearing agency (payer)."""

    insured_type: str
    clearing_type: str
    clearing_agency: str

    def label(self) -> str:
        return f"{self.clearing_agency} / {self.insured_type} / {self.clearing_type}"


# Counterpart lines with no record of ours carry no insured type or payer; their totals go here so the
# day's totals still disagree visibly instead of silently dropping money.
UNMATCHED_KEY = TotalsKey("-", "-", "UNMATCHED")


@dataclass(frozen=True, slots=True)
class Totals:
    """Count and sums of settled settlements (cancelled ones net to zero on their day and are left out)."""

    count: int = 0
    total_fen: int = 0
    fund_paid_fen: int = 0
    account_paid_fen: int = 0
    cash_fen: int = 0

    def __add__(self, other: Totals) -> Totals:
        return Totals(
            self.count + other.count,
            self.total_fen + other.total_fen,
            self.fund_paid_fen + other.fund_paid_fen,
            self.account_paid_fen + other.account_paid_fen,
            self.cash_fen + other.cash_fen,
        )


class _Accumulator:
    """Mutable running sums: one object per key instead of a new ``Totals`` per record keeps this O(n)."""

    __slots__ = ("account", "cash", "count", "fund", "total")

    def __init__(self) -> None:
        self.count = self.total = self.fund = self.account = self.cash = 0

    def add(self, total_fen: int, fund_fen: int, account_fen: int, cash_fen: int) -> None:
        self.count += 1
        self.total += total_fen
        self.fund += fund_fen
        self.account += account_fen
        self.cash += cash_fen

    def freeze(self) -> Totals:
        return Totals(self.count, self.total, self.fund, self.account, self.cash)


def day_totals(records: Iterable[LedgerRecord]) -> dict[TotalsKey, Totals]:
    """Our day's totals by 3201 key, settled settlements only, keys sorted."""
    sums: dict[TotalsKey, _Accumulator] = {}
    for record in records:
        if record.status is not SettlementStatus.SETTLED:
            continue
        key = record.totals_key
        accumulator = sums.get(key)
        if accumulator is None:
            accumulator = sums[key] = _Accumulator()
        accumulator.add(record.total_fen, record.fund_paid_fen, record.account_paid_fen, record.cash_fen)
    return {key: sums[key].freeze() for key in sorted(sums)}


def counterpart_totals(lines: Iterable[CounterpartRecord], key_of: dict[str, TotalsKey]) -> dict[TotalsKey, Totals]:
    """A counterpart's day totals, each line filed under the key of our settlement with its id.

    Neither the HIS export nor the insurer's detail file states insured type or payer, so a line takes
    them from our record; lines we do not know go under ``UNMATCHED_KEY``. Settled lines only. Where the
    insurer states no cash, cash is total − fund − account (the national psn_cash_pay identity).
    """
    sums: dict[TotalsKey, _Accumulator] = {}
    for line in lines:
        if line.status is not SettlementStatus.SETTLED:
            continue
        key = key_of.get(line.settlement_id, UNMATCHED_KEY)
        accumulator = sums.get(key)
        if accumulator is None:
            accumulator = sums[key] = _Accumulator()
        cash_fen = line.cash_fen
        if cash_fen is None:
            cash_fen = line.total_fen - line.fund_paid_fen - line.account_paid_fen
        accumulator.add(line.total_fen, line.fund_paid_fen, line.account_paid_fen, cash_fen)
    return {key: sums[key].freeze() for key in sorted(sums)}


def grand_total(totals: dict[TotalsKey, Totals]) -> Totals:
    result = Totals()
    for value in totals.values():
        result = result + value
    return result
