"""Who takes part: hospitals with their terminals (a TOML file) and insured persons with their cards and
opening balances (a CSV file), each file imported all or nothing.

Owns: reading and validating both files before anything is written (every problem named by file, line
or key, and column), and writing a valid file in one transaction with its postings and audit rows.
An enrolment file is imported once: its run id is the SHA-256 of its bytes, so the same file again is a
no-op. A hospital file may be imported again: identical entries are no-ops, conflicting ones are refused.
Must never store or print a citizen ID in clear (keyed hash and last 4 only) nor a full card number.

Hospital TOML: ``[[hospital]]`` tables (hospital_id, name, level 1-3, region, card_proof_required) each
with ``[[hospital.terminal]]`` tables (terminal_id, name, channel desk/his); see ``demo/hospitals.toml``.

Enrolment CSV (UTF-8, a BOM is fine; another encoding such as ``gb18030`` by name), one row per person
and card, with this header in any order::

    person_number,name,insured_type,region,citizen_id,card_number,card_status,key_reference,
    current_year_fen,historical_fen

``insured_type`` is employee / retired / resident (or 在职职工 / 退休职工 / 城乡居民), ``card_status``
active / lost / blocked (or 正常 / 挂失 / 冻结), balances are whole fen (no decimal point). Residents hold
no personal account, so their balances must be 0. Opening balances are posted from ``external:funding``.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, insert, select

from cardio.limits import TERMINAL_ID_MAX_BYTES as CARD_TERMINAL_ID_MAX_BYTES
from settlement import limits
from settlement.domain import InsuredType
from settlement.domain.ledger import FUNDING, Posting, person_current, person_historical
from settlement.errors import InvalidImportFile
from settlement.identity import citizen_id_hash, citizen_id_is_valid, last4, mask
from settlement.service.clock import Clock
from settlement.storage import tables as t
from settlement.storage.engine import Engines
from settlement.storage.repository import Repository

ENROLMENT_COLUMNS = (
    "person_number",
    "name",
    "insured_type",
    "region",
    "citizen_id",
    "card_number",
    "card_status",
    "key_reference",
    "current_year_fen",
    "historical_fen",
)
ENROLMENT_RUN_KIND = "enrolment"
MAX_REPORTED_PROBLEMS = 1000  # beyond this a file is hopeless; the count of the rest is still given
MAX_OPENING_BALANCE_FEN = 100_000_000  # one million yuan: far above any personal medical account
MAX_NAME_CHARS = 64
PERSONS_PER_ENTRY = 10_000  # opening-balance postings per ledger entry (bounds one INSERT's size)
ROWS_PER_STATEMENT = 1_000  # rows per multi-row INSERT and per IN (...) lookup
_PERSON_NUMBER = re.compile(r"[A-Za-z0-9]{1,30}")  # psn_no: at most 30 characters in the national spec
_CARD_NUMBER = re.compile(r"[A-Za-z0-9]{6,32}")
_KEY_REFERENCE = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_REFERENCE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # hospital and terminal ids
_ID_RULE = "1 to 64 letters, digits, '.', '_' or '-'"
_FEN = re.compile(r"[0-9]{1,12}")
_INSURED_TYPES = {
    **{member.value: member.value for member in InsuredType},
    "在职职工": InsuredType.EMPLOYEE.value,
    "退休职工": InsuredType.RETIRED.value,
    "城乡居民": InsuredType.RESIDENT.value,
}
_CARD_STATUSES = {"active": "active", "lost": "lost", "blocked": "blocked"}
_CARD_STATUSES.update({"正常": "active", "挂失": "lost", "冻结": "blocked"})
_Value = TypeVar("_Value")


# --- hospitals and terminals -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TerminalEntry:
    terminal_id: str
    name: str
    channel: str  # desk (a doctor's-desk reader) or his (a hospital system's adapter)
    key: str  # where it is in the file, for messages


@dataclass(frozen=True, slots=True)
class HospitalEntry:
    hospital_id: str
    name: str
    level: int
    region: str
    card_proof_required: bool
    terminals: tuple[TerminalEntry, ...]
    key: str


@dataclass(frozen=True, slots=True)
class HospitalImport:
    hospitals_added: int
    terminals_added: int
    unchanged: int  # hospitals and terminals already registered exactly as in the file


def read_hospitals(path: Path, regions: frozenset[str]) -> list[HospitalEntry]:
    """Every ``[[hospital]]`` with its ``[[hospital.terminal]]`` tables, checked; refusals name the key."""
    try:
        document = tomllib.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise _file_refused(path, "(file)", f"cannot read: {error}") from None
    file = _TomlReader(path)
    file.only(document, {"hospital"}, "")
    raw = document.get("hospital")
    if not isinstance(raw, list) or not raw:
        raise _file_refused(path, "hospital", "at least one [[hospital]] table is required")
    hospitals: list[HospitalEntry] = []
    hospital_keys: dict[str, str] = {}
    terminal_keys: dict[str, str] = {}
    known = f"one of {', '.join(sorted(regions))} (the folders of the policy directory)"
    for n, table in enumerate(raw):
        where = f"hospital[{n}]"
        file.only(table, {"hospital_id", "name", "level", "region", "card_proof_required", "terminal"}, where)
        hospital_id = file.get(table, "hospital_id", where, str, valid=_REFERENCE_ID.fullmatch, expected=_ID_RULE)
        file.unique(hospital_keys, hospital_id, f"{where}.hospital_id")
        raw_terminals = table.get("terminal", [])
        if not isinstance(raw_terminals, list):
            raise _file_refused(path, f"{where}.terminal", "must be [[hospital.terminal]] tables")
        terminals = []
        for m, terminal in enumerate(raw_terminals):
            at = f"{where}.terminal[{m}]"
            file.only(terminal, {"terminal_id", "name", "channel"}, at)
            terminal_id = file.get(terminal, "terminal_id", at, str, valid=_REFERENCE_ID.fullmatch, expected=_ID_RULE)
            file.unique(terminal_keys, terminal_id, f"{at}.terminal_id")
            channel = file.get(
                terminal, "channel", at, str, valid={"desk", "his"}.__contains__, expected='"desk" or "his"'
            )
            if channel == "desk" and len(terminal_id) > CARD_TERMINAL_ID_MAX_BYTES:
                raise _file_refused(
                    path,
                    f"{at}.terminal_id",
                    f"a desk terminal's id is signed by the card, which takes at most {CARD_TERMINAL_ID_MAX_BYTES} "
                    f"characters; {terminal_id!r} has {len(terminal_id)}",
                )
            terminals.append(TerminalEntry(terminal_id, file.get(terminal, "name", at, str), channel, at))
        hospitals.append(
            HospitalEntry(
                hospital_id=hospital_id,
                name=file.get(table, "name", where, str),
                level=file.get(table, "level", where, int, valid=(1, 2, 3).__contains__, expected="1, 2 or 3"),
                region=file.get(table, "region", where, str, valid=regions.__contains__, expected=known),
                card_proof_required=file.get(
                    {"card_proof_required": False, **table}, "card_proof_required", where, bool
                ),
                terminals=tuple(terminals),
                key=where,
            )
        )
    return hospitals


def register_hospitals(
    engines: Engines, path: Path, *, regions: frozenset[str], actor: str, clock: Clock
) -> HospitalImport:
    """Add what is new, skip what is identical, refuse (writing nothing) what conflicts."""
    entries = read_hospitals(path, regions)
    added_hospitals, added_terminals, unchanged = 0, 0, 0
    with engines.write_transaction() as connection:
        repo = Repository(connection)
        repo.lock_for_writing(())
        for entry in entries:
            wanted: dict[str, object] = {
                "name": entry.name,
                "level": entry.level,
                "region": entry.region,
                "card_proof_required": entry.card_proof_required,
            }
            stored = repo.hospital(entry.hospital_id)
            if stored is None:
                repo.insert_hospital(
                    hospital_id=entry.hospital_id,
                    name=entry.name,
                    level=entry.level,
                    region=entry.region,
                    card_proof_required=entry.card_proof_required,
                )
                added_hospitals += 1
            else:
                _same_or_refuse(path, entry.key, entry.hospital_id, stored, wanted)
                unchanged += 1
            for terminal in entry.terminals:
                wanted = {"hospital_id": entry.hospital_id, "name": terminal.name, "channel": terminal.channel}
                existing = repo.terminal(terminal.terminal_id)
                if existing is None:
                    repo.insert_terminal(
                        terminal_id=terminal.terminal_id,
                        hospital_id=entry.hospital_id,
                        name=terminal.name,
                        channel=terminal.channel,
                    )
                    added_terminals += 1
                else:
                    _same_or_refuse(path, terminal.key, terminal.terminal_id, existing, wanted)
                    unchanged += 1
        if added_hospitals or added_terminals:
            repo.audit(
                at_us=clock.now_us(),
                actor=actor,
                action="hospitals.import",
                subject=path.name,
                outcome="ok",
                detail={
                    "hospitals": [entry.hospital_id for entry in entries],
                    "hospitals_added": added_hospitals,
                    "terminals_added": added_terminals,
                },
            )
        repo.flush()
    return HospitalImport(added_hospitals, added_terminals, unchanged)


def _same_or_refuse(
    path: Path, key: str, identifier: str, stored: Mapping[str, Any], wanted: Mapping[str, object]
) -> None:
    for field, value in wanted.items():
        if stored.get(field) != value:
            raise _file_refused(
                path,
                f"{key}.{field}",
                f"{identifier} is already registered with {field} = {stored.get(field)!r}, the file says {value!r}",
            )


class _TomlReader:
    """Typed getters naming the file and key in every refusal."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def only(self, table: object, allowed: set[str], where: str) -> None:
        if not isinstance(table, dict):
            raise _file_refused(self.path, where or "(file)", "must be a table")
        for key in table:
            if key not in allowed:
                raise _file_refused(
                    self.path, f"{where}.{key}" if where else key, f"unknown key; expected {sorted(allowed)}"
                )

    def get(
        self,
        table: Mapping[str, Any],
        key: str,
        where: str,
        kind: type[_Value],
        *,
        valid: Callable[[Any], object] | None = None,
        expected: str = "",
    ) -> _Value:
        value = table.get(key)
        blank = isinstance(value, str) and not value.strip()
        if type(value) is not kind or blank or (valid is not None and not valid(value)):
            wanted = expected or f"a non-empty {kind.__name__}"
            shown = "missing" if value is None else f"{value!r}"
            raise _file_refused(self.path, f"{where}.{key}", f"must be {wanted}, got {shown}")
        return value  # checked by ``type(value) is kind`` above

    def unique(self, first_key: dict[str, str], identifier: str, key: str) -> None:
        earlier = first_key.setdefault(identifier, key)
        if earlier != key:
            raise _file_refused(self.path, key, f"{identifier} also appears at {earlier}")


