"""Reads and writes inside one transaction, with SQLAlchemy Core (the ORM stays off the settle path).

Owns: every SQL statement the handlers need, and the per-transaction buffers that turn many small
writes into a few multi-row statements (ledger-account deltas, audit rows). Must never decide anything
about money: it stores what the domain computed and returns rows as plain dicts.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Date, Dialect, Table, and_, bindparam, insert, select, text, update

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
_p, _c = t.persons, t.cards
_CARD_COLUMNS = [column.label(f"card__{column.name}") for column in _c.columns]
# A visit's person, card, balances and accumulators in one round trip (the database may be across a network).
_VISIT = (
    select(
        _p,
        _a.c.current_year_fen,
        _a.c.historical_fen,
        _y.c.deductible_fen,
        _y.c.fund_fen,
        _y.c.self_segment_fen,
        *_CARD_COLUMNS,
    )
    .select_from(
        _p.outerjoin(_a, _a.c.person_number == _p.c.person_number)
        .outerjoin(_y, and_(_y.c.person_number == _p.c.person_number, _y.c.year == bindparam("year")))
        .outerjoin(_c, _c.c.card_number == bindparam("card"))
    )
    .where(_p.c.person_number == bindparam("person"))
)
_DAY_CLOSED = select(t.closed_days.c.hospital_id).where(
    and_(t.closed_days.c.hospital_id == bindparam("hospital"), t.closed_days.c.business_date == bindparam("day"))
)
_REQUEST = select(t.requests).where(
    and_(t.requests.c.hospital_id == bindparam("hospital"), t.requests.c.request_id == bindparam("request"))
)
_SET_BALANCES = (
    update(_a)
    .where(_a.c.person_number == bindparam("person"))
    .values(current_year_fen=bindparam("current"), historical_fen=bindparam("historical"))
)
_SET_ACCUMULATORS = (
    update(_y)
    .where(and_(_y.c.person_number == bindparam("person"), _y.c.year == bindparam("accumulator_year")))
    .values(deductible_fen=bindparam("deductible"), fund_fen=bindparam("fund"), self_segment_fen=bindparam("segment"))
)
_AUDIT_LOCK_KEY = 7_204_202_611  # pg_advisory_xact_lock key: one ledger writer at a time across processes


@dataclass(frozen=True)
class _InsertPlan:
    sql: str
    names: tuple[str, ...]  # parameter order for positional drivers; empty for named ones
    dates_as_text: frozenset[str]

    @staticmethod
    def of(table: Table, dialect: Dialect) -> _InsertPlan:
        compiled = insert(table).compile(dialect=dialect, column_keys=[column.name for column in table.columns])
        dates = (
            frozenset(c.name for c in table.columns if isinstance(c.type, Date))
            if dialect.name == "sqlite"
            else frozenset()
        )
        return _InsertPlan(compiled.string, tuple(compiled.positiontup or ()), dates)

    def parameters(self, row: Row) -> tuple[Any, ...] | dict[str, Any]:
        if self.dates_as_text:
            row = {**row, **{name: row[name].isoformat() for name in self.dates_as_text if row[name] is not None}}
        if self.names:
            return tuple(row[name] for name in self.names)
        return row


_INSERT_PLANS: dict[tuple[str, str], _InsertPlan] = {}


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
        self._accumulators: dict[tuple[str, int], tuple[int, int, int, bool]] = {}  # ..., row exists
        self._dirty_balances: set[str] = set()
        self._dirty_accumulators: set[tuple[str, int]] = set()
        self._days_closed: dict[tuple[str, dt.date], bool] = {}
        self._known_requests: dict[tuple[str, str], Row | None] = {}

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

    def prefetch_visit(self, person_number: str, year: int, card_number: str) -> None:
        """Person, card, balances and the year's accumulators in one query; the readers below then hit memory."""
        if ("person", person_number) in self._reference and person_number in self._balances:
            return
        row = self._one(_VISIT, person=person_number, year=year, card=card_number)
        if row is None:
            return  # person() will say so
        self._reference.setdefault(("person", person_number), {c.name: row[c.name] for c in _p.columns})
        if card_number and ("card", card_number) not in self._reference:
            card = {c.name: row[f"card__{c.name}"] for c in _c.columns}
            self._reference[("card", card_number)] = card if card["card_number"] is not None else None
        if row["current_year_fen"] is not None and person_number not in self._balances:
            self._balances[person_number] = (row["current_year_fen"], row["historical_fen"])
            self._accumulators.setdefault(
                (person_number, year),
                (row["deductible_fen"] or 0, row["fund_fen"] or 0, row["self_segment_fen"] or 0,
                 row["deductible_fen"] is not None),
            )  # fmt: skip

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
            exists = row["deductible_fen"] is not None
            self._accumulators.setdefault(
                (person_number, year),
                (row["deductible_fen"] or 0, row["fund_fen"] or 0, row["self_segment_fen"] or 0, exists),
            )
        current, historical = self._balances[person_number]
        deductible, fund, segment, _ = self._accumulators[(person_number, year)]
        return AccountState(current, historical, deductible, fund, segment)

    def day_closed(self, hospital_id: str, business_date: dt.date) -> bool:
        """Read once per transaction: a close takes the same writer lock, so it cannot land in between."""
        key = (hospital_id, business_date)
        if key not in self._days_closed:
            self._days_closed[key] = self._one(_DAY_CLOSED, hospital=hospital_id, day=business_date) is not None
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
            # Equality on the key's first column and IN on the second: both stores search the primary key
            # (a row-value IN makes SQLite scan the whole table).
            found = self.connection.execute(
                select(t.requests).where(
                    and_(t.requests.c.hospital_id == hospital_id, t.requests.c.request_id.in_(request_ids))
                )
            )
            for row in found:
                self._known_requests[(row.hospital_id, row.request_id)] = dict(row._mapping)

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

    def settlement(self, settlement_id: str) -> Row | None:
        self._write_pending()
        return self._one(select(t.settlements).where(t.settlements.c.settlement_id == settlement_id))

    def settlement_lines(self, settlement_id: str) -> list[Row]:
        self._write_pending()
        rows = self.connection.execute(
            select(t.settlement_lines)
            .where(t.settlement_lines.c.settlement_id == settlement_id)
            .order_by(t.settlement_lines.c.line_number)
        )
        return [dict(row._mapping) for row in rows]

    def cancellation_of(self, settlement_id: str) -> str | None:
        self._write_pending()
        found = self._one(select(t.settlements.c.settlement_id).where(t.settlements.c.reverses_id == settlement_id))
        return None if found is None else str(found["settlement_id"])

    def insert_settlement(self, row: Row, lines: Sequence[Row]) -> None:
        self._pending["settlements"].append(row)
        self._pending["settlement_lines"].extend(lines)

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
        """Remember the person's new state; written at flush (after ``account_state`` read it)."""
        if (person_number, year) not in self._accumulators:
            self.account_state(person_number, year)
        exists = self._accumulators[(person_number, year)][3]
        self._balances[person_number] = (state.current_year_fen, state.historical_fen)
        self._accumulators[(person_number, year)] = (
            state.ytd_deductible_fen,
            state.ytd_fund_fen,
            state.ytd_self_segment_fen,
            exists,
        )
        self._dirty_balances.add(person_number)
        self._dirty_accumulators.add((person_number, year))

    def _write_account_states(self) -> None:
        if self._dirty_balances:
            self.connection.execute(
                _SET_BALANCES,
                [
                    {"person": p, "current": self._balances[p][0], "historical": self._balances[p][1]}
                    for p in sorted(self._dirty_balances)
                ],
            )
            self._dirty_balances.clear()
        if not self._dirty_accumulators:
            return
        updates, inserts = [], []
        for person, year in sorted(self._dirty_accumulators):
            deductible, fund, segment, exists = self._accumulators[(person, year)]
            if exists:
                updates.append(
                    {
                        "person": person,
                        "accumulator_year": year,
                        "deductible": deductible,
                        "fund": fund,
                        "segment": segment,
                    }
                )
            else:
                inserts.append(
                    {
                        "person_number": person,
                        "year": year,
                        "deductible_fen": deductible,
                        "fund_fen": fund,
                        "self_segment_fen": segment,
                    }
                )
                self._accumulators[(person, year)] = (deductible, fund, segment, True)
        if updates:
            self.connection.execute(_SET_ACCUMULATORS, updates)
        if inserts:
            self.connection.execute(insert(t.accumulators), inserts)
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
        row = self._one(
            select(t.audit_log.c.sequence, t.audit_log.c.row_hash).order_by(t.audit_log.c.sequence.desc()).limit(1)
        )
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
        """A multi-row INSERT of complete rows, compiled once per dialect and handed to the driver as is.

        SQLAlchemy's per-row parameter processing costs the writer more than the insert itself; the only
        conversion these tables need is a date to its ISO text on SQLite (what SQLAlchemy's Date does).
        """
        key = (self.connection.dialect.name, table.name)
        plan = _INSERT_PLANS.get(key)
        if plan is None:
            plan = _InsertPlan.of(table, self.connection.dialect)
            _INSERT_PLANS[key] = plan
        self.connection.exec_driver_sql(plan.sql, [plan.parameters(row) for row in rows])

    def flush(self) -> None:
        """Write everything buffered: entries, postings, requests, ledger deltas, audit rows. Call before commit."""
        self._write_pending()
        if self._ledger_deltas:
            names = sorted(self._ledger_deltas)
            existing = {
                row[0]
                for row in self.connection.execute(
                    select(t.ledger_accounts.c.name).where(t.ledger_accounts.c.name.in_(names))
                )
            }
            missing = [n for n in names if n not in existing]
            if missing:
                self.connection.execute(
                    insert(t.ledger_accounts),
                    [{"name": n, "balance_fen": 0, "may_go_negative": may_go_negative(n)} for n in missing],
                )
            for name in names:
                change = self._ledger_deltas[name]
                if change:
                    self.connection.execute(
                        update(t.ledger_accounts)
                        .where(t.ledger_accounts.c.name == name)
                        .values(balance_fen=t.ledger_accounts.c.balance_fen + change)
                    )
            self._ledger_deltas.clear()
        if self._audit_rows:
            self._insert_many(t.audit_log, self._audit_rows)
            self._audit_rows = []

    # --- helpers -------------------------------------------------------------------------------

    def _one(self, statement: Any, **parameters: Any) -> Row | None:
        row = self.connection.execute(statement, parameters).first()
        return None if row is None else dict(row._mapping)

