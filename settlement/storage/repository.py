"""Reads and writes inside one transaction, with SQLAlchemy Core (the ORM stays off the settle path).

Owns: every SQL statement the handlers need, and the per-transaction buffers that turn many small
writes into a few multi-row statements (ledger-account deltas, audit rows). Must never decide anything
about money: it stores what the domain computed and returns rows as plain dicts.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from typing import Any, NamedTuple

from sqlalchemy import (
    Boolean,
    Connection,
    Date,
    Dialect,
    Table,
    and_,
    bindparam,
    delete,
    insert,
    select,
    text,
    update,
)

from settlement.domain.ledger import GENESIS_HASH, Posting, audit_hash, may_go_negative
from settlement.domain.split import AccountState
from settlement.storage import tables as t

Row = dict[str, Any]

# The settle path's statements, built once: building a statement costs more than running it on SQLite.
_a, _y = t.accounts, t.accumulators
_PERSON = select(t.persons).where(t.persons.c.person_number == bindparam("person"))
_CARD = select(t.cards).where(t.cards.c.card_number == bindparam("card"))
_HOSPITAL = select(t.hospitals).where(t.hospitals.c.hospital_id == bindparam("hospital"))
_TERMINAL = select(t.terminals).where(t.terminals.c.terminal_id == bindparam("terminal"))
_ACCOUNT_STATE = (
    select(_a.c.current_year_fen, _a.c.historical_fen, _y.c.deductible_fen, _y.c.fund_fen, _y.c.self_segment_fen)
    .select_from(_a.outerjoin(_y, and_(_y.c.person_number == _a.c.person_number, _y.c.year == bindparam("year"))))
    .where(_a.c.person_number == bindparam("person"))
)
_REQUEST = select(t.requests).where(
    and_(t.requests.c.hospital_id == bindparam("hospital"), t.requests.c.request_id == bindparam("request"))
)
_AUDIT_LOCK_KEY = 7_204_202_611  # pg_advisory_xact_lock key: one ledger writer at a time across processes


MAX_PARAMETERS_PER_STATEMENT = 30_000  # under SQLite's 32,766 and PostgreSQL's 65,535 bind parameters


def _from_sqlite(*tables: Table) -> dict[str, Callable[[Any], Any]]:
    """How SQLite's storage of these tables' columns reads back as SQLAlchemy would return it."""
    converters: dict[str, Callable[[Any], Any]] = {}
    for table in tables:
        for column in table.columns:
            if isinstance(column.type, Date):
                converters[column.name] = lambda value: None if value is None else dt.date.fromisoformat(value)
            elif isinstance(column.type, Boolean):
                converters[column.name] = lambda value: None if value is None else bool(value)
    return converters


@dataclass(frozen=True)
class _BatchRead:
    """One of the writer's batch reads, written once as SQL for both stores.

    On SQLite it runs on the driver's own cursor: SQLAlchemy's per-execution bookkeeping measured ten times
    the cost of these small indexed queries, and the writer runs several per batch. ``sql`` uses ``?`` for
    its parameters and ``{}`` where an IN list's placeholders go; the other parameters come first. Rows come
    back as dicts keyed by column name, typed as SQLAlchemy types them (SQLite stores dates as text and
    booleans as 0 or 1; psycopg returns both typed).
    """

    sql: str
    converters: Mapping[str, Callable[[Any], Any]]

    @classmethod
    def of(cls, sql: str, *tables: Table) -> _BatchRead:
        return cls(sql, _from_sqlite(*tables))

    def rows(self, connection: Connection, leading: Sequence[Any], listed: Sequence[Any] = ()) -> list[Row]:
        parameters = (*leading, *listed)
        if connection.dialect.name != "sqlite":
            sql = self.sql.replace("?", "%s").format(", ".join(["%s"] * len(listed)))
            return [dict(row._mapping) for row in connection.exec_driver_sql(sql, parameters)]
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(self.sql.format(", ".join(["?"] * len(listed))), parameters)
            names = [description[0] for description in cursor.description]
            found = cursor.fetchall()
        finally:
            cursor.close()
        rows = [dict(zip(names, values, strict=True)) for values in found]
        for name in self.converters.keys() & set(names):
            convert = self.converters[name]
            for row in rows:
                row[name] = convert(row[name])
        return rows


_HOSPITALS = _BatchRead.of("SELECT * FROM hospitals WHERE hospital_id IN ({})", t.hospitals)
_TERMINALS = _BatchRead.of("SELECT * FROM terminals WHERE terminal_id IN ({})", t.terminals)
_CARDS = _BatchRead.of("SELECT * FROM cards WHERE card_number IN ({})", t.cards)
# A batch's persons with their balances and the year's accumulators, in one round trip.
_VISITS = _BatchRead.of(
    "SELECT p.*, a.current_year_fen, a.historical_fen, y.deductible_fen, y.fund_fen, y.self_segment_fen"
    " FROM persons AS p LEFT OUTER JOIN accounts AS a ON a.person_number = p.person_number"
    " LEFT OUTER JOIN accumulators AS y ON y.person_number = p.person_number AND y.year = ?"
    " WHERE p.person_number IN ({})",
    t.persons,
    t.accounts,
    t.accumulators,
)
# Equality on the key's first column and IN on the second: both stores search the primary key (a row-value
# IN makes SQLite scan the whole table).
_REQUESTS = _BatchRead.of("SELECT * FROM requests WHERE hospital_id = ? AND request_id IN ({})", t.requests)
_ENTRIES = _BatchRead.of("SELECT * FROM settlements WHERE settlement_id IN ({})", t.settlements)
_ENTRY_LINES = _BatchRead.of(
    "SELECT * FROM settlement_lines WHERE settlement_id IN ({}) ORDER BY settlement_id, line_number",
    t.settlement_lines,
)
_AUDIT_HEAD = _BatchRead.of("SELECT sequence, row_hash FROM audit_log ORDER BY sequence DESC LIMIT 1")
_DAY_CLOSED = _BatchRead.of(
    "SELECT hospital_id FROM closed_days WHERE hospital_id = ? AND business_date = ?", t.closed_days
)
_REVERSALS = _BatchRead.of(
    "SELECT settlement_id, reverses_id FROM settlements WHERE reverses_id IN ({})",
    t.settlements,
)


@dataclass(frozen=True)
class _RowsPlan:
    """Many rows in one statement: ``INSERT ... VALUES (...), (...)`` or an UPDATE from such a VALUES list.

    Handed to the driver as is: SQLAlchemy's per-row parameter processing costs the writer more than the
    write itself. On SQLite, one statement per table per batch: its driver (CPython 3.11) lets go of the GIL
    a few times per executed row and once per fetched column, and with busy RPC threads each hand-off may
    cost the writer a wait for the GIL (py-spy showed the writer waiting on it a third of its time). On
    PostgreSQL, psycopg's pipelined executemany of the one-row statement. The only conversion these tables
    need is a date to its ISO text on SQLite (what SQLAlchemy's Date does).
    """

    head: str  # up to and including VALUES
    tail: str  # after the VALUES list ("" for an INSERT)
    columns: tuple[str, ...]
    placeholder: str  # "?" or "%s": one row's "(?, ?, ...)"
    dates_as_text: frozenset[str]

    @staticmethod
    def placeholder_for(dialect: Dialect, count: int) -> str:
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        return "(" + ", ".join([mark] * count) + ")"

    @staticmethod
    def insert(table: Table, dialect: Dialect, *, on_conflict_ignore: bool = False) -> _RowsPlan:
        quote = dialect.identifier_preparer.quote
        columns = tuple(column.name for column in table.columns)
        dates = (
            frozenset(c.name for c in table.columns if isinstance(c.type, Date))
            if dialect.name == "sqlite"
            else frozenset()
        )
        names = ", ".join(quote(c) for c in columns)
        head = f"INSERT INTO {quote(table.name)} ({names}) VALUES "  # noqa: S608 - names from our own metadata
        tail = " ON CONFLICT DO NOTHING" if on_conflict_ignore else ""
        return _RowsPlan(head, tail, columns, _RowsPlan.placeholder_for(dialect, len(columns)), dates)

    @staticmethod
    def update(table: Table, dialect: Dialect, *, key: str, assignments: Mapping[str, str]) -> _RowsPlan:
        """``UPDATE table SET column = <expression of v.columnN> FROM (VALUES ...) AS v WHERE key = v.column1``.

        ``assignments`` maps each column to an expression over ``v.column2`` onwards (the VALUES list's own
        column names on both stores), in that order; the first VALUES column is the row's key.
        """
        quote = dialect.identifier_preparer.quote
        sets = ", ".join(f"{quote(column)} = {expression}" for column, expression in assignments.items())
        head = f"UPDATE {quote(table.name)} SET {sets} FROM (VALUES "  # noqa: S608 - names from our own metadata
        tail = f") AS v WHERE {quote(table.name)}.{quote(key)} = v.column1"
        columns = (key, *assignments)
        if not assignments:
            raise ValueError("an update plan assigns at least one column")
        return _RowsPlan(head, tail, columns, _RowsPlan.placeholder_for(dialect, len(columns)), frozenset())

    def execute(self, connection: Connection, rows: Sequence[Row]) -> None:
        if not rows:  # an executemany of no rows would run the statement once, without parameters
            return
        values_of = itemgetter(*self.columns)  # a tuple: every plan has at least two columns
        if connection.dialect.name != "sqlite":
            # psycopg pipelines an executemany; one long VALUES list measured 20 % slower there.
            one_row = self.head + self.placeholder + self.tail
            connection.exec_driver_sql(one_row, [values_of(row) for row in rows])
            return
        if self.dates_as_text:
            dates = self.dates_as_text
            rows = [{**row, **{n: row[n].isoformat() for n in dates if row[n] is not None}} for row in rows]
        # The driver's own cursor: SQLAlchemy adds nothing to a finished statement but its bookkeeping.
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            per_statement = max(1, MAX_PARAMETERS_PER_STATEMENT // len(self.columns))
            for start in range(0, len(rows), per_statement):
                chunk = rows[start : start + per_statement]
                parameters = list(chain.from_iterable(map(values_of, chunk)))
                cursor.execute(self.head + ", ".join([self.placeholder] * len(chunk)) + self.tail, parameters)
        finally:
            cursor.close()


_PLANS: dict[tuple[str, str], _RowsPlan] = {}


def _plan(dialect: Dialect, name: str, build: Any) -> _RowsPlan:
    key = (dialect.name, name)
    plan = _PLANS.get(key)
    if plan is None:
        plan = _PLANS[key] = build()
    return plan


def _accumulated(row: Mapping[Any, Any]) -> tuple[int, int, int]:
    """A person's accumulators for the year from a row outer-joined to them (no row yet: zeros)."""
    return row["deductible_fen"] or 0, row["fund_fen"] or 0, row["self_segment_fen"] or 0


def _accumulator_upsert(dialect: Dialect) -> _RowsPlan:
    plan = _RowsPlan.insert(t.accumulators, dialect)
    tail = (
        " ON CONFLICT (person_number, year) DO UPDATE SET deductible_fen = excluded.deductible_fen,"
        " fund_fen = excluded.fund_fen, self_segment_fen = excluded.self_segment_fen"
    )
    return _RowsPlan(plan.head, tail, plan.columns, plan.placeholder, plan.dates_as_text)


class WriteKeys(NamedTuple):
    """What a queued write will read, so the writer fetches a whole batch's rows in a few queries."""

    persons: tuple[str, ...] = ()  # account rows to lock, in a fixed order
    request: tuple[str, str] | None = None  # (hospital, request id): the idempotency record
    caller: tuple[str, str] | None = None  # (hospital, terminal)
    visit: tuple[str, int, str] | None = None  # (person, visit year, card number or "")
    entry: str | None = None  # a settlement to reverse: the entry, its lines, its reversal, its person


class Repository:
    """One transaction's view of the store. Create it inside ``engine.begin()`` (or the writer's batch)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._ledger_deltas: dict[str, int] = {}
        self._audit_rows: list[Row] = []
        self._audit_head: tuple[int, str] | None = None
        # Append-only rows are written once per transaction as multi-row inserts (group commit makes a
        # transaction hold many settles). Reads of those tables flush them first; requests are also
        # indexed here so a duplicate inside the same batch is found without a flush.
        self._pending: dict[str, list[Row]] = {
            "settlements": [],
            "settlement_lines": [],
            "postings": [],
            "requests": [],
        }
        self._pending_requests: dict[tuple[str, str], Row] = {}
        self._reference: dict[tuple[str, str], Row | None] = {}
        # Person balances and accumulators as this transaction last left them; written at flush as one
        # multi-row UPDATE each, so a batch of settles pays two statements, not two per settle.
        self._balances: dict[str, tuple[int, int]] = {}
        self._accumulators: dict[tuple[str, int], tuple[int, int, int]] = {}  # deductible, fund, segment
        self._dirty_balances: set[str] = set()
        self._dirty_accumulators: set[tuple[str, int]] = set()
        self._days_closed: dict[tuple[str, dt.date], bool] = {}
        self._known_requests: dict[tuple[str, str], Row | None] = {}
        # Settlement entries this transaction read or wrote, with their lines and what reversed them. Entries
        # are append-only: what was read stays true, and what this transaction wrote is known here first,
        # so a reversal and its reply read each entry once and never force the buffered inserts out early.
        self._entries: dict[str, Row | None] = {}
        self._entry_lines: dict[str, list[Row]] = {}
        self._reversed_by: dict[str, str | None] = {}

    # --- locking -------------------------------------------------------------------------------

    def lock_for_writing(self, person_numbers: Iterable[str]) -> None:
        """Serialise writers across processes; lock account rows in a fixed order (no deadlocks).

        SQLite's BEGIN IMMEDIATE already made this the only writer.
        """
        if self.connection.dialect.name != "postgresql":
            return
        self.connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _AUDIT_LOCK_KEY})
        ordered = sorted(set(person_numbers))
        if ordered:
            self.connection.execute(
                select(t.accounts.c.person_number)
                .where(t.accounts.c.person_number.in_(ordered))
                .order_by(t.accounts.c.person_number)
                .with_for_update()
            ).all()

    # --- reference data ------------------------------------------------------------------------

    def hospital(self, hospital_id: str) -> Row | None:
        """Read once per transaction: a batch of settles at one hospital asks many times."""
        key = ("hospital", hospital_id)
        if key not in self._reference:
            self._reference[key] = self._one(_HOSPITAL, hospital=hospital_id)
        return self._reference[key]

    def terminal(self, terminal_id: str) -> Row | None:
        key = ("terminal", terminal_id)
        if key not in self._reference:
            self._reference[key] = self._one(_TERMINAL, terminal=terminal_id)
        return self._reference[key]

    def prepare(self, batch: Sequence[WriteKeys]) -> None:
        """Lock a batch's accounts, then read what its writes will ask for, a few queries for the lot."""
        self.lock_for_writing(p for keys in batch for p in keys.persons)
        self.prefetch_requests(keys.request for keys in batch if keys.request is not None)
        self.prefetch_callers(keys.caller for keys in batch if keys.caller is not None)
        entries = self.prefetch_entries(keys.entry for keys in batch if keys.entry is not None)
        self.prefetch_visits(
            chain(
                (keys.visit for keys in batch if keys.visit is not None),
                ((str(row["person_number"]), int(row["accumulator_year"]), "") for row in entries),
            )
        )

    def prefetch_callers(self, callers: Iterable[tuple[str, str]]) -> None:
        """Hospitals and terminals of a batch; ``hospital`` and ``terminal`` then answer from memory."""
        wanted = set(callers)
        hospitals = sorted({h for h, _ in wanted if ("hospital", h) not in self._reference})
        terminals = sorted({term for _, term in wanted if ("terminal", term) not in self._reference})
        for kind, names, read in (("hospital", hospitals, _HOSPITALS), ("terminal", terminals, _TERMINALS)):
            if not names:
                continue
            for name in names:
                self._reference[(kind, name)] = None
            for found in read.rows(self.connection, (), names):
                self._reference[(kind, found[f"{kind}_id"])] = found

    def prefetch_visits(self, visits: Iterable[tuple[str, int, str]]) -> None:
        """Persons, cards, balances and the visit year's accumulators of a batch, in a query or two.

        The readers below then answer from memory; a person or card not found is remembered as absent.
        """
        by_year: dict[int, set[str]] = {}
        cards: set[str] = set()
        for person, year, card in visits:
            if ("person", person) not in self._reference or (person, year) not in self._accumulators:
                by_year.setdefault(year, set()).add(person)
            if card and ("card", card) not in self._reference:
                cards.add(card)
        for year, persons in by_year.items():
            wanted = sorted(persons)
            for person in wanted:
                self._reference.setdefault(("person", person), None)
            for found in _VISITS.rows(self.connection, (year,), wanted):
                person = found["person_number"]
                if self._reference.get(("person", person)) is None:
                    self._reference[("person", person)] = {c.name: found[c.name] for c in t.persons.columns}
                if found["current_year_fen"] is None:
                    continue  # no account: account_state() says so
                self._balances.setdefault(person, (found["current_year_fen"], found["historical_fen"]))
                self._accumulators.setdefault((person, year), _accumulated(found))
        if cards:
            wanted_cards = sorted(cards)
            for card in wanted_cards:
                self._reference[("card", card)] = None
            for found in _CARDS.rows(self.connection, (), wanted_cards):
                self._reference[("card", found["card_number"])] = found

    def person(self, person_number: str) -> Row | None:
        key = ("person", person_number)
        if key not in self._reference:
            self._reference[key] = self._one(_PERSON, person=person_number)
        return self._reference[key]

    def card(self, card_number: str) -> Row | None:
        key = ("card", card_number)
        if key not in self._reference:
            self._reference[key] = self._one(_CARD, card=card_number)
        return self._reference[key]

    def account_state(self, person_number: str, year: int) -> AccountState | None:
        """Balances and the year's accumulators (no accumulator row yet: zeros), as this transaction sees them."""
        if person_number not in self._balances or (person_number, year) not in self._accumulators:
            row = self._one(_ACCOUNT_STATE, person=person_number, year=year)
            if row is None:
                return None
            self._balances.setdefault(person_number, (row["current_year_fen"], row["historical_fen"]))
            self._accumulators.setdefault((person_number, year), _accumulated(row))
        current, historical = self._balances[person_number]
        deductible, fund, segment = self._accumulators[(person_number, year)]
        return AccountState(current, historical, deductible, fund, segment)

    def day_closed(self, hospital_id: str, business_date: dt.date) -> bool:
        """Read once per transaction: a close takes the same writer lock, so it cannot land in between."""
        key = (hospital_id, business_date)
        if key not in self._days_closed:
            # The date as its ISO text: how SQLite stores it, and a valid date literal for PostgreSQL.
            self._days_closed[key] = bool(_DAY_CLOSED.rows(self.connection, (hospital_id, business_date.isoformat())))
        return self._days_closed[key]

    def insert_hospital(
        self, *, hospital_id: str, name: str, level: int, region: str, card_proof_required: bool
    ) -> None:
        self.connection.execute(
            insert(t.hospitals),
            {
                "hospital_id": hospital_id,
                "name": name,
                "level": level,
                "region": region,
                "card_proof_required": card_proof_required,
            },
        )

    def insert_terminal(self, *, terminal_id: str, hospital_id: str, name: str, channel: str = "desk") -> None:
        self.connection.execute(
            insert(t.terminals),
            {"terminal_id": terminal_id, "hospital_id": hospital_id, "name": name, "channel": channel, "active": True},
        )

    def insert_person(
        self,
        *,
        person_number: str,
        name: str,
        insured_type: str,
        region: str,
        citizen_id_hash: str,
        citizen_id_last4: str,
    ) -> None:
        self.connection.execute(
            insert(t.persons),
            {
                "person_number": person_number,
                "name": name,
                "insured_type": insured_type,
                "region": region,
                "citizen_id_hash": citizen_id_hash,
                "citizen_id_last4": citizen_id_last4,
            },
        )

    def insert_card(self, *, card_number: str, person_number: str, status: str, key_reference: str) -> None:
        self.connection.execute(
            insert(t.cards),
            {
                "card_number": card_number,
                "person_number": person_number,
                "status": status,
                "key_reference": key_reference,
                "last_counter": 0,
            },
        )

    def set_card_status(self, card_number: str, status: str) -> None:
        self.connection.execute(update(t.cards).where(t.cards.c.card_number == card_number).values(status=status))
        self._reference.pop(("card", card_number), None)

    def set_terminal_active(self, terminal_id: str, active: bool) -> None:
        self.connection.execute(
            update(t.terminals).where(t.terminals.c.terminal_id == terminal_id).values(active=active)
        )
        self._reference.pop(("terminal", terminal_id), None)

    def delete_older_than(self, table: str, before_us: int) -> int:
        """Housekeeping: idempotency records created, or quotes expired, before ``before_us``; the count."""
        column = {"requests": t.requests.c.created_at_us, "quotes": t.quotes.c.expires_at_us}[table]
        return int(self.connection.execute(delete(column.table).where(column < before_us)).rowcount)

    def set_card_counter(self, card_number: str, counter: int) -> None:
        self.connection.execute(
            update(t.cards).where(t.cards.c.card_number == card_number).values(last_counter=counter)
        )
        self._reference.pop(("card", card_number), None)

    def insert_account(self, person_number: str) -> None:
        """An empty account; opening balances arrive as postings from ``external:funding``."""
        self.connection.execute(
            insert(t.accounts), {"person_number": person_number, "current_year_fen": 0, "historical_fen": 0}
        )

    def add_to_balances(self, person_number: str, *, current_year_fen: int, historical_fen: int) -> None:
        """Relative change (funding, rollover); the CHECK constraints refuse a negative result."""
        if person_number in self._balances:  # this transaction already holds the person's state
            current, historical = self._balances[person_number]
            self._balances[person_number] = (current + current_year_fen, historical + historical_fen)
            self._dirty_balances.add(person_number)
            return
        self.connection.execute(
            update(t.accounts)
            .where(t.accounts.c.person_number == person_number)
            .values(
                current_year_fen=t.accounts.c.current_year_fen + current_year_fen,
                historical_fen=t.accounts.c.historical_fen + historical_fen,
            )
        )

    # --- idempotency ---------------------------------------------------------------------------

    def prefetch_requests(self, keys: Iterable[tuple[str, str]]) -> None:
        """Look up a batch's idempotency keys in one query; ``request`` then answers from memory."""
        wanted = sorted(set(keys) - self._known_requests.keys())
        if not wanted:
            return
        for key in wanted:
            self._known_requests[key] = None
        by_hospital: dict[str, list[str]] = {}
        for hospital_id, request_id in wanted:
            by_hospital.setdefault(hospital_id, []).append(request_id)
        for hospital_id, request_ids in by_hospital.items():
            for found in _REQUESTS.rows(self.connection, (hospital_id,), request_ids):
                self._known_requests[(found["hospital_id"], found["request_id"])] = found

    def request(self, hospital_id: str, request_id: str) -> Row | None:
        key = (hospital_id, request_id)
        pending = self._pending_requests.get(key)
        if pending is not None:
            return pending
        if key in self._known_requests:
            return self._known_requests[key]
        return self._one(_REQUEST, hospital=hospital_id, request=request_id)

    def record_request(
        self,
        *,
        hospital_id: str,
        request_id: str,
        request_hash: str,
        operation: str,
        settlement_id: str | None,
        refusal: Mapping[str, object] | None,
        now_us: int,
    ) -> None:
        row = {
            "hospital_id": hospital_id,
            "request_id": request_id,
            "request_hash": request_hash,
            "operation": operation,
            "settlement_id": settlement_id,
            "refusal": json.dumps(refusal, ensure_ascii=False, sort_keys=True) if refusal else None,
            "created_at_us": now_us,
        }
        self._pending["requests"].append(row)
        self._pending_requests[(hospital_id, request_id)] = row
        self._known_requests[(hospital_id, request_id)] = row

    # --- quotes --------------------------------------------------------------------------------

    def insert_quote(self, row: Row) -> None:
        self.connection.execute(insert(t.quotes), row)

    def quote(self, quote_id: str) -> Row | None:
        return self._one(select(t.quotes).where(t.quotes.c.quote_id == quote_id))

    def spend_quote(self, quote_id: str, settlement_id: str) -> None:
        self.connection.execute(
            update(t.quotes).where(t.quotes.c.quote_id == quote_id).values(used_by_settlement_id=settlement_id)
        )

    # --- settlements ---------------------------------------------------------------------------

    def prefetch_entries(self, settlement_ids: Iterable[str]) -> list[Row]:
        """Entries with their lines and reversals, three queries for the lot; the entries found."""
        wanted = sorted(set(settlement_ids) - self._entries.keys())
        if wanted:
            for settlement_id in wanted:
                self._entries[settlement_id] = None
                self._entry_lines[settlement_id] = []
                self._reversed_by.setdefault(settlement_id, None)
            for found in _ENTRIES.rows(self.connection, (), wanted):
                self._entries[found["settlement_id"]] = found
            for found in _ENTRY_LINES.rows(self.connection, (), wanted):
                self._entry_lines[found["settlement_id"]].append(found)
            for found in _REVERSALS.rows(self.connection, (), wanted):
                self._reversed_by[found["reverses_id"]] = found["settlement_id"]
        return [found for found in (self._entries[s] for s in wanted) if found is not None]

    def prefetch_reversals(self, settlement_ids: Iterable[str]) -> None:
        """Which of these entries were reversed, one query for the lot (a list without lines needs no more)."""
        wanted = sorted(set(settlement_ids) - self._reversed_by.keys())
        if not wanted:
            return
        for settlement_id in wanted:
            self._reversed_by[settlement_id] = None
        for found in _REVERSALS.rows(self.connection, (), wanted):
            self._reversed_by[found["reverses_id"]] = found["settlement_id"]

    def settlement(self, settlement_id: str) -> Row | None:
        if settlement_id not in self._entries:
            self.prefetch_entries((settlement_id,))
        return self._entries[settlement_id]

    def settlement_lines(self, settlement_id: str) -> list[Row]:
        """In line order."""
        if settlement_id not in self._entries:
            self.prefetch_entries((settlement_id,))
        return list(self._entry_lines[settlement_id])

    def cancellation_of(self, settlement_id: str) -> str | None:
        if settlement_id not in self._reversed_by:
            self.prefetch_entries((settlement_id,))
        return self._reversed_by[settlement_id]

    def insert_settlement(self, row: Row, lines: Sequence[Row]) -> None:
        self._pending["settlements"].append(row)
        self._pending["settlement_lines"].extend(lines)
        settlement_id = str(row["settlement_id"])
        self._entries[settlement_id] = row
        self._entry_lines[settlement_id] = list(lines)
        self._reversed_by.setdefault(settlement_id, None)
        if row["reverses_id"] is not None:
            self._reversed_by[str(row["reverses_id"])] = settlement_id

    def list_settlements(
        self,
        *,
        hospital_id: str | None,
        person_number: str | None,
        first_day: dt.date,
        last_day: dt.date,
        after_id: str,
        limit: int,
    ) -> list[Row]:
        self._write_pending()
        conditions = [
            t.settlements.c.business_date >= first_day,
            t.settlements.c.business_date <= last_day,
            t.settlements.c.settlement_id > after_id,
        ]
        if hospital_id is not None:
            conditions.append(t.settlements.c.hospital_id == hospital_id)
        if person_number is not None:
            conditions.append(t.settlements.c.person_number == person_number)
        rows = self.connection.execute(
            select(t.settlements, t.hospitals.c.name.label("hospital_name"))
            .join(t.hospitals, t.hospitals.c.hospital_id == t.settlements.c.hospital_id)
            .where(and_(*conditions))
            .order_by(t.settlements.c.settlement_id)
            .limit(limit)
        )
        return [dict(row._mapping) for row in rows]

    # --- balances ------------------------------------------------------------------------------

    def write_account_state(self, person_number: str, year: int, state: AccountState) -> None:
        """Remember the person's new state; written at flush (one upsert covers a year's first visit too)."""
        self._balances[person_number] = (state.current_year_fen, state.historical_fen)
        self._accumulators[(person_number, year)] = (
            state.ytd_deductible_fen,
            state.ytd_fund_fen,
            state.ytd_self_segment_fen,
        )
        self._dirty_balances.add(person_number)
        self._dirty_accumulators.add((person_number, year))

    def _write_account_states(self) -> None:
        dialect = self.connection.dialect
        if self._dirty_balances:
            balances = _plan(
                dialect,
                "set balances",
                lambda: _RowsPlan.update(
                    t.accounts,
                    dialect,
                    key="person_number",
                    assignments={"current_year_fen": "v.column2", "historical_fen": "v.column3"},
                ),
            )
            balances.execute(
                self.connection,
                [
                    {"person_number": p, "current_year_fen": current, "historical_fen": historical}
                    for p in sorted(self._dirty_balances)
                    for current, historical in (self._balances[p],)
                ],
            )
            self._dirty_balances.clear()
        if not self._dirty_accumulators:
            return
        rows = [
            {"person_number": person, "year": year, "deductible_fen": deductible, "fund_fen": fund,
             "self_segment_fen": segment}
            for person, year in sorted(self._dirty_accumulators)
            for deductible, fund, segment in (self._accumulators[(person, year)],)
        ]  # fmt: skip
        # The year's first visit creates the row; later ones overwrite it: one statement either way.
        upsert = _plan(dialect, "upsert accumulators", lambda: _accumulator_upsert(dialect))
        upsert.execute(self.connection, rows)
        self._dirty_accumulators.clear()

    def post(self, entry_id: str, business_date: dt.date, postings: Sequence[Posting]) -> None:
        """Append postings; non-person account balances are buffered and written once per transaction."""
        if not postings:
            return
        self._pending["postings"].extend(
            {
                "settlement_id": entry_id,
                "sequence": n,
                "source": p.source,
                "destination": p.destination,
                "amount_fen": p.amount_fen,
                "business_date": business_date,
            }
            for n, p in enumerate(postings)
        )
        for posting in postings:
            for name, change in ((posting.source, -posting.amount_fen), (posting.destination, posting.amount_fen)):
                if not name.startswith("person:"):  # person balances live in the accounts table
                    self._ledger_deltas[name] = self._ledger_deltas.get(name, 0) + change

    # --- audit ---------------------------------------------------------------------------------

    def audit(
        self, *, at_us: int, actor: str, action: str, subject: str, outcome: str, detail: Mapping[str, object]
    ) -> None:
        """Append a hash-chained audit row (written at flush, in this same transaction)."""
        if self._audit_head is None:
            self._audit_head = self._load_audit_head()
        sequence, previous = self._audit_head
        entry = {
            "sequence": sequence + 1,
            "at_us": at_us,
            "actor": actor,
            "action": action,
            "subject": subject,
            "outcome": outcome,
            "detail": json.dumps(detail, ensure_ascii=False, sort_keys=True, default=str),
        }
        row_hash = audit_hash(previous, entry)
        self._audit_rows.append({**entry, "previous_hash": previous, "row_hash": row_hash})
        self._audit_head = (sequence + 1, row_hash)

    def _load_audit_head(self) -> tuple[int, str]:
        found = _AUDIT_HEAD.rows(self.connection, ())
        row = found[0] if found else None
        return (0, GENESIS_HASH) if row is None else (int(row["sequence"]), str(row["row_hash"]))

    # --- flush ---------------------------------------------------------------------------------

    def _write_pending(self) -> None:
        self._write_account_states()
        for name in ("settlements", "settlement_lines", "postings", "requests"):  # parents before children
            rows = self._pending[name]
            if rows:
                self._insert_many(t.metadata.tables[name], rows)
                self._pending[name] = []
        self._pending_requests.clear()

    def _insert_many(self, table: Table, rows: Sequence[Row]) -> None:
        dialect = self.connection.dialect
        _plan(dialect, f"insert {table.name}", lambda: _RowsPlan.insert(table, dialect)).execute(self.connection, rows)

    def flush(self) -> None:
        """Write everything buffered: entries, postings, requests, ledger deltas, audit rows. Call before commit."""
        self._write_pending()
        if self._ledger_deltas:
            dialect = self.connection.dialect
            names = sorted(self._ledger_deltas)
            opening = _plan(
                dialect,
                "open ledger accounts",
                lambda: _RowsPlan.insert(t.ledger_accounts, dialect, on_conflict_ignore=True),
            )
            opening.execute(
                self.connection,
                [{"name": n, "balance_fen": 0, "may_go_negative": may_go_negative(n)} for n in names],
            )
            _plan(
                dialect,
                "move ledger balances",
                lambda: _RowsPlan.update(
                    t.ledger_accounts, dialect, key="name", assignments={"balance_fen": "balance_fen + v.column2"}
                ),
            ).execute(
                self.connection,
                [{"name": n, "balance_fen": self._ledger_deltas[n]} for n in names if self._ledger_deltas[n]],
            )
            self._ledger_deltas.clear()
        if self._audit_rows:
            self._insert_many(t.audit_log, self._audit_rows)
            self._audit_rows = []

    # --- helpers -------------------------------------------------------------------------------

    def _one(self, statement: Any, **parameters: Any) -> Row | None:
        row = self.connection.execute(statement, parameters).first()
        return None if row is None else dict(row._mapping)
