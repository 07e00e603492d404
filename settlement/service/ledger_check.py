"""The ledger check: is every fen where the postings say it is, and is the audit log untouched?

Owns: ``check_ledger``, which verifies, and names exactly what is wrong:

- trial balance: the stored balances of all accounts (``ledger_accounts`` and both balances of every
  person in ``accounts``) sum to zero — money only moves, and ``external:*`` accounts show where it entered;
- every stored balance equals the net of its postings, every posted account has a stored balance;
- every entry's postings are numbered 0..n-1 with positive amounts between two different accounts (a
  posting moves one amount from one account to another, so each entry balances by construction);
- every settlement's postings move exactly its split: fund pool, current-year and historical accounts to
  the hospital's receivable, patient cash to the hospital's till; a cancellation stores the negated split
  and posts the reverse; a cancellation negates the settlement it reverses; total = fund + accounts + cash;
- no internal account below zero, and only external accounts and fund pools flagged as allowed to;
- the audit chain from the genesis hash: contiguous sequences, each row's ``previous_hash`` is the prior
  row's hash, each row's hash recomputed from its content; every closed day's audit head is in the log.

Must never write, and must never load the postings into Python: sums are grouped in SQL and only the
rows that disagree come back, so a million postings take seconds. Give it a connection that sees one
snapshot (PostgreSQL REPEATABLE READ, or one SQLite read transaction) when writers are running.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Row,
    ScalarSelect,
    Select,
    String,
    Table,
    and_,
    case,
    func,
    literal,
    literal_column,
    or_,
    select,
    union_all,
)

from settlement.domain.ledger import (
    FUNDING,
    GENESIS_HASH,
    PATIENT_CASH,
    audit_hash,
    fund_pool,
    hospital_cash,
    hospital_receivable,
    may_go_negative,
    person_current,
    person_historical,
)
from settlement.domain.money import format_yuan
from settlement.storage import tables as t

MAX_PROBLEMS_PER_CHECK = 50  # a broken ledger is named precisely; beyond this, a count is enough
AUDIT_ROWS_PER_FETCH = 10_000


@dataclass
class LedgerReport:
    problems: list[str] = field(default_factory=list)
    accounts: int = 0  # ledger accounts plus two per person
    postings: int = 0
    settlements: int = 0
    audit_rows: int = 0
    funded_fen: int = 0  # net that entered through external:funding (opening balances, annual funding)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        return (
            f"{self.accounts} accounts, {self.postings} postings, {self.settlements} settlement entries, "
            f"{self.audit_rows} audit rows; {format_yuan(self.funded_fen)} yuan funded"
        )


def check_ledger(connection: Connection) -> LedgerReport:
    report = LedgerReport()
    _count(connection, report)
    _trial_balance(connection, report)
    _balances_match_postings(connection, report)
    _entries_well_formed(connection, report)
    _settlements_match_postings(connection, report)
    _split_amounts_consistent(connection, report)
    _nothing_internal_negative(connection, report)
    _audit_chain(connection, report)
    return report


def _named(account_name: Callable[[str], str], column: ColumnElement[str]) -> ColumnElement[str]:
    """The SQL for ``account_name(column)``: the domain's own name pattern, so the two cannot drift apart."""
    prefix, suffix = account_name("\0").split("\0")
    return literal(prefix, String) + column + literal(suffix, String)


def _zero() -> ColumnElement[int]:
    return literal_column("0", BigInteger)


def _add(report: LedgerReport, rows: Sequence[Any], describe: Callable[[Any], str]) -> None:
    for row in rows[:MAX_PROBLEMS_PER_CHECK]:
        report.problems.append(describe(row))
    if len(rows) > MAX_PROBLEMS_PER_CHECK:
        report.problems.append(f"... and more of the kind above (only the first {MAX_PROBLEMS_PER_CHECK} shown)")


def _first(connection: Connection, query: Select[Any]) -> list[Row[Any]]:
    return list(connection.execute(query.limit(MAX_PROBLEMS_PER_CHECK + 1)))


