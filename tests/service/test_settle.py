"""Settle, quote, cancel and refund against a real store, on SQLite and on PostgreSQL."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from service_world import (
    BLOCKED,
    DESK,
    EMPLOYEE,
    HANGZHOU_EMPLOYEE,
    HIS,
    OTHER_DESK,
    RESIDENT,
    charge,
    item_codes,
    open_app,
    seed,
    settle_command,
    sign,
)
from sqlalchemy import func, select, text

from settlement import errors
from settlement.domain import Category
from settlement.service.app import SettlementApp
from settlement.service.clock import FixedClock
from settlement.service.commands import CancelCommand, RefundCommand
from settlement.service.views import Status
from settlement.storage import tables as t
from settlement.storage.engine import Engines


@pytest.fixture
def app(engines: Engines) -> Iterator[SettlementApp]:
    seed(engines)
    opened = open_app(engines)
    yield opened
    opened.close()


def count(engines: Engines, table: t.Table) -> int:
    with engines.reader.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


def balances(app: SettlementApp, person_number: str) -> tuple[int, int]:
    account = app.get_account(DESK, person_number)
    return account.current_year_fen, account.historical_fen


def ledger_sums_to_zero(engines: Engines) -> bool:
    with engines.reader.connect() as connection:
        ledger = connection.execute(select(func.coalesce(func.sum(t.ledger_accounts.c.balance_fen), 0))).scalar_one()
        persons = connection.execute(
            select(func.coalesce(func.sum(t.accounts.c.current_year_fen + t.accounts.c.historical_fen), 0))
        ).scalar_one()
    return int(ledger) + int(persons) == 0


def test_a_settle_splits_the_charge_debits_the_account_and_balances_the_ledger(
    app: SettlementApp, engines: Engines
) -> None:
    settled = app.settle(settle_command())
    split = settled.split
    assert settled.status is Status.SETTLED
    assert split.total_fen == split.fund_paid_fen + split.account_paid_fen + split.cash_fen
    assert split.total_fen == sum(line.amount_fen for line in split.lines)
    assert balances(app, EMPLOYEE.number) == (split.current_year_after_fen, split.historical_after_fen)
    assert split.balance_after_fen == EMPLOYEE.current_fen + EMPLOYEE.historical_fen - split.account_paid_fen
    assert settled.card_number_masked.endswith(EMPLOYEE.card[-4:])
    assert EMPLOYEE.card not in settled.card_number_masked
    assert ledger_sums_to_zero(engines)


def test_a_segmented_region_pays_from_current_year_then_historical(app: SettlementApp) -> None:
    settled = app.settle(settle_command(request=charge(HANGZHOU_EMPLOYEE)))
    split = settled.split
    assert split.model == "segmented"
    assert (
        split.current_year_paid_fen + split.historical_paid_fen + split.fund_paid_fen + split.cash_fen
        == split.total_fen
    )
    assert balances(app, HANGZHOU_EMPLOYEE.number) == (split.current_year_after_fen, split.historical_after_fen)


def test_the_same_request_id_returns_the_first_reply_and_writes_once(app: SettlementApp, engines: Engines) -> None:
    command = settle_command()
    first = app.settle(command)
    again = app.settle(command)
    assert again == first
    assert count(engines, t.settlements) == 1


def test_the_same_request_id_with_a_changed_charge_is_refused_as_reused(app: SettlementApp, engines: Engines) -> None:
    command = settle_command()
    app.settle(command)
    changed = dataclasses.replace(command, charge=charge(use_account=False), request_hash="")
    with pytest.raises(errors.RequestIdReused) as refused:
        app.settle(changed)
    assert refused.value.reason == "REQUEST_ID_REUSED"
    assert count(engines, t.settlements) == 1


def test_a_refusal_is_repeated_for_its_request_id_even_after_the_card_is_unblocked(
    app: SettlementApp, engines: Engines
) -> None:
    command = settle_command(request=charge(BLOCKED))
    with pytest.raises(errors.CardBlocked):
        app.settle(command)
    with engines.writer.begin() as connection:
        connection.execute(t.cards.update().where(t.cards.c.card_number == BLOCKED.card).values(status="active"))
    with pytest.raises(errors.CardBlocked):
        app.settle(command)
    assert app.settle(settle_command(request=charge(BLOCKED))).status is Status.SETTLED


def test_invalid_input_is_refused_naming_the_line_and_writes_nothing(app: SettlementApp, engines: Engines) -> None:
    bad = charge(lines=((item_codes(EMPLOYEE.region, Category.A)[0], "1", "10"), ("NO-SUCH-CODE", "1", "5")))
    with pytest.raises(errors.UnknownItemCode) as refused:
        app.settle(settle_command(request=bad))
    assert refused.value.metadata["field"] == "lines[1].item_code"
    assert count(engines, t.requests) == 0
    assert count(engines, t.audit_log) == 0


def test_cancelling_restores_balances_and_accumulators_from_the_stored_split(app: SettlementApp) -> None:
    before = app.get_account(DESK, EMPLOYEE.number)
    settled = app.settle(settle_command())
    result = app.cancel(
        CancelCommand(DESK, "0b0e7c8e-52a4-4c59-9a3c-6f2b7f1d2a01", settlement_id=settled.settlement_id)
    )
    assert result.cancellation.status is Status.CANCELLATION
    assert result.cancellation.split.total_fen == -settled.split.total_fen
    assert result.cancelled.status is Status.CANCELLED
    assert result.cancelled.reversed_by_id == result.cancellation.settlement_id
    after = app.get_account(DESK, EMPLOYEE.number)
    assert dataclasses.replace(after, card_number_masked="", card_status="") == dataclasses.replace(
        before, card_number_masked="", card_status=""
    )


def test_cancelling_twice_is_refused_with_already_cancelled(app: SettlementApp) -> None:
    settled = app.settle(settle_command())
    app.cancel(CancelCommand(DESK, "1b0e7c8e-52a4-4c59-9a3c-6f2b7f1d2a01", settlement_id=settled.settlement_id))
    with pytest.raises(errors.AlreadyCancelled):
        app.cancel(CancelCommand(DESK, "2b0e7c8e-52a4-4c59-9a3c-6f2b7f1d2a01", settlement_id=settled.settlement_id))


def test_an_unknown_outcome_is_reversed_by_the_settles_request_id(app: SettlementApp) -> None:
    command = settle_command()
    settled = app.settle(command)
    result = app.cancel(
        CancelCommand(DESK, "3b0e7c8e-52a4-4c59-9a3c-6f2b7f1d2a01", original_request_id=command.request_id)
    )
    assert result.cancelled.settlement_id == settled.settlement_id
    with pytest.raises(errors.SettlementNotFound):
        app.cancel(CancelCommand(DESK, "4b0e7c8e-52a4-4c59-9a3c-6f2b7f1d2a01", original_request_id="never-sent"))


def test_another_hospital_cannot_cancel_or_read_a_settlement(app: SettlementApp) -> None:
    settled = app.settle(settle_command())
    with pytest.raises(errors.OtherHospital):
        app.cancel(
            CancelCommand(OTHER_DESK, "5b0e7c8e-52a4-4c59-9a3c-6f2b7f1d2a01", settlement_id=settled.settlement_id)
        )
    with pytest.raises(errors.OtherHospital):
        app.get_settlement(OTHER_DESK, settlement_id=settled.settlement_id)


def test_refunding_some_lines_cancels_and_settles_the_rest_in_one_step(app: SettlementApp, engines: Engines) -> None:
    settled = app.settle(settle_command())
    result = app.refund(RefundCommand(DESK, "6b0e7c8e-52a4-4c59-9a3c-6f2b7f1d2a01", settled.settlement_id, ("L3",)))
    assert result.replacement is not None
    assert [line.hospital_line_id for line in result.replacement.split.lines] == ["L1", "L2"]
    assert result.replacement.replaces_id == settled.settlement_id
    refunded_line = settled.split.lines[2]
    assert result.replacement.split.total_fen == settled.split.total_fen - refunded_line.amount_fen
    assert balances(app, EMPLOYEE.number) == (
        result.replacement.split.current_year_after_fen,
        result.replacement.split.historical_after_fen,
    )
    again = app.refund(RefundCommand(DESK, "6b0e7c8e-52a4-4c59-9a3c-6f2b7f1d2a01", settled.settlement_id, ("L3",)))
    assert again == result
    assert ledger_sums_to_zero(engines)


def test_refunding_a_free_line_writes_a_replacement_whose_ledger_moves_net_to_nothing(
    app: SettlementApp, engines: Engines
) -> None:
    a, b = item_codes(EMPLOYEE.region, Category.A)[:2]
    settled = app.settle(settle_command(request=charge(EMPLOYEE, lines=((a, "1", "20.00"), (b, "1", "0.00")))))
    result = app.refund(RefundCommand(DESK, "8b0e7c8e-52a4-4c59-9a3c-6f2b7f1d2a01", settled.settlement_id, ("L2",)))
    assert result.replacement is not None
    assert result.replacement.split.total_fen == settled.split.total_fen
    assert balances(app, EMPLOYEE.number) == (
        settled.split.current_year_after_fen,
        settled.split.historical_after_fen,
    )
    assert ledger_sums_to_zero(engines)


def test_refunding_a_line_the_settlement_does_not_have_is_refused(app: SettlementApp) -> None:
    settled = app.settle(settle_command())
    with pytest.raises(errors.LineNotInSettlement) as refused:
        app.refund(RefundCommand(DESK, "7b0e7c8e-52a4-4c59-9a3c-6f2b7f1d2a01", settled.settlement_id, ("L9",)))
    assert refused.value.metadata["hospital_line_id"] == "L9"


def test_a_closed_day_refuses_new_settlements(app: SettlementApp, engines: Engines) -> None:
    with engines.writer.begin() as connection:
        connection.execute(
            t.closed_days.insert(),
            {
                "hospital_id": DESK.hospital_id,
                "business_date": charge().visit_date,
                "closed_at_us": 1,
                "totals": "{}",
                "audit_head": "0" * 64,
            },
        )
    with pytest.raises(errors.DayAlreadyClosed):
        app.settle(settle_command())


def test_a_resident_without_an_account_pays_fund_and_cash_only(app: SettlementApp) -> None:
    settled = app.settle(settle_command(request=charge(RESIDENT)))
    assert settled.split.account_paid_fen == 0
    assert settled.split.fund_paid_fen + settled.split.cash_fen == settled.split.total_fen


def test_a_commit_is_never_started_after_the_deadline(app: SettlementApp, engines: Engines) -> None:
    with pytest.raises(errors.DeadlineTooShort):
        app.settle(settle_command(), deadline=0.0)
    assert count(engines, t.settlements) == 0


def test_listing_gives_a_persons_statement_page_by_page(app: SettlementApp) -> None:
    written = [app.settle(settle_command()).settlement_id for _ in range(5)]
    day = charge().visit_date
    first = app.list_settlements(DESK, first_day=day, last_day=day, person_number=EMPLOYEE.number, page_size=2)
    second = app.list_settlements(
        DESK, first_day=day, last_day=day, person_number=EMPLOYEE.number, page_size=2, page_token=first.next_page_token
    )
    third = app.list_settlements(
        DESK, first_day=day, last_day=day, person_number=EMPLOYEE.number, page_size=2, page_token=second.next_page_token
    )
    listed = [s.settlement_id for page in (first, second, third) for s in page.settlements]
    assert listed == sorted(written)  # one fixed clock: equal settle times, so ties go by id
    assert third.next_page_token == ""
    with pytest.raises(errors.InvalidField):
        app.list_settlements(DESK, first_day=day, last_day=day, page_token=first.next_page_token)


class TestCardProof:
    @pytest.fixture
    def card_app(self, engines: Engines) -> Iterator[SettlementApp]:
        seed(engines, card_proof_required=True)
        opened = open_app(engines)
        yield opened
        opened.close()

    def test_a_desk_settle_without_a_card_proof_is_refused_where_the_hospital_requires_one(
        self, card_app: SettlementApp
    ) -> None:
        with pytest.raises(errors.CardProofRequired):
            card_app.settle(settle_command())
        assert card_app.settle(settle_command(HIS, charge(card=False))).card_present is False

    def test_a_signed_quote_settles_once_and_the_receipt_says_card_present(self, card_app: SettlementApp) -> None:
        request = charge()
        proof = sign(card_app, DESK, request, counter=1)
        settled = card_app.settle(settle_command(request=request, card_proof=proof))
        assert settled.card_present is True
        with pytest.raises(errors.QuoteAlreadyUsed):
            card_app.settle(
                settle_command(request=request, card_proof=dataclasses.replace(proof, transaction_counter=2))
            )

    def test_a_wrong_cryptogram_is_refused(self, card_app: SettlementApp) -> None:
        request = charge()
        proof = sign(card_app, DESK, request, counter=1)
        forged = dataclasses.replace(proof, cryptogram=bytes(8))
        with pytest.raises(errors.CryptogramInvalid):
            card_app.settle(settle_command(request=request, card_proof=forged))

    def test_an_amount_other_than_the_quoted_one_is_refused(self, card_app: SettlementApp) -> None:
        proof = sign(card_app, DESK, charge(), counter=1)
        cheaper = charge(lines=((item_codes(EMPLOYEE.region, Category.A)[0], "1", "1.00"),))
        with pytest.raises(errors.AmountDiffersFromQuote):
            card_app.settle(settle_command(request=cheaper, card_proof=proof))

    def test_an_expired_quote_is_refused(self, card_app: SettlementApp) -> None:
        request = charge()
        proof = sign(card_app, DESK, request, counter=1)
        clock = card_app.context.clock
        assert isinstance(clock, FixedClock)
        clock.advance(601)
        with pytest.raises(errors.QuoteExpired):
            card_app.settle(settle_command(request=request, card_proof=proof))

    def test_a_counter_that_did_not_grow_is_refused(self, card_app: SettlementApp) -> None:
        request = charge()
        card_app.settle(settle_command(request=request, card_proof=sign(card_app, DESK, request, counter=5)))
        with pytest.raises(errors.CounterNotIncreased):
            card_app.settle(settle_command(request=request, card_proof=sign(card_app, DESK, request, counter=5)))


def test_the_database_refuses_a_negative_balance_even_if_the_code_did_not(engines: Engines) -> None:
    seed(engines)
    with pytest.raises(Exception, match=r"(?i)check|constraint"), engines.writer.begin() as connection:
        connection.execute(text("UPDATE accounts SET current_year_fen = -1 WHERE person_number = 'P0001'"))
