"""Annual funding and the year-end rollover: each once, in chunks, resumable after a crash mid-way."""

from __future__ import annotations

import datetime as dt

import pytest
from batch_helpers import (
    ACTOR,
    HANGZHOU,
    NANJING,
    REGIONS,
    balances,
    clock_on,
    enrol,
    enrolment_csv,
    person,
    table_counts,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from settlement.errors import InvalidInput, RefusedByState, RequestIdReused
from settlement.service.annual import AfterChunk, JobOutcome, fund_accounts, roll_over
from settlement.service.ledger_check import check_ledger
from settlement.storage import tables as t
from settlement.storage.engine import Engines


class Crash(Exception):
    """Stands in for the process dying between two chunks."""


def fund(engines: Engines, *, year: int = 2025, amount_fen: int = 50_000, **options: object) -> JobOutcome:
    arguments: dict[str, object] = {"region": HANGZHOU, "insured_type": "employee", **options}
    return fund_accounts(
        engines,
        year=year,
        amount_fen=amount_fen,
        regions=REGIONS,
        actor=ACTOR,
        clock=clock_on(dt.date(year, 1, 2)),
        business_date=dt.date(year, 1, 2),
        **arguments,  # type: ignore[arg-type]
    )


def rollover(
    engines: Engines, *, year: int = 2025, chunk: int = 1000, after_chunk: AfterChunk | None = None
) -> JobOutcome:
    return roll_over(
        engines,
        year=year,
        actor=ACTOR,
        clock=clock_on(dt.date(year, 12, 31)),
        business_date=dt.date(year, 12, 31),
        chunk_persons=chunk,
        after_chunk=after_chunk,
    )


def ledger_ok(engines: Engines) -> None:
    with engines.reader.connect() as connection:
        report = check_ledger(connection)
    assert report.ok, report.problems


def enrol_mix(engines: Engines) -> None:
    """Hangzhou employees 1-4, a Hangzhou retiree 5, a Nanjing employee 6, a Hangzhou resident 7."""
    people = [person(n) for n in range(1, 5)]
    people += [person(5, insured_type="retired"), person(6, region=NANJING)]
    people += [person(7, insured_type="resident", current_year_fen="0", historical_fen="0")]
    enrol(engines, enrolment_csv(people), day=dt.date(2025, 1, 1))


def test_funding_credits_every_person_of_the_region_and_insured_type_and_nobody_else(engines: Engines) -> None:
    enrol_mix(engines)
    before = balances(engines)

    done = fund(engines)

    after = balances(engines)
    funded = {p for p in after if after[p] != before[p]}
    assert funded == {"P000001", "P000002", "P000003", "P000004"}
    assert all(after[p] == (before[p][0] + 50_000, before[p][1]) for p in funded)
    assert (done.persons, done.amount_fen, done.already_done) == (4, 200_000, False)
    ledger_ok(engines)


def test_funding_twice_funds_once_and_the_same_run_with_another_amount_is_refused(engines: Engines) -> None:
    enrol_mix(engines)
    fund(engines)
    state = (balances(engines), table_counts(engines, ("postings", "runs", "audit_log")))

    again = fund(engines)
    with pytest.raises(RequestIdReused) as refused:
        fund(engines, amount_fen=60_000)

    assert again.already_done
    assert (again.persons, again.amount_fen) == (4, 200_000)
    assert "fund:330100:2025:employee was already run with amount_fen 50000; this asks for amount_fen 60000" in str(
        refused.value
    )
    assert (balances(engines), table_counts(engines, ("postings", "runs", "audit_log"))) == state


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"insured_type": "resident"}, "insured_type"),
        ({"region": "999999"}, "region"),
        ({"amount_fen": 0}, "amount_fen"),
        ({"year": 1999}, "year"),
    ],
)
def test_funding_refuses_what_cannot_be_funded(engines: Engines, options: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        fund(engines, **options)  # type: ignore[arg-type]

    assert refused.value.field == field
    assert table_counts(engines, ("runs", "postings")) == {"runs": 0, "postings": 0}


def test_rollover_moves_every_current_year_balance_to_historical_once(engines: Engines) -> None:
    enrol_mix(engines)
    fund(engines)
    before = balances(engines)

    done = rollover(engines, chunk=3)
    again = rollover(engines, chunk=3)

    assert balances(engines) == {p: (0, current + historical) for p, (current, historical) in before.items()}
    moved = sum(current for current, _ in before.values())
    assert (done.amount_fen, done.persons) == (moved, sum(1 for c, _ in before.values() if c > 0))
    assert again.already_done
    assert again.amount_fen == moved
    with engines.reader.connect() as connection:
        entries = set(connection.execute(select(t.postings.c.settlement_id)).scalars())
    assert "rollover:2025:P000001" in entries
    ledger_ok(engines)


def test_rollover_leaves_the_next_years_accumulators_empty(engines: Engines) -> None:
    enrol_mix(engines)
    with engines.writer.begin() as connection:
        connection.execute(
            t.accumulators.insert(),
            {"person_number": "P000001", "year": 2025, "deductible_fen": 1, "fund_fen": 2, "self_segment_fen": 3},
        )

    rollover(engines)

    with engines.reader.connect() as connection:
        years = list(connection.execute(select(t.accumulators.c.year, t.accumulators.c.fund_fen)))
    assert years == [(2025, 2)]  # 2025 is history; 2026 has no row, which reads as zero


@settings(
    max_examples=8, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow], deadline=None
)
@given(chunk=st.integers(min_value=1, max_value=4), crash_after=st.integers(min_value=1, max_value=6))
def test_a_rollover_that_crashed_between_chunks_resumes_and_moves_each_balance_exactly_once(
    engines: Engines, chunk: int, crash_after: int
) -> None:
    # Every example funds and rolls over the next year of the same persons, so examples share a database.
    if not table_counts(engines, ("persons",))["persons"]:
        enrol_mix(engines)
    year = 2025 + _completed_rollovers(engines)
    fund(engines, year=year)
    funded = balances(engines)

    def crash(number: int) -> None:
        if number == crash_after:
            raise Crash

    try:
        rollover(engines, year=year, chunk=chunk, after_chunk=crash)
        crashed = False
    except Crash:
        crashed = True
    final = rollover(engines, year=year, chunk=chunk)

    assert balances(engines) == {p: (0, current + historical) for p, (current, historical) in funded.items()}
    assert final.amount_fen == sum(current for current, _ in funded.values())
    if crashed:
        done_before_crash = [p for p in sorted(funded)[: crash_after * chunk] if funded[p][0] > 0]
        assert (final.already_done, final.resumed_persons) == (False, len(done_before_crash))
    else:
        assert final.already_done
    ledger_ok(engines)


