"""Matching a day of ours against a counterpart: totals (3201 shape) and line by line (3202 shape).

Owns: the discrepancy kinds and the rules that classify them, the totals comparison per 3201 key, and
the one answer a scheduler needs, ``day_balanced``. Runs in O(n): one dict per side keyed by settlement
id, one pass over each side, no sorting of the records. Must never do I/O, never trust a counterpart's
own verdict (``stmt_rslt``) over the comparison, and never report a difference it cannot name by kind
and ids.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date

from settlement.errors import InvariantViolated
from settlement.reconciliation.records import (
    Counterpart,
    CounterpartRecord,
    LedgerRecord,
    SettlementStatus,
    Totals,
    TotalsKey,
    counterpart_totals,
    day_totals,
)


class DiscrepancyKind(enum.Enum):
    ONLY_OURS = "ONLY_OURS"  # in our ledger, not in their file
    ONLY_THEIRS = "ONLY_THEIRS"  # in their file, not in our ledger
    AMOUNT_DIFFERS = "AMOUNT_DIFFERS"  # one per differing field, with both values
    STATUS_DIFFERS = "STATUS_DIFFERS"  # cancelled on one side only
    DUPLICATE = "DUPLICATE"  # one settlement id listed more than once on one side


class Side(enum.Enum):
    OURS = "OURS"
    THEIRS = "THEIRS"


@dataclass(frozen=True, slots=True)
class Discrepancy:
    """One named difference. ``field`` is the amount field (``total_fen`` …) or ``status``."""

    kind: DiscrepancyKind
    counterpart: Counterpart
    settlement_id: str
    request_id: str = ""  # ours when we have the settlement, else the HIS's
    visit_id: str = ""  # ours when we have the settlement, else theirs (mdtrt_id for the insurer)
    clearing_agency: str = ""  # the payer, known only when the settlement is ours
    side: Side | None = None  # ONLY_* and DUPLICATE: where the settlement is (repeated)
    field: str = ""
    ours_fen: int | None = None
    theirs_fen: int | None = None
    ours_status: SettlementStatus | None = None
    theirs_status: SettlementStatus | None = None
    occurrences: int = 1
    their_lines: tuple[int, ...] = ()  # line numbers in their file, so finance can find the row

    @property
    def difference_fen(self) -> int | None:
        if self.ours_fen is None or self.theirs_fen is None:
            return None
        return self.theirs_fen - self.ours_fen


@dataclass(frozen=True, slots=True)
class TotalsComparison:
    """One 3201 line: a key's count, total, fund paid, account paid (and cash) on both sides."""

    key: TotalsKey
    ours: Totals
    theirs: Totals

    @property
    def balanced(self) -> bool:
        return self.ours == self.theirs


@dataclass(frozen=True, slots=True)
class CounterpartReconciliation:
    counterpart: Counterpart
    file_name: str
    totals: tuple[TotalsComparison, ...]
    discrepancies: tuple[Discrepancy, ...]

    @property
    def balanced(self) -> bool:
        return not self.discrepancies and all(line.balanced for line in self.totals)


@dataclass(frozen=True, slots=True)
class DayReconciliation:
    """A hospital's day reconciled against each counterpart file it was given."""

    hospital_id: str
    business_date: date
    records: tuple[LedgerRecord, ...]
    our_totals: Mapping[TotalsKey, Totals]
    counterparts: tuple[CounterpartReconciliation, ...]

    @property
    def discrepancies(self) -> tuple[Discrepancy, ...]:
        return tuple(found for part in self.counterparts for found in part.discrepancies)

    @property
    def balanced(self) -> bool:
        # Nothing compared is not "balanced": a scheduler must not read a run without files as a success.
        return bool(self.counterparts) and all(part.balanced for part in self.counterparts)


def day_balanced(day: DayReconciliation) -> bool:
    """Whether every totals line balanced and no discrepancy was found: the CLI's exit status."""
    return day.balanced


def reconcile_totals(
    ours: Mapping[TotalsKey, Totals], theirs: Mapping[TotalsKey, Totals]
) -> tuple[TotalsComparison, ...]:
    """Both sides' totals per key over the union of keys; a key missing on one side counts as zero."""
    keys = sorted(set(ours) | set(theirs))
    return tuple(TotalsComparison(key, ours.get(key, Totals()), theirs.get(key, Totals())) for key in keys)