def _count(connection: Connection, report: LedgerReport) -> None:
    def count(table: Table) -> ScalarSelect[int]:
        return select(func.count()).select_from(table).scalar_subquery()

    row = connection.execute(
        select(count(t.ledger_accounts) + 2 * count(t.accounts), count(t.settlements), count(t.audit_log))
    ).one()
    report.accounts, report.settlements, report.audit_rows = int(row[0]), int(row[1]), int(row[2])
    p = t.postings.c
    entering = case((p.source == FUNDING, p.amount_fen), (p.destination == FUNDING, -p.amount_fen), else_=_zero())
    postings, funded = connection.execute(select(func.count(), func.coalesce(func.sum(entering), 0))).one()
    report.postings, report.funded_fen = int(postings), int(funded)


def _trial_balance(connection: Connection, report: LedgerReport) -> None:
    ledger_fen, persons_fen = connection.execute(
        select(
            select(func.coalesce(func.sum(t.ledger_accounts.c.balance_fen), 0)).scalar_subquery(),
            select(
                func.coalesce(func.sum(t.accounts.c.current_year_fen + t.accounts.c.historical_fen), 0)
            ).scalar_subquery(),
        )
    ).one()
    total = int(ledger_fen) + int(persons_fen)
    if total != 0:
        report.problems.append(
            f"trial balance: stored balances sum to {total} fen, not 0 (ledger accounts {int(ledger_fen)},"
            f" personal accounts {int(persons_fen)})"
        )


def _balances_match_postings(connection: Connection, report: LedgerReport) -> None:
    a, p, one = t.accounts.c, t.postings.c, literal_column("1", BigInteger)
    movements = union_all(
        select(
            t.ledger_accounts.c.name.label("name"),
            t.ledger_accounts.c.balance_fen.label("stored_fen"),
            _zero().label("posted_fen"),
            one.label("stored_rows"),
        ),
        select(_named(person_current, a.person_number), a.current_year_fen, _zero(), one),
        select(_named(person_historical, a.person_number), a.historical_fen, _zero(), one),
        select(p.destination, _zero(), p.amount_fen, _zero()),
        select(p.source, _zero(), -p.amount_fen, _zero()),
    ).subquery("movements")
    m = movements.c
    stored, posted, stored_rows = func.sum(m.stored_fen), func.sum(m.posted_fen), func.sum(m.stored_rows)
    rows = _first(
        connection,
        select(m.name, stored, posted, stored_rows)
        .group_by(m.name)
        .having(or_(stored != posted, stored_rows != 1))
        .order_by(m.name),
    )

    def describe(row: Any) -> str:
        name, stored, posted, stored_rows = row[0], int(row[1]), int(row[2]), int(row[3])
        if stored_rows == 0:
            return f"account {name}: postings net {posted} fen but it has no stored balance"
        if stored_rows > 1:
            return f"account {name}: stored {stored_rows} times"
        return f"account {name}: stored balance {stored} fen, its postings net {posted} fen (off by {stored - posted})"

    _add(report, rows, describe)


def _entries_well_formed(connection: Connection, report: LedgerReport) -> None:
    p = t.postings.c
    rows = _first(
        connection,
        select(p.settlement_id, p.sequence, p.source, p.destination, p.amount_fen)
        .where(or_(p.amount_fen <= 0, p.source == p.destination))
        .order_by(p.settlement_id, p.sequence),
    )
    _add(report, rows, lambda r: f"entry {r[0]} posting {r[1]}: {r[4]} fen from {r[2]} to {r[3]} moves nothing real")
    rows = _first(
        connection,
        select(p.settlement_id, func.count(), func.min(p.sequence), func.max(p.sequence))
        .group_by(p.settlement_id)
        .having(or_(func.min(p.sequence) != 0, func.max(p.sequence) != func.count() - 1))
        .order_by(p.settlement_id),
    )
    _add(report, rows, lambda r: f"entry {r[0]}: postings numbered {r[2]}..{r[3]} but {r[1]} present (one is missing)")


