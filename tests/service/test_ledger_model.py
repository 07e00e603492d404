"""A randomized sequence of settles, cancels and refunds against a simple in-memory model of balances.

After every step the store agrees with the model, no balance is negative and the ledger's trial balance
is zero (every account's balance sums with all the others to nothing).
"""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
from service_world import DESK, EMPLOYEE, HANGZHOU_EMPLOYEE, RESIDENT, charge, item_codes, open_app, seed
from sqlalchemy import func, select

from settlement import errors
from settlement.domain import Category
from settlement.service.app import SettlementApp
from settlement.service.commands import CancelCommand, RefundCommand, SettleCommand
from settlement.service.views import SettlementView
from settlement.storage import tables as t
from settlement.storage.engine import Engines

PEOPLE = (EMPLOYEE, HANGZHOU_EMPLOYEE, RESIDENT)


def visit_lines(region: str, picks: list[int]) -> tuple[tuple[str, str, str], ...]:
    codes = item_codes(region, Category.A)[:2] + item_codes(region, Category.B)[:2] + item_codes(region, Category.C)[:1]
    return tuple((codes[p % len(codes)], str(1 + p % 3), f"{5 + p * 7}.{p % 100:02d}") for p in picks)


class LedgerMachine(RuleBasedStateMachine):
    app: SettlementApp
    engines: Engines

    def __init__(self) -> None:
        super().__init__()
        self.balances = {p.number: self._stored(p.number) for p in PEOPLE}
        self.open: list[SettlementView] = []

    def _stored(self, person_number: str) -> tuple[int, int]:
        account = self.app.get_account(DESK, person_number)
        return account.current_year_fen, account.historical_fen

    def _apply(self, person_number: str, current_change: int, historical_change: int) -> None:
        current, historical = self.balances[person_number]
        self.balances[person_number] = (current + current_change, historical + historical_change)

    @rule(who=st.sampled_from(PEOPLE), picks=st.lists(st.integers(0, 20), min_size=1, max_size=4), pay=st.booleans())
    def settle(self, who: object, picks: list[int], pay: bool) -> None:
        person = who  # a service_world.Person
        request = charge(person, lines=visit_lines(person.region, picks), use_account=pay)  # type: ignore[attr-defined]
        settled = self.app.settle(SettleCommand(DESK, str(uuid.uuid4()), request))
        split = settled.split
        self._apply(settled.person_number, -split.current_year_paid_fen, -split.historical_paid_fen)
        assert (split.current_year_after_fen, split.historical_after_fen) == self.balances[settled.person_number]
        self.open.append(settled)

    @precondition(lambda self: self.open)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        original = self.open.pop(data.draw(st.integers(0, len(self.open) - 1)))
        result = self.app.cancel(CancelCommand(DESK, str(uuid.uuid4()), settlement_id=original.settlement_id))
        self._apply(original.person_number, original.split.current_year_paid_fen, original.split.historical_paid_fen)
        after = result.cancellation.split
        assert (after.current_year_after_fen, after.historical_after_fen) == self.balances[original.person_number]
        with pytest.raises(errors.AlreadyCancelled):
            self.app.cancel(CancelCommand(DESK, str(uuid.uuid4()), settlement_id=original.settlement_id))

    @precondition(lambda self: self.open)
    @rule(data=st.data())
    def refund(self, data: st.DataObject) -> None:
        original = self.open.pop(data.draw(st.integers(0, len(self.open) - 1)))
        ids = [line.hospital_line_id for line in original.split.lines]
        refunded = data.draw(st.lists(st.sampled_from(ids), min_size=1, max_size=len(ids), unique=True))
        result = self.app.refund(RefundCommand(DESK, str(uuid.uuid4()), original.settlement_id, tuple(refunded)))
        self._apply(original.person_number, original.split.current_year_paid_fen, original.split.historical_paid_fen)
        if result.replacement is not None:
            split = result.replacement.split
            self._apply(original.person_number, -split.current_year_paid_fen, -split.historical_paid_fen)
            assert (split.current_year_after_fen, split.historical_after_fen) == self.balances[original.person_number]
            self.open.append(result.replacement)

    @invariant()
    def the_store_agrees_with_the_model_and_the_ledger_balances(self) -> None:
        for person_number, expected in self.balances.items():
            assert self._stored(person_number) == expected
            assert min(expected) >= 0
        with self.engines.reader.connect() as connection:
            ledger = connection.execute(select(func.coalesce(func.sum(t.ledger_accounts.c.balance_fen), 0))).scalar()
            persons = connection.execute(
                select(func.coalesce(func.sum(t.accounts.c.current_year_fen + t.accounts.c.historical_fen), 0))
            ).scalar()
        assert int(ledger or 0) + int(persons or 0) == 0


def test_random_settles_cancels_and_refunds_keep_the_ledger_balanced(engines: Engines) -> None:
    seed(engines)
    app = open_app(engines)
    LedgerMachine.app = app
    LedgerMachine.engines = engines
    try:
        run_state_machine_as_test(
            LedgerMachine,
            settings=settings(
                max_examples=12, stateful_step_count=12, deadline=None, suppress_health_check=list(HealthCheck)
            ),
        )
    finally:
        app.close()
