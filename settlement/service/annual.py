"""The yearly jobs on personal accounts: annual funding of current-year accounts and the year-end rollover.

Owns: crediting every enrolled person of a region and insured type with the year's funding
(``external:funding`` → ``person:<id>:current``), moving every current-year balance to the historical
account at year end (``person:<id>:current`` → ``person:<id>:historical``), and the order rules between
them (a year's funding only after the previous year's rollover, never a rollover after the next year's
funding). Must never run a job twice, nor move a person's money twice when a job is resumed.

How a job stays exactly-once without one giant transaction: persons are processed in chunks of
``chunk_persons``, one transaction each; every person's postings form their own entry,
``<run id>:<person number>``, written with the balance change in the same transaction. A resumed job
skips every person whose entry exists. A ``started:<run id>`` row in ``runs`` records the request when
the job begins (so a resume with a different request is refused), and the ``<run id>`` row, written
last, marks it done: running it again then only reports what it did.

Accumulators need nothing here: they are keyed by year, so year Y+1 starts from no row (zero) whatever
year Y used.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, bindparam, func, insert, select, update

from settlement.domain import InsuredType
from settlement.domain.ledger import FUNDING, Posting, person_current, person_historical
from settlement.errors import InvalidAmount, InvalidField, InvariantViolated, RefusedByState, RequestIdReused
from settlement.service.clock import Clock
from settlement.storage import tables as t
from settlement.storage.engine import Engines
from settlement.storage.repository import Repository

FUNDING_KIND = "funding"
ROLLOVER_KIND = "rollover"
STARTED_PREFIX = "started:"
DEFAULT_CHUNK_PERSONS = 1_000  # persons per transaction: keeps each lock short while terminals settle
MAX_FUNDING_FEN = 10_000_000  # 100,000 yuan per person and year: far above any real allocation
FIRST_YEAR, LAST_YEAR = 2000, 2100
_ENTRY_ID_MAX_CHARS = 64  # postings.settlement_id

AfterChunk = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class JobOutcome:
    run_id: str
    already_done: bool
    persons: int  # persons whose money moved (over every attempt of the job)
    amount_fen: int  # total moved
    resumed_persons: int = 0  # of those, persons an earlier, interrupted attempt had already done


@dataclass(frozen=True, slots=True)
class _Job:
    run_id: str
    kind: str
    request: dict[str, object]  # what was asked; a resume or re-run must ask the same
    persons: Callable[[str, int], Select[tuple[str]]]  # persons after a number, at most n, in order
    postings: Callable[[str, int, int], list[Posting]]  # (person, current, historical) → postings
    guard: Callable[[Connection], None]  # refuses a job that must not run now


def fund_accounts(
    engines: Engines,
    *,
    region: str,
    year: int,
    insured_type: str,
    amount_fen: int,
    regions: frozenset[str],
    actor: str,
    clock: Clock,
    business_date: dt.date,
    chunk_persons: int = DEFAULT_CHUNK_PERSONS,
    after_chunk: AfterChunk | None = None,
) -> JobOutcome:
    """Credit ``amount_fen`` to the current-year account of every person enrolled in the region and type."""
    _check_year(year)
    if region not in regions:
        raise InvalidField(f"region {region!r} is not one of {', '.join(sorted(regions))}", field="region")
    if insured_type not in {member.value for member in InsuredType}:
        raise InvalidField(f"insured type {insured_type!r} is not employee, retired or resident", field="insured_type")
    if insured_type == InsuredType.RESIDENT.value:
        raise InvalidField("residents hold no personal account: there is nothing to fund", field="insured_type")
    if not 0 < amount_fen <= MAX_FUNDING_FEN:
        raise InvalidAmount(f"amount_fen must be from 1 to {MAX_FUNDING_FEN}, got {amount_fen}", field="amount_fen")

    def persons(after: str, limit: int) -> Select[tuple[str]]:
        return (
            select(t.accounts.c.person_number)
            .join(t.persons, t.persons.c.person_number == t.accounts.c.person_number)
            .where(t.persons.c.region == region, t.persons.c.insured_type == insured_type)
            .where(t.accounts.c.person_number > after)
            .order_by(t.accounts.c.person_number)
            .limit(limit)
        )

    job = _Job(
        run_id=f"fund:{region}:{year}:{insured_type}",
        kind=FUNDING_KIND,
        request={"region": region, "year": year, "insured_type": insured_type, "amount_fen": amount_fen},
        persons=persons,
        postings=lambda person, _current, _historical: [Posting(FUNDING, person_current(person), amount_fen)],
        guard=lambda connection: _funding_may_run(connection, year),
    )
    return _run(engines, job, actor=actor, clock=clock, day=business_date, chunk=chunk_persons, hook=after_chunk)


def roll_over(
    engines: Engines,
    *,
    year: int,
    actor: str,
    clock: Clock,
    business_date: dt.date,
    chunk_persons: int = DEFAULT_CHUNK_PERSONS,
    after_chunk: AfterChunk | None = None,
) -> JobOutcome:
    """Move every current-year balance to the historical account, once the year is over."""
    _check_year(year)
    if business_date < dt.date(year, 12, 31):
        raise RefusedByState(
            f"year {year} is not over: its rollover may run from {year}-12-31 on (business date {business_date})"
        )

    def persons(after: str, limit: int) -> Select[tuple[str]]:
        column = t.accounts.c.person_number
        return select(column).where(column > after).order_by(column).limit(limit)

    def postings(person: str, current: int, _historical: int) -> list[Posting]:
        return [Posting(person_current(person), person_historical(person), current)] if current > 0 else []

    job = _Job(
        run_id=f"rollover:{year}",
        kind=ROLLOVER_KIND,
        request={"year": year},
        persons=persons,
        postings=postings,
        guard=lambda connection: _rollover_may_run(connection, year),
    )
    return _run(engines, job, actor=actor, clock=clock, day=business_date, chunk=chunk_persons, hook=after_chunk)


def _check_year(year: int) -> None:
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise InvalidField(f"year must be from {FIRST_YEAR} to {LAST_YEAR}, got {year}", field="year")


# --- order between the jobs ------------------------------------------------------------------------


def _jobs(connection: Connection) -> list[tuple[str, int, bool]]:
    """(kind, year, done) of every funding and rollover job begun so far."""
    rows = connection.execute(
        select(t.runs.c.kind, t.runs.c.detail).where(
            t.runs.c.kind.in_([FUNDING_KIND, ROLLOVER_KIND, FUNDING_KIND + "-started", ROLLOVER_KIND + "-started"])
        )
    )
    found = []
    for kind, detail in rows:
        year = int(json.loads(detail)["request"]["year"])
        found.append((kind.removesuffix("-started"), year, not kind.endswith("-started")))
    return found


def _funding_may_run(connection: Connection, year: int) -> None:
    jobs = _jobs(connection)
    rolled: dict[int, bool] = {}  # year → rollover done (False: begun, not finished)
    for kind, job_year, done in jobs:
        if kind == ROLLOVER_KIND:
            rolled[job_year] = rolled.get(job_year, False) or done
    earlier_funding = any(kind == FUNDING_KIND and job_year < year for kind, job_year, _ in jobs)
    if year in rolled:
        raise RefusedByState(f"year {year} is already rolled over: funding it now would land in year {year + 1}")
    previous = rolled.get(year - 1)
    if previous is False or (previous is None and earlier_funding):
        state = "is not finished" if previous is False else "has not run"
        raise RefusedByState(
            f"the rollover of {year - 1} {state}: run `settlement accounts rollover --year {year - 1}` "
            f"before funding {year}, or last year's money would stay in the current-year accounts"
        )


def _rollover_may_run(connection: Connection, year: int) -> None:
    later = sorted({job_year for kind, job_year, _ in _jobs(connection) if kind == FUNDING_KIND and job_year > year})
    if later:
        raise RefusedByState(
            f"funding of {later[0]} has already begun: rolling {year} over now would move that money too"
        )


# --- the chunked, resumable runner ------------------------------------------------------------------


def _run(
    engines: Engines, job: _Job, *, actor: str, clock: Clock, day: dt.date, chunk: int, hook: AfterChunk | None
) -> JobOutcome:
    done = _begin(engines, job, actor=actor, clock=clock, day=day)
    if done is not None:
        return done
    persons, amount_fen, resumed, after, number = 0, 0, 0, "", 0
    while (progress := _chunk(engines, job, after, chunk, actor=actor, clock=clock, day=day)) is not None:
        after, moved, moved_fen, skipped, skipped_fen = progress
        persons += moved + skipped
        amount_fen += moved_fen + skipped_fen
        resumed += skipped
        number += 1
        if hook is not None:
            hook(number)
    totals = {"persons": persons, "amount_fen": amount_fen, "resumed_persons": resumed, "business_date": str(day)}
    with engines.write_transaction() as connection:
        repo = Repository(connection)
        repo.lock_for_writing(())
        done_detail = _recorded(connection, job, job.run_id)
        if done_detail is not None:  # another process finished the job meanwhile; nobody moved money twice
            return JobOutcome(job.run_id, True, int(done_detail["persons"]), int(done_detail["amount_fen"]))
        _record(repo, job, job.run_id, kind=job.kind, extra=totals, clock=clock)
        detail = {**job.request, **totals}
        repo.audit(
            at_us=clock.now_us(),
            actor=actor,
            action=f"accounts.{job.kind}",
            subject=job.run_id,
            outcome="ok",
            detail=detail,
        )
        repo.flush()
    return JobOutcome(job.run_id, False, persons, amount_fen, resumed)


def _begin(engines: Engines, job: _Job, *, actor: str, clock: Clock, day: dt.date) -> JobOutcome | None:
    """The outcome when the job is done already; otherwise checks it may run and records that it began."""
    with engines.write_transaction() as connection:
        repo = Repository(connection)
        repo.lock_for_writing(())
        done = _recorded(connection, job, job.run_id)
        if done is not None:
            return JobOutcome(job.run_id, True, int(done["persons"]), int(done["amount_fen"]))
        job.guard(connection)
        started = STARTED_PREFIX + job.run_id
        if _recorded(connection, job, started) is None:
            _record(repo, job, started, kind=job.kind + "-started", extra={"business_date": str(day)}, clock=clock)
            repo.audit(
                at_us=clock.now_us(),
                actor=actor,
                action=f"accounts.{job.kind}.start",
                subject=job.run_id,
                outcome="ok",
                detail=job.request,
            )
        repo.flush()
    return None


def _chunk(
    engines: Engines, job: _Job, after: str, size: int, *, actor: str, clock: Clock, day: dt.date
) -> tuple[str, int, int, int, int] | None:
    """One transaction: the next ``size`` persons; returns (last person, moved, fen, skipped, skipped fen)."""
    with engines.write_transaction() as connection:
        repo = Repository(connection)
        persons = [str(person) for person in connection.execute(job.persons(after, size)).scalars()]
        if not persons:
            return None
        repo.lock_for_writing(persons)
        balances = {
            row.person_number: (int(row.current_year_fen), int(row.historical_fen))
            for row in connection.execute(select(t.accounts).where(t.accounts.c.person_number.in_(persons)))
        }
        entries = {person: person_entry_id(job.run_id, person) for person in persons}
        already = _entries_done(connection, list(entries.values()))
        changes: list[dict[str, object]] = []
        moved_fen = 0
        for person in persons:
            if entries[person] in already:
                continue
            postings = job.postings(person, *balances[person])
            if not postings:
                continue
            repo.post(entries[person], day, postings)
            change = _balance_change(person, postings)
            changes.append(change)
            moved_fen += sum(posting.amount_fen for posting in postings)
        if changes:
            connection.execute(
                update(t.accounts)
                .where(t.accounts.c.person_number == bindparam("b_person"))
                .values(
                    current_year_fen=t.accounts.c.current_year_fen + bindparam("b_current"),
                    historical_fen=t.accounts.c.historical_fen + bindparam("b_historical"),
                ),
                changes,
            )
            summary = {
                "first_person": persons[0],
                "last_person": persons[-1],
                "persons": len(changes),
                "amount_fen": moved_fen,
                "skipped_as_done": len(already),
            }
            repo.audit(
                at_us=clock.now_us(),
                actor=actor,
                action=f"accounts.{job.kind}.chunk",
                subject=job.run_id,
                outcome="ok",
                detail=summary,
            )
        repo.flush()
    return persons[-1], len(changes), moved_fen, len(already), sum(already.values())


def _balance_change(person: str, postings: Sequence[Posting]) -> dict[str, object]:
    """The relative change of the person's two balances, as bind parameters of the bulk UPDATE."""
    current, historical = person_current(person), person_historical(person)
    current_fen = historical_fen = 0
    for posting in postings:
        for account, change in ((posting.destination, posting.amount_fen), (posting.source, -posting.amount_fen)):
            if account == current:
                current_fen += change
            elif account == historical:
                historical_fen += change
    return {"b_person": person, "b_current": current_fen, "b_historical": historical_fen}