def _settlements_match_postings(connection: Connection, report: LedgerReport) -> None:
    """Per settlement, the net each of its four account pairs posted against what its split says."""
    s, p = t.settlements.c, t.postings.c
    named = (
        select(
            s.settlement_id,
            s.region,
            s.person_number,
            s.hospital_id,
            s.fund_paid_fen,
            s.current_year_paid_fen,
            s.historical_paid_fen,
            s.cash_fen,
            _named(fund_pool, s.region).label("pool"),
            _named(person_current, s.person_number).label("current"),
            _named(person_historical, s.person_number).label("historical"),
            _named(hospital_receivable, s.hospital_id).label("receivable"),
            _named(hospital_cash, s.hospital_id).label("till"),
        )
        .cte("named_settlements")
        # SQLite would otherwise rebuild the names for every posting (2x slower); PostgreSQL inlines it.
        .prefix_with("MATERIALIZED", dialect="sqlite")
    )
    n = named.c
    pairs = (
        (n.pool, n.receivable, n.fund_paid_fen),
        (n.current, n.receivable, n.current_year_paid_fen),
        (n.historical, n.receivable, n.historical_paid_fen),
        (literal(PATIENT_CASH, String), n.till, n.cash_fen),
    )
    forward = [and_(p.source == payer, p.destination == payee) for payer, payee, _ in pairs]
    backward = [and_(p.source == payee, p.destination == payer) for payer, payee, _ in pairs]
    posted = [
        func.coalesce(func.sum(case((ahead, p.amount_fen), (back, -p.amount_fen), else_=_zero())), 0)
        for ahead, back in zip(forward, backward, strict=True)
    ]
    matched = or_(p.settlement_id.is_(None), *forward, *backward)
    stray = func.coalesce(func.sum(case((matched, _zero()), else_=literal_column("1", BigInteger))), 0)
    split = [func.max(amount) for _, _, amount in pairs]  # one value per settlement: max() only carries it
    rows = _first(
        connection,
        select(n.settlement_id, func.max(n.region), func.max(n.person_number), func.max(n.hospital_id), stray)
        .add_columns(*split, *posted)
        .join_from(named, t.postings, p.settlement_id == n.settlement_id, isouter=True)
        .group_by(n.settlement_id)
        .having(or_(stray != 0, *(amount != total for amount, total in zip(split, posted, strict=True))))
        .order_by(n.settlement_id),
    )
    for row in rows[:MAX_PROBLEMS_PER_CHECK]:
        _describe_settlement(report, row)
    if len(rows) > MAX_PROBLEMS_PER_CHECK:
        report.problems.append(f"... and more of the kind above (only the first {MAX_PROBLEMS_PER_CHECK} shown)")


def _describe_settlement(report: LedgerReport, row: Any) -> None:
    entry, region, person, hospital, strays = row[0], row[1], row[2], row[3], int(row[4])
    receivable = hospital_receivable(hospital)
    pairs = (
        (fund_pool(region), receivable),
        (person_current(person), receivable),
        (person_historical(person), receivable),
        (PATIENT_CASH, hospital_cash(hospital)),
    )
    for number, (payer, payee) in enumerate(pairs):
        split_fen, posted_fen = int(row[5 + number]), int(row[9 + number])
        if split_fen == posted_fen:
            continue
        source, destination = payer, payee
        if split_fen < 0 or (split_fen == 0 and posted_fen < 0):  # say it the way the money moves
            source, destination, split_fen, posted_fen = payee, payer, -split_fen, -posted_fen
        report.problems.append(
            f"settlement {entry}: its split moves {split_fen} fen from {source} to {destination}, "
            f"its postings move {posted_fen} fen"
        )
    if strays:
        report.problems.append(f"settlement {entry}: {strays} posting(s) between accounts its split does not name")


