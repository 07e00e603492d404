"""The visit's charges as the terminal takes them: a JSON file from the HIS, and who the patient is.

Owns the file format (docs/terminal.md), its checks with file and field in every message, and how the
person number is found when the file does not name it (``--person``, else ``--person-map``). Prices and
quantities stay decimal strings end to end: a JSON float is refused, never rounded. The engine checks
scales, catalogue codes and amounts again; this module only refuses what cannot be a charge at all.
Must never print a full card number.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from settlement.identity import mask
from settlement.limits import MAX_HOSPITAL_LINE_ID_CHARS, MAX_ITEM_CODE_CHARS, MAX_LINES_PER_CHARGE
from settlement.terminal.limits import MAX_CHARGES_FILE_BYTES, MAX_PERSON_MAP_FILE_BYTES

VISIT_TYPES = ("outpatient", "emergency", "chronic")
_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")
_VISIT_KEYS = frozenset({"person_number", "visit_type", "visit_date", "use_account", "lines"})
_LINE_KEYS = frozenset({"hospital_line_id", "item_code", "quantity", "unit_price_yuan", "amount_fen"})


class ChargesError(Exception):
    """A charges or person-map file the terminal cannot use; the message names the file and the field."""


@dataclass(frozen=True)
class ChargeLineInput:
    hospital_line_id: str
    item_code: str
    quantity: str
    unit_price_yuan: str
    amount_fen: int | None = None


@dataclass(frozen=True)
class VisitCharges:
    person_number: str | None
    visit_type: str  # one of VISIT_TYPES
    visit_date: dt.date | None  # None: today in China Standard Time
    use_account: bool
    lines: tuple[ChargeLineInput, ...]


def load_charges(path: Path) -> VisitCharges:
    return parse_charges(_read_json(path, MAX_CHARGES_FILE_BYTES), str(path))


def parse_charges(data: object, source: str) -> VisitCharges:
    if not isinstance(data, dict):
        raise ChargesError(f"{source}: expected a JSON object with a 'lines' list")
    _no_unknown_keys(data, _VISIT_KEYS, source)
    person = data.get("person_number")
    if person is not None and (not isinstance(person, str) or not person.strip()):
        raise ChargesError(f"{source}: person_number must be a non-empty string when given")
    visit_type = data.get("visit_type", "outpatient")
    if visit_type not in VISIT_TYPES:
        raise ChargesError(f"{source}: visit_type must be one of {', '.join(VISIT_TYPES)}")
    use_account = data.get("use_account", True)
    if not isinstance(use_account, bool):
        raise ChargesError(f"{source}: use_account must be true or false")
    lines = data.get("lines")
    if not isinstance(lines, list) or not 1 <= len(lines) <= MAX_LINES_PER_CHARGE:
        raise ChargesError(f"{source}: lines must be a list of 1 to {MAX_LINES_PER_CHARGE} charge lines")
    parsed = tuple(_line(line, f"{source}: lines[{index}]") for index, line in enumerate(lines))
    seen: set[str] = set()
    for index, line in enumerate(parsed):
        if line.hospital_line_id in seen:
            raise ChargesError(f"{source}: lines[{index}].hospital_line_id {line.hospital_line_id!r} is repeated")
        seen.add(line.hospital_line_id)
    return VisitCharges(
        person_number=person.strip() if isinstance(person, str) else None,
        visit_type=str(visit_type),
        visit_date=_date(data.get("visit_date"), source),
        use_account=use_account,
        lines=parsed,
    )


def _line(line: object, where: str) -> ChargeLineInput:
    if not isinstance(line, dict):
        raise ChargesError(f"{where}: expected an object")
    _no_unknown_keys(line, _LINE_KEYS, where)
    line_id = _text(line, "hospital_line_id", MAX_HOSPITAL_LINE_ID_CHARS, where)
    item_code = _text(line, "item_code", MAX_ITEM_CODE_CHARS, where)
    amount_fen = line.get("amount_fen")
    if amount_fen is not None and (not isinstance(amount_fen, int) or isinstance(amount_fen, bool) or amount_fen < 0):
        raise ChargesError(f"{where}.amount_fen: a whole, non-negative number of fen")
    return ChargeLineInput(
        hospital_line_id=line_id,
        item_code=item_code,
        quantity=_decimal(line, "quantity", where),
        unit_price_yuan=_decimal(line, "unit_price_yuan", where),
        amount_fen=amount_fen,
    )


def _text(line: Mapping[str, Any], key: str, max_chars: int, where: str) -> str:
    value = line.get(key)
    if not isinstance(value, str) or not value or len(value) > max_chars:
        raise ChargesError(f"{where}.{key}: a string of 1 to {max_chars} characters is required")
    return value


def _decimal(line: Mapping[str, Any], key: str, where: str) -> str:
    value = line.get(key)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if isinstance(value, float):
        raise ChargesError(f'{where}.{key}: write decimals as strings ("12.50"), never as JSON numbers')
    if not isinstance(value, str) or not _DECIMAL.fullmatch(value):
        raise ChargesError(f'{where}.{key}: a plain decimal string such as "1" or "12.50" is required')
    return value


def _date(value: object, source: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ChargesError(f"{source}: visit_date must be YYYY-MM-DD") from None


def _no_unknown_keys(data: Mapping[str, Any], known: frozenset[str], where: str) -> None:
    unknown = sorted(set(data) - known)
    if unknown:  # a misspelt key would otherwise be silently ignored
        raise ChargesError(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")


def load_person_map(path: Path) -> dict[str, str]:
    """A JSON object from card number to person number (national ``psn_no``)."""
    data = _read_json(path, MAX_PERSON_MAP_FILE_BYTES)
    if not isinstance(data, dict) or not all(
        isinstance(card, str) and isinstance(person, str) and person for card, person in data.items()
    ):
        raise ChargesError(f"{path}: expected a JSON object mapping card numbers to person numbers")
    return dict(data)


def person_number_for(
    card_number: str, charges: VisitCharges, *, person: str | None, person_map: Mapping[str, str]
) -> str:
    """The patient: the charges file's person_number, else ``--person``, else the card's entry in the map."""
    found = charges.person_number or person or person_map.get(card_number)
    if not found:
        raise ChargesError(
            f"no person number for card {mask(card_number)}: put person_number in the charges file, "
            "or pass --person or a --person-map that lists the card"
        )
    return found


def _read_json(path: Path, max_bytes: int) -> object:
    try:
        with path.open("rb") as file:
            raw = file.read(max_bytes + 1)
    except OSError as error:
        raise ChargesError(f"{path}: cannot read: {error.strerror or error}") from None
    if len(raw) > max_bytes:
        raise ChargesError(f"{path}: larger than {max_bytes} bytes")
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ChargesError(f"{path}: not UTF-8") from None
    except json.JSONDecodeError as error:
        raise ChargesError(f"{path}:{error.lineno}:{error.colno}: not JSON: {error.msg}") from None
