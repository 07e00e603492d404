"""Reads and writes inside one transaction, with SQLAlchemy Core (the ORM stays off the settle path).

Owns: every SQL statement the handlers need, and the per-transaction buffers that turn many small
writes into a few multi-row statements (ledger-account deltas, audit rows). Must never decide anything
about money: it stores what the domain computed and returns rows as plain dicts.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, and_, func, insert, select, text, update

from settlement.domain.ledger import GENESIS_HASH, Posting, audit_hash, may_go_negative
from settlement.domain.split import AccountState
from settlement.storage import tables as t

Row = dict[str, Any]
_AUDIT_LOCK_KEY = 7_204_202_611  # pg_advisory_xact_lock key: one ledger writer at a time across processes


class Repository:
    """One transaction's view of the store. Create it inside ``engine.begin()`` (or the writer's batch)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._ledger_deltas: dict[str, int] = {}
        self._audit_rows: list[Row] = []
        self._audit_head: tuple[int, str] | None = None

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
        return self._one(select(t.hospitals).where(t.hospitals.c.hospital_id == hospital_id))

    def terminal(self, terminal_id: str) -> Row | None:
        return self._one(select(t.terminals).where(t.terminals.c.terminal_id == terminal_id))

    def person(self, person_number: str) -> Row | None:
        return self._one(select(t.persons).where(t.persons.c.person_number == person_number))

    def card(self, card_number: str) -> Row | None:
        return self._one(select(t.cards).where(t.cards.c.card_number == card_number))

    def account_state(self, person_number: str, year: int) -> AccountState | None:
        balances = self._one(select(t.accounts).where(t.accounts.c.person_number == person_number))
        if balances is None:
            return None
        ytd = self._one(
            select(t.accumulators).where(
                and_(t.accumulators.c.person_number == person_number, t.accumulators.c.year == year)
            )
        )
        return AccountState(
            current_year_fen=balances["current_year_fen"],
            historical_fen=balances["historical_fen"],
            ytd_deductible_fen=ytd["deductible_fen"] if ytd else 0,
            ytd_fund_fen=ytd["fund_fen"] if ytd else 0,
            ytd_self_segment_fen=ytd["self_segment_fen"] if ytd else 0,
        )

    def day_closed(self, hospital_id: str, business_date: dt.date) -> bool:
        found = self._one(
            select(t.closed_days.c.hospital_id).where(
                and_(t.closed_days.c.hospital_id == hospital_id, t.closed_days.c.business_date == business_date)
            )
        )
        return found is not None

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

    def set_card_counter(self, card_number: str, counter: int) -> None:
        self.connection.execute(
            update(t.cards).where(t.cards.c.card_number == card_number).values(last_counter=counter)
        )

    def insert_account(self, person_number: str) -> None:
        """An empty account; opening balances arrive as postings from ``external:funding``."""
        self.connection.execute(
            insert(t.accounts), {"person_number": person_number, "current_year_fen": 0, "historical_fen": 0}
        )

    def add_to_balances(self, person_number: str, *, current_year_fen: int, historical_fen: int) -> None:
        """Relative change (funding, rollover); the CHECK constraints refuse a negative result."""
        self.connection.execute(
            update(t.accounts)
            .where(t.accounts.c.person_number == person_number)
            .values(
                current_year_fen=t.accounts.c.current_year_fen + current_year_fen,
                historical_fen=t.accounts.c.historical_fen + historical_fen,
            )
        )

    # --- idempotency ---------------------------------------------------------------------------

    def request(self, hospital_id: str, request_id: str) -> Row | None:
        return self._one(
            select(t.requests).where(
                and_(t.requests.c.hospital_id == hospital_id, t.requests.c.request_id == request_id)
            )
        )

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
        self.connection.execute(
            insert(t.requests),
            {
                "hospital_id": hospital_id,
                "request_id": request_id,
                "request_hash": request_hash,
                "operation": operation,
                "settlement_id": settlement_id,
                "refusal": json.dumps(refusal, ensure_ascii=False, sort_keys=True) if refusal else None,
                "created_at_us": now_us,
            },
        )

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
        return self._one(select(t.settlements).where(t.settlements.c.settlement_id == settlement_id))

    def settlement_lines(self, settlement_id: str) -> list[Row]:
        rows = self.connection.execute(
            select(t.settlement_lines)
            .where(t.settlement_lines.c.settlement_id == settlement_id)
            .order_by(t.settlement_lines.c.line_number)
        )
        return [dict(row._mapping) for row in rows]

    def cancellation_of(self, settlement_id: str) -> str | None:
        found = self._one(select(t.settlements.c.settlement_id).where(t.settlements.c.reverses_id == settlement_id))
        return None if found is None else str(found["settlement_id"])

    def insert_settlement(self, row: Row, lines: Sequence[Row]) -> None:
        self.connection.execute(insert(t.settlements), row)
        if lines:
            self.connection.execute(insert(t.settlement_lines), list(lines))

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
        self.connection.execute(
            update(t.accounts)
            .where(t.accounts.c.person_number == person_number)
            .values(current_year_fen=state.current_year_fen, historical_fen=state.historical_fen)
        )
        values = {
            "deductible_fen": state.ytd_deductible_fen,
            "fund_fen": state.ytd_fund_fen,
            "self_segment_fen": state.ytd_self_segment_fen,
        }
        changed = self.connection.execute(
            update(t.accumulators)
            .where(and_(t.accumulators.c.person_number == person_number, t.accumulators.c.year == year))
            .values(**values)
        )
        if changed.rowcount == 0:
            self.connection.execute(insert(t.accumulators), {"person_number": person_number, "year": year, **values})

    def post(self, entry_id: str, business_date: dt.date, postings: Sequence[Posting]) -> None:
        """Append postings; non-person account balances are buffered and written once per transaction."""
        if not postings:
            return
        self.connection.execute(
            insert(t.postings),
            [
                {
                    "settlement_id": entry_id,
                    "sequence": n,
                    "source": p.source,
                    "destination": p.destination,
                    "amount_fen": p.amount_fen,
                    "business_date": business_date,
                }
                for n, p in enumerate(postings)
            ],
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

    def flush(self) -> None:
        """Write the buffered ledger-account deltas and audit rows. Call before commit."""
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
            self.connection.execute(insert(t.audit_log), self._audit_rows)
            self._audit_rows = []

    def discard_buffers(self) -> None:
        self._ledger_deltas.clear()
        self._audit_rows = []
        self._audit_head = None

    # --- helpers -------------------------------------------------------------------------------

    def _one(self, statement: Any) -> Row | None:
        row = self.connection.execute(statement).first()
        return None if row is None else dict(row._mapping)


def count_rows(connection: Connection, table_name: str) -> int:
    table = t.metadata.tables[table_name]
    return int(connection.execute(select(func.count()).select_from(table)).scalar_one())
