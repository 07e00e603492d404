"""Contention and retries: many terminals at once never overdraw an account or settle a request twice."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from service_world import DESK, EMPLOYEE, TODAY, charge, open_app, seed, settle_command
from sqlalchemy import func, select

from settlement.domain.ledger import FUNDING, Posting, person_current
from settlement.service.app import SettlementApp
from settlement.service.commands import QuoteCommand, SettleCommand
from settlement.storage import tables as t
from settlement.storage.engine import Engines
from settlement.storage.repository import Repository

TERMINALS = 16
# CI runs a short version; SETTLEMENT_CONTENTION_ROUNDS=1000 runs the full acceptance figure.
ROUNDS = int(os.environ.get("SETTLEMENT_CONTENTION_ROUNDS", "20"))


@pytest.fixture
def app(engines: Engines) -> Iterator[SettlementApp]:
    seed(engines)
    opened = open_app(engines)
    yield opened
    opened.close()


def set_current_balance(engines: Engines, person_number: str, amount_fen: int) -> None:
    """Empty the person's accounts into nothing and fund exactly ``amount_fen`` (through the ledger)."""
    with engines.writer.begin() as connection:
        repo = Repository(connection)
        repo.lock_for_writing([person_number])
        state = repo.account_state(person_number, TODAY.year)
        assert state is not None
        entry = f"test-fund:{uuid.uuid4().hex}"
        postings = [
            Posting(person_current(person_number), FUNDING, state.current_year_fen),
            Posting(f"person:{person_number}:historical", FUNDING, state.historical_fen),
            Posting(FUNDING, person_current(person_number), amount_fen),
        ]
        repo.post(entry, TODAY, [p for p in postings if p.amount_fen])
        repo.add_to_balances(
            person_number,
            current_year_fen=amount_fen - state.current_year_fen,
            historical_fen=-state.historical_fen,
        )
        repo.flush()


def all_at_once(calls: list[Callable[[], object]]) -> list[object]:
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], object]) -> object:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def test_sixteen_terminals_on_an_account_that_covers_one_debit_it_exactly_once_per_round(
    app: SettlementApp, engines: Engines
) -> None:
    for _ in range(ROUNDS):
        # Fund exactly what the next visit takes from the account (the deductible moves every round).
        set_current_balance(engines, EMPLOYEE.number, 10_000_000)
        cost = app.quote(QuoteCommand(DESK, charge())).split.account_paid_fen
        assert cost > 0
        set_current_balance(engines, EMPLOYEE.number, cost)
        commands = [settle_command() for _ in range(TERMINALS)]
        replies = all_at_once([lambda c=c: app.settle(c) for c in commands])
        debits = [r.split.account_paid_fen for r in replies]  # type: ignore[attr-defined]
        assert sorted(debits) == [0] * (TERMINALS - 1) + [cost]
        account = app.get_account(DESK, EMPLOYEE.number)
        assert (account.current_year_fen, account.historical_fen) == (0, 0)


def test_fifty_identical_concurrent_calls_settle_once_and_all_get_the_same_reply(
    app: SettlementApp, engines: Engines
) -> None:
    command: SettleCommand = settle_command()
    replies = all_at_once([lambda: app.settle(command) for _ in range(50)])
    assert all(reply == replies[0] for reply in replies)
    with engines.reader.connect() as connection:
        written = connection.execute(
            select(func.count()).select_from(t.settlements).where(t.settlements.c.request_id == command.request_id)
        ).scalar_one()
    assert written == 1


def test_concurrent_settles_of_different_people_are_all_committed(app: SettlementApp) -> None:
    commands = [settle_command(request=charge(use_account=False)) for _ in range(40)]
    replies = all_at_once([lambda c=c: app.settle(c) for c in commands])
    assert len({r.settlement_id for r in replies}) == 40  # type: ignore[attr-defined]
