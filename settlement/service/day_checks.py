"""The checks close-day runs on one hospital's day before it locks it.

Owns: comparing every settlement booked that day with the postings written for it (the four legs of
``settlement_postings``: fund, current-year account, historical account and cash, reversed for a
cancellation), the split identities and signs of the stored rows, the pairing of each cancellation
with the settlement it reverses, and the day's totals against the sum of its postings. Must never write
or repair anything: it lists problems and close-day refuses the day.

Postings carry no hospital, so the day's postings are those of the day's settlements (joined on the
entry id); postings of other entries (funding, rollover runs) are the global ledger check's business.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from sqlalchemy import Connection, and_, select

from settlement.domain.ledger import (
    PATIENT_CASH,
    fund_pool,
    hospital_cash,
    hospital_receivable,
    person_current,
    person_historical,
)
from settlement.service.daily_ledger import DailyLedgerRow
from settlement.storage import tables as t

MAX_LISTED_PROBLEMS = 50  # enough to see the pattern; the count says how many more there were
STREAM_BATCH_ROWS = 2_000  # rows fetched per round trip while streaming a day

LEGS = ("fund", "current_year", "historical", "cash")
_SPLIT_COLUMNS = (
    "total_fen",
    "fund_paid_fen",
    "account_paid_fen",
    "cash_fen",
    "current_year_paid_fen",
    "historical_paid_fen",
)


@dataclass(frozen=True, slots=True)
class DayCheck:
    """What the checks found: problems (the first ``MAX_LISTED_PROBLEMS``) and how many in all."""

    problems: tuple[str, ...]
    problem_count: int
    settlements_checked: int

    @property
    def ok(self) -> bool:
        return self.problem_count == 0


class _Findings:
    def __init__(self) -> None:
        self.listed: list[str] = []
        self.count = 0

    def add(self, problem: str) -> None:
        self.count += 1
        if len(self.listed) < MAX_LISTED_PROBLEMS:
            self.listed.append(problem)


def check_day(connection: Connection, hospital_id: str, day: dt.date, booked_total: DailyLedgerRow) -> DayCheck:
    """Check the day's settlements against their postings, and ``booked_total`` against both."""
    findings = _Findings()
    settlement_sums = dict.fromkeys(_SPLIT_COLUMNS, 0)
    leg_sums = dict.fromkeys(LEGS, 0)
    counts = {"settlement": 0, "cancellation": 0}
    for entry, postings in _entries_with_postings(connection, hospital_id, day):
        counts[str(entry["kind"])] = counts.get(str(entry["kind"]), 0) + 1
        for name in _SPLIT_COLUMNS:
            settlement_sums[name] += int(entry[name])
        legs = _legs(entry, postings, findings)
        for name in LEGS:
            leg_sums[name] += legs[name]
        _check_entry(entry, legs, findings)
    _check_day_totals(booked_total, counts, settlement_sums, leg_sums, findings)
    return DayCheck(tuple(findings.listed), findings.count, counts["settlement"] + counts["cancellation"])


