"""Issue 7: "Closing a day twice is idempotent; writing into a closed day is refused" — on a day booked by
the real settle path, closed by the real close-day, and refused by the real settle, cancel, refund and
2601 reversal (``DAY_ALREADY_CLOSED``, with nothing written but the refusal's idempotency record)."""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
import time
import uuid
from collections.abc import Callable

import pytest
from finance_acceptance_world import (
    ACTOR,
    CALLER_OF,
    FIRST_DAY,
    PERSONS,
    FinanceWorld,
    booked_sums_in_db,
    random_charge,
)
from service_world import EMPLOYEE, HOSPITAL, OTHER_HOSPITAL
from sqlalchemy import Table, func, select

from settlement import errors
from settlement.cli import EXIT_OK
from settlement.service.clock import FixedClock, instant_us
from settlement.service.commands import CancelCommand, RefundCommand, SettleCommand
from settlement.service.daily_close import close_day
from settlement.service.daily_ledger import read_daily_ledger
from settlement.storage import tables as t
from settlement.storage.engine import Engines
from settlement.storage.repository import Repository

NEXT_DAY = FIRST_DAY + dt.timedelta(days=1)
# One settle every this often while the day is being closed. A check of the day takes a fraction of a
# second; under a much faster stream every check finds the day changed and the close asks to be run again
# (a day is normally closed after it ended, when nothing can land on it any more).
SETTLE_PACE_S = 0.25


def book_a_day(world: FinanceWorld, rng: random.Random, *, per_hospital: int = 6) -> None:
    world.at(FIRST_DAY, hour=9)
    for number in range(per_hospital):
        for hospital_id in (HOSPITAL, OTHER_HOSPITAL):
            world.settle(hospital_id, PERSONS[number % len(PERSONS)], rng, day=FIRST_DAY)
    first_of_hospital = world.settlements_of(HOSPITAL, FIRST_DAY)[0].view.settlement_id
    world.cancel(first_of_hospital)  # a same-day cancellation nets to zero in the day's totals


def ledger_state(engines: Engines) -> dict[str, object]:
    """Everything a write would change: entries, their lines, postings, ledger and person balances, accumulators."""
    with engines.reader.connect() as connection:

        def count(table: Table) -> int:
            return int(connection.execute(select(func.count()).select_from(table)).scalar_one())

        balances = connection.execute(
            select(t.accounts.c.person_number, t.accounts.c.current_year_fen, t.accounts.c.historical_fen).order_by(
                t.accounts.c.person_number
            )
        ).all()
        ledger = connection.execute(
            select(t.ledger_accounts.c.name, t.ledger_accounts.c.balance_fen).order_by(t.ledger_accounts.c.name)
        ).all()
        accumulators = connection.execute(
            select(t.accumulators).order_by(t.accumulators.c.person_number, t.accumulators.c.year)
        ).all()
        return {
            "settlements": count(t.settlements),
            "settlement_lines": count(t.settlement_lines),
            "postings": count(t.postings),
            "closed_days": count(t.closed_days),
            "balances": [tuple(row) for row in balances],
            "ledger": [tuple(row) for row in ledger],
            "accumulators": [tuple(row) for row in accumulators],
        }


def refusal_recorded(engines: Engines, hospital_id: str, request_id: str) -> str:
    with engines.reader.connect() as connection:
        found = Repository(connection).request(hospital_id, request_id)
    assert found is not None, f"no record of request {request_id}"
    assert found["settlement_id"] is None
    return str(json.loads(str(found["refusal"]))["reason"])