def _split_amounts_consistent(connection: Connection, report: LedgerReport) -> None:
    """Signs by kind, total = fund + accounts + cash, and a cancellation negating what it reverses."""
    s = t.settlements.c
    split = (s.fund_paid_fen, s.current_year_paid_fen, s.historical_paid_fen, s.cash_fen)
    rows = _first(
        connection,
        select(s.settlement_id, s.kind)
        .where(
            or_(
                and_(s.kind == "settlement", or_(*(amount < 0 for amount in split))),
                and_(s.kind == "cancellation", or_(*(amount > 0 for amount in split))),
            )
        )
        .order_by(s.settlement_id),
    )
    _add(report, rows, lambda r: f"settlement {r[0]}: a {r[1]} with a split amount of the wrong sign")
    paid = split[0] + split[1] + split[2] + split[3]
    rows = _first(
        connection, select(s.settlement_id, s.total_fen, paid).where(s.total_fen != paid).order_by(s.settlement_id)
    )
    _add(report, rows, lambda r: f"settlement {r[0]}: total {r[1]} fen but fund + accounts + cash = {r[2]} fen")
    cancellation, original = t.settlements.alias("cancellation"), t.settlements.alias("original")
    compared = ("fund_paid_fen", "current_year_paid_fen", "historical_paid_fen", "cash_fen", "total_fen")
    rows = _first(
        connection,
        select(cancellation.c.settlement_id, original.c.settlement_id)
        .join_from(cancellation, original, original.c.settlement_id == cancellation.c.reverses_id)
        .where(or_(*(cancellation.c[column] != -original.c[column] for column in compared)))
        .order_by(cancellation.c.settlement_id),
    )
    _add(report, rows, lambda r: f"cancellation {r[0]} does not negate the split of settlement {r[1]}")


def _nothing_internal_negative(connection: Connection, report: LedgerReport) -> None:
    ledger = t.ledger_accounts.c
    for row in connection.execute(select(t.ledger_accounts).where(or_(ledger.balance_fen < 0, ledger.may_go_negative))):
        if may_go_negative(row.name):
            continue
        if row.balance_fen < 0:
            report.problems.append(f"account {row.name}: internal, but its balance is {row.balance_fen} fen")
        else:
            report.problems.append(f"account {row.name}: internal, but flagged as allowed to go negative")
    a = t.accounts.c
    rows = _first(
        connection,
        select(a.person_number, a.current_year_fen, a.historical_fen)
        .where(or_(a.current_year_fen < 0, a.historical_fen < 0))
        .order_by(a.person_number),
    )
    _add(report, rows, lambda r: f"person {r[0]}: negative balance (current-year {r[1]}, historical {r[2]} fen)")


def _audit_chain(connection: Connection, report: LedgerReport) -> None:
    closed_heads = {
        str(head): f"{hospital_id} {day}"
        for hospital_id, day, head in connection.execute(
            select(t.closed_days.c.hospital_id, t.closed_days.c.business_date, t.closed_days.c.audit_head)
        )
        if head != GENESIS_HASH
    }
    found: list[str] = []
    expected_sequence, previous = 1, GENESIS_HASH
    a = t.audit_log.c
    columns = (a.sequence, a.at_us, a.actor, a.action, a.subject, a.outcome, a.detail, a.previous_hash, a.row_hash)
    # Streamed; the option goes on the statement, never on the caller's connection (set there, it would stay).
    rows = connection.execute(select(*columns).order_by(a.sequence).execution_options(yield_per=AUDIT_ROWS_PER_FETCH))
    try:
        for sequence, at_us, actor, action, subject, outcome, detail, previous_hash, row_hash in rows:
            if sequence != expected_sequence:
                gap = f"{expected_sequence}..{sequence - 1} are missing" if sequence > expected_sequence else "repeats"
                found.append(f"audit sequence {sequence}: rows {gap}")
            if previous_hash != previous:
                found.append(f"audit sequence {sequence}: previous_hash does not match the row before it")
            entry = {
                "sequence": int(sequence),
                "at_us": int(at_us),
                "actor": actor,
                "action": action,
                "subject": subject,
                "outcome": outcome,
                "detail": detail,
            }  # exactly what Repository.audit hashed
            if audit_hash(previous_hash, entry) != row_hash:
                found.append(f"audit sequence {sequence}: altered (its hash does not match its content)")
            expected_sequence, previous = sequence + 1, row_hash
            closed_heads.pop(row_hash, None)
            if len(found) > MAX_PROBLEMS_PER_CHECK:
                break  # enough to say where the chain breaks; the rest is not read
    finally:
        rows.close()  # a server-side cursor on PostgreSQL, possibly not read to the end
    _add(report, found, str)
    for closed_day in sorted(closed_heads.values()):
        report.problems.append(f"closed day {closed_day}: its audit head is no longer in the audit log")