def _file_refused(path: Path, key: str, problem: str) -> InvalidImportFile:
    return InvalidImportFile(f"{path}: {key}: {problem}; nothing imported", field=key, metadata={"file": str(path)})


# --- persons, cards and opening balances -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RowProblem:
    line: int
    column: str
    problem: str  # never holds a full citizen ID or card number


@dataclass(frozen=True, slots=True)
class EnrolmentRow:
    line: int
    person_number: str
    name: str
    insured_type: str
    region: str
    citizen_id_hash: str
    citizen_id_last4: str
    card_number: str
    card_status: str
    key_reference: str
    current_year_fen: int
    historical_fen: int


@dataclass(frozen=True, slots=True)
class EnrolmentImport:
    run_id: str
    already_imported: bool
    persons: int
    current_year_fen: int
    historical_fen: int


def enrolment_run_id(data: bytes) -> str:
    """``enrol:`` and 48 hex digits (192 bits) of the file's SHA-256, so the id fits the 64-character columns."""
    return "enrol:" + hashlib.sha256(data).hexdigest()[:48]


def read_enrolment(
    data: bytes, *, encoding: str, regions: frozenset[str], key: bytes
) -> tuple[list[EnrolmentRow], list[RowProblem]]:
    """Every row checked on its own and against the others: all problems, not only the first."""
    try:
        utf8 = encoding.lower().replace("_", "-") in ("utf-8", "utf8")
        text = data.decode("utf-8-sig" if utf8 else encoding)
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        return [], [RowProblem(line, "(file)", f"not {encoding} text at byte {error.start}; try --encoding gb18030")]
    except LookupError:
        return [], [RowProblem(0, "(file)", f"unknown encoding {encoding!r}")]
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [column.strip().lower() for column in next(reader, [])]
    header_problem = _header_problem(header)
    if header_problem:
        return [], [RowProblem(1, "(header)", header_problem)]
    rows: list[EnrolmentRow] = []
    problems: list[RowProblem] = []
    first_line: dict[tuple[str, str], int] = {}
    count, start = 0, reader.line_num + 1
    for record in reader:
        line, start = start, reader.line_num + 1  # a quoted field may span lines: name the first
        if not any(cell.strip() for cell in record):
            continue
        count += 1
        if count > limits.MAX_IMPORT_ROWS:
            problems.append(RowProblem(line, "(file)", f"more than {limits.MAX_IMPORT_ROWS} rows; split the file"))
            break
        if len(record) != len(header):
            problems.append(RowProblem(line, "(row)", f"{len(record)} fields, the header has {len(header)}"))
            continue
        row, row_problems = _row(line, dict(zip(header, record, strict=True)), regions, key)
        if row is not None:
            for column, value in (
                ("person_number", row.person_number),
                ("citizen_id", row.citizen_id_hash),
                ("card_number", row.card_number),
            ):
                earlier = first_line.setdefault((column, value), line)
                if earlier != line:
                    row_problems.append(RowProblem(line, column, f"the same {column} as line {earlier}"))
            if not row_problems:
                rows.append(row)
        problems.extend(row_problems)
    if count == 0:
        problems.append(RowProblem(1, "(file)", "no rows after the header"))
    return rows, problems