def test_closing_a_day_booked_by_the_settle_path_twice_returns_the_same_close_and_the_cli_says_so(
    world: FinanceWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    book_a_day(world, random.Random(1))
    world.at(NEXT_DAY, hour=1)

    first = close_day(world.engines, HOSPITAL, FIRST_DAY, ACTOR, clock=world.clock)
    before = ledger_state(world.engines)
    world.clock.advance(3600)
    second = close_day(world.engines, HOSPITAL, FIRST_DAY, "cli/another-clerk", clock=world.clock)
    assert world.close_day(HOSPITAL, FIRST_DAY) == EXIT_OK  # the command line, a third time

    assert first.closed_day is not None
    assert (first.already_closed, second.already_closed) == (False, True)
    assert second.closed_day == first.closed_day
    assert ledger_state(world.engines) == before  # a repeat writes only its audit row
    assert "already closed; stored totals unchanged" in capsys.readouterr().out
    settlements, cancellations, *sums = booked_sums_in_db(world.engines, HOSPITAL, FIRST_DAY)
    total = first.closed_day.total
    assert (total.settlement_count, total.cancellation_count) == (settlements, cancellations) == (6, 1)
    assert [total.total_fen, total.fund_paid_fen, total.account_paid_fen, total.cash_fen] == sums


def test_every_write_into_a_closed_day_is_refused_and_writes_nothing(world: FinanceWorld) -> None:
    rng = random.Random(2)
    book_a_day(world, rng)
    world.at(FIRST_DAY, hour=18)  # still the same CST day: finance closes it early
    assert close_day(world.engines, HOSPITAL, FIRST_DAY, ACTOR, clock=world.clock).closed
    standing = world.settlements_of(HOSPITAL, FIRST_DAY)[1].view
    caller = CALLER_OF[HOSPITAL]
    before = ledger_state(world.engines)

    settle_id, cancel_id, reversal_id, refund_id = (str(uuid.uuid4()) for _ in range(4))
    new_settle = SettleCommand(caller, settle_id, charge=random_charge(EMPLOYEE, rng, FIRST_DAY))
    attempts: list[tuple[str, Callable[[], object]]] = [
        (
            settle_id,
            lambda: world.app.settle(new_settle),
        ),
        (cancel_id, lambda: world.app.cancel(CancelCommand(caller, cancel_id, settlement_id=standing.settlement_id))),
        (
            reversal_id,  # 2601: reversal of an outcome the terminal never learned, by the settle's request id
            lambda: world.app.cancel(CancelCommand(caller, reversal_id, original_request_id=standing.request_id)),
        ),
        (
            refund_id,
            lambda: world.app.refund(
                RefundCommand(caller, refund_id, standing.settlement_id, (standing.split.lines[0].hospital_line_id,))
            ),
        ),
    ]
    for request_id, attempt in attempts:
        with pytest.raises(errors.DayAlreadyClosed) as refused:
            attempt()
        assert refused.value.reason == "DAY_ALREADY_CLOSED"
        assert refusal_recorded(world.engines, HOSPITAL, request_id) == "DAY_ALREADY_CLOSED"
        with pytest.raises(errors.DayAlreadyClosed):  # a retry of the same request gets the same refusal
            attempt()

    # A retry of a settle committed before the close is no new write: it still gets its settlement.
    booked = world.booked[standing.settlement_id]
    assert world.app.settle(booked.command) == booked.view
    assert ledger_state(world.engines) == before


def test_the_other_hospital_still_books_on_that_day_and_the_next_day_takes_the_correction(
    world: FinanceWorld,
) -> None:
    rng = random.Random(3)
    book_a_day(world, rng)
    world.at(FIRST_DAY, hour=18)
    closed = close_day(world.engines, HOSPITAL, FIRST_DAY, ACTOR, clock=world.clock).closed_day
    assert closed is not None
    standing = world.settlements_of(HOSPITAL, FIRST_DAY)[1].view

    other = world.settle(OTHER_HOSPITAL, EMPLOYEE, rng, day=FIRST_DAY)  # its day is still open
    assert other.business_date == FIRST_DAY
    world.at(NEXT_DAY, hour=9)
    correction = world.cancel(standing.settlement_id)  # the correction is a new entry on a later day

    assert correction.cancellation.business_date == NEXT_DAY
    with world.engines.reader.connect() as connection:
        closed_view = read_daily_ledger(connection, HOSPITAL, FIRST_DAY)
        next_view = read_daily_ledger(connection, HOSPITAL, NEXT_DAY)
    assert closed_view.closed
    assert closed_view.rows == closed.rows  # the closed day did not move
    assert next_view.total.cancellation_count == 1
    assert next_view.total.total_fen == -standing.split.total_fen
    again = close_day(world.engines, HOSPITAL, FIRST_DAY, ACTOR, clock=world.clock)
    assert again.already_closed
    assert again.closed_day == closed


def test_settles_racing_the_close_are_either_in_its_totals_or_refused(world: FinanceWorld) -> None:
    """Settles keep arriving from another thread while finance closes the same day: none slips in after.

    A close that finds the day changed under it checks again (and gives up after a few rounds, asking to
    be run again); whichever close succeeds, the settles after it are refused and the ones before it are
    in its totals.
    """
    rng = random.Random(4)
    book_a_day(world, rng, per_hospital=3)
    world.at(FIRST_DAY, hour=20)
    refused: list[str] = []
    settled: list[str] = []
    stop = threading.Event()
    charges = [random_charge(EMPLOYEE, rng, FIRST_DAY) for _ in range(300)]

    def keep_settling() -> None:
        for charge in charges:
            if stop.is_set() or len(refused) >= 3:
                return
            try:
                view = world.app.settle(SettleCommand(CALLER_OF[HOSPITAL], str(uuid.uuid4()), charge=charge))
            except errors.DayAlreadyClosed:
                refused.append("DAY_ALREADY_CLOSED")
            else:
                settled.append(view.settlement_id)
            time.sleep(SETTLE_PACE_S)

    settler = threading.Thread(target=keep_settling)
    settler.start()
    closing_clock = FixedClock(instant_us(FIRST_DAY, 21))
    try:
        while not settled:  # let the stream start before the close
            time.sleep(0.01)
        for _ in range(20):
            result = close_day(world.engines, HOSPITAL, FIRST_DAY, ACTOR, clock=closing_clock)
            if result.closed:
                break
            assert result.problems == ("the day kept changing during 3 checks; close it again",)
        landed_while_closing = len(settled)
        deadline = time.monotonic() + 10
        while not refused and settler.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)  # the stream goes on after the close: its next settle must be refused
    finally:
        stop.set()
        settler.join(timeout=60)
    assert not settler.is_alive()

    assert result.closed_day is not None
    settlements, cancellations, total_fen, fund_fen, account_fen, cash_fen = booked_sums_in_db(
        world.engines, HOSPITAL, FIRST_DAY
    )
    total = result.closed_day.total
    assert total.settlement_count == settlements == 3 + len(settled)
    assert (total.total_fen, total.fund_paid_fen, total.account_paid_fen, total.cash_fen) == (
        total_fen,
        fund_fen,
        account_fen,
        cash_fen,
    )
    assert cancellations == 1
    assert landed_while_closing >= 1
    assert refused  # the stream met the closed day, and what it was refused is not in the ledger
