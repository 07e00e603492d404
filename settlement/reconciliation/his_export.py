"""Reading the HIS's own daily export (CSV) into counterpart records, all or nothing.

Owns: the export's column contract (``HIS_COLUMNS``, any order, no others), its statuses, its per-row
checks (amounts in yuan to the fen, fund + account + cash = total) and the refusal of a settlement id
listed twice. Must never return a partial file or guess at a malformed value: the first pass collects
every problem (up to a limit) and raises one ``InvalidImportFile`` naming file, line and column.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from settlement.reconciliation import limits
from settlement.reconciliation.input_files import Problems, check_text, decode, parse_yuan, read_bounded
from settlement.reconciliation.records import Counterpart, CounterpartRecord, SettlementStatus

HIS_COLUMNS = (
    "settlement_id",
    "request_id",
    "visit_id",
    "total",
    "fund_paid",
    "account_paid",
    "cash",
    "status",
)
_ID_COLUMNS = ("settlement_id", "request_id", "visit_id")
_AMOUNT_COLUMNS = ("total", "fund_paid", "account_paid", "cash")

# HIS vendors write the status in English or Chinese; anything else is refused, not guessed.
HIS_STATUSES = {
    "SETTLED": SettlementStatus.SETTLED,
    "CANCELLED": SettlementStatus.CANCELLED,
    "已结算": SettlementStatus.SETTLED,
    "已撤销": SettlementStatus.CANCELLED,
}


def read_his_export(path: Path) -> list[CounterpartRecord]:
    """Every row of the HIS export at ``path``, or ``InvalidImportFile``; the file size is capped first."""
    return parse_his_export(read_bounded(path), file_name=path.name)


def parse_his_export(data: bytes, *, file_name: str) -> list[CounterpartRecord]:
    """Every row of an HIS export given as bytes, or ``InvalidImportFile`` naming file, line and column."""
    problems = Problems(file_name)
    text = decode(data, file_name)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise problems.refuse_now(1, "", f"the file is empty; expected the header {','.join(HIS_COLUMNS)}")
        position = _column_positions([name.strip() for name in header], problems)
        records: list[CounterpartRecord] = []
        first_line_of: dict[str, int] = {}
        for row in reader:
            if not row:
                continue  # blank lines carry nothing; tolerating them costs nothing
            if len(records) >= limits.MAX_IMPORT_ROWS:
                raise problems.refuse_now(reader.line_num, "", f"more than {limits.MAX_IMPORT_ROWS} rows")
            record = _parse_row(row, reader.line_num, position, file_name, problems)
            if record is None:
                continue
            first_line = first_line_of.setdefault(record.settlement_id, record.line)
            if first_line != record.line:
                problems.add(
                    record.line,
                    _column(position, "settlement_id"),
                    f"settlement {record.settlement_id} is listed again (first at line {first_line})",
                )
                continue
            records.append(record)
    except csv.Error as broken:
        raise problems.refuse_now(reader.line_num, "", f"not valid CSV: {broken}") from None
    problems.raise_if_any()
    return records


def _column(position: dict[str, int], name: str) -> str:
    return f"{position[name] + 1} ({name})"


def _column_positions(header: list[str], problems: Problems) -> dict[str, int]:
    missing = [name for name in HIS_COLUMNS if name not in header]
    unknown = [name for name in header if name not in HIS_COLUMNS]
    repeated = sorted({name for name in header if header.count(name) > 1})
    if missing or unknown or repeated:
        details = []
        if missing:
            details.append(f"missing {', '.join(missing)}")
        if unknown:
            details.append(f"unknown {', '.join(repr(name) for name in unknown)}")
        if repeated:
            details.append(f"repeated {', '.join(repeated)}")
        first_bad = next(
            (index for index, name in enumerate(header) if name in unknown or name in repeated), len(header)
        )
        raise problems.refuse_now(
            1,
            str(first_bad + 1),
            f"wrong columns ({'; '.join(details)}); expected exactly {','.join(HIS_COLUMNS)} in any order",
        )
    return {name: header.index(name) for name in HIS_COLUMNS}


def _parse_row(
    row: list[str], line: int, position: dict[str, int], file_name: str, problems: Problems
) -> CounterpartRecord | None:
    if len(row) != len(HIS_COLUMNS):
        problems.add(line, "", f"{len(row)} fields, expected {len(HIS_COLUMNS)}")
        return None
    values: dict[str, str] = {}
    amounts: dict[str, int] = {}
    ok = True
    for name in _ID_COLUMNS:
        try:
            values[name] = check_text(row[position[name]], required=True, max_chars=limits.MAX_ID_CHARS)
        except ValueError as bad:
            problems.add(line, _column(position, name), f"{name} {bad}")
            ok = False
    for name in _AMOUNT_COLUMNS:
        try:
            amounts[name] = parse_yuan(row[position[name]].strip())
        except ValueError as bad:
            problems.add(line, _column(position, name), str(bad))
            ok = False
    status = HIS_STATUSES.get(row[position["status"]].strip().upper())
    if status is None:
        problems.add(
            line,
            _column(position, "status"),
            f"status {row[position['status']]!r} is not one of {', '.join(HIS_STATUSES)}",
        )
        ok = False
    if not ok or status is None:
        return None
    if amounts["fund_paid"] + amounts["account_paid"] + amounts["cash"] != amounts["total"]:
        problems.add(line, _column(position, "total"), "fund_paid + account_paid + cash does not equal total")
        return None
    return CounterpartRecord(
        counterpart=Counterpart.HIS,
        file_name=file_name,
        line=line,
        settlement_id=values["settlement_id"],
        visit_id=values["visit_id"],
        status=status,
        total_fen=amounts["total"],
        fund_paid_fen=amounts["fund_paid"],
        account_paid_fen=amounts["account_paid"],
        cash_fen=amounts["cash"],
        request_id=values["request_id"],
    )