def _header_problem(header: Sequence[str]) -> str:
    missing = [column for column in ENROLMENT_COLUMNS if column not in header]
    unknown = [column for column in header if column not in ENROLMENT_COLUMNS]
    if not missing and not unknown and len(set(header)) == len(header):
        return ""
    found = [f"missing {', '.join(missing)}" if missing else "", f"unknown {', '.join(unknown)}" if unknown else ""]
    return "; ".join([f"the header must name each of {', '.join(ENROLMENT_COLUMNS)} once", *filter(None, found)])


def _row(
    line: int, cells: Mapping[str, str], regions: frozenset[str], key: bytes
) -> tuple[EnrolmentRow | None, list[RowProblem]]:
    problems: list[RowProblem] = []
    value = {column: cells[column].strip() for column in ENROLMENT_COLUMNS}

    def require(column: str, valid: object, problem: str) -> None:
        if not valid:
            problems.append(RowProblem(line, column, problem))

    require("person_number", _PERSON_NUMBER.fullmatch(value["person_number"]), "must be 1 to 30 letters or digits")
    name = value["name"]
    require("name", 0 < len(name) <= MAX_NAME_CHARS and name.isprintable(), f"must be 1 to {MAX_NAME_CHARS} characters")
    insured_type = _INSURED_TYPES.get(value["insured_type"], "")
    require("insured_type", insured_type, f"must be one of {', '.join(m.value for m in InsuredType)}")
    require("region", value["region"] in regions, f"must be a known region ({', '.join(sorted(regions))})")
    citizen_id = value["citizen_id"].upper()
    require("citizen_id", citizen_id_is_valid(citizen_id), f"{mask(citizen_id)} is not a valid citizen ID (GB 11643)")
    card_number = value["card_number"]
    require(
        "card_number", _CARD_NUMBER.fullmatch(card_number), f"{mask(card_number)}: must be 6 to 32 letters or digits"
    )
    card_status = _CARD_STATUSES.get(value["card_status"].lower(), "")
    require("card_status", card_status, "must be active, lost or blocked")
    require("key_reference", _KEY_REFERENCE.fullmatch(value["key_reference"]), "must be 1 to 64 letters, digits, .:_-")
    balances: list[int] = []
    for column in ("current_year_fen", "historical_fen"):
        amount = int(value[column]) if _FEN.fullmatch(value[column]) else -1
        limit = f"must be whole fen from 0 to {MAX_OPENING_BALANCE_FEN} (no decimal point), got {value[column]!r}"
        require(column, 0 <= amount <= MAX_OPENING_BALANCE_FEN, limit)
        balances.append(amount)
    if insured_type == InsuredType.RESIDENT.value and any(amount > 0 for amount in balances):
        problems.append(RowProblem(line, "current_year_fen", "residents hold no personal account: balances must be 0"))
    if problems:
        return None, problems
    row = EnrolmentRow(
        line=line,
        person_number=value["person_number"],
        name=name,
        insured_type=insured_type,
        region=value["region"],
        citizen_id_hash=citizen_id_hash(citizen_id, key),
        citizen_id_last4=last4(citizen_id),
        card_number=card_number,
        card_status=card_status,
        key_reference=value["key_reference"],
        current_year_fen=balances[0],
        historical_fen=balances[1],
    )
    return row, []


