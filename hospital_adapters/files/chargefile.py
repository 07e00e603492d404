"""Reading one exported charge file (CSV or JSON, one visit per file) into a ``HisVisit``.

Owns: the two file layouts documented in the integration guide and their validation, reporting every
bad line. Must never accept binary floats for money: JSON numbers are read as exact decimals, and
``visit_id`` is required because it is the idempotency key of the file.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from hospital_adapters.charges import (
    HisLine,
    HisVisit,
    Problem,
    SubmissionRefused,
    parse_decimal,
    yuan_to_fen,
)
from hospital_adapters.config import HospitalConfig
from hospital_adapters.port import VisitType

CSV_COLUMNS = ("visit_id", "person_number", "visit_date", "line_id", "code", "unit", "quantity", "unit_price")
CSV_OPTIONAL_COLUMNS = ("amount", "type", "visit_type", "use_account")
VISIT_FIELDS = ("visit_id", "person_number", "visit_date", "visit_type", "use_account")


@dataclass(frozen=True, slots=True)
class ChargeFile:
    visit: HisVisit
    visit_id: str


def _file_problem(message: str, field: str = "") -> SubmissionRefused:
    return SubmissionRefused(Problem("INVALID_CHARGE_FILE", message, None, field))


def parse_charge_file(name: str, text: str, config: HospitalConfig) -> ChargeFile:
    """A visit from a ``.csv`` or ``.json`` charge file, or ``SubmissionRefused``."""
    if name.lower().endswith(".json"):
        try:
            raw = json.loads(text, parse_float=Decimal)
        except (ValueError, RecursionError):
            raise _file_problem("the file is not valid JSON") from None
        if not isinstance(raw, dict) or not isinstance(raw.get("lines"), list):
            raise _file_problem("a JSON charge file is an object with visit fields and a \"lines\" list")
        header: dict[str, Any] = {key: raw.get(key) for key in VISIT_FIELDS}
        rows = [row if isinstance(row, dict) else {} for row in raw["lines"]]
    else:
        header, rows = _read_csv(text)
    return _to_visit(header, rows, config)


def _read_csv(text: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text))
    columns = tuple(name.strip() for name in reader.fieldnames or ())
    missing = [name for name in CSV_COLUMNS if name not in columns]
    if missing:
        raise _file_problem(f"the CSV header lacks {', '.join(missing)}")
    unknown = [name for name in columns if name not in CSV_COLUMNS + CSV_OPTIONAL_COLUMNS]
    if unknown:
        raise _file_problem(f"the CSV header has unknown columns {', '.join(unknown)}")
    rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    if not rows:
        raise SubmissionRefused(Problem("EMPTY_CHARGE", "the file has no charge lines", None, "lines"))
    header = {key: rows[0].get(key, "") for key in VISIT_FIELDS}
    for number, row in enumerate(rows, start=2):
        for key in VISIT_FIELDS:
            if row.get(key, "") != header[key]:
                raise _file_problem(f"row {number}: {key} differs from the first row; one visit per file", key)
    return header, rows


def _text(value: object, what: str, *, required: bool = True, max_chars: int = 64) -> str:
    text = value if isinstance(value, str) else "" if value is None else str(value)
    text = text.strip()
    if (required and not text) or len(text) > max_chars:
        raise _file_problem(f"{what} must be 1 to {max_chars} characters", what)
    return text


def _to_visit(header: dict[str, Any], rows: list[dict[str, Any]], config: HospitalConfig) -> ChargeFile:
    visit_id = _text(header.get("visit_id"), "visit_id")
    person_number = _text(header.get("person_number"), "person_number")
    try:
        visit_date = date.fromisoformat(_text(header.get("visit_date"), "visit_date", max_chars=10))
    except ValueError:
        raise _file_problem("visit_date must be a date such as 2024-05-01", "visit_date") from None
    visit_type_text = _text(header.get("visit_type"), "visit_type", required=False) or config.visit_type.value
    if visit_type_text not in {v.value for v in VisitType}:
        raise _file_problem(f"visit_type must be one of {', '.join(v.value for v in VisitType)}", "visit_type")
    use_account_raw = header.get("use_account")
    use_account = config.use_account
    if use_account_raw not in (None, ""):
        if str(use_account_raw).lower() not in {"true", "false"}:
            raise _file_problem("use_account must be true or false", "use_account")
        use_account = str(use_account_raw).lower() == "true"
    if not rows:
        raise SubmissionRefused(Problem("EMPTY_CHARGE", "the file has no charge lines", None, "lines"))
    lines: list[HisLine] = []
    problems: list[Problem] = []
    seen: set[str] = set()
    for number, row in enumerate(rows, start=1):
        try:
            line = _read_line(row, number)
            if line.line_id in seen:
                raise SubmissionRefused(Problem("INVALID_FIELD", f"line {line.line_id}: line_id is repeated",
                                                line.line_id, "line_id"))
            seen.add(line.line_id)
            lines.append(line)
        except SubmissionRefused as refused:
            problems.extend(refused.problems)
    visit = HisVisit(
        hospital_id=config.hospital_id,
        source_kind="files",
        source_id=visit_id,
        person_number=person_number,
        visit_date=visit_date,
        visit_type=VisitType(visit_type_text),
        use_account=use_account,
        lines=tuple(lines),
        problems=tuple(problems),
    )
    return ChargeFile(visit, visit_id)


def _number_text(value: object) -> str:
    if isinstance(value, bool):
        return "invalid"
    return str(value).strip() if isinstance(value, str | int | Decimal) else "" if value is None else "invalid"


def _read_line(row: dict[str, Any], number: int) -> HisLine:
    line_id = _number_text(row.get("line_id")) or str(number)
    if len(line_id) > 64:
        line_id = str(number)

    def refuse(reason: str, what: str, message: str) -> SubmissionRefused:
        return SubmissionRefused(Problem(reason, f"line {line_id}: {message}", line_id, what))

    code = _number_text(row.get("code"))
    if not code or len(code) > 64:
        raise refuse("INVALID_FIELD", "code", "code (the hospital item code) is required")
    unit = _number_text(row.get("unit")) or None
    kind = _number_text(row.get("type")) or "charge"
    if kind not in {"charge", "credit"}:
        raise refuse("INVALID_FIELD", "type", "type must be charge or credit")
    quantity = parse_decimal(_number_text(row.get("quantity")), what="quantity", line_id=line_id)
    unit_price = parse_decimal(_number_text(row.get("unit_price")), what="unit_price", line_id=line_id)
    if quantity <= 0 or unit_price < 0:
        raise refuse("INVALID_AMOUNT", "quantity", "quantity must be positive and unit_price not negative")
    amount_text = _number_text(row.get("amount"))
    amount_fen = None
    if amount_text:
        amount = parse_decimal(amount_text, what="amount", line_id=line_id)
        amount_fen = yuan_to_fen(amount, what="amount", line_id=line_id)
    return HisLine(line_id, code, unit, quantity, unit_price, amount_fen, credit=kind == "credit")