def _completed_rollovers(engines: Engines) -> int:
    with engines.reader.connect() as connection:
        return len(list(connection.execute(select(t.runs.c.run_id).where(t.runs.c.kind == "rollover"))))


def test_a_rollover_is_refused_before_its_year_is_over(engines: Engines) -> None:
    with pytest.raises(RefusedByState) as refused:
        roll_over(engines, year=2025, actor=ACTOR, clock=clock_on(), business_date=dt.date(2025, 12, 30))

    assert "year 2025 is not over" in str(refused.value)


def test_next_years_funding_waits_for_this_years_rollover(engines: Engines) -> None:
    enrol_mix(engines)
    fund(engines, year=2025)

    with pytest.raises(RefusedByState) as refused:
        fund(engines, year=2026)
    assert "settlement accounts rollover --year 2025" in str(refused.value)

    rollover(engines, year=2025)
    assert fund(engines, year=2026).persons == 4
    ledger_ok(engines)


def test_funding_waits_while_a_rollover_is_unfinished_and_a_rolled_over_year_is_not_funded_again(
    engines: Engines,
) -> None:
    enrol_mix(engines)
    fund(engines, year=2025)

    def crash(number: int) -> None:
        raise Crash

    with pytest.raises(Crash):
        rollover(engines, year=2025, chunk=2, after_chunk=crash)
    with pytest.raises(RefusedByState) as unfinished:
        fund(engines, year=2026)
    rollover(engines, year=2025, chunk=2)
    with pytest.raises(RefusedByState) as rolled:
        fund(engines, year=2025, insured_type="retired")

    assert "the rollover of 2025 is not finished" in str(unfinished.value)
    assert "year 2025 is already rolled over" in str(rolled.value)


def test_a_year_is_not_rolled_over_once_the_next_years_funding_has_begun(engines: Engines) -> None:
    enrol_mix(engines)
    fund(engines, year=2026)  # the first year this engine runs: nothing to roll over before it

    with pytest.raises(RefusedByState) as refused:
        rollover(engines, year=2025)

    assert "funding of 2026 has already begun" in str(refused.value)