def import_enrolment(
    engines: Engines,
    data: bytes,
    *,
    source: str,
    encoding: str,
    regions: frozenset[str],
    key: bytes,
    actor: str,
    clock: Clock,
    business_date: dt.date,
) -> EnrolmentImport:
    """Import a file once, all or nothing; a refusal names ``source:line: column: problem`` for every row."""
    run_id = enrolment_run_id(data)
    with engines.reader.connect() as connection:
        done = _run_detail(connection, run_id)
    if done is not None:
        return _already(run_id, done)
    rows, problems = read_enrolment(data, encoding=encoding, regions=regions, key=key)
    if not problems:
        with engines.write_transaction() as connection:
            repo = Repository(connection)
            repo.lock_for_writing(())
            done = _run_detail(connection, run_id)
            if done is not None:
                return _already(run_id, done)
            problems = _already_enrolled(connection, rows)
            if not problems:
                return _write(repo, rows, run_id, data, source=source, actor=actor, clock=clock, day=business_date)
    _audit_refusal(engines, run_id, data, problems, source=source, actor=actor, clock=clock)
    raise _rows_refused(source, problems)


def _already(run_id: str, detail: Mapping[str, Any]) -> EnrolmentImport:
    return EnrolmentImport(
        run_id, True, int(detail["persons"]), int(detail["current_year_fen"]), int(detail["historical_fen"])
    )


