"""A day's result reduced to what a month needs, and the month across days.

Owns: ``DaySummary`` (small enough for the lead to store at close-day and rebuild from the database)
and ``MonthSummary`` (per-day and per-key totals for one hospital and one calendar month). Must never
hold settlement records or do I/O: a month summary is built from stored day summaries, not by reading
thirty days of settlements again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date

from settlement.errors import InvariantViolated
from settlement.reconciliation import limits
from settlement.reconciliation.matching import DayReconciliation, DiscrepancyKind
from settlement.reconciliation.records import Totals, TotalsKey, grand_total


@dataclass(frozen=True, slots=True)
class DaySummary:
    hospital_id: str
    business_date: date
    totals: Mapping[TotalsKey, Totals]  # our settled totals by 3201 key
    balanced: bool
    discrepancies_by_kind: Mapping[DiscrepancyKind, int] = field(default_factory=dict)

    @property
    def day_total(self) -> Totals:
        return grand_total(dict(self.totals))

    @property
    def discrepancy_count(self) -> int:
        return sum(self.discrepancies_by_kind.values())


@dataclass(frozen=True, slots=True)
class MonthSummary:
    hospital_id: str
    year: int
    month: int
    days: tuple[DaySummary, ...]  # in date order, at most one per date
    totals: Mapping[TotalsKey, Totals]  # the month by 3201 key

    @property
    def month_total(self) -> Totals:
        return grand_total(dict(self.totals))

    @property
    def unbalanced_dates(self) -> tuple[date, ...]:
        return tuple(day.business_date for day in self.days if not day.balanced)

    @property
    def balanced(self) -> bool:
        return not self.unbalanced_dates


def summarize_day(day: DayReconciliation) -> DaySummary:
    counts: dict[DiscrepancyKind, int] = {}
    for found in day.discrepancies:
        counts[found.kind] = counts.get(found.kind, 0) + 1
    return DaySummary(day.hospital_id, day.business_date, dict(day.our_totals), day.balanced, counts)


def summarize_month(hospital_id: str, year: int, month: int, days: Iterable[DaySummary]) -> MonthSummary:
    """The month's days (each date at most once, all of ``hospital_id``) and its totals per key."""
    by_date: dict[date, DaySummary] = {}
    for day in days:
        if day.hospital_id != hospital_id or (day.business_date.year, day.business_date.month) != (year, month):
            raise InvariantViolated(
                f"day {day.business_date} of {day.hospital_id} is not in {hospital_id} {year}-{month:02d}"
            )
        if day.business_date in by_date:
            raise InvariantViolated(f"day {day.business_date} is summarized twice")
        by_date[day.business_date] = day
    if len(by_date) > limits.MAX_MONTH_DAYS:
        raise InvariantViolated("a month has at most 31 days")
    ordered = tuple(by_date[when] for when in sorted(by_date))
    totals: dict[TotalsKey, Totals] = {}
    for day in ordered:
        for key, value in day.totals.items():
            totals[key] = totals.get(key, Totals()) + value
    return MonthSummary(hospital_id, year, month, ordered, {key: totals[key] for key in sorted(totals)})
