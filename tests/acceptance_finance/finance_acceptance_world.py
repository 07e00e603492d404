"""A finance world on the real settle path: the seeded engine, a movable clock, and what the HIS saw.

Every entry is booked by ``SettlementApp`` (the service the gRPC server and the HIS adapters call). The
world also keeps, independently of the engine's finance code, what a hospital's own system would have
recorded from the engine's answers: each settlement as answered, and the day each was cancelled. The
HIS export and the insurer's file of a test are derived from that record, never from the code under
test, so a reconciliation that agrees with them agrees with what the engine told its callers.

A unique module name (not ``conftest``) so it cannot clash with other test folders' helpers.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import io
import random
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from service_world import (
    EMPLOYEE,
    HANGZHOU_EMPLOYEE,
    HIS,
    HOSPITAL,
    OTHER_DESK,
    OTHER_HOSPITAL,
    RESIDENT,
    TODAY,
    Person,
    item_codes,
    open_app,
    seed,
)
from sqlalchemy import and_, func, select

from settlement.cli import main
from settlement.domain import Category, VisitType
from settlement.reconciliation import SettlementStatus
from settlement.reconciliation.report_common import FIELD_LABELS
from settlement.reconciliation.sample import SampleLine
from settlement.service.app import SettlementApp
from settlement.service.clock import FixedClock, instant_us
from settlement.service.commands import CancelCommand, ChargeRequest, SettleCommand, requested_line
from settlement.service.replies import CancelResult
from settlement.service.views import SettlementView
from settlement.storage import tables as t
from settlement.storage.engine import Engines

FIRST_DAY = TODAY  # 2026-03-02: inside the sample policies' validity, long past on any machine running this
PERSONS = (EMPLOYEE, RESIDENT, HANGZHOU_EMPLOYEE)  # Nanjing (320100) and Hangzhou (330100): two payers
CALLER_OF = {HOSPITAL: HIS, OTHER_HOSPITAL: OTHER_DESK}  # an HIS adapter, and a desk not asked for card proofs
ACTOR = "cli/finance-acceptance"
CONCURRENT_CALLERS = 8
AMOUNT_COLUMNS = ("total_fen", "fund_paid_fen", "account_paid_fen", "cash_fen")
LABEL_FIELDS = {label: name for name, label in FIELD_LABELS.items()}  # report text -> our field name


@dataclass
class Booked:
    """One settlement as the engine answered it (and the command that asked), and the CST day a
    cancellation of it was booked."""

    command: SettleCommand
    view: SettlementView
    cancelled_on: dt.date | None = None

    def status_at_end_of(self, day: dt.date) -> SettlementStatus:
        if self.cancelled_on is not None and self.cancelled_on <= day:
            return SettlementStatus.CANCELLED
        return SettlementStatus.SETTLED


@dataclass
class FinanceWorld:
    engines: Engines
    app: SettlementApp
    clock: FixedClock
    booked: dict[str, Booked] = field(default_factory=dict)
    cancellations: list[SettlementView] = field(default_factory=list)

    # ---- time ------------------------------------------------------------------------------------

    def at(self, day: dt.date, hour: int = 8) -> None:
        """Stand the engine's clock on ``day`` at ``hour`` CST."""
        self.clock.current_us = instant_us(day, hour)

    # ---- writes, all through the application service -------------------------------------------------

    def settle(self, hospital_id: str, person: Person, rng: random.Random, *, day: dt.date) -> SettlementView:
        caller = CALLER_OF[hospital_id]
        command = SettleCommand(caller=caller, request_id=str(uuid.uuid4()), charge=random_charge(person, rng, day))
        view = self.app.settle(command)
        self.booked[view.settlement_id] = Booked(command, view)
        self.clock.advance(rng.randint(5, 90))
        return view

    def settle_many(self, hospital_id: str, charges: list[ChargeRequest]) -> list[SettlementView]:
        """Settle from several callers at once, as a busy hospital does (the writer commits them in groups)."""
        caller = CALLER_OF[hospital_id]
        commands = [SettleCommand(caller=caller, request_id=str(uuid.uuid4()), charge=charge) for charge in charges]
        with ThreadPoolExecutor(max_workers=CONCURRENT_CALLERS) as pool:
            views = list(pool.map(self.app.settle, commands))
        for command, view in zip(commands, views, strict=True):
            self.booked[view.settlement_id] = Booked(command, view)
        return views

    def cancel(self, settlement_id: str) -> CancelResult:
        booked = self.booked[settlement_id]
        caller = CALLER_OF[booked.view.hospital_id]
        result = self.app.cancel(CancelCommand(caller, str(uuid.uuid4()), settlement_id=settlement_id))
        booked.cancelled_on = result.cancellation.business_date
        self.cancellations.append(result.cancellation)
        self.clock.advance(30)
        return result

    # ---- what the hospital's own system recorded ------------------------------------------------

    def settlements_of(self, hospital_id: str, day: dt.date) -> list[Booked]:
        found = [b for b in self.booked.values() if b.view.hospital_id == hospital_id and b.view.business_date == day]
        return sorted(found, key=lambda booked: booked.view.settlement_id)

    def agreeing_lines(self, hospital_id: str, day: dt.date) -> list[SampleLine]:
        """The day as an HIS (and an insurer) that fully agree with the engine's answers would list it."""
        return [
            SampleLine(
                settlement_id=b.view.settlement_id,
                request_id=b.view.request_id,
                visit_id="V" + b.view.settlement_id,
                person_number=b.view.person_number,
                status=b.status_at_end_of(day),
                total_fen=b.view.split.total_fen,
                fund_paid_fen=b.view.split.fund_paid_fen,
                account_paid_fen=b.view.split.account_paid_fen,
                cash_fen=b.view.split.cash_fen,
            )
            for b in self.settlements_of(hospital_id, day)
        ]

    # ---- the finance command line, in-process -----------------------------------------------------

    def close_day(self, hospital_id: str, day: dt.date) -> int:
        return main(["close-day", "--hospital", hospital_id, "--date", day.isoformat(), "--database", self.engines.url])

    def reconcile(self, hospital_id: str, day: dt.date, his: Path, insurer: Path | None, out: Path) -> int:
        argv = ["reconcile", "--hospital", hospital_id, "--date", day.isoformat(), "--his", str(his)]
        argv += ["--insurer", str(insurer)] if insurer is not None else []
        return main([*argv, "--out", str(out), "--database", self.engines.url])


