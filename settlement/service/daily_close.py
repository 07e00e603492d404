"""Closing a hospital's day: check it, store its totals and the audit head, and lock it.

Owns: the close-day handler and the stored result (``ClosedDay``, one ``closed_days`` row). A closed
day is immutable (domain §8): the settle and cancel paths refuse to book into it with
``DAY_ALREADY_CLOSED`` (their check, through ``day_is_closed``); corrections are new entries on a later
day. Must never change a settlement, a posting or a balance.

Rules:

- Idempotent. Closing a closed day again returns the stored ``ClosedDay`` unchanged; nothing is
  recomputed. Every attempt is audited (action ``close_day``): the close itself with outcome ``ok``, a
  repeat with outcome ``ok`` and ``already_closed`` in its detail, a refusal with ``DAY_UNBALANCED`` and
  the problems. So the audit log shows who tried to close the day and when, every time.
- The checks (the day's, then the global ledger check) run on one read snapshot, outside the writer
  lock, so settles elsewhere are not stalled while they run. The close is then written under
  ``lock_for_writing`` only if the day's booked totals are still those checked; otherwise (only today
  can still change) it checks again, at most ``MAX_CLOSE_ATTEMPTS`` times. No settle can book into the
  day between that comparison and the insert of the ``closed_days`` row.
- The stored ``audit_head`` is the hash of the close's own audit row, whose detail holds the stored
  totals: the totals are bound into the hash chain.
- Refused: an unknown hospital (``HOSPITAL_NOT_FOUND``, nothing written), a day that has not begun yet in
  China Standard Time (``INVALID_FIELD``), a day whose checks fail (nothing closed, the attempt audited).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Connection, and_, insert, select

from settlement.errors import InvalidField
from settlement.service.clock import Clock, SystemClock, business_date
from settlement.service.daily_ledger import (
    DailyLedgerRow,
    booked_rows,
    require_hospital,
    rows_from_json,
    rows_to_json,
    total_of,
)
from settlement.service.day_checks import check_day
from settlement.service.ledger_check import check_ledger
from settlement.storage import tables as t
from settlement.storage.engine import Engines
from settlement.storage.repository import Repository

MAX_CLOSE_ATTEMPTS = 3  # check-then-commit rounds before giving up on a day that keeps changing
CLOSE_ACTION = "close_day"
UNBALANCED_OUTCOME = "DAY_UNBALANCED"


@dataclass(frozen=True, slots=True)
class ClosedDay:
    """The stored close of one hospital-day; every later close of that day returns exactly this."""

    hospital_id: str
    business_date: dt.date
    closed_at_us: int
    rows: tuple[DailyLedgerRow, ...]
    audit_head: str

    @property
    def total(self) -> DailyLedgerRow:
        return total_of(self.rows)


@dataclass(frozen=True, slots=True)
class CloseResult:
    """The outcome of one close attempt: the closed day, or the problems that refused it."""

    hospital_id: str
    business_date: dt.date
    closed_day: ClosedDay | None
    already_closed: bool
    problems: tuple[str, ...]
    problem_count: int

    @property
    def closed(self) -> bool:
        return self.closed_day is not None


def day_subject(hospital_id: str, day: dt.date) -> str:
    """The audit subject of a hospital-day: ``H1/2024-03-05``."""
    return f"{hospital_id}/{day.isoformat()}"


def day_is_closed(connection: Connection, hospital_id: str, day: dt.date) -> bool:
    """Whether the hospital's day is closed: the settle path refuses to book into it when it is."""
    return Repository(connection).day_closed(hospital_id, day)


def closed_day(connection: Connection, hospital_id: str, day: dt.date) -> ClosedDay | None:
    """The stored close of the day, or None while it is open."""
    row = connection.execute(
        select(t.closed_days).where(
            and_(t.closed_days.c.hospital_id == hospital_id, t.closed_days.c.business_date == day)
        )
    ).first()
    if row is None:
        return None
    return ClosedDay(
        hospital_id=str(row.hospital_id),
        business_date=row.business_date,
        closed_at_us=int(row.closed_at_us),
        rows=rows_from_json(str(row.totals)),
        audit_head=str(row.audit_head),
    )