def reconcile_day(
    hospital_id: str,
    business_date: date,
    ours: Sequence[LedgerRecord],
    his: Sequence[CounterpartRecord] | None,
    insurer: Sequence[CounterpartRecord] | None = None,
) -> DayReconciliation:
    """Reconcile ``ours`` (one hospital's day) against the HIS export and/or the insurer's file.

    ``ours`` must be exactly the hospital's records for that business date; anything else is a bug in
    the query that built it, so it raises ``InvariantViolated`` rather than reporting nonsense.
    """
    for record in ours:
        if record.hospital_id != hospital_id or record.business_date != business_date:
            raise InvariantViolated(
                f"settlement {record.settlement_id} is {record.hospital_id} on {record.business_date}, "
                f"not {hospital_id} on {business_date}"
            )
    our_totals = day_totals(ours)
    key_of = {record.settlement_id: record.totals_key for record in ours}
    parts = []
    for counterpart, lines in ((Counterpart.HIS, his), (Counterpart.INSURER, insurer)):
        if lines is None:
            continue
        if any(line.counterpart is not counterpart for line in lines):
            raise InvariantViolated(f"the {counterpart.value} lines hold another counterpart's lines")
        file_name = lines[0].file_name if lines else ""
        parts.append(
            CounterpartReconciliation(
                counterpart=counterpart,
                file_name=file_name,
                totals=reconcile_totals(our_totals, counterpart_totals(lines, key_of)),
                discrepancies=match_lines(ours, lines, counterpart),
            )
        )
    return DayReconciliation(hospital_id, business_date, tuple(ours), our_totals, tuple(parts))


def match_lines(
    ours: Sequence[LedgerRecord], theirs: Sequence[CounterpartRecord], counterpart: Counterpart
) -> tuple[Discrepancy, ...]:
    """Line-by-line (3202) on the settlement id; a repeated id is compared once, by its first line."""
    our_first: dict[str, LedgerRecord] = {}
    our_count: dict[str, int] = {}
    for record in ours:
        our_first.setdefault(record.settlement_id, record)
        our_count[record.settlement_id] = our_count.get(record.settlement_id, 0) + 1
    their_lines: dict[str, list[CounterpartRecord]] = {}
    for line in theirs:
        their_lines.setdefault(line.settlement_id, []).append(line)

    found: list[Discrepancy] = []
    for settlement_id, record in our_first.items():
        repeats = our_count[settlement_id]
        matches = their_lines.get(settlement_id)
        if matches is None:
            found.append(replace(_about(record, counterpart, DiscrepancyKind.ONLY_OURS), side=Side.OURS))
        elif _differs(record, matches[0]):
            found.extend(_compare(record, matches[0], counterpart))
        if repeats > 1:
            duplicate = _about(record, counterpart, DiscrepancyKind.DUPLICATE)
            found.append(replace(duplicate, side=Side.OURS, occurrences=repeats))

    for settlement_id, lines in their_lines.items():
        record_or_none = our_first.get(settlement_id)
        if record_or_none is not None and len(lines) == 1:
            continue  # compared above
        first = lines[0]
        base = Discrepancy(
            DiscrepancyKind.ONLY_THEIRS,
            counterpart,
            settlement_id,
            request_id=record_or_none.request_id if record_or_none else first.request_id,
            visit_id=(record_or_none.visit_id if record_or_none else "") or first.visit_id,
            clearing_agency=record_or_none.clearing_agency if record_or_none else "",
            their_lines=tuple(line.line for line in lines),
        )
        if len(lines) > 1:
            found.append(replace(base, kind=DiscrepancyKind.DUPLICATE, side=Side.THEIRS, occurrences=len(lines)))
        if record_or_none is None:
            found.append(replace(base, side=Side.THEIRS))
    return tuple(found)


def _about(
    record: LedgerRecord, counterpart: Counterpart, kind: DiscrepancyKind, visit_id: str = ""
) -> Discrepancy:
    """A discrepancy on one of our records; the visit id is ours, else the counterpart's (the engine keeps none)."""
    return Discrepancy(
        kind,
        counterpart,
        record.settlement_id,
        request_id=record.request_id,
        visit_id=record.visit_id or visit_id,
        clearing_agency=record.clearing_agency,
    )


def _differs(record: LedgerRecord, theirs: CounterpartRecord) -> bool:
    # The hot path: most lines agree, so check cheaply before building any discrepancy.
    return (
        record.status is not theirs.status
        or record.total_fen != theirs.total_fen
        or record.fund_paid_fen != theirs.fund_paid_fen
        or record.account_paid_fen != theirs.account_paid_fen
        or (theirs.cash_fen is not None and record.cash_fen != theirs.cash_fen)
    )


def _compare(record: LedgerRecord, theirs: CounterpartRecord, counterpart: Counterpart) -> list[Discrepancy]:
    lines = (theirs.line,)
    found = []
    if record.status is not theirs.status:
        found.append(
            replace(
                _about(record, counterpart, DiscrepancyKind.STATUS_DIFFERS, theirs.visit_id),
                field="status",
                ours_status=record.status,
                theirs_status=theirs.status,
                their_lines=lines,
            )
        )
    pairs = [
        ("total_fen", record.total_fen, theirs.total_fen),
        ("fund_paid_fen", record.fund_paid_fen, theirs.fund_paid_fen),
        ("account_paid_fen", record.account_paid_fen, theirs.account_paid_fen),
    ]
    if theirs.cash_fen is not None:
        pairs.append(("cash_fen", record.cash_fen, theirs.cash_fen))
    for field, ours_fen, theirs_fen in pairs:
        if ours_fen != theirs_fen:
            found.append(
                replace(
                    _about(record, counterpart, DiscrepancyKind.AMOUNT_DIFFERS, theirs.visit_id),
                    field=field,
                    ours_fen=ours_fen,
                    theirs_fen=theirs_fen,
                    their_lines=lines,
                )
            )
    return found