def _run_detail(connection: Connection, run_id: str) -> dict[str, Any] | None:
    found = connection.execute(select(t.runs.c.detail).where(t.runs.c.run_id == run_id)).scalar_one_or_none()
    return None if found is None else dict(json.loads(found))


def _already_enrolled(connection: Connection, rows: Sequence[EnrolmentRow]) -> list[RowProblem]:
    problems: list[RowProblem] = []
    for chunk in _chunks(rows, ROWS_PER_STATEMENT):
        by_person = {row.person_number: row for row in chunk}
        by_hash = {row.citizen_id_hash: row for row in chunk}
        by_card = {row.card_number: row for row in chunk}
        persons = t.persons.c.person_number
        for found in connection.execute(select(persons).where(persons.in_(list(by_person)))).scalars():
            problems.append(RowProblem(by_person[found].line, "person_number", f"{found} is already enrolled"))
        hashes = t.persons.c.citizen_id_hash
        for found in connection.execute(select(hashes).where(hashes.in_(list(by_hash)))).scalars():
            row = by_hash[found]
            problems.append(
                RowProblem(row.line, "citizen_id", f"citizen ID …{row.citizen_id_last4} is already enrolled")
            )
        cards = t.cards.c.card_number
        for found in connection.execute(select(cards).where(cards.in_(list(by_card)))).scalars():
            problems.append(RowProblem(by_card[found].line, "card_number", f"card {mask(found)} is already enrolled"))
    return sorted(problems, key=lambda problem: (problem.line, problem.column))