def _entries_with_postings(
    connection: Connection, hospital_id: str, day: dt.date
) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Each settlement of the day (with its original, for a cancellation) and its postings, streamed."""
    s, p, original = t.settlements, t.postings, t.settlements.alias("original")
    statement = (
        select(
            s.c.settlement_id,
            s.c.hospital_id,
            s.c.kind,
            s.c.reverses_id,
            s.c.person_number,
            s.c.region,
            s.c.business_date,
            *(s.c[name] for name in _SPLIT_COLUMNS),
            original.c.hospital_id.label("original_hospital_id"),
            original.c.kind.label("original_kind"),
            original.c.business_date.label("original_business_date"),
            *(original.c[name].label(f"original_{name}") for name in _SPLIT_COLUMNS),
            p.c.sequence,
            p.c.source,
            p.c.destination,
            p.c.amount_fen,
            p.c.business_date.label("posting_business_date"),
        )
        .select_from(
            s.outerjoin(p, p.c.settlement_id == s.c.settlement_id).outerjoin(
                original, original.c.settlement_id == s.c.reverses_id
            )
        )
        .where(and_(s.c.hospital_id == hospital_id, s.c.business_date == day))
        .order_by(s.c.settlement_id, p.c.sequence)
    )
    rows = (dict(row._mapping) for row in connection.execute(statement.execution_options(yield_per=STREAM_BATCH_ROWS)))
    for _, group in groupby(rows, key=lambda row: row["settlement_id"]):
        listed = list(group)
        yield listed[0], [row for row in listed if row["sequence"] is not None]


def _legs(entry: dict[str, Any], postings: Sequence[dict[str, Any]], findings: _Findings) -> dict[str, int]:
    """The net money each leg moved into the hospital's accounts, from the entry's postings."""
    receivable, till = hospital_receivable(_hospital_of(entry)), hospital_cash(_hospital_of(entry))
    legs_by_route = {
        (fund_pool(str(entry["region"])), receivable): "fund",
        (person_current(str(entry["person_number"])), receivable): "current_year",
        (person_historical(str(entry["person_number"])), receivable): "historical",
        (PATIENT_CASH, till): "cash",
    }
    legs = dict.fromkeys(LEGS, 0)
    settlement_id = entry["settlement_id"]
    for posting in postings:
        route = (str(posting["source"]), str(posting["destination"]))
        amount_fen = int(posting["amount_fen"])
        if route in legs_by_route:
            legs[legs_by_route[route]] += amount_fen
        elif route[::-1] in legs_by_route:
            legs[legs_by_route[route[::-1]]] -= amount_fen
        else:
            findings.add(
                f"settlement {settlement_id}: posting {posting['sequence']} moves {amount_fen} fen from "
                f"{route[0]} to {route[1]}, which is none of its legs"
            )
        if posting["posting_business_date"] != entry["business_date"]:
            findings.add(
                f"settlement {settlement_id}: posting {posting['sequence']} is dated "
                f"{posting['posting_business_date']}, the settlement {entry['business_date']}"
            )
    return legs


def _hospital_of(entry: dict[str, Any]) -> str:
    return str(entry["hospital_id"])


def _check_entry(entry: dict[str, Any], legs: dict[str, int], findings: _Findings) -> None:
    settlement_id = entry["settlement_id"]
    stored = {
        "fund": int(entry["fund_paid_fen"]),
        "current_year": int(entry["current_year_paid_fen"]),
        "historical": int(entry["historical_paid_fen"]),
        "cash": int(entry["cash_fen"]),
    }
    for name in LEGS:
        if legs[name] != stored[name]:
            findings.add(
                f"settlement {settlement_id}: its postings move {legs[name]} fen of {name}, "
                f"the settlement states {stored[name]}"
            )
    total, fund, account, cash = (int(entry[name]) for name in _SPLIT_COLUMNS[:4])
    if total != fund + account + cash or account != stored["current_year"] + stored["historical"]:
        findings.add(f"settlement {settlement_id}: total != fund + account + cash, or account != current + historical")
    sign = 1 if entry["kind"] == "settlement" else -1
    if any(sign * int(entry[name]) < 0 for name in _SPLIT_COLUMNS):
        findings.add(f"settlement {settlement_id}: a {entry['kind']} with amounts of the wrong sign")
    if entry["kind"] == "cancellation":
        _check_cancellation(entry, findings)


def _check_cancellation(entry: dict[str, Any], findings: _Findings) -> None:
    settlement_id, original_id = entry["settlement_id"], entry["reverses_id"]
    if entry["original_kind"] != "settlement" or entry["original_hospital_id"] != _hospital_of(entry):
        findings.add(f"cancellation {settlement_id}: reverses {original_id}, not a settlement of this hospital")
        return
    if entry["original_business_date"] > entry["business_date"]:
        findings.add(f"cancellation {settlement_id}: booked before the settlement {original_id} it reverses")
    differing = [name for name in _SPLIT_COLUMNS if int(entry[name]) != -int(entry[f"original_{name}"])]
    if differing:
        findings.add(
            f"cancellation {settlement_id}: {', '.join(differing)} not the negation of settlement {original_id}"
        )


def _check_day_totals(
    booked: DailyLedgerRow,
    counts: dict[str, int],
    settlement_sums: dict[str, int],
    leg_sums: dict[str, int],
    findings: _Findings,
) -> None:
    """The day's totals three ways: the totals query, the settlement rows, and the postings."""
    from_rows = (
        counts["settlement"],
        counts["cancellation"],
        settlement_sums["total_fen"],
        settlement_sums["fund_paid_fen"],
        settlement_sums["account_paid_fen"],
        settlement_sums["cash_fen"],
    )
    from_query = (
        booked.settlement_count,
        booked.cancellation_count,
        booked.total_fen,
        booked.fund_paid_fen,
        booked.account_paid_fen,
        booked.cash_fen,
    )
    if from_rows != from_query:
        findings.add(
            "day totals: the totals query and the settlement rows differ (settlements, cancellations, total, "
            f"fund, account, cash): {from_query} against {from_rows}"
        )
    from_postings = (
        leg_sums["fund"] + leg_sums["current_year"] + leg_sums["historical"] + leg_sums["cash"],
        leg_sums["fund"],
        leg_sums["current_year"] + leg_sums["historical"],
        leg_sums["cash"],
    )
    differing = [
        f"{name} {stated} fen stated, {moved} fen posted"
        for name, stated, moved in zip(("total", "fund", "account", "cash"), from_rows[2:], from_postings, strict=True)
        if stated != moved
    ]
    if differing:
        findings.add(f"day totals: the settlements and their postings differ: {'; '.join(differing)}")
