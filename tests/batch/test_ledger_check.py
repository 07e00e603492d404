"""The ledger check passes on a sound ledger and names exactly what raw-SQL corruption broke."""

from __future__ import annotations

import datetime as dt

import pytest
from batch_helpers import (
    ACTOR,
    HANGZHOU,
    add_hospital,
    book_settlement,
    clock_on,
    enrol,
    enrolment_csv,
    execute,
    person,
)
from sqlalchemy import select

from settlement.service.annual import roll_over
from settlement.service.ledger_check import MAX_PROBLEMS_PER_CHECK, LedgerReport, check_ledger
from settlement.storage import tables as t
from settlement.storage.engine import Engines

RECEIVABLE = "hospital:H1:receivable"


def check(engines: Engines) -> LedgerReport:
    with engines.reader.connect() as connection, connection.begin():
        return check_ledger(connection)


@pytest.fixture
def booked(engines: Engines) -> Engines:
    """Three persons, a hospital, two settlements (one cancelled) and a rollover: every kind of entry."""
    enrol(engines, enrolment_csv([person(1, current_year_fen="5000", historical_fen="9000"), person(2), person(3)]))
    add_hospital(engines)
    book_settlement(
        engines, "S1", person_number="P000001", fund_fen=700, current_fen=200, historical_fen=50, cash_fen=30
    )
    book_settlement(engines, "S2", person_number="P000001", fund_fen=100, current_fen=400, cash_fen=5)
    book_settlement(engines, "S3", person_number="P000001", fund_fen=100, current_fen=400, cash_fen=5, reverses_id="S2")
    roll_over(engines, year=2026, actor=ACTOR, clock=clock_on(), business_date=dt.date(2026, 12, 31))
    return engines


def test_a_sound_ledger_passes_with_its_counts_and_the_money_funded(booked: Engines) -> None:
    report = check(booked)

    assert report.ok, report.problems
    # Two per person, and funding, the fund pool, patient cash, the hospital's receivable and till.
    assert (report.settlements, report.accounts) == (3, 3 * 2 + 5)
    assert report.funded_fen == 5000 + 9000 + sum(1000 * (n % 7) + 500 * (n % 5) for n in (2, 3))
    assert report.postings > 0
    assert report.audit_rows > 0
    assert "accounts" in report.summary()
    assert "yuan funded" in report.summary()


def test_a_balance_off_by_one_fen_names_the_account_with_stored_and_posted_amounts(booked: Engines) -> None:
    execute(booked, "UPDATE ledger_accounts SET balance_fen = balance_fen + 1 WHERE name = :name", {"name": RECEIVABLE})

    problems = check(booked).problems

    assert f"account {RECEIVABLE}: stored balance 951 fen, its postings net 950 fen (off by 1)" in problems
    assert any(problem.startswith("trial balance: stored balances sum to 1 fen") for problem in problems)


def test_a_personal_balance_changed_behind_the_ledger_is_named(booked: Engines) -> None:
    execute(booked, "UPDATE accounts SET historical_fen = historical_fen - 1 WHERE person_number = 'P000001'")

    problems = check(booked).problems

    assert any(
        p.startswith("account person:P000001:historical: stored balance") and "(off by -1)" in p for p in problems
    )


def test_a_deleted_posting_is_named_by_its_entry_its_accounts_and_its_settlement(booked: Engines) -> None:
    execute(booked, "DELETE FROM postings WHERE settlement_id = 'S1' AND sequence = 1")  # current-year part

    problems = check(booked).problems

    assert "entry S1: postings numbered 0..3 but 3 present (one is missing)" in problems
    assert (
        f"settlement S1: its split moves 200 fen from person:P000001:current to {RECEIVABLE}, its postings move 0 fen"
        in problems
    )
    assert any(p.startswith("account person:P000001:current: stored balance") for p in problems)