def _write(
    repo: Repository,
    rows: Sequence[EnrolmentRow],
    run_id: str,
    data: bytes,
    *,
    source: str,
    actor: str,
    clock: Clock,
    day: dt.date,
) -> EnrolmentImport:
    connection, now_us = repo.connection, clock.now_us()
    for chunk in _chunks(rows, ROWS_PER_STATEMENT):
        connection.execute(insert(t.persons), [_person_row(row) for row in chunk])
        connection.execute(insert(t.cards), [_card_row(row) for row in chunk])
        # Opening balances: the same amounts are posted from external:funding below, in this transaction.
        connection.execute(
            insert(t.accounts),
            [
                {
                    "person_number": r.person_number,
                    "current_year_fen": r.current_year_fen,
                    "historical_fen": r.historical_fen,
                }
                for r in chunk
            ],
        )
        for row in chunk:
            repo.audit(
                at_us=now_us,
                actor=actor,
                action="enrolment.person",
                subject=row.person_number,
                outcome="ok",
                detail={
                    "run_id": run_id,
                    "insured_type": row.insured_type,
                    "region": row.region,
                    "citizen_id_last4": row.citizen_id_last4,
                    "card": mask(row.card_number),
                    "card_status": row.card_status,
                    "current_year_fen": row.current_year_fen,
                    "historical_fen": row.historical_fen,
                },
            )
        repo.flush()
    for number, chunk in enumerate(_chunks(rows, PERSONS_PER_ENTRY)):
        postings = [
            posting
            for row in chunk
            for posting in (
                Posting(FUNDING, person_current(row.person_number), row.current_year_fen),
                Posting(FUNDING, person_historical(row.person_number), row.historical_fen),
            )
            if posting.amount_fen > 0
        ]
        repo.post(run_id if number == 0 else f"{run_id}/{number}", day, postings)
        repo.flush()  # the repository buffers postings: write them entry by entry to bound memory
    outcome = EnrolmentImport(
        run_id, False, len(rows), sum(r.current_year_fen for r in rows), sum(r.historical_fen for r in rows)
    )
    detail = {
        "source": source,
        "sha256": hashlib.sha256(data).hexdigest(),
        "persons": outcome.persons,
        "current_year_fen": outcome.current_year_fen,
        "historical_fen": outcome.historical_fen,
        "business_date": day.isoformat(),
    }
    connection.execute(
        insert(t.runs),
        {
            "run_id": run_id,
            "kind": ENROLMENT_RUN_KIND,
            "detail": json.dumps(detail, sort_keys=True),
            "created_at_us": now_us,
        },
    )
    repo.audit(at_us=now_us, actor=actor, action="enrolment.import", subject=run_id, outcome="ok", detail=detail)
    repo.flush()
    return outcome


def _person_row(row: EnrolmentRow) -> dict[str, object]:
    return {
        "person_number": row.person_number,
        "name": row.name,
        "insured_type": row.insured_type,
        "region": row.region,
        "citizen_id_hash": row.citizen_id_hash,
        "citizen_id_last4": row.citizen_id_last4,
    }


def _card_row(row: EnrolmentRow) -> dict[str, object]:
    return {
        "card_number": row.card_number,
        "person_number": row.person_number,
        "status": row.card_status,
        "key_reference": row.key_reference,
        "last_counter": 0,
    }


def _audit_refusal(
    engines: Engines, run_id: str, data: bytes, problems: Sequence[RowProblem], *, source: str, actor: str, clock: Clock
) -> None:
    """A refused file changes nothing but is an attempt worth a trace (its count of problems, not its contents)."""
    with engines.write_transaction() as connection:
        repo = Repository(connection)
        repo.lock_for_writing(())
        repo.audit(
            at_us=clock.now_us(),
            actor=actor,
            action="enrolment.import",
            subject=run_id,
            outcome=InvalidImportFile.reason,
            detail={"source": source, "sha256": hashlib.sha256(data).hexdigest(), "problems": len(problems)},
        )
        repo.flush()


def _rows_refused(source: str, problems: Sequence[RowProblem]) -> InvalidImportFile:
    shown = [f"{source}:{p.line}: {p.column}: {p.problem}" for p in problems[:MAX_REPORTED_PROBLEMS]]
    if len(problems) > MAX_REPORTED_PROBLEMS:
        shown.append(f"... and {len(problems) - MAX_REPORTED_PROBLEMS} more problems")
    lines = len({problem.line for problem in problems})
    return InvalidImportFile(
        f"{source}: {len(problems)} problem(s) on {lines} line(s), nothing imported:\n" + "\n".join(shown),
        field=problems[0].column,
        metadata={"file": source, "line": str(problems[0].line), "problems": str(len(problems))},
    )


def _chunks(rows: Sequence[_Value], size: int) -> Iterator[Sequence[_Value]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]