def close_day(
    engines: Engines, hospital_id: str, day: dt.date, actor: str, *, clock: Clock | None = None
) -> CloseResult:
    """Close the hospital's day, or return its stored close, or the problems that keep it open."""
    now_us = (clock or SystemClock()).now_us()
    today = business_date(now_us)
    if day > today:
        raise InvalidField(
            f"{day.isoformat()} has not begun yet in China Standard Time (today is {today.isoformat()}); "
            "close a day during or after it",
            field="date",
        )
    for _ in range(MAX_CLOSE_ATTEMPTS):
        checked = _check(engines, hospital_id, day)
        result = _commit(engines, hospital_id, day, actor=actor, now_us=now_us, checked=checked)
        if result is not None:
            return result
    # Only today can still change, and only if settles keep landing during every check.
    return CloseResult(
        hospital_id, day, None, False, (f"the day kept changing during {MAX_CLOSE_ATTEMPTS} checks; close it again",), 1
    )


@dataclass(frozen=True, slots=True)
class _Checked:
    """What one snapshot of the day showed: its rows and the problems found in it."""

    rows: tuple[DailyLedgerRow, ...]
    problems: tuple[str, ...]
    problem_count: int
    settlements_checked: int


def _check(engines: Engines, hospital_id: str, day: dt.date) -> _Checked | None:
    """Check the day on one read snapshot, outside the writer lock; None when it is closed already.

    The checks read the whole day (and the global check the whole ledger): holding the lock that long
    would stall every settle of every hospital.
    """
    with _snapshot(engines) as connection:
        require_hospital(connection, hospital_id)
        if day_is_closed(connection, hospital_id, day):
            return None
        rows = booked_rows(connection, hospital_id, day)
        check = check_day(connection, hospital_id, day, total_of(rows))
        global_problems = _global_ledger_problems(connection)  # last: it may leave options on the connection
    return _Checked(
        rows,
        check.problems + tuple(global_problems),
        check.problem_count + len(global_problems),
        check.settlements_checked,
    )


def _commit(
    engines: Engines, hospital_id: str, day: dt.date, *, actor: str, now_us: int, checked: _Checked | None
) -> CloseResult | None:
    """Under the writer lock: store the close (or audit the repeat or refusal); None if the day moved on."""
    subject = day_subject(hospital_id, day)
    with engines.write_transaction() as connection:
        repo = Repository(connection)
        repo.lock_for_writing([])
        stored = closed_day(connection, hospital_id, day)
        if stored is not None:
            detail = {"already_closed": True, "closed_at_us": stored.closed_at_us, "audit_head": stored.audit_head}
            repo.audit(at_us=now_us, actor=actor, action=CLOSE_ACTION, subject=subject, outcome="ok", detail=detail)
            repo.flush()
            return CloseResult(hospital_id, day, stored, True, (), 0)
        if checked is None or booked_rows(connection, hospital_id, day) != checked.rows:
            return None  # closed and reopened is impossible, so: something was booked since the check
        if checked.problem_count:
            detail = {"problem_count": checked.problem_count, "problems": list(checked.problems)}
            outcome = UNBALANCED_OUTCOME
            repo.audit(at_us=now_us, actor=actor, action=CLOSE_ACTION, subject=subject, outcome=outcome, detail=detail)
            repo.flush()
            return CloseResult(hospital_id, day, None, False, checked.problems, checked.problem_count)
        totals_json = rows_to_json(checked.rows)
        detail = {"totals": totals_json, "settlements_checked": checked.settlements_checked}
        repo.audit(at_us=now_us, actor=actor, action=CLOSE_ACTION, subject=subject, outcome="ok", detail=detail)
        repo.flush()
        connection.execute(
            insert(t.closed_days),
            {
                "hospital_id": hospital_id,
                "business_date": day,
                "closed_at_us": now_us,
                "totals": totals_json,
                "audit_head": _audit_head(connection),
            },
        )
        # Read back what was stored, so the first answer is the very value every repeat returns.
        return CloseResult(hospital_id, day, closed_day(connection, hospital_id, day), False, (), 0)


@contextmanager
def _snapshot(engines: Engines) -> Iterator[Connection]:
    """A read-only transaction that sees one snapshot (REPEATABLE READ on PostgreSQL; SQLite's is one)."""
    with engines.reader.connect() as connection:
        if not engines.is_sqlite:
            connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            yield connection


def _audit_head(connection: Connection) -> str:
    head = connection.execute(
        select(t.audit_log.c.row_hash).order_by(t.audit_log.c.sequence.desc()).limit(1)
    ).scalar_one()
    return str(head)


def _global_ledger_problems(connection: Connection) -> list[str]:
    """The global trial balance and audit chain (``settlement.service.ledger_check``), prefixed as such.

    A broken ledger anywhere keeps every day open: a day's totals are only worth storing when the
    ledger they come from adds up.
    """
    return [f"ledger: {problem}" for problem in check_ledger(connection).problems]