def test_a_posting_whose_amount_was_changed_disagrees_with_its_settlement(booked: Engines) -> None:
    execute(
        booked, "UPDATE postings SET amount_fen = 31 WHERE settlement_id = 'S1' AND source = 'external:patient-cash'"
    )

    problems = check(booked).problems

    assert (
        "settlement S1: its split moves 30 fen from external:patient-cash to hospital:H1:cash, its postings move 31 fen"
        in problems
    )


def test_a_cancellation_that_does_not_negate_its_settlement_is_named(booked: Engines) -> None:
    execute(booked, "UPDATE settlements SET total_fen = -504 WHERE settlement_id = 'S3'")

    problems = check(booked).problems

    assert "cancellation S3 does not negate the split of settlement S2" in problems
    assert "settlement S3: total -504 fen but fund + accounts + cash = -505 fen" in problems


def test_an_internal_account_allowed_to_go_negative_is_named(booked: Engines) -> None:
    execute(
        booked,
        "UPDATE ledger_accounts SET may_go_negative = :yes WHERE name = :name",
        {"yes": True, "name": RECEIVABLE},
    )

    assert f"account {RECEIVABLE}: internal, but flagged as allowed to go negative" in check(booked).problems


def test_a_flipped_byte_in_an_audit_row_names_its_sequence(booked: Engines) -> None:
    with booked.reader.connect() as connection:
        _sequence, actor = connection.execute(
            select(t.audit_log.c.sequence, t.audit_log.c.actor).where(t.audit_log.c.sequence == 3)
        ).one()
    flipped = chr(ord(actor[0]) ^ 1) + actor[1:]
    execute(booked, "UPDATE audit_log SET actor = :actor WHERE sequence = 3", {"actor": flipped})

    assert check(booked).problems == ["audit sequence 3: altered (its hash does not match its content)"]


def test_a_rewritten_audit_hash_breaks_the_link_to_the_next_row(booked: Engines) -> None:
    execute(booked, "UPDATE audit_log SET row_hash = :fake WHERE sequence = 2", {"fake": "f" * 64})

    assert check(booked).problems == [
        "audit sequence 2: altered (its hash does not match its content)",
        "audit sequence 3: previous_hash does not match the row before it",
    ]


def test_a_deleted_audit_row_names_the_gap(booked: Engines) -> None:
    execute(booked, "DELETE FROM audit_log WHERE sequence = 4")

    assert check(booked).problems == [
        "audit sequence 5: rows 4..4 are missing",
        "audit sequence 5: previous_hash does not match the row before it",
    ]


def test_a_closed_days_audit_head_cut_from_the_log_is_named(booked: Engines) -> None:
    with booked.reader.connect() as connection:
        last, head = connection.execute(
            select(t.audit_log.c.sequence, t.audit_log.c.row_hash).order_by(t.audit_log.c.sequence.desc()).limit(1)
        ).one()
    with booked.writer.begin() as connection:
        connection.execute(
            t.closed_days.insert(),
            {
                "hospital_id": "H1",
                "business_date": dt.date(2026, 1, 5),
                "closed_at_us": 1,
                "totals": "{}",
                "audit_head": head,
            },
        )
    assert check(booked).ok
    execute(booked, "DELETE FROM audit_log WHERE sequence = :last", {"last": last})

    assert check(booked).problems == ["closed day H1 2026-01-05: its audit head is no longer in the audit log"]


def test_many_broken_accounts_are_reported_up_to_a_limit(engines: Engines) -> None:
    enrol(engines, enrolment_csv([person(n, region=HANGZHOU) for n in range(1, MAX_PROBLEMS_PER_CHECK + 10)]))
    execute(engines, "UPDATE accounts SET current_year_fen = current_year_fen + 1")

    problems = check(engines).problems

    off = [p for p in problems if p.startswith("account person:")]
    assert len(off) == MAX_PROBLEMS_PER_CHECK
    assert any(p.startswith("... and more of the kind above") for p in problems)
