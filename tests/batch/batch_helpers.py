"""Helpers for the batch-job tests: enrolment files, a fixed clock, reading balances, booking a settlement.

A module of its own (not conftest) so tests import it by a name no other test directory uses.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy import Boolean, Date, Integer, Numeric, String, Text, func, inspect, select, text

from settlement.domain.ledger import SettlementMoney, settlement_postings
from settlement.identity import with_check_character
from settlement.policy_files import load_policies
from settlement.service.clock import FixedClock, instant_us
from settlement.service.enrolment import ENROLMENT_COLUMNS, EnrolmentImport, import_enrolment
from settlement.storage import tables as t
from settlement.storage.engine import Engines
from settlement.storage.repository import Repository

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
POLICIES = REPOSITORY_ROOT / "policies"
DEMO = REPOSITORY_ROOT / "demo"
REGIONS = frozenset(load_policies(POLICIES))
HANGZHOU, NANJING = "330100", "320100"
KEY = bytes.fromhex("00112233445566778899aabbccddeeff")
ACTOR = "test/batch"
DAY = dt.date(2026, 1, 5)


def clock_on(day: dt.date = DAY) -> FixedClock:
    return FixedClock(instant_us(day))


def citizen_id(n: int, *, region_code: str = "330106", birth: str = "19800101") -> str:
    """A valid, made-up citizen ID: a region code, a birth date and sequence ``n``."""
    return with_check_character(f"{region_code}{birth}{n % 1000:03d}")


@dataclass(frozen=True)
class Person:
    person_number: str
    name: str = "测试人员"
    insured_type: str = "employee"
    region: str = HANGZHOU
    citizen_id: str = ""
    card_number: str = ""
    card_status: str = "active"
    key_reference: str = "test-issuer"
    current_year_fen: str = "0"
    historical_fen: str = "0"

    def cells(self) -> list[str]:
        return [str(getattr(self, column)) for column in ENROLMENT_COLUMNS]


def person(n: int, **changes: Any) -> Person:
    """Person ``n`` with a unique person number, citizen ID and card number."""
    made = Person(
        person_number=f"P{n:06d}",
        citizen_id=citizen_id(n, birth=f"19{60 + n // 1000 % 40:02d}0101"),
        card_number=f"C{n:08d}",
        current_year_fen=str(1000 * (n % 7)),
        historical_fen=str(500 * (n % 5)),
    )
    return replace(made, **changes)


def enrolment_csv(
    people: Iterable[Person], *, encoding: str = "utf-8", header: Sequence[str] = ENROLMENT_COLUMNS
) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for someone in people:
        writer.writerow(someone.cells())
    return out.getvalue().encode(encoding)


def enrol(engines: Engines, data: bytes, *, encoding: str = "utf-8", day: dt.date = DAY) -> EnrolmentImport:
    return import_enrolment(
        engines,
        data,
        source="enrolment.csv",
        encoding=encoding,
        regions=REGIONS,
        key=KEY,
        actor=ACTOR,
        clock=clock_on(day),
        business_date=day,
    )


def balances(engines: Engines) -> dict[str, tuple[int, int]]:
    with engines.reader.connect() as connection:
        rows = connection.execute(select(t.accounts).order_by(t.accounts.c.person_number))
        return {row.person_number: (int(row.current_year_fen), int(row.historical_fen)) for row in rows}


def table_counts(
    engines: Engines, names: Iterable[str] = ("persons", "cards", "accounts", "postings", "runs")
) -> dict[str, int]:
    with engines.reader.connect() as connection:
        return {
            name: int(connection.execute(select(func.count()).select_from(t.metadata.tables[name])).scalar_one())
            for name in names
        }


def execute(engines: Engines, sql: str, parameters: Mapping[str, object] | None = None) -> None:
    """Raw SQL behind the engine's back: how the corruption tests break the ledger."""
    with engines.writer.begin() as connection:
        connection.execute(text(sql), dict(parameters or {}))


def add_hospital(engines: Engines, hospital_id: str = "H1", region: str = HANGZHOU) -> None:
    with engines.writer.begin() as connection:
        repo = Repository(connection)
        repo.insert_hospital(
            hospital_id=hospital_id, name="测试医院", level=2, region=region, card_proof_required=False
        )
        repo.flush()


def book_settlement(
    engines: Engines,
    settlement_id: str,
    *,
    person_number: str,
    hospital_id: str = "H1",
    region: str = HANGZHOU,
    fund_fen: int = 0,
    current_fen: int = 0,
    historical_fen: int = 0,
    cash_fen: int = 0,
    reverses_id: str | None = None,
) -> None:
    """A settlement (or, with ``reverses_id``, a cancellation storing the negated split) as the settle
    service books it: the row, postings between the named accounts, and the person's new balances.

    The row is filled from the columns the migrated database has, so schema additions elsewhere do not
    break these tests; only the columns the ledger check reads carry meaning.
    """
    sign = -1 if reverses_id else 1
    amounts = {
        "fund_paid_fen": sign * fund_fen,
        "current_year_paid_fen": sign * current_fen,
        "historical_paid_fen": sign * historical_fen,
        "cash_fen": sign * cash_fen,
        "account_paid_fen": sign * (current_fen + historical_fen),
        "total_fen": sign * (fund_fen + current_fen + historical_fen + cash_fen),
    }
    with engines.writer.begin() as connection:
        row: dict[str, object] = {}
        for column in inspect(connection).get_columns("settlements"):
            if not column["nullable"]:
                row[column["name"]] = _filler(column["type"])
        row.update(
            amounts,
            settlement_id=settlement_id,
            request_id=f"R-{settlement_id}",
            hospital_id=hospital_id,
            person_number=person_number,
            region=region,
            kind="cancellation" if reverses_id else "settlement",
            reverses_id=reverses_id,
            business_date=DAY,
            visit_date=DAY,
            accumulator_year=DAY.year,
        )
        connection.execute(t.settlements.insert().values(**{k: v for k, v in row.items() if k in t.settlements.c}))
        postings = settlement_postings(
            SettlementMoney(person_number, region, hospital_id, fund_fen, current_fen, historical_fen, cash_fen)
        )
        repo = Repository(connection)
        repo.post(settlement_id, DAY, [p.reversed() for p in postings] if reverses_id else postings)
        repo.add_to_balances(person_number, current_year_fen=-sign * current_fen, historical_fen=-sign * historical_fen)
        repo.flush()


def _filler(column_type: Any) -> object:
    if isinstance(column_type, Boolean):
        return False
    if isinstance(column_type, Date):
        return DAY
    if isinstance(column_type, (Integer, Numeric)):
        return 0
    if isinstance(column_type, (String, Text)):
        return "x"
    return None
