"""Seeding a ledger for the finance tests: consistent settlement and cancellation rows with balanced postings.

Rows go in through ``Repository.insert_settlement`` and ``Repository.post`` exactly as a settle or a
cancel would leave them: the split identities hold, a cancellation stores the negated split and reverses
its original's postings, person balances move with the postings, and the business date is the
China-Standard-Time day of the instant (so 23:59:59 CST and 00:00:00 CST fall on different days).
A unique module name (not ``conftest``) so it cannot clash with other test folders' helpers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from dataclasses import dataclass, field
from typing import Any, TypedDict

from settlement.domain.ledger import (
    FUNDING,
    Posting,
    person_current,
    person_historical,
)
from settlement.service.entries import SPLIT_AMOUNT_COLUMNS, postings_of
from settlement.storage.engine import Engines
from settlement.storage.repository import Repository

CST = dt.timezone(dt.timedelta(hours=8))
DAY = dt.date(2024, 3, 5)
NEXT_DAY = dt.date(2024, 3, 6)
OPENING_BALANCE_FEN = 50_000_000  # per account: far more than the seeded settlements spend
SPLIT_COLUMNS = SPLIT_AMOUNT_COLUMNS  # what a cancellation negates


@dataclass(frozen=True)
class Person:
    person_number: str
    insured_type: str
    region: str  # the insurance region: the payer of this person's fund share


HOSPITALS = ("H1", "H2")
PERSONS = (
    Person("3301000000000011", "employee", "330100"),
    Person("3301000000000022", "retired", "330100"),
    Person("3399000000000033", "resident", "339900"),
)


def cst(day: dt.date, hour: int, minute: int = 0, second: int = 0, microsecond: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, second, microsecond, tzinfo=CST)


def microseconds(at: dt.datetime) -> int:
    return (int(at.timestamp()) * 1_000_000) + at.microsecond


@dataclass
class LedgerSeeder:
    """Writes consistent entries inside one write transaction; ``rows`` lists every entry written."""

    repo: Repository
    rows: list[dict[str, Any]] = field(default_factory=list)
    balances: dict[str, list[int]] = field(default_factory=dict)

    def reference_data(self) -> None:
        for number, hospital_id in enumerate(HOSPITALS, start=1):
            self.repo.insert_hospital(
                hospital_id=hospital_id, name=f"Hospital {number}", level=2, region="330100", card_proof_required=False
            )
        for person in PERSONS:
            self.repo.insert_person(
                person_number=person.person_number,
                name="Test Person",
                insured_type=person.insured_type,
                region=person.region,
                citizen_id_hash=hashlib.sha256(person.person_number.encode()).hexdigest(),
                citizen_id_last4=person.person_number[-4:],
            )
            self.repo.insert_account(person.person_number)
            self.repo.post(
                f"FUND-{person.person_number}",
                dt.date(2024, 1, 1),
                (
                    Posting(FUNDING, person_current(person.person_number), OPENING_BALANCE_FEN),
                    Posting(FUNDING, person_historical(person.person_number), OPENING_BALANCE_FEN),
                ),
            )
            self.repo.add_to_balances(
                person.person_number, current_year_fen=OPENING_BALANCE_FEN, historical_fen=OPENING_BALANCE_FEN
            )
            self.balances[person.person_number] = [OPENING_BALANCE_FEN, OPENING_BALANCE_FEN]

    def settle(
        self,
        hospital_id: str,
        person: Person,
        at: dt.datetime,
        *,
        total_fen: int,
        fund_fen: int,
        current_year_fen: int,
        historical_fen: int,
        clearing_type: str = "11",
    ) -> dict[str, Any]:
        cash_fen = total_fen - fund_fen - current_year_fen - historical_fen
        assert min(total_fen, fund_fen, current_year_fen, historical_fen, cash_fen) >= 0
        account_fen = current_year_fen + historical_fen
        number = len(self.rows)
        row = {
            "settlement_id": f"S{hospital_id}-{number:05d}",
            "hospital_id": hospital_id,
            "terminal_id": f"{hospital_id}-T1",
            "operator_id": "doctor-1",
            "request_id": f"00000000-0000-4000-8000-{number:012d}",
            "person_number": person.person_number,
            "card_number_last4": "1234",
            "card_present": True,
            "kind": "settlement",
            "reverses_id": None,
            "region": person.region,
            "insured_type": person.insured_type,
            "visit_type": "outpatient",
            "clearing_type": clearing_type,
            "visit_date": at.astimezone(CST).date(),
            "use_account": account_fen > 0,
            "model": "national",
            "policy_version": f"{person.region}@2024-01-01",
            "replaces_id": None,
            "business_date": at.astimezone(CST).date(),
            "created_at_us": microseconds(at),
            "total_fen": total_fen,
            "fully_self_paid_fen": 0,
            "over_ceiling_fen": 0,
            "pre_self_paid_fen": 0,
            "in_scope_fen": total_fen,
            "deductible_paid_fen": 0,
            "fund_paid_fen": fund_fen,
            "personal_part_fen": total_fen - fund_fen,
            "account_paid_fen": account_fen,
            "current_year_paid_fen": current_year_fen,
            "historical_paid_fen": historical_fen,
            "self_segment_fen": 0,
            "cash_fen": cash_fen,
            "accumulator_year": at.astimezone(CST).year,
            "deductible_delta_fen": 0,
            "fund_delta_fen": fund_fen,
            "self_segment_delta_fen": 0,
        }
        return self._write(row)

    def cancel(self, original: dict[str, Any], at: dt.datetime) -> dict[str, Any]:
        number = len(self.rows)
        row = dict(original)
        for column in SPLIT_COLUMNS:
            row[column] = -int(original[column])
        row.update(
            settlement_id=f"C{original['hospital_id']}-{number:05d}",
            request_id=f"00000000-0000-4000-8000-{number:012d}",
            kind="cancellation",
            reverses_id=original["settlement_id"],
            business_date=at.astimezone(CST).date(),
            created_at_us=microseconds(at),
        )
        return self._write(row)

    def _write(self, row: dict[str, Any]) -> dict[str, Any]:
        person_number = str(row["person_number"])
        balance = self.balances[person_number]
        balance[0] -= int(row["current_year_paid_fen"])
        balance[1] -= int(row["historical_paid_fen"])
        row["current_year_after_fen"], row["historical_after_fen"] = balance
        self.repo.insert_settlement(row, [])
        self.repo.post(str(row["settlement_id"]), row["business_date"], postings_of(row))
        self.repo.add_to_balances(
            person_number,
            current_year_fen=-int(row["current_year_paid_fen"]),
            historical_fen=-int(row["historical_paid_fen"]),
        )
        self.rows.append(row)
        return row


@dataclass(frozen=True)
class SeededLedger:
    """The standard seed: what was written, and the ids of the entries tests single out."""

    rows: tuple[dict[str, Any], ...]
    just_before_midnight_id: str  # H1, 23:59:59.999999 CST on DAY
    just_after_midnight_id: str  # H1, 00:00:00 CST on NEXT_DAY (16:00 UTC on DAY)
    cancelled_same_day_id: str  # H1 settlement on DAY cancelled on DAY
    cancelled_next_day_id: str  # H1 settlement on DAY cancelled just after midnight, on NEXT_DAY

    def of(self, hospital_id: str, day: dt.date) -> list[dict[str, Any]]:
        return [row for row in self.rows if row["hospital_id"] == hospital_id and row["business_date"] == day]


class SplitAmounts(TypedDict):
    total_fen: int
    fund_fen: int
    current_year_fen: int
    historical_fen: int


def random_split(rng: random.Random) -> SplitAmounts:
    total = rng.randint(500, 80_000)
    fund = total * rng.randint(0, 90) // 100
    account = rng.randint(0, total - fund)
    current = rng.randint(0, account)
    return {"total_fen": total, "fund_fen": fund, "current_year_fen": current, "historical_fen": account - current}


def seed_standard_ledger(engines: Engines, *, settlements_per_day: int = 10, seed: int = 7) -> SeededLedger:
    """Two hospitals, two days, three persons (two payers), settlements through the day and across midnight
    CST, a cancellation on the same day and one on the next day."""
    rng = random.Random(seed)
    with engines.writer.begin() as connection:
        repo = Repository(connection)
        repo.lock_for_writing([])
        seeder = LedgerSeeder(repo)
        seeder.reference_data()
        for hospital_id in HOSPITALS:
            for day in (DAY, NEXT_DAY):
                for number in range(settlements_per_day):
                    at = cst(day, 8 + number % 12, (number * 7) % 60)
                    seeder.settle(hospital_id, PERSONS[number % len(PERSONS)], at, **random_split(rng))
        before = seeder.settle("H1", PERSONS[0], cst(DAY, 23, 59, 59, 999_999), **random_split(rng))
        after = seeder.settle("H1", PERSONS[1], cst(NEXT_DAY, 0), **random_split(rng))
        same_day = seeder.settle("H1", PERSONS[2], cst(DAY, 10, 30), **random_split(rng), clearing_type="13")
        seeder.cancel(same_day, cst(DAY, 17, 45))
        next_day = seeder.settle("H1", PERSONS[0], cst(DAY, 22, 10), **random_split(rng))
        seeder.cancel(next_day, cst(NEXT_DAY, 0, 0, 30))
        repo.flush()
    return SeededLedger(
        rows=tuple(seeder.rows),
        just_before_midnight_id=str(before["settlement_id"]),
        just_after_midnight_id=str(after["settlement_id"]),
        cancelled_same_day_id=str(same_day["settlement_id"]),
        cancelled_next_day_id=str(next_day["settlement_id"]),
    )


def expected_day_rows(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], tuple[int, ...]]:
    """The day's totals computed straight from the seeded rows: (settlements, cancellations, signed sums)."""
    found: dict[tuple[str, str, str], list[int]] = {}
    for row in rows:
        key = (str(row["insured_type"]), str(row["clearing_type"]), str(row["region"]))
        sums = found.setdefault(key, [0, 0, 0, 0, 0, 0])
        sums[0 if row["kind"] == "settlement" else 1] += 1
        sums[2] += row["total_fen"]
        sums[3] += row["fund_paid_fen"]
        sums[4] += row["account_paid_fen"]
        sums[5] += row["cash_fen"]
    return {key: tuple(value) for key, value in sorted(found.items())}