@contextmanager
def open_world(engines: Engines) -> Iterator[FinanceWorld]:
    seed(engines)
    clock = FixedClock(instant_us(FIRST_DAY, hour=8))
    app = open_app(engines, clock)
    try:
        yield FinanceWorld(engines, app, clock)
    finally:
        app.close()


@functools.cache
def _items_of(region: str) -> tuple[tuple[Category, str], ...]:
    """Three items of each class from the region's catalogue (loading the policies is slow: once)."""
    return tuple((category, code) for category in Category for code in item_codes(region, category)[:3])


def random_charge(person: Person, rng: random.Random, day: dt.date) -> ChargeRequest:
    """One to three lines of class A, B or C items at prices around their ceilings; outpatient or emergency."""
    choices = list(_items_of(person.region))
    picked = rng.sample(choices, rng.randint(1, 3))
    lines = tuple(
        requested_line(
            index=index,
            item_code=code,
            quantity=str(rng.randint(1, 3)),
            unit_price=f"{rng.randint(100, 6_000) / 100:.2f}",
            line_id=f"L{index + 1}",
        )
        for index, (_category, code) in enumerate(picked)
    )
    return ChargeRequest(
        person_number=person.number,
        insured_type=None,
        visit_type=rng.choice((VisitType.OUTPATIENT, VisitType.OUTPATIENT, VisitType.EMERGENCY)),
        visit_date=day,
        use_account=rng.random() < 0.8,
        lines=lines,
        card_number="",
    )


# ---- the ledger read straight from its tables (independent of the finance code under test) --------------


def settled_sums_in_db(
    engines: Engines, hospital_id: str, day: dt.date, region: str | None = None
) -> tuple[int, int, int, int, int]:
    """Count and sums of the day's settlements not cancelled by the end of the day."""
    s, c = t.settlements, t.settlements.alias("c")
    cancelled = select(c.c.settlement_id).where(and_(c.c.reverses_id == s.c.settlement_id, c.c.business_date <= day))
    conditions = [s.c.hospital_id == hospital_id, s.c.business_date == day, s.c.kind == "settlement"]
    if region is not None:
        conditions.append(s.c.region == region)
    statement = select(
        func.count(),
        *(func.coalesce(func.sum(s.c[name]), 0) for name in AMOUNT_COLUMNS),
    ).where(and_(*conditions, ~cancelled.exists()))
    with engines.reader.connect() as connection:
        count, total, fund, account, cash = (int(value) for value in connection.execute(statement).one())
    return count, total, fund, account, cash


def booked_sums_in_db(engines: Engines, hospital_id: str, day: dt.date) -> tuple[int, int, int, int, int, int]:
    """Settlements, cancellations and the signed sums of every entry booked on the day (close-day's view)."""
    s = t.settlements
    statement = select(
        func.count().filter(s.c.kind == "settlement"),
        func.count().filter(s.c.kind == "cancellation"),
        *(func.coalesce(func.sum(s.c[name]), 0) for name in AMOUNT_COLUMNS),
    ).where(and_(s.c.hospital_id == hospital_id, s.c.business_date == day))
    with engines.reader.connect() as connection:
        settlements, cancellations, total, fund, account, cash = (
            int(value) for value in connection.execute(statement).one()
        )
    return settlements, cancellations, total, fund, account, cash


def fen_of_cell(value: object) -> int:
    """A workbook cell's yuan number back to fen, exactly (the float's shortest repr is what was written)."""
    assert isinstance(value, (int, float)), value
    exact = Decimal(repr(value)) * 100
    assert exact == exact.to_integral_value(), f"{value!r} is not a whole number of fen"
    return int(exact)


def report_rows(out: Path, hospital_id: str, day: dt.date) -> list[dict[str, str]]:
    """The discrepancy CSV the reconcile command wrote (UTF-8 with a BOM)."""
    text = (out / f"reconciliation-{hospital_id}-{day.isoformat()}.csv").read_text("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))