def person_entry_id(run_id: str, person_number: str) -> str:
    """``<run id>:<person>``; a person number too long for the column is replaced by its hash, stably."""
    entry = f"{run_id}:{person_number}"
    if len(entry) <= _ENTRY_ID_MAX_CHARS:
        return entry
    entry = f"{run_id}:#{hashlib.sha256(person_number.encode()).hexdigest()[:24]}"
    if len(entry) > _ENTRY_ID_MAX_CHARS:
        raise InvariantViolated(f"entry id {entry!r} is longer than {_ENTRY_ID_MAX_CHARS} characters")
    return entry


def _entries_done(connection: Connection, entry_ids: list[str]) -> dict[str, int]:
    """Which of these entries exist already, with the fen each moved."""
    rows = connection.execute(
        select(t.postings.c.settlement_id, func.sum(t.postings.c.amount_fen))
        .where(t.postings.c.settlement_id.in_(entry_ids))
        .group_by(t.postings.c.settlement_id)
    )
    return {str(entry): int(amount) for entry, amount in rows}


def _recorded(connection: Connection, job: _Job, run_id: str) -> Mapping[str, Any] | None:
    """The stored detail of a run row; refuses when it was asked with another request."""
    found = connection.execute(select(t.runs.c.detail).where(t.runs.c.run_id == run_id)).scalar_one_or_none()
    if found is None:
        return None
    detail: dict[str, Any] = json.loads(found)
    asked: dict[str, object] = detail["request"]
    if asked != job.request:
        before = ", ".join(
            f"{key} {asked.get(key)}" for key in sorted(job.request) if asked.get(key) != job.request[key]
        )
        now = ", ".join(
            f"{key} {job.request[key]}" for key in sorted(job.request) if asked.get(key) != job.request[key]
        )
        raise RequestIdReused(
            f"{job.run_id} was already run with {before}; this asks for {now}", metadata={"run_id": job.run_id}
        )
    return detail


def _record(repo: Repository, job: _Job, run_id: str, *, kind: str, extra: Mapping[str, object], clock: Clock) -> None:
    detail = json.dumps({"request": job.request, **extra}, sort_keys=True)
    repo.connection.execute(
        insert(t.runs), {"run_id": run_id, "kind": kind, "detail": detail, "created_at_us": clock.now_us()}
    )
